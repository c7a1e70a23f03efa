//! The visit worker: runs the [`Driver`] with the real adapters on a thread of its own,
//! so the screens stay responsive while the card and the CA work. The worker and the
//! screens talk through two message types: [`ToUi`] (what to show) and [`FromUi`] (what
//! people answered).
//!
//! PINs cross from the resident pad to the worker as zeroizing strings inside
//! [`FromUi::Pin`], go straight into the driver's [`ResidentPad`](crate::issuance::adapters::ResidentPad)
//! and on to the card; they are never in a [`ToUi`] message, a log or a file.
//!
//! What it is not: the screens (see [`super::screens`]) or a decision maker (the state
//! machine decides; the worker only carries answers).

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use der::Decode;
use time::Date;
use zeroize::Zeroizing;

use crate::card::admin_key::MasterKey;
use crate::issuance::adapters::ca::{CaDirectory, CmpCa};
use crate::issuance::adapters::cases::{Records, SqliteCases};
use crate::issuance::adapters::printer::{CounterSetup, LedgerPrinter};
use crate::issuance::adapters::card::PcscCard;
use crate::issuance::adapters::script::{cmp_client_with, CaFiles, RunConfig};
use crate::issuance::adapters::store::{SqliteAudit, SqliteJournal};
use crate::issuance::adapters::{
    Counter, JournalPort, PadEntry, Stage, SystemClock,
};
use crate::issuance::command::{CardCommand, Command, Outcome, PadCommand, Screen};
use crate::issuance::driver::{Driver, Ports, Status, Timing};
use crate::issuance::event::{Event, Opening};
use crate::issuance::model::{Slot, Timestamp};

/// How often the clock ticks into a waiting visit.
const TICK: Duration = Duration::from_secs(5);
use crate::registry::sqlite::SqliteRegistry;
use crate::staff::OperatorId;

/// What the worker tells the screens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ToUi {
    /// A screen, notice or pad prompt of the visit.
    Show(Command),
    /// A card, CA, registry or printer command started or finished.
    Progress {
        /// The command.
        command: Command,
        /// Started or finished.
        stage: Stage,
    },
    /// The visit ended.
    Ended(Summary),
    /// The card is still in the reader after the visit (`true`), or was taken (`false`).
    CardLeft(bool),
    /// The worker stopped: the journal keeps the visit; the message is for staff.
    Stopped(String),
}

/// What people answered, for the worker.
#[non_exhaustive]
pub enum FromUi {
    /// Staff opened a visit.
    Open(Box<Opening>),
    /// An answer to the screen shown (form, identity documents, fee, cancel).
    Answer(Box<Event>),
    /// The resident finished a PIN entry on the pad: a new PIN (typed twice, equal) or
    /// the confirmation of one.
    Pin {
        /// Which PIN.
        slot: Slot,
        /// `true` for the confirmation entry of the self-test.
        confirm: bool,
        /// What was typed; zeroized on drop.
        typed: Zeroizing<String>,
    },
    /// Go on with the step announced by the last [`ToUi::Progress`] (lock-step mode only).
    Go,
    /// The kiosk is shutting down.
    Quit,
}

impl std::fmt::Debug for FromUi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FromUi::Open(o) => write!(f, "Open({})", o.visit.0),
            FromUi::Answer(e) => write!(f, "Answer({})", e.name()),
            FromUi::Pin { slot, confirm, .. } => write!(f, "Pin({slot:?}, confirm: {confirm})"),
            FromUi::Go => f.write_str("Go"),
            FromUi::Quit => f.write_str("Quit"),
        }
    }
}

/// The end of a visit as staff see it.
#[derive(Debug, Clone)]
pub struct Summary {
    /// How it ended.
    pub outcome: Outcome,
    /// Each certificate written to the card, with the last day it is valid.
    pub issued: Vec<(Slot, Date)>,
    /// Where the receipt went, for staff.
    pub receipt: Option<String>,
    /// Time spent by adapter.
    pub timing: Timing,
}

