//! Verification of the audit chain, and the anchor printed on the day's ledger.
//!
//! [`verify`] reads every row as raw SQLite values, so a row whose types were changed behind
//! the STRICT table's back is reported rather than skipped, and an action name this kiosk
//! does not know (written by a newer one) still verifies: only the stored bytes are hashed.
//! Checks, per row in sequence order: the number is the next one, the stored hash is the
//! hash of the row's fields, `prev_hash` is the previous row's hash, and the fields are
//! well-formed. The first row that fails is named. Then the append-only triggers must be
//! present.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use super::chain::{self, EntryFields, GENESIS};
use super::store::GUARDS;
use super::{parse_at, AuditError};

/// A point in the chain: an entry's sequence number and hash. Printed on the day's ledger
/// as `#1234 sha256:<64 hex digits>` and parsed back from that form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Sequence number of the entry.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} sha256:{}", self.seq, hex::encode(self.hash))
    }
}

/// The text is not an anchor in the printed form `#1234 sha256:<64 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an audit anchor (expected `#<seq> sha256:<64 hex digits>`)")]
pub struct ParseAnchorError;

impl FromStr for Anchor {
    type Err = ParseAnchorError;

    fn from_str(s: &str) -> Result<Anchor, ParseAnchorError> {
        let (seq, hash) = s.trim().split_once(' ').ok_or(ParseAnchorError)?;
        let seq: u64 = seq
            .strip_prefix('#')
            .and_then(|n| n.parse().ok())
            .filter(|&n| n >= 1)
            .ok_or(ParseAnchorError)?;
        let hex_hash = hash.trim().strip_prefix("sha256:").ok_or(ParseAnchorError)?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex_hash, &mut hash).map_err(|_| ParseAnchorError)?;
        Ok(Anchor { seq, hash })
    }
}

/// The first bad entry of a broken chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Its sequence number (for a removed entry: the number that is missing).
    pub seq: u64,
    /// What is wrong with it.
    pub reason: BreakReason,
}

/// What is wrong with the first bad entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakReason {
    /// The entry is missing: the next row has a higher number (a row was deleted, or the
    /// numbering was edited).
    Missing {
        /// The sequence number found in its place.
        found: u64,
    },
    /// A row carries a number that was already used or is out of order (rows inserted
    /// with a table rebuilt without its key).
    OutOfOrder,
    /// The row's fields do not hash to its stored hash: a field was changed, the row was
    /// moved to another place, or a row was forged.
    HashMismatch,
    /// The row's `prev_hash` is not the previous row's hash: a row was inserted or removed
    /// before it, or the chain was rebuilt from here on.
    BrokenLink,
    /// A field has the wrong type or form (named).
    Malformed(&'static str),
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakReason::Missing { found } => {
                write!(f, "entry missing (the next one found is #{found})")
            }
            BreakReason::OutOfOrder => f.write_str("sequence number repeated or out of order"),
            BreakReason::HashMismatch => {
                f.write_str("contents do not match the entry's hash (changed, moved or forged)")
            }
            BreakReason::BrokenLink => {
                f.write_str("prev_hash is not the previous entry's hash (entries inserted, removed or rewritten)")
            }
            BreakReason::Malformed(what) => write!(f, "malformed {what}"),
        }
    }
}

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of entries (all verified).
    pub entries: u64,
    /// The head of the chain; `None` for an empty log.
    pub head: Option<Anchor>,
    /// Time of the first entry.
    pub first_at: Option<String>,
    /// Time of the last entry.
    pub last_at: Option<String>,
}

impl VerifyReport {
    /// The exit status for `jpki-kiosk audit verify` after a successful check: 0.
    pub fn exit_code(&self) -> i32 {
        0
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.head, &self.first_at, &self.last_at) {
            (Some(head), Some(first), Some(last)) => write!(
                f,
                "audit log OK: {} entries from {first} to {last}; head {head}",
                self.entries
            ),
            _ => f.write_str("audit log OK: no entries yet"),
        }
    }
}

