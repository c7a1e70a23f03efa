//! Unit tests of the card model: one table row per line of `docs/card-protocol.md`.

use std::sync::OnceLock;

use proptest::prelude::*;
use rand_core::OsRng;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

use super::*;
use crate::card::admin_key::DEMO_MASTER_KEY;

const AUTH_PIN: &str = "1234";
const SIGN_PIN: &str = "ABC123";
const SERIAL: [u8; 16] = *b"0123456789ABCDEF";

/// A certificate-shaped blob: `30 82 01 00` + 256 bytes (260 bytes in all).
fn fake_cert(fill: u8) -> Vec<u8> {
    let mut c = vec![0x30, 0x82, 0x01, 0x00];
    c.extend(std::iter::repeat_n(fill, 256));
    c
}

fn test_key() -> RsaPrivateKey {
    // One key per test process: generation is the slow part.
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).unwrap()).clone()
}

fn fresh(kind: CardKind) -> VirtualCard {
    VirtualCard::new(CardState::fresh(kind, SERIAL, &DEMO_MASTER_KEY, &mut OsRng))
}

/// PINs set, four certificates written, no keys.
fn personalised() -> VirtualCard {
    let mut s = CardState::fresh(CardKind::MyNumber, SERIAL, &DEMO_MASTER_KEY, &mut OsRng);
    s.auth_pin.hash = Some(s.pin_hash(KeySlot::Auth, AUTH_PIN.as_bytes()));
    s.sign_pin.hash = Some(s.pin_hash(KeySlot::Sign, SIGN_PIN.as_bytes()));
    s.auth_cert = fake_cert(0xA1);
    s.auth_ca_cert = fake_cert(0xB1);
    s.sign_cert = fake_cert(0xA2);
    s.sign_ca_cert = fake_cert(0xB2);
    VirtualCard::new(s)
}

fn with_keys() -> VirtualCard {
    let mut card = personalised();
    card.state.auth_key = Some(test_key());
    card.state.sign_key = Some(test_key());
    card
}

fn hex_apdu(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// Runs one APDU; returns (data, SW).
fn run(card: &mut VirtualCard, apdu: &[u8]) -> (Vec<u8>, u16) {
    let (mut r, _) = card.process(apdu, &mut OsRng);
    assert!(r.len() >= 2, "no status word");
    let s = r.split_off(r.len() - 2);
    (r, u16::from_be_bytes([s[0], s[1]]))
}

fn admin_auth(card: &mut VirtualCard) {
    let (serial, sw) = run(card, &hex_apdu("00CA010110"));
    assert_eq!(sw, 0x9000);
    let (challenge, sw) = run(card, &hex_apdu("0084000010"));
    assert_eq!(sw, 0x9000);
    let key = admin_key::card_key(&DEMO_MASTER_KEY, &serial.try_into().unwrap());
    let crypt = admin_key::cryptogram(&key, &challenge.try_into().unwrap(), &SERIAL);
    let mut apdu = hex_apdu("0082008110");
    apdu.extend_from_slice(&crypt);
    assert_eq!(run(card, &apdu).1, 0x9000);
}

const SELECT_AP: &str = "00A4040C0AD392F000260100000001";

fn sel(fid: &str) -> String {
    format!("00A4020C02{fid}")
}

fn verify(pin: &str) -> String {
    format!("00200080{:02X}{}", pin.len(), hex::encode(pin))
}

/// A table row: name, card factory, then (APDU hex or ADMIN/OFF/ON, expected SW) steps.
type Row<'a> = (&'a str, fn() -> VirtualCard, Vec<(String, u16)>);