/// Where the worker finds its peers and files.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The kiosk's data directory (journal, audit log, registry, receipts).
    pub data: PathBuf,
    /// The files for talking to the CA.
    pub ca: CaFiles,
    /// The CA's CMP URL.
    pub ca_url: String,
    /// The PC/SC reader.
    pub reader: CString,
    /// How long a card may stay in the reader after a visit before staff are alerted.
    pub card_left_after: Duration,
    /// The whole-request timeout of a CMP exchange with the CA.
    pub ca_timeout: Duration,
    /// Lock-step: each card, CA, registry and printer step waits for [`FromUi::Go`] after
    /// it is announced, so the demo and the UI tests can capture (or disturb) every step.
    pub lockstep: bool,
    /// The issuer's master key the card administration keys derive from.
    pub admin_key: MasterKey,
}

/// The counter as the driver sees it from the worker thread: every screen goes to the
/// UI; screens that need a person block until the UI answers.
struct ChannelCounter<'a> {
    send: &'a (dyn Fn(ToUi) + Send + Sync),
    from_ui: &'a Receiver<FromUi>,
    issued: Vec<(Slot, Date)>,
    quit: bool,
    lockstep: bool,
}

/// Screens and prompts that wait for a person.
fn needs_person(command: &Command) -> bool {
    matches!(
        command,
        Command::Show { screen: Screen::Form | Screen::IdentityCheck | Screen::CollectFee { .. } }
            | Command::Pad { pad: PadCommand::AskNew { .. } | PadCommand::AskConfirm { .. } }
    )
}

impl Counter for ChannelCounter<'_> {
    fn answer(&mut self, command: &Command, pad: &mut PadEntry<'_>) -> Option<Event> {
        (self.send)(ToUi::Show(command.clone()));
        if !needs_person(command) || self.quit {
            return None;
        }
        loop {
            match self.from_ui.recv() {
                Ok(FromUi::Answer(event)) => return Some(*event),
                Ok(FromUi::Pin { slot, confirm, typed }) => {
                    // The pad checked the format already; a refusal here means the pad
                    // and the card rules disagree, so ask again rather than guess.
                    let entered = if confirm {
                        pad.enter_confirmation(slot, typed)
                    } else {
                        pad.enter_new(slot, typed)
                    };
                    match entered {
                        Ok(()) if confirm => return Some(Event::PadConfirmed { slot }),
                        Ok(()) => return Some(Event::PadReady { slot }),
                        Err(_) => (self.send)(ToUi::Show(command.clone())),
                    }
                }
                Ok(FromUi::Open(_)) => {
                    tracing::warn!("a visit is already open; the new one is ignored");
                }
                Ok(FromUi::Go) => {}
                Ok(FromUi::Quit) | Err(_) => {
                    self.quit = true;
                    return None;
                }
            }
        }
    }

    fn progress(&mut self, command: &Command, stage: Stage) {
        if let (Command::Card { card: CardCommand::WriteCert { slot, der } }, Stage::Finished { failed: false }) =
            (command, stage)
        {
            if let Some(until) = not_after(&der.0) {
                self.issued.retain(|(s, _)| s != slot);
                self.issued.push((*slot, until));
            }
        }
        (self.send)(ToUi::Progress { command: command.clone(), stage });
        if self.lockstep && stage == Stage::Started && !self.quit {
            loop {
                match self.from_ui.recv() {
                    Ok(FromUi::Go) => break,
                    Ok(FromUi::Quit) | Err(_) => {
                        self.quit = true;
                        break;
                    }
                    Ok(other) => tracing::debug!(message = ?other, "ignored while a step waits"),
                }
            }
        }
    }
}

/// The last day a certificate is valid (its notAfter, in UTC).
fn not_after(der: &[u8]) -> Option<Date> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let t = cert.tbs_certificate.validity.not_after.to_unix_duration();
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(t.as_secs()).ok()?).ok()?;
    Some(at.date())
}

