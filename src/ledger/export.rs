//! CSV export of a business day for the municipality's accounting system.
//!
//! What it is: one row per entry (UTF-8, header row, amounts in whole yen, refunds as
//! negative `signed_amount`), followed by nothing else: totals are the importer's to
//! compute, so the file stays one table. What it is not: a reader of other formats.

use std::io::Write;

use super::store::format_day;
use super::{kind_code, Entry, EntryKind};
use time::format_description::well_known::Rfc3339;

/// The CSV header, in column order.
pub const HEADER: [&str; 14] = [
    "entry_id",
    "business_day",
    "recorded_at",
    "visit_id",
    "visit_kind",
    "entry_kind",
    "refund_of",
    "fee_due_yen",
    "amount_yen",
    "signed_amount_yen",
    "method",
    "supervisor_id",
    "reason",
    "audit_ref",
];

/// Why the export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing failed (disk full, closed pipe).
    #[error("CSV export: {0}")]
    Csv(#[from] csv::Error),
    /// Flushing the output failed.
    #[error("CSV export: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the entries as CSV.
pub fn write_csv<W: Write>(entries: &[Entry], out: W) -> Result<(), ExportError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    for e in entries {
        let (entry_kind, refund_of) = match e.kind {
            EntryKind::Payment => ("payment", String::new()),
            EntryKind::Refund { of } => ("refund", of.to_string()),
        };
        let (sup, reason) =
            e.approval.as_ref().map_or(("", ""), |a| (a.supervisor_id.as_str(), a.reason.as_str()));
        w.write_record([
            e.id.to_string().as_str(),
            &format_day(e.business_day),
            &e.at.format(&Rfc3339).unwrap_or_default(),
            &e.visit_id,
            kind_code(e.visit_kind),
            entry_kind,
            &refund_of,
            &e.fee_due.0.to_string(),
            &e.amount.0.to_string(),
            &e.signed_amount().to_string(),
            e.method.code(),
            sup,
            reason,
            e.audit_ref.as_deref().unwrap_or(""),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Approval, EntryId, Method};
    use crate::rules::fee::{VisitKind, Yen};
    use time::macros::{date, datetime};

    #[test]
    fn quotes_commas_and_round_trips() {
        let e = Entry {
            id: EntryId(7),
            business_day: date!(2026 - 11 - 20),
            at: datetime!(2026-11-20 10:00 +9),
            visit_id: "V-1".into(),
            visit_kind: VisitKind::ReissueAfterLoss,
            kind: EntryKind::Refund { of: EntryId(3) },
            fee_due: Yen(200),
            amount: Yen(200),
            method: Method::Cash,
            approval: Some(Approval {
                supervisor_id: "sv".into(),
                reason: "二重徴収, 返金".into(),
            }),
            operator_id: "op".into(),
            audit_ref: Some("a-9".into()),
        };
        let mut buf = Vec::new();
        write_csv(&[e], &mut buf).unwrap();
        let mut r = csv::Reader::from_reader(buf.as_slice());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), HEADER.to_vec());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[6], "3");
        assert_eq!(&row[9], "-200");
        assert_eq!(&row[12], "二重徴収, 返金");
        assert_eq!(&row[2], "2026-11-20T10:00:00+09:00");
    }
}
