//! The counter's other visits end to end over real peers (a private pcscd with
//! `jpki-vcard`, `jpki-ca serve` over HTTPS on loopback, SQLite in a temporary directory),
//! people scripted: renewal, re-issue after loss, revocation at the counter, PIN services
//! and the voluntary proxy's two visits. Each ends with card, journal and CA agreeing
//! (`reconcile`) and the audit chain intact.

#[path = "common/ca_server.rs"]
mod ca_server;
#[path = "common/visit.rs"]
mod visit;

use std::process::Command;

use der::Decode;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::CrlReason;

use jpki_kiosk::card::files::KeySlot;
use jpki_kiosk::card::jpki_ap::JpkiAp;
use jpki_kiosk::card::pin::{AuthPin, SigningPassword};
use jpki_kiosk::card::transport::{self, PcscTransport};
use jpki_kiosk::card::CardError;
use jpki_kiosk::issuance::event::Visit;
use jpki_kiosk::issuance::model::{PresenterKind, Slot};
use jpki_kiosk::issuance::reconcile::{CaStatus, CardView, LocalView};
use jpki_kiosk::issuance::{reconcile, Discrepancy, IssuanceError, Outcome};
use jpki_kiosk::registry::sample::ids;

use visit::*;

const AUTH: &str = "5820";
const SIGN: &str = "HANA2026";

/// A new issuance for `people` on the card in reader 0; returns its journal.
fn issue(side: &Counterside, n: u32, people: People) -> Vec<jpki_kiosk::issuance::JournalRecord> {
    let (outcome, records) = side.visit(opening(n, Visit::NewIssuance, today()), people);
    assert_eq!(outcome, Outcome::Issued);
    records
}

/// Connects to the card in reader 0 as any client would.
fn connect(side: &Counterside) -> PcscTransport {
    let ctx = transport::establish().unwrap();
    PcscTransport::wait_and_connect(&ctx, &side.stack.reader_name(0).unwrap(), SECS10).unwrap()
}

/// (serial, reason) of every entry of the CRL at `path`, fetched over HTTP and parsed.
fn crl_entries(side: &Counterside, path: &str) -> Vec<(String, Option<CrlReason>)> {
    let body = reqwest::blocking::get(side.ca.url(path))
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .unwrap();
    let crl = CertificateList::from_der(&body).unwrap();
    crl.tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let reason = e.crl_entry_extensions.iter().flatten().find_map(|x| {
                (x.extn_id.to_string() == "2.5.29.21")
                    .then(|| CrlReason::from_der(x.extn_value.as_bytes()).unwrap())
            });
            (hex::encode_upper(e.serial_number.as_bytes()), reason)
        })
        .collect()
}

