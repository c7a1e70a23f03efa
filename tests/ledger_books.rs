//! The ledger's books on a real SQLite file: exact totals for a generated day of 10,000
//! visits, reconciliation with the day's visits, and a payment recorded exactly once when
//! the kiosk is killed between payment and receipt.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use jpki_kiosk::ledger::reconcile::{reconcile, DayVisit};
use jpki_kiosk::ledger::{
    Approval, CloseRequest, EntryKind, Ledger, Method, Payment, Refund, Settlement,
};
use jpki_kiosk::print::jobs::{self, JobState};
use jpki_kiosk::print::receipt::SlipKind;
use jpki_kiosk::rules::fee::{fee_for, FeeTable, VisitKind, Yen};
use proptest::prelude::*;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

/// A fee table where most kinds cost something, so every total is exercised.
fn fees() -> FeeTable {
    FeeTable::from_json(
        r#"{"new_issuance": 0, "renewal": 0, "reissue_after_loss": 200,
            "reissue_on_changed_item": 300, "revocation": 0, "pin_lock_release": 150,
            "pin_reset": 1000, "proxy_inquiry": 50}"#,
    )
    .unwrap()
}

#[derive(Debug, Clone)]
struct GenVisit {
    kind: VisitKind,
    /// 0 cash, 1 cashless, 2 waived (when a fee is due).
    how: u8,
    refund: bool,
    retry: bool,
    minute: i64,
}

fn gen_visit() -> impl Strategy<Value = GenVisit> {
    (
        0..VisitKind::ALL.len(),
        0u8..3,
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.02),
        0i64..525,
    )
        .prop_map(|(k, how, refund, retry, minute)| GenVisit {
            kind: VisitKind::ALL[k],
            how,
            refund,
            retry,
            minute,
        })
}

fn supervisor() -> Approval {
    Approval { supervisor_id: "sv-01".into(), reason: "生活保護受給".into() }
}

#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
struct Expect {
    payments: u64,
    refunds: u64,
    collected: i64,
    refunded: i64,
    waived: i64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2, max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn a_day_of_10000_visits_sums_exactly(visits in prop::collection::vec(gen_visit(), 10_000)) {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open_in(dir.path()).unwrap();
        let table = fees();
        let day = date!(2026 - 11 - 20);
        let open = datetime!(2026-11-20 08:30 +9);
        let mut by_kind: BTreeMap<&str, Expect> = BTreeMap::new();
        let mut by_method: BTreeMap<&str, Expect> = BTreeMap::new();
        let mut day_visits = Vec::new();
        let mut cash = 0i64;
        for (i, v) in visits.iter().enumerate() {
            let fee = fee_for(v.kind, &table);
            let at = open + Duration::minutes(v.minute);
            let settlement = match (fee.is_free(), v.how) {
                (true, _) => Settlement::Free,
                (false, 0) => Settlement::Cash,
                (false, 1) => Settlement::Cashless,
                (false, _) => Settlement::Waived(supervisor()),
            };
            let p = Payment {
                visit_id: format!("V{i:05}"),
                visit_kind: v.kind,
                fee_due: fee,
                settlement: settlement.clone(),
                operator_id: "op-3".into(),
                at,
                audit_ref: Some(format!("{}", 100_000 + i)),
            };
            let entry = ledger.record_payment(&p).unwrap();
            if v.retry {
                prop_assert_eq!(&ledger.record_payment(&p).unwrap(), &entry);
            }
            day_visits.push(DayVisit { visit_id: p.visit_id.clone(), kind: v.kind, fee_due: fee });
            // The independent sums, from the generated visits alone.
            let kind_key = format!("{:?}", v.kind);
            let method_key = format!("{:?}", settlement.method());
            let paid = i64::from(fee.0) * i64::from(matches!(settlement, Settlement::Cash | Settlement::Cashless));
            let waived = if matches!(settlement, Settlement::Waived(_)) { i64::from(fee.0) } else { 0 };
            for e in [by_kind.entry(leak(kind_key)).or_default(), by_method.entry(leak(method_key)).or_default()] {
                e.payments += 1;
                e.collected += paid;
                e.waived += waived;
            }
            if settlement == Settlement::Cash {
                cash += paid;
            }
            if v.refund && paid > 0 {
                let r = Refund {
                    of: entry.id,
                    approval: supervisor(),
                    operator_id: "op-3".into(),
                    at: at + Duration::minutes(5),
                    audit_ref: None,
                };
                ledger.record_refund(&r).unwrap();
                for e in [by_kind.get_mut(format!("{:?}", v.kind).as_str()).unwrap(),
                          by_method.get_mut(format!("{:?}", settlement.method()).as_str()).unwrap()] {
                    e.refunds += 1;
                    e.refunded += paid;
                }
                if settlement == Settlement::Cash {
                    cash -= paid;
                }
            }
        }
        let totals = ledger.totals(day).unwrap();
        for (kind, s) in &totals.by_kind {
            let want = by_kind.get(format!("{kind:?}").as_str()).copied().unwrap_or_default();
            let got = Expect { payments: s.payments, refunds: s.refunds, collected: s.collected, refunded: s.refunded, waived: s.waived };
            prop_assert_eq!(got, want, "{:?}", kind);
        }
        for (method, s) in &totals.by_method {
            let want = by_method.get(format!("{method:?}").as_str()).copied().unwrap_or_default();
            let got = Expect { payments: s.payments, refunds: s.refunds, collected: s.collected, refunded: s.refunded, waived: s.waived };
            prop_assert_eq!(got, want, "{:?}", method);
        }
        prop_assert_eq!(totals.all.payments, 10_000);
        prop_assert_eq!(totals.expected_cash, cash);
        let entries = ledger.entries(day).unwrap();
        prop_assert_eq!(entries.iter().map(|e| e.signed_amount()).sum::<i64>(), totals.all.net());
        prop_assert!(reconcile(&entries, &day_visits).is_clean());
        let close = ledger.close_day(&CloseRequest {
            day,
            counted_cash: Yen(u32::try_from(cash).unwrap()),
            operator_id: "op-3".into(),
            variance_approval: None,
            at: datetime!(2026-11-20 17:30 +9),
        }).unwrap();
        prop_assert_eq!(close.variance, 0);
    }
}