/// Opens the database file at `path` read-only and verifies its audit log.
///
/// A missing file is an error, never an empty log. See [`verify_command`] for the CLI.
pub fn verify_file(path: &Path) -> Result<VerifyReport, AuditError> {
    verify(&open_read_only(path)?)
}

/// [`verify_file`], then [`verify_anchored`] against a printed anchor.
pub fn verify_file_anchored(path: &Path, anchor: &Anchor) -> Result<VerifyReport, AuditError> {
    verify_anchored(&open_read_only(path)?, anchor)
}

fn open_read_only(path: &Path) -> Result<Connection, AuditError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// What `jpki-kiosk audit verify [--data DIR] [--anchor '#N sha256:…']` prints and the
/// status it exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReport {
    /// One line for the operator: the report, or what is wrong and where.
    pub text: String,
    /// 0: the log verified; 1: tampering found (first bad entry named in `text`);
    /// 2: the log could not be checked (missing file, unreadable database).
    pub exit_code: i32,
}

/// Verifies the kiosk database in `data_dir` (the file [`super::DEFAULT_FILE_NAME`]),
/// against `anchor` when one is given, and says so in one line with an exit status.
pub fn verify_command(data_dir: &Path, anchor: Option<&Anchor>) -> CommandReport {
    let path = data_dir.join(super::DEFAULT_FILE_NAME);
    let result = match anchor {
        None => verify_file(&path),
        Some(a) => verify_file_anchored(&path, a),
    };
    match result {
        Ok(report) => CommandReport { text: report.to_string(), exit_code: report.exit_code() },
        Err(e) => CommandReport {
            text: format!("audit log of {}: {e}", path.display()),
            exit_code: e.exit_code(),
        },
    }
}

/// Verifies the chain, then that the entry at `anchor` (from a printed ledger) still has
/// the printed hash. Catches a chain rebuilt or cut short after the anchor was printed.
pub fn verify_anchored(conn: &Connection, anchor: &Anchor) -> Result<VerifyReport, AuditError> {
    let report = verify(conn)?;
    if anchor.seq > report.entries {
        return Err(AuditError::Truncated { seq: anchor.seq, entries: report.entries });
    }
    let seq =
        i64::try_from(anchor.seq).map_err(|_| AuditError::AnchorMismatch { seq: anchor.seq })?;
    let hash: Vec<u8> =
        conn.query_row("SELECT hash FROM audit_log WHERE seq = ?1", [seq], |r| r.get(0))?;
    if hash != anchor.hash {
        return Err(AuditError::AnchorMismatch { seq: anchor.seq });
    }
    Ok(report)
}

/// Verifies the whole chain through `conn` and names the first bad entry.
pub fn verify(conn: &Connection) -> Result<VerifyReport, AuditError> {
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'",
        [],
        |r| r.get(0),
    )?;
    if tables == 0 {
        return Err(AuditError::NotAnAuditLog);
    }
    let mut stmt = conn.prepare(
        "SELECT seq, at, operator, action, visit, outcome, error_code, details, prev_hash, hash
         FROM audit_log ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut expected: u64 = 1;
    let mut prev = GENESIS;
    let mut first_at = None;
    let mut last_at = None;
    while let Some(row) = rows.next()? {
        let at = check_row(row, expected, &prev).map_err(AuditError::Tampered)?;
        prev = blob32(row, 9).unwrap_or(GENESIS);
        if first_at.is_none() {
            first_at = Some(at.clone());
        }
        last_at = Some(at);
        expected += 1;
    }
    let entries = expected - 1;
    check_guards(conn)?;
    Ok(VerifyReport {
        entries,
        head: (entries > 0).then_some(Anchor { seq: entries, hash: prev }),
        first_at,
        last_at,
    })
}

