//! `jpki-vcard`: a virtual JPKI card for pcscd's vpcd reader (a test peer, never shipped).
//!
//! Exit codes: 0 success, 1 error, 2 usage, 3 the card was pulled by a
//! `--drop-before`/`--drop-after` fault. See `docs/vcard.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use der::Decode;
use rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use jpki_kiosk::card::admin_key::DEMO_MASTER_KEY;
use jpki_kiosk::card::files::{fid, KeySlot, ADMIN_KEY_TRIES, SERIAL_LEN};
use jpki_kiosk::vcard::vpcd::DEFAULT_VPCD;
use jpki_kiosk::vcard::{
    serve, CardKind, CardState, FailSw, Faults, ServeConfig, ServeExit, StateFile, TimingProfile,
    VirtualCard,
};

/// Exit status when a fault pulled the card.
const EXIT_CARD_PULLED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "jpki-vcard",
    version,
    about = "Virtual JPKI card for pcscd's vpcd reader (test peer)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to vpcd and serve the card (makes a fresh card if the state file is missing).
    Serve(ServeArgs),
    /// Make a new card state file (refuses to overwrite one).
    Init(InitArgs),
    /// Print what the card holds: serial, certificates, keys, PIN states. Never a secret.
    Show {
        /// The card's state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// The card's state file.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// vpcd's address.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_VPCD)]
    vpcd: String,
    #[command(flatten)]
    master: MasterKey,
    /// Timing profile.
    #[arg(long, value_enum, default_value_t = Profile::Fast)]
    profile: Profile,
    /// Key generation time in ms (overrides the profile).
    #[arg(long, value_name = "MS")]
    keygen_ms: Option<u64>,
    /// Signature time in ms (overrides the profile).
    #[arg(long, value_name = "MS")]
    sign_ms: Option<u64>,
    /// Link speed over C-APDU + R-APDU bytes (overrides the profile; 0 = no delay).
    #[arg(long, value_name = "N")]
    link_bytes_per_sec: Option<u32>,
    /// Extra delay on every APDU.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Pull the card instead of executing the Nth APDU (exit status 3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    drop_before: Option<u64>,
    /// Execute and save the Nth APDU, then pull the card without replying (exit status 3).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    drop_after: Option<u64>,
    /// Answer status word SW to the Nth APDU without executing it (repeatable).
    #[arg(long, value_name = "SW@N")]
    fail_sw: Vec<FailSw>,
}

#[derive(Args)]
struct InitArgs {
    /// The card's state file.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Which JPKI application the card carries.
    #[arg(long, value_enum, default_value_t = Token::MyNumber)]
    token: Token,
    /// Card serial, 16 bytes in hex (random if absent).
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
    #[command(flatten)]
    master: MasterKey,
}

#[derive(Args)]
struct MasterKey {
    /// Issuer master key in hex, used only when a new card is made (default: the demo key).
    #[arg(long, value_name = "HEX")]
    master_key_hex: Option<String>,
}

