//! A whole visit walked through the real screens with no display: the headless demo and
//! the UI tests. It starts the real peers (a private pcscd with vpcd and a factory-fresh
//! `jpki-vcard`, `jpki-ca` on loopback, SQLite files), runs the visit worker, builds the
//! kiosk's windows on Slint's testing backend, and lets a scripted person
//! ([`super::walker`]) sign in, fill the form, record the documents, type PINs on the
//! resident pad and take the fee, reading what each screen shows.
//!
//! Disturbances for the tests (the card pulled while certificates are written, the CA
//! not answering, wrong PINs) are made to the real peers at a step the worker announces,
//! in lock-step, so every run takes the same path.
//!
//! What it is not: a second code path. The windows, callbacks, worker, driver, adapters
//! and peers are the ones the counter uses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::{Duration, Instant};

use slint::ComponentHandle;
use zeroize::Zeroizing;

use super::screens::{Kiosk, KioskOptions};
use super::session::{self, FromUi, Summary, ToUi, WorkerConfig};
use super::walker::{self, tap, type_into, WalkError};
use crate::issuance::adapters::script::CaFiles;
use crate::issuance::adapters::Stage;
use crate::issuance::command::{CaCommand, CardCommand, Command, Outcome, PadCommand, Screen};
use crate::issuance::model::Slot;
use crate::peers::ca_process::CaProcess;
use crate::peers::card_stack::{CardProcess, CardStack};
use crate::registry::sqlite::SqliteRegistry;
use crate::registry::{ResidentId, ResidentRecord, ResidentRegistry};
use crate::staff::{NewOperator, OperatorId, Passphrase, Role, StaffDirectory};
use crate::ui::pinpad::KeyOrder;
use crate::ui::{ResidentAdapter, StaffAdapter};

/// The demo operator's id.
pub const DEMO_OPERATOR: &str = "demo-staff";
/// The demo operator's passphrase (a staff sign-in, not a resident's PIN).
pub const DEMO_OPERATOR_PASSPHRASE: &str = "wakaba-counter-2026";
/// The demo resident: 𠮷田　花子, whose 𠮷 needs a 代替文字.
pub const DEMO_RESIDENT: &str = crate::registry::sample::ids::YOSHIDA;

/// What to walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// The data directory; what a previous walk left there is replaced.
    pub data: PathBuf,
    /// The resident's registry id (宛名番号).
    pub resident: String,
    /// The auth PIN the resident sets.
    pub auth_pin: Zeroizing<String>,
    /// The signing password the resident sets.
    pub sign_password: Zeroizing<String>,
    /// Staff untick the signing certificate on the form.
    pub decline_sign: bool,
    /// Wrong auth PINs the resident types at the self-test before the right one.
    pub wrong_confirms: u8,
    /// The card is pulled when the first certificate is about to be written, and put
    /// back when the kiosk asks for it.
    pub pull_card_at_write: bool,
    /// The CA stops answering when the first request is about to be sent (the kiosk
    /// times out), and answers again when the kiosk shows it is waiting.
    pub ca_silent_at_submit: bool,
    /// The CA's request timeout.
    pub ca_timeout: Duration,
    /// Write a PNG of every screen passed to `data/screens/`.
    pub screenshots: bool,
}

impl WalkOptions {
    /// A new issuance for `resident` with the given PINs and nothing disturbed.
    pub fn new(data: PathBuf, resident: &str, auth_pin: &str, sign_password: &str) -> WalkOptions {
        WalkOptions {
            data,
            resident: resident.to_string(),
            auth_pin: Zeroizing::new(auth_pin.to_string()),
            sign_password: Zeroizing::new(sign_password.to_string()),
            decline_sign: false,
            wrong_confirms: 0,
            pull_card_at_write: false,
            ca_silent_at_submit: false,
            ca_timeout: Duration::from_secs(30),
            screenshots: false,
        }
    }
}

/// What the screens showed at one step.
#[derive(Debug, Clone)]
pub struct Shown {
    /// What happened (a command or event name).
    pub step: String,
    /// The staff window's screen.
    pub staff_screen: String,
    /// The resident window's screen.
    pub resident_screen: String,
    /// Every text the staff window showed.
    pub staff: Vec<String>,
    /// Every text the resident window showed.
    pub resident: Vec<String>,
}

