//! The kiosk's screens driven through whole visits against the real peers: a private
//! pcscd with vpcd and `jpki-vcard`, `jpki-ca` on loopback, SQLite files. A scripted
//! person finds elements by accessible label, types and taps (Slint's testing backend);
//! the tests assert what the screens showed and how the visit ended. Each test is a
//! process of its own (cargo-nextest), as libpcsclite and Slint allow one per process.

#[path = "card_common/mod.rs"]
mod card_common;

use std::path::Path;
use std::process::Command;

use card_common::{pem_der, Rig};
use jpki_kiosk::issuance::command::Outcome;
use jpki_kiosk::issuance::model::Slot;
use jpki_kiosk::kiosk::walk::{walk, WalkOptions, WalkReport, DEMO_RESIDENT};
use jpki_kiosk::registry::sample::ids;

const AUTH_PIN: &str = "7391";
const SIGN_PASSWORD: &str = "KIOSK8QZ";

fn options(dir: &Path, resident: &str) -> WalkOptions {
    std::env::set_var("JPKI_VCARD", env!("CARGO_BIN_EXE_jpki-vcard"));
    std::env::set_var("JPKI_CA", env!("CARGO_BIN_EXE_jpki-ca"));
    WalkOptions::new(dir.join("kiosk"), resident, AUTH_PIN, SIGN_PASSWORD)
}

/// The walk's step log goes to stderr as it happens (a stalled walk shows where).
struct Log;

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn run(opts: &WalkOptions) -> WalkReport {
    match walk(opts, &mut Log) {
        Ok(r) => r,
        Err(e) => panic!("walk failed: {e}"),
    }
}

fn issued_slots(report: &WalkReport) -> Vec<Slot> {
    let mut slots: Vec<Slot> = report.summary.issued.iter().map(|(s, _)| *s).collect();
    slots.sort_by_key(|s| *s == Slot::Sign);
    slots
}

#[test]
fn a_new_issuance_through_the_screens() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), DEMO_RESIDENT);
    opts.screenshots = true;
    let report = run(&opts);
    assert_eq!(report.summary.outcome, Outcome::Issued);
    assert_eq!(issued_slots(&report), vec![Slot::Auth, Slot::Sign]);
    // The form marked the 𠮷 and offered the designated substitute.
    assert!(report.showed(false, "1文字目「𠮷」は証明書に使えません。代替文字「吉」を提案します。"));
    assert!(report.showed(false, "○ 住民記録と照合しました"));
    assert!(report.showed(false, "✓ 電子証明書を発行しました"));
    assert!(report.showed(false, "署名用電子証明書　有効期限 令和"));
    assert!(report.showed(false, "！ カードが読み取り機に残っています。住民の方にお返しください。"));
    assert!(report.showed(true, "新しく決めて、入れてください"));
    assert!(report.showed(true, "手続きが終わりました。"));
    assert!(report.showed(true, "▲ カードをお取りください。お忘れなく"));
    // No screen ever showed a PIN (the walk checks every step; this checks the record).
    for s in &report.shown {
        for t in s.staff.iter().chain(&s.resident) {
            assert!(!t.contains(AUTH_PIN) && !t.contains(SIGN_PASSWORD), "{}: {t}", s.step);
        }
    }
    // The screenshots: decodable, not blank, and different from one screen to the next.
    assert!(report.screenshots.len() >= 12, "{} screenshots", report.screenshots.len());
    // Each PNG differs from the one before it of the same window (the walk writes a window
    // only when its picture changed); a screen may come back later (the visit type).
    let mut distinct: Vec<Vec<u8>> = Vec::new();
    for path in &report.screenshots {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (1920, 1080));
        let px = &buf[..info.buffer_size()];
        let dark = px.chunks(4).filter(|p| u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2]) < 200).count();
        assert!(dark > 2_000, "{} has only {dark} dark pixels", path.display());
        if !distinct.iter().any(|s| s == px) {
            distinct.push(px.to_vec());
        }
    }
    assert!(distinct.len() >= 12, "only {} distinct screens", distinct.len());
}

