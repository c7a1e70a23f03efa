//! The ledger's SQLite store (WAL mode): append-only entries and day closes.
//!
//! What it is: [`Ledger`], which records payments exactly once per visit (a retry after a
//! crash returns the entry already recorded), refunds as new entries, closes days and sums
//! them. Append-only is enforced by the database itself: triggers abort any `UPDATE` or
//! `DELETE` of `entries` and `day_closes`, whoever tries.
//!
//! What it is not: the receipt-job queue lives beside it (`print::jobs`) in the same file
//! but is not part of the books.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::{
    kind_code, kind_from_code, Approval, CloseRequest, DayClose, DayTotals, Entry, EntryId,
    EntryKind, LedgerError, Method, Payment, Refund, Settlement, Sums, JST,
};
use crate::rules::fee::{VisitKind, Yen};

/// The schema this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// The file name of the kiosk's database inside its data directory.
pub const DB_FILE_NAME: &str = "kiosk.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledger_entries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    business_day  TEXT    NOT NULL,
    at            TEXT    NOT NULL,
    visit_id      TEXT    NOT NULL,
    visit_kind    TEXT    NOT NULL,
    entry_kind    TEXT    NOT NULL CHECK (entry_kind IN ('payment', 'refund')),
    refund_of     INTEGER REFERENCES ledger_entries(id),
    fee_due       INTEGER NOT NULL CHECK (fee_due >= 0),
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    method        TEXT    NOT NULL CHECK (method IN ('cash', 'cashless', 'free', 'waived')),
    supervisor_id TEXT,
    reason        TEXT,
    operator_id   TEXT    NOT NULL,
    audit_ref     TEXT,
    CHECK ((entry_kind = 'refund') = (refund_of IS NOT NULL))
);
-- The idempotency key: one payment per visit, one refund per payment.
CREATE UNIQUE INDEX IF NOT EXISTS ledger_one_payment_per_visit
    ON ledger_entries(visit_id) WHERE entry_kind = 'payment';
CREATE UNIQUE INDEX IF NOT EXISTS ledger_one_refund_per_payment
    ON ledger_entries(refund_of) WHERE refund_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_by_day ON ledger_entries(business_day, id);
CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update BEFORE UPDATE ON ledger_entries
    BEGIN SELECT RAISE(ABORT, 'ledger entries are never edited: record a refund'); END;
CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete BEFORE DELETE ON ledger_entries
    BEGIN SELECT RAISE(ABORT, 'ledger entries are never deleted: record a refund'); END;

CREATE TABLE IF NOT EXISTS ledger_day_closes (
    business_day  TEXT    PRIMARY KEY,
    at            TEXT    NOT NULL,
    expected_cash INTEGER NOT NULL,
    counted_cash  INTEGER NOT NULL CHECK (counted_cash >= 0),
    variance      INTEGER NOT NULL,
    supervisor_id TEXT,
    reason        TEXT,
    operator_id   TEXT    NOT NULL,
    CHECK (variance = 0 OR (supervisor_id IS NOT NULL AND reason IS NOT NULL))
);
CREATE TRIGGER IF NOT EXISTS ledger_closes_no_update BEFORE UPDATE ON ledger_day_closes
    BEGIN SELECT RAISE(ABORT, 'a closed day is never reopened'); END;
CREATE TRIGGER IF NOT EXISTS ledger_closes_no_delete BEFORE DELETE ON ledger_day_closes
    BEGIN SELECT RAISE(ABORT, 'a closed day is never reopened'); END;
";

const ENTRY_COLUMNS: &str = "id, business_day, at, visit_id, visit_kind, entry_kind, refund_of, \
     fee_due, amount, method, supervisor_id, reason, operator_id, audit_ref";

/// The ledger database.
pub struct Ledger {
    conn: Connection,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.conn.path()).finish()
    }
}

