//! The real `jpki-vcard` binary against a real TCP listener playing vpcd's side of the
//! wire (the protocol peer, not a pcscd stand-in): framing, ATR, power events, reconnect
//! and the fault options. End-to-end tests through pcscd live with the card layer.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rand_core::OsRng;

use jpki_kiosk::card::admin_key::{self, DEMO_MASTER_KEY};
use jpki_kiosk::card::files::{KeySlot, ATR};
use jpki_kiosk::vcard::{CardKind, CardState, StateFile};

const SELECT_AP: &str = "00A4040C0AD392F000260100000001";
const TIMEOUT: Duration = Duration::from_secs(20);

/// The card process; killed (by its own handle) if a test ends early.
struct Card {
    child: Child,
}

impl Card {
    fn spawn(state: &Path, port: u16, extra: &[&str]) -> Card {
        let child = Command::new(env!("CARGO_BIN_EXE_jpki-vcard"))
            .arg("serve")
            .arg("--state")
            .arg(state)
            .arg("--vpcd")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("start jpki-vcard");
        Card { child }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "jpki-vcard did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Card {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// vpcd's side: a listener the card connects to.
struct Vpcd {
    listener: TcpListener,
}

impl Vpcd {
    fn new() -> Vpcd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Vpcd { listener }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    fn accept(&self) -> Conn {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                    return Conn { stream };
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the card never connected");
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

struct Conn {
    stream: TcpStream,
}

impl Conn {
    /// Sends one frame the way Debian 12's vpcd does: length and body in two writes.
    fn send(&mut self, payload: &[u8]) {
        self.stream.write_all(&(payload.len() as u16).to_be_bytes()).unwrap();
        self.stream.write_all(payload).unwrap();
    }

    /// One frame, or `None` when the card closed the connection.
    fn recv(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 2];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream.read_exact(&mut body).unwrap();
        Some(body)
    }

    fn atr(&mut self) -> Vec<u8> {
        self.send(&[0x04]);
        self.recv().expect("ATR")
    }

    fn control(&mut self, byte: u8) {
        self.send(&[byte]);
    }

    fn transmit(&mut self, apdu: &[u8]) -> Option<(Vec<u8>, u16)> {
        self.send(apdu);
        let mut r = self.recv()?;
        assert!(r.len() >= 2, "reply without SW");
        let sw = r.split_off(r.len() - 2);
        Some((r, u16::from_be_bytes([sw[0], sw[1]])))
    }

    fn sw(&mut self, apdu_hex: &str) -> u16 {
        self.transmit(&hex::decode(apdu_hex).unwrap()).expect("reply").1
    }

    fn admin_auth(&mut self) {
        let (serial, sw) = self.transmit(&hex::decode("00CA010110").unwrap()).unwrap();
        assert_eq!(sw, 0x9000);
        let serial: [u8; 16] = serial.try_into().unwrap();
        let (challenge, _) = self.transmit(&hex::decode("0084000010").unwrap()).unwrap();
        let key = admin_key::card_key(&DEMO_MASTER_KEY, &serial);
        let crypt = admin_key::cryptogram(&key, &challenge.try_into().unwrap(), &serial);
        let mut apdu = hex::decode("0082008110").unwrap();
        apdu.extend_from_slice(&crypt);
        assert_eq!(self.transmit(&apdu).unwrap().1, 0x9000);
    }
}

fn verify(pin: &str) -> String {
    format!("00200080{:02X}{}", pin.len(), hex::encode(pin))
}

/// A card file with the auth PIN `1234` set (3 tries).
fn card_with_auth_pin(dir: &Path) -> PathBuf {
    let path = dir.join("card.json");
    let mut s = CardState::fresh_random(CardKind::MyNumber, &DEMO_MASTER_KEY, &mut OsRng);
    s.auth_pin.hash = Some(s.pin_hash(KeySlot::Auth, b"1234"));
    StateFile::new(&path).create(&s).unwrap();
    path
}

fn auth_tries(path: &Path) -> u8 {
    StateFile::new(path).load().unwrap().auth_pin.tries_left
}

#[test]
fn framing_atr_and_power_off_clears_pin_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.json");
    let vpcd = Vpcd::new();
    let _card = Card::spawn(&path, vpcd.port(), &[]);
    let mut c = vpcd.accept();
    // vpcd's power-on: 01 then 04 back to back, no reply to 01.
    c.control(0x01);
    assert_eq!(c.atr(), ATR);
    // Two frames in one segment are still two messages.
    c.stream.write_all(&[0x00, 0x01, 0x04, 0x00, 0x01, 0x04]).unwrap();
    assert_eq!(c.recv().unwrap(), ATR);
    assert_eq!(c.recv().unwrap(), ATR);
    assert!(path.exists(), "a missing state file becomes a fresh card");

    // Personalise the signing password over the wire.
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    c.admin_auth();
    assert_eq!(c.sw("00A4020C02001B"), 0x9000);
    assert_eq!(c.sw(&format!("002C0280{}", "06414243313233")), 0x9000);
    // Saved before the reply was sent.
    assert!(StateFile::new(&path).load().unwrap().sign_pin.hash.is_some());

    assert_eq!(c.sw(&verify("ABC123")), 0x9000);
    assert_eq!(c.sw("00A4020C020001"), 0x9000);
    assert_eq!(c.sw("00B0000004"), 0x6B00, "readable (and empty) once verified");
    let _ = c.atr();

    c.control(0x00);
    c.control(0x01);
    assert_eq!(c.atr(), ATR);
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    assert_eq!(c.sw("00A4020C020001"), 0x9000);
    assert_eq!(c.sw("00B0000004"), 0x6982, "power off forgot the password");
    // Reset (02) forgets administrative authentication too.
    c.admin_auth();
    c.control(0x02);
    assert_eq!(c.sw("00A4040C0AD392F000260100000001"), 0x9000);
    assert_eq!(c.sw("00A4020C02000A"), 0x9000);
    assert_eq!(c.sw("000E0000"), 0x6982);
    // Malformed APDUs get 67 00 and the link stays in step.
    assert_eq!(c.transmit(&[0x00, 0xA4, 0x04]).unwrap().1, 0x6700);
    assert_eq!(c.transmit(&[]).unwrap().1, 0x6700);
    assert_eq!(c.atr(), ATR);
}

#[test]
fn reconnects_after_vpcd_drops_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = card_with_auth_pin(dir.path());
    let vpcd = Vpcd::new();
    let _card = Card::spawn(&path, vpcd.port(), &[]);
    let mut c = vpcd.accept();
    assert_eq!(c.atr(), ATR);
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    assert_eq!(c.sw("00A4020C020018"), 0x9000);
    assert_eq!(c.sw(&verify("9999")), 0x63C2);
    drop(c); // pcscd restarting

    let t = Instant::now();
    let mut c = vpcd.accept();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "reconnected after {took:?}");
    assert_eq!(c.atr(), ATR);
    // Same card (the wrong try stuck), fresh session (the selection is gone).
    assert_eq!(c.sw("00B0000004"), 0x6986);
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    assert_eq!(c.sw("00A4020C020018"), 0x9000);
    assert_eq!(c.sw("00200080"), 0x63C2);
}

