//! The card layer when things go wrong, against the real `jpki-vcard` behind a real
//! private pcscd: wrong PINs and locks that survive a restart, issuance commands without
//! (or with the wrong) administrative authentication, foreign cards, cards pulled in the
//! middle of a certificate write, and garbage APDUs.

mod card_common;

use std::time::Duration;

use card_common::*;
use jpki_kiosk::card::admin_key::DEMO_MASTER_KEY;
use jpki_kiosk::card::apdu::StatusWord;
use jpki_kiosk::card::files::{fid, KeySlot};
use jpki_kiosk::card::jpki_ap::{self, JpkiAp};
use jpki_kiosk::card::personalize::{Personalizer, WriteOutcome, WRITE_CHUNK};
use jpki_kiosk::card::pin::{AuthPin, SigningPassword};
use jpki_kiosk::card::transport::{self, CardTransport, PcscTransport};
use jpki_kiosk::card::CardError;

const SECS10: Duration = Duration::from_secs(10);

#[test]
fn wrong_pins_count_down_lock_and_stay_locked_across_a_restart() {
    let mut rig = Rig::new();
    let mut card = rig.card(0, "c.vcard", &[]);
    let mut pcsc = rig.connect(0);
    let mut ap = JpkiAp::new(&mut pcsc);
    set_pins(&mut ap);
    ap.detect().unwrap();

    let bad_pin = AuthPin::new("0000").unwrap();
    for left in [2, 1, 0] {
        assert_eq!(ap.verify(&bad_pin), Err(CardError::WrongPin { tries_left: left }));
    }
    assert_eq!(ap.verify(&auth_pin()), Err(CardError::Blocked));
    let bad_pw = SigningPassword::new("WRONG1").unwrap();
    for left in [4, 3, 2, 1, 0] {
        assert_eq!(ap.verify(&bad_pw), Err(CardError::WrongPin { tries_left: left }));
    }
    assert_eq!(ap.verify(&sign_password()), Err(CardError::Blocked));

    // Pull the card: the transport says so, pcscd reports the removal.
    card.kill().unwrap();
    let err = ap.pin_status(KeySlot::Auth).unwrap_err();
    assert!(err.is_card_gone(), "{err:?}");
    let ctx = transport::establish().unwrap();
    transport::wait_for_removal(&ctx, &rig.reader(0), SECS10).unwrap();

    // Same card file, new process: still locked.
    card.restart().unwrap();
    pcsc.reconnect(SECS10).unwrap();
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    assert!(ap.pin_status(KeySlot::Auth).unwrap().is_blocked());
    assert!(ap.pin_status(KeySlot::Sign).unwrap().is_blocked());
    assert_eq!(ap.verify(&auth_pin()), Err(CardError::Blocked));
    assert_eq!(ap.verify(&sign_password()), Err(CardError::Blocked));
}

#[test]
fn lock_release_and_pin_reset_need_administrative_authentication() {
    let mut rig = Rig::new();
    let _card = rig.card(0, "c.vcard", &[]);
    let mut pcsc = rig.connect(0);
    let mut ap = JpkiAp::new(&mut pcsc);
    set_pins(&mut ap);
    ap.detect().unwrap();
    let bad = AuthPin::new("9876").unwrap();
    for _ in 0..3 {
        let _ = ap.verify(&bad);
    }
    assert_eq!(ap.verify(&auth_pin()), Err(CardError::Blocked));

    // Without authentication: 69 82.
    let mut p = Personalizer::new(&mut ap);
    assert_eq!(p.release_lock(KeySlot::Auth), Err(CardError::SecurityNotSatisfied));
    assert_eq!(p.set_pin(&AuthPin::new("5555").unwrap()), Err(CardError::SecurityNotSatisfied));
    // A wrong master key: 63 Cx, one of the card's ten lifetime tries gone, still refused.
    assert_eq!(p.authenticate(b"a municipality's wrong master key"), Err(CardError::AdminAuthFailed { tries_left: 9 }));
    assert_eq!(p.release_lock(KeySlot::Auth), Err(CardError::SecurityNotSatisfied));
    // The right one.
    p.authenticate(&DEMO_MASTER_KEY).unwrap();
    p.release_lock(KeySlot::Auth).unwrap();
    assert_eq!(ap.verify(&auth_pin()), Ok(()));
    assert_eq!(ap.pin_status(KeySlot::Auth).unwrap().tries_left, 3);

    // A forgotten password is reset (new value) the same way, and SELECT AP ends the
    // administrative session.
    ap.detect().unwrap();
    let new_pw = SigningPassword::new("NEW2PASS").unwrap();
    assert_eq!(Personalizer::new(&mut ap).set_pin(&new_pw), Err(CardError::SecurityNotSatisfied));
    Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY).unwrap();
    Personalizer::new(&mut ap).set_pin(&new_pw).unwrap();
    assert_eq!(ap.verify(&sign_password()), Err(CardError::WrongPin { tries_left: 4 }));
    assert_eq!(ap.verify(&new_pw), Ok(()));
}