/// `YYYY-MM-DD`, the form of a business day in the database, the CSV and the CLI.
pub fn format_day(day: Date) -> String {
    // Formatting a Date with a date-only description cannot fail.
    day.format(format_description!("[year]-[month]-[day]")).unwrap_or_default()
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

fn format_at(at: OffsetDateTime) -> String {
    at.to_offset(JST).format(&Rfc3339).unwrap_or_default()
}

impl Ledger {
    /// Opens (creating if needed) the ledger in the database file at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "wal")?;
        // FULL: a payment acknowledged to the cashier survives a power cut.
        conn.pragma_update(None, "synchronous", "full")?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(LedgerError::SchemaTooNew { found, supported: SCHEMA_VERSION });
        }
        conn.execute_batch(SCHEMA)?;
        if found < SCHEMA_VERSION {
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(Ledger { conn })
    }

    /// Opens `DIR/kiosk.db`.
    pub fn open_in(data_dir: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open(&data_dir.join(DB_FILE_NAME))
    }

    /// The connection, for modules that keep their own tables in the same file.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Records a visit's payment, exactly once.
    ///
    /// If the visit already has a payment, that entry is returned unchanged when it is the
    /// same payment (a retry after a crash or a lost reply), and
    /// [`LedgerError::ConflictingPayment`] otherwise.
    pub fn record_payment(&mut self, p: &Payment) -> Result<Entry, LedgerError> {
        let (amount, approval) = check_payment(p)?;
        // IMMEDIATE: take the write lock before reading, so two retries cannot both
        // find no entry and both insert (the unique index would stop the second anyway).
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(existing) = payment_of(&tx, &p.visit_id)? {
            let same = existing.visit_kind == p.visit_kind
                && existing.fee_due == p.fee_due
                && existing.amount == amount
                && existing.method == p.settlement.method()
                && existing.approval.as_ref() == approval;
            return if same {
                Ok(existing)
            } else {
                Err(LedgerError::ConflictingPayment { existing: existing.id })
            };
        }
        let day = open_day_for(&tx, p.at)?;
        tx.execute(
            "INSERT INTO ledger_entries (business_day, at, visit_id, visit_kind, entry_kind,
                 refund_of, fee_due, amount, method, supervisor_id, reason, operator_id, audit_ref)
             VALUES (?1, ?2, ?3, ?4, 'payment', NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                format_day(day),
                format_at(p.at),
                p.visit_id,
                kind_code(p.visit_kind),
                p.fee_due.0,
                amount.0,
                p.settlement.method().code(),
                approval.map(|a| &a.supervisor_id),
                approval.map(|a| &a.reason),
                p.operator_id,
                p.audit_ref,
            ],
        )?;
        let id = EntryId(tx.last_insert_rowid());
        let entry = entry_by_id(&tx, id)?.ok_or(LedgerError::Corrupt("inserted entry"))?;
        tx.commit()?;
        Ok(entry)
    }

    /// Records the refund of a payment as a new entry. Idempotent like
    /// [`record_payment`](Self::record_payment): a second refund of the same payment returns
    /// the first.
    pub fn record_refund(&mut self, r: &Refund) -> Result<Entry, LedgerError> {
        if r.approval.supervisor_id.trim().is_empty() || r.approval.reason.trim().is_empty() {
            return Err(LedgerError::Invalid("a refund needs a supervisor and a reason"));
        }
        if r.operator_id.trim().is_empty() {
            return Err(LedgerError::Invalid("operator id is empty"));
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let original = entry_by_id(&tx, r.of)?.ok_or(LedgerError::NotRefundable(r.of))?;
        let refundable = original.kind == EntryKind::Payment
            && matches!(original.method, Method::Cash | Method::Cashless)
            && original.amount.0 > 0;
        if !refundable {
            return Err(LedgerError::NotRefundable(r.of));
        }
        let existing: Option<i64> = tx
            .query_row("SELECT id FROM ledger_entries WHERE refund_of = ?1", [r.of.0], |row| {
                row.get(0)
            })
            .optional()?;
        if let Some(id) = existing {
            let entry = entry_by_id(&tx, EntryId(id))?.ok_or(LedgerError::Corrupt("refund"))?;
            return Ok(entry);
        }
        let day = open_day_for(&tx, r.at)?;
        tx.execute(
            "INSERT INTO ledger_entries (business_day, at, visit_id, visit_kind, entry_kind,
                 refund_of, fee_due, amount, method, supervisor_id, reason, operator_id, audit_ref)
             VALUES (?1, ?2, ?3, ?4, 'refund', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                format_day(day),
                format_at(r.at),
                original.visit_id,
                kind_code(original.visit_kind),
                r.of.0,
                original.fee_due.0,
                original.amount.0,
                original.method.code(),
                r.approval.supervisor_id,
                r.approval.reason,
                r.operator_id,
                r.audit_ref,
            ],
        )?;
        let id = EntryId(tx.last_insert_rowid());
        let entry = entry_by_id(&tx, id)?.ok_or(LedgerError::Corrupt("inserted refund"))?;
        tx.commit()?;
        Ok(entry)
    }

    /// The payment recorded for a visit, if any.
    pub fn payment_for_visit(&self, visit_id: &str) -> Result<Option<Entry>, LedgerError> {
        payment_of(&self.conn, visit_id)
    }

    /// One entry by id.
    pub fn entry(&self, id: EntryId) -> Result<Option<Entry>, LedgerError> {
        entry_by_id(&self.conn, id)
    }

    /// A business day's entries in the order they were recorded.
    pub fn entries(&self, day: Date) -> Result<Vec<Entry>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE business_day = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([format_day(day)], read_entry)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// The day's totals by visit kind and by method, summed by the database.
    pub fn totals(&self, day: Date) -> Result<DayTotals, LedgerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT visit_kind, method,
                    SUM(entry_kind = 'payment'), SUM(entry_kind = 'refund'),
                    COALESCE(SUM(CASE WHEN entry_kind = 'payment' THEN amount END), 0),
                    COALESCE(SUM(CASE WHEN entry_kind = 'refund' THEN amount END), 0),
                    COALESCE(SUM(CASE WHEN method = 'waived' THEN fee_due END), 0)
             FROM ledger_entries WHERE business_day = ?1
             GROUP BY visit_kind, method",
        )?;
        let mut by_kind: Vec<(VisitKind, Sums)> =
            VisitKind::ALL.into_iter().map(|k| (k, Sums::default())).collect();
        let mut by_method: Vec<(Method, Sums)> =
            Method::ALL.into_iter().map(|m| (m, Sums::default())).collect();
        let mut all = Sums::default();
        let mut rows = stmt.query([format_day(day)])?;
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            let method: String = row.get(1)?;
            let kind = kind_from_code(&kind).ok_or(LedgerError::Corrupt("visit_kind"))?;
            let method = Method::from_code(&method).ok_or(LedgerError::Corrupt("method"))?;
            let s = Sums {
                payments: row.get::<_, i64>(2)? as u64,
                refunds: row.get::<_, i64>(3)? as u64,
                collected: row.get(4)?,
                refunded: row.get(5)?,
                waived: row.get(6)?,
            };
            for target in [
                by_kind.iter_mut().find(|(k, _)| *k == kind).map(|(_, s)| s),
                by_method.iter_mut().find(|(m, _)| *m == method).map(|(_, s)| s),
                Some(&mut all),
            ]
            .into_iter()
            .flatten()
            {
                add(target, &s);
            }
        }
        let expected_cash =
            by_method.iter().find(|(m, _)| *m == Method::Cash).map_or(0, |(_, s)| s.net());
        Ok(DayTotals { day, by_kind, by_method, all, expected_cash })
    }

    /// The close of a day, if it was closed.
    pub fn day_close(&self, day: Date) -> Result<Option<DayClose>, LedgerError> {
        self.conn
            .query_row(
                "SELECT business_day, at, expected_cash, counted_cash, variance, supervisor_id,
                        reason, operator_id
                 FROM ledger_day_closes WHERE business_day = ?1",
                [format_day(day)],
                |row| {
                    Ok((
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, Option<String>>(5)?,
                        row.get::<_, Option<String>>(6)?,
                        row.get::<_, String>(7)?,
                    ))
                },
            )
            .optional()?
            .map(|(at, expected_cash, counted_cash, variance, sup, reason, operator_id)| {
                let at = OffsetDateTime::parse(&at, &Rfc3339)
                    .map_err(|_| LedgerError::Corrupt("day_closes.at"))?;
                let variance_approval = match (sup, reason) {
                    (Some(supervisor_id), Some(reason)) => Some(Approval { supervisor_id, reason }),
                    _ => None,
                };
                Ok(DayClose {
                    day,
                    at,
                    expected_cash,
                    counted_cash,
                    variance,
                    variance_approval,
                    operator_id,
                })
            })
            .transpose()
    }

    /// Closes a day: compares the counted cash with the expected cash, records the
    /// variance (a non-zero variance needs a supervisor and a reason) and locks the day.
    /// Entries recorded afterwards go to the next open day. Closing again with the same
    /// count returns the first close.
    pub fn close_day(&mut self, req: &CloseRequest) -> Result<DayClose, LedgerError> {
        if req.operator_id.trim().is_empty() {
            return Err(LedgerError::Invalid("operator id is empty"));
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let expected: i64 = tx.query_row(
            "SELECT COALESCE(SUM(CASE entry_kind WHEN 'payment' THEN amount ELSE -amount END), 0)
             FROM ledger_entries WHERE business_day = ?1 AND method = 'cash'",
            [format_day(req.day)],
            |row| row.get(0),
        )?;
        let counted = i64::from(req.counted_cash.0);
        let variance = counted - expected;
        let already: Option<i64> = tx
            .query_row(
                "SELECT counted_cash FROM ledger_day_closes WHERE business_day = ?1",
                [format_day(req.day)],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(c) = already {
            drop(tx);
            if c == counted {
                return self.day_close(req.day)?.ok_or(LedgerError::Corrupt("day_closes"));
            }
            return Err(LedgerError::AlreadyClosed(req.day));
        }
        let approval = req
            .variance_approval
            .as_ref()
            .filter(|a| !a.supervisor_id.trim().is_empty() && !a.reason.trim().is_empty());
        if variance != 0 && approval.is_none() {
            return Err(LedgerError::VarianceUnexplained { variance });
        }
        tx.execute(
            "INSERT INTO ledger_day_closes (business_day, at, expected_cash, counted_cash,
                 variance, supervisor_id, reason, operator_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                format_day(req.day),
                format_at(req.at),
                expected,
                counted,
                variance,
                approval.map(|a| &a.supervisor_id),
                approval.map(|a| &a.reason),
                req.operator_id,
            ],
        )?;
        tx.commit()?;
        self.day_close(req.day)?.ok_or(LedgerError::Corrupt("day_closes"))
    }
}