fn run_rows(rows: &[Row<'_>]) {
    for (name, make, steps) in rows {
        let mut card = make();
        for (i, (apdu, want)) in steps.iter().enumerate() {
            let got = match apdu.as_str() {
                "ADMIN" => {
                    admin_auth(&mut card);
                    0x9000
                }
                "OFF" => {
                    card.power(PowerEvent::Off);
                    0x9000
                }
                "ON" => {
                    card.power(PowerEvent::On);
                    0x9000
                }
                hexs => run(&mut card, &hex_apdu(hexs)).1,
            };
            assert_eq!(
                got, *want,
                "row {name:?}, step {i} ({apdu}): got {got:04X}, want {want:04X}"
            );
        }
    }
}

macro_rules! steps {
    ($( ($apdu:expr, $sw:expr) ),* $(,)?) => { vec![ $( (String::from($apdu), $sw) ),* ] };
}

#[test]
fn malformed_unknown_cla_and_ins() {
    run_rows(&[
        ("header too short", personalised, steps![("00A402", 0x6700)]),
        ("empty", personalised, steps![("", 0x6700)]),
        ("Lc longer than data", personalised, steps![("00A4020C050018", 0x6700)]),
        ("extended length", personalised, steps![("00D60000000100AA", 0x6700)]),
        ("unknown CLA 84", personalised, steps![("84A4040C0AD392F000260100000001", 0x6E00)]),
        ("unknown CLA A0", personalised, steps![("A0B0000004", 0x6E00)]),
        ("unknown INS", personalised, steps![("00FF0000", 0x6D00)]),
        ("PIV GET DATA probe", personalised, steps![("00CB3FFF035C017E08", 0x6D00)]),
        ("READ BINARY under CLA 80", personalised, steps![("80B0000004", 0x6D00)]),
        ("signature under CLA 00", personalised, steps![("002A008003010203", 0x6D00)]),
    ]);
}

#[test]
fn select_rows() {
    run_rows(&[
        ("select AP", personalised, steps![(SELECT_AP, 0x9000)]),
        (
            "AP absent on a non-JPKI card",
            || fresh(CardKind::NoJpki),
            steps![(SELECT_AP, 0x6A82), (sel("0006"), 0x6A82)],
        ),
        ("Juki card has the AP", || fresh(CardKind::Juki), steps![(SELECT_AP, 0x9000)]),
        ("EF before AP", personalised, steps![(sel("000A"), 0x6A82)]),
        (
            "unknown FID keeps selection",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("000A"), 0x9000),
                (sel("1234"), 0x6A82),
                ("00B0000004", 0x9000)
            ],
        ),
        (
            "foreign AID keeps security state",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("001B"), 0x9000),
                (verify(SIGN_PIN), 0x9000),
                ("00A4040007A0000002471001", 0x6A82),
                ("00A4040C07A0000000791000", 0x6A82),
                (sel("0001"), 0x9000),
                ("00B0000004", 0x9000)
            ],
        ),
        (
            "foreign AID keeps the selection",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0006"), 0x9000),
                ("00A404000BE82B0601040181C31F020100", 0x6A82),
                ("00B0000004", 0x9000)
            ],
        ),
        (
            "select AP clears verified PINs",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("001B"), 0x9000),
                (verify(SIGN_PIN), 0x9000),
                (SELECT_AP, 0x9000),
                (sel("0001"), 0x9000),
                ("00B0000004", 0x6982)
            ],
        ),
        (
            "select AP clears admin",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (SELECT_AP, 0x9000),
                (sel("000A"), 0x9000),
                ("000E0000", 0x6982)
            ],
        ),
        (
            "select AP clears selection",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("000A"), 0x9000),
                (SELECT_AP, 0x9000),
                ("00B0000004", 0x6986)
            ],
        ),
        ("wrong P1", personalised, steps![(SELECT_AP, 0x9000), ("00A4000C023F00", 0x6A86)]),
        (
            "FID of wrong length",
            personalised,
            steps![(SELECT_AP, 0x9000), ("00A4020C03000A00", 0x6700)],
        ),
    ]);
}

#[test]
fn read_binary_rows() {
    run_rows(&[
        (
            "token",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0006"), 0x9000), ("00B0000000", 0x9000)],
        ),
        (
            "offset at end",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0006"), 0x9000), ("00B0002001", 0x6B00)],
        ),
        (
            "offset past end",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("000A"), 0x9000), ("00B0020000", 0x6B00)],
        ),
        (
            "empty EF",
            || fresh(CardKind::MyNumber),
            steps![(SELECT_AP, 0x9000), (sel("000A"), 0x9000), ("00B0000004", 0x6B00)],
        ),
        (
            "sign cert before password",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0001"), 0x9000), ("00B0000004", 0x6982)],
        ),
        (
            "sign cert after auth PIN only",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (sel("0001"), 0x9000),
                ("00B0000004", 0x6982)
            ],
        ),
        (
            "sign cert after password",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("001B"), 0x9000),
                (verify(SIGN_PIN), 0x9000),
                (sel("0001"), 0x9000),
                ("00B0000004", 0x9000)
            ],
        ),
        (
            "CA certs always",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("000B"), 0x9000),
                ("00B0000004", 0x9000),
                (sel("0002"), 0x9000),
                ("00B0000004", 0x9000)
            ],
        ),
        (
            "key IEF",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0017"), 0x9000), ("00B0000004", 0x6981)],
        ),
        (
            "PIN IEF",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("001B"), 0x9000), ("00B0000004", 0x6981)],
        ),
        ("nothing selected", personalised, steps![(SELECT_AP, 0x9000), ("00B0000004", 0x6986)]),
        (
            "short EF form",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("000A"), 0x9000), ("00B0850004", 0x6A86)],
        ),
        (
            "no Le",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("000A"), 0x9000), ("00B00000", 0x6700)],
        ),
    ]);
}

#[test]
fn read_binary_returns_the_bytes_in_chunks() {
    let mut card = personalised();
    run(&mut card, &hex_apdu(SELECT_AP));
    run(&mut card, &hex_apdu(&sel("0006")));
    let (token, sw) = run(&mut card, &hex_apdu("00B0000000"));
    assert_eq!(sw, 0x9000);
    assert_eq!(token, b"JPKIAPICCTOKEN2                 ");
    run(&mut card, &hex_apdu(&sel("000A")));
    // OpenSC's pattern: 4-byte header, then 256-byte chunks, then the exact remainder.
    let (head, _) = run(&mut card, &hex_apdu("00B0000004"));
    let size = usize::from(u16::from_be_bytes([head[2], head[3]])) + 4;
    assert_eq!(size, 260);
    let (a, _) = run(&mut card, &hex_apdu("00B0000000"));
    let (b, sw) = run(&mut card, &hex_apdu("00B0010000"));
    assert_eq!((a.len(), b.len(), sw), (256, 4, 0x9000));
    assert_eq!([a, b].concat(), fake_cert(0xA1));
}

