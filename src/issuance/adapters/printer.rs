//! The visit's cash desk and receipt printer: the adapter that answers `PrintReceipt`.
//!
//! What it is: [`LedgerPrinter`], which for the visit named in the receipt
//! 1. records the fee in the ledger (`DATA/kiosk.db`) exactly once, with an audit entry
//!    (`fee.recorded`) whose sequence number the ledger entry keeps;
//! 2. enqueues the slip as a receipt job (a 領収書, or for a free visit the 交付記録) and
//!    prints it: to a CUPS queue, to a USB ESC/POS printer, or saved as a PDF under
//!    `DATA/receipts/` with the path shown to staff;
//! 3. audits each print (`receipt.printed`), and reprints on request marked 再発行.
//!
//! Everything it prints is rebuilt from durable records (the visit's journal, the ledger
//! entry), so a kiosk killed at any point answers the re-issued `PrintReceipt` of the
//! resumed visit with the payment it already recorded and the job it already has: one
//! payment, and a receipt that can always be printed again. A job that was with the
//! printer when the kiosk stopped prints as 再発行; one the printer refused is the original.
//!
//! What it is not: the fee decision (the visit's state machine checked the amount against
//! the fee table), the ledger's arithmetic, or the slip's layout (`print`). The counter's
//! setup comes from `DATA/counter.json` ([`CounterSetup`]).

use std::path::{Path, PathBuf};

use der::Decode;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::store::SqliteJournal;
use super::{PrinterPort, StoreError};
use crate::audit::{self, Action, AuditLog, Details};
use crate::issuance::command::{Command, Receipt};
use crate::issuance::event::{Event, Opening, PrintFailure};
use crate::issuance::journal::JournalRecord;
use crate::issuance::model::Slot;
use crate::ledger::{Entry, Ledger, LedgerError, Method, Payment, Settlement, JST};
use crate::print::jobs::{self, Output, Printed};
use crate::print::receipt::{IssuedItem, Slip, SlipKind};
use crate::print::usb::{EscPosLink, UsbError, UsbSelector};
use crate::print::{Font, Paper, PrintError};
use crate::rules::fee::{self, FeeTable};
use crate::staff::OperatorId;

/// The file in the data directory that holds the counter's setup.
pub const SETUP_FILE: &str = "counter.json";

/// Where receipts go, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrinterSetup {
    /// A CUPS queue (`lp -d queue [-h server]`).
    Cups {
        /// The queue.
        queue: String,
        /// The CUPS server when not the default one.
        #[serde(default)]
        server: Option<String>,
        /// Put before each job's title (e.g. the counter's name in the queue list).
        #[serde(default)]
        title_prefix: Option<String>,
    },
    /// A USB ESC/POS printer; without ids the first printer found.
    Usb {
        /// USB vendor id.
        #[serde(default)]
        vendor: Option<u16>,
        /// USB product id.
        #[serde(default)]
        product: Option<u16>,
    },
    /// No printer: the PDF is saved and staff are told where.
    #[default]
    Save,
}

/// How the counter takes fees (the visit's `FeePaid` says only the amount).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PaymentSetup {
    /// Cash in the drawer.
    #[default]
    Cash,
    /// A card or QR terminal.
    Cashless,
}

/// The PDF paper of the counter's printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PaperSetup {
    /// 80 mm roll.
    #[default]
    Roll80,
    /// A4.
    A4,
}

/// The counter's setup (`DATA/counter.json`); every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CounterSetup {
    /// The municipality printed on slips.
    pub municipality: String,
    /// The counter printed on slips.
    pub counter: String,
    /// The fee table in force.
    pub fees: FeeTable,
    /// Where receipts go.
    pub printer: PrinterSetup,
    /// The PDF paper (a USB printer always gets the 80 mm roll).
    pub paper: PaperSetup,
    /// How fees are taken at this counter.
    pub payment: PaymentSetup,
    /// The Japanese font; IPAex Gothic when absent.
    pub font: Option<PathBuf>,
}

impl Default for CounterSetup {
    fn default() -> CounterSetup {
        CounterSetup {
            municipality: "見本市".into(),
            counter: "市民課".into(),
            fees: FeeTable::default(),
            printer: PrinterSetup::Save,
            paper: PaperSetup::Roll80,
            payment: PaymentSetup::Cash,
            font: None,
        }
    }
}

