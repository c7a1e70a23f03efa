//! Fuzz target: arbitrary bytes as a session with the virtual card.
//!
//! The input is a sequence of records `[op, len, bytes…]`: op 0–1 sends `bytes` as a
//! command APDU (also through `Command::parse`), 2 is a power event, 3 authenticates as the
//! issuer (so the issuance commands are reachable). The card must never panic and must
//! always answer a status word from `docs/card-protocol.md` §4.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_core::OsRng;
use rsa::RsaPrivateKey;

use jpki_kiosk::card::admin_key::{self, DEMO_MASTER_KEY};
use jpki_kiosk::card::apdu::Command;
use jpki_kiosk::card::files::KeySlot;
use jpki_kiosk::vcard::{CardKind, CardState, PowerEvent, VirtualCard};

const SERIAL: [u8; 16] = [0x42; 16];

fn key() -> RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).expect("key")).clone()
}

fn card() -> VirtualCard {
    let mut s = CardState::fresh(CardKind::MyNumber, SERIAL, &DEMO_MASTER_KEY, &mut OsRng);
    s.auth_pin.hash = Some(s.pin_hash(KeySlot::Auth, b"1234"));
    s.sign_pin.hash = Some(s.pin_hash(KeySlot::Sign, b"ABC123"));
    s.auth_cert = [&[0x30, 0x82, 0x00, 0x10][..], &[0x55; 16]].concat();
    s.sign_key = Some(key());
    VirtualCard::new(s)
}

fn documented(sw: u16) -> bool {
    matches!(
        sw,
        0x9000 | 0x6700 | 0x6981
            ..=0x6986 | 0x6A80 | 0x6A82 | 0x6A84 | 0x6A86 | 0x6A88 | 0x6B00 | 0x6D00 | 0x6E00
    ) || sw >> 8 == 0x61
        || sw & 0xFFF0 == 0x63C0
}

fn exchange(card: &mut VirtualCard, apdu: &[u8]) -> Vec<u8> {
    let (r, _) = card.process(apdu, &mut OsRng);
    assert!(r.len() >= 2 && r.len() <= 258, "R-APDU of {} bytes", r.len());
    let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
    assert!(documented(sw), "undocumented SW {sw:04X}");
    r
}

fn admin(card: &mut VirtualCard) {
    let r = exchange(card, &[0x00, 0x84, 0x00, 0x00, 0x10]);
    let Ok(challenge) = <[u8; 16]>::try_from(&r[..r.len() - 2]) else { return };
    let k = admin_key::card_key(&DEMO_MASTER_KEY, &SERIAL);
    let mut apdu = vec![0x00, 0x82, 0x00, 0x81, 0x10];
    apdu.extend_from_slice(&admin_key::cryptogram(&k, &challenge, &SERIAL));
    exchange(card, &apdu);
}

fuzz_target!(|data: &[u8]| {
    let mut card = card();
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        match op % 4 {
            0 | 1 => {
                // On-card key generation takes ~0.1–1 s; the unit tests cover it.
                if bytes.len() >= 3 && bytes[1] == 0x47 && bytes[2] == 0x80 {
                    continue;
                }
                if let Ok(cmd) = Command::parse(bytes) {
                    assert_eq!(Command::parse(&cmd.to_bytes()).as_ref(), Ok(&cmd));
                }
                exchange(&mut card, bytes);
            }
            2 => card.power(match len % 3 {
                0 => PowerEvent::Off,
                1 => PowerEvent::On,
                _ => PowerEvent::Reset,
            }),
            _ => admin(&mut card),
        }
    }
});
