//! The fee and the receipt of a real visit: `jpki-kiosk visit-run` over a private pcscd with
//! a `jpki-vcard` and `jpki-ca serve` on loopback, the ledger and the audit log in SQLite
//! files, the receipt saved as a PDF (read back with `pdftotext`). Then the cash desk on its
//! own: a USB ESC/POS printer (a userspace printer behind the link trait: this machine
//! offers no virtual USB host) that runs out of paper, and a kiosk killed while the printer
//! has the receipt.

#[path = "common/ca_server.rs"]
mod ca_server;
#[path = "common/visit_run.rs"]
mod visit_run;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jpki_kiosk::audit::AuditLog;
use jpki_kiosk::issuance::adapters::printer::{CounterSetup, DeskReport, LedgerPrinter};
use jpki_kiosk::issuance::adapters::store::SqliteJournal;
use jpki_kiosk::issuance::adapters::{JournalPort, PrinterPort};
use jpki_kiosk::issuance::command::Receipt;
use jpki_kiosk::issuance::event::{Opening, PrintFailure, Visit};
use jpki_kiosk::issuance::model::{
    Seed, Slot, TransactionId,
    VisitId,
};
use jpki_kiosk::issuance::{Event, JournalRecord};
use jpki_kiosk::ledger::reconcile::{reconcile, DayVisit};
use jpki_kiosk::ledger::{Ledger, Method, JST};
use jpki_kiosk::peers::card_stack::CardStack;
use jpki_kiosk::print::jobs::{self, JobState};
use jpki_kiosk::print::usb::{EscPosLink, UsbError, UsbPrinter, UsbSelector};
use jpki_kiosk::rules::fee::{fee_for, Yen};
use jpki_kiosk::staff::OperatorId;

const AUTH_PIN: &str = "5283";
const SIGN_PASSWORD: &str = "RX4PW9KD";

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success(), "pdftotext {}", pdf.display());
    String::from_utf8(out.stdout).unwrap()
}

fn today_jst() -> time::Date {
    time::OffsetDateTime::now_utc().to_offset(JST).date()
}

