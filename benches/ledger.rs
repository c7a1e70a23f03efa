//! Bench: the ledger of a 10,000-visit day. Fills a fresh ledger in a temporary
//! directory, then times reading the day, summing it, rendering the A4 PDF and writing the
//! CSV. Prints one `name: value` line per figure (see docs/performance.md).
//!
//! Run: `cargo bench --bench ledger` (release) or `cargo bench --profile dev --bench ledger`.

use std::time::Instant;

use jpki_kiosk::ledger::{export, Approval, Ledger, Payment, Refund, Settlement};
use jpki_kiosk::print::day::{self, Heading};
use jpki_kiosk::print::Font;
use jpki_kiosk::rules::fee::{fee_for, FeeTable, VisitKind, Yen};
use time::macros::{date, datetime};
use time::Duration;

const VISITS: usize = 10_000;

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut ledger = Ledger::open_in(dir.path()).expect("ledger");
    let table = FeeTable::from_json(r#"{"reissue_on_changed_item": 300, "pin_reset": 1000}"#)
        .expect("fee table");
    let open = datetime!(2026-11-20 08:30 +9);
    let sv = Approval { supervisor_id: "sv-01".into(), reason: "減免".into() };
    let t0 = Instant::now();
    // A fixed mix (no randomness: the figures stay comparable between runs).
    for i in 0..VISITS {
        let kind = VisitKind::ALL[i * 7 % VisitKind::ALL.len()];
        let fee = fee_for(kind, &table);
        let settlement = match (fee.is_free(), i % 5) {
            (true, _) => Settlement::Free,
            (false, 0 | 1) => Settlement::Cash,
            (false, 2 | 3) => Settlement::Cashless,
            _ => Settlement::Waived(sv.clone()),
        };
        let refundable = matches!(settlement, Settlement::Cash | Settlement::Cashless);
        let at = open + Duration::seconds((i as i64 * 3) % (9 * 3600));
        let e = ledger
            .record_payment(&Payment {
                visit_id: format!("V-20261120-{i:05}"),
                visit_kind: kind,
                fee_due: fee,
                settlement,
                operator_id: "op-0317".into(),
                at,
                audit_ref: Some(i.to_string()),
            })
            .expect("payment");
        if refundable && i % 50 == 0 {
            ledger
                .record_refund(&Refund {
                    of: e.id,
                    approval: sv.clone(),
                    operator_id: "op-0317".into(),
                    at,
                    audit_ref: None,
                })
                .expect("refund");
        }
    }
    let fill = t0.elapsed();
    let font = Font::load_default().expect("IPAex Gothic (fonts-ipaexfont-gothic)");
    let day = date!(2026 - 11 - 20);

    let t = Instant::now();
    let entries = ledger.entries(day).expect("entries");
    let read = t.elapsed();
    let t = Instant::now();
    let totals = ledger.totals(day).expect("totals");
    let sum = t.elapsed();
    let heading = Heading { municipality: "見本市".into(), counter: "市民課 3番".into() };
    let t = Instant::now();
    let (pdf, times) = day::render_timed(&heading, &entries, &totals, None, &font).expect("pdf");
    let render = t.elapsed();
    let t = Instant::now();
    let mut csv = Vec::new();
    export::write_csv(&entries, &mut csv).expect("csv");
    let csv_time = t.elapsed();
    assert_eq!(totals.all.payments as usize, VISITS);
    assert!(Yen(0).is_free());

    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!("ledger.visits: {VISITS}");
    println!("ledger.entries: {}", entries.len());
    println!("ledger.fill_10k_s: {:.2}", fill.as_secs_f64());
    println!("ledger.read_day_ms: {:.1}", ms(read));
    println!("ledger.totals_ms: {:.1}", ms(sum));
    println!("ledger.render_pdf_ms: {:.1}", ms(render));
    println!("ledger.render_layout_ms: {:.1}", ms(times.layout));
    println!("ledger.render_save_ms: {:.1}", ms(times.save));
    println!("ledger.pdf_bytes: {}", pdf.len());
    println!("ledger.csv_ms: {:.1}", ms(csv_time));
    println!("ledger.read_sum_render_ms: {:.1}", ms(read + sum + render));
    if let Some(path) = std::env::args().nth(1).filter(|a| a.ends_with(".pdf")) {
        std::fs::write(path, &pdf).expect("write pdf");
    }
}
