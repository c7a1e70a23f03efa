//! The kiosk's CMP client against the reference CA (`jpki-ca serve`), over
//! real loopback sockets: HTTPS with the RA client certificate, refusal of
//! clients without one, a retried transaction after a dropped response, and
//! the RFC 4211 regInfo (validity cap, CRL partition, 異動 references).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use der::{Decode, DecodePem, Encode};
use jpki_kiosk::enroll::client::{ClientConfig, CmpClient};
use jpki_kiosk::enroll::http::{HttpConfig, HttpTransport};
use jpki_kiosk::enroll::protect::{Credential, RaKey, ResponseTrust};
use jpki_kiosk::enroll::{
    CertProfile, EnrollError, EnrollRequest, Enroller, Failure, KeyRequest, PersonalData, Progress,
    Recovery, RegInfo, RequestKind, RevokeRequest, Transaction,
};
use rsa::pkcs8::DecodePrivateKey;
use spki::SubjectPublicKeyInfoOwned;
use time::{Date, Month, OffsetDateTime};
use x509_cert::crl::CertificateList;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;
use zeroize::Zeroizing;

/// A running `jpki-ca serve` on loopback ports chosen by the OS.
struct CaProcess {
    child: Child,
    dir: tempfile::TempDir,
    http: SocketAddr,
    https: SocketAddr,
}

