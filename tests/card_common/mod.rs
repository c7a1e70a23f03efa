//! Shared set-up of the card integration tests: a private pcscd with vpcd per test (each
//! test is its own process under nextest), the real `jpki-vcard`, and helpers to run
//! OpenSC and openssl against it.
#![allow(dead_code)]

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use jpki_kiosk::card::admin_key::DEMO_MASTER_KEY;
use jpki_kiosk::card::jpki_ap::JpkiAp;
use jpki_kiosk::card::personalize::Personalizer;
use jpki_kiosk::card::pin::{AuthPin, SigningPassword};
use jpki_kiosk::card::transport::{self, PcscTransport};
use jpki_kiosk::peers::card_stack::{CardProcess, CardStack};

/// The real virtual card binary Cargo built for this test run.
pub const VCARD: &str = env!("CARGO_BIN_EXE_jpki-vcard");
/// The PKCS#11 module of Debian's OpenSC.
pub const PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
/// PINs the tests set.
pub const AUTH_PIN: &str = "1234";
pub const SIGN_PASSWORD: &str = "JPKI2026";

/// A private card stack in a temporary directory; everything stops on drop.
pub struct Rig {
    pub stack: CardStack,
    pub dir: tempfile::TempDir,
}

impl Rig {
    pub fn new() -> Rig {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut stack = CardStack::start(&dir.path().join("stack")).expect("card stack starts");
        stack.set_vcard_binary(VCARD);
        Rig { stack, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `jpki-vcard init --state FILE --token TOKEN`.
    pub fn init_card(&self, name: &str, token: &str) -> PathBuf {
        let state = self.path(name);
        let out = Command::new(VCARD)
            .args(["init", "--state"])
            .arg(&state)
            .args(["--token", token])
            .output()
            .expect("jpki-vcard init runs");
        assert!(out.status.success(), "jpki-vcard init: {}", String::from_utf8_lossy(&out.stderr));
        state
    }

    /// Starts a card in `slot` from the state file `name` (fresh if missing).
    pub fn card(&mut self, slot: usize, name: &str, extra: &[&str]) -> CardProcess {
        let state = self.path(name);
        self.stack.start_card(slot, &state, extra).expect("virtual card comes up")
    }

    pub fn reader(&self, slot: usize) -> CString {
        self.stack.reader_name(slot).unwrap()
    }

    pub fn connect(&self, slot: usize) -> PcscTransport {
        let ctx = transport::establish().expect("pcscd answers");
        PcscTransport::wait_and_connect(&ctx, &self.reader(slot), Duration::from_secs(10))
            .expect("card connects")
    }

    /// Runs a tool against this stack's pcscd.
    pub fn tool(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(self.dir.path());
        for (k, v) in self.stack.env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap_or_else(|e| panic!("{program} runs: {e}"))
    }

    /// Like [`Rig::tool`], asserting success and returning stdout.
    pub fn tool_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.tool(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub fn auth_pin() -> AuthPin {
    AuthPin::new(AUTH_PIN).unwrap()
}

pub fn sign_password() -> SigningPassword {
    SigningPassword::new(SIGN_PASSWORD).unwrap()
}

/// Detect, authenticate as issuer and set both PINs: the card's state before keys.
pub fn set_pins(ap: &mut JpkiAp<&mut PcscTransport>) {
    ap.detect().expect("a My Number card");
    let mut p = Personalizer::new(ap);
    p.authenticate(&DEMO_MASTER_KEY).expect("admin authentication");
    p.set_pin(&auth_pin()).unwrap();
    p.set_pin(&sign_password()).unwrap();
}

/// DER of a PEM certificate file.
pub fn pem_file_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    pem_der(&text)
}

pub fn pem_der(text: &str) -> Vec<u8> {
    let start = text.find("-----BEGIN").expect("PEM in output");
    let (label, der) = der::pem::decode_vec(&text.as_bytes()[start..]).expect("valid PEM");
    assert_eq!(label, "CERTIFICATE");
    der
}

/// A DER SEQUENCE of `n` bytes shaped like a certificate (header `30 82 LL LL`).
pub fn fake_cert(n: usize, fill: u8) -> Vec<u8> {
    let mut v = vec![0x30, 0x82];
    v.extend_from_slice(&((n - 4) as u16).to_be_bytes());
    v.extend((0..n - 4).map(|i| fill.wrapping_add((i % 251) as u8)));
    v
}

/// The "Tries left" figures of a `pkcs15-tool --dump`, in order (auth PIN, signing password).
pub fn dump_tries_left(dump: &str) -> Vec<u8> {
    dump.lines()
        .filter(|l| l.trim_start().starts_with("Tries left"))
        .filter_map(|l| l.rsplit(':').next()?.trim().parse().ok())
        .collect()
}