/// Checks one row against its expected number and the previous hash; returns its time.
fn check_row(row: &Row<'_>, expected: u64, prev: &[u8; 32]) -> Result<String, Break> {
    let bad = |reason| Break { seq: expected, reason };
    let seq = match row.get_ref(0) {
        Ok(ValueRef::Integer(n)) => u64::try_from(n).map_err(|_| bad(BreakReason::OutOfOrder))?,
        _ => return Err(bad(BreakReason::Malformed("sequence number"))),
    };
    if seq > expected {
        return Err(bad(BreakReason::Missing { found: seq }));
    }
    if seq < expected {
        return Err(Break { seq, reason: BreakReason::OutOfOrder });
    }
    let at = text(row, 1).ok_or(bad(BreakReason::Malformed("time")))?;
    let operator = opt_text(row, 2).ok_or(bad(BreakReason::Malformed("operator")))?;
    let action = text(row, 3).ok_or(bad(BreakReason::Malformed("action")))?;
    let visit = opt_text(row, 4).ok_or(bad(BreakReason::Malformed("visit")))?;
    let outcome = text(row, 5).ok_or(bad(BreakReason::Malformed("outcome")))?;
    let error_code = opt_text(row, 6).ok_or(bad(BreakReason::Malformed("error code")))?;
    let details = text(row, 7).ok_or(bad(BreakReason::Malformed("details")))?;
    let prev_hash = blob32(row, 8).ok_or(bad(BreakReason::Malformed("prev_hash")))?;
    let hash = blob32(row, 9).ok_or(bad(BreakReason::Malformed("hash")))?;
    let fields = EntryFields {
        seq,
        at,
        operator,
        action,
        visit,
        outcome,
        error_code,
        details,
        prev_hash: &prev_hash,
    };
    if chain::hash(&fields) != hash {
        return Err(bad(BreakReason::HashMismatch));
    }
    if &prev_hash != prev {
        return Err(bad(BreakReason::BrokenLink));
    }
    // The hash holds, so these were written like this; still refuse nonsense.
    if parse_at(at).is_none() {
        return Err(bad(BreakReason::Malformed("time")));
    }
    match (outcome, error_code) {
        ("ok", None) | ("failed", Some(_)) => {}
        _ => return Err(bad(BreakReason::Malformed("outcome"))),
    }
    if !matches!(
        serde_json::from_str::<serde_json::Value>(details),
        Ok(serde_json::Value::Object(_))
    ) {
        return Err(bad(BreakReason::Malformed("details")));
    }
    Ok(at.to_owned())
}

fn text<'r>(row: &'r Row<'_>, i: usize) -> Option<&'r str> {
    match row.get_ref(i).ok()? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    }
}

/// `Some(None)` for NULL, `Some(Some(text))` for text, `None` for any other type.
fn opt_text<'r>(row: &'r Row<'_>, i: usize) -> Option<Option<&'r str>> {
    match row.get_ref(i).ok()? {
        ValueRef::Null => Some(None),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(Some),
        _ => None,
    }
}

fn blob32(row: &Row<'_>, i: usize) -> Option<[u8; 32]> {
    match row.get_ref(i).ok()? {
        ValueRef::Blob(b) => b.try_into().ok(),
        _ => None,
    }
}

