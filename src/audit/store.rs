//! The audit log's SQLite storage: the table, its append-only triggers, and appending.
//!
//! Appends run in an IMMEDIATE transaction, so two processes writing the same file still
//! build one chain. `synchronous = FULL`: an entry the caller was told about survives a
//! power cut. Verification lives in `verify.rs` and reads through any connection.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::chain::{self, EntryFields, GENESIS};
use super::verify::{self, Anchor, VerifyReport};
use super::{format_at, AuditError, Record};

/// The file name of the kiosk's database (audit log and staff tables) in its data
/// directory.
pub const DEFAULT_FILE_NAME: &str = "audit.db";

/// The triggers that keep the table append-only; `verify` checks that they are all there.
pub(crate) const GUARDS: [&str; 3] =
    ["audit_log_no_update", "audit_log_no_delete", "audit_log_next_link"];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq        INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
    at         TEXT NOT NULL,
    operator   TEXT,
    action     TEXT NOT NULL,
    visit      TEXT,
    outcome    TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    error_code TEXT CHECK ((outcome = 'failed') = (error_code IS NOT NULL)),
    details    TEXT NOT NULL,
    prev_hash  BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash       BLOB NOT NULL UNIQUE CHECK (length(hash) = 32)
) STRICT;
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_next_link BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT COALESCE(
       (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), zeroblob(32))
BEGIN SELECT RAISE(ABORT, 'audit_log: not the next link of the chain'); END;
";

/// One entry as stored, for reading and printing. Text fields are exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Sequence number, from 1.
    pub seq: u64,
    /// UTC time, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub at: String,
    /// Operator id, `None` for the kiosk itself.
    pub operator: Option<String>,
    /// Stable action name (see [`super::Action::from_name`]).
    pub action: String,
    /// Visit id.
    pub visit: Option<String>,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Error code of a failure.
    pub error_code: Option<String>,
    /// Details JSON.
    pub details: String,
    /// This entry's hash.
    pub hash: [u8; 32],
}

/// The audit log in a SQLite file (WAL mode). Staff tables may share the file.
pub struct AuditLog {
    conn: Connection,
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path`.
    ///
    /// An existing log whose guards (triggers) are gone is refused with
    /// [`AuditError::GuardsMissing`]: the kiosk must not quietly put them back and carry on,
    /// which would hide that someone removed them. See [`Self::open_reinstalling_guards`].
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::with_connection(Connection::open(path)?)
    }

    /// Uses an open connection; creates the table and its triggers in a new database, and
    /// checks the triggers of an existing one (see [`Self::open`]).
    pub fn with_connection(conn: Connection) -> Result<AuditLog, AuditError> {
        let log = AuditLog::prepare(conn)?;
        if log.table_exists()? {
            verify::check_guards(&log.conn)?;
        } else {
            log.conn.execute_batch(SCHEMA)?;
        }
        Ok(log)
    }

    /// Opens the log and puts back any missing trigger; returns the log and how many were
    /// put back. For a supervisor's recovery after [`AuditError::GuardsMissing`], once the
    /// incident is investigated: record it (`Action::AuditVerified` with the count, for
    /// example) in the reopened log.
    pub fn open_reinstalling_guards(path: &Path) -> Result<(AuditLog, usize), AuditError> {
        let log = AuditLog::prepare(Connection::open(path)?)?;
        let missing = match verify::check_guards(&log.conn) {
            Ok(()) => 0,
            Err(AuditError::GuardsMissing { missing }) => missing.len(),
            Err(e) => return Err(e),
        };
        // A guard of the right name that no longer aborts is replaced, not kept.
        for name in GUARDS {
            let sql: Option<String> = log
                .conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            if sql.is_some_and(|s| !s.contains("RAISE(ABORT")) {
                log.conn.execute_batch(&format!("DROP TRIGGER {name}"))?;
            }
        }
        log.conn.execute_batch(SCHEMA)?;
        Ok((log, missing))
    }

    fn prepare(conn: Connection) -> Result<AuditLog, AuditError> {
        // WAL lets `audit verify` read while the kiosk appends.
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(None, "synchronous", "full")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(AuditLog { conn })
    }

    fn table_exists(&self) -> Result<bool, AuditError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log')",
            [],
            |r| r.get(0),
        )?)
    }

    /// Appends `record` as the next link and returns where it went in the chain.
    pub fn append(&mut self, record: &Record) -> Result<Anchor, AuditError> {
        let at = format_at(record.at)?;
        let details = record.details.to_json();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let (seq, prev_hash) = match last {
            None => (1u64, GENESIS),
            Some((seq, hash)) => {
                // The CHECK constraints keep these well-formed; a file edited to break
                // them is reported as tampering rather than extended.
                let prev: [u8; 32] = hash.try_into().map_err(|_| broken_head(seq))?;
                let seq = u64::try_from(seq).map_err(|_| broken_head(seq))?;
                (seq + 1, prev)
            }
        };
        let fields = EntryFields {
            seq,
            at: &at,
            operator: record.operator.as_ref().map(|o| o.as_str()),
            action: record.action.as_str(),
            visit: record.visit.as_ref().map(|v| v.as_str()),
            outcome: record.outcome.as_str(),
            error_code: record.outcome.code().map(|c| c.as_str()),
            details: &details,
            prev_hash: &prev_hash,
        };
        let hash = chain::hash(&fields);
        tx.execute(
            "INSERT INTO audit_log
               (seq, at, operator, action, visit, outcome, error_code, details, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                seq as i64,
                fields.at,
                fields.operator,
                fields.action,
                fields.visit,
                fields.outcome,
                fields.error_code,
                fields.details,
                &prev_hash[..],
                &hash[..],
            ],
        )?;
        tx.commit()?;
        Ok(Anchor { seq, hash })
    }

    /// The head of the chain, for the day's printed ledger; `None` while the log is empty.
    ///
    /// This reads the last entry without checking the chain; print it after [`Self::verify`].
    pub fn head(&self) -> Result<Option<Anchor>, AuditError> {
        verify::read_head(&self.conn)
    }

    /// Checks the whole chain (see [`super::verify`]).
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        verify::verify(&self.conn)
    }

    /// Up to `limit` entries from sequence number `from` on, oldest first.
    pub fn entries(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, AuditError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, operator, action, visit, outcome, error_code, details, hash
             FROM audit_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        )?;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![from, limit], |r| {
            let seq: i64 = r.get(0)?;
            let hash: Vec<u8> = r.get(8)?;
            Ok((
                seq,
                hash,
                StoredEntry {
                    seq: 0,
                    at: r.get(1)?,
                    operator: r.get(2)?,
                    action: r.get(3)?,
                    visit: r.get(4)?,
                    outcome: r.get(5)?,
                    error_code: r.get(6)?,
                    details: r.get(7)?,
                    hash: [0; 32],
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, hash, mut entry) = row?;
            entry.seq = u64::try_from(seq).map_err(|_| broken_head(seq))?;
            entry.hash = hash.try_into().map_err(|_| broken_head(seq))?;
            out.push(entry);
        }
        Ok(out)
    }

    /// The connection, for callers that keep other tables in the same file.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn broken_head(seq: i64) -> AuditError {
    AuditError::Tampered(super::Break {
        seq: u64::try_from(seq).unwrap_or(0),
        reason: super::BreakReason::Malformed("sequence number or hash"),
    })
}