fn add(target: &mut Sums, s: &Sums) {
    target.payments += s.payments;
    target.refunds += s.refunds;
    target.collected += s.collected;
    target.refunded += s.refunded;
    target.waived += s.waived;
}

/// Checks a payment for consistency; returns the amount taken and the approval to store.
fn check_payment(p: &Payment) -> Result<(Yen, Option<&Approval>), LedgerError> {
    if p.visit_id.trim().is_empty() {
        return Err(LedgerError::Invalid("visit id is empty"));
    }
    if p.operator_id.trim().is_empty() {
        return Err(LedgerError::Invalid("operator id is empty"));
    }
    match &p.settlement {
        Settlement::Cash | Settlement::Cashless if p.fee_due.is_free() => {
            Err(LedgerError::Invalid("nothing to pay on a free visit: use Settlement::Free"))
        }
        Settlement::Cash | Settlement::Cashless => Ok((p.fee_due, None)),
        Settlement::Free if !p.fee_due.is_free() => {
            Err(LedgerError::Invalid("a fee is due: pay it or have it waived"))
        }
        Settlement::Free => Ok((Yen::ZERO, None)),
        Settlement::Waived(_) if p.fee_due.is_free() => {
            Err(LedgerError::Invalid("nothing to waive on a free visit"))
        }
        Settlement::Waived(a)
            if a.supervisor_id.trim().is_empty() || a.reason.trim().is_empty() =>
        {
            Err(LedgerError::Invalid("a waiver needs a supervisor and a reason"))
        }
        Settlement::Waived(a) => Ok((Yen::ZERO, Some(a))),
    }
}