#[test]
fn verify_rows() {
    let wrong_auth = verify("9999");
    let wrong_sign = verify("ZZZ999");
    run_rows(&[
        (
            "right",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0018"), 0x9000), (verify(AUTH_PIN), 0x9000)],
        ),
        (
            "wrong counts down, right restores",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (wrong_auth.clone(), 0x63C2),
                (wrong_auth.clone(), 0x63C1),
                (verify(AUTH_PIN), 0x9000),
                ("00200080", 0x63C3)
            ],
        ),
        (
            "auth locks after 3",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (wrong_auth.clone(), 0x63C2),
                (wrong_auth.clone(), 0x63C1),
                (wrong_auth.clone(), 0x63C0),
                (verify(AUTH_PIN), 0x6984),
                (wrong_auth.clone(), 0x6984),
                ("00200080", 0x63C0)
            ],
        ),
        (
            "signing locks after 5",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("001B"), 0x9000),
                (wrong_sign.clone(), 0x63C4),
                (wrong_sign.clone(), 0x63C3),
                (wrong_sign.clone(), 0x63C2),
                (wrong_sign.clone(), 0x63C1),
                (wrong_sign.clone(), 0x63C0),
                (verify(SIGN_PIN), 0x6984)
            ],
        ),
        (
            "lock survives power",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (wrong_auth.clone(), 0x63C2),
                ("OFF", 0x9000),
                ("ON", 0x9000),
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                ("00200080", 0x63C2)
            ],
        ),
        (
            "retry query always 63Cx, even verified",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                ("00200080", 0x63C3),
                (verify(AUTH_PIN), 0x9000),
                ("00200080", 0x63C3),
                (sel("001B"), 0x9000),
                ("00200080", 0x63C5)
            ],
        ),
        (
            "retry query on an unset PIN",
            || fresh(CardKind::MyNumber),
            steps![(SELECT_AP, 0x9000), (sel("0018"), 0x9000), ("00200080", 0x63C3)],
        ),
        (
            "PIN not set",
            || fresh(CardKind::MyNumber),
            steps![(SELECT_AP, 0x9000), (sel("0018"), 0x9000), (verify(AUTH_PIN), 0x6985)],
        ),
        (
            "other EF selected",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("000A"), 0x9000),
                (verify(AUTH_PIN), 0x6986),
                ("00200080", 0x6986)
            ],
        ),
        ("nothing selected", personalised, steps![(SELECT_AP, 0x9000), (verify(AUTH_PIN), 0x6986)]),
        (
            "wrong P2",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0018"), 0x9000), ("00200081", 0x6A86)],
        ),
        (
            "PIN of one slot is not the other's",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("001B"), 0x9000), (verify(AUTH_PIN), 0x63C4)],
        ),
        (
            "a wrong PIN drops the verified state",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("001B"), 0x9000),
                (verify(SIGN_PIN), 0x9000),
                (verify("ZZZ999"), 0x63C4),
                (sel("0001"), 0x9000),
                ("00B0000004", 0x6982)
            ],
        ),
        (
            "a new PIN from RESET RETRY COUNTER must be verified",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("001B"), 0x9000),
                (verify(SIGN_PIN), 0x9000),
                ("002C028006585958313233", 0x9000),
                (sel("0001"), 0x9000),
                ("00B0000004", 0x6982),
                (sel("001B"), 0x9000),
                (verify("XYX123"), 0x9000),
                (sel("0001"), 0x9000),
                ("00B0000004", 0x9000)
            ],
        ),
    ]);
}

#[test]
fn change_reference_data_rows() {
    let change = |p: &str| format!("00240180{:02X}{}", p.len(), hex::encode(p));
    run_rows(&[
        (
            "not verified",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0018"), 0x9000), (change("5678"), 0x6982)],
        ),
        (
            "changes",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (change("5678"), 0x9000),
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x63C2),
                (verify("5678"), 0x9000)
            ],
        ),
        (
            "auth format",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (change("12345"), 0x6A80),
                (change("12A4"), 0x6A80),
                (change("123"), 0x6A80)
            ],
        ),
        (
            "sign format",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("001B"), 0x9000),
                (verify(SIGN_PIN), 0x9000),
                (change("abc123"), 0x6A80),
                (change("ABCDEF"), 0x6A80),
                (change("123456"), 0x6A80),
                (change("AB12"), 0x6A80),
                (change("ABCDEFGH123456789"), 0x6A80),
                (change("ABCDEFGH12345678"), 0x9000)
            ],
        ),
        (
            "bad format changes nothing",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (change("12A4"), 0x6A80),
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000)
            ],
        ),
        (
            "wrong P1",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0018"), 0x9000), ("002400800431323334", 0x6A86)],
        ),
        (
            "no PIN IEF",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("000A"), 0x9000), (change("5678"), 0x6986)],
        ),
    ]);
}

