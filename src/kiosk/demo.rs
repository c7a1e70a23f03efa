//! `jpki-kiosk demo`: the kiosk on embedded defaults — a factory-fresh virtual card behind
//! a private pcscd, the reference CA on loopback, SQLite files and the sample town's
//! registry — with the windows on a display, or walked headless where there is none.
//!
//! Headless, a scripted visit (a new issuance for a resident whose name needs a 代替文字)
//! goes through the real views ([`super::walk`]); each step is printed, and a PNG of every
//! screen passed is written to `DIR/screens/`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::channel;
use std::time::Duration;

use slint::ComponentHandle;
use zeroize::Zeroizing;

use super::screens::{both_calendars, Kiosk, KioskOptions};
use super::session::{FromUi, WorkerConfig};
use super::walk::{self, DemoError, Peers, WalkOptions, DEMO_OPERATOR, DEMO_OPERATOR_PASSPHRASE};
use crate::card::admin_key::MasterKey;
use crate::issuance::adapters::script::CaFiles;
use crate::issuance::model::Slot;
use crate::staff::OperatorId;
use crate::ui::pinpad::KeyOrder;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where everything goes.
    pub data: PathBuf,
    /// Walk headless even if a display exists.
    pub headless: bool,
    /// The resident (registry id).
    pub resident: String,
    /// The auth PIN the scripted resident sets.
    pub auth_pin: Zeroizing<String>,
    /// The signing password the scripted resident sets.
    pub sign_password: Zeroizing<String>,
}

/// Whether a display is there to open windows on.
pub fn display_available() -> bool {
    ["WAYLAND_DISPLAY", "DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Runs the demo.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<(), DemoError> {
    if !opts.headless && display_available() {
        return run_windows(opts, out);
    }
    let mut walk_opts = WalkOptions::new(opts.data.clone(), &opts.resident, &opts.auth_pin, &opts.sign_password);
    walk_opts.screenshots = true;
    let _ = writeln!(out, "jpki-kiosk demo (headless): a new issuance walked through the kiosk's screens");
    let report = walk::walk(&walk_opts, out)?;
    let data = &opts.data;
    let _ = writeln!(out);
    let _ = writeln!(out, "outcome: {:?} in {:.1} s", report.summary.outcome, report.seconds);
    for (slot, until) in &report.summary.issued {
        let what = if *slot == Slot::Sign { "署名用電子証明書" } else { "利用者証明用電子証明書" };
        let _ = writeln!(out, "  {what}: 有効期限 {}", both_calendars(*until));
    }
    let audit = crate::audit::verify_file(&data.join("audit.db"));
    match &audit {
        Ok(r) => {
            let _ = writeln!(out, "audit log: {} entries, hash chain intact", r.entries);
        }
        Err(e) => {
            let _ = writeln!(out, "audit log: NOT intact: {e}");
        }
    }
    let _ = writeln!(out, "written under {}:", data.display());
    let _ = writeln!(out, "  card.vcard          the issued card (jpki-vcard serve --state {}/card.vcard)", data.display());
    let _ = writeln!(out, "  ca/                 the CA's roots, RA and CMP signer certificates, its store");
    let _ = writeln!(out, "  receipts/           the receipt");
    let _ = writeln!(out, "  journal.db audit.db registry.db staff.db   SQLite");
    let _ = writeln!(out, "  screens/            {} PNGs of the screens passed", report.screenshots.len());
    audit.map_err(|e| DemoError::Worker(format!("audit log: {e}")))?;
    Ok(())
}

/// The kiosk's windows on the display, for people to use: staff sign in as the demo
/// operator; the resident types on the resident window.
fn run_windows(opts: &DemoOptions, out: &mut dyn Write) -> Result<(), DemoError> {
    let data = opts.data.as_path();
    let mut say = |line: &str| {
        let _ = writeln!(out, "{line}");
    };
    let peers = Peers::start(data, &mut say)?;
    walk::demo_resident(data, &opts.resident)?;
    let cfg = WorkerConfig {
        data: data.to_path_buf(),
        ca: CaFiles::in_dir(&data.join("ca")),
        ca_url: peers.ca.cmp_url(),
        reader: peers.reader.clone(),
        card_left_after: Duration::from_secs(10),
        ca_timeout: Duration::from_secs(30),
        lockstep: false,
        admin_key: MasterKey::demo(),
    };
    say(&format!("staff sign-in: {DEMO_OPERATOR} / {DEMO_OPERATOR_PASSPHRASE}; resident {}", opts.resident));
    let options = KioskOptions {
        data: data.to_path_buf(),
        key_order: KeyOrder::Shuffled,
        idle_timeout: Duration::from_secs(120),
        fees: Default::default(),
    };
    let operator = OperatorId::new(DEMO_OPERATOR).expect("a valid id");
    let ran = super::windows::run(cfg, operator, options);
    drop(peers);
    ran.map_err(|e| DemoError::Setup { what: "display", detail: e.to_string() })
}

/// What [`startup_probe`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartupFigures {
    /// From the process's start to the first frame of the sign-in screen, in ms.
    pub first_frame_ms: f64,
    /// Resident memory then, in KiB.
    pub rss_kib: u64,
    /// Peak resident memory so far, in KiB.
    pub peak_rss_kib: u64,
}

/// Builds both windows, draws the staff sign-in screen once (headless, software renderer)
/// and reports how long the process took to get there and its memory. For the start-up
/// bench (`benches/kiosk_start.sh`).
pub fn startup_probe(data: &std::path::Path) -> Result<StartupFigures, DemoError> {
    crate::ui::render::ensure_testing_platform();
    let (tx, _rx) = channel::<FromUi>();
    let kiosk = Kiosk::new(
        tx,
        KioskOptions {
            data: data.to_path_buf(),
            key_order: KeyOrder::Shuffled,
            idle_timeout: Duration::from_secs(120),
            fees: Default::default(),
        },
    )
    .map_err(|e| DemoError::Setup { what: "windows", detail: e.to_string() })?;
    let w = kiosk.staff.window();
    w.set_size(slint::PhysicalSize::new(crate::ui::render::WIDTH, crate::ui::render::HEIGHT));
    w.show().map_err(|e| DemoError::Setup { what: "windows", detail: e.to_string() })?;
    let frame = w.take_snapshot().map_err(|e| DemoError::Setup { what: "first frame", detail: e.to_string() })?;
    if frame.width() == 0 {
        return Err(DemoError::Setup { what: "first frame", detail: "empty".into() });
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(StartupFigures {
        first_frame_ms: process_age().as_secs_f64() * 1000.0,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    })
}

/// Time since this process started (from `/proc/self/stat` and the boot clock).
fn process_age() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Field 22 (starttime, in clock ticks since boot) counts after the ")" of the name.
    let start_ticks: f64 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0);
    // Linux reports starttime in USER_HZ, which is 100 on every architecture it runs on.
    Duration::from_secs_f64((uptime - start_ticks / 100.0).max(0.0))
}