/// What a walk saw.
#[derive(Debug, Clone)]
pub struct WalkReport {
    /// The end of the visit.
    pub summary: Summary,
    /// Each step's screens.
    pub shown: Vec<Shown>,
    /// The PNGs written.
    pub screenshots: Vec<PathBuf>,
    /// Seconds from the start to the end of the visit.
    pub seconds: f64,
}

impl WalkReport {
    /// Whether any step showed `text` on the staff (or resident) window.
    pub fn showed(&self, resident: bool, text: &str) -> bool {
        self.shown.iter().any(|s| if resident { &s.resident } else { &s.staff }.iter().any(|t| t.contains(text)))
    }
}

/// Why a walk stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A peer or file could not be set up.
    #[error("{what}: {detail}")]
    Setup {
        /// What.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The scripted person could not do a step on the screens.
    #[error("on the screen: {0}")]
    Walk(#[from] WalkError),
    /// Nothing happened for too long.
    #[error("no progress for {0:?} (last: {1})")]
    Stalled(Duration, String),
    /// The visit worker stopped.
    #[error("the visit stopped: {0}")]
    Worker(String),
    /// A PIN appeared on a screen.
    #[error("a PIN was shown on the {0} window")]
    PinShown(&'static str),
}

fn setup(what: &'static str) -> impl Fn(String) -> DemoError {
    move |detail| DemoError::Setup { what, detail }
}

/// Removes what an earlier walk left in `data` (its own files only).
fn clear_previous(data: &Path) -> Result<(), DemoError> {
    for name in ["card.vcard", "ca", "screens", "receipts", "stack"] {
        let p = data.join(name);
        let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        if let Err(e) = r {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(setup("data directory")(format!("{}: {e}", p.display())));
            }
        }
    }
    for entry in std::fs::read_dir(data).map_err(|e| setup("data directory")(e.to_string()))?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.contains(".db") || name == "doctor-last.json" {
            std::fs::remove_file(entry.path()).map_err(|e| setup("data directory")(format!("{name}: {e}")))?;
        }
    }
    Ok(())
}

/// The staff directory with the demo operator (a supervisor), enrolled on first use.
fn enrol_demo_operator(data: &Path) -> Result<(), DemoError> {
    let mut dir = StaffDirectory::open(&data.join("staff.db")).map_err(|e| setup("staff.db")(e.to_string()))?;
    let id = OperatorId::new(DEMO_OPERATOR).expect("a valid id");
    if dir.operator(&id).map_err(|e| setup("staff.db")(e.to_string()))?.is_some() {
        return Ok(());
    }
    let passphrase = Passphrase::new(DEMO_OPERATOR_PASSPHRASE.to_string()).expect("a valid passphrase");
    let new = NewOperator { id, display_name: "若葉 太郎".into(), role: Role::Supervisor, passphrase };
    dir.enrol(None, new, time::OffsetDateTime::now_utc()).map_err(|e| setup("staff.db")(e.to_string()))?;
    Ok(())
}

/// The resident's registry record (the sample town, seeded on first use).
pub fn demo_resident(data: &Path, id: &str) -> Result<ResidentRecord, DemoError> {
    let mut registry = SqliteRegistry::open(&data.join("registry.db")).map_err(|e| setup("registry")(e.to_string()))?;
    if registry.is_empty().map_err(|e| setup("registry")(e.to_string()))? {
        registry.seed_sample().map_err(|e| setup("registry")(e.to_string()))?;
    }
    let rid = ResidentId::new(id).map_err(|e| setup("resident")(e.to_string()))?;
    registry
        .by_id(&rid)
        .map_err(|e| setup("registry")(e.to_string()))?
        .ok_or_else(|| setup("resident")(format!("{id} is not in the sample registry")))
}

/// The screens' names for file names and reports.
fn screen_names(kiosk: &Kiosk) -> (String, String) {
    let staff = format!("{:?}", kiosk.staff.global::<StaffAdapter>().get_screen()).to_lowercase();
    let resident = format!("{:?}", kiosk.resident.global::<ResidentAdapter>().get_screen()).to_lowercase();
    (staff, resident)
}

/// Records what both windows show, checks no PIN is among it, and writes PNGs of the
/// windows whose picture changed.
struct Camera {
    dir: Option<PathBuf>,
    last: [Vec<u8>; 2],
    written: Vec<PathBuf>,
    shown: Vec<Shown>,
    pins: Vec<Zeroizing<String>>,
}