fn sha256_digest_info(msg: &[u8]) -> Vec<u8> {
    let mut di = Pkcs1v15Sign::new::<Sha256>().prefix.to_vec();
    di.extend_from_slice(&Sha256::digest(msg));
    di
}

fn sign_apdu(di: &[u8]) -> String {
    format!("802A0080{:02X}{}00", di.len(), hex::encode(di))
}

#[test]
fn signature_rows() {
    let di = sha256_digest_info(b"hello");
    run_rows(&[
        (
            "not verified",
            with_keys,
            steps![(SELECT_AP, 0x9000), (sel("0017"), 0x9000), (sign_apdu(&di), 0x6982)],
        ),
        (
            "other PIN verified",
            with_keys,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (sel("001A"), 0x9000),
                (sign_apdu(&di), 0x6982)
            ],
        ),
        (
            "no key",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (sel("0017"), 0x9000),
                (sign_apdu(&di), 0x6A88)
            ],
        ),
        (
            "not a DigestInfo",
            with_keys,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (sel("0017"), 0x9000),
                (sign_apdu(&[0x11; 32]), 0x6A80),
                (sign_apdu(&di[..di.len() - 1]), 0x6A80),
                (sign_apdu(&[di.as_slice(), &[0]].concat()), 0x6A80)
            ],
        ),
        (
            "not a key IEF",
            with_keys,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (sign_apdu(&di), 0x6986)
            ],
        ),
        (
            "wrong P1P2",
            with_keys,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                (sel("0017"), 0x9000),
                ("802A9E9A0401020304", 0x6A86)
            ],
        ),
        (
            "power off clears",
            with_keys,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (verify(AUTH_PIN), 0x9000),
                ("OFF", 0x9000),
                ("ON", 0x9000),
                (SELECT_AP, 0x9000),
                (sel("0017"), 0x9000),
                (sign_apdu(&di), 0x6982)
            ],
        ),
    ]);
}

#[test]
fn signatures_verify_for_every_digest() {
    let mut card = with_keys();
    let public = RsaPublicKey::from(&test_key());
    run(&mut card, &hex_apdu(SELECT_AP));
    run(&mut card, &hex_apdu(&sel("001B")));
    assert_eq!(run(&mut card, &hex_apdu(&verify(SIGN_PIN))).1, 0x9000);
    run(&mut card, &hex_apdu(&sel("001A")));
    let msg = b"signed by the virtual card";
    let cases: Vec<(Pkcs1v15Sign, Vec<u8>)> = vec![
        (Pkcs1v15Sign::new::<sha1::Sha1>(), sha1::Sha1::digest(msg).to_vec()),
        (Pkcs1v15Sign::new::<Sha224>(), Sha224::digest(msg).to_vec()),
        (Pkcs1v15Sign::new::<Sha256>(), Sha256::digest(msg).to_vec()),
        (Pkcs1v15Sign::new::<Sha384>(), Sha384::digest(msg).to_vec()),
        (Pkcs1v15Sign::new::<Sha512>(), Sha512::digest(msg).to_vec()),
    ];
    for (scheme, hash) in cases {
        let di = [&scheme.prefix[..], &hash].concat();
        let (out, effect) = card.process(&hex_apdu(&sign_apdu(&di)), &mut OsRng);
        assert_eq!(&out[256..], &[0x90, 0x00]);
        assert_eq!(effect, Effect { persist: false, operation: Operation::Signature });
        public.verify(scheme, &hash, &out[..256]).expect("signature verifies");
    }
}

#[test]
fn get_data_and_challenge_rows() {
    run_rows(&[
        ("serial", personalised, steps![("00CA010110", 0x9000)]),
        ("unknown tag", personalised, steps![("00CADF3005", 0x6A88), ("00CA010200", 0x6A88)]),
        ("challenge", personalised, steps![("0084000010", 0x9000)]),
        ("challenge of other length", personalised, steps![("0084000008", 0x6700)]),
        ("challenge P1P2", personalised, steps![("0084010010", 0x6A86)]),
    ]);
    let mut card = personalised();
    assert_eq!(run(&mut card, &hex_apdu("00CA010110")).0, SERIAL);
    let a = run(&mut card, &hex_apdu("0084000010")).0;
    let b = run(&mut card, &hex_apdu("0084000010")).0;
    assert_eq!((a.len(), b.len()), (16, 16));
    assert_ne!(a, b);
}

fn ext_auth(card: &mut VirtualCard, right: bool, fetch_challenge: bool) -> u16 {
    let challenge =
        if fetch_challenge { run(card, &hex_apdu("0084000010")).0 } else { vec![0; 16] };
    let key = admin_key::card_key(&DEMO_MASTER_KEY, &SERIAL);
    let mut crypt = admin_key::cryptogram(&key, &challenge.try_into().unwrap(), &SERIAL);
    if !right {
        crypt[0] ^= 1;
    }
    let mut apdu = hex_apdu("0082008110");
    apdu.extend_from_slice(&crypt);
    run(card, &apdu).1
}

