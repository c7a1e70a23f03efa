//! `jpki-kiosk`: the counter appliance's command line. Thin: parses arguments, runs a
//! library function, maps errors to exit codes.
//!
//! Exit codes: 0 success; 1 the operation failed (message on stderr); 2 bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use jpki_kiosk::card::pin::{AuthPin, SigningPassword};
use jpki_kiosk::carddemo::{self, DemoOptions, DEFAULT_AUTH_PIN, DEFAULT_SIGN_PASSWORD};
use jpki_kiosk::ledger::store::parse_day;
use jpki_kiosk::ledger::Approval;
use jpki_kiosk::print::day::{export_day, DayCloseArgs, DayExport, Heading};
use jpki_kiosk::print::DEFAULT_FONT_PATH;
use jpki_kiosk::rules::fee::Yen;

#[derive(Parser)]
#[command(name = "jpki-kiosk", version, about = "JPKI certificate issuance kiosk")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The kiosk on embedded defaults: a factory-fresh virtual card behind a private pcscd,
    /// the reference CA on loopback, SQLite files and the sample registry. Opens the staff
    /// and resident windows on a display; with none (or --headless) walks a new issuance
    /// through the screens and writes a PNG of each. Needs root.
    Demo {
        /// Walk the scripted visit even when a display exists.
        #[arg(long)]
        headless: bool,
        /// Where the card (card.vcard), the CA (ca/), the receipt, the SQLite files, the
        /// audit log and the screenshots (screens/) go.
        #[arg(long, default_value = "demo-data")]
        data: PathBuf,
        /// The resident (宛名番号 in the sample registry). Default: 𠮷田 花子, whose 𠮷
        /// needs a 代替文字.
        #[arg(long, default_value = jpki_kiosk::kiosk::walk::DEMO_RESIDENT)]
        resident: String,
        /// The auth PIN the resident sets (4 digits).
        #[arg(long, default_value = DEFAULT_AUTH_PIN, hide_default_value = true)]
        auth_pin: String,
        /// The signing password the resident sets (6-16 of A-Z 0-9).
        #[arg(long, default_value = DEFAULT_SIGN_PASSWORD, hide_default_value = true)]
        sign_password: String,
    },
    /// Personalise a virtual JPKI card through a private pcscd: key generation, PINs, test
    /// certificates from a throwaway CA, read-back and test signatures. Needs root.
    CardDemo {
        /// Directory for the card (card.vcard), the CA certificates (ca/) and logs (stack/).
        #[arg(long)]
        data: PathBuf,
        /// The auth PIN to set (4 digits). Default: 1234.
        #[arg(long, default_value = DEFAULT_AUTH_PIN, hide_default_value = true)]
        auth_pin: String,
        /// The signing password to set (6-16 of A-Z 0-9). Default: JPKI2026.
        #[arg(long, default_value = DEFAULT_SIGN_PASSWORD, hide_default_value = true)]
        sign_password: String,
        /// Timing of the virtual card: `fast`, or `real-card` (key generation, signatures and
        /// link speed like a real RSA-2048 contact card).
        #[arg(long, default_value = "fast", value_parser = ["fast", "real-card"])]
        card_profile: String,
        /// Print the figures as JSON on the last line (for benches/card.sh).
        #[arg(long, hide = true)]
        stats: bool,
    },
    /// Builds the windows, draws the first screen headless, and prints the time since the
    /// process started and its memory as JSON (for benches/kiosk_start.sh).
    #[command(hide = true)]
    StartupProbe {
        /// A data directory (nothing is written).
        #[arg(long, default_value = ".")]
        data: PathBuf,
    },
    /// Runs one scripted visit with the real adapters (resuming the visit the journal left
    /// open); PINs are read from stdin, auth PIN then signing password, one per line. For
    /// the crash-resume tests.
    #[command(hide = true)]
    VisitRun {
        /// Journal, audit log, registry and receipts.
        #[arg(long)]
        data: PathBuf,
        /// The CA's files (tls-ca.pem, ra.pem, ra.key, auth-ca.pem, sign-ca.pem).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The CA's CMP URL.
        #[arg(long)]
        ca_url: String,
        /// The PC/SC reader.
        #[arg(long)]
        reader: String,
        /// The id of a new visit.
        #[arg(long)]
        visit: String,
        /// The signed-in operator.
        #[arg(long, default_value = "staff-07")]
        operator: String,
        /// The form and identity documents (JSON, `issuance::adapters::script::Script`).
        #[arg(long)]
        script: PathBuf,
        /// Abort right after the Nth journal write of a new visit.
        #[arg(long)]
        crash_after_record: Option<u64>,
    },
    /// The append-only audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// The day's ledger: entries, totals by visit kind and payment method, expected cash
    /// and the close of day, as a summary on stdout and optionally as PDF and CSV.
    Ledger {
        /// The kiosk's data directory; the ledger is DIR/kiosk.db.
        #[arg(long)]
        data: PathBuf,
        /// The ledger database, when not DIR/kiosk.db.
        #[arg(long)]
        db: Option<PathBuf>,
        /// The business day, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        date: time::Date,
        /// Write the ledger as PDF (A4) here.
        #[arg(long)]
        pdf: Option<PathBuf>,
        /// Write the entries as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// The Japanese font for the PDF.
        #[arg(long, default_value = DEFAULT_FONT_PATH)]
        font: PathBuf,
        /// The municipality, printed in the heading.
        #[arg(long, default_value = "")]
        municipality: String,
        /// The counter, printed in the heading.
        #[arg(long, default_value = "")]
        counter: String,
        /// Close the day first: the cash counted in the drawer, in whole yen. The day is
        /// locked afterwards; later payments go to the next business day.
        #[arg(long, value_name = "YEN", requires = "operator")]
        close_counted: Option<u32>,
        /// The cashier closing the day.
        #[arg(long)]
        operator: Option<String>,
        /// The supervisor who approves a cash variance.
        #[arg(long, requires = "reason")]
        supervisor: Option<String>,
        /// Why counted and expected cash differ.
        #[arg(long, requires = "supervisor")]
        reason: Option<String>,
    },
    /// The counter appliance: the staff and resident windows on the display, on the site
    /// configuration in DATA (the image's kiosk-session starts it under cage).
    Ui {
        /// The kiosk's data directory.
        #[arg(long, default_value = jpki_kiosk::site::DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// The PC/SC reader. Default: the first one pcscd lists.
        #[arg(long)]
        reader: Option<String>,
        /// Check what the kiosk needs (site configuration, card administration key,
        /// reader) and exit without opening windows.
        #[arg(long)]
        check: bool,
    },
    /// Compares the card in the reader, the kiosk's journal and the CA, and lists where
    /// they disagree. Exit 0: they agree; 1: discrepancies (or they could not be read).
    /// With --sign-password-stdin the resident's signing password is read from stdin, so
    /// the signing certificate is compared too.
    Reconcile {
        /// The kiosk's data directory (journal.db; site.toml and card-admin.key when present).
        #[arg(long, default_value = jpki_kiosk::site::DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// The PC/SC reader. Default: the first one pcscd lists.
        #[arg(long)]
        reader: Option<String>,
        /// A `jpki-ca serve` directory, when DATA has no site.toml.
        #[arg(long, requires = "ca_url")]
        ca_dir: Option<PathBuf>,
        /// The CA's CMP URL, when DATA has no site.toml.
        #[arg(long, requires = "ca_dir")]
        ca_url: Option<String>,
        /// Read the signing password from stdin (one line).
        #[arg(long)]
        sign_password_stdin: bool,
    },
    /// Counter staff accounts.
    Staff {
        #[command(subcommand)]
        command: StaffCmd,
    },
    /// Writes the site configuration (DATA/site.toml) for this appliance, validated.
    Provision(ProvisionArgs),
    /// The site configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// Self-test of the appliance: pcscd, readers, test card, printer, CA, clock, disk,
    /// databases. Writes DATA/doctor-last.json. Exit 0 OK or WARN, 1 any FAIL.
    Doctor {
        /// The kiosk's data directory.
        #[arg(long, default_value = jpki_kiosk::site::DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// A missing test card is a FAIL (when checking a reader with a test card).
        #[arg(long)]
        require_card: bool,
    },
}

