//! The counter's cash ledger: one entry per settled visit, refunds as new entries, and the
//! close of each business day.
//!
//! What it is:
//! - the ledger's types ([`Entry`], [`Payment`], [`Refund`], [`DayClose`], [`DayTotals`]);
//! - [`store::Ledger`], the SQLite store (WAL). Entries and closes are append-only: triggers
//!   refuse `UPDATE` and `DELETE`, so a mistake is corrected by a refund, never by an edit;
//! - [`reconcile`], a pure check of a day's entries against the day's visits;
//! - [`export`], the CSV for the municipality's accounting system.
//!
//! What it is not: it does not decide fees (that is `rules::fee`), does not decide whether a
//! waiver is allowed (a supervisor does, and the ledger records who and why), and does not
//! write the audit trail (the caller passes the audit reference it got back).
//!
//! Money is whole yen: [`Yen`] (`u32`) for one amount, `i64` for sums. Never a float.
//! Times are passed in by the caller; the business day is the JST date of the payment,
//! moved forward past any day that is already closed.

use std::fmt;

use time::{Date, OffsetDateTime, UtcOffset};

use crate::rules::fee::{VisitKind, Yen};

pub mod export;
pub mod reconcile;
pub mod store;

pub use store::Ledger;

/// Japan Standard Time (UTC+9, no daylight saving).
pub const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => panic!("UTC+9 is a valid offset"),
};

/// The row id of a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(pub i64);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a visit was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// Paid in cash at the counter: counts towards the expected cash.
    Cash,
    /// Paid by card or QR code: not in the drawer.
    Cashless,
    /// The visit costs nothing (fee 0).
    Free,
    /// A fee was due and a supervisor waived it.
    Waived,
}

impl Method {
    /// Every method, in the order of the ledger's totals.
    pub const ALL: [Method; 4] = [Method::Cash, Method::Cashless, Method::Free, Method::Waived];

    /// The code stored in the database and the CSV.
    pub fn code(self) -> &'static str {
        match self {
            Method::Cash => "cash",
            Method::Cashless => "cashless",
            Method::Free => "free",
            Method::Waived => "waived",
        }
    }

    /// Parses [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.code() == code)
    }

    /// The label printed on receipts and the ledger.
    pub fn label_ja(self) -> &'static str {
        match self {
            Method::Cash => "現金",
            Method::Cashless => "キャッシュレス",
            Method::Free => "無料",
            Method::Waived => "免除",
        }
    }
}

/// The code of a visit kind in the database and the CSV (the JSON key of the fee table).
pub fn kind_code(kind: VisitKind) -> &'static str {
    match kind {
        VisitKind::NewIssuance => "new_issuance",
        VisitKind::Renewal => "renewal",
        VisitKind::ReissueAfterLoss => "reissue_after_loss",
        VisitKind::ReissueOnChangedItem => "reissue_on_changed_item",
        VisitKind::Revocation => "revocation",
        VisitKind::PinLockRelease => "pin_lock_release",
        VisitKind::PinReset => "pin_reset",
        VisitKind::ProxyInquiry => "proxy_inquiry",
    }
}

/// Parses [`kind_code`].
pub fn kind_from_code(code: &str) -> Option<VisitKind> {
    VisitKind::ALL.into_iter().find(|k| kind_code(*k) == code)
}

/// The visit kind as printed on receipts and the ledger.
pub fn kind_label_ja(kind: VisitKind) -> &'static str {
    match kind {
        VisitKind::NewIssuance => "新規発行",
        VisitKind::Renewal => "更新",
        VisitKind::ReissueAfterLoss => "紛失による再発行",
        VisitKind::ReissueOnChangedItem => "異動後の再発行",
        VisitKind::Revocation => "失効申請",
        VisitKind::PinLockRelease => "ロック解除",
        VisitKind::PinReset => "暗証番号初期化",
        VisitKind::ProxyInquiry => "代理人照会",
    }
}

/// A supervisor's approval of a waiver, a refund or a cash variance. `Debug` leaves the
/// reason out: it may say something about the resident (生活保護受給, 災害被災).
#[derive(Clone, PartialEq, Eq)]
pub struct Approval {
    /// The supervisor's staff id.
    pub supervisor_id: String,
    /// Why, in the supervisor's words.
    pub reason: String,
}

impl fmt::Debug for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approval")
            .field("supervisor_id", &self.supervisor_id)
            .field("reason", &format_args!("<{} chars>", self.reason.chars().count()))
            .finish()
    }
}

/// How the caller says a visit was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The fee was paid in cash.
    Cash,
    /// The fee was paid cashless.
    Cashless,
    /// The fee is zero.
    Free,
    /// The fee was waived.
    Waived(Approval),
}

impl Settlement {
    /// The stored method.
    pub fn method(&self) -> Method {
        match self {
            Settlement::Cash => Method::Cash,
            Settlement::Cashless => Method::Cashless,
            Settlement::Free => Method::Free,
            Settlement::Waived(_) => Method::Waived,
        }
    }
}