#[test]
fn juki_and_non_jpki_cards_get_typed_errors() {
    let mut rig = Rig::new();
    rig.init_card("juki.vcard", "juki");
    rig.init_card("none.vcard", "none");
    let _juki = rig.card(0, "juki.vcard", &[]);
    let _none = rig.card(1, "none.vcard", &[]);
    let mut juki = rig.connect(0);
    assert_eq!(JpkiAp::new(&mut juki).detect(), Err(CardError::JukiCard));
    let mut none = rig.connect(1);
    assert_eq!(JpkiAp::new(&mut none).detect(), Err(CardError::NotJpki(StatusWord::FILE_NOT_FOUND)));
}

/// The whole content of the selected EF, read in chunks until the card says it ended.
fn raw_content(ap: &mut JpkiAp<&mut PcscTransport>, ef: u16) -> Vec<u8> {
    ap.select(ef).unwrap();
    let mut out = Vec::new();
    loop {
        let r = ap.send(&jpki_ap::read_binary(out.len() as u16, 256)).unwrap();
        match r.sw {
            StatusWord::OK => out.extend_from_slice(&r.data),
            StatusWord::WRONG_OFFSET => return out,
            sw => panic!("READ BINARY answered {sw}"),
        }
        if r.data.len() < 256 {
            return out;
        }
    }
}

/// The card with OLD in EF 000B, and the transport closed.
fn card_with_old_certificate(rig: &mut Rig, old: &[u8]) {
    let _card = rig.card(0, "c.vcard", &[]);
    let mut pcsc = rig.connect(0);
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    let mut p = Personalizer::new(&mut ap);
    p.authenticate(&DEMO_MASTER_KEY).unwrap();
    p.write_certificate(fid::AUTH_CA_CERT, old).unwrap();
}