#[test]
fn external_authenticate_rows() {
    let mut card = personalised();
    assert_eq!(ext_auth(&mut card, true, false), 0x6985, "no challenge");
    assert_eq!(ext_auth(&mut card, true, true), 0x9000);
    // A challenge is single use.
    let key = admin_key::card_key(&DEMO_MASTER_KEY, &SERIAL);
    let challenge: [u8; 16] = run(&mut card, &hex_apdu("0084000010")).0.try_into().unwrap();
    let mut apdu = hex_apdu("0082008110");
    apdu.extend_from_slice(&admin_key::cryptogram(&key, &challenge, &SERIAL));
    assert_eq!(run(&mut card, &apdu).1, 0x9000);
    assert_eq!(run(&mut card, &apdu).1, 0x6985, "replayed");
    // Any APDU between GET CHALLENGE and EXTERNAL AUTHENTICATE discards the challenge.
    let challenge: [u8; 16] = run(&mut card, &hex_apdu("0084000010")).0.try_into().unwrap();
    run(&mut card, &hex_apdu("00CA010110"));
    let mut apdu = hex_apdu("0082008110");
    apdu.extend_from_slice(&admin_key::cryptogram(&key, &challenge, &SERIAL));
    assert_eq!(run(&mut card, &apdu).1, 0x6985);
    // Wrong answers count down over the card's life, and a right one never resets them.
    assert_eq!(ext_auth(&mut card, false, true), 0x63C9);
    // A wrong cryptogram consumes the challenge too.
    assert_eq!(ext_auth(&mut card, true, false), 0x6985);
    assert_eq!(ext_auth(&mut card, true, true), 0x9000);
    assert_eq!(ext_auth(&mut card, false, true), 0x63C8);
    card.power(PowerEvent::Reset);
    for left in (0..8).rev() {
        assert_eq!(ext_auth(&mut card, false, true), 0x63C0 | left);
    }
    assert_eq!(ext_auth(&mut card, true, true), 0x6983, "blocked");
    assert_eq!(card.state().admin_tries_left, 0);
    run_rows(&[
        (
            "wrong P2",
            personalised,
            steps![
                ("0084000010", 0x9000),
                ("00820080100000000000000000000000000000000000", 0x6A86)
            ],
        ),
        (
            "wrong length",
            personalised,
            steps![("0084000010", 0x9000), ("0082008108000000000000000000", 0x6700)],
        ),
    ]);
}

#[test]
fn admin_commands_need_authentication() {
    run_rows(&[
        (
            "generate",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0017"), 0x9000), ("0047800000", 0x6982)],
        ),
        (
            "read public key",
            with_keys,
            steps![(SELECT_AP, 0x9000), (sel("0017"), 0x9000), ("0047810000", 0x6982)],
        ),
        (
            "reset retry counter",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("0018"), 0x9000), ("002C0380", 0x6982)],
        ),
        (
            "update",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("000A"), 0x9000), ("00D6000001AA", 0x6982)],
        ),
        (
            "erase",
            personalised,
            steps![(SELECT_AP, 0x9000), (sel("000A"), 0x9000), ("000E0000", 0x6982)],
        ),
        (
            "admin is checked before the selection",
            personalised,
            steps![(SELECT_AP, 0x9000), ("00D6000001AA", 0x6982), ("000E0000", 0x6982)],
        ),
        (
            "power off drops admin",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                ("OFF", 0x9000),
                ("ON", 0x9000),
                (SELECT_AP, 0x9000),
                (sel("000A"), 0x9000),
                ("000E0000", 0x6982)
            ],
        ),
    ]);
}