impl MasterKey {
    fn bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        match &self.master_key_hex {
            None => Ok(Zeroizing::new(DEMO_MASTER_KEY.to_vec())),
            Some(h) => {
                let key = Zeroizing::new(hex::decode(h).context("--master-key-hex is not hex")?);
                if key.len() < 16 {
                    bail!("--master-key-hex must be at least 16 bytes");
                }
                Ok(key)
            }
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Profile {
    /// No added delay.
    Fast,
    /// Delays modelled on an RSA-2048 contact card.
    RealCard,
}

#[derive(Clone, Copy, ValueEnum)]
enum Token {
    /// My Number card (`JPKIAPICCTOKEN2`).
    MyNumber,
    /// Juki-net era card (`JPKIAPICCTOKEN`).
    Juki,
    /// No JPKI application at all.
    None,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jpki-vcard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Init(args) => {
            run_init(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { state } => {
            show(&StateFile::new(state))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_serve(args: ServeArgs) -> Result<ExitCode> {
    let file = StateFile::new(&args.state);
    let master = args.master.bytes()?;
    let (state, created) = file.load_or_create(&master, &mut OsRng)?;
    if created {
        tracing::info!(path = %file.path().display(), "made a fresh card");
    }
    let mut timing = match args.profile {
        Profile::Fast => TimingProfile::FAST,
        Profile::RealCard => TimingProfile::REAL_CARD,
    };
    if let Some(ms) = args.keygen_ms {
        timing.keygen = Duration::from_millis(ms);
    }
    if let Some(ms) = args.sign_ms {
        timing.sign = Duration::from_millis(ms);
    }
    if let Some(bps) = args.link_bytes_per_sec {
        timing.link_bytes_per_sec = (bps > 0).then_some(bps);
    }
    let config = ServeConfig {
        vpcd: args.vpcd,
        timing,
        faults: Faults {
            drop_before: args.drop_before,
            drop_after: args.drop_after,
            fail_sw: args.fail_sw,
            latency: Duration::from_millis(args.latency_ms),
        },
        ..ServeConfig::default()
    };
    let mut card = VirtualCard::new(state);
    match serve(&mut card, &file, &config)? {
        ServeExit::CardPulled { apdu, executed } => {
            tracing::warn!(apdu, executed, "card pulled by fault injection");
            Ok(ExitCode::from(EXIT_CARD_PULLED))
        }
    }
}

fn run_init(args: InitArgs) -> Result<()> {
    let kind = match args.token {
        Token::MyNumber => CardKind::MyNumber,
        Token::Juki => CardKind::Juki,
        Token::None => CardKind::NoJpki,
    };
    let master = args.master.bytes()?;
    let state = match &args.serial {
        Some(h) => {
            let bytes = hex::decode(h).context("--serial is not hex")?;
            let serial: [u8; SERIAL_LEN] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("--serial must be {SERIAL_LEN} bytes"))?;
            CardState::fresh(kind, serial, &master, &mut OsRng)
        }
        None => CardState::fresh_random(kind, &master, &mut OsRng),
    };
    let file = StateFile::new(&args.state);
    file.create(&state)?;
    println!("made card {} at {}", hex::encode_upper(state.serial), file.path().display());
    Ok(())
}

fn show(file: &StateFile) -> Result<()> {
    let s = file.load()?;
    println!("serial: {}", hex::encode_upper(s.serial));
    match &s.token {
        Some(t) => println!("JPKI-AP: yes, token {:?}", String::from_utf8_lossy(t).trim_end()),
        None => println!("JPKI-AP: none"),
    }
    println!("admin key tries left: {}/{ADMIN_KEY_TRIES}", s.admin_tries_left);
    for (name, slot) in [("auth PIN 0018", KeySlot::Auth), ("signing password 001B", KeySlot::Sign)]
    {
        let p = s.pin(slot);
        let status = match (&p.hash, p.tries_left) {
            (None, _) => "not set",
            (Some(_), 0) => "BLOCKED",
            (Some(_), _) => "set",
        };
        println!("{name}: {status}, tries left {}/{}", p.tries_left, slot.pin_tries());
    }
    for (name, slot) in [("auth key 0017", KeySlot::Auth), ("signing key 001A", KeySlot::Sign)] {
        match s.key(slot) {
            Some(k) => println!("{name}: RSA-{}", k.size() * 8),
            None => println!("{name}: none"),
        }
    }
    for (name, f) in [
        ("auth certificate 000A", fid::AUTH_CERT),
        ("auth CA certificate 000B", fid::AUTH_CA_CERT),
        ("signing certificate 0001", fid::SIGN_CERT),
        ("signing CA certificate 0002", fid::SIGN_CA_CERT),
    ] {
        let content = s.cert(f).map(Vec::as_slice).unwrap_or_default();
        println!("{name}: {}", describe_cert(content));
    }
    Ok(())
}

fn describe_cert(content: &[u8]) -> String {
    if content.is_empty() {
        return "empty".to_string();
    }
    // Clients size the EF from the DER header, so bytes after the certificate are ignored.
    let der_len = match content {
        [0x30, 0x82, hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])) + 4,
        _ => content.len(),
    };
    match Certificate::from_der(&content[..der_len.min(content.len())]) {
        Ok(c) => format!("{} bytes, subject {}", content.len(), c.tbs_certificate.subject),
        Err(_) => format!("{} bytes, not a DER certificate", content.len()),
    }
}