/// Runs visits until the UI says [`FromUi::Quit`] or hangs up: resumes the visit the
/// journal left open, then waits for [`FromUi::Open`]. Each message for the screens goes
/// through `send`.
pub fn run(cfg: &WorkerConfig, operator: &OperatorId, from_ui: &Receiver<FromUi>, send: &(dyn Fn(ToUi) + Send + Sync)) {
    let mut resume = true;
    let mut next: Option<Opening> = None;
    loop {
        let opening = if resume {
            resume = false;
            None
        } else if let Some(o) = next.take() {
            Some(o)
        } else {
            match from_ui.recv() {
                Ok(FromUi::Open(o)) => Some(*o),
                Ok(FromUi::Quit) | Err(_) => return,
                Ok(other) => {
                    tracing::debug!(message = ?other, "no visit is open; ignored");
                    continue;
                }
            }
        };
        match one_visit(cfg, operator, opening, from_ui, send) {
            Ok(VisitEnd::Ended(summary)) => {
                send(ToUi::Ended(summary));
                match watch_card_left(cfg, from_ui, send) {
                    AfterVisit::Quit => return,
                    AfterVisit::Open(o) => next = Some(o),
                    AfterVisit::Idle => {}
                }
            }
            Ok(VisitEnd::NoneOpen) => {}
            Ok(VisitEnd::Quit) => return,
            Err(message) => {
                tracing::warn!(error = %message, "visit stopped");
                send(ToUi::Stopped(message));
                return;
            }
        }
    }
}

enum VisitEnd {
    Ended(Summary),
    NoneOpen,
    Quit,
}