#[test]
fn generate_and_get_response() {
    let mut card = personalised();
    run(&mut card, &hex_apdu(SELECT_AP));
    admin_auth(&mut card);
    assert_eq!(run(&mut card, &hex_apdu(&sel("0017"))).1, 0x9000);
    assert_eq!(run(&mut card, &hex_apdu("0047810000")).1, 0x6A88, "no key yet");
    let (first, effect) = card.process(&hex_apdu("0047800000"), &mut OsRng);
    assert_eq!(effect, Effect { persist: true, operation: Operation::KeyGeneration });
    assert_eq!(first.len(), 258);
    assert_eq!(&first[256..], &[0x61, 0x0E]);
    let (rest, sw) = run(&mut card, &hex_apdu("00C000000E"));
    assert_eq!(sw, 0x9000);
    let object = [&first[..256], &rest].concat();
    assert_eq!(object.len(), PUBLIC_KEY_DO_LEN);
    assert_eq!(&object[..9], &[0x7F, 0x49, 0x82, 0x01, 0x09, 0x81, 0x82, 0x01, 0x00]);
    assert_eq!(&object[265..], &[0x82, 0x03, 0x01, 0x00, 0x01]);
    let key = card.state().auth_key.clone().expect("key on card");
    assert_eq!(BigUint::from_bytes_be(&object[9..265]), *key.n());
    // Generating into 0017 empties the auth certificate; the others stay.
    assert!(card.state().auth_cert.is_empty());
    assert_eq!(card.state().auth_ca_cert, fake_cert(0xB1));
    assert_eq!(card.state().sign_cert, fake_cert(0xA2));
    // Reading the public key again gives the same object without a new key.
    let (again, effect) = card.process(&hex_apdu("0047810000"), &mut OsRng);
    assert_eq!(effect, Effect::default());
    assert_eq!(&again[..256], &object[..256]);
    // Le smaller than the rest: GET RESPONSE continues with 61 xx again.
    let (part, sw) = run(&mut card, &hex_apdu("00C0000005"));
    assert_eq!((part, sw), (object[256..261].to_vec(), 0x6109));
    let (part, sw) = run(&mut card, &hex_apdu("00C0000000"));
    assert_eq!((part, sw), (object[261..].to_vec(), 0x9000));
    // Nothing pending now; and any other APDU discards pending data.
    assert_eq!(run(&mut card, &hex_apdu("00C000000E")).1, 0x6985);
    run(&mut card, &hex_apdu("0047810000"));
    run(&mut card, &hex_apdu("00CA010110"));
    assert_eq!(run(&mut card, &hex_apdu("00C000000E")).1, 0x6985);
    run_rows(&[
        (
            "generate on a non-key EF",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("000A"), 0x9000),
                ("0047800000", 0x6986)
            ],
        ),
        (
            "generate wrong P1",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0017"), 0x9000),
                ("0047820000", 0x6A86)
            ],
        ),
        ("get response wrong P1P2", personalised, steps![("00C0010000", 0x6A86)]),
    ]);
}

#[test]
fn generate_into_signing_slot_empties_signing_cert() {
    let mut card = personalised();
    run(&mut card, &hex_apdu(SELECT_AP));
    admin_auth(&mut card);
    run(&mut card, &hex_apdu(&sel("001A")));
    assert_eq!(run(&mut card, &hex_apdu("0047800000")).1, 0x610E);
    assert!(card.state().sign_cert.is_empty());
    assert_eq!(card.state().auth_cert, fake_cert(0xA1));
    assert!(card.state().sign_key.is_some() && card.state().auth_key.is_none());
}

#[test]
fn reset_retry_counter_rows() {
    let set = |p: &str| format!("002C0280{:02X}{}", p.len(), hex::encode(p));
    let wrong = verify("0000");
    run_rows(&[
        (
            "initial set-up",
            || fresh(CardKind::MyNumber),
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0018"), 0x9000),
                (set("4321"), 0x9000),
                (verify("4321"), 0x9000),
                (sel("001B"), 0x9000),
                (set("PASS1234"), 0x9000),
                (verify("PASS1234"), 0x9000)
            ],
        ),
        (
            "re-set clears the lock",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (wrong.clone(), 0x63C2),
                (wrong.clone(), 0x63C1),
                (wrong.clone(), 0x63C0),
                ("ADMIN", 0x9000),
                (sel("0018"), 0x9000),
                (set("4321"), 0x9000),
                ("00200080", 0x63C3),
                (verify(AUTH_PIN), 0x63C2),
                (verify("4321"), 0x9000)
            ],
        ),
        (
            "lock release keeps the PIN",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                (sel("0018"), 0x9000),
                (wrong.clone(), 0x63C2),
                (wrong.clone(), 0x63C1),
                (wrong.clone(), 0x63C0),
                (verify(AUTH_PIN), 0x6984),
                ("ADMIN", 0x9000),
                (sel("0018"), 0x9000),
                ("002C0380", 0x9000),
                ("00200080", 0x63C3),
                (verify(AUTH_PIN), 0x9000)
            ],
        ),
        (
            "lock release of an unset PIN",
            || fresh(CardKind::MyNumber),
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("001B"), 0x9000),
                ("002C0380", 0x6985)
            ],
        ),
        (
            "bad format changes nothing",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("001B"), 0x9000),
                (set("abc123"), 0x6A80),
                (set("ABCDEF"), 0x6A80),
                (verify(SIGN_PIN), 0x9000)
            ],
        ),
        (
            "P1=02 needs data",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0018"), 0x9000),
                ("002C0280", 0x6700)
            ],
        ),
        (
            "P1=03 takes none",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0018"), 0x9000),
                ("002C03800131", 0x6700)
            ],
        ),
        (
            "wrong P1",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0018"), 0x9000),
                ("002C0180", 0x6A86)
            ],
        ),
        (
            "not a PIN IEF",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0017"), 0x9000),
                ("002C0380", 0x6986)
            ],
        ),
    ]);
}