/// A visit's payment, as the workflow hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The visit's id (the idempotency key: one payment per visit).
    pub visit_id: String,
    /// What the visit was for.
    pub visit_kind: VisitKind,
    /// The fee the table asks for this visit.
    pub fee_due: Yen,
    /// How it was settled.
    pub settlement: Settlement,
    /// The cashier's staff id.
    pub operator_id: String,
    /// When the payment was taken.
    pub at: OffsetDateTime,
    /// The audit trail entry of the payment, if the caller has one.
    pub audit_ref: Option<String>,
}

/// A refund of an earlier payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The payment entry refunded (in full).
    pub of: EntryId,
    /// Who approved it and why.
    pub approval: Approval,
    /// The cashier who paid out.
    pub operator_id: String,
    /// When.
    pub at: OffsetDateTime,
    /// The audit trail entry of the refund.
    pub audit_ref: Option<String>,
}

/// Whether an entry takes money in or pays it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A visit's settlement.
    Payment,
    /// A refund of the payment entry named.
    Refund {
        /// The refunded payment.
        of: EntryId,
    },
}

/// One line of the ledger, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Row id, increasing in order of recording.
    pub id: EntryId,
    /// The business day the entry counts towards.
    pub business_day: Date,
    /// When it was recorded (as passed in).
    pub at: OffsetDateTime,
    /// The visit.
    pub visit_id: String,
    /// The visit's kind.
    pub visit_kind: VisitKind,
    /// Payment or refund.
    pub kind: EntryKind,
    /// The fee the table asked for.
    pub fee_due: Yen,
    /// Money that changed hands (in for a payment, out for a refund).
    pub amount: Yen,
    /// How (a refund keeps the method of its payment).
    pub method: Method,
    /// The supervisor's approval of a waiver or a refund.
    pub approval: Option<Approval>,
    /// The cashier.
    pub operator_id: String,
    /// The audit trail entry.
    pub audit_ref: Option<String>,
}

impl Entry {
    /// The entry's effect on the takings: `+amount` for a payment, `-amount` for a refund.
    pub fn signed_amount(&self) -> i64 {
        match self.kind {
            EntryKind::Payment => i64::from(self.amount.0),
            EntryKind::Refund { .. } => -i64::from(self.amount.0),
        }
    }
}

/// The cashier's close of a business day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// The day to close.
    pub day: Date,
    /// The cash counted in the drawer (the day's takings, float excluded).
    pub counted_cash: Yen,
    /// The cashier.
    pub operator_id: String,
    /// Required when counted and expected cash differ.
    pub variance_approval: Option<Approval>,
    /// When the day was closed.
    pub at: OffsetDateTime,
}

/// A closed day, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayClose {
    /// The day.
    pub day: Date,
    /// When it was closed.
    pub at: OffsetDateTime,
    /// Cash the ledger expected.
    pub expected_cash: i64,
    /// Cash counted.
    pub counted_cash: i64,
    /// `counted - expected`.
    pub variance: i64,
    /// The supervisor's explanation of a variance.
    pub variance_approval: Option<Approval>,
    /// The cashier who closed.
    pub operator_id: String,
}

/// Sums for one visit kind or one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    /// Payment entries.
    pub payments: u64,
    /// Refund entries.
    pub refunds: u64,
    /// Money taken in.
    pub collected: i64,
    /// Money paid back.
    pub refunded: i64,
    /// Fees waived (what was due on waived visits).
    pub waived: i64,
}

impl Sums {
    /// `collected - refunded`.
    pub fn net(&self) -> i64 {
        self.collected - self.refunded
    }
}

/// A business day's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotals {
    /// The day.
    pub day: Date,
    /// Per visit kind, in [`VisitKind::ALL`] order (kinds without entries included, as zero).
    pub by_kind: Vec<(VisitKind, Sums)>,
    /// Per method, in [`Method::ALL`] order.
    pub by_method: Vec<(Method, Sums)>,
    /// All entries.
    pub all: Sums,
    /// Cash that should be in the drawer: cash collected minus cash refunded.
    pub expected_cash: i64,
}

/// Why the ledger refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The database could not be opened, read or written (disk, permissions, corruption).
    #[error("ledger database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database was written by a newer version of the kiosk.
    #[error("ledger database schema {found} is newer than this kiosk ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Version this build writes.
        supported: i64,
    },
    /// The payment contradicts itself (caller bug): e.g. cash for a free visit.
    #[error("payment refused: {0}")]
    Invalid(&'static str),
    /// The visit already has a payment that differs from this one (a retry must repeat
    /// the same payment; anything else is a refund plus a new visit).
    #[error("visit already has a different payment (entry {existing})")]
    ConflictingPayment {
        /// The entry already recorded.
        existing: EntryId,
    },
    /// The entry to refund does not exist or is not a refundable payment.
    #[error("entry {0} cannot be refunded")]
    NotRefundable(EntryId),
    /// A close was asked for a day that is already closed with different figures.
    #[error("business day {0} is already closed")]
    AlreadyClosed(Date),
    /// Counted cash differs from the expected cash and no supervisor explained why.
    #[error("cash variance of {variance} yen needs a supervisor and a reason")]
    VarianceUnexplained {
        /// `counted - expected`.
        variance: i64,
    },
    /// A stored value could not be read back (a hand-edited file).
    #[error("ledger database holds an unreadable value in {0}")]
    Corrupt(&'static str),
}