fn one_visit(
    cfg: &WorkerConfig,
    operator: &OperatorId,
    opening: Option<Opening>,
    from_ui: &Receiver<FromUi>,
    send: &(dyn Fn(ToUi) + Send + Sync),
) -> Result<VisitEnd, String> {
    // The audit log and the ledger name the operator who opened the visit; a visit resumed
    // from the journal at start-up goes under `operator` (the kiosk's own id).
    let signed_in = opening.as_ref().and_then(|o| OperatorId::new(&o.operator));
    let operator = signed_in.as_ref().unwrap_or(operator);
    let run_cfg = RunConfig {
        data: cfg.data.clone(),
        ca: cfg.ca.clone(),
        ca_url: cfg.ca_url.clone(),
        reader: cfg.reader.clone(),
        visit: String::new(),
        operator: operator.clone(),
        crash_after_record: None,
    };
    let ctx = crate::card::transport::establish().map_err(|e| format!("pcscd: {e}"))?;
    let timeout = cfg.ca_timeout;
    let client = || {
        cmp_client_with(&run_cfg, |http| {
            http.timeout = timeout;
            http.connect_timeout = http.connect_timeout.min(timeout);
        })
        .map_err(|e| e.to_string())
    };
    let mut card = PcscCard::new(ctx, cfg.reader.clone(), cfg.admin_key.bytes())
        .with_directory(Box::new(CaDirectory(client()?)));
    let mut ca = CmpCa::new(client()?);
    let registry = SqliteRegistry::open(&cfg.data.join("registry.db")).map_err(|e| format!("registry: {e}"))?;
    let journal = SqliteJournal::open(&cfg.data.join("journal.db")).map_err(|e| format!("journal: {e}"))?;
    let open_visit = journal.unfinished().map_err(|e| format!("journal: {e}"))?.is_some();
    let audit = SqliteAudit::open(&cfg.data.join("audit.db"), operator.clone()).map_err(|e| format!("audit: {e}"))?;
    let mut counter = ChannelCounter { send, from_ui, issued: Vec::new(), quit: false, lockstep: cfg.lockstep };
    let receipts = cfg.data.join("receipts");
    let desk = CounterSetup::load(&cfg.data).map_err(|e| format!("counter setup: {e}"))?;
    let printer = LedgerPrinter::open(&cfg.data, desk, operator.clone()).map_err(|e| format!("cash desk: {e}"))?;
    std::fs::create_dir_all(&receipts).map_err(|e| format!("{}: {e}", receipts.display()))?;
    let ports = Ports {
        card: Box::new(&mut card),
        ca: Box::new(&mut ca),
        registry: Box::new(Records {
            registry,
            cases: SqliteCases::open(&cfg.data.join("cases.db")).map_err(|e| format!("case file: {e}"))?,
        }),
        printer: Box::new(printer),
        counter: Box::new(&mut counter),
        journal: Box::new(journal),
        audit: Box::new(audit),
        clock: Box::new(SystemClock),
    };
    let (mut driver, mut status) = match (opening, open_visit) {
        (_, true) => Driver::resume(ports).map_err(|e| e.to_string())?.ok_or("the open visit vanished")?,
        (Some(opening), false) => Driver::open(ports, opening).map_err(|e| e.to_string())?,
        (None, false) => return Ok(VisitEnd::NoneOpen),
    };
    let mut last_tick = std::time::Instant::now();
    let visit_id = loop {
        match status {
            Status::Ended(_) => break driver_visit_id(&driver),
            Status::Waiting => {
                // The card or the CA left the driver waiting (people block in the
                // counter): look for the card again shortly, and let the clock tick so a
                // CA that was down is tried again when its wait is over.
                match from_ui.recv_timeout(Duration::from_millis(300)) {
                    Ok(FromUi::Quit) | Err(RecvTimeoutError::Disconnected) => return Ok(VisitEnd::Quit),
                    Ok(FromUi::Answer(e)) => status = driver.feed(*e).map_err(|e| e.to_string())?,
                    _ => {
                        status = driver.wake().map_err(|e| e.to_string())?;
                        if status == Status::Waiting && last_tick.elapsed() >= TICK {
                            last_tick = std::time::Instant::now();
                            let now = Timestamp(time::OffsetDateTime::now_utc().unix_timestamp());
                            status = driver.feed(Event::Tick { now }).map_err(|e| e.to_string())?;
                        }
                    }
                }
            }
        }
    };
    let timing = driver.timing().clone();
    let outcome = driver.visit().outcome().cloned().unwrap_or(Outcome::Cancelled);
    drop(driver);
    if counter.quit {
        return Ok(VisitEnd::Quit);
    }
    let receipt = std::fs::read_dir(&receipts)
        .ok()
        .and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(&visit_id)))
                .max()
        })
        .map(|p| format!("領収書を保存しました: {}", p.display()));
    Ok(VisitEnd::Ended(Summary { outcome, issued: counter.issued, receipt, timing }))
}

fn driver_visit_id(driver: &Driver<'_>) -> String {
    driver.id().to_string()
}

enum AfterVisit {
    Idle,
    Open(Opening),
    Quit,
}

/// After a visit: alerts the screens when the card stays in the reader longer than
/// `card_left_after`, until it is taken (or staff open the next visit).
fn watch_card_left(cfg: &WorkerConfig, from_ui: &Receiver<FromUi>, send: &(dyn Fn(ToUi) + Send + Sync)) -> AfterVisit {
    let Ok(ctx) = crate::card::transport::establish() else { return AfterVisit::Idle };
    let mut watch = super::watch::CardLeftWatch::new(cfg.card_left_after);
    let started = std::time::Instant::now();
    loop {
        let present = crate::card::transport::card_present(&ctx, &cfg.reader).unwrap_or(false);
        match watch.observe(started.elapsed(), present) {
            Some(alert) => send(ToUi::CardLeft(alert)),
            None => {}
        }
        if !present {
            return AfterVisit::Idle;
        }
        match from_ui.recv_timeout(Duration::from_millis(250)) {
            Ok(FromUi::Quit) | Err(RecvTimeoutError::Disconnected) => return AfterVisit::Quit,
            Ok(FromUi::Open(o)) => {
                if watch.alerting() {
                    send(ToUi::CardLeft(false));
                }
                return AfterVisit::Open(*o);
            }
            _ => {}
        }
    }
}