#[test]
fn update_and_erase_binary_rows() {
    run_rows(&[
        (
            "write then read",
            || fresh(CardKind::MyNumber),
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("000A"), 0x9000),
                ("00D6000004308201FF", 0x9000),
                ("00D6000402AABB", 0x9000),
                ("00B0000000", 0x9000),
                ("00B0000600", 0x6B00)
            ],
        ),
        (
            "offset past the end",
            || fresh(CardKind::MyNumber),
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0002"), 0x9000),
                ("00D6000101AA", 0x6B00)
            ],
        ),
        (
            "beyond 4096 bytes",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("000B"), 0x9000),
                ("00D6100001AA", 0x6B00)
            ],
        ),
        (
            "token EF is never written",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0006"), 0x9000),
                ("00D6000001AA", 0x6982)
            ],
        ),
        (
            "key IEF is not written",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0017"), 0x9000),
                ("00D6000001AA", 0x6981)
            ],
        ),
        (
            "nothing selected",
            personalised,
            steps![(SELECT_AP, 0x9000), ("ADMIN", 0x9000), ("00D6000001AA", 0x6986)],
        ),
        (
            "erase certificate",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("000A"), 0x9000),
                ("000E0000", 0x9000),
                ("00B0000004", 0x6B00)
            ],
        ),
        (
            "erase key",
            with_keys,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("001A"), 0x9000),
                ("0047810000", 0x610E),
                ("000E0000", 0x9000),
                ("0047810000", 0x6A88)
            ],
        ),
        (
            "erase PIN IEF refused",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("0018"), 0x9000),
                ("000E0000", 0x6981)
            ],
        ),
        (
            "erase wrong P1P2",
            personalised,
            steps![
                (SELECT_AP, 0x9000),
                ("ADMIN", 0x9000),
                (sel("000A"), 0x9000),
                ("000E0001", 0x6A86)
            ],
        ),
    ]);
}

#[test]
fn update_binary_fills_to_capacity_and_no_further() {
    let mut card = fresh(CardKind::MyNumber);
    run(&mut card, &hex_apdu(SELECT_AP));
    admin_auth(&mut card);
    run(&mut card, &hex_apdu(&sel("0001")));
    let chunk = [0x5Au8; 0x80];
    let mut offset = 0usize;
    while offset < CERT_EF_CAPACITY {
        let apdu = [&[0x00, 0xD6, (offset >> 8) as u8, offset as u8, 0x80][..], &chunk].concat();
        let (r, effect) = card.process(&apdu, &mut OsRng);
        assert_eq!((r, effect.persist), (vec![0x90, 0x00], true), "at {offset}");
        offset += chunk.len();
    }
    assert_eq!(card.state().sign_cert.len(), CERT_EF_CAPACITY);
    assert_eq!(run(&mut card, &hex_apdu("00D61000015A")).1, 0x6A84);
    assert_eq!(run(&mut card, &hex_apdu("00D60FFF025A5A")).1, 0x6A84);
    assert_eq!(run(&mut card, &hex_apdu("00D60FFF015A")).1, 0x9000);
}

#[test]
fn effects_mark_persistent_changes_only() {
    let mut card = personalised();
    let mut fx = |apdu: &str| card.process(&hex_apdu(apdu), &mut OsRng).1.persist;
    assert!(!fx(SELECT_AP));
    assert!(!fx(&sel("0018")));
    assert!(!fx("00200080"), "retry query");
    assert!(fx(&verify("0000")), "a wrong PIN costs a try");
    assert!(fx(&verify(AUTH_PIN)), "counter back to full");
    assert!(!fx(&verify(AUTH_PIN)), "already full");
    assert!(!fx("00CA010110"));
}

#[test]
fn pins_are_stored_hashed_and_salted_per_card() {
    let mut a = fresh(CardKind::MyNumber);
    let mut b = fresh(CardKind::MyNumber);
    for card in [&mut a, &mut b] {
        run(card, &hex_apdu(SELECT_AP));
        admin_auth(card);
        run(card, &hex_apdu(&sel("0018")));
        assert_eq!(run(card, &hex_apdu("002C0280043131313100")).1, 0x6700);
        assert_eq!(run(card, &hex_apdu("002C02800431313131")).1, 0x9000);
    }
    let ha = a.state().auth_pin.hash.clone().unwrap();
    let hb = b.state().auth_pin.hash.clone().unwrap();
    assert_ne!(*ha, *hb, "salt differs per card");
    assert_ne!(&ha[..4], b"1111");
}

#[test]
fn debug_output_holds_no_secret() {
    let card = with_keys();
    let shown = format!("{card:?}");
    let key_hex = hex::encode(card.state().card_key.as_slice());
    let pin_hash = hex::encode(card.state().auth_pin.hash.as_ref().unwrap().as_slice());
    let d = card.state().auth_key.as_ref().unwrap().d().to_string();
    for secret in [key_hex.as_str(), pin_hash.as_str(), &d[..20], AUTH_PIN, SIGN_PIN] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("tries_left: 3"), "{shown}");
}

#[test]
fn card_kinds_and_tokens() {
    assert_eq!(&CardKind::Juki.token().unwrap()[..], b"JPKIAPICCTOKEN                  ");
    assert_eq!(CardKind::NoJpki.token(), None);
    let mut juki = fresh(CardKind::Juki);
    run(&mut juki, &hex_apdu(SELECT_AP));
    run(&mut juki, &hex_apdu(&sel("0006")));
    assert_eq!(&run(&mut juki, &hex_apdu("00B0000020")).0[..15], b"JPKIAPICCTOKEN ");
}

