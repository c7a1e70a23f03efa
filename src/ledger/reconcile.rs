//! Reconciliation of a business day's ledger against the visits the workflow completed.
//!
//! What it is: a pure function from the day's entries and the day's visits (id, kind, fee
//! due) to the differences an auditor must look at. What it is not: a fixer; it never
//! records anything.

use std::collections::BTreeMap;

use super::{Entry, EntryKind};
use crate::rules::fee::{VisitKind, Yen};

/// A visit as the workflow knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayVisit {
    /// The visit id.
    pub visit_id: String,
    /// What the visit was for.
    pub kind: VisitKind,
    /// The fee the table asked for.
    pub fee_due: Yen,
}

/// One disagreement between a visit and its payment entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The entry records another visit kind.
    Kind {
        /// The visit.
        visit_id: String,
        /// The workflow's kind.
        visit: VisitKind,
        /// The ledger's kind.
        ledger: VisitKind,
    },
    /// The entry records another fee due.
    FeeDue {
        /// The visit.
        visit_id: String,
        /// The workflow's fee.
        visit: Yen,
        /// The ledger's fee.
        ledger: Yen,
    },
}

/// What [`reconcile`] found. Empty lists mean the ledger and the visits agree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciliation {
    /// Visits with no payment entry on that day.
    pub missing: Vec<String>,
    /// Payment entries for visits that are not in the list (or listed twice in the ledger).
    pub extra: Vec<Entry>,
    /// Visits whose entry disagrees with them.
    pub mismatched: Vec<Mismatch>,
    /// Refund entries whose payment is not among the day's entries (a refund of an
    /// earlier day's payment: not an error, but the auditor sees it listed).
    pub refunds_of_other_days: Vec<Entry>,
}

impl Reconciliation {
    /// Whether nothing needs an auditor's attention (refunds of other days aside).
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.mismatched.is_empty()
    }
}

/// Compares a day's entries with the day's visits.
pub fn reconcile(entries: &[Entry], visits: &[DayVisit]) -> Reconciliation {
    let mut out = Reconciliation::default();
    let mut payments: BTreeMap<&str, &Entry> = BTreeMap::new();
    let payment_ids: std::collections::BTreeSet<_> =
        entries.iter().filter(|e| e.kind == EntryKind::Payment).map(|e| e.id).collect();
    for e in entries {
        match e.kind {
            EntryKind::Payment => {
                if payments.insert(e.visit_id.as_str(), e).is_some() {
                    out.extra.push(e.clone());
                }
            }
            EntryKind::Refund { of } if !payment_ids.contains(&of) => {
                out.refunds_of_other_days.push(e.clone());
            }
            EntryKind::Refund { .. } => {}
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in visits {
        if !seen.insert(v.visit_id.as_str()) {
            continue;
        }
        match payments.remove(v.visit_id.as_str()) {
            None => out.missing.push(v.visit_id.clone()),
            Some(e) => {
                if e.visit_kind != v.kind {
                    out.mismatched.push(Mismatch::Kind {
                        visit_id: v.visit_id.clone(),
                        visit: v.kind,
                        ledger: e.visit_kind,
                    });
                }
                if e.fee_due != v.fee_due {
                    out.mismatched.push(Mismatch::FeeDue {
                        visit_id: v.visit_id.clone(),
                        visit: v.fee_due,
                        ledger: e.fee_due,
                    });
                }
            }
        }
    }
    out.extra.extend(payments.into_values().cloned());
    out.extra.sort_by_key(|e| e.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{EntryId, Method};
    use time::macros::{date, datetime};

    fn entry(id: i64, visit: &str, kind: VisitKind, fee: u32, ek: EntryKind) -> Entry {
        Entry {
            id: EntryId(id),
            business_day: date!(2026 - 11 - 20),
            at: datetime!(2026-11-20 10:00 +9),
            visit_id: visit.into(),
            visit_kind: kind,
            kind: ek,
            fee_due: Yen(fee),
            amount: Yen(fee),
            method: if fee == 0 { Method::Free } else { Method::Cash },
            approval: None,
            operator_id: "op".into(),
            audit_ref: None,
        }
    }

    fn visit(id: &str, kind: VisitKind, fee: u32) -> DayVisit {
        DayVisit { visit_id: id.into(), kind, fee_due: Yen(fee) }
    }

    #[test]
    fn agreeing_day_is_clean() {
        let e = [
            entry(1, "A", VisitKind::NewIssuance, 0, EntryKind::Payment),
            entry(2, "B", VisitKind::ReissueAfterLoss, 200, EntryKind::Payment),
            entry(3, "B", VisitKind::ReissueAfterLoss, 200, EntryKind::Refund { of: EntryId(2) }),
        ];
        let v =
            [visit("B", VisitKind::ReissueAfterLoss, 200), visit("A", VisitKind::NewIssuance, 0)];
        let r = reconcile(&e, &v);
        assert!(r.is_clean(), "{r:?}");
        assert!(r.refunds_of_other_days.is_empty());
    }

    #[test]
    fn reports_missing_extra_and_mismatched() {
        let e = [
            entry(1, "A", VisitKind::NewIssuance, 0, EntryKind::Payment),
            entry(2, "X", VisitKind::ReissueAfterLoss, 200, EntryKind::Payment),
            entry(3, "C", VisitKind::Renewal, 0, EntryKind::Payment),
            entry(4, "Z", VisitKind::ReissueAfterLoss, 200, EntryKind::Refund { of: EntryId(99) }),
        ];
        let v = [
            visit("A", VisitKind::NewIssuance, 0),
            visit("B", VisitKind::ReissueAfterLoss, 200),
            visit("C", VisitKind::ReissueAfterLoss, 200),
        ];
        let r = reconcile(&e, &v);
        assert_eq!(r.missing, vec!["B".to_string()]);
        assert_eq!(r.extra.iter().map(|e| e.id.0).collect::<Vec<_>>(), vec![2]);
        assert_eq!(r.mismatched.len(), 2);
        assert!(matches!(&r.mismatched[0], Mismatch::Kind { visit_id, .. } if visit_id == "C"));
        assert!(matches!(&r.mismatched[1], Mismatch::FeeDue { ledger: Yen(0), .. }));
        assert_eq!(r.refunds_of_other_days.len(), 1);
        assert!(!r.is_clean());
    }
}