/// Map keys that live for the test: a handful of distinct strings.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn payment(visit: &str, kind: VisitKind, fee: u32, s: Settlement, at: OffsetDateTime) -> Payment {
    Payment {
        visit_id: visit.into(),
        visit_kind: kind,
        fee_due: Yen(fee),
        settlement: s,
        operator_id: "op-3".into(),
        at,
        audit_ref: None,
    }
}

#[test]
fn ledger_reconciles_with_the_days_visits() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open_in(dir.path()).unwrap();
    let at = datetime!(2026-11-20 09:00 +9);
    ledger.record_payment(&payment("A", VisitKind::NewIssuance, 0, Settlement::Free, at)).unwrap();
    ledger
        .record_payment(&payment("B", VisitKind::ReissueAfterLoss, 200, Settlement::Cash, at))
        .unwrap();
    ledger
        .record_payment(&payment("X", VisitKind::ReissueAfterLoss, 200, Settlement::Cashless, at))
        .unwrap();
    ledger.record_payment(&payment("D", VisitKind::Renewal, 0, Settlement::Free, at)).unwrap();
    let visits = vec![
        DayVisit { visit_id: "A".into(), kind: VisitKind::NewIssuance, fee_due: Yen(0) },
        DayVisit { visit_id: "B".into(), kind: VisitKind::ReissueAfterLoss, fee_due: Yen(200) },
        DayVisit { visit_id: "C".into(), kind: VisitKind::ReissueAfterLoss, fee_due: Yen(200) },
        DayVisit { visit_id: "D".into(), kind: VisitKind::PinReset, fee_due: Yen(0) },
    ];
    let r = reconcile(&ledger.entries(at.date()).unwrap(), &visits);
    assert_eq!(r.missing, vec!["C".to_owned()]);
    assert_eq!(r.extra.iter().map(|e| e.visit_id.as_str()).collect::<Vec<_>>(), vec!["X"]);
    assert_eq!(r.mismatched.len(), 1, "{r:?}");
    assert!(!r.is_clean());
}

/// Run in a child process by `killed_between_payment_and_receipt`: records the payment,
/// then dies (SIGABRT) before the receipt is enqueued or printed.
#[test]
#[ignore = "child process of killed_between_payment_and_receipt"]
fn child_pays_then_dies() {
    let dir = std::env::var_os("LEDGER_CHILD_DIR").expect("run by the parent test");
    let mut ledger = Ledger::open_in(Path::new(&dir)).unwrap();
    let at = datetime!(2026-11-20 10:00 +9);
    ledger
        .record_payment(&payment("K1", VisitKind::ReissueAfterLoss, 200, Settlement::Cash, at))
        .unwrap();
    std::process::abort();
}

#[test]
fn killed_between_payment_and_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    for _ in 0..2 {
        // Killed twice: the retry after the first crash must not pay again.
        let status = Command::new(&me)
            .args(["--ignored", "--exact", "child_pays_then_dies", "--nocapture"])
            .env("LEDGER_CHILD_DIR", dir.path())
            .status()
            .unwrap();
        assert!(!status.success(), "the child must die");
    }
    let ledger = Ledger::open_in(dir.path()).unwrap();
    let entries = ledger.entries(date!(2026 - 11 - 20)).unwrap();
    assert_eq!(entries.len(), 1, "paid once");
    assert_eq!(entries[0].kind, EntryKind::Payment);
    assert_eq!(entries[0].method, Method::Cash);
    // At start-up the kiosk finds the paid visit without a receipt and enqueues it.
    let created = jobs::ensure_jobs(&ledger).unwrap();
    assert_eq!(created.len(), 1);
    assert!(jobs::ensure_jobs(&ledger).unwrap().is_empty(), "enqueued once");
    let job = jobs::job(&ledger, created[0]).unwrap().unwrap();
    assert_eq!(
        (job.entry_id, job.slip, job.state),
        (entries[0].id, SlipKind::Receipt, JobState::Pending)
    );
}