#[test]
fn a_wrong_pin_twice_then_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), ids::TAKAHASHI);
    opts.wrong_confirms = 2;
    let report = run(&opts);
    assert_eq!(report.summary.outcome, Outcome::Issued);
    assert!(report.showed(true, "× ちがいます。もう一度入れてください。"));
    assert!(report.showed(true, "あと 2 回まちがえると、ロックされます。"));
    assert!(report.showed(true, "あと 1 回まちがえると、ロックされます。"));
    assert!(report.showed(false, "× 暗証番号が違います。もう一度入力してください。"));
    assert!(report.showed(false, "対応: 住民の方に暗証番号を入れなおしてもらってください。"));
}

#[test]
fn a_fourteen_year_old_gets_no_signing_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), ids::MINOR_14);
    let report = run(&opts);
    assert_eq!(report.summary.outcome, Outcome::Issued);
    assert_eq!(issued_slots(&report), vec![Slot::Auth]);
    assert!(report.showed(false, "— 署名用電子証明書（発行しません）"));
    assert!(report.showed(false, "利用者証明用電子証明書　有効期限"));
    assert!(!report.showed(false, "署名用電子証明書　有効期限"));
    assert!(!report.showed(true, "署名用電子証明書をカードに入れました"));
}

#[test]
fn a_card_pulled_while_certificates_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), ids::YAMAMOTO);
    opts.pull_card_at_write = true;
    let report = run(&opts);
    assert_eq!(report.summary.outcome, Outcome::Issued);
    assert_eq!(issued_slots(&report), vec![Slot::Auth, Slot::Sign]);
    assert!(report.showed(true, "同じカードを、もう一度読み取り機に置いてください。"));
    assert!(report.showed(false, "対応: 同じカードを読み取り機に置きなおしてもらってください。"));
}

#[test]
fn the_ca_times_out_then_answers_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), ids::KUWAHARA);
    opts.ca_silent_at_submit = true;
    opts.ca_timeout = std::time::Duration::from_secs(3);
    let report = run(&opts);
    // The same request went out again and the visit finished.
    assert_eq!(report.summary.outcome, Outcome::Issued);
    assert_eq!(issued_slots(&report), vec![Slot::Auth, Slot::Sign]);
    assert!(report.showed(false, "× 認証局に接続できません。しばらくしてから同じ申請を再送します。"));
    assert!(report.showed(false, "対応: 自動で送りなおします。カードを抜かずにお待ちください。"));
    assert!(report.showed(false, "今すぐ再送する"));
    assert!(report.showed(true, "しばらくお待ちください。カードは置いたままにしてください。"));
    assert!(report.showed(false, "✓ 電子証明書を発行しました"));
}

/// The README's demo command, run as people run it: headless, into a directory; the card
/// it leaves is then read by unmodified OpenSC through `jpki-vcard serve`.
#[test]
fn the_headless_demo_leaves_a_card_standard_middleware_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_jpki-kiosk"))
        .args(["demo", "--headless", "--data"])
        .arg(&data)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("jpki-kiosk demo runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("outcome: Issued"), "{text}");
    assert!(text.contains("hash chain intact"), "{text}");
    for f in ["card.vcard", "ca/sign-ca.pem", "ca/auth-ca.pem", "journal.db", "audit.db", "registry.db", "staff.db"] {
        assert!(data.join(f).is_file(), "{f} missing");
    }
    assert!(std::fs::read_dir(data.join("receipts")).unwrap().count() >= 1, "no receipt");
    assert!(std::fs::read_dir(data.join("screens")).unwrap().count() >= 12, "too few screenshots");

    let mut rig = Rig::new();
    let _card = rig.stack.start_card(0, &data.join("card.vcard"), &[]).expect("the issued card comes up");
    // The authentication certificate as OpenSC reads it, checked by openssl against the
    // CA's root from the demo.
    let auth_pem = rig.tool_ok("pkcs15-tool", &["--read-certificate", "1"]);
    assert!(!pem_der(&auth_pem).is_empty());
    let cert_file = rig.path("auth.pem");
    std::fs::write(&cert_file, &auth_pem).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(data.join("ca/auth-ca.pem"))
        .arg(&cert_file)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    let dump = rig.tool_ok("pkcs15-tool", &["--dump"]);
    assert!(dump.contains("JPKI"), "{dump}");
}
