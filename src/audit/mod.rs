//! The audit log: an append-only, hash-chained record in SQLite of every staff action and
//! every card and CA operation, failures included.
//!
//! What it is:
//! - [`AuditLog`], the store: [`AuditLog::append`] adds one [`Record`] as the next link of
//!   the chain, in one immediate transaction; SQL triggers refuse UPDATE and DELETE and any
//!   INSERT that is not the next link;
//! - [`verify`] / [`verify_file`], which re-hash the whole chain and name the first bad entry
//!   (changed, removed, inserted or reordered), and [`verify_command`], the one call behind
//!   `jpki-kiosk audit verify [--data DIR]` (a line to print and an exit status);
//! - [`Anchor`], the head of the chain printed on the day's ledger, and [`verify_anchored`],
//!   which also catches a rewritten or truncated chain against such a printed head;
//! - [`chain`], the canonical encoding that is hashed (documented byte by byte in
//!   `docs/audit.md`).
//!
//! What it is not: it reads no clock (times are passed in), decides nothing about who may do
//! what (`staff` does), and is not the visit journal (the workflow keeps its own, for
//! resuming). It holds no personal data and no PIN: [`Details`] only accepts counts, codes,
//! serials and redacted ids, and error codes are a narrow ASCII alphabet.
//!
//! The chain has no secret key: whoever can write the file can rebuild a consistent chain.
//! That is why the head is exported for printing ([`AuditLog::head`]): a rebuilt chain no
//! longer matches yesterday's printed head.

use std::fmt;

use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

pub mod action;
pub mod chain;
pub mod details;
mod store;
mod verify;

pub use action::{Action, ErrorCode, Outcome};
pub use details::Details;
pub use store::{AuditLog, StoredEntry, DEFAULT_FILE_NAME};
pub use verify::{
    verify, verify_anchored, verify_command, verify_file, verify_file_anchored, Anchor, Break,
    BreakReason, CommandReport, ParseAnchorError, VerifyReport,
};

use crate::staff::OperatorId;

/// How times are stored: UTC, microseconds, fixed width.
const AT_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Formats a time as stored (converted to UTC first).
pub(crate) fn format_at(at: OffsetDateTime) -> Result<String, AuditError> {
    at.to_offset(time::UtcOffset::UTC).format(AT_FORMAT).map_err(|_| AuditError::BadTime)
}

/// Parses a stored time.
pub(crate) fn parse_at(text: &str) -> Option<OffsetDateTime> {
    time::PrimitiveDateTime::parse(text, AT_FORMAT).ok().map(|t| t.assume_utc())
}

/// The id of a visit at the counter: 1–64 of `A–Z a–z 0–9 . _ : -`, made by the workflow and
/// carrying no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisitId(String);

impl VisitId {
    /// Checks the form of an id.
    pub fn new(id: &str) -> Option<VisitId> {
        action::is_code(id).then(|| VisitId(id.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VisitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One act to record. Build it with [`Record::new`] and the chained setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it happened (any offset; stored as UTC).
    pub at: OffsetDateTime,
    /// Who acted: the signed-in operator, or `None` for the kiosk itself (start-up,
    /// reconciliation).
    pub operator: Option<OperatorId>,
    /// What was done.
    pub action: Action,
    /// The visit it belongs to.
    pub visit: Option<VisitId>,
    /// How it ended.
    pub outcome: Outcome,
    /// Counts, codes, serials and redacted ids.
    pub details: Details,
}

impl Record {
    /// A successful act with no visit and no details.
    pub fn new(at: OffsetDateTime, operator: Option<&OperatorId>, action: Action) -> Record {
        Record {
            at,
            operator: operator.cloned(),
            action,
            visit: None,
            outcome: Outcome::Ok,
            details: Details::new(),
        }
    }

    /// Ties the act to a visit.
    pub fn visit(mut self, visit: &VisitId) -> Record {
        self.visit = Some(visit.clone());
        self
    }

    /// Marks the act as failed with this code.
    pub fn failed(mut self, code: ErrorCode) -> Record {
        self.outcome = Outcome::Failed(code);
        self
    }

    /// Sets the details.
    pub fn details(mut self, details: Details) -> Record {
        self.details = details;
        self
    }
}

/// Why the audit log could not be written, read or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The database could not be opened, read or written (disk, permissions, a busy lock
    /// held too long). Not evidence of tampering by itself.
    #[error("audit database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The file has no audit log table: a wrong path, or a log dropped whole.
    #[error("no audit log in this database")]
    NotAnAuditLog,
    /// A time outside the years 0000–9999 was passed in (a broken clock).
    #[error("time cannot be recorded (outside years 0000-9999)")]
    BadTime,
    /// The chain is broken: an entry was changed, removed, inserted or reordered.
    #[error("audit log broken at entry #{}: {}", .0.seq, .0.reason)]
    Tampered(Break),
    /// The SQL guards (triggers) that keep the log append-only are gone: someone with
    /// write access to the file removed them.
    #[error("audit log guards missing: {}", .missing.join(", "))]
    GuardsMissing {
        /// The names of the missing triggers.
        missing: Vec<&'static str>,
    },
    /// The entry at a printed anchor has another hash: the chain was rebuilt from there on.
    #[error("audit log does not match the printed anchor at entry #{seq}")]
    AnchorMismatch {
        /// The anchor's sequence number.
        seq: u64,
    },
    /// The chain ends before a printed anchor: entries were removed from its end.
    #[error("audit log ends at entry #{entries}, before the printed anchor #{seq}")]
    Truncated {
        /// The anchor's sequence number.
        seq: u64,
        /// The number of entries found.
        entries: u64,
    },
}

impl AuditError {
    /// The exit status `jpki-kiosk audit verify` should return: 1 when the log is not to be
    /// trusted (tampering found), 2 when it could not be checked at all.
    pub fn exit_code(&self) -> i32 {
        match self {
            AuditError::Tampered(_)
            | AuditError::GuardsMissing { .. }
            | AuditError::AnchorMismatch { .. }
            | AuditError::Truncated { .. }
            | AuditError::NotAnAuditLog => 1,
            AuditError::Database(_) | AuditError::BadTime => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn times_are_stored_as_fixed_width_utc() {
        let jst = datetime!(2026-04-01 09:00:00.5 +09:00);
        let text = format_at(jst).unwrap();
        assert_eq!(text, "2026-04-01T00:00:00.500000Z");
        assert_eq!(parse_at(&text), Some(datetime!(2026-04-01 00:00:00.5 UTC)));
        assert_eq!(parse_at("2026-04-01 00:00:00"), None);
    }

    #[test]
    fn visit_ids_are_checked() {
        assert_eq!(VisitId::new("v-20260401-0007").unwrap().as_str(), "v-20260401-0007");
        assert!(VisitId::new("").is_none());
        assert!(VisitId::new("髙橋").is_none());
    }

    #[test]
    fn exit_codes_separate_tampering_from_trouble() {
        let broken =
            AuditError::Tampered(Break { seq: 3, reason: BreakReason::Missing { found: 4 } });
        assert_eq!(broken.exit_code(), 1);
        assert_eq!(
            broken.to_string(),
            "audit log broken at entry #3: entry missing (the next one found is #4)"
        );
        let busy = AuditError::Database(rusqlite::Error::InvalidQuery);
        assert_eq!(busy.exit_code(), 2);
    }
}
