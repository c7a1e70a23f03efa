//! Unmodified OpenSC (default driver list: its probes go to the card first) and openssl
//! against a card personalised by the kiosk's card layer, through a real private pcscd
//! with vpcd and the real `jpki-vcard`. No mocks.

mod card_common;

use std::process::Command;
use std::time::Instant;

use card_common::*;
use jpki_kiosk::card::files::fid;
use jpki_kiosk::carddemo::{self, DemoOptions};

fn personalise(rig: &mut Rig) -> carddemo::Personalised {
    let _card = rig.card(0, "card.vcard", &[]);
    let opts = DemoOptions {
        data: rig.dir.path().to_path_buf(),
        auth_pin: auth_pin(),
        sign_password: sign_password(),
        rtt_probe: 0,
        card_args: Vec::new(),
    };
    let mut log = Vec::new();
    let (done, report) = carddemo::personalise(&rig.reader(0), &opts, Instant::now(), &mut log)
        .unwrap_or_else(|e| panic!("personalisation failed: {e}\n{}", String::from_utf8_lossy(&log)));
    assert!(report.personalisation.apdus <= report.personalisation_minimum * 11 / 10);
    std::mem::forget(_card); // keep serving; the stack kills it on drop
    done
}

#[test]
fn opensc_reads_and_signs_with_a_card_the_kiosk_personalised() {
    let mut rig = Rig::new();
    let done = personalise(&mut rig);

    // The PKCS#15 view lists the JPKI objects with full counters.
    let dump = rig.tool_ok("pkcs15-tool", &["--dump"]);
    for want in [
        "User Authentication PIN",
        "Digital Signature PIN",
        "User Authentication Key",
        "Digital Signature Key",
        "User Authentication Certificate",
        "Digital Signature Certificate",
        "User Authentication Certificate CA",
        "Digital Signature Certificate CA",
    ] {
        assert!(dump.contains(want), "dump lacks {want:?}:\n{dump}");
    }
    assert_eq!(dump_tries_left(&dump), vec![3, 5], "{dump}");

    // Certificates read by OpenSC are the bytes the kiosk wrote.
    let auth = pem_der(&rig.tool_ok("pkcs15-tool", &["--read-certificate", "1"]));
    assert_eq!(auth, done.certificate(fid::AUTH_CERT).unwrap());
    let auth_ca = pem_der(&rig.tool_ok("pkcs15-tool", &["--read-certificate", "3"]));
    assert_eq!(auth_ca, done.certificate(fid::AUTH_CA_CERT).unwrap());

    // The signing certificate is private: the card answers 69 82 until the password.
    let refused = rig.tool("pkcs15-tool", &["--read-certificate", "2"]);
    assert!(!refused.status.success(), "signing certificate read without the password");
    let sign = pem_der(&rig.tool_ok(
        "pkcs15-tool",
        &["--read-certificate", "2", "--verify-pin", "--auth-id", "02", "--pin", SIGN_PASSWORD],
    ));
    assert_eq!(sign, done.certificate(fid::SIGN_CERT).unwrap());

    // Signatures through PKCS#11 verify with openssl against the certificates.
    std::fs::write(rig.path("data"), b"a document the resident signs at the counter").unwrap();
    for (name, der) in [("auth", &auth), ("sign", &sign)] {
        std::fs::write(rig.path(&format!("{name}.der")), der).unwrap();
        let pubkey = rig.tool_ok("openssl", &["x509", "-inform", "DER", "-in", &format!("{name}.der"), "-pubkey", "-noout"]);
        std::fs::write(rig.path(&format!("{name}.pub")), pubkey).unwrap();
    }
    rig.tool_ok(
        "pkcs11-tool",
        &["--module", PKCS11, "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "01", "--login", "--pin", AUTH_PIN, "-i", "data", "-o", "auth.sig"],
    );
    rig.tool_ok(
        "pkcs11-tool",
        &["--module", PKCS11, "--slot-index", "1", "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "02", "--login", "--pin", SIGN_PASSWORD, "-i", "data", "-o", "sign.sig"],
    );
    for name in ["auth", "sign"] {
        let ok = rig.tool_ok("openssl", &["dgst", "-sha256", "-verify", &format!("{name}.pub"), "-signature", &format!("{name}.sig"), "data"]);
        assert!(ok.contains("Verified OK"), "{name}: {ok}");
    }
    // And not against the other key: the check can fail.
    let cross = rig.tool("openssl", &["dgst", "-sha256", "-verify", "sign.pub", "-signature", "auth.sig", "data"]);
    assert!(!cross.status.success());

    // A wrong PIN through PKCS#11 costs a try, as the card counts.
    let wrong = rig.tool(
        "pkcs11-tool",
        &["--module", PKCS11, "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "01", "--login", "--pin", "9999", "-i", "data", "-o", "x.sig"],
    );
    assert!(!wrong.status.success());
    let dump = rig.tool_ok("pkcs15-tool", &["--dump"]);
    assert_eq!(dump_tries_left(&dump), vec![2, 5], "{dump}");
}

#[test]
fn card_demo_leaves_a_card_that_jpki_vcard_presents_again() {
    let mut rig = Rig::new();
    let data = rig.path("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_jpki-kiosk"))
        .args(["card-demo", "--data"])
        .arg(&data)
        .output()
        .expect("jpki-kiosk runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "card-demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sign with the signing key"), "{stdout}");
    assert!(!stdout.contains(AUTH_PIN) && !stdout.contains(SIGN_PASSWORD), "PIN in output:\n{stdout}");

    // The same card, served again by a plain `jpki-vcard serve`, carries the CA
    // certificates the demo wrote to DIR/ca/.
    let _card = rig.stack.start_card(0, &data.join("card.vcard"), &[]).unwrap();
    let auth_ca = pem_der(&rig.tool_ok("pkcs15-tool", &["--read-certificate", "3"]));
    let sign_ca = pem_der(&rig.tool_ok("pkcs15-tool", &["--read-certificate", "4"]));
    assert_eq!(auth_ca, pem_file_der(&data.join("ca/auth-ca.pem")));
    assert_eq!(sign_ca, pem_file_der(&data.join("ca/sign-ca.pem")));
}

#[test]
fn card_demo_refuses_a_juki_card_with_a_clear_message() {
    // No stack in this process: the demo starts its own, in its own process.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    std::fs::create_dir_all(&data).unwrap();
    let out = Command::new(VCARD)
        .args(["init", "--token", "juki", "--state"])
        .arg(data.join("card.vcard"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_jpki-kiosk"))
        .args(["card-demo", "--data"])
        .arg(&data)
        .output()
        .expect("jpki-kiosk runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Juki-net"), "{stderr}");
}