#[test]
fn a_card_pulled_mid_write_keeps_whole_apdus_and_the_kiosk_redoes_the_write() {
    let mut rig = Rig::new();
    let old = fake_cert(800, 0x11);
    let new = fake_cert(1000, 0x77);
    card_with_old_certificate(&mut rig, &old);
    // APDUs after connecting: 1-3 detect, 4-6 authentication, 7 SELECT 000B, 8 ERASE,
    // 9-12 UPDATE BINARY (255, 255, 255, 235 bytes), then the read-back.
    let cases: [(&str, u64, Vec<u8>); 5] = [
        ("--drop-before", 8, old.clone()),
        ("--drop-after", 8, Vec::new()),
        ("--drop-before", 10, new[..WRITE_CHUNK].to_vec()),
        ("--drop-after", 10, new[..2 * WRITE_CHUNK].to_vec()),
        ("--drop-after", 12, new.clone()),
    ];
    for (fault, n, expected) in cases {
        let n_arg = n.to_string();
        let mut card = rig.card(0, "c.vcard", &[fault, &n_arg]);
        let mut pcsc = rig.connect(0);
        {
            let mut ap = JpkiAp::new(&mut pcsc);
            ap.detect().unwrap();
            let mut p = Personalizer::new(&mut ap);
            p.authenticate(&DEMO_MASTER_KEY).unwrap();
            let err = p.write_certificate(fid::AUTH_CA_CERT, &new).unwrap_err();
            assert!(err.is_card_gone(), "{fault} {n}: {err:?}");
        }
        let status = card.wait_exit(SECS10).unwrap().expect("the card process ends");
        assert_eq!(status.code(), Some(3), "{fault} {n}: a pulled card exits with 3");

        // Served again without faults: the EF holds exactly what whole APDUs wrote.
        card.restart_with(&[]).unwrap();
        pcsc.reconnect(SECS10).unwrap();
        let mut ap = JpkiAp::new(&mut pcsc);
        ap.detect().unwrap();
        let content = raw_content(&mut ap, fid::AUTH_CA_CERT);
        assert_eq!(content, expected, "{fault} {n}");

        // The kiosk's resume: a torn certificate fails the read-back and is rewritten.
        Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY).unwrap();
        let outcome = Personalizer::new(&mut ap).ensure_certificate(fid::AUTH_CA_CERT, &new).unwrap();
        let want = if expected == new { WriteOutcome::AlreadyThere } else { WriteOutcome::Written };
        assert_eq!(outcome, want, "{fault} {n}");
        assert_eq!(ap.read_certificate(fid::AUTH_CA_CERT).unwrap(), new);

        // Back to the old certificate for the next case.
        Personalizer::new(&mut ap).write_certificate(fid::AUTH_CA_CERT, &old).unwrap();
        // The connection and the card process end here; the next case starts both anew.
        drop(pcsc);
        drop(card);
    }
}

#[test]
fn sigkill_during_a_certificate_write_never_leaves_a_torn_apdu() {
    let mut rig = Rig::new();
    let old = fake_cert(800, 0x21);
    let new = fake_cert(3000, 0x55);
    card_with_old_certificate(&mut rig, &old);
    // Slow APDUs so the kill lands inside the UPDATE BINARY sequence.
    let mut card = rig.card(0, "c.vcard", &["--latency-ms", "15"]);
    let mut pcsc = rig.connect(0);
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY).unwrap();
    let killer = card.kill_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(80));
        killer.kill();
    });
    let err = Personalizer::new(&mut ap).write_certificate(fid::AUTH_CA_CERT, &new).unwrap_err();
    t.join().unwrap();
    assert!(err.is_card_gone(), "{err:?}");

    card.restart_with(&[]).unwrap();
    pcsc.reconnect(SECS10).unwrap();
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    let content = raw_content(&mut ap, fid::AUTH_CA_CERT);
    let whole_chunks = content.len() % WRITE_CHUNK == 0 || content.len() == new.len();
    assert!(
        content == old || (whole_chunks && new.starts_with(&content)),
        "EF holds {} bytes that are neither the old content nor whole chunks of the new",
        content.len()
    );
    assert_ne!(content, new, "the kill came too late to test anything");
    Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY).unwrap();
    assert_eq!(
        Personalizer::new(&mut ap).ensure_certificate(fid::AUTH_CA_CERT, &new),
        Ok(WriteOutcome::Written)
    );
    assert_eq!(ap.read_certificate(fid::AUTH_CA_CERT).unwrap(), new);
}