impl CounterSetup {
    /// The appliance's setup from its site configuration (`DATA/site.toml`) when there is
    /// one; else `DATA/counter.json`; else the defaults.
    pub fn load(data: &Path) -> Result<CounterSetup, CashDeskError> {
        let site = crate::site::SiteConfig::path_in(data);
        if site.exists() {
            return crate::site::SiteConfig::load(data)
                .and_then(|cfg| Ok(CounterSetup::for_site(&cfg, cfg.fee_table(data)?)))
                .map_err(|e| CashDeskError::Setup { path: site, detail: e.to_string() });
        }
        let path = data.join(SETUP_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CashDeskError::Setup {
                path,
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CounterSetup::default()),
            Err(e) => Err(CashDeskError::Setup {
                path,
                detail: e.to_string(),
            }),
        }
    }

    /// The setup a site configuration describes, with its fee table.
    pub fn for_site(site: &crate::site::SiteConfig, fees: FeeTable) -> CounterSetup {
        let printer = match &site.printer {
            crate::site::Printer::Cups { queue } => PrinterSetup::Cups {
                queue: queue.clone(),
                server: None,
                title_prefix: Some(site.counter.id.clone()),
            },
            // rusb finds the printer on the bus (the udev rules give the kiosk user the
            // device); the usblp node named in site.toml is for the vendor's own checks.
            crate::site::Printer::EscposUsb { .. } => PrinterSetup::Usb { vendor: None, product: None },
            crate::site::Printer::None => PrinterSetup::Save,
        };
        CounterSetup {
            municipality: site.municipality.name.clone(),
            counter: site.counter.id.clone(),
            fees,
            printer,
            ..CounterSetup::default()
        }
    }

    /// Where the receipt jobs print.
    pub fn output(&self) -> Output {
        match &self.printer {
            PrinterSetup::Cups {
                queue,
                server,
                title_prefix,
            } => Output::Cups {
                queue: queue.clone(),
                server: server.clone(),
                title_prefix: title_prefix.clone(),
            },
            PrinterSetup::Usb { vendor, product } => Output::Usb(UsbSelector {
                id: vendor.zip(*product),
            }),
            PrinterSetup::Save => Output::SaveOnly,
        }
    }

    fn paper(&self) -> Paper {
        match self.paper {
            PaperSetup::Roll80 => Paper::Roll80,
            PaperSetup::A4 => Paper::A4,
        }
    }
}