#[test]
fn card_waits_for_vpcd_to_appear() {
    let dir = tempfile::tempdir().unwrap();
    let path = card_with_auth_pin(dir.path());
    // Reserve a port, close it, start the card, then open vpcd late.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _card = Card::spawn(&path, port, &[]);
    thread::sleep(Duration::from_millis(700));
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => panic!("port {port} was taken meanwhile: {e}"),
    };
    listener.set_nonblocking(true).unwrap();
    let mut c = Vpcd { listener }.accept();
    assert_eq!(c.atr(), ATR);
}

#[test]
fn drop_before_pulls_the_card_without_executing() {
    let dir = tempfile::tempdir().unwrap();
    let path = card_with_auth_pin(dir.path());
    let vpcd = Vpcd::new();
    let mut card = Card::spawn(&path, vpcd.port(), &["--drop-before", "3"]);
    let mut c = vpcd.accept();
    // ATR polls and control bytes are not APDUs.
    c.control(0x01);
    assert_eq!(c.atr(), ATR);
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    assert_eq!(c.atr(), ATR);
    assert_eq!(c.sw("00A4020C020018"), 0x9000);
    assert_eq!(c.transmit(&hex::decode(verify("9999")).unwrap()), None, "no reply");
    assert_eq!(card.wait_exit().code(), Some(3));
    assert_eq!(auth_tries(&path), 3, "the wrong PIN never reached the card");
}

#[test]
fn drop_after_executes_and_saves_but_never_replies() {
    let dir = tempfile::tempdir().unwrap();
    let path = card_with_auth_pin(dir.path());
    let vpcd = Vpcd::new();
    let mut card = Card::spawn(&path, vpcd.port(), &["--drop-after", "3"]);
    let mut c = vpcd.accept();
    assert_eq!(c.atr(), ATR);
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    assert_eq!(c.sw("00A4020C020018"), 0x9000);
    assert_eq!(c.transmit(&hex::decode(verify("9999")).unwrap()), None, "no reply");
    assert_eq!(card.wait_exit().code(), Some(3));
    assert_eq!(auth_tries(&path), 2, "the wrong PIN cost a try");
}

#[test]
fn fail_sw_answers_without_executing() {
    let dir = tempfile::tempdir().unwrap();
    let path = card_with_auth_pin(dir.path());
    let vpcd = Vpcd::new();
    let _card = Card::spawn(&path, vpcd.port(), &["--fail-sw", "6A82@2", "--fail-sw", "6F00@3"]);
    let mut c = vpcd.accept();
    assert_eq!(c.atr(), ATR);
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    assert_eq!(c.sw("00A4020C020018"), 0x6A82);
    assert_eq!(c.sw(&verify("9999")), 0x6F00);
    // Neither the SELECT nor the wrong PIN happened.
    assert_eq!(c.sw(&verify("9999")), 0x6986);
    assert_eq!(auth_tries(&path), 3);
}