/// The audit entries of `visit` with `action`, by sequence number.
fn audited(data: &Path, visit: &str, action: &str) -> Vec<u64> {
    let log = AuditLog::open(&data.join("audit.db")).unwrap();
    let mut stmt = log
        .connection()
        .prepare("SELECT seq FROM audit_log WHERE visit = ?1 AND action = ?2 ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map(rusqlite::params![visit, action], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap() as u64)
        .collect();
    rows
}

// ---------------------------------------------------------------------------------------
// A real visit.

struct Counterside {
    dir: tempfile::TempDir,
    stack: CardStack,
    ca: ca_server::CaServer,
}

impl Counterside {
    fn new() -> Counterside {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = CardStack::start(&dir.path().join("stack")).expect("card stack starts");
        stack.set_vcard_binary(env!("CARGO_BIN_EXE_jpki-vcard"));
        Counterside {
            dir,
            stack,
            ca: ca_server::CaServer::start(&[]),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A data directory whose counter charges 200 yen for a first issuance (so the visit
    /// takes a fee) and saves receipts for staff.
    fn data(&self, name: &str) -> PathBuf {
        let data = self.path(name);
        fs::create_dir_all(&data).unwrap();
        fs::write(
            data.join("counter.json"),
            r#"{"municipality": "見本市", "counter": "市民課 2番窓口",
                "fees": {"new_issuance": 200}, "printer": "save"}"#,
        )
        .unwrap();
        data
    }

    /// `jpki-kiosk visit-run`; PINs on stdin.
    fn visit_run(&self, data: &Path, visit: &str, crash_after: Option<u64>) -> (bool, String) {
        let ca_dir = self.ca.dir.path().join("ca");
        let peers = visit_run::Peers {
            ca_dir: &ca_dir,
            ca_url: format!("https://{}/pkix/", self.ca.https),
            reader: self.stack.reader_name(0).unwrap().to_str().unwrap().to_owned(),
            env: self.stack.env(),
        };
        let (status, out) = visit_run::visit_run(&peers, data, visit, crash_after, (AUTH_PIN, SIGN_PASSWORD));
        (status.success(), out)
    }
}

/// The visits of a data directory as the workflow journaled them (for reconciliation).
fn journaled_visits(data: &Path, ids: &[&str]) -> Vec<DayVisit> {
    let journal = SqliteJournal::open(&data.join("journal.db")).unwrap();
    ids.iter()
        .map(|id| {
            let records = journal.records(id).unwrap();
            let opening = records
                .iter()
                .find_map(|r| match r {
                    JournalRecord::Event {
                        event: Event::VisitOpened(o),
                        ..
                    } => Some(o.clone()),
                    _ => None,
                })
                .expect("journaled opening");
            let kind = opening.kind.fee_kind();
            DayVisit {
                visit_id: id.to_string(),
                kind,
                fee_due: fee_for(kind, &opening.fees),
            }
        })
        .collect()
}

/// One payment, audited once, linked to its audit entry; the receipt job is done.
fn assert_paid_once(data: &Path, visit: &str) -> jpki_kiosk::ledger::Entry {
    let ledger = Ledger::open_in(data).unwrap();
    let entries = ledger.entries(today_jst()).unwrap();
    let mine: Vec<_> = entries.iter().filter(|e| e.visit_id == visit).collect();
    assert_eq!(mine.len(), 1, "{visit}: one entry: {entries:?}");
    let e = mine[0].clone();
    assert_eq!(
        (e.amount, e.fee_due, e.method),
        (Yen(200), Yen(200), Method::Cash)
    );
    let fee_audit = audited(data, visit, "fee.recorded");
    assert_eq!(fee_audit.len(), 1, "{visit}: one fee.recorded");
    assert_eq!(
        e.audit_ref.as_deref(),
        Some(fee_audit[0].to_string().as_str())
    );
    assert!(
        jobs::open_jobs(&ledger).unwrap().is_empty(),
        "{visit}: no receipt left to print"
    );
    e
}

#[test]
fn paid_visit_is_in_the_ledger_with_its_receipt_and_reconciles() {
    let mut side = Counterside::new();
    let state = side.path("card.vcard");
    let _card = side.stack.start_card(0, &state, &[]).unwrap();
    let data = side.data("data");
    let (ok, out) = side.visit_run(&data, "v-pay-1", None);
    assert!(ok && out == r#"{"outcome":"issued"}"#, "{out}");

    let entry = assert_paid_once(&data, "v-pay-1");
    assert_eq!(entry.operator_id, "staff-07");
    assert_eq!(audited(&data, "v-pay-1", "receipt.printed").len(), 1);
    jpki_kiosk::audit::verify_file(&data.join("audit.db")).expect("audit chain verifies");

    // The receipt was saved for staff (no printer configured) and reads back.
    let pdf = data
        .join("receipts")
        .join(format!("receipt-{}-0.pdf", entry.id));
    let text = pdftotext(&pdf);
    for want in [
        "領収書",
        "見本市",
        "市民課 2番窓口",
        "v-pay-1",
        "新規発行",
        "200円",
        "現金",
        "staff-07",
        "署名用電子証明書",
        "利用者証明用電子証明書",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    assert!(
        text.contains("まで"),
        "validity end from the issued certificate:\n{text}"
    );
    assert!(
        !text.contains("再発行") && !text.contains("髙橋"),
        "original, no name:\n{text}"
    );

    // The ledger reconciles with the journal's visits of the day.
    let ledger = Ledger::open_in(&data).unwrap();
    let found = reconcile(
        &ledger.entries(today_jst()).unwrap(),
        &journaled_visits(&data, &["v-pay-1"]),
    );
    assert!(found.is_clean(), "{found:?}");

    // `jpki-kiosk ledger` reports it.
    let csv = data.join("day.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_jpki-kiosk"))
        .arg("ledger")
        .arg("--data")
        .arg(&data)
        .args([
            "--date",
            &jpki_kiosk::ledger::store::format_day(today_jst()),
        ])
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains("200"), "{summary}");
    let csv = fs::read_to_string(&csv).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.contains("v-pay-1") && l.contains(",200,")),
        "{csv}"
    );

    // A reprint the cashier asks for is marked and audited; the payment stays one.
    let mut desk = LedgerPrinter::open(
        &data,
        CounterSetup::load(&data).unwrap(),
        OperatorId::new("staff-07").unwrap(),
    )
    .unwrap();
    let DeskReport::Saved { pdf } = desk
        .reprint("v-pay-1", &OperatorId::new("sv-01").unwrap())
        .unwrap()
    else {
        panic!("saved expected")
    };
    assert!(pdftotext(&pdf).contains("【再発行】"));
    assert_eq!(audited(&data, "v-pay-1", "receipt.printed").len(), 2);
    assert_paid_once(&data, "v-pay-1");
}

/// The kiosk is killed after each journal write from the payment on (payment taken, slip
/// being printed, printed, ended) and started again: the payment is recorded once and the
/// receipt exists.
#[test]
fn kiosk_killed_between_payment_and_receipt_records_the_payment_once() {
    let mut side = Counterside::new();
    let state = side.path("c0.vcard");
    let first = side.stack.start_card(0, &state, &[]).unwrap();
    let data0 = side.data("run-0");
    let (ok, out) = side.visit_run(&data0, "v-k-0", None);
    assert!(ok, "{out}");
    drop(first);
    let records = SqliteJournal::open(&data0.join("journal.db"))
        .unwrap()
        .records("v-k-0")
        .unwrap();
    let paid_at = records
        .iter()
        .position(|r| {
            matches!(
                r,
                JournalRecord::Event {
                    event: Event::FeePaid { .. },
                    ..
                }
            )
        })
        .expect("the visit took a fee") as u64;
    let total = records.len() as u64;
    // Write number n (1-based) is record n-1: from the record before the payment to the end.
    let mut visits = Vec::new();
    for n in paid_at..=total {
        let visit = format!("v-k-{n}");
        let state = side.path(&format!("c{n}.vcard"));
        let _card = side.stack.start_card(0, &state, &[]).unwrap();
        let data = side.data(&format!("run-{n}"));
        let (ok, out) = side.visit_run(&data, &visit, Some(n));
        assert!(!ok, "write {n}: the kiosk was to abort: {out}");
        let (ok, out) = side.visit_run(&data, &visit, None);
        assert!(
            ok && out == r#"{"outcome":"issued"}"#,
            "write {n}: resume: {out}"
        );
        let entry = assert_paid_once(&data, &visit);
        let ledger = Ledger::open_in(&data).unwrap();
        let found = reconcile(
            &ledger.entries(entry.business_day).unwrap(),
            &journaled_visits(&data, &[&visit]),
        );
        assert!(found.is_clean(), "write {n}: {found:?}");
        jpki_kiosk::audit::verify_file(&data.join("audit.db")).expect("audit chain verifies");
        visits.push(visit);
    }
    assert!(visits.len() >= 4, "crash points: {visits:?}");
}

// ---------------------------------------------------------------------------------------
// The cash desk with a USB ESC/POS printer.

/// A receipt printer at the far end of the link: decodes what it is sent (ESC @, GS v 0
/// raster bands, feed, cut), answers DLE EOT 1/2/4 from its state, and can run out of
/// paper or hang mid-transfer.
#[derive(Default)]
struct ThermalPrinter {
    /// Rows printed and cuts made so far.
    rows: u32,
    cuts: u32,
    paper_out: bool,
    hang_on_send: bool,
}

impl ThermalPrinter {
    fn consume(&mut self, stream: &[u8]) {
        let mut i = 0;
        while i < stream.len() {
            match &stream[i..] {
                [0x1B, 0x40, ..] => i += 2,
                [0x1D, 0x76, 0x30, 0, xl, xh, yl, yh, ..] => {
                    let x = usize::from(u16::from_le_bytes([*xl, *xh]));
                    let y = u16::from_le_bytes([*yl, *yh]);
                    assert_eq!(x * 8, 576, "the 80 mm head's width");
                    self.rows += u32::from(y);
                    i += 8 + x * usize::from(y);
                }
                [0x1B, 0x64, _, ..] => i += 3,
                [0x1D, 0x56, 0x42, _, ..] => {
                    self.cuts += 1;
                    i += 4;
                }
                other => panic!("not ESC/POS at {i}: {:02x?}", &other[..other.len().min(8)]),
            }
        }
    }
}

/// The link to a shared [`ThermalPrinter`]; the stream is decoded whole at the cut.
struct Link(Arc<Mutex<ThermalPrinter>>, Vec<u8>);

impl EscPosLink for Link {
    fn send(&mut self, bytes: &[u8]) -> Result<(), UsbError> {
        if self.0.lock().unwrap().hang_on_send {
            // The printer takes the bytes and the power goes: nothing ever returns.
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        self.1.extend_from_slice(bytes);
        if self.1.ends_with(&[0x1D, 0x56, 0x42, 0x00]) {
            let stream = std::mem::take(&mut self.1);
            self.0.lock().unwrap().consume(&stream);
        }
        Ok(())
    }

    fn query(&mut self, request: [u8; 3]) -> Result<u8, UsbError> {
        let p = self.0.lock().unwrap();
        Ok(match (request, p.paper_out) {
            ([0x10, 0x04, 1], out) => 0x12 | if out { 0x08 } else { 0 },
            ([0x10, 0x04, 2], out) => 0x12 | if out { 0x20 } else { 0 },
            ([0x10, 0x04, 4], out) => 0x12 | if out { 0x60 } else { 0 },
            (r, _) => panic!("unexpected request {r:02x?}"),
        })
    }
}

/// A data directory whose journal holds the opening of a 200-yen re-issue after loss.
fn desk_data(dir: &Path, visit: &str) -> Receipt {
    fs::write(
        dir.join("counter.json"),
        r#"{"printer": {"usb": {}}, "municipality": "見本市", "counter": "市民課 1番"}"#,
    )
    .unwrap();
    let mut journal = SqliteJournal::open(&dir.join("journal.db")).unwrap();
    let opening = Opening {
        visit: VisitId(visit.into()),
        kind: Visit::ReissueAfterLoss,
        date: today_jst(),
        operator: "staff-11".into(),
        seed: Seed {
            transaction: TransactionId([1; 16]),
            revocation: TransactionId([2; 16]),
            sender_nonce: [3; 16],
            test_nonce: [4; 16],
        },
        fees: Default::default(),
        identity: Default::default(),
    };
    let record = JournalRecord::Event {
        v: 1,
        seq: 0,
        event: Event::VisitOpened(opening),
    };
    journal.append(visit, &record).unwrap();
    Receipt {
        visit: VisitId(visit.into()),
        date: today_jst(),
        slots: vec![Slot::Sign],
        fee: Yen(200),
        copy: 1,
    }
}

fn desk(dir: &Path, printer: &Arc<Mutex<ThermalPrinter>>) -> LedgerPrinter {
    LedgerPrinter::open(
        dir,
        CounterSetup::load(dir).unwrap(),
        OperatorId::new("staff-11").unwrap(),
    )
    .unwrap()
    .with_link(Box::new(Link(printer.clone(), Vec::new())))
}

#[test]
fn paper_out_then_refilled_prints_the_original_and_pays_once() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = desk_data(dir.path(), "v-paper");
    let printer = Arc::new(Mutex::new(ThermalPrinter {
        paper_out: true,
        ..Default::default()
    }));
    let mut d = desk(dir.path(), &printer);
    assert_eq!(
        d.print(&receipt),
        Event::PrintFailed {
            failure: PrintFailure::OutOfPaper
        }
    );
    let Some(DeskReport::Failed { notice }) = d.last_report() else {
        panic!("failed report")
    };
    assert!(notice.contains("用紙"), "{notice}");
    assert_eq!(
        printer.lock().unwrap().rows,
        0,
        "nothing was sent to an empty printer"
    );
    // The payment is in the ledger already; the job waits.
    let entry = d.ledger().payment_for_visit("v-paper").unwrap().unwrap();
    assert_eq!((entry.amount, entry.method), (Yen(200), Method::Cash));
    let open = jobs::open_jobs(d.ledger()).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].state, open[0].maybe_printed),
        (JobState::Failed, 0)
    );

    // Staff refill the roll and retry: the state machine sends the receipt again.
    printer.lock().unwrap().paper_out = false;
    let again = Receipt { copy: 2, ..receipt };
    assert_eq!(d.print(&again), Event::Printed);
    let p = printer.lock().unwrap();
    assert!(
        p.rows > 600 && p.cuts == 1,
        "one receipt printed: {} rows, {} cuts",
        p.rows,
        p.cuts
    );
    let pdf = dir
        .path()
        .join("receipts")
        .join(format!("receipt-{}-0.pdf", entry.id));
    let text = pdftotext(&pdf);
    assert!(
        text.contains("領収書") && !text.contains("【再発行】"),
        "the refused try never printed:\n{text}"
    );
    assert_eq!(
        d.ledger().entries(entry.business_day).unwrap().len(),
        1,
        "paid once"
    );
    assert_eq!(audited(dir.path(), "v-paper", "fee.recorded").len(), 1);
    assert!(jobs::open_jobs(d.ledger()).unwrap().is_empty());
}