#[test]
fn renewal_is_refused_before_the_window_and_free_inside_it() {
    let mut side = Counterside::new();
    let _card = side.card("card.vcard");
    let first = issue(&side, 1, yamamoto(AUTH, SIGN));
    let old = issued_in(&first);
    let ends: Vec<time::Date> = old.iter().map(|(_, der)| serial_and_end(der).1).collect();
    let expiry = *ends.iter().min().unwrap();

    // Today is years before the expiry: refused with the day the window opens.
    let (outcome, records) = side.visit(opening(2, Visit::Renewal, today()), yamamoto(AUTH, SIGN));
    let Outcome::Refused {
        reason: IssuanceError::RenewalTooEarly { .. },
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(side.revocations().is_empty(), "nothing revoked");
    side.assert_consistent(&first, SIGN);
    drop(records);

    // The day after the expiry: too late for a renewal (a new issuance is needed).
    let (outcome, _) = side.visit(
        opening(4, Visit::Renewal, expiry + time::Duration::days(1)),
        yamamoto(AUTH, SIGN),
    );
    assert_eq!(
        outcome,
        Outcome::Refused {
            reason: IssuanceError::RenewalExpired
        }
    );

    // A month before the expiry: renewed, free, the old pair revoked as superseded.
    let visit_date = expiry - time::Duration::days(30);
    let renewal = opening(3, Visit::Renewal, visit_date);
    let (outcome, records) = side.visit(renewal, yamamoto(AUTH, SIGN));
    assert_eq!(outcome, Outcome::Issued);
    assert_eq!(receipt_fee(&side, "v-0003"), Some(0), "renewal is free");
    let new = issued_in(&records);
    assert_eq!(new.len(), 2);
    let mut revoked = side.revocations();
    revoked.sort();
    let mut expected: Vec<(String, u32)> = old
        .iter()
        .map(|(_, der)| (serial_and_end(der).0, 4))
        .collect();
    expected.sort();
    assert_eq!(revoked, expected, "both old certificates superseded (4)");
    let card = side.card_view(SIGN);
    for (slot, der) in &new {
        assert_eq!(
            card.certs.get(slot),
            Some(der),
            "new {slot:?} certificate on the card"
        );
    }
    side.assert_consistent(&records, SIGN);
}

#[test]
fn reissue_after_loss_revokes_the_old_pair_for_key_compromise() {
    let mut side = Counterside::new();
    let lost = side.card("lost.vcard");
    let first = issue(&side, 1, kuwahara(AUTH, SIGN));
    let old: Vec<String> = issued_in(&first)
        .iter()
        .map(|(_, der)| serial_and_end(der).0)
        .collect();
    drop(lost);

    // The replacement card.
    let _card = side.card("new.vcard");
    let (outcome, records) = side.visit(
        opening(2, Visit::ReissueAfterLoss, today()),
        kuwahara(AUTH, SIGN),
    );
    assert_eq!(outcome, Outcome::Issued);
    assert_eq!(receipt_fee(&side, "v-0002"), Some(200));
    let mut revoked = side.revocations();
    revoked.sort();
    let mut expected: Vec<(String, u32)> = old.iter().map(|s| (s.clone(), 1)).collect();
    expected.sort();
    assert_eq!(revoked, expected, "keyCompromise (1)");

    // The CRLs, fetched over HTTP, list them with the reason.
    let mut listed = crl_entries(&side, "/crl/sign.crl");
    listed.extend(crl_entries(&side, "/crl/auth.crl"));
    for serial in &old {
        assert!(
            listed.contains(&(serial.clone(), Some(CrlReason::KeyCompromise))),
            "{serial} in the CRL: {listed:?}"
        );
    }
    assert_eq!(listed.len(), 2);
    side.assert_consistent(&records, SIGN);
}

#[test]
fn revocation_on_own_request_erases_the_card() {
    let mut side = Counterside::new();
    let _card = side.card("card.vcard");
    let first = issue(&side, 1, yamamoto(AUTH, SIGN));
    let old: Vec<String> = issued_in(&first)
        .iter()
        .map(|(_, der)| serial_and_end(der).0)
        .collect();
    let (outcome, records) = side.visit(
        opening(2, Visit::RevocationOwnRequest, today()),
        yamamoto(AUTH, SIGN),
    );
    assert_eq!(outcome, Outcome::Revoked);
    assert_eq!(
        side.revocations().len(),
        2,
        "both revoked: {:?}",
        side.revocations()
    );
    assert!(side
        .revocations()
        .iter()
        .all(|(s, reason)| old.contains(s) && *reason == 5));
    // READ shows nothing: no certificate, no key, and the card cannot sign.
    let view = side.card_view(SIGN);
    assert!(view.certs.is_empty() && view.keys.is_empty(), "{view:?}");
    let mut pcsc = connect(&side);
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    assert!(matches!(
        ap.read_certificate(KeySlot::Auth.cert_fid()),
        Err(CardError::EmptyFile { .. })
    ));
    ap.verify(&AuthPin::new(AUTH).unwrap()).unwrap();
    assert!(ap.sign_sha256(KeySlot::Auth, b"after revocation").is_err());
    drop(pcsc);
    side.assert_consistent(&records, SIGN);
}

#[test]
fn revocation_of_a_lost_card_needs_no_card() {
    let mut side = Counterside::new();
    let card = side.card("card.vcard");
    let first = issue(&side, 1, yamamoto(AUTH, SIGN));
    let old: Vec<String> = issued_in(&first)
        .iter()
        .map(|(_, der)| serial_and_end(der).0)
        .collect();
    drop(card);
    let (outcome, records) = side.visit(
        opening(2, Visit::RevocationLost, today()),
        yamamoto(AUTH, SIGN),
    );
    assert_eq!(outcome, Outcome::Revoked);
    let mut revoked = side.revocations();
    revoked.sort();
    let mut expected: Vec<(String, u32)> = old.iter().map(|s| (s.clone(), 1)).collect();
    expected.sort();
    assert_eq!(revoked, expected);
    // Nothing live is left: a second report of the loss is refused with the reason.
    let (outcome, _) = side.visit(
        opening(3, Visit::RevocationLost, today()),
        yamamoto(AUTH, SIGN),
    );
    assert_eq!(
        outcome,
        Outcome::Refused {
            reason: IssuanceError::NothingToRevoke
        }
    );
    // Card (absent), record and CA agree: nothing live is left for the lost card.
    let lost = LocalView::from_journal(&first)
        .serial
        .expect("the lost card's serial");
    let found = reconcile(
        &CardView::default(),
        &LocalView::from_journal(&records),
        &side.ca_view(&lost),
    );
    assert!(found.is_empty(), "{found:?}");
    jpki_kiosk::audit::verify_file(&side.path("audit.db")).expect("audit chain verifies");
    // The card turns up again: reconciliation shows exactly that it holds certificates the
    // CA revoked.
    let _card = side.card("card.vcard");
    let view = side.card_view(SIGN);
    let found = reconcile(
        &view,
        &LocalView::from_journal(&records),
        &side.ca_view(&lost),
    );
    for slot in [Slot::Auth, Slot::Sign] {
        assert!(found.contains(&Discrepancy::CardCertNotLive {
            slot,
            status: Some(CaStatus::Revoked)
        }));
    }
    assert!(
        found.iter().all(|d| matches!(
            d,
            Discrepancy::CardCertNotLive { .. } | Discrepancy::LocalDiffersFromCard { .. }
        )),
        "{found:?}"
    );
}

/// The system clock moved forward by a number of seconds the test sets.
struct Later(std::rc::Rc<std::cell::Cell<i64>>);

impl jpki_kiosk::issuance::adapters::Clock for Later {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + time::Duration::seconds(self.0.get())
    }
}