/// Every status word `docs/card-protocol.md` §4 lists.
fn documented(sw: u16) -> bool {
    matches!(
        sw,
        0x9000 | 0x6700 | 0x6981
            ..=0x6986 | 0x6A80 | 0x6A82 | 0x6A84 | 0x6A86 | 0x6A88 | 0x6B00 | 0x6D00 | 0x6E00
    ) || sw >> 8 == 0x61
        || sw & 0xFFF0 == 0x63C0
}

fn apdu_strategy() -> impl Strategy<Value = Vec<u8>> {
    let ins = prop::sample::select(vec![
        0x0E, 0x20, 0x24, 0x2A, 0x2C, 0x47, 0x82, 0x84, 0xA4, 0xB0, 0xC0, 0xCA, 0xD6, 0x00, 0xFF,
    ]);
    let structured = (
        prop::sample::select(vec![0x00u8, 0x80, 0x0C]),
        ins,
        any::<[u8; 2]>(),
        prop::collection::vec(any::<u8>(), 0..=260),
    )
        .prop_map(|(cla, ins, p, tail)| [&[cla, ins, p[0], p[1]][..], &tail].concat());
    // Well-formed case-3/4 bodies, since random tails are mostly wrong-length.
    let cased = (
        prop::sample::select(vec![0x00u8, 0x80]),
        any::<u8>(),
        any::<[u8; 2]>(),
        prop::collection::vec(any::<u8>(), 1..=255),
        prop::option::of(any::<u8>()),
    )
        .prop_map(|(cla, ins, p, data, le)| {
            let mut v = vec![cla, ins, p[0], p[1], data.len() as u8];
            v.extend_from_slice(&data);
            v.extend(le);
            v
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..=300), structured, cased]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_apdus_never_panic_and_answer_documented_sws(
        apdus in prop::collection::vec(apdu_strategy(), 1..12),
        prefix in 0usize..4,
    ) {
        let mut card = with_keys();
        // Start from a few interesting session states.
        let setup = [SELECT_AP.to_string(), sel("001B"), verify(SIGN_PIN), sel("001A")];
        for a in &setup[..prefix] {
            run(&mut card, &hex_apdu(a));
        }
        for apdu in apdus {
            let (r, _) = card.process(&apdu, &mut OsRng);
            prop_assert!(r.len() >= 2 && r.len() <= 258, "R-APDU of {} bytes", r.len());
            let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
            prop_assert!(documented(sw), "SW {sw:04X} for {}", hex::encode(&apdu));
            if sw != 0x9000 && sw >> 8 != 0x61 {
                prop_assert_eq!(r.len(), 2, "data only with success");
            }
        }
    }
}

/// The kiosk's whole personalisation (§5 of the protocol) against the model, ending with a
/// signature that verifies under the public key the card gave out.
#[test]
fn full_personalisation_then_signature() {
    let mut card = fresh(CardKind::MyNumber);
    let ok = |card: &mut VirtualCard, apdu: &str| {
        let (data, sw) = run(card, &hex_apdu(apdu));
        assert!(sw == 0x9000 || sw >> 8 == 0x61, "{apdu}: {sw:04X}");
        (data, sw)
    };
    ok(&mut card, SELECT_AP);
    admin_auth(&mut card);
    ok(&mut card, &sel("0017"));
    let (mut object, sw) = ok(&mut card, "0047800000");
    let (rest, _) = ok(&mut card, &format!("00C00000{:02X}", sw & 0xFF));
    object.extend_from_slice(&rest);
    let n = BigUint::from_bytes_be(&object[9..265]);
    let public = RsaPublicKey::new(n, BigUint::from(65537u32)).unwrap();
    ok(&mut card, &sel("0018"));
    ok(&mut card, "002C02800435363738");
    // A certificate in two chunks, read back whole.
    let cert = [&[0x30, 0x82, 0x01, 0x2C][..], &[0xC3; 300]].concat();
    ok(&mut card, &sel("000A"));
    for (i, chunk) in cert.chunks(255).enumerate() {
        let off = i * 255;
        ok(&mut card, &format!("00D6{off:04X}{:02X}{}", chunk.len(), hex::encode(chunk)));
    }
    let (a, _) = ok(&mut card, "00B0000000");
    let (b, _) = ok(&mut card, "00B0010000");
    assert_eq!([a, b].concat(), cert);
    // A power cycle, as the resident's first use.
    card.power(PowerEvent::Off);
    card.power(PowerEvent::On);
    ok(&mut card, SELECT_AP);
    ok(&mut card, &sel("0018"));
    ok(&mut card, &verify("5678"));
    ok(&mut card, &sel("0017"));
    let di = sha256_digest_info(b"first login");
    let (sig, _) = ok(&mut card, &sign_apdu(&di));
    public
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"first login"), &sig)
        .expect("signature under the generated key");
}