/// The first day on or after the JST date of `at` that is not closed.
fn open_day_for(conn: &Connection, at: OffsetDateTime) -> Result<Date, LedgerError> {
    let mut day = at.to_offset(JST).date();
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM ledger_day_closes WHERE business_day = ?1")?;
    while stmt.exists([format_day(day)])? {
        day = day.next_day().ok_or(LedgerError::Invalid("date out of range"))?;
    }
    Ok(day)
}

fn payment_of(conn: &Connection, visit_id: &str) -> Result<Option<Entry>, LedgerError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger_entries
         WHERE visit_id = ?1 AND entry_kind = 'payment'"
    ))?;
    stmt.query_row([visit_id], read_entry).optional()?.transpose()
}

fn entry_by_id(conn: &Connection, id: EntryId) -> Result<Option<Entry>, LedgerError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE id = ?1"))?;
    stmt.query_row([id.0], read_entry).optional()?.transpose()
}

/// Reads one row; the outer error is SQLite's, the inner one a value we cannot parse.
fn read_entry(row: &Row<'_>) -> rusqlite::Result<Result<Entry, LedgerError>> {
    let day: String = row.get(1)?;
    let at: String = row.get(2)?;
    let kind: String = row.get(4)?;
    let entry_kind: String = row.get(5)?;
    let refund_of: Option<i64> = row.get(6)?;
    let method: String = row.get(9)?;
    let supervisor_id: Option<String> = row.get(10)?;
    let reason: Option<String> = row.get(11)?;
    let fee_due: u32 = row.get(7)?;
    let amount: u32 = row.get(8)?;
    let build = || -> Result<Entry, LedgerError> {
        Ok(Entry {
            id: EntryId(row.get(0)?),
            business_day: parse_day(&day).ok_or(LedgerError::Corrupt("business_day"))?,
            at: OffsetDateTime::parse(&at, &Rfc3339).map_err(|_| LedgerError::Corrupt("at"))?,
            visit_id: row.get(3)?,
            visit_kind: kind_from_code(&kind).ok_or(LedgerError::Corrupt("visit_kind"))?,
            kind: match (entry_kind.as_str(), refund_of) {
                ("payment", None) => EntryKind::Payment,
                ("refund", Some(of)) => EntryKind::Refund { of: EntryId(of) },
                _ => return Err(LedgerError::Corrupt("entry_kind")),
            },
            fee_due: Yen(fee_due),
            amount: Yen(amount),
            method: Method::from_code(&method).ok_or(LedgerError::Corrupt("method"))?,
            approval: match (supervisor_id, reason) {
                (Some(supervisor_id), Some(reason)) => Some(Approval { supervisor_id, reason }),
                _ => None,
            },
            operator_id: row.get(12)?,
            audit_ref: row.get(13)?,
        })
    };
    Ok(build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn pay(visit: &str, kind: VisitKind, fee: u32, s: Settlement, at: OffsetDateTime) -> Payment {
        Payment {
            visit_id: visit.into(),
            visit_kind: kind,
            fee_due: Yen(fee),
            settlement: s,
            operator_id: "op-7".into(),
            at,
            audit_ref: Some(format!("audit-{visit}")),
        }
    }

    fn approval() -> Approval {
        Approval { supervisor_id: "sv-1".into(), reason: "生活保護受給者".into() }
    }

    fn open() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open_in(dir.path()).unwrap();
        (dir, l)
    }

    #[test]
    fn payment_is_recorded_once_and_retry_returns_it() {
        let (_d, mut l) = open();
        let p = pay(
            "V1",
            VisitKind::ReissueAfterLoss,
            200,
            Settlement::Cash,
            datetime!(2026-11-20 10:00 +9),
        );
        let a = l.record_payment(&p).unwrap();
        let b = l.record_payment(&p).unwrap();
        assert_eq!(a, b);
        assert_eq!(l.entries(a.business_day).unwrap().len(), 1);
        assert_eq!(a.business_day, time::macros::date!(2026 - 11 - 20));
        assert_eq!(a.audit_ref.as_deref(), Some("audit-V1"));
        let mut other = p.clone();
        other.settlement = Settlement::Cashless;
        assert!(matches!(
            l.record_payment(&other),
            Err(LedgerError::ConflictingPayment { existing }) if existing == a.id
        ));
    }

    #[test]
    fn business_day_is_the_jst_date() {
        let (_d, mut l) = open();
        // 23:30 UTC on the 19th is 08:30 JST on the 20th.
        let p = pay("V1", VisitKind::Renewal, 0, Settlement::Free, datetime!(2026-11-19 23:30 UTC));
        let e = l.record_payment(&p).unwrap();
        assert_eq!(e.business_day, time::macros::date!(2026 - 11 - 20));
    }

    #[test]
    fn inconsistent_payments_are_refused() {
        let (_d, mut l) = open();
        let at = datetime!(2026-11-20 10:00 +9);
        let cases = [
            pay("A", VisitKind::Renewal, 0, Settlement::Cash, at),
            pay("B", VisitKind::ReissueAfterLoss, 200, Settlement::Free, at),
            pay("C", VisitKind::Renewal, 0, Settlement::Waived(approval()), at),
            pay(
                "D",
                VisitKind::ReissueAfterLoss,
                200,
                Settlement::Waived(Approval { supervisor_id: "sv".into(), reason: " ".into() }),
                at,
            ),
            pay("", VisitKind::ReissueAfterLoss, 200, Settlement::Cash, at),
        ];
        for p in cases {
            assert!(matches!(l.record_payment(&p), Err(LedgerError::Invalid(_))), "{p:?}");
        }
    }

    #[test]
    fn database_refuses_edits_and_deletes() {
        let (_d, mut l) = open();
        let at = datetime!(2026-11-20 10:00 +9);
        l.record_payment(&pay("V1", VisitKind::ReissueAfterLoss, 200, Settlement::Cash, at))
            .unwrap();
        let upd = l.conn.execute("UPDATE ledger_entries SET amount = 0", []);
        assert!(upd.unwrap_err().to_string().contains("never edited"));
        let del = l.conn.execute("DELETE FROM ledger_entries", []);
        assert!(del.unwrap_err().to_string().contains("never deleted"));
        l.close_day(&CloseRequest {
            day: at.date(),
            counted_cash: Yen(200),
            operator_id: "op".into(),
            variance_approval: None,
            at,
        })
        .unwrap();
        assert!(l.conn.execute("DELETE FROM ledger_day_closes", []).is_err());
        assert!(l.conn.execute("UPDATE ledger_day_closes SET counted_cash = 1", []).is_err());
        assert_eq!(l.entries(at.date()).unwrap()[0].amount, Yen(200));
    }

    #[test]
    fn refund_is_a_new_entry_and_only_once() {
        let (_d, mut l) = open();
        let at = datetime!(2026-11-20 10:00 +9);
        let paid = l
            .record_payment(&pay("V1", VisitKind::ReissueAfterLoss, 200, Settlement::Cash, at))
            .unwrap();
        let r = Refund {
            of: paid.id,
            approval: approval(),
            operator_id: "op-7".into(),
            at: datetime!(2026-11-20 11:00 +9),
            audit_ref: None,
        };
        let refund = l.record_refund(&r).unwrap();
        assert_eq!(refund.kind, EntryKind::Refund { of: paid.id });
        assert_eq!(refund.signed_amount(), -200);
        assert_eq!(l.record_refund(&r).unwrap(), refund);
        assert_eq!(l.entry(paid.id).unwrap().unwrap(), paid, "original untouched");
        let free =
            l.record_payment(&pay("V2", VisitKind::Renewal, 0, Settlement::Free, at)).unwrap();
        assert!(matches!(
            l.record_refund(&Refund { of: free.id, ..r.clone() }),
            Err(LedgerError::NotRefundable(_))
        ));
        assert!(matches!(
            l.record_refund(&Refund { of: refund.id, ..r.clone() }),
            Err(LedgerError::NotRefundable(_))
        ));
        let t = l.totals(at.date()).unwrap();
        assert_eq!((t.all.collected, t.all.refunded, t.expected_cash), (200, 200, 0));
    }

    #[test]
    fn close_of_day_locks_and_moves_later_entries() {
        let (_d, mut l) = open();
        let at = datetime!(2026-11-20 10:00 +9);
        let day = at.date();
        for (i, s) in
            [Settlement::Cash, Settlement::Cash, Settlement::Cashless].into_iter().enumerate()
        {
            l.record_payment(&pay(&format!("V{i}"), VisitKind::ReissueAfterLoss, 200, s, at))
                .unwrap();
        }
        let close = |counted, approval| CloseRequest {
            day,
            counted_cash: Yen(counted),
            operator_id: "op-7".into(),
            variance_approval: approval,
            at: datetime!(2026-11-20 17:15 +9),
        };
        assert!(matches!(
            l.close_day(&close(300, None)),
            Err(LedgerError::VarianceUnexplained { variance: -100 })
        ));
        let c = l
            .close_day(&close(
                300,
                Some(Approval { supervisor_id: "sv-1".into(), reason: "釣銭誤り".into() }),
            ))
            .unwrap();
        assert_eq!((c.expected_cash, c.counted_cash, c.variance), (400, 300, -100));
        assert_eq!(l.day_close(day).unwrap(), Some(c.clone()));
        assert!(matches!(l.close_day(&close(400, None)), Err(LedgerError::AlreadyClosed(_))));
        // A late payment the same afternoon goes to the next day.
        let late = l
            .record_payment(&pay("V9", VisitKind::ReissueAfterLoss, 200, Settlement::Cash, at))
            .unwrap();
        assert_eq!(late.business_day, day.next_day().unwrap());
        assert_eq!(l.entries(day).unwrap().len(), 3);
    }

    #[test]
    fn totals_split_by_kind_and_method() {
        let (_d, mut l) = open();
        let at = datetime!(2026-11-20 10:00 +9);
        l.record_payment(&pay("A", VisitKind::ReissueAfterLoss, 200, Settlement::Cash, at))
            .unwrap();
        l.record_payment(&pay("B", VisitKind::ReissueAfterLoss, 200, Settlement::Cashless, at))
            .unwrap();
        l.record_payment(&pay(
            "C",
            VisitKind::ReissueAfterLoss,
            200,
            Settlement::Waived(approval()),
            at,
        ))
        .unwrap();
        l.record_payment(&pay("D", VisitKind::NewIssuance, 0, Settlement::Free, at)).unwrap();
        let t = l.totals(at.date()).unwrap();
        let loss = t.by_kind.iter().find(|(k, _)| *k == VisitKind::ReissueAfterLoss).unwrap().1;
        assert_eq!((loss.payments, loss.collected, loss.waived), (3, 400, 200));
        let cashless = t.by_method.iter().find(|(m, _)| *m == Method::Cashless).unwrap().1;
        assert_eq!(cashless.collected, 200);
        assert_eq!((t.all.payments, t.all.collected, t.expected_cash), (4, 400, 200));
    }

    #[test]
    fn debug_leaves_the_reason_out() {
        let text = format!("{:?}", Settlement::Waived(approval()));
        assert!(text.contains("sv-1") && !text.contains("生活保護"), "{text}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE_NAME);
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(Ledger::open(&path), Err(LedgerError::SchemaTooNew { found: 99, .. })));
    }
}