#[test]
fn power_lost_while_the_usb_printer_has_the_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = desk_data(dir.path(), "v-power");
    let me = std::env::current_exe().unwrap();
    let mut child = Command::new(&me)
        .args([
            "--ignored",
            "--exact",
            "desk_child_prints_until_killed",
            "--nocapture",
        ])
        .env("DESK_CHILD_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ledger = Ledger::open_in(dir.path()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        jobs::init(&ledger).unwrap();
        if jobs::open_jobs(&ledger)
            .unwrap()
            .iter()
            .any(|j| j.state == JobState::Printing)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the child never reached the printer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no clean-up, as at a power cut.
    child.wait().unwrap();

    // Power back: the resumed visit sends the receipt again.
    let printer = Arc::new(Mutex::new(ThermalPrinter::default()));
    let mut d = desk(dir.path(), &printer);
    assert_eq!(d.print(&receipt), Event::Printed);
    assert_eq!(printer.lock().unwrap().cuts, 1);
    let entry = d.ledger().payment_for_visit("v-power").unwrap().unwrap();
    assert_eq!(
        d.ledger().entries(entry.business_day).unwrap().len(),
        1,
        "paid once"
    );
    assert_eq!(audited(dir.path(), "v-power", "fee.recorded").len(), 1);
    let pdf = dir
        .path()
        .join("receipts")
        .join(format!("receipt-{}-0.pdf", entry.id));
    assert!(
        pdftotext(&pdf).contains("【再発行】"),
        "the first paper may exist"
    );
    assert!(jobs::open_jobs(d.ledger()).unwrap().is_empty());
}