impl Camera {
    fn capture(&mut self, kiosk: &Kiosk, step: &str) -> Result<(), DemoError> {
        let staff = walker::shown_text(&kiosk.staff);
        let resident = walker::shown_text(&kiosk.resident);
        for pin in &self.pins {
            if staff.iter().any(|t| t.contains(pin.as_str())) {
                return Err(DemoError::PinShown("staff"));
            }
            if resident.iter().any(|t| t.contains(pin.as_str())) {
                return Err(DemoError::PinShown("resident"));
            }
        }
        let (staff_screen, resident_screen) = screen_names(kiosk);
        if let Some(dir) = &self.dir {
            let windows: [(&slint::Window, &str, &str); 2] = [
                (kiosk.staff.window(), "staff", staff_screen.as_str()),
                (kiosk.resident.window(), "resident", resident_screen.as_str()),
            ];
            for (i, (window, side, name)) in windows.into_iter().enumerate() {
                slint::platform::update_timers_and_animations();
                let pixels = window.take_snapshot().map_err(|e| setup("screenshot")(e.to_string()))?;
                if pixels.as_bytes() == self.last[i].as_slice() {
                    continue;
                }
                self.last[i] = pixels.as_bytes().to_vec();
                let path = dir.join(format!("{:02}-{side}-{name}.png", self.written.len() + 1));
                crate::ui::render::write_png(&pixels, &path).map_err(|e| setup("screenshot")(e.to_string()))?;
                self.written.push(path);
            }
        }
        self.shown.push(Shown { step: step.to_string(), staff_screen, resident_screen, staff, resident });
        Ok(())
    }
}

/// A driving-licence number for the demo that holds none of the PINs (the walk checks
/// that no screen ever shows a PIN, and a number is shown on the identity screen).
fn licence_number(pins: &[Zeroizing<String>]) -> String {
    let mut digits = *b"508009265170";
    for _ in 0..digits.len() {
        let number = String::from_utf8_lossy(&digits).into_owned();
        if !pins.iter().any(|p| number.contains(p.as_str())) {
            return format!("第{number}号");
        }
        digits.rotate_left(1);
        digits[11] = b'0' + (digits[11] - b'0' + 3) % 10;
    }
    "第ABC号".into()
}

fn step_name(command: &Command) -> String {
    match command {
        Command::Show { screen } => format!("show {}", serde_json::to_value(screen).ok().and_then(|v| v.get("screen").and_then(|s| s.as_str()).map(String::from)).unwrap_or_default()),
        Command::Notify { problem } => format!("notice {}", crate::issuance::notice_for(problem).what),
        Command::Pad { pad } => match pad {
            PadCommand::AskNew { slot } => format!("pad: new {slot:?} PIN"),
            PadCommand::AskConfirm { slot } => format!("pad: confirm {slot:?} PIN"),
            _ => "pad".into(),
        },
        Command::Card { card } => format!("card {}", serde_json::to_value(card).ok().and_then(|v| v.get("op").or(v.get("kind")).and_then(|s| s.as_str()).map(String::from)).unwrap_or_else(|| format!("{:?}", std::mem::discriminant(card)))),
        Command::Ca { .. } => "CA".into(),
        Command::RegistryFetch { .. } => "registry".into(),
        Command::PrintReceipt { .. } => "receipt".into(),
        _ => "step".into(),
    }
}

/// The peers of a demo or walk: the private card stack with a factory-fresh card in
/// `data/card.vcard`, and the CA with its files in `data/ca/`.
pub struct Peers {
    /// pcscd with vpcd.
    pub stack: CardStack,
    /// The virtual card.
    pub card: CardProcess,
    /// The CA.
    pub ca: CaProcess,
    /// The card's reader.
    pub reader: std::ffi::CString,
}

impl Peers {
    /// Starts them, saying what starts through `say`. Replaces what an earlier demo left
    /// in `data`; seeds the sample registry and enrols the demo operator.
    pub fn start(data: &Path, say: &mut dyn FnMut(&str)) -> Result<Peers, DemoError> {
        std::fs::create_dir_all(data).map_err(|e| setup("data directory")(e.to_string()))?;
        clear_previous(data)?;
        say("pcscd + vpcd (private namespaces) and a factory-fresh virtual card");
        let mut stack = CardStack::start(&data.join("stack")).map_err(|e| setup("card stack")(e.to_string()))?;
        let card = stack
            .start_card(0, &data.join("card.vcard"), &[])
            .map_err(|e| setup("virtual card")(e.to_string()))?;
        let reader = stack.reader_name(0).map_err(|e| setup("reader")(e.to_string()))?;
        say("jpki-ca on loopback (CMP over HTTPS with the RA certificate)");
        let ca = CaProcess::start(&data.join("ca")).map_err(|e| setup("jpki-ca")(e.to_string()))?;
        enrol_demo_operator(data)?;
        Ok(Peers { stack, card, ca, reader })
    }
}