/// Why the fee could not be recorded or its slip not printed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CashDeskError {
    /// `DATA/counter.json` does not parse.
    #[error("counter setup {path}: {detail}")]
    Setup {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The ledger refused or failed (e.g. a different payment is already recorded).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The audit log refused or failed.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// The visit journal could not be read.
    #[error("journal: {0}")]
    Journal(#[from] StoreError),
    /// The journal has no opening for the visit named in the receipt.
    #[error("no journaled visit {0}")]
    UnknownVisit(String),
    /// The ledger has no payment for the visit whose slip was asked for again.
    #[error("visit {0} has no payment in the ledger")]
    NotPaid(String),
    /// Rendering or printing failed.
    #[error(transparent)]
    Print(#[from] PrintError),
}

impl CashDeskError {
    /// What the visit's state machine hears: paper out is staff's to fix at the printer;
    /// everything else is a printer (or desk) that is not there.
    pub fn print_failure(&self) -> PrintFailure {
        match self {
            CashDeskError::Print(PrintError::Usb(UsbError::PaperOut)) => PrintFailure::OutOfPaper,
            CashDeskError::Print(PrintError::Spooler { detail, .. })
                if detail.to_ascii_lowercase().contains("paper") =>
            {
                PrintFailure::OutOfPaper
            }
            _ => PrintFailure::Offline,
        }
    }

    /// What staff are shown, with what to do.
    pub fn notice_ja(&self) -> String {
        match self {
            CashDeskError::Print(PrintError::Usb(e)) => {
                format!("{}{}", e.notice_ja(), e.action_ja())
            }
            CashDeskError::Print(PrintError::Spooler { queue, .. }) => format!(
                "印刷キュー {queue} に送れませんでした。プリンタを確認し、再印刷してください。"
            ),
            CashDeskError::Print(_) | CashDeskError::Setup { .. } => {
                "領収書を作成できませんでした。システム管理者に連絡してください。".into()
            }
            _ => "手数料を記録できませんでした。システム管理者に連絡してください。".into(),
        }
    }
}

/// What happened to the last slip, for the staff screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskReport {
    /// Printed or queued; `pdf` is kept for reprints.
    Printed {
        /// The file.
        pdf: PathBuf,
        /// Something to tell staff anyway (paper near end).
        notice: Option<&'static str>,
    },
    /// Saved: staff hand the resident a print of this file.
    Saved {
        /// The file.
        pdf: PathBuf,
    },
    /// Already printed before a restart: nothing printed again.
    AlreadyPrinted,
    /// Failed; the message says what to do.
    Failed {
        /// For staff.
        notice: String,
    },
}

/// The cash desk and receipt printer of a visit.
pub struct LedgerPrinter {
    setup: CounterSetup,
    output: Output,
    ledger: Ledger,
    audit: AuditLog,
    journal: SqliteJournal,
    font: Font,
    operator: OperatorId,
    spool: PathBuf,
    link: Option<Box<dyn EscPosLink>>,
    last: Option<DeskReport>,
}

impl std::fmt::Debug for LedgerPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerPrinter")
            .field("output", &self.output)
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

impl LedgerPrinter {
    /// Opens the desk over the data directory: `kiosk.db` (ledger and jobs), `audit.db`,
    /// `journal.db`, receipts spooled under `receipts/`.
    pub fn open(
        data: &Path,
        setup: CounterSetup,
        operator: OperatorId,
    ) -> Result<LedgerPrinter, CashDeskError> {
        let font = match &setup.font {
            Some(p) => Font::load(p)?,
            None => Font::load_default()?,
        };
        let ledger = Ledger::open_in(data)?;
        jobs::init(&ledger)?;
        Ok(LedgerPrinter {
            output: setup.output(),
            setup,
            ledger,
            audit: AuditLog::open(&data.join("audit.db"))?,
            journal: SqliteJournal::open(&data.join("journal.db"))?,
            font,
            operator,
            spool: data.join("receipts"),
            link: None,
            last: None,
        })
    }

    /// Prints on this ESC/POS link instead of the configured output (a printer the caller
    /// opened, or a test printer).
    pub fn with_link(mut self, link: Box<dyn EscPosLink>) -> LedgerPrinter {
        self.link = Some(link);
        self
    }

    /// What happened to the last slip.
    pub fn last_report(&self) -> Option<&DeskReport> {
        self.last.as_ref()
    }

    /// The ledger this desk records in.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Records the visit's fee (once) and returns its ledger entry.
    pub fn settle(&mut self, receipt: &Receipt) -> Result<Entry, CashDeskError> {
        let visit = receipt.visit.0.as_str();
        if let Some(entry) = self.ledger.payment_for_visit(visit)? {
            return Ok(entry);
        }
        let records = self.journal.records(visit)?;
        let opening =
            opening_of(&records).ok_or_else(|| CashDeskError::UnknownVisit(visit.into()))?;
        let kind = opening.kind.fee_kind();
        let fee_due = fee::fee_for(kind, &opening.fees);
        let settlement = match (fee_due.is_free(), self.setup.payment) {
            (true, _) => Settlement::Free,
            (false, PaymentSetup::Cash) => Settlement::Cash,
            (false, PaymentSetup::Cashless) => Settlement::Cashless,
        };
        let at = OffsetDateTime::now_utc();
        let audit_ref = self.fee_audit(visit, receipt, &settlement, at)?;
        let entry = self.ledger.record_payment(&Payment {
            visit_id: visit.to_owned(),
            visit_kind: kind,
            fee_due,
            settlement,
            operator_id: opening.operator.clone(),
            at,
            audit_ref: Some(audit_ref.to_string()),
        })?;
        tracing::info!(
            entry = entry.id.0,
            method = entry.method.code(),
            "fee recorded"
        );
        Ok(entry)
    }

    /// The audit entry of the fee: the one already written for this visit (a kill between
    /// audit and ledger), else a new one.
    fn fee_audit(
        &mut self,
        visit: &str,
        receipt: &Receipt,
        settlement: &Settlement,
        at: OffsetDateTime,
    ) -> Result<u64, CashDeskError> {
        let found: Option<i64> = self
            .audit
            .connection()
            .query_row(
                "SELECT seq FROM audit_log WHERE visit = ?1 AND action = ?2 ORDER BY seq LIMIT 1",
                rusqlite::params![visit, Action::FeeRecorded.as_str()],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(audit::AuditError::from(e)),
            })?;
        if let Some(seq) = found {
            return Ok(seq as u64);
        }
        let mut record = audit::Record::new(at, Some(&self.operator), Action::FeeRecorded).details(
            Details::new()
                .count("amount_yen", u64::from(receipt.fee.0))
                .name("method", settlement.method().code()),
        );
        if let Some(v) = audit::VisitId::new(visit) {
            record = record.visit(&v);
        }
        Ok(self.audit.append(&record)?.seq)
    }

    /// Prints the original slip of the visit's payment (or finds it already printed).
    fn print_original(&mut self, receipt: &Receipt) -> Result<DeskReport, CashDeskError> {
        let entry = self.settle(receipt)?;
        let kind = slip_kind(&entry);
        let id = jobs::enqueue(&self.ledger, entry.id, kind)?;
        let job = jobs::job(&self.ledger, id)?.ok_or(LedgerError::Corrupt("receipt job"))?;
        if !job.state.is_open() {
            // Printed before the kiosk stopped (the `Printed` answer was not journaled):
            // a second paper would look like a second payment. Staff can ask a reprint.
            return Ok(DeskReport::AlreadyPrinted);
        }
        let slip = self.slip(&entry, kind, &receipt.slots)?;
        self.run_job(id, &slip, false)
    }

    /// Prints the visit's slip again, marked 再発行, and audits who asked.
    pub fn reprint(
        &mut self,
        visit: &str,
        asked_by: &OperatorId,
    ) -> Result<DeskReport, CashDeskError> {
        let entry = self
            .ledger
            .payment_for_visit(visit)?
            .ok_or_else(|| CashDeskError::NotPaid(visit.into()))?;
        let kind = slip_kind(&entry);
        let records = self.journal.records(visit)?;
        let slots = last_receipt(&records)
            .map(|r| r.slots.clone())
            .unwrap_or_default();
        let id = jobs::reprint(&self.ledger, entry.id, kind)?;
        let slip = self.slip(&entry, kind, &slots)?;
        let report = self.run_job(id, &slip, true);
        let mut record = audit::Record::new(
            OffsetDateTime::now_utc(),
            Some(asked_by),
            Action::ReceiptPrinted,
        )
        .details(
            Details::new()
                .flag("reprint", true)
                .flag("printed", report.is_ok()),
        );
        if let Some(v) = audit::VisitId::new(visit) {
            record = record.visit(&v);
        }
        self.audit.append(&record)?;
        report
    }

    fn run_job(
        &mut self,
        id: jobs::JobId,
        slip: &Slip,
        reprint: bool,
    ) -> Result<DeskReport, CashDeskError> {
        let paper = self.setup.paper();
        let printed = match (&mut self.link, &self.output) {
            (Some(link), _) => jobs::run_on_link(
                &self.ledger,
                id,
                slip,
                &self.font,
                link.as_mut(),
                &self.spool,
            ),
            (None, output) => jobs::run(
                &self.ledger,
                id,
                slip,
                paper,
                &self.font,
                output,
                &self.spool,
            ),
        }?;
        let job = jobs::job(&self.ledger, id)?.ok_or(LedgerError::Corrupt("receipt job"))?;
        let (report, where_to) = match printed {
            Printed::Queued { pdf, .. } => (DeskReport::Printed { pdf, notice: None }, "cups"),
            Printed::Usb { pdf, status } => (
                DeskReport::Printed {
                    pdf,
                    notice: status.notice_ja(),
                },
                "usb",
            ),
            Printed::Saved { pdf } => {
                tracing::info!(file = %pdf.display(), "receipt saved for staff to print");
                (DeskReport::Saved { pdf }, "saved")
            }
        };
        if !reprint {
            let mut record = audit::Record::new(
                OffsetDateTime::now_utc(),
                Some(&self.operator),
                Action::ReceiptPrinted,
            )
            .details(
                Details::new()
                    .name("output", where_to)
                    .count("copy", u64::from(job.copy))
                    .flag("marked_reissue", job.maybe_printed > 0),
            );
            if let Some(v) = audit::VisitId::new(&slip.case_number) {
                record = record.visit(&v);
            }
            self.audit.append(&record)?;
        }
        Ok(report)
    }

    /// The slip of a ledger entry, with what was issued from the visit's journal.
    fn slip(&self, entry: &Entry, kind: SlipKind, slots: &[Slot]) -> Result<Slip, CashDeskError> {
        let records = self.journal.records(&entry.visit_id)?;
        Ok(Slip {
            kind,
            municipality: self.setup.municipality.clone(),
            counter: self.setup.counter.clone(),
            at: entry.at,
            visit_kind: entry.visit_kind,
            fee_due: entry.fee_due,
            amount: entry.amount,
            method: entry.method,
            case_number: entry.visit_id.clone(),
            operator_id: entry.operator_id.clone(),
            issued: issued_items(&records, slots),
            name: None,
            reprint: false,
        })
    }
}