impl CaProcess {
    fn start() -> CaProcess {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> CaProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_jpki-ca"))
            .args(["serve", "--dir"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("jpki-ca starts");
        // "jpki-ca listening http=ADDR https=ADDR"
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .parse()
                .unwrap()
        };
        let (http, https) = (addr("http="), addr("https="));
        CaProcess {
            child,
            dir,
            http,
            https,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cert(&self, name: &str) -> Certificate {
        Certificate::from_pem(fs::read(self.path().join(name)).unwrap()).unwrap()
    }

    fn roots(&self) -> Vec<Certificate> {
        vec![self.cert("sign-ca.pem"), self.cert("auth-ca.pem")]
    }

    fn ra_credential(&self) -> Credential {
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(
            &fs::read_to_string(self.path().join("ra.key")).unwrap(),
        )
        .unwrap();
        Credential::Signature {
            key: RaKey::from_rsa(&key).unwrap(),
            cert: Box::new(self.cert("ra.pem")),
            chain: vec![],
        }
    }

    fn ra_identity(&self) -> Zeroizing<Vec<u8>> {
        let mut pem = fs::read(self.path().join("ra.pem")).unwrap();
        pem.extend(fs::read(self.path().join("ra.key")).unwrap());
        Zeroizing::new(pem)
    }

    /// A client for `url` with the CA's TLS root and the given TLS identity.
    fn client(
        &self,
        url: String,
        identity: Option<Zeroizing<Vec<u8>>>,
    ) -> CmpClient<HttpTransport> {
        let mut http = HttpConfig::new(url);
        http.tls_roots_pem = fs::read(self.path().join("tls-ca.pem")).unwrap();
        http.client_identity_pem = identity;
        http.retry.first_backoff = Duration::from_millis(50);
        let trust = ResponseTrust {
            signer_anchors: self.roots(),
            mac_secret: None,
        };
        CmpClient::new(
            HttpTransport::new(&http).unwrap(),
            ClientConfig::new(self.ra_credential(), trust, self.roots()),
        )
    }

    fn https_client(&self) -> CmpClient<HttpTransport> {
        self.client(
            format!("https://{}/pkix/", self.https),
            Some(self.ra_identity()),
        )
    }

    /// (certificates issued, of which confirmed) for a transaction, from the CA's store.
    fn stored(&self, tid: &[u8]) -> (i64, i64) {
        let db = rusqlite::Connection::open_with_flags(
            self.path().join("ca.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        db.query_row(
            "SELECT COUNT(*), COALESCE(SUM(confirmed), 0) FROM certs WHERE transaction_id = ?1",
            [tid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    }
}

impl Drop for CaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh RSA-2048 key made with the openssl CLI, as the card would make it.
fn card_key(dir: &Path, name: &str) -> SubjectPublicKeyInfoOwned {
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    SubjectPublicKeyInfoOwned::from_pem(&out.stdout).unwrap()
}

fn resident() -> PersonalData {
    let (name, address) = ("総務　花子", "東京都千代田区霞が関二丁目１番２号");
    PersonalData {
        name: name.into(),
        name_substitute_positions: "0".repeat(name.chars().count()),
        sex: "2".into(),
        birth_date: "419900301".into(),
        address: address.into(),
        address_substitute_positions: "0".repeat(address.chars().count()),
    }
}

/// An ir for `profiles`, with fresh card keys and the resident's data.
fn request(ca: &CaProcess, profiles: &[CertProfile]) -> EnrollRequest {
    EnrollRequest {
        kind: RequestKind::Initial,
        keys: profiles
            .iter()
            .enumerate()
            .map(|(i, &profile)| KeyRequest {
                profile,
                public_key: card_key(ca.path(), &format!("card-{i}")),
            })
            .collect(),
        personal_data: profiles.contains(&CertProfile::Signing).then(resident),
        reg_info: reg_info(None),
        transaction: Transaction::random(),
    }
}

/// The municipality every request in these tests comes from.
const MUNICIPALITY: &str = "131016";

/// The resident's regInfo (birth date as in [`resident`]), with a card expiry if given.
fn reg_info(card_expiry: Option<Date>) -> RegInfo {
    let mut pairs =
        format!("jpki-birth-date?419900301%municipality-code?{MUNICIPALITY}%card-id?CARD-0001%resident-id?R-42%");
    if let Some(d) = card_expiry {
        pairs += &format!(
            "card-expiry?{:04}{:02}{:02}%",
            d.year(),
            u8::from(d.month()),
            d.day()
        );
    }
    RegInfo::parse(&pairs).unwrap()
}

fn both_certificates(ca: &CaProcess) -> EnrollRequest {
    request(ca, &[CertProfile::UserAuth, CertProfile::Signing])
}

#[test]
fn ca_issues_both_certificates_over_https_and_records_the_confirmation() {
    let ca = CaProcess::start();
    let client = ca.https_client();
    let req = both_certificates(&ca);
    let issued = client
        .enroll(&req, &mut |_| {})
        .expect("both certificates issued");
    assert_eq!(issued.certificates.len(), 2);
    for (got, asked) in issued.certificates.iter().zip(&req.keys) {
        assert_eq!(got.profile, asked.profile);
        assert_eq!(
            got.certificate
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .unwrap(),
            asked.public_key.to_der().unwrap()
        );
    }
    // Each certificate chained to its own root.
    assert_eq!(
        issued.certificates[0].certificate.tbs_certificate.issuer,
        ca.cert("auth-ca.pem").tbs_certificate.subject
    );
    assert_eq!(
        issued.certificates[1].certificate.tbs_certificate.issuer,
        ca.cert("sign-ca.pem").tbs_certificate.subject
    );
    assert_eq!(issued.ca_chain.len(), 2);
    assert_eq!(
        ca.stored(&req.transaction.id),
        (2, 0),
        "issued, not yet confirmed"
    );
    client.confirm(&issued).expect("pkiConf");
    assert_eq!(
        ca.stored(&req.transaction.id),
        (2, 2),
        "confirmed after certConf"
    );

    // The CA certificates over genm/genp are the roots we trust.
    let mut cas = client.ca_certs(&Transaction::random()).expect("genp");
    cas.sort_by_key(|c| c.tbs_certificate.subject.to_string());
    let mut roots = ca.roots();
    roots.sort_by_key(|c| c.tbs_certificate.subject.to_string());
    assert_eq!(cas, roots);
}

#[test]
fn malformed_personal_data_is_refused_before_anything_is_sent() {
    let ca = CaProcess::start();
    let client = ca.https_client();
    let mut req = request(&ca, &[CertProfile::Signing]);
    // A substitute-position string of the wrong length: the CA would answer
    // badCertTemplate; the kiosk catches it before sending.
    req.personal_data
        .as_mut()
        .unwrap()
        .name_substitute_positions = "0".into();
    let err = client.enroll(&req, &mut |_| {}).unwrap_err();
    assert!(matches!(err, EnrollError::InvalidRequest(_)), "{err:?}");
    assert_eq!(err.notice().recovery, Recovery::FixApplication);
    assert_eq!(ca.stored(&req.transaction.id), (0, 0), "nothing was sent");
}

#[test]
fn ca_refuses_tls_clients_without_a_valid_ra_certificate() {
    let ca = CaProcess::start();
    let url = format!("https://{}/pkix/", ca.https);
    let req = request(&ca, &[CertProfile::UserAuth]);

    let err = ca
        .client(url.clone(), None)
        .enroll(&req, &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(err, EnrollError::Tls(_)),
        "no client certificate: {err:?}"
    );

    // A self-made certificate with the right shape but not from the LGWAN CA.
    let d = ca.path();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "fake.key", "-out",
            "fake.pem",
        ])
        .args([
            "-subj",
            "/CN=Fake kiosk",
            "-days",
            "1",
            "-addext",
            "extendedKeyUsage=clientAuth",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut fake = fs::read(d.join("fake.pem")).unwrap();
    fake.extend(fs::read(d.join("fake.key")).unwrap());
    let err = ca
        .client(url, Some(Zeroizing::new(fake)))
        .enroll(&req, &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(err, EnrollError::Tls(_)),
        "foreign client certificate: {err:?}"
    );
    assert_eq!(ca.stored(&req.transaction.id), (0, 0));
}

/// A TCP relay to `upstream` that lets the CA answer the first connection's
/// request but drops the answer (closes on the client), then relays normally.
fn dropping_relay(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            let server = TcpStream::connect(upstream).unwrap();
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            if n == 0 {
                // Wait until the CA starts answering (so it has processed the
                // request), swallow the answer, and hang up on the client.
                let mut buf = [0u8; 4096];
                let _ = s_in.read(&mut buf);
                std::thread::sleep(Duration::from_millis(50));
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = c_out.shutdown(Shutdown::Both);
                continue;
            }
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.flush();
                let _ = c_out.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, dropped)
}

#[test]
fn retried_transaction_after_a_dropped_response_yields_one_certificate() {
    let ca = CaProcess::start();
    let (relay, dropped) = dropping_relay(ca.http);
    let client = ca.client(format!("http://{relay}/pkix/"), None);
    let req = request(&ca, &[CertProfile::UserAuth]);
    let issued = client
        .enroll(&req, &mut |_| {})
        .expect("issued on the retry");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the first answer was dropped"
    );
    assert_eq!(
        ca.stored(&req.transaction.id),
        (1, 0),
        "exactly one certificate in the CA's store"
    );

    // The kiosk restarts and re-sends the same transaction: same certificate, still one.
    let again = ca
        .https_client()
        .enroll(&req, &mut |_| {})
        .expect("replayed");
    assert_eq!(again.certificates, issued.certificates);
    assert_eq!(ca.stored(&req.transaction.id), (1, 0));
    ca.https_client().confirm(&again).expect("pkiConf");
    assert_eq!(ca.stored(&req.transaction.id), (1, 1));
}

#[test]
fn delayed_issuance_is_polled_until_ready() {
    let ca = CaProcess::start_with(&["--poll-delay-ms", "1500"]);
    let client = ca.https_client();
    let req = both_certificates(&ca);
    let mut events = Vec::new();
    let started = Instant::now();
    let issued = client
        .enroll(&req, &mut |p| events.push(p))
        .expect("issued after polling");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Progress::Waiting { check_after, .. } if *check_after >= 1)),
        "{events:?}"
    );
    assert_eq!(issued.certificates.len(), 2);
    client.confirm(&issued).expect("pkiConf");
    assert_eq!(ca.stored(&req.transaction.id), (2, 2));
}

#[test]
fn revocation_with_reason_and_invalidity_date_is_recorded() {
    let ca = CaProcess::start();
    let client = ca.https_client();
    let req = request(&ca, &[CertProfile::UserAuth]);
    let issued = client.enroll(&req, &mut |_| {}).unwrap();
    client.confirm(&issued).unwrap();
    let cert = &issued.certificates[0].certificate.tbs_certificate;
    let revoke = RevokeRequest {
        serial: cert.serial_number.clone(),
        issuer: cert.issuer.clone(),
        reason: x509_cert::ext::pkix::crl::CrlReason::KeyCompromise,
        invalidity_date: Some(SystemTime::now() - Duration::from_secs(3600)),
        transaction: Transaction::random(),
    };
    client.revoke(&revoke).expect("rp accepted");
    let db = rusqlite::Connection::open_with_flags(
        ca.path().join("ca.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (reason, invalidity): (i64, Option<i64>) = db
        .query_row(
            "SELECT reason, invalidity FROM revocations WHERE serial = ?1",
            [hex::encode_upper(cert.serial_number.as_bytes())],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(reason, 1, "keyCompromise");
    assert!(invalidity.is_some());

    // A certificate of another CA: wrongAuthority or badCertId, as a typed rejection.
    let mut wrong = revoke.clone();
    wrong.transaction = Transaction::random();
    wrong.serial = x509_cert::serial_number::SerialNumber::from(424242u32);
    let err = client.revoke(&wrong).unwrap_err();
    let EnrollError::Rejected {
        fail_info,
        authenticated: true,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        fail_info.contains(Failure::BadCertId) || fail_info.contains(Failure::WrongAuthority),
        "{err}"
    );
}

#[test]
fn mac_protected_request_cannot_claim_ra_verified_pop() {
    let ca = CaProcess::start();
    let d = ca.path();
    let secret = || {
        Zeroizing::new(
            fs::read(d.join("pbm-secret"))
                .unwrap()
                .trim_ascii()
                .to_vec(),
        )
    };
    let credential = Credential::Mac {
        reference: fs::read(d.join("pbm-ref")).unwrap().trim_ascii().to_vec(),
        secret: secret(),
    };
    let mut http = HttpConfig::new(format!("http://{}/pkix/", ca.http));
    http.retry.attempts = 1;
    let trust = ResponseTrust {
        signer_anchors: ca.roots(),
        mac_secret: Some(secret()),
    };
    let client = CmpClient::new(
        HttpTransport::new(&http).unwrap(),
        ClientConfig::new(credential, trust, ca.roots()),
    );
    let req = request(&ca, &[CertProfile::UserAuth]);
    let err = client.enroll(&req, &mut |_| {}).unwrap_err();
    let EnrollError::Rejected {
        fail_info,
        authenticated: true,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(fail_info.contains(Failure::BadPop), "{err}");
    assert_eq!(err.notice().recovery, Recovery::CallSupervisor);
    assert_eq!(ca.stored(&req.transaction.id), (0, 0));
}

#[test]
fn further_certificate_and_renewal_use_cr_and_kur() {
    let ca = CaProcess::start();
    let client = ca.https_client();
    for kind in [RequestKind::Additional, RequestKind::KeyUpdate] {
        let req = EnrollRequest {
            kind,
            ..request(&ca, &[CertProfile::Signing])
        };
        let issued = client
            .enroll(&req, &mut |_| {})
            .unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
        assert_eq!(issued.certificates[0].profile, CertProfile::Signing);
        client.confirm(&issued).expect("pkiConf");
        assert_eq!(ca.stored(&req.transaction.id), (1, 1), "{kind:?}");
    }
}

#[test]
fn certificates_that_never_reached_the_card_are_rejected_in_cert_conf() {
    let ca = CaProcess::start();
    let client = ca.https_client();
    let req = request(&ca, &[CertProfile::UserAuth]);
    let issued = client.enroll(&req, &mut |_| {}).unwrap();
    client
        .reject(&issued, "card write failed")
        .expect("pkiConf");
    assert_eq!(ca.stored(&req.transaction.id), (1, 0), "not confirmed");
    let serial = hex::encode_upper(
        issued.certificates[0]
            .certificate
            .tbs_certificate
            .serial_number
            .as_bytes(),
    );
    let db = rusqlite::Connection::open_with_flags(
        ca.path().join("ca.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let revoked: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM revocations WHERE serial = ?1",
            [serial],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(revoked, 1, "the CA withdrew the undelivered certificate");
}

/// notAfter of `cert` as a UTC date-time.
fn not_after(cert: &Certificate) -> OffsetDateTime {
    let t = cert.tbs_certificate.validity.not_after.to_unix_duration();
    OffsetDateTime::from_unix_timestamp(t.as_secs() as i64).unwrap()
}

/// The last second (14:59:59Z) of `d` in JST.
fn end_of_jst_day(d: Date) -> OffsetDateTime {
    d.with_hms(14, 59, 59).unwrap().assume_utc()
}

/// The serials on the CRL the CA serves at `path`.
fn crl_serials(ca: &CaProcess, path: &str) -> Vec<SerialNumber> {
    let resp = reqwest::blocking::get(format!("http://{}{path}", ca.http)).unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    let crl = CertificateList::from_der(&resp.bytes().unwrap()).unwrap();
    crl.tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.serial_number)
        .collect()
}

#[test]
fn reg_info_caps_validity_and_places_revocations_in_the_municipality_crl() {
    let ca = CaProcess::start();
    let client = ca.https_client();

    // Without a card expiry: the 5th birthday (1990-03-01) after the issuance date (JST).
    let today = (OffsetDateTime::now_utc() + time::Duration::hours(9)).date();
    let birthday = |y: i32| Date::from_calendar_date(y, Month::March, 1).unwrap();
    let first = if birthday(today.year()) > today {
        today.year()
    } else {
        today.year() + 1
    };
    let req = both_certificates(&ca);
    let issued = client
        .enroll(&req, &mut |_| {})
        .expect("issued with regInfo");
    client.confirm(&issued).unwrap();
    for c in &issued.certificates {
        assert_eq!(
            not_after(&c.certificate),
            end_of_jst_day(birthday(first + 4)),
            "{:?}",
            c.profile
        );
    }

    // A card that expires first caps the validity.
    let expiry = today
        .replace_year(today.year() + 2)
        .unwrap_or(today + time::Duration::days(730));
    let capped = EnrollRequest {
        reg_info: reg_info(Some(expiry)),
        ..request(&ca, &[CertProfile::UserAuth])
    };
    let capped = client
        .enroll(&capped, &mut |_| {})
        .expect("issued with a card expiry");
    client.confirm(&capped).unwrap();
    assert_eq!(
        not_after(&capped.certificates[0].certificate),
        end_of_jst_day(expiry)
    );

    // A revocation lands in the municipality's partition and the full CRL, not elsewhere.
    let auth = &capped.certificates[0].certificate.tbs_certificate;
    client
        .revoke(&RevokeRequest {
            serial: auth.serial_number.clone(),
            issuer: auth.issuer.clone(),
            reason: x509_cert::ext::pkix::crl::CrlReason::KeyCompromise,
            invalidity_date: None,
            transaction: Transaction::random(),
        })
        .expect("rp accepted");
    assert!(
        crl_serials(&ca, &format!("/crl/{MUNICIPALITY}/auth.crl")).contains(&auth.serial_number)
    );
    assert!(crl_serials(&ca, "/crl/auth.crl").contains(&auth.serial_number));
    assert!(!crl_serials(&ca, "/crl/011002/auth.crl").contains(&auth.serial_number));

    // A 異動 notice naming the resident (as the kiosk sent it in resident-id) revokes the
    // signing certificate, which then shows in the municipality's signing CRL.
    let sign = &issued.certificates[1];
    assert_eq!(sign.profile, CertProfile::Signing);
    let resp = reqwest::blocking::Client::new()
        .post(format!("http://{}/registry/notice", ca.http))
        .header("Content-Type", "application/json")
        .body(r#"{"change":"address","resident_id":"R-42"}"#)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let answer: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    let serial = hex::encode_upper(sign.certificate.tbs_certificate.serial_number.as_bytes());
    assert_eq!(answer["revoked"], serde_json::json!([serial]), "{answer}");
    let sign_serial = &sign.certificate.tbs_certificate.serial_number;
    assert!(crl_serials(&ca, &format!("/crl/{MUNICIPALITY}/sign.crl")).contains(sign_serial));
    assert!(!crl_serials(&ca, "/crl/011002/sign.crl").contains(sign_serial));

    // The card id reached the store too, as a keyed hash only.
    let db = rusqlite::Connection::open_with_flags(
        ca.path().join("ca.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (card_ref, muni): (Option<String>, Option<String>) = db
        .query_row(
            "SELECT card_ref, municipality FROM certs WHERE serial = ?1",
            [&serial],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let card_ref = card_ref.expect("card reference recorded");
    assert!(!card_ref.contains("CARD-0001"));
    assert_eq!(muni.as_deref(), Some(MUNICIPALITY));
}