/// Walks one visit. Prints each step to `out`.
pub fn walk(opts: &WalkOptions, out: &mut dyn Write) -> Result<WalkReport, DemoError> {
    let started = Instant::now();
    let data = opts.data.as_path();
    let mut say = |line: &str| {
        let _ = writeln!(out, "[{:6.2} s] {line}", started.elapsed().as_secs_f64());
    };

    let Peers { stack, mut card, mut ca, reader } = Peers::start(data, &mut say)?;
    let record = demo_resident(data, &opts.resident)?;
    if opts.screenshots {
        std::fs::create_dir_all(data.join("screens")).map_err(|e| setup("screens")(e.to_string()))?;
    }

    let cfg = WorkerConfig {
        data: data.to_path_buf(),
        ca: CaFiles::in_dir(&data.join("ca")),
        ca_url: ca.cmp_url(),
        reader,
        card_left_after: Duration::from_secs(2),
        ca_timeout: opts.ca_timeout,
        lockstep: true,
        admin_key: crate::card::admin_key::MasterKey::demo(),
    };
    let operator = OperatorId::new(DEMO_OPERATOR).expect("a valid id");
    let (to_worker, worker_rx) = channel::<FromUi>();
    let (to_ui, ui_rx) = channel::<ToUi>();
    let worker = std::thread::Builder::new()
        .name("visit".into())
        .spawn(move || {
            let send = move |m: ToUi| {
                let _ = to_ui.send(m);
            };
            session::run(&cfg, &operator, &worker_rx, &send);
        })
        .map_err(|e| setup("worker")(e.to_string()))?;

    crate::ui::render::ensure_testing_platform();
    let kiosk = Kiosk::new(
        to_worker.clone(),
        KioskOptions {
            data: data.to_path_buf(),
            key_order: KeyOrder::Shuffled,
            idle_timeout: Duration::from_secs(120),
            fees: Default::default(),
        },
    )
    .map_err(|e| setup("windows")(e.to_string()))?;
    for w in [kiosk.staff.window(), kiosk.resident.window()] {
        w.set_size(slint::PhysicalSize::new(crate::ui::render::WIDTH, crate::ui::render::HEIGHT));
        w.show().map_err(|e| setup("windows")(e.to_string()))?;
    }
    let mut camera = Camera {
        dir: opts.screenshots.then(|| data.join("screens")),
        last: [Vec::new(), Vec::new()],
        written: Vec::new(),
        shown: Vec::new(),
        pins: vec![opts.auth_pin.clone(), opts.sign_password.clone()],
    };

    say("staff: sign in");
    camera.capture(&kiosk, "sign-in")?;
    type_into(&kiosk.staff, "職員番号", DEMO_OPERATOR)?;
    type_into(&kiosk.staff, "パスフレーズ", DEMO_OPERATOR_PASSPHRASE)?;
    tap(&kiosk.staff, "サインイン")?;
    camera.capture(&kiosk, "visit type")?;
    say("staff: 新規発行");
    tap(&kiosk.staff, "新規発行（署名用・利用者証明用の電子証明書）")?;

    let mut wrong_left = opts.wrong_confirms;
    // The CA is silenced once, at the first request, and answers again for the re-send.
    let (mut pulled, mut silenced, mut was_silenced) = (false, false, false);
    let mut forms = 0;
    let wait = Duration::from_secs(60) + 4 * opts.ca_timeout;
    let mut last = String::from("visit opened");
    let summary = loop {
        let message = match ui_rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => return Err(DemoError::Stalled(wait, last)),
            Err(RecvTimeoutError::Disconnected) => return Err(DemoError::Worker("the worker ended".into())),
        };
        kiosk.present(message.clone());
        match message {
            ToUi::Show(command) => {
                last = step_name(&command);
                say(&last);
                camera.capture(&kiosk, &last)?;
                match &command {
                    Command::Show { screen: Screen::Form } => {
                        forms += 1;
                        // A second form means the first was sent back: staff decline
                        // what the notice says cannot be issued.
                        walker::fill_form(&kiosk.staff, &record, !opts.decline_sign && forms == 1)?;
                        camera.capture(&kiosk, "form filled in")?;
                        tap(&kiosk.staff, "入力内容を確定する")?;
                    }
                    Command::Show { screen: Screen::IdentityCheck } => {
                        walker::record_identity(&kiosk.staff, &licence_number(&camera.pins))?;
                        camera.capture(&kiosk, "documents entered")?;
                        tap(&kiosk.staff, "本人確認を記録する")?;
                    }
                    Command::Show { screen: Screen::CollectFee { amount } } => {
                        tap(&kiosk.staff, if amount.is_free() { "領収書を印刷する" } else { "受領して領収書を印刷する" })?;
                    }
                    Command::Show { screen: Screen::ReinsertCard { .. } } if pulled => {
                        say("resident: puts the card back");
                        card.restart().map_err(|e| setup("virtual card")(e.to_string()))?;
                    }
                    Command::Show { screen: Screen::WaitingForCa } if silenced => {
                        say("the CA answers again; staff: 今すぐ再送する");
                        ca.resume();
                        silenced = false;
                        tap(&kiosk.staff, "今すぐ再送する")?;
                    }
                    Command::Pad { pad: PadCommand::AskNew { slot } } => {
                        let pin = if *slot == Slot::Auth { &opts.auth_pin } else { &opts.sign_password };
                        walker::enter_pin(&kiosk.resident, pin)?;
                        camera.capture(&kiosk, "pad: confirm the new PIN")?;
                        walker::enter_pin(&kiosk.resident, pin)?;
                    }
                    Command::Pad { pad: PadCommand::AskConfirm { slot } } => {
                        let right = if *slot == Slot::Auth { &opts.auth_pin } else { &opts.sign_password };
                        if *slot == Slot::Auth && wrong_left > 0 {
                            wrong_left -= 1;
                            let wrong = Zeroizing::new(if right.as_str() == "9999" { "1111".to_string() } else { "9999".to_string() });
                            say("resident: types a wrong PIN");
                            walker::enter_pin(&kiosk.resident, &wrong)?;
                        } else {
                            walker::enter_pin(&kiosk.resident, right)?;
                        }
                    }
                    _ => {}
                }
            }
            ToUi::Progress { command, stage } => {
                if stage == Stage::Started {
                    last = step_name(&command);
                    say(&format!("  {last}"));
                    match &command {
                        Command::Card { card: CardCommand::WriteCert { .. } } if opts.pull_card_at_write && !pulled => {
                            say("resident: pulls the card out");
                            pulled = true;
                            card.kill().map_err(|e| setup("virtual card")(e.to_string()))?;
                        }
                        Command::Ca { ca: CaCommand::Submit { .. } } if opts.ca_silent_at_submit && !was_silenced => {
                            say("the CA stops answering");
                            silenced = true;
                            was_silenced = true;
                            ca.pause();
                        }
                        _ => {}
                    }
                    let _ = to_worker.send(FromUi::Go);
                }
            }
            ToUi::Ended(summary) => {
                say(&format!("visit ended: {:?}", summary.outcome));
                camera.capture(&kiosk, "ended")?;
                break summary;
            }
            ToUi::CardLeft(_) => {}
            ToUi::Stopped(message) => return Err(DemoError::Worker(message)),
        }
    };
    let seconds = started.elapsed().as_secs_f64();

    // The card stays in the reader: the kiosk raises the alert, the resident takes it.
    if matches!(ui_rx.recv_timeout(Duration::from_secs(10)), Ok(ToUi::CardLeft(true))) {
        kiosk.present(ToUi::CardLeft(true));
        say("card left in the reader: alert shown");
        camera.capture(&kiosk, "card left behind")?;
    }
    say("resident: takes the card");
    card.kill().map_err(|e| setup("virtual card")(e.to_string()))?;
    if let Ok(ToUi::CardLeft(false)) = ui_rx.recv_timeout(Duration::from_secs(10)) {
        kiosk.present(ToUi::CardLeft(false));
    }
    tap(&kiosk.staff, "次の方へ")?;
    camera.capture(&kiosk, "next")?;
    let _ = to_worker.send(FromUi::Quit);
    drop(to_worker);
    let _ = worker.join();
    drop(kiosk);
    drop(card);
    drop(ca);
    drop(stack);
    if matches!(summary.outcome, Outcome::Failed { .. }) {
        say("the visit failed; see the result screen");
    }
    Ok(WalkReport { summary, shown: camera.shown, screenshots: camera.written, seconds })
}
