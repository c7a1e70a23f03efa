//! A whole NEW ISSUANCE visit driven over real peers: a private pcscd with a fresh
//! `jpki-vcard`, `jpki-ca serve` on loopback over HTTPS with the RA certificate, and
//! SQLite journal, audit log and registry in a temporary directory. People are scripted.

#[path = "common/visit_run.rs"]
mod visit_run;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use der::{Decode, DecodePem, Encode};
use rand_core::{OsRng, RngCore};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use visit_run::{licence, takahashi_form};

use jpki_kiosk::card::admin_key::DEMO_MASTER_KEY;
use jpki_kiosk::card::files::KeySlot;
use jpki_kiosk::card::jpki_ap::JpkiAp;
use jpki_kiosk::card::personalize::Personalizer;
use jpki_kiosk::card::pin::{AuthPin, SigningPassword};
use jpki_kiosk::card::transport::{self, PcscTransport};
use jpki_kiosk::enroll::client::CmpClient;
use jpki_kiosk::enroll::http::HttpTransport;
use jpki_kiosk::issuance::adapters::ca::CmpCa;
use jpki_kiosk::issuance::adapters::script::{ca_client, CaFiles};
use jpki_kiosk::issuance::adapters::card::PcscCard;
use jpki_kiosk::issuance::adapters::store::{SqliteAudit, SqliteJournal};
use jpki_kiosk::issuance::adapters::{
    Counter, JournalPort, PadEntry, ReceiptFile, RegistryLookup, SystemClock,
};
use jpki_kiosk::issuance::driver::{Driver, Ports, Status};
use jpki_kiosk::issuance::event::{Opening, Visit};
use jpki_kiosk::issuance::model::{
    Form, PresenterKind, Seed, Slot, TransactionId,
    VisitId,
};
use jpki_kiosk::issuance::reconcile::{CaStatus, CaView, CardView, LocalView};
use jpki_kiosk::issuance::{
    reconcile, Command as VisitCommand, Event, Issuance, JournalRecord, Outcome, PadCommand, Screen,
};
use jpki_kiosk::peers::card_stack::{CardProcess, CardStack};
use jpki_kiosk::registry::sqlite::SqliteRegistry;
use jpki_kiosk::staff::OperatorId;

const AUTH_PIN: &str = "9067";
const SIGN_PASSWORD: &str = "QZ7KW3RT";
const SECS10: Duration = Duration::from_secs(10);

/// `jpki-ca serve` on loopback ports the OS picks, its directory inside the test's.
struct Ca {
    child: Child,
    dir: PathBuf,
    https: SocketAddr,
}