impl PrinterPort for LedgerPrinter {
    fn print_inquiry(&mut self, letter: &super::cases::InquiryLetter) -> Option<Event> {
        // The 照会書 is mailed, not handed over: it is saved as PDF beside the receipts.
        let dir = self.spool.parent().map(std::path::Path::to_path_buf).unwrap_or_else(|| self.spool.clone());
        super::ReceiptFile { dir }.print_inquiry(letter)
    }

    fn print(&mut self, receipt: &Receipt) -> Event {
        match self.print_original(receipt) {
            Ok(report) => {
                self.last = Some(report);
                Event::Printed
            }
            Err(e) => {
                tracing::warn!(error = %e, "receipt not printed");
                let failure = e.print_failure();
                self.last = Some(DeskReport::Failed {
                    notice: e.notice_ja(),
                });
                Event::PrintFailed { failure }
            }
        }
    }
}

/// A free visit pays nothing: its slip is the issuance record, not a receipt for 0 yen.
fn slip_kind(entry: &Entry) -> SlipKind {
    if entry.method == Method::Free {
        SlipKind::IssuanceRecord
    } else {
        SlipKind::Receipt
    }
}

fn opening_of(records: &[JournalRecord]) -> Option<&Opening> {
    records.iter().find_map(|r| match r {
        JournalRecord::Event {
            event: Event::VisitOpened(o),
            ..
        } => Some(o),
        _ => None,
    })
}

