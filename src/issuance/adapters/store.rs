//! The driver's two records in SQLite: the visit journal ([`SqliteJournal`], one
//! `JournalRecord` JSON per row, WAL mode, synchronous FULL so a row is on disk before the
//! command it announces runs) and the audit log feed ([`SqliteAudit`], one
//! `audit::Record` per step over [`AuditLog`]).
//!
//! What it is not: the journal's format (`issuance::journal`) or the audit chain
//! (`audit::store`); no PIN can reach either, as no record has a field for one.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

use super::{AuditPort, JournalPort, StoreError};
use crate::audit::{self, Action, AuditLog, Details};
use crate::issuance::command::{CaCommand, Command, Outcome, RevocationReason, Screen};
use crate::issuance::event::Event;
use crate::issuance::journal::JournalRecord;
use crate::staff::OperatorId;

/// The visit journal in SQLite.
#[derive(Debug)]
pub struct SqliteJournal {
    db: Connection,
}

impl SqliteJournal {
    /// Opens (creating) the journal at `path`.
    pub fn open(path: &Path) -> Result<SqliteJournal, StoreError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS visits (
               visit TEXT PRIMARY KEY, opened INTEGER NOT NULL, ended INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS journal (
               visit TEXT NOT NULL, seq INTEGER NOT NULL, record TEXT NOT NULL,
               PRIMARY KEY (visit, seq));",
        )?;
        Ok(SqliteJournal { db })
    }

    /// Every visit in the journal, the newest first.
    pub fn visits_newest_first(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.db.prepare("SELECT visit FROM visits ORDER BY opened DESC, rowid DESC")?;
        let visits = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        Ok(visits)
    }

    /// Every record of `visit`, in order.
    pub fn records(&self, visit: &str) -> Result<Vec<JournalRecord>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT seq, record FROM journal WHERE visit = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([visit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, text) = row?;
            out.push(
                JournalRecord::from_json(&text)
                    .map_err(|source| StoreError::Corrupt { seq, source })?,
            );
        }
        Ok(out)
    }
}

fn seq_of(record: &JournalRecord) -> u64 {
    match record {
        JournalRecord::Command { seq, .. } | JournalRecord::Event { seq, .. } => *seq,
    }
}