#[test]
fn garbage_apdus_get_iso_status_words_and_the_card_keeps_answering() {
    let mut rig = Rig::new();
    let _card = rig.card(0, "c.vcard", &[]);
    let mut pcsc = rig.connect(0);
    let cases: &[(&str, &[u8], u16)] = &[
        ("Lc beyond the data", &[0x00, 0xA4, 0x02, 0x0C, 0x05, 0x00, 0x18], 0x6700),
        ("case 4 body shorter than Lc", &[0x00, 0x20, 0x00, 0x80, 0x08, 0x31, 0x32, 0x00], 0x6700),
        ("extended Lc", &[0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x02, 0xAA, 0xBB], 0x6700),
        ("extended Le", &[0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x00], 0x6700),
        ("unknown INS", &[0x00, 0xFE, 0x00, 0x00], 0x6D00),
        ("unknown CLA", &[0xB4, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x06], 0x6E00),
        ("SELECT unknown DF name", &[0x00, 0xA4, 0x04, 0x0C, 0x03, 0xA0, 0x00, 0x01], 0x6A82),
        ("READ BINARY with nothing selected", &[0x00, 0xB0, 0x00, 0x00, 0x00], 0x6986),
    ];
    for (what, apdu, sw) in cases {
        let r = pcsc.transmit_raw(apdu).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.sw, StatusWord(*sw), "{what}");
        assert!(r.data.is_empty(), "{what}");
    }
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    // A failed SELECT leaves the selection; a key IEF is not readable; VERIFY needs a PIN IEF.
    ap.select(fid::TOKEN).unwrap();
    assert_eq!(ap.send(&jpki_ap::select_ef(0x4242)).unwrap().sw, StatusWord::FILE_NOT_FOUND);
    assert_eq!(ap.send(&jpki_ap::read_binary(0, 32)).unwrap().sw, StatusWord::OK);
    assert_eq!(ap.send(&jpki_ap::verify(&auth_pin())).unwrap().sw, StatusWord::NO_CURRENT_EF);
    ap.select(fid::AUTH_KEY).unwrap();
    assert_eq!(ap.send(&jpki_ap::read_binary(0, 16)).unwrap().sw, StatusWord::INCOMPATIBLE_FILE);
    // Still a working card.
    ap.detect().unwrap();
}

#[test]
fn a_status_word_the_kiosk_does_not_expect_is_kept_as_data() {
    let mut rig = Rig::new();
    // The 4th APDU (GET DATA serial) answers 6F 00 instead of executing.
    let _card = rig.card(0, "c.vcard", &["--fail-sw", "6F00@4"]);
    let mut pcsc = rig.connect(0);
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    let err = Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY).unwrap_err();
    assert_eq!(err.status_word(), Some(StatusWord(0x6F00)), "{err:?}");
    assert!(matches!(err, CardError::Unexpected { command: "GET DATA (serial)", .. }));
    // The next attempt goes through.
    Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY).unwrap();
}

#[test]
fn the_kiosk_holds_the_card_exclusively_and_sees_it_come_and_go() {
    let mut rig = Rig::new();
    let ctx = transport::establish().unwrap();
    // Slot 1 stays empty: no card, and waiting for one times out.
    assert!(matches!(
        PcscTransport::connect(&ctx, &rig.reader(1)).map(|_| ()),
        Err(jpki_kiosk::card::TransportError::NoCard)
    ));
    assert_eq!(
        transport::wait_for_card(&ctx, &rig.reader(1), Duration::from_millis(300)).unwrap_err(),
        jpki_kiosk::card::TransportError::Timeout
    );

    assert_eq!(
        transport::wait_for_any_card(&ctx, Duration::from_millis(300)).unwrap_err(),
        jpki_kiosk::card::TransportError::Timeout
    );
    let mut card = rig.card(0, "c.vcard", &[]);
    assert_eq!(transport::wait_for_any_card(&ctx, SECS10).unwrap(), rig.reader(0));
    let mut first = rig.connect(0);
    // Exclusive share mode: nobody else gets in between the kiosk's APDUs.
    assert!(matches!(
        PcscTransport::connect(&ctx, &rig.reader(0)).map(|_| ()),
        Err(jpki_kiosk::card::TransportError::Pcsc(pcsc::Error::SharingViolation))
    ));
    {
        let mut tx = first.transaction().unwrap();
        JpkiAp::new(&mut tx).detect().unwrap();
    }
    drop(first);
    let mut second = rig.connect(0);
    JpkiAp::new(&mut second).detect().unwrap();

    // The card leaves and comes back: events, then a fresh connection.
    card.kill().unwrap();
    assert_eq!(
        transport::wait_for_card(&ctx, &rig.reader(0), Duration::from_millis(300)).unwrap_err(),
        jpki_kiosk::card::TransportError::Timeout
    );
    card.restart().unwrap();
    transport::wait_for_card(&ctx, &rig.reader(0), SECS10).unwrap();
    second.reconnect(SECS10).unwrap();
    JpkiAp::new(&mut second).detect().unwrap();
}