fn last_receipt(records: &[JournalRecord]) -> Option<&Receipt> {
    records.iter().rev().find_map(|r| match r {
        JournalRecord::Command {
            command: Command::PrintReceipt { receipt },
            ..
        } => Some(receipt),
        _ => None,
    })
}

/// The certificates of `slots`, with the validity end read from the issued certificate.
fn issued_items(records: &[JournalRecord], slots: &[Slot]) -> Vec<IssuedItem> {
    let certs = records.iter().rev().find_map(|r| match r {
        JournalRecord::Event {
            event: Event::CaIssued { certs, .. },
            ..
        } => Some(certs),
        _ => None,
    });
    slots
        .iter()
        .map(|slot| IssuedItem {
            what: match slot {
                Slot::Sign => "署名用電子証明書",
                Slot::Auth => "利用者証明用電子証明書",
            }
            .into(),
            valid_until: certs
                .and_then(|c| c.iter().find(|c| c.slot == *slot))
                .and_then(|c| not_after(&c.der)),
        })
        .collect()
}

/// The JST date of a certificate's notAfter.
fn not_after(der: &[u8]) -> Option<Date> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let secs = cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs();
    let at = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    Some(at.to_offset(JST).date())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_defaults_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            CounterSetup::load(dir.path()).unwrap(),
            CounterSetup::default()
        );
        std::fs::write(
            dir.path().join(SETUP_FILE),
            r#"{"municipality": "見本町", "fees": {"new_issuance": 200},
                "printer": {"usb": {"vendor": 1208, "product": 514}}, "payment": "cashless"}"#,
        )
        .unwrap();
        let s = CounterSetup::load(dir.path()).unwrap();
        assert_eq!(s.fees.new_issuance.0, 200);
        assert_eq!(
            s.output(),
            Output::Usb(UsbSelector {
                id: Some((0x04B8, 0x0202))
            })
        );
        assert_eq!(s.payment, PaymentSetup::Cashless);
        std::fs::write(dir.path().join(SETUP_FILE), r#"{"printr": "save"}"#).unwrap();
        assert!(matches!(
            CounterSetup::load(dir.path()),
            Err(CashDeskError::Setup { .. })
        ));
    }

    #[test]
    fn paper_out_is_the_only_paper_failure() {
        let e = CashDeskError::Print(PrintError::Usb(UsbError::PaperOut));
        assert_eq!(e.print_failure(), PrintFailure::OutOfPaper);
        assert!(e.notice_ja().contains("用紙を補充"));
        let e = CashDeskError::Print(PrintError::Usb(UsbError::NotFound));
        assert_eq!(e.print_failure(), PrintFailure::Offline);
        let e = CashDeskError::UnknownVisit("v".into());
        assert_eq!(e.print_failure(), PrintFailure::Offline);
    }
}