#[derive(Subcommand)]
enum StaffCmd {
    /// Enrols an operator. Reads the new passphrase from stdin (one line); with --by, then
    /// the supervisor's passphrase. The first supervisor of an appliance needs no --by.
    Enrol {
        /// The kiosk's data directory (staff.db, audit.db).
        #[arg(long, default_value = jpki_kiosk::site::DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// The operator's id (1-32 of A-Z a-z 0-9 . _ -).
        #[arg(long)]
        id: String,
        /// The name shown on the staff screen.
        #[arg(long)]
        name: String,
        /// `staff` or `supervisor`.
        #[arg(long, default_value = "staff")]
        role: String,
        /// The supervisor who enrols (signs in with their passphrase).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(clap::Args)]
struct ProvisionArgs {
    /// The data directory (the data partition's mount point).
    #[arg(long, default_value = jpki_kiosk::site::DEFAULT_DATA_DIR)]
    data: PathBuf,
    /// 全国地方公共団体コード, six digits with the check digit.
    #[arg(long)]
    municipality_code: String,
    /// The municipality's name.
    #[arg(long)]
    municipality_name: String,
    /// This counter's id.
    #[arg(long)]
    counter_id: String,
    /// The CA's CMP URL (https://...).
    #[arg(long)]
    ca_url: String,
    /// PEM roots for the CA's TLS certificate (relative paths: to DATA).
    #[arg(long, default_value = "ca/tls-ca.pem")]
    ca_tls_roots: PathBuf,
    /// The RA certificate, PEM.
    #[arg(long, default_value = "ca/ra.pem")]
    ra_cert: PathBuf,
    /// The RA private key, PKCS#8 PEM.
    #[arg(long, default_value = "ca/ra.key")]
    ra_key: PathBuf,
    /// CA certificates the CA's responses are signed under (repeat).
    #[arg(long = "ca-anchor", default_values = ["ca/auth-ca.pem", "ca/sign-ca.pem"])]
    ca_anchors: Vec<PathBuf>,
    /// `cups:QUEUE`, `escpos:/dev/usb/lp0` or `none`.
    #[arg(long, default_value = "none")]
    printer: String,
    /// JSON fee overrides.
    #[arg(long)]
    fee_table: Option<PathBuf>,
    /// Keep the resident pad's keys in telephone order (default: shuffled per entry).
    #[arg(long)]
    fixed_pin_pad: bool,
    /// Languages offered, first is the default.
    #[arg(long, value_delimiter = ',', default_value = "ja,en,ja-easy")]
    languages: Vec<String>,
    /// Seconds without input before the resident screen resets.
    #[arg(long, default_value_t = 120)]
    idle_timeout_secs: u32,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate DATA/site.toml and the files it names. Exit 0 valid, 1 not.
    Check {
        /// The data directory.
        #[arg(long, default_value = jpki_kiosk::site::DEFAULT_DATA_DIR)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the hash chain of the audit log; names the first changed, removed, inserted or
    /// reordered entry. Exit 0 intact, 1 tampering found, 2 could not check.
    Verify {
        /// The kiosk's data directory (holds audit.db).
        #[arg(long, default_value = "/var/lib/jpki-kiosk")]
        data: PathBuf,
        /// A head printed on an earlier day's ledger, `#SEQ sha256:HEX`: also proves that
        /// the log was not rebuilt or cut short since.
        #[arg(long)]
        anchor: Option<jpki_kiosk::audit::Anchor>,
    },
}

fn parse_date(s: &str) -> Result<time::Date, String> {
    parse_day(s).ok_or_else(|| format!("{s:?} is not a date of the form YYYY-MM-DD"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = jpki_kiosk::logging::init("warn") {
        eprintln!("jpki-kiosk: logging: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Cmd::Audit { command: AuditCmd::Verify { data, anchor } } => {
            let report = jpki_kiosk::audit::verify_command(&data, anchor.as_ref());
            println!("{}", report.text);
            ExitCode::from(u8::try_from(report.exit_code).unwrap_or(2))
        }
        Cmd::Ledger {
            data,
            db,
            date,
            pdf,
            csv,
            font,
            municipality,
            counter,
            close_counted,
            operator,
            supervisor,
            reason,
        } => {
            let close = close_counted.map(|counted| DayCloseArgs {
                counted_cash: Yen(counted),
                operator_id: operator.unwrap_or_default(),
                variance_approval: supervisor
                    .zip(reason)
                    .map(|(supervisor_id, reason)| Approval { supervisor_id, reason }),
            });
            let opts = DayExport {
                close,
                data_dir: data,
                db,
                day: date,
                pdf,
                csv,
                font,
                heading: Heading { municipality, counter },
            };
            match export_day(&opts) {
                Ok(summary) => {
                    print!("{}", summary.to_text());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("jpki-kiosk: ledger: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Demo { headless, data, resident, mut auth_pin, mut sign_password } => {
            let checked = checked_pins(&auth_pin, &sign_password).map(drop);
            let opts = jpki_kiosk::kiosk::demo::DemoOptions {
                data,
                headless,
                resident,
                auth_pin: zeroize::Zeroizing::new(std::mem::take(&mut auth_pin)),
                sign_password: zeroize::Zeroizing::new(std::mem::take(&mut sign_password)),
            };
            if let Err(code) = checked {
                return code;
            }
            match jpki_kiosk::kiosk::demo::run(&opts, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("jpki-kiosk: demo: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::StartupProbe { data } => match jpki_kiosk::kiosk::demo::startup_probe(&data) {
            Ok(f) => {
                println!("{}", serde_json::to_string(&f).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("jpki-kiosk: startup-probe: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Provision(args) => provision(args),
        Cmd::Ui { data, reader, check } => {
            use jpki_kiosk::kiosk::appliance;
            let result = if check {
                appliance::prepare(&data, reader.as_deref()).map(|p| {
                    println!("ready: reader {}, CA {}", p.worker.reader.to_string_lossy(), p.worker.ca_url);
                })
            } else {
                appliance::run(&data, reader.as_deref())
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("jpki-kiosk: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Reconcile { data, reader, ca_dir, ca_url, sign_password_stdin } => {
            reconcile(&data, reader.as_deref(), ca_dir.zip(ca_url), sign_password_stdin)
        }
        Cmd::Staff { command: StaffCmd::Enrol { data, id, name, role, by } } => staff_enrol(&data, &id, &name, &role, by.as_deref()),
        Cmd::Config { command: ConfigCmd::Check { data } } => match jpki_kiosk::site::SiteConfig::load(&data) {
            Ok(cfg) => {
                println!("site configuration OK: {} {} counter {}", cfg.municipality.code, cfg.municipality.name, cfg.counter.id);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Cmd::Doctor { data, json, require_card } => {
            let mut opts = jpki_kiosk::doctor::Options::new(data);
            opts.require_card = require_card;
            let report = jpki_kiosk::doctor::run(&opts);
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if let Err(e) = report.save(&opts.data) {
                eprintln!("{e}");
            }
            // A marker line for the boot console (kiosk-image/boot-test.sh reads it).
            eprintln!("JPKI-DOCTOR-DONE overall={:?}", report.overall);
            ExitCode::from(u8::from(report.failed()))
        }
        Cmd::VisitRun { data, ca_dir, ca_url, reader, visit, operator, script, crash_after_record } => {
            visit_run(data, ca_dir, ca_url, reader, visit, operator, script, crash_after_record)
        }
        Cmd::CardDemo { data, mut auth_pin, mut sign_password, card_profile, stats } => {
            let checked = checked_pins(&auth_pin, &sign_password);
            // From here on the PINs live only in their zeroizing newtypes.
            zeroize::Zeroize::zeroize(&mut auth_pin);
            zeroize::Zeroize::zeroize(&mut sign_password);
            let (auth_pin, sign_password) = match checked {
                Ok(pins) => pins,
                Err(code) => return code,
            };
            let opts = DemoOptions {
                data,
                auth_pin,
                sign_password,
                rtt_probe: if stats { 200 } else { 0 },
                card_args: vec!["--profile".into(), card_profile],
            };
            match carddemo::run(&opts, &mut std::io::stdout()) {
                Ok(report) => {
                    if stats {
                        println!("{}", report.to_json());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("jpki-kiosk: card demo failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn visit_run(
    data: PathBuf,
    ca_dir: PathBuf,
    ca_url: String,
    reader: String,
    visit: String,
    operator: String,
    script: PathBuf,
    crash_after_record: Option<u64>,
) -> ExitCode {
    use jpki_kiosk::issuance::adapters::script::{self, RunConfig, ScriptedCounter};
    use zeroize::Zeroizing;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("jpki-kiosk: visit-run: {what}: {e}");
        ExitCode::from(2)
    };
    let parsed: script::Script = match std::fs::read(&script).map_err(|e| e.to_string()).and_then(|b| {
        serde_json::from_slice(&b).map_err(|e| e.to_string())
    }) {
        Ok(s) => s,
        Err(e) => return fail("--script", &e),
    };
    let (Some(operator), Ok(reader)) = (jpki_kiosk::staff::OperatorId::new(&operator), std::ffi::CString::new(reader))
    else {
        return fail("arguments", &"bad --operator or --reader");
    };
    let line = || {
        let mut l = Zeroizing::new(String::new());
        let _ = std::io::stdin().read_line(&mut l);
        Zeroizing::new(l.trim_end().to_owned())
    };
    let (auth, sign) = (line(), line());
    let ca = script::CaFiles::in_dir(&ca_dir);
    let cfg = RunConfig { data, ca, ca_url, reader, visit, operator, crash_after_record };
    match script::run(&cfg, ScriptedCounter::new(parsed, auth, sign)) {
        Ok(status) => {
            println!("{}", serde_json::to_string(&match status {
                jpki_kiosk::issuance::driver::Status::Ended(o) => serde_json::to_value(o).unwrap_or_default(),
                jpki_kiosk::issuance::driver::Status::Waiting => serde_json::json!({"outcome": "waiting"}),
            }).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jpki-kiosk: visit-run: {e}");
            ExitCode::from(1)
        }
    }
}

fn provision(a: ProvisionArgs) -> ExitCode {
    use jpki_kiosk::site::{CaEndpoint, Counter, Municipality, Printer, SiteConfig};
    let printer = match a.printer.split_once(':') {
        Some(("cups", queue)) => Printer::Cups { queue: queue.to_string() },
        Some(("escpos", device)) => Printer::EscposUsb { device: device.into() },
        None if a.printer == "none" => Printer::None,
        _ => {
            eprintln!("jpki-kiosk: --printer: use cups:QUEUE, escpos:/dev/usb/lpN or none");
            return ExitCode::from(2);
        }
    };
    let cfg = SiteConfig {
        municipality: Municipality { code: a.municipality_code, name: a.municipality_name },
        counter: Counter {
            id: a.counter_id,
            languages: a.languages,
            idle_timeout_secs: a.idle_timeout_secs,
            fee_table: a.fee_table,
            pin_pad: if a.fixed_pin_pad { jpki_kiosk::site::PadLayout::Fixed } else { jpki_kiosk::site::PadLayout::Shuffled },
        },
        ca: CaEndpoint {
            url: a.ca_url,
            tls_roots: a.ca_tls_roots,
            ra_cert: a.ra_cert,
            ra_key: a.ra_key,
            anchors: a.ca_anchors,
        },
        printer,
    };
    match jpki_kiosk::site::provision(&a.data, &cfg, a.force) {
        Ok(path) => {
            println!("wrote {}", path.display());
            if let Err(e) = cfg.check_files(&a.data) {
                println!("note: {e}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `jpki-kiosk staff enrol`: passphrases come from stdin, never from arguments (which
/// other users can read in the process list).
fn staff_enrol(data: &std::path::Path, id: &str, name: &str, role: &str, by: Option<&str>) -> ExitCode {
    use jpki_kiosk::staff::{NewOperator, OperatorId, Passphrase, Role, StaffDirectory};
    use zeroize::Zeroizing;
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("jpki-kiosk: staff enrol: {e}");
        ExitCode::from(1)
    };
    let Some(id) = OperatorId::new(id) else {
        eprintln!("jpki-kiosk: --id: 1-32 of A-Z a-z 0-9 . _ -");
        return ExitCode::from(2);
    };
    let role = match role {
        "staff" => Role::Staff,
        "supervisor" => Role::Supervisor,
        _ => {
            eprintln!("jpki-kiosk: --role: staff or supervisor");
            return ExitCode::from(2);
        }
    };
    let line = || {
        let mut l = Zeroizing::new(String::new());
        let _ = std::io::stdin().read_line(&mut l);
        Zeroizing::new(l.trim_end_matches(['\r', '\n']).to_owned())
    };
    let passphrase = match Passphrase::new(line().to_string()) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let mut dir = match StaffDirectory::open(&data.join("staff.db")) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let now = time::OffsetDateTime::now_utc();
    let session = match by {
        None => None,
        Some(by) => {
            let Some(by) = OperatorId::new(by) else { return fail(&"--by: not an operator id") };
            let pass = match Passphrase::new(line().to_string()) {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            match dir.sign_in(&by, &pass, now) {
                Ok(s) => Some(s),
                Err(e) => return fail(&e),
            }
        }
    };
    let record = match dir.enrol(session.as_ref(), NewOperator { id: id.clone(), display_name: name.to_string(), role, passphrase }, now) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let appended = jpki_kiosk::audit::AuditLog::open(&data.join("audit.db")).and_then(|mut log| log.append(&record));
    if let Err(e) = appended {
        return fail(&e);
    }
    println!("enrolled {id} ({})", role.as_str());
    ExitCode::SUCCESS
}

/// `jpki-kiosk reconcile`.
fn reconcile(data: &std::path::Path, reader: Option<&str>, ca: Option<(PathBuf, String)>, sign_password_stdin: bool) -> ExitCode {
    use jpki_kiosk::card::admin_key::MasterKey;
    use jpki_kiosk::issuance::adapters::reconcile_views as views;
    use jpki_kiosk::issuance::adapters::script::{ca_client, CaFiles};
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("jpki-kiosk: reconcile: {e}");
        ExitCode::from(1)
    };
    // The CA and the issuer key: the site's, or a reference CA's directory and the demo key.
    let (files, url) = match ca {
        Some((dir, url)) => (CaFiles::in_dir(&dir), url),
        None => match jpki_kiosk::site::SiteConfig::load(data) {
            Ok(site) => (site.ca_files(data), site.ca.url.clone()),
            Err(e) => return fail(&e),
        },
    };
    let key_file = data.join(jpki_kiosk::kiosk::appliance::ADMIN_KEY_FILE);
    let master = if key_file.exists() {
        match jpki_kiosk::kiosk::appliance::read_admin_key(&key_file) {
            Ok(k) => k,
            Err(e) => return fail(&e),
        }
    } else {
        MasterKey::demo()
    };
    let password = if sign_password_stdin {
        let mut line = zeroize::Zeroizing::new(String::new());
        let _ = std::io::stdin().read_line(&mut line);
        match SigningPassword::new(line.trim_end_matches(['\r', '\n'])) {
            Ok(p) => Some(p),
            Err(e) => return fail(&e),
        }
    } else {
        None
    };
    let ctx = match jpki_kiosk::card::transport::establish() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let reader = match reader {
        Some(r) => std::ffi::CString::new(r).unwrap_or_default(),
        None => match jpki_kiosk::card::transport::list_readers(&ctx).ok().and_then(|r| r.into_iter().next()) {
            Some(r) => r,
            None => return fail(&"カードリーダーがありません / no card reader"),
        },
    };
    let card = match views::card_view(&ctx, &reader, &master, password.as_ref()) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let Some(serial) = card.serial.clone() else { return fail(&"no card serial") };
    let journal = match jpki_kiosk::issuance::adapters::store::SqliteJournal::open(&data.join("journal.db")) {
        Ok(j) => j,
        Err(e) => return fail(&e),
    };
    let (visit, local) = match views::local_view(&journal, &serial) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let client = match ca_client(&url, &files, |_| {}) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let ca_view = match views::ca_view(&client, &serial) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    println!("card {}; last visit {}", serial.0, visit.as_deref().unwrap_or("(none in this journal)"));
    if !card.unread.is_empty() {
        println!("not read without the signing password: {:?}", card.unread);
    }
    let found = jpki_kiosk::issuance::reconcile::reconcile(&card, &local, &ca_view);
    for d in &found {
        println!("{}\t{}", serde_json::to_string(d).unwrap_or_default(), views::describe(d));
    }
    if found.is_empty() {
        println!("agree: カード・窓口の記録・認証局は一致しています");
        ExitCode::SUCCESS
    } else {
        println!("{} discrepancies: 不一致があります（docs/workflow.md の対応を参照）", found.len());
        ExitCode::from(1)
    }
}

/// The PINs given with --auth-pin and --sign-password, checked; a bad one is reported
/// (which option, what is wrong) and gives exit status 2.
fn checked_pins(auth: &str, sign: &str) -> Result<(AuthPin, SigningPassword), ExitCode> {
    let bad = |option: &str, e: &dyn std::fmt::Display| {
        eprintln!("jpki-kiosk: {option}: {e}");
        ExitCode::from(2)
    };
    let auth = AuthPin::new(auth).map_err(|e| bad("--auth-pin", &e))?;
    let sign = SigningPassword::new(sign).map_err(|e| bad("--sign-password", &e))?;
    Ok((auth, sign))
}