#[test]
fn a_lost_card_is_revoked_once_the_ca_is_back_on_the_clock() {
    use jpki_kiosk::issuance::adapters::ca::CmpCa;
    use jpki_kiosk::issuance::driver::{Driver, Status};
    let mut side = Counterside::new();
    let card = side.card("card.vcard");
    let first = issue(&side, 1, yamamoto(AUTH, SIGN));
    drop(card);
    side.ca.stop();
    let offset = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut card = side.card_adapter();
    let mut ca = CmpCa::new(side.client());
    let ports = side.ports_with_clock(
        &mut card,
        &mut ca,
        yamamoto(AUTH, SIGN),
        Box::new(Later(offset.clone())),
    );
    let (mut driver, status) =
        Driver::open(ports, opening(2, Visit::RevocationLost, today())).unwrap();
    assert_eq!(status, Status::Waiting);
    assert_eq!(driver.visit().step_name(), "finding_old");
    // The CA is back, but the visit waits out its back-off: a tick now sends nothing.
    side.ca.restart();
    offset.set(5);
    assert_eq!(driver.tick().unwrap(), Status::Waiting);
    assert!(side.revocations().is_empty());
    // Half a minute later the same query is re-sent by the clock alone, and the visit ends.
    offset.set(31);
    assert_eq!(driver.tick().unwrap(), Status::Ended(Outcome::Revoked));
    drop(driver);
    assert_eq!(side.revocations().len(), 2);
    let records = side.journal().records("v-0002").unwrap();
    let ticks = records
        .iter()
        .filter(|r| {
            matches!(
                r,
                jpki_kiosk::issuance::JournalRecord::Event {
                    event: jpki_kiosk::issuance::Event::Tick { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(ticks, 3, "one at the failure, two fed while down");
    let lost = LocalView::from_journal(&first).serial.unwrap();
    let found = reconcile(
        &CardView::default(),
        &LocalView::from_journal(&records),
        &side.ca_view(&lost),
    );
    assert!(found.is_empty(), "{found:?}");
    jpki_kiosk::audit::verify_file(&side.path("audit.db")).expect("audit chain verifies");
}

/// Blocks `slot`'s PIN on the card in reader 0 with wrong tries.
fn block_pin(side: &Counterside, slot: Slot) {
    let mut pcsc = connect(side);
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    for _ in 0..5 {
        let r = match slot {
            Slot::Auth => ap.verify(&AuthPin::new("0000").unwrap()),
            Slot::Sign => ap.verify(&SigningPassword::new("WRONG000").unwrap()),
        };
        if matches!(r, Err(CardError::Blocked)) {
            return;
        }
        assert!(r.is_err());
    }
    let r = match slot {
        Slot::Auth => ap.verify(&AuthPin::new(AUTH).unwrap()),
        Slot::Sign => ap.verify(&SigningPassword::new(SIGN).unwrap()),
    };
    assert!(matches!(r, Err(CardError::Blocked)), "blocked: {r:?}");
}

/// Whether `pin` verifies for `slot` and then signs.
fn pin_works(side: &Counterside, slot: Slot, pin: &str) -> bool {
    let mut pcsc = connect(side);
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().unwrap();
    let ok = match slot {
        Slot::Auth => ap.verify(&AuthPin::new(pin).unwrap()),
        Slot::Sign => ap.verify(&SigningPassword::new(pin).unwrap()),
    };
    ok.is_ok() && ap.sign_sha256(slot.key_slot(), b"pin service").is_ok()
}

fn pin_services(slot: Slot) {
    let mut side = Counterside::new();
    let _card = side.card("card.vcard");
    let first = issue(&side, 1, yamamoto(AUTH, SIGN));
    let other = match slot {
        Slot::Auth => Slot::Sign,
        Slot::Sign => Slot::Auth,
    };
    let pin_of = |s: Slot| if s == Slot::Auth { AUTH } else { SIGN };

    // Lock release: the PIN is kept and works again.
    block_pin(&side, slot);
    assert!(!pin_works(&side, slot, pin_of(slot)));
    let (outcome, records) = side.visit(
        opening(2, Visit::PinLockRelease { slot }, today()),
        yamamoto(AUTH, SIGN),
    );
    assert_eq!(outcome, Outcome::PinServiced);
    assert!(
        pin_works(&side, slot, pin_of(slot)),
        "the same PIN works after release"
    );
    assert!(
        pin_works(&side, other, pin_of(other)),
        "the other PIN untouched"
    );
    side.assert_consistent(&first, SIGN);
    drop(records);

    // Re-set: a new PIN from the pad; the old one fails.
    let (new_auth, new_sign) = ("7391", "SORA3141");
    let new_pin = if slot == Slot::Auth {
        new_auth
    } else {
        new_sign
    };
    block_pin(&side, slot);
    let typed = match slot {
        Slot::Auth => yamamoto(new_auth, SIGN),
        Slot::Sign => yamamoto(AUTH, new_sign),
    };
    let (outcome, records) = side.visit(opening(3, Visit::PinReset { slot }, today()), typed);
    assert_eq!(outcome, Outcome::PinServiced);
    assert!(pin_works(&side, slot, new_pin), "the new PIN works");
    assert!(!pin_works(&side, slot, pin_of(slot)), "the old PIN fails");
    assert!(
        pin_works(&side, other, pin_of(other)),
        "the other PIN untouched"
    );
    let sign_now = if slot == Slot::Sign { new_sign } else { SIGN };
    side.assert_consistent(&first, sign_now);
    drop(records);
    // No signing password, old or new, in any file the kiosk or the CA wrote.
    let mut files = Vec::new();
    files_under(side.dir.path(), &mut files);
    files_under(&side.ca.file(""), &mut files);
    assert!(files.len() > 5, "{files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for pw in [SIGN, new_sign] {
            let utf16: Vec<u8> = pw.encode_utf16().flat_map(u16::to_le_bytes).collect();
            for needle in [pw.as_bytes().to_vec(), hex::encode(pw).into_bytes(), utf16] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{pw} in {}",
                    file.display()
                );
            }
        }
    }
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

#[test]
fn pin_services_for_the_auth_pin() {
    pin_services(Slot::Auth);
}

#[test]
fn pin_services_for_the_signing_password() {
    pin_services(Slot::Sign);
}

/// The proxy at the counter for 山本　恵子, with the case number on the answer sheet.
fn proxy(case: Option<String>) -> People {
    let mut p = yamamoto(AUTH, SIGN);
    p.presenter = PresenterKind::VoluntaryProxy;
    p.documents = licence("601234567890");
    p.form.case = case;
    p
}

/// Visit 1 of the proxy flow: the case and its letter. Returns the case number.
fn inquiry(side: &Counterside, n: u32) -> String {
    let (outcome, records) = side.visit(opening(n, Visit::ProxyInquiry, today()), proxy(None));
    let Outcome::InquiryIssued { case } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(case.resident_id.0, ids::YAMAMOTO);
    assert_eq!(case.expires, today() + time::Duration::days(30));
    jpki_kiosk::audit::verify_file(&side.path("audit.db")).expect("audit chain verifies");
    drop(records);
    // The letter: a PDF whose text names the case, the holder and the registered address.
    let pdf = side.path(&format!("inquiry-{}.pdf", case.case));
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs (poppler-utils)");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "照会書兼回答書",
        "回答書",
        case.case.as_str(),
        "山本",
        "本郷二丁目１番１６号",
        "回答期限",
    ] {
        assert!(text.contains(needle), "{needle:?} in the letter:\n{text}");
    }
    assert!(!text.contains(AUTH) && !text.contains(SIGN));
    case.case
}

#[test]
fn proxy_two_visits_complete_an_issuance() {
    let mut side = Counterside::new();
    let _card = side.card("card.vcard");
    let case = inquiry(&side, 1);
    // Visit 2, with the answer sheet: an issuance, charged as one.
    let (outcome, records) = side.visit(
        opening(
            2,
            Visit::ProxyCompletion,
            today() + time::Duration::days(10),
        ),
        proxy(Some(case)),
    );
    assert_eq!(outcome, Outcome::Issued);
    assert_eq!(issued_in(&records).len(), 2);
    assert!(pin_works(&side, Slot::Auth, AUTH) && pin_works(&side, Slot::Sign, SIGN));
    side.assert_consistent(&records, SIGN);
}

#[test]
fn proxy_expired_or_mismatched_cases_are_refused() {
    let mut side = Counterside::new();
    let _card = side.card("card.vcard");
    let case = inquiry(&side, 1);
    // The answer sheet comes back after its expiry.
    let (outcome, _) = side.visit(
        opening(
            2,
            Visit::ProxyCompletion,
            today() + time::Duration::days(31),
        ),
        proxy(Some(case.clone())),
    );
    let Outcome::Refused {
        reason: IssuanceError::CaseExpired { expired },
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(expired, (today() + time::Duration::days(30)).to_string());
    // Another resident's application with this case number.
    let mut other = kuwahara(AUTH, SIGN);
    other.presenter = PresenterKind::VoluntaryProxy;
    other.form.case = Some(case);
    let (outcome, _) = side.visit(opening(3, Visit::ProxyCompletion, today()), other);
    assert_eq!(
        outcome,
        Outcome::Refused {
            reason: IssuanceError::CaseMismatch
        }
    );
    // An unknown number.
    let (outcome, records) = side.visit(
        opening(4, Visit::ProxyCompletion, today()),
        proxy(Some("v-9999".into())),
    );
    assert_eq!(
        outcome,
        Outcome::Refused {
            reason: IssuanceError::CaseUnknown
        }
    );
    // Nothing was issued: the card is empty and the CA holds nothing.
    assert_eq!(side.ca.cert_count(), 0);
    side.assert_consistent(&records, SIGN);
}

fn median(mut v: Vec<std::time::Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// Not a timed test: the figure of `docs/performance.md` ("Visit workflow"). Five new
/// issuances, each on a fresh virtual card; prints the medians of the software time beyond
/// the card's key generation, split by adapter.
#[test]
#[ignore = "bench: run with --release --run-ignored only --no-capture"]
fn bench_new_issuance_beyond_key_generation() {
    use jpki_kiosk::issuance::adapters::ca::CmpCa;
    use jpki_kiosk::issuance::driver::{Driver, Status};
    let mut side = Counterside::new();
    let mut ca = CmpCa::new(side.client());
    let mut runs = Vec::new();
    for i in 0..5u32 {
        let _card = side.card(&format!("bench-{i}.vcard"));
        let mut card = side.card_adapter();
        let people = if i % 2 == 0 {
            yamamoto(AUTH, SIGN)
        } else {
            kuwahara(AUTH, SIGN)
        };
        let (driver, status) = Driver::open(
            side.ports(&mut card, &mut ca, people),
            opening(100 + i, Visit::NewIssuance, today()),
        )
        .unwrap();
        assert_eq!(status, Status::Ended(Outcome::Issued));
        runs.push(driver.timing().clone());
    }
    let pick = |f: &dyn Fn(&jpki_kiosk::issuance::driver::Timing) -> std::time::Duration| {
        median(runs.iter().map(f).collect())
    };
    println!(
        "visit.new_issuance.beyond_keygen: {:.1} ms (total {:.1} ms, key generation {:.1} ms; \
         card without keygen {:.1} ms, ca {:.1} ms, database {:.1} ms ({} records), other {:.1} ms; medians of 5)",
        pick(&|t| t.total.saturating_sub(t.keygen)),
        pick(&|t| t.total),
        pick(&|t| t.keygen),
        pick(&|t| t.card.saturating_sub(t.keygen)),
        pick(&|t| t.ca),
        pick(&|t| t.database),
        runs[0].records,
        pick(&|t| t.total.saturating_sub(t.card + t.ca + t.database)),
    );
}

/// `jpki-kiosk reconcile` as staff run it, as a child process over the same peers.
fn reconcile_command(side: &Counterside, sign_password: Option<&str>) -> (i32, String) {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jpki-kiosk"));
    cmd.args(["reconcile", "--data"])
        .arg(side.dir.path())
        .arg("--ca-dir")
        .arg(side.ca.dir.path().join("ca"))
        .args(["--ca-url", &format!("https://{}/pkix/", side.ca.https)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if sign_password.is_some() {
        cmd.arg("--sign-password-stdin");
    }
    for (k, v) in side.stack.env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(pw) = sign_password {
        writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_reconcile_command_finds_a_lost_card_that_came_back() {
    let mut side = Counterside::new();
    let card = side.card("card.vcard");
    issue(&side, 1, yamamoto(AUTH, SIGN));

    // Right after the issuance card, journal and CA agree, with and without the signing
    // password (without it the signing certificate on the card is left unread).
    let (code, text) = reconcile_command(&side, None);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("agree") && text.contains("not read without the signing password"), "{text}");
    let (code, text) = reconcile_command(&side, Some(SIGN));
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("not read"), "{text}");

    // The card is reported lost and revoked without it; then the resident finds it.
    drop(card);
    let (outcome, _) = side.visit(opening(2, Visit::RevocationLost, today()), yamamoto(AUTH, SIGN));
    assert_eq!(outcome, Outcome::Revoked);
    let _found = side.card("card.vcard");
    let (code, text) = reconcile_command(&side, Some(SIGN));
    assert_eq!(code, 1, "{text}");
    for slot in ["auth", "sign"] {
        assert!(text.contains(&format!(r#"{{"kind":"card_cert_not_live","slot":"{slot}","status":"revoked"}}"#)), "{text}");
    }
    assert!(text.contains("カードの署名用電子証明書は、認証局で有効になっていません。"), "{text}");
    assert!(text.contains("discrepancies"), "{text}");
}