/// Each guard must exist and still abort (a trigger of the same name that does nothing
/// counts as missing).
pub(crate) fn check_guards(conn: &Connection) -> Result<(), AuditError> {
    let mut missing = Vec::new();
    for name in GUARDS {
        let sql: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master
                 WHERE type = 'trigger' AND name = ?1 AND tbl_name = 'audit_log'",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if !sql.is_some_and(|s| s.contains("RAISE(ABORT")) {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AuditError::GuardsMissing { missing })
    }
}

/// The last entry's number and hash, unchecked.
pub(crate) fn read_head(conn: &Connection) -> Result<Option<Anchor>, AuditError> {
    let head: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((seq, hash)) = head else {
        return Ok(None);
    };
    let malformed = |what| {
        AuditError::Tampered(Break {
            seq: u64::try_from(seq).unwrap_or(0),
            reason: BreakReason::Malformed(what),
        })
    };
    Ok(Some(Anchor {
        seq: u64::try_from(seq).map_err(|_| malformed("sequence number"))?,
        hash: hash.try_into().map_err(|_| malformed("hash"))?,
    }))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::super::{Action, AuditLog, Details, ErrorCode, Record};
    use super::*;
    use crate::staff::OperatorId;

    fn log_with(n: usize) -> AuditLog {
        let mut log = AuditLog::with_connection(Connection::open_in_memory().unwrap()).unwrap();
        let op = OperatorId::new("clerk-01").unwrap();
        for i in 0..n {
            let mut rec =
                Record::new(datetime!(2026-04-01 00:00 UTC), Some(&op), Action::CardDetected)
                    .details(Details::new().count("i", i as u64));
            if i % 3 == 2 {
                rec = rec.failed(ErrorCode::new("card.mute").unwrap());
            }
            log.append(&rec).unwrap();
        }
        log
    }

    #[test]
    fn anchors_print_and_parse() {
        let a = Anchor { seq: 42, hash: [0xab; 32] };
        let text = a.to_string();
        assert_eq!(text, format!("#42 sha256:{}", "ab".repeat(32)));
        assert_eq!(text.parse::<Anchor>(), Ok(a));
        for bad in ["", "#0 sha256:00", "42 sha256:ab", "#42 sha1:ab", "#42 sha256:abc"] {
            assert_eq!(bad.parse::<Anchor>(), Err(ParseAnchorError), "{bad}");
        }
    }

    #[test]
    fn a_fresh_log_verifies_and_links() {
        let log = log_with(5);
        let report = log.verify().unwrap();
        assert_eq!(report.entries, 5);
        assert_eq!(report.head, log.head().unwrap());
        let rows = log.entries(1, 10).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[2].outcome, "failed");
        assert_eq!(rows[2].error_code.as_deref(), Some("card.mute"));
        assert_eq!(report.head.unwrap().hash, rows[4].hash);
        assert!(report.to_string().starts_with("audit log OK: 5 entries from 2026-04-01T"));
        assert_eq!(log_with(0).verify().unwrap().to_string(), "audit log OK: no entries yet");
    }

    #[test]
    fn triggers_refuse_update_delete_and_out_of_chain_inserts() {
        let log = log_with(3);
        let c = log.connection();
        let upd = c.execute("UPDATE audit_log SET action = 'x' WHERE seq = 2", []);
        assert!(upd.unwrap_err().to_string().contains("append-only"));
        let del = c.execute("DELETE FROM audit_log WHERE seq = 3", []);
        assert!(del.unwrap_err().to_string().contains("append-only"));
        let ins = c.execute(
            "INSERT INTO audit_log (seq, at, action, outcome, details, prev_hash, hash)
             VALUES (4, 't', 'a', 'ok', '{}', zeroblob(32), randomblob(32))",
            [],
        );
        assert!(ins.unwrap_err().to_string().contains("next link"));
        assert_eq!(log.verify().unwrap().entries, 3);
    }

    #[test]
    fn anchors_catch_a_truncated_or_rebuilt_chain() {
        let log = log_with(4);
        let head = log.head().unwrap().unwrap();
        assert_eq!(verify_anchored(log.connection(), &head).unwrap().entries, 4);
        let wrong = Anchor { seq: 2, hash: [1; 32] };
        assert!(matches!(
            verify_anchored(log.connection(), &wrong),
            Err(AuditError::AnchorMismatch { seq: 2 })
        ));
        let beyond = Anchor { seq: 9, ..head };
        assert!(matches!(
            verify_anchored(log.connection(), &beyond),
            Err(AuditError::Truncated { seq: 9, entries: 4 })
        ));
    }

    #[test]
    fn a_missing_table_is_not_an_empty_log() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(matches!(verify(&conn), Err(AuditError::NotAnAuditLog)));
    }
}