impl JournalPort for SqliteJournal {
    fn append(&mut self, visit: &str, record: &JournalRecord) -> Result<(), StoreError> {
        let tx = self.db.transaction()?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO visits (visit, opened) VALUES (?1, unixepoch())",
            [visit],
        )?;
        let _ = n;
        tx.execute(
            "INSERT INTO journal (visit, seq, record) VALUES (?1, ?2, ?3)",
            params![visit, seq_of(record) as i64, record.to_json()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn close(&mut self, visit: &str) -> Result<(), StoreError> {
        self.db
            .execute("UPDATE visits SET ended = 1 WHERE visit = ?1", [visit])?;
        Ok(())
    }

    fn unfinished(&self) -> Result<Option<(String, Vec<JournalRecord>)>, StoreError> {
        let visit: Option<String> = self
            .db
            .query_row(
                "SELECT visit FROM visits WHERE ended = 0 ORDER BY opened DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match visit {
            Some(v) => {
                let records = self.records(&v)?;
                Ok(Some((v, records)))
            }
            None => Ok(None),
        }
    }
}

/// The audit log as the driver feeds it, acting for the signed-in operator.
pub struct SqliteAudit {
    log: AuditLog,
    operator: OperatorId,
}

impl std::fmt::Debug for SqliteAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAudit")
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

impl SqliteAudit {
    /// Opens the audit log at `path`; records are made in the name of `operator` (the
    /// signed-in session's, `staff::Session::operator`).
    pub fn open(path: &Path, operator: OperatorId) -> Result<SqliteAudit, StoreError> {
        Ok(SqliteAudit {
            log: AuditLog::open(path)?,
            operator,
        })
    }
}

/// The audit action a journal record stands for, with its details. `None`: not audited
/// (screens, pad prompts, reads).
fn action_of(record: &JournalRecord) -> Option<(Action, Details, bool)> {
    let ok = true;
    Some(match record {
        JournalRecord::Command { command, .. } => match command {
            Command::Ca {
                ca: CaCommand::Submit { keys, .. },
            } => (
                Action::CaRequestSent,
                Details::new().count("keys", keys.len() as u64),
                ok,
            ),
            Command::Ca {
                ca: CaCommand::Revoke {
                    serials, reason, ..
                },
            } => (
                Action::CaRequestSent,
                Details::new()
                    .name("request", "rr")
                    .name(
                        "reason",
                        match reason {
                            RevocationReason::KeyCompromise => "key_compromise",
                            RevocationReason::CessationOfOperation => "cessation_of_operation",
                        },
                    )
                    .count("certs", serials.len() as u64),
                ok,
            ),
            Command::Show {
                screen: Screen::Ended { outcome },
            } => {
                let name = match outcome {
                    Outcome::Issued => "issued",
                    Outcome::Revoked => "revoked",
                    Outcome::PinServiced => "pin_serviced",
                    Outcome::InquiryIssued { .. } => "inquiry_issued",
                    Outcome::Cancelled => "cancelled",
                    Outcome::Refused { .. } => "refused",
                    Outcome::Failed { .. } => "failed",
                };
                (Action::VisitEnded, Details::new().name("outcome", name), ok)
            }
            _ => return None,
        },
        JournalRecord::Event { event, .. } => match event {
            Event::VisitOpened(_) => (Action::VisitStarted, Details::new(), ok),
            Event::RegistryAnswered { record } => (
                Action::RegistryChecked,
                Details::new().flag("found", record.is_some()),
                ok,
            ),
            Event::IdentityRecorded { documents, .. } => (
                Action::IdentityRecorded,
                Details::new().count("documents", documents.len() as u64),
                ok,
            ),
            Event::CardDetected { serial, .. } => {
                let tail = serial.tail().to_owned();
                (
                    Action::CardDetected,
                    Details::new().redacted("card", &tail),
                    ok,
                )
            }
            Event::KeyGenerated { slot, .. } => (
                Action::KeysGenerated,
                Details::new().name("slot", slot_name(*slot)),
                ok,
            ),
            Event::PinSet { slot } => (
                Action::PinsSet,
                Details::new().name("slot", slot_name(*slot)),
                ok,
            ),
            Event::CaIssued { certs, .. } => (
                Action::CaAnswered,
                Details::new()
                    .name("answer", "issued")
                    .count("certs", certs.len() as u64),
                ok,
            ),
            Event::CaRejected { .. } => (
                Action::CaAnswered,
                Details::new().name("answer", "rejected"),
                false,
            ),
            Event::CaConfirmed { .. } => (
                Action::CaAnswered,
                Details::new().name("answer", "confirmed"),
                ok,
            ),
            Event::CertWritten { slot } => (
                Action::CertificatesWritten,
                Details::new().name("slot", slot_name(*slot)),
                ok,
            ),
            Event::TestSigned { slot, .. } => (
                Action::CardVerified,
                Details::new().name("slot", slot_name(*slot)),
                ok,
            ),
            Event::SlotErased { slot } => (
                Action::CardErased,
                Details::new().name("slot", slot_name(*slot)),
                ok,
            ),
            Event::CaRevoked { .. } => (Action::Revocation, Details::new(), ok),
            Event::LockReleased { slot } => (
                Action::PinLockReleased,
                Details::new().name("slot", slot_name(*slot)),
                ok,
            ),
            Event::CaseStored => (Action::ProxyInquiryIssued, Details::new(), ok),
            Event::CaseAnswered { case } => (
                Action::ProxyAnswerChecked,
                Details::new().flag("found", case.is_some()),
                ok,
            ),
            _ => return None,
        },
    })
}

fn slot_name(slot: crate::issuance::model::Slot) -> &'static str {
    match slot {
        crate::issuance::model::Slot::Auth => "auth",
        crate::issuance::model::Slot::Sign => "sign",
    }
}

impl AuditPort for SqliteAudit {
    fn note(
        &mut self,
        visit: &str,
        record: &JournalRecord,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some((action, details, ok)) = action_of(record) else {
            return Ok(());
        };
        let mut entry = audit::Record::new(at, Some(&self.operator), action).details(details);
        if let Some(v) = audit::VisitId::new(visit) {
            entry = entry.visit(&v);
        }
        if !ok {
            if let Some(code) = audit::ErrorCode::new("ca_rejected") {
                entry = entry.failed(code);
            }
        }
        self.log.append(&entry)?;
        Ok(())
    }