#[test]
fn real_card_profile_slows_signatures_and_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    let mut s = CardState::fresh_random(CardKind::MyNumber, &DEMO_MASTER_KEY, &mut OsRng);
    s.auth_pin.hash = Some(s.pin_hash(KeySlot::Auth, b"1234"));
    s.auth_key = Some(rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap());
    StateFile::new(&path).create(&s).unwrap();
    let vpcd = Vpcd::new();
    let _card = Card::spawn(
        &path,
        vpcd.port(),
        &[
            "--profile",
            "real-card",
            "--sign-ms",
            "400",
            "--link-bytes-per-sec",
            "1000",
            "--latency-ms",
            "50",
        ],
    );
    let mut c = vpcd.accept();
    assert_eq!(c.atr(), ATR);
    let t = Instant::now();
    // 15-byte command + 2-byte reply at 1000 B/s = 17 ms, plus 50 ms latency.
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(67), "{took:?}");
    // The ATR poll is not an APDU and is never slowed.
    let t = Instant::now();
    assert_eq!(c.atr(), ATR);
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    assert_eq!(c.sw("00A4020C020018"), 0x9000);
    assert_eq!(c.sw(&verify("1234")), 0x9000);
    assert_eq!(c.sw("00A4020C020017"), 0x9000);
    // SHA-256 DigestInfo of 32 zero bytes: 57-byte command, 258-byte reply.
    let apdu =
        format!("802A008033{}{}00", "3031300d060960864801650304020105000420", "00".repeat(32));
    let t = Instant::now();
    let (sig, sw) = c.transmit(&hex::decode(apdu).unwrap()).unwrap();
    let took = t.elapsed();
    assert_eq!((sig.len(), sw), (256, 0x9000));
    // 400 ms signature + 315 bytes at 1000 B/s + 50 ms latency.
    assert!(took >= Duration::from_millis(765), "{took:?}");
}

/// vpcd splits each frame in two writes; without TCP_QUICKACK on the card each APDU
/// waits ~44 ms for a delayed ACK. 100 round trips must take far less than 4.4 s.
#[test]
fn quickack_avoids_the_delayed_ack_stall() {
    let dir = tempfile::tempdir().unwrap();
    let path = card_with_auth_pin(dir.path());
    let vpcd = Vpcd::new();
    let _card = Card::spawn(&path, vpcd.port(), &[]);
    let mut c = vpcd.accept();
    assert_eq!(c.atr(), ATR);
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    assert_eq!(c.sw("00A4020C020006"), 0x9000);
    let t = Instant::now();
    for _ in 0..100 {
        assert_eq!(c.sw("00B0000020"), 0x9000);
    }
    let took = t.elapsed();
    eprintln!("100 READ BINARY round trips with split frames: {took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

fn vcard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jpki-vcard")).args(args).output().expect("run jpki-vcard")
}

#[test]
fn init_makes_the_three_kinds_of_card_and_show_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.json");
    let juki = dir.path().join("juki.json");
    let serial = "00112233445566778899AABBCCDDEEFF";
    let out =
        vcard(&["init", "--state", none.to_str().unwrap(), "--token", "none", "--serial", serial]);
    assert!(out.status.success(), "{out:?}");
    let out = vcard(&["init", "--state", juki.to_str().unwrap(), "--token", "juki"]);
    assert!(out.status.success(), "{out:?}");
    // Never over an existing card.
    let out = vcard(&["init", "--state", juki.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let out = vcard(&["show", "--state", none.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(serial) && text.contains("JPKI-AP: none"), "{text}");
    let state = StateFile::new(&none).load().unwrap();
    assert!(!text.to_lowercase().contains(&hex::encode(state.card_key.as_slice())), "{text}");

    // The card without JPKI-AP refuses the AID; the Juki card shows its old token.
    let vpcd = Vpcd::new();
    let _card = Card::spawn(&none, vpcd.port(), &[]);
    let mut c = vpcd.accept();
    assert_eq!(c.sw(SELECT_AP), 0x6A82);
    drop(c);
    let vpcd = Vpcd::new();
    let _card = Card::spawn(&juki, vpcd.port(), &[]);
    let mut c = vpcd.accept();
    assert_eq!(c.sw(SELECT_AP), 0x9000);
    assert_eq!(c.sw("00A4020C020006"), 0x9000);
    let (token, _) = c.transmit(&hex::decode("00B0000020").unwrap()).unwrap();
    assert_eq!(&token[..], b"JPKIAPICCTOKEN                  ");

    // A corrupt state file is an error, not a fresh card.
    std::fs::write(&none, b"{").unwrap();
    let out = vcard(&["serve", "--state", none.to_str().unwrap(), "--vpcd", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid virtual card state"));
    assert_eq!(std::fs::read(&none).unwrap(), b"{");
}