/// Child of `power_lost_while_the_usb_printer_has_the_receipt`.
#[test]
#[ignore = "child process of power_lost_while_the_usb_printer_has_the_receipt"]
fn desk_child_prints_until_killed() {
    let dir = PathBuf::from(std::env::var_os("DESK_CHILD_DIR").expect("run by the parent test"));
    let printer = Arc::new(Mutex::new(ThermalPrinter {
        hang_on_send: true,
        ..Default::default()
    }));
    let receipt = Receipt {
        visit: VisitId("v-power".into()),
        date: today_jst(),
        slots: vec![Slot::Sign],
        fee: Yen(200),
        copy: 1,
    };
    let _ = desk(&dir, &printer).print(&receipt);
    panic!("the hung printer returned");
}

#[test]
fn no_usb_printer_is_a_typed_error_for_staff() {
    // This machine has no USB printer (no USB host at all in a VM): libusb finds nothing.
    let err = UsbPrinter::open(&UsbSelector {
        id: Some((0x04B8, 0x0202)),
    })
    .unwrap_err();
    assert!(matches!(err, UsbError::NotFound), "{err:?}");
    assert!(err.action_ja().contains("USBケーブル"));
    // Through the desk: the visit hears "offline", staff read what to do, nothing is lost.
    let dir = tempfile::tempdir().unwrap();
    let receipt = desk_data(dir.path(), "v-nousb");
    let mut d = LedgerPrinter::open(
        dir.path(),
        CounterSetup::load(dir.path()).unwrap(),
        OperatorId::new("staff-11").unwrap(),
    )
    .unwrap();
    assert_eq!(
        d.print(&receipt),
        Event::PrintFailed {
            failure: PrintFailure::Offline
        }
    );
    let Some(DeskReport::Failed { notice }) = d.last_report() else {
        panic!("failed report")
    };
    assert!(notice.contains("見つかりません"), "{notice}");
    assert!(d.ledger().payment_for_visit("v-nousb").unwrap().is_some());
    let open = jobs::open_jobs(d.ledger()).unwrap();
    assert_eq!(
        (open.len(), open[0].state, open[0].maybe_printed),
        (1, JobState::Failed, 0)
    );
}