    fn resumed(&mut self, visit: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut entry = audit::Record::new(at, Some(&self.operator), Action::VisitResumed);
        if let Some(v) = audit::VisitId::new(visit) {
            entry = entry.visit(&v);
        }
        self.log.append(&entry)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuance::command::CardCommand;
    use crate::issuance::journal::Journal;
    use crate::issuance::model::Slot;

    #[test]
    fn journal_keeps_records_in_order_and_forgets_closed_visits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut j = SqliteJournal::open(&path).unwrap();
        assert!(j.unfinished().unwrap().is_none());
        let mut seq = Journal::default();
        let records = vec![
            seq.command(&Command::card(CardCommand::GenerateKey {
                slot: Slot::Sign,
            })),
            seq.event(&Event::PinSet { slot: Slot::Auth }),
        ];
        for r in &records {
            j.append("v-1", r).unwrap();
        }
        // A second connection (a restarted kiosk) sees the open visit with its records.
        let again = SqliteJournal::open(&path).unwrap();
        assert_eq!(
            again.unfinished().unwrap(),
            Some(("v-1".to_owned(), records.clone()))
        );
        // The same seq twice is refused: a record is never overwritten.
        assert!(j.append("v-1", &records[0]).is_err());
        j.close("v-1").unwrap();
        assert!(again.unfinished().unwrap().is_none());
        assert_eq!(again.records("v-1").unwrap(), records);
    }

    #[test]
    fn audit_gets_steps_not_screens() {
        let mut seq = Journal::default();
        let key = seq.event(&Event::KeyGenerated {
            slot: Slot::Auth,
            spki: vec![1, 2],
        });
        let screen = seq.command(&Command::show(Screen::Working));
        assert!(matches!(
            action_of(&key),
            Some((Action::KeysGenerated, _, true))
        ));
        assert!(action_of(&screen).is_none());
        let revoke = seq.command(&Command::ca(CaCommand::Revoke {
            transaction: crate::issuance::model::TransactionId([7; 16]),
            serials: vec!["0A".into(), "0B".into()],
            reason: RevocationReason::KeyCompromise,
        }));
        assert!(matches!(
            action_of(&revoke),
            Some((Action::CaRequestSent, _, true))
        ));
        let released = seq.event(&Event::LockReleased { slot: Slot::Sign });
        assert!(matches!(
            action_of(&released),
            Some((Action::PinLockReleased, _, true))
        ));
        let dir = tempfile::tempdir().unwrap();
        let mut audit = SqliteAudit::open(
            &dir.path().join("audit.db"),
            OperatorId::new("staff-07").unwrap(),
        )
        .unwrap();
        let at = OffsetDateTime::now_utc();
        audit.note("v-1", &key, at).unwrap();
        audit.note("v-1", &screen, at).unwrap();
        audit.resumed("v-1", at).unwrap();
        assert_eq!(
            crate::audit::verify_file(&dir.path().join("audit.db"))
                .unwrap()
                .entries,
            2
        );
    }
}