impl Ca {
    fn start(dir: PathBuf) -> Ca {
        fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_jpki-ca"))
            .args(["serve", "--dir"])
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("jpki-ca starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let https = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("https="))
            .unwrap_or_else(|| panic!("no https= in {line:?}"))
            .parse()
            .unwrap();
        Ca { child, dir, https }
    }

    fn cert(&self, name: &str) -> Certificate {
        Certificate::from_pem(fs::read(self.dir.join(name)).unwrap()).unwrap()
    }

    fn client(&self) -> CmpClient<HttpTransport> {
        let url = format!("https://{}/pkix/", self.https);
        ca_client(&url, &CaFiles::in_dir(&self.dir), |_| {}).unwrap()
    }

    /// (profile, DER, confirmed) of every certificate in the CA's store.
    fn stored(&self) -> Vec<(String, Vec<u8>, bool)> {
        let db = rusqlite::Connection::open_with_flags(
            self.dir.join("ca.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut stmt = db
            .prepare("SELECT profile, der, confirmed FROM certs ORDER BY serial")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident and staff at the counter, scripted: the form of 髙橋　一郎 with 髙 → 高,
/// a driving licence, and the PINs typed on the pad.
struct Script;

fn form() -> Form {
    takahashi_form()
}

fn typed(slot: Slot) -> Zeroizing<String> {
    Zeroizing::new(match slot {
        Slot::Auth => AUTH_PIN.to_owned(),
        Slot::Sign => SIGN_PASSWORD.to_owned(),
    })
}

impl Counter for Script {
    fn answer(&mut self, command: &VisitCommand, pad: &mut PadEntry<'_>) -> Option<Event> {
        match command {
            VisitCommand::Show {
                screen: Screen::Form,
            } => Some(Event::FormSubmitted { form: form() }),
            VisitCommand::Show {
                screen: Screen::IdentityCheck,
            } => Some(Event::IdentityRecorded {
                presenter: PresenterKind::Holder,
                documents: licence(),
            }),
            VisitCommand::Show {
                screen: Screen::CollectFee { amount },
            } => Some(Event::FeePaid { amount: *amount }),
            VisitCommand::Pad {
                pad: PadCommand::AskNew { slot },
            } => {
                pad.enter_new(*slot, typed(*slot)).unwrap();
                Some(Event::PadReady { slot: *slot })
            }
            VisitCommand::Pad {
                pad: PadCommand::AskConfirm { slot },
            } => {
                pad.enter_confirmation(*slot, typed(*slot)).unwrap();
                Some(Event::PadConfirmed { slot: *slot })
            }
            _ => None,
        }
    }
}

fn opening(n: u32) -> Opening {
    let mut r = [[0u8; 16]; 4];
    for x in &mut r {
        OsRng.fill_bytes(x);
    }
    Opening {
        visit: VisitId(format!("v-{n:04}")),
        kind: Visit::NewIssuance,
        date: time::OffsetDateTime::now_utc().date(),
        operator: "staff-07".into(),
        seed: Seed {
            transaction: TransactionId(r[0]),
            revocation: TransactionId(r[1]),
            sender_nonce: r[2],
            test_nonce: r[3],
        },
        fees: Default::default(),
        identity: Default::default(),
    }
}

/// Tracing of the kiosk into a file under the test directory (for the PIN scan).
fn capture_logs(path: &Path) {
    let file = Arc::new(Mutex::new(fs::File::create(path).unwrap()));
    struct W(Arc<Mutex<fs::File>>);
    impl Write for W {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.lock().unwrap().flush()
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .without_time()
        .with_ansi(false)
        .with_writer(move || W(file.clone()))
        .try_init();
}

/// Everything a visit runs on, in one temporary directory.
struct Counterside {
    dir: tempfile::TempDir,
    stack: CardStack,
    ca: Ca,
}

impl Counterside {
    fn new() -> Counterside {
        let dir = tempfile::tempdir().unwrap();
        capture_logs(&dir.path().join("kiosk.log"));
        let mut stack = CardStack::start(&dir.path().join("stack")).expect("card stack starts");
        stack.set_vcard_binary(env!("CARGO_BIN_EXE_jpki-vcard"));
        let ca = Ca::start(dir.path().join("ca"));
        let mut registry = SqliteRegistry::open(&dir.path().join("registry.db")).unwrap();
        registry.seed_sample().unwrap();
        Counterside { dir, stack, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn card(&mut self, name: &str, extra: &[&str]) -> CardProcess {
        let state = self.path(name);
        self.stack
            .start_card(0, &state, extra)
            .expect("virtual card comes up")
    }

    fn card_adapter(&self) -> PcscCard {
        let ctx = transport::establish().unwrap();
        PcscCard::new(ctx, self.stack.reader_name(0).unwrap(), &DEMO_MASTER_KEY)
    }

    fn journal(&self) -> SqliteJournal {
        SqliteJournal::open(&self.path("journal.db")).unwrap()
    }

    /// The driver's ports over these peers; `card` and `ca` are borrowed so the test can
    /// look at them afterwards.
    fn ports<'a>(
        &self,
        card: &'a mut PcscCard,
        ca: &'a mut CmpCa<CmpClient<HttpTransport>>,
    ) -> Ports<'a> {
        Ports {
            card: Box::new(card),
            ca: Box::new(ca),
            registry: Box::new(RegistryLookup(
                SqliteRegistry::open(&self.path("registry.db")).unwrap(),
            )),
            printer: Box::new(ReceiptFile {
                dir: self.dir.path().to_owned(),
            }),
            counter: Box::new(Script),
            journal: Box::new(self.journal()),
            audit: Box::new(
                SqliteAudit::open(&self.path("audit.db"), OperatorId::new("staff-07").unwrap())
                    .unwrap(),
            ),
            clock: Box::new(SystemClock),
        }
    }
}

/// What the card holds, read back through the card layer as a client would.
fn read_card(pcsc: &mut PcscTransport) -> (String, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut ap = JpkiAp::new(pcsc);
    ap.detect().unwrap();
    let serial = hex::encode(Personalizer::new(&mut ap).serial().unwrap());
    let auth = ap.read_certificate(KeySlot::Auth.cert_fid()).unwrap();
    ap.verify(&AuthPin::new(AUTH_PIN).unwrap()).unwrap();
    let auth_sig = ap.sign_sha256(KeySlot::Auth, b"counter check").unwrap();
    ap.verify(&SigningPassword::new(SIGN_PASSWORD).unwrap())
        .unwrap();
    let sign = ap.read_certificate(KeySlot::Sign.cert_fid()).unwrap();
    let sign_sig = ap.sign_sha256(KeySlot::Sign, b"counter check").unwrap();
    (serial, auth, auth_sig, sign, sign_sig)
}

fn verifies(cert_der: &[u8], signature: &[u8]) -> bool {
    use rsa::signature::Verifier;
    let cert = Certificate::from_der(cert_der).unwrap();
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let key: rsa::RsaPublicKey = rsa::pkcs8::DecodePublicKey::from_public_key_der(&spki).unwrap();
    let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key);
    let sig = rsa::pkcs1v15::Signature::try_from(signature).unwrap();
    vk.verify(b"counter check", &sig).is_ok()
}

/// Every encoding of `pin` the scan looks for.
fn encodings(pin: &str) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    let ascii = pin.as_bytes().to_vec();
    let le: Vec<u8> = pin.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = pin.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(pin.as_bytes());
    vec![
        ("ascii".into(), ascii.clone()),
        ("utf16le".into(), le),
        ("utf16be".into(), be),
        ("hex".into(), hex::encode(&ascii).into_bytes()),
        ("HEX".into(), hex::encode_upper(&ascii).into_bytes()),
        (
            "base64".into(),
            b64.trim_end_matches('=').as_bytes().to_vec(),
        ),
    ]
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// (file, PIN kind, encoding) of every place a PIN shows up under `dir`.
fn pin_leaks(dir: &Path) -> (usize, Vec<String>) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    let mut found = Vec::new();
    for file in &files {
        let Ok(bytes) = fs::read(file) else { continue };
        for (which, pin) in [("auth", AUTH_PIN), ("sign", SIGN_PASSWORD)] {
            for (enc, needle) in encodings(pin) {
                // A digit-only PIN inside a longer run of letters and digits (a number, a
                // timestamp, hex of a certificate in the journal) is not that PIN: random
                // hex holds any four digits often. Anywhere else it is. Its hex and base64
                // forms are checked without this rule.
                let unit = match enc.as_str() {
                    "ascii" => 1,
                    "utf16le" | "utf16be" => 2,
                    _ => 0,
                };
                let alnum_at = |i: Option<usize>| -> bool {
                    let Some(i) = i else { return false };
                    let b = match enc.as_str() {
                        "utf16le" if i + 1 < bytes.len() && bytes[i + 1] == 0 => bytes[i],
                        "utf16be" if i + 1 < bytes.len() && bytes[i] == 0 => bytes[i + 1],
                        "ascii" if i < bytes.len() => bytes[i],
                        _ => return false,
                    };
                    b.is_ascii_alphanumeric()
                };
                let digits_only = pin.bytes().all(|b| b.is_ascii_digit());
                let hit = bytes.windows(needle.len()).enumerate().find(|(at, w)| {
                    *w == needle.as_slice()
                        && !(digits_only
                            && unit > 0
                            && (alnum_at(at.checked_sub(unit))
                                || alnum_at(Some(at + needle.len()))))
                });
                if let Some((at, _)) = hit {
                    let from = at.saturating_sub(24);
                    let to = (at + needle.len() + 24).min(bytes.len());
                    found.push(format!(
                        "{} {which} {enc} at {at}: {:?}",
                        file.display(),
                        String::from_utf8_lossy(&bytes[from..to])
                    ));
                }
            }
        }
    }
    (files.len(), found)
}

fn slot_of(profile: &str) -> Slot {
    if profile.to_ascii_lowercase().contains("sign") {
        Slot::Sign
    } else {
        Slot::Auth
    }
}

#[test]
fn new_issuance_with_a_substitute_character_end_to_end_and_no_pin_anywhere() {
    let mut side = Counterside::new();
    let card_process = side.card("card.vcard", &[]);
    let mut card = side.card_adapter();
    let mut ca = CmpCa::new(side.ca.client());
    let (driver, status) =
        Driver::open(side.ports(&mut card, &mut ca), opening(1)).expect("visit runs");
    assert_eq!(
        status,
        Status::Ended(Outcome::Issued),
        "ended at {}",
        driver.visit().step_name()
    );
    let timing = driver.timing().clone();
    drop(driver);
    drop(card); // releases the exclusive connection
    eprintln!("timing: {timing:?}");

    // The card, read back through the card layer.
    let ctx = transport::establish().unwrap();
    let mut pcsc =
        PcscTransport::wait_and_connect(&ctx, &side.stack.reader_name(0).unwrap(), SECS10).unwrap();
    let (serial, auth, auth_sig, sign, sign_sig) = read_card(&mut pcsc);
    drop(pcsc);
    let now = SystemTime::now();
    for (der, sig, root) in [
        (&auth, &auth_sig, "auth-ca.pem"),
        (&sign, &sign_sig, "sign-ca.pem"),
    ] {
        let cert = Certificate::from_der(der).unwrap();
        jpki_kiosk::enroll::chain::signed_by(&cert, &side.ca.cert(root))
            .expect("chains to the CA's root");
        jpki_kiosk::enroll::chain::check_validity(&cert, now).expect("valid now");
        assert!(
            verifies(der, sig),
            "the card's key signs for its certificate"
        );
    }

    // The CA's store: exactly those two, confirmed.
    let stored = side.ca.stored();
    assert_eq!(
        stored.len(),
        2,
        "{:?}",
        stored.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    assert!(stored.iter().all(|(_, _, confirmed)| *confirmed));
    let mut on_card = vec![auth.clone(), sign.clone()];
    let mut at_ca: Vec<Vec<u8>> = stored.iter().map(|s| s.1.clone()).collect();
    on_card.sort();
    at_ca.sort();
    assert_eq!(on_card, at_ca);

    // The journal ends in the done state and the visit is closed.
    let journal = side.journal();
    assert!(journal.unfinished().unwrap().is_none());
    let records: Vec<JournalRecord> = journal.records("v-0001").unwrap();
    assert_eq!(
        Issuance::resume(&records).0.outcome(),
        Some(&Outcome::Issued)
    );

    // Card, journal and CA agree.
    let card_view = CardView {
        serial: Some(jpki_kiosk::issuance::model::CardSerial(serial)),
        keys: vec![Slot::Auth, Slot::Sign],
        certs: [(Slot::Auth, auth), (Slot::Sign, sign)]
            .into_iter()
            .collect(),
        unread: vec![],
    };
    let ca_view = CaView {
        certs: stored
            .iter()
            .map(|(p, der, _)| (slot_of(p), der.clone(), CaStatus::Live))
            .collect(),
    };
    let found = reconcile(&card_view, &LocalView::from_journal(&records), &ca_view);
    assert!(found.is_empty(), "{found:?}");

    // The audit trail is intact.
    jpki_kiosk::audit::verify_file(&side.path("audit.db")).expect("audit chain verifies");

    // No PIN in any encoding in any file the visit left: databases, WAL, logs, card, CA.
    drop(card_process);
    assert!(
        fs::metadata(side.path("kiosk.log")).unwrap().len() > 0,
        "the kiosk's tracing was captured"
    );
    // The scan finds each encoding when it is there.
    let planted = tempfile::tempdir().unwrap();
    for (enc, bytes) in encodings(SIGN_PASSWORD) {
        let mut padded = b"xx".to_vec();
        padded.extend(&bytes);
        fs::write(planted.path().join(enc), padded).unwrap();
    }
    fs::write(
        planted.path().join("auth-field"),
        format!("pin={AUTH_PIN};"),
    )
    .unwrap();
    fs::write(planted.path().join("in-hex"), format!("3082a{AUTH_PIN}f1")).unwrap();
    let seen = pin_leaks(planted.path()).1;
    assert_eq!(seen.len(), 7, "the scan sees every encoding: {seen:#?}");
    assert!(
        seen.iter().any(|s| s.contains("auth-field")) && !seen.iter().any(|s| s.contains("in-hex"))
    );
    let (scanned, leaks) = pin_leaks(side.dir.path());
    eprintln!("PIN scan: {scanned} files");
    assert!(scanned >= 6, "scanned {scanned} files");
    assert!(leaks.is_empty(), "PINs found: {leaks:#?}");
}

/// (slot, DER, status) of the CA's certificates of one transaction.
fn ca_view(ca: &Ca, transaction: &[u8; 16]) -> CaView {
    let db = rusqlite::Connection::open_with_flags(
        ca.dir.join("ca.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db
        .prepare(
            "SELECT c.profile, c.der, c.confirmed, r.serial IS NOT NULL FROM certs c
             LEFT JOIN revocations r ON r.serial = c.serial WHERE c.transaction_id = ?1",
        )
        .unwrap();
    let certs = stmt
        .query_map([transaction.as_slice()], |r| {
            let profile: String = r.get(0)?;
            let status = match (r.get::<_, i64>(2)? != 0, r.get::<_, bool>(3)?) {
                (_, true) => CaStatus::Revoked,
                (true, false) => CaStatus::Live,
                (false, false) => CaStatus::Unconfirmed,
            };
            Ok((slot_of(&profile), r.get(1)?, status))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    CaView { certs }
}

/// What the card holds: keys and certificates per slot (the issuer's view, so the
/// signing certificate is read after the signing password, when it is set).
fn card_view(side: &Counterside) -> CardView {
    let ctx = transport::establish().unwrap();
    let mut pcsc =
        PcscTransport::wait_and_connect(&ctx, &side.stack.reader_name(0).unwrap(), SECS10).unwrap();
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    let serial = Personalizer::new(&mut ap)
        .authenticate(&DEMO_MASTER_KEY)
        .unwrap();
    let mut view = CardView {
        serial: Some(jpki_kiosk::issuance::model::CardSerial(hex::encode(serial))),
        ..CardView::default()
    };
    for slot in [Slot::Auth, Slot::Sign] {
        if Personalizer::new(&mut ap)
            .read_public_key(slot.key_slot())
            .is_ok()
        {
            view.keys.push(slot);
        }
    }
    if let Ok(der) = ap.read_certificate(KeySlot::Auth.cert_fid()) {
        view.certs.insert(Slot::Auth, der);
    }
    if ap
        .verify(&SigningPassword::new(SIGN_PASSWORD).unwrap())
        .is_ok()
    {
        if let Ok(der) = ap.read_certificate(KeySlot::Sign.cert_fid()) {
            view.certs.insert(Slot::Sign, der);
        }
    }
    view
}

/// One new issuance on a fresh card that is pulled at APDU `n` (`fault` = `--drop-before`
/// or `--drop-after`), put back, and finished: in-process (`wake`) or, with `restart`,
/// by a new driver resuming from the journal. Returns the outcome and APDUs sent.
fn pulled_visit(
    side: &mut Counterside,
    ca: &mut CmpCa<CmpClient<HttpTransport>>,
    visit: u32,
    fault: Option<(&str, u64)>,
    restart: bool,
) -> (Outcome, usize) {
    let name = format!("card-{visit}.vcard");
    let _ = fs::remove_file(side.path(&name));
    let n_arg = fault.map(|(_, n)| n.to_string()).unwrap_or_default();
    let args: Vec<&str> = match fault {
        Some((flag, _)) => vec![flag, &n_arg],
        None => vec![],
    };
    let mut process = side.card(&name, &args);
    let mut card = side.card_adapter();
    card.detect_timeout = Duration::from_millis(300);
    let open = opening(visit);
    let transaction = open.seed.transaction.0;
    let id = open.visit.0.clone();
    let (mut driver, mut status) =
        Driver::open(side.ports(&mut card, ca), open).expect("visit runs");
    let mut restarts = 0;
    while status == Status::Waiting {
        restarts += 1;
        assert!(
            restarts <= 3,
            "visit {visit} {fault:?}: still waiting at {}",
            driver.visit().step_name()
        );
        // The card was pulled: it went away (exit status 3); put it back without the fault.
        let exited = process.wait_exit(SECS10).unwrap();
        if exited.is_none() {
            let records = side.journal().records(&id).unwrap();
            let tail: Vec<String> = records
                .iter()
                .rev()
                .take(14)
                .rev()
                .map(|r| format!("{r:?}"))
                .collect();
            panic!(
                "visit {visit} {fault:?}: waiting at {} with the card in; journal ends {tail:#?}",
                driver.visit().step_name()
            );
        }
        process.restart_with(&[]).unwrap();
        process.wait_present(SECS10).unwrap();
        if restart {
            drop(driver);
            let (d, s) = Driver::resume(side.ports(&mut card, ca))
                .unwrap()
                .expect("an open visit");
            driver = d;
            status = s;
        } else {
            status = driver.wake().unwrap();
        }
    }
    drop(driver);
    let apdus = card.stats.apdus;
    drop(card);
    let Status::Ended(outcome) = status else {
        unreachable!()
    };
    // Card, journal and CA agree, however the visit ended.
    let records = side.journal().records(&id).unwrap();
    let found = reconcile(
        &card_view(side),
        &LocalView::from_journal(&records),
        &ca_view(&side.ca, &transaction),
    );
    assert!(
        found.is_empty(),
        "visit {visit} {fault:?} ended {outcome:?}: {found:?}"
    );
    drop(process);
    (outcome, apdus)
}

/// The card is pulled before (or after) each APDU of a new issuance in turn; every visit
/// must end consistent (issued, or a clean failure) with card, journal and CA agreeing.
fn pull_at_every_apdu(fault: &str, parity: u64) {
    let mut side = Counterside::new();
    let mut ca = CmpCa::new(side.ca.client());
    let (outcome, total) = pulled_visit(&mut side, &mut ca, 0, None, false);
    assert_eq!(outcome, Outcome::Issued);
    let mut issued = 0;
    let mut points = 0;
    for n in (1..=total as u64).filter(|n| n % 2 == parity) {
        // Every other point resumes in a new driver from the journal, as after a restart.
        let restart = n % 4 < 2;
        let (outcome, _) = pulled_visit(&mut side, &mut ca, n as u32, Some((fault, n)), restart);
        points += 1;
        if outcome == Outcome::Issued {
            issued += 1;
        }
    }
    eprintln!("{fault}: {points} injection points of {total} APDUs, {issued} issued");
}

#[test]
fn card_pulled_before_each_odd_apdu() {
    pull_at_every_apdu("--drop-before", 1);
}

#[test]
fn card_pulled_before_each_even_apdu() {
    pull_at_every_apdu("--drop-before", 0);
}

#[test]
fn card_pulled_after_each_odd_apdu() {
    pull_at_every_apdu("--drop-after", 1);
}

#[test]
fn card_pulled_after_each_even_apdu() {
    pull_at_every_apdu("--drop-after", 0);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Not a timed test: the figures of `docs/performance.md` ("Visit workflow"). Runs five
/// new issuances and prints the median software time per adapter, then five visits cut
/// by a pulled card in the self-test and resumed by a new driver from the journal.
#[test]
#[ignore = "bench: run with --run-ignored only and --no-capture"]
fn bench_visit() {
    let mut side = Counterside::new();
    let mut ca = CmpCa::new(side.ca.client());
    let mut runs = Vec::new();
    for i in 0..5u32 {
        let name = format!("bench-{i}.vcard");
        let _process = side.card(&name, &[]);
        let mut card = side.card_adapter();
        let (driver, status) =
            Driver::open(side.ports(&mut card, &mut ca), opening(100 + i)).unwrap();
        assert_eq!(status, Status::Ended(Outcome::Issued));
        runs.push(driver.timing().clone());
    }
    let pick = |f: fn(&jpki_kiosk::issuance::driver::Timing) -> Duration| {
        median(runs.iter().map(f).collect())
    };
    let (card, ca_t, db, total) = (
        pick(|t| t.card),
        pick(|t| t.ca),
        pick(|t| t.database),
        pick(|t| t.total),
    );
    let other = pick(|t| t.total.saturating_sub(t.card + t.ca + t.database));
    println!(
        "visit.new_issuance: total {:.1} ms, card {:.1} ms, ca {:.1} ms, database {:.1} ms ({} records), other {:.1} ms (medians of 5)",
        total.as_secs_f64() * 1e3,
        card.as_secs_f64() * 1e3,
        ca_t.as_secs_f64() * 1e3,
        db.as_secs_f64() * 1e3,
        runs[0].records,
        other.as_secs_f64() * 1e3
    );

    // Resume: replaying the journal alone, and the whole resumed remainder.
    let mut replay = Vec::new();
    let mut rest = Vec::new();
    let mut replayed = 0;
    for i in 0..5u32 {
        let name = format!("bench-r{i}.vcard");
        // APDU 41: the self-test of the auth key (after the certificates are written).
        let mut process = side.card(&name, &["--drop-before", "41"]);
        let mut card = side.card_adapter();
        card.detect_timeout = Duration::from_millis(100);
        let (driver, status) =
            Driver::open(side.ports(&mut card, &mut ca), opening(200 + i)).unwrap();
        assert_eq!(status, Status::Waiting);
        drop(driver);
        process.wait_exit(SECS10).unwrap();
        process.restart_with(&[]).unwrap();
        process.wait_present(SECS10).unwrap();
        let t = std::time::Instant::now();
        let (_, records) = side.journal().unfinished().unwrap().unwrap();
        let _ = Issuance::resume(&records);
        replay.push(t.elapsed());
        replayed = records.len();
        let t = std::time::Instant::now();
        let (_, status) = Driver::resume(side.ports(&mut card, &mut ca))
            .unwrap()
            .unwrap();
        rest.push(t.elapsed());
        assert_eq!(status, Status::Ended(Outcome::Issued));
    }
    println!(
        "visit.resume: journal load + replay of {replayed} records {:.2} ms, resumed remainder (re-detect, self-test, certConf, receipt) {:.1} ms",
        median(replay).as_secs_f64() * 1e3,
        median(rest).as_secs_f64() * 1e3
    );
}

/// `jpki-kiosk visit-run` in a child process over this side's peers, with its own data
/// directory.
fn visit_run(
    side: &Counterside,
    data: &Path,
    visit: &str,
    crash_after: Option<u64>,
) -> (std::process::ExitStatus, String) {
    let peers = visit_run::Peers {
        ca_dir: &side.ca.dir,
        ca_url: format!("https://{}/pkix/", side.ca.https),
        reader: side.stack.reader_name(0).unwrap().to_str().unwrap().to_owned(),
        env: side.stack.env(),
    };
    visit_run::visit_run(&peers, data, visit, crash_after, (AUTH_PIN, SIGN_PASSWORD))
}

/// The transaction of a journaled visit (from its opening).
fn transaction_of(records: &[JournalRecord]) -> [u8; 16] {
    records
        .iter()
        .find_map(|r| match r {
            JournalRecord::Event {
                event: Event::VisitOpened(o),
                ..
            } => Some(o.seed.transaction.0),
            _ => None,
        })
        .expect("the journal opens the visit")
}

/// The kiosk process is killed (abort) right after each journal write of a new issuance
/// in turn and started again; the resumed visit must end consistent.
fn crash_at_every_record(parity: u64) {
    let mut side = Counterside::new();
    let _card = side.card("crash-0.vcard", &[]);
    let (status, out) = visit_run(&side, &side.path("crash-0"), "v-crash-0", None);
    assert!(status.success(), "{out}");
    assert_eq!(out, r#"{"outcome":"issued"}"#);
    let total = SqliteJournal::open(&side.path("crash-0/journal.db"))
        .unwrap()
        .records("v-crash-0")
        .unwrap()
        .len();
    drop(_card);
    let mut points = 0;
    for n in (1..=total as u64).filter(|n| n % 2 == parity) {
        let name = format!("crash-{n}");
        let _card = side.card(&format!("{name}.vcard"), &[]);
        let data = side.path(&name);
        let (status, out) = visit_run(&side, &data, &name, Some(n));
        assert!(
            !status.success(),
            "record {n}: the process was to abort: {out}"
        );
        let (status, out) = visit_run(&side, &data, &name, None);
        assert!(status.success(), "record {n}: resume failed: {out}");
        let journal = SqliteJournal::open(&data.join("journal.db")).unwrap();
        assert!(
            journal.unfinished().unwrap().is_none(),
            "record {n}: the visit is closed"
        );
        let records = journal.records(&name).unwrap();
        let outcome = Issuance::resume(&records).0.outcome().cloned();
        assert_eq!(outcome, Some(Outcome::Issued), "record {n}: {out}");
        let found = reconcile(
            &card_view(&side),
            &LocalView::from_journal(&records),
            &ca_view(&side.ca, &transaction_of(&records)),
        );
        assert!(found.is_empty(), "record {n}: {found:?}");
        jpki_kiosk::audit::verify_file(&data.join("audit.db")).expect("audit chain verifies");
        points += 1;
    }
    eprintln!("crash: {points} injection points of {total} journal records");
    // The kiosk processes logged at debug level into each data directory: still no PIN.
    let (scanned, leaks) = pin_leaks(side.dir.path());
    assert!(scanned > points, "scanned {scanned} files");
    assert!(leaks.is_empty(), "PINs found: {leaks:#?}");
}

#[test]
fn kiosk_killed_after_each_odd_journal_record() {
    crash_at_every_record(1);
}

#[test]
fn kiosk_killed_after_each_even_journal_record() {
    crash_at_every_record(0);
}

/// When the scripted resident finished each kind of input, and what was written.
#[derive(Default)]
struct Marks {
    pins_set: Option<std::time::Instant>,
    last_pin: Option<std::time::Instant>,
    take_card: Option<std::time::Instant>,
    cert_bytes: usize,
}

/// [`Script`], noting the times the bench needs.
struct Timed<'m>(&'m mut Marks);

impl Counter for Timed<'_> {
    fn answer(&mut self, command: &VisitCommand, pad: &mut PadEntry<'_>) -> Option<Event> {
        // The card's work is over: the fee (paid visits), or the receipt (free ones).
        if let VisitCommand::Show { screen: Screen::CollectFee { .. } | Screen::Printing | Screen::Ended { .. } } = command {
            self.0.take_card.get_or_insert_with(std::time::Instant::now);
        }
        let answer = Script.answer(command, pad);
        match command {
            VisitCommand::Pad { pad: PadCommand::AskNew { .. } } => self.0.pins_set = Some(std::time::Instant::now()),
            VisitCommand::Pad { pad: PadCommand::AskConfirm { .. } } => self.0.last_pin = Some(std::time::Instant::now()),
            _ => {}
        }
        answer
    }

    fn progress(&mut self, command: &VisitCommand, stage: jpki_kiosk::issuance::adapters::Stage) {
        if let (VisitCommand::Card { card: jpki_kiosk::issuance::command::CardCommand::WriteCert { der, .. } }, jpki_kiosk::issuance::adapters::Stage::Started) = (command, stage) {
            self.0.cert_bytes += der.0.len();
        }
    }
}

/// Not a timed test: the resident's wait in `docs/performance.md` ("Visit workflow").
/// One new issuance on a virtual card timed like a real RSA-2048 card (`--profile
/// real-card`: 10 s per key generation, 270 ms per signature, 20 KB/s); people answer at
/// once. Prints the wait from the last new PIN to "take your card" beside its floor, the
/// card's own work: two key generations, the certificates written at link speed and two
/// test signatures.
#[test]
#[ignore = "bench: run with --run-ignored only and --no-capture"]
fn bench_resident_wait() {
    use jpki_kiosk::vcard::vpcd::TimingProfile;
    let mut side = Counterside::new();
    let mut ca = CmpCa::new(side.ca.client());
    let _process = side.card("wait.vcard", &["--profile", "real-card"]);
    let mut card = side.card_adapter();
    let mut marks = Marks::default();
    let status = {
        let mut ports = side.ports(&mut card, &mut ca);
        ports.counter = Box::new(Timed(&mut marks));
        let (driver, status) = Driver::open(ports, opening(300)).unwrap();
        drop(driver);
        status
    };
    assert_eq!(status, Status::Ended(Outcome::Issued));
    let p = TimingProfile::REAL_CARD;
    let link = f64::from(p.link_bytes_per_sec.unwrap());
    let floor = 2.0 * p.keygen.as_secs_f64() + 2.0 * p.sign.as_secs_f64() + marks.cert_bytes as f64 / link;
    let take = marks.take_card.unwrap();
    let wait = take.duration_since(marks.pins_set.unwrap()).as_secs_f64();
    let after_confirm = take.duration_since(marks.last_pin.unwrap()).as_secs_f64();
    println!(
        "visit.resident_wait: new PINs -> take card {wait:.2} s, floor {floor:.2} s ({} certificate bytes), ratio {:.3}; last confirmation -> take card {after_confirm:.2} s",
        marks.cert_bytes,
        wait / floor
    );
}
