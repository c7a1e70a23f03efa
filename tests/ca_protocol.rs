//! The kiosk's side of the CMP contract against a real `jpki-ca` over HTTP: both JPKI
//! certificates in one `ir` with personal data and regInfo, certConf, 異動 notices and
//! partitioned CRLs, idempotent retries, and refusals (CMP errors or HTTP 4xx, never a
//! certificate). Ends with a property test that throws mutated DER at the decoder.

#[path = "common/ca_server.rs"]
mod ca_server;

use ca_server::{run, text, CaServer};
use cmpv2::certified_key_pair::CertOrEncCert;
use cmpv2::rev::RevDetails;
use cmpv2::status::PkiStatus;
use crmf::controls::Controls;
use crmf::pop::ProofOfPossession;
use crmf::request::{CertRequest, CertTemplate};
use der::asn1::{Any, Int, Null, OctetString, SetOfVec, Utf8StringRef};
use der::{Decode, DecodePem, Encode};
use jpki_kiosk::pki::jpki_profile::{validity_end, CertProfile, PersonalData, RegInfo, OID_REGINFO_UTF8_PAIRS};
use jpki_kiosk::pki::message::{new_header, random_nonce, Body, CertReqMsg, CertStatus, FailInfo, Failure, Message, Received};
use jpki_kiosk::pki::protection::{protect, verify_signature, Protector};
use pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use spki::SubjectPublicKeyInfoOwned;
use std::str::FromStr;
use std::sync::OnceLock;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::Certificate;
use zeroize::Zeroizing;

fn card_key() -> &'static RsaPrivateKey {
    static K: OnceLock<RsaPrivateKey> = OnceLock::new();
    K.get_or_init(|| RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap())
}

fn spki() -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_key(card_key().to_public_key()).unwrap()
}

fn personal() -> PersonalData {
    PersonalData {
        name: "公的　花子".into(),
        name_substitute_positions: "00000".into(),
        sex: "2".into(),
        birth_date: "319800217".into(),
        address: "東京都千代田区霞が関２－１－２".into(),
        address_substitute_positions: "0".repeat(15),
    }
}

fn reg_info() -> RegInfo {
    RegInfo::parse("jpki-birth-date?319800217%card-expiry?20301231%municipality-code?131016%card-id?CARD-1%resident-id?R-42%").unwrap()
}

fn int(v: u8) -> Int {
    Int::new(&[v]).unwrap()
}

/// A CertReqMsg whose regInfo value is the SET-wrapped form `crmf` 0.2 writes, which the
/// CA accepts for compatibility (the kiosk's client sends the RFC 4211 form, see `tests/enroll_ca.rs`).
fn req_msg(id: u8, profile: CertProfile, pd: Option<&PersonalData>, reg: Option<&RegInfo>) -> CertReqMsg {
    let mut exts = vec![profile.policies_extension().unwrap()];
    if let Some(pd) = pd {
        exts.push(pd.subject_alt_name().unwrap());
    }
    let reg_info = reg.map(|r| {
        let pairs = r.to_utf8_pairs();
        let value = Any::encode_from(&Utf8StringRef::new(&pairs).unwrap()).unwrap();
        let set = Any::encode_from(&SetOfVec::try_from(vec![value]).unwrap()).unwrap();
        vec![AttributeTypeAndValue { oid: OID_REGINFO_UTF8_PAIRS, value: set }]
    });
    CertReqMsg {
        cert_req: CertRequest {
            cert_req_id: int(id),
            cert_template: CertTemplate {
                version: None,
                serial_number: None,
                signature: None,
                issuer: None,
                validity: None,
                subject: None,
                subject_public_key_info: Some(spki()),
                issuer_unique_id: None,
                subject_unique_id: None,
                extensions: Some(exts),
            },
            controls: None::<Controls>,
        },
        popo: Some(ProofOfPossession::RaVerified(Null)),
        reg_info,
    }
}

fn message(body: Body, tid: &OctetString) -> Message<'static> {
    let kiosk = GeneralName::DirectoryName(Name::from_str("CN=kiosk RA 01").unwrap());
    let ca = GeneralName::DirectoryName(Name::default());
    Message { header: new_header(kiosk, ca, tid.clone(), None), body, protection: None, extra_certs: None }
}

fn ra(ca: &CaServer) -> Protector {
    Protector::Signature {
        key: RsaPrivateKey::from_pkcs8_pem(&ca.read("ra.key")).unwrap(),
        cert: Certificate::from_pem(ca.read("ra.pem")).unwrap(),
        chain: vec![],
    }
}

fn mac(ca: &CaServer, secret: &str) -> Protector {
    Protector::Mac { reference: ca.read("pbm-ref").into_bytes(), secret: Zeroizing::new(secret.as_bytes().to_vec()) }
}

fn post_raw(ca: &CaServer, ctype: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let r = reqwest::blocking::Client::new()
        .post(ca.url("/pkix/"))
        .header("Content-Type", ctype)
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

/// Protects, sends, checks the response's signature against the signing root.
fn exchange(ca: &CaServer, mut msg: Message<'static>, p: &Protector) -> Vec<u8> {
    protect(&mut msg, p).unwrap();
    let (status, bytes) = post_raw(ca, "application/pkixcmp", msg.to_der().unwrap());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let rx = Received::from_der(&bytes).unwrap();
    let resp = &rx.message;
    let root = Certificate::from_pem(ca.read("sign-ca.pem")).unwrap();
    let signer = verify_signature(&rx, &[root]).expect("response signed by the CMP responder");
    assert_eq!(signer, Certificate::from_pem(ca.read("cmp-signer.pem")).unwrap());
    assert_eq!(resp.header.trans_id, msg.header.trans_id);
    assert_eq!(resp.header.recip_nonce, msg.header.sender_nonce);
    bytes
}

fn fail_bit(bytes: &[u8]) -> Option<u32> {
    match Message::from_der(bytes).unwrap().body {
        Body::Error(e) => {
            assert_eq!(e.pki_status_info.status, PkiStatus::Rejection);
            e.pki_status_info.fail_info.map(|f| f.0)
        }
        other => panic!("expected an error body, got {}", other.name()),
    }
}

fn issued(bytes: &[u8]) -> Vec<(i64, Certificate)> {
    let msg = Message::from_der(bytes).unwrap();
    let rep = match msg.body {
        Body::Ip(r) | Body::Cp(r) => r,
        other => panic!("expected ip/cp, got {other:?}"),
    };
    rep.response
        .into_iter()
        .map(|r| {
            assert_eq!(r.status.status, PkiStatus::Accepted);
            let id = i64::from_der(&r.cert_req_id.to_der().unwrap()).unwrap();
            let CertOrEncCert::Certificate(c) = r.certified_key_pair.unwrap().cert_or_enc_cert else {
                panic!("encrypted certificate")
            };
            (id, *c)
        })
        .collect()
}

fn write_pem(dir: &std::path::Path, name: &str, c: &Certificate) {
    use der::EncodePem;
    std::fs::write(dir.join(name), c.to_pem(der::pem::LineEnding::LF).unwrap()).unwrap();
}

#[test]
fn ir_for_both_certificates_then_certconf_then_ido_notice() {
    let ca = CaServer::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let pd = personal();
    let reg = reg_info();
    let tid = random_nonce();
    let ir = Body::Ir(vec![
        req_msg(0, CertProfile::UserAuth, None, Some(&reg)),
        req_msg(1, CertProfile::Signing, Some(&pd), Some(&reg)),
    ]);
    let now = time::OffsetDateTime::now_utc();
    let resp = exchange(&ca, message(ir, &tid), &ra(&ca));
    let certs = issued(&resp);
    assert_eq!(certs.len(), 2);
    let auth = &certs.iter().find(|(id, _)| *id == 0).unwrap().1;
    let sign = &certs.iter().find(|(id, _)| *id == 1).unwrap().1;

    // Profile content, read back with our parser and with OpenSSL.
    let sign_exts = sign.tbs_certificate.extensions.as_ref();
    assert_eq!(PersonalData::from_extensions(sign_exts).unwrap(), Some(pd.clone()));
    assert_eq!(PersonalData::from_extensions(auth.tbs_certificate.extensions.as_ref()).unwrap(), None);
    assert_eq!(sign.tbs_certificate.subject_public_key_info, spki());
    let expected_end = validity_end(now, reg.birth_date.as_ref(), reg.card_expiry).unix_timestamp();
    let not_after = sign.tbs_certificate.validity.not_after.to_unix_duration().as_secs() as i64;
    assert_eq!(not_after, expected_end, "5th birthday after issuance, capped by the card");
    write_pem(w, "sign.pem", sign);
    write_pem(w, "auth.pem", auth);
    let t = text(&run(w, "openssl", &["x509", "-in", "sign.pem", "-noout", "-text"]));
    assert!(t.contains("Policy: 1.2.392.200149.8.5.1.1.20"), "{t}");
    assert!(t.contains("Digital Signature, Non Repudiation"), "{t}");
    assert!(t.contains(&format!("URI:http://{}/crl/131016/sign.crl", ca.http)), "{t}");
    let subject = t.lines().find(|l| l.trim_start().starts_with("Subject:")).unwrap();
    assert!(!subject.contains("花子"), "no personal data in the subject: {subject}");
    assert!(t.contains("1.2.392.200149.8.5.5.4"), "personal data in subjectAltName: {t}");
    let sign_ca = ca.file("sign-ca.pem").display().to_string();
    let auth_ca = ca.file("auth-ca.pem").display().to_string();
    assert!(run(w, "openssl", &["verify", "-CAfile", &sign_ca, "sign.pem"]).status.success());
    assert!(run(w, "openssl", &["verify", "-CAfile", &auth_ca, "auth.pem"]).status.success());

    // certConf for both → pkiConf; the store marks them confirmed.
    let statuses = certs
        .iter()
        .map(|(id, c)| CertStatus {
            cert_hash: jpki_kiosk::pki::cert_hash(c).unwrap(),
            cert_req_id: int(*id as u8),
            status_info: None,
        })
        .collect();
    let conf = exchange(&ca, message(Body::CertConf(statuses), &tid), &ra(&ca));
    assert!(matches!(Message::from_der(&conf).unwrap().body, Body::PkiConf(_)));
    let confirmed: i64 = ca.db().query_row("SELECT SUM(confirmed) FROM certs", [], |r| r.get(0)).unwrap();
    assert_eq!(confirmed, 2);

    // 異動: an address change revokes the signing certificate only.
    let r = reqwest::blocking::Client::new()
        .post(ca.url("/registry/notice"))
        .header("Content-Type", "application/json")
        .body(r#"{"change":"address","resident_id":"R-42"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    let sign_serial = hex::encode_upper(sign.tbs_certificate.serial_number.as_bytes());
    let auth_serial = hex::encode_upper(auth.tbs_certificate.serial_number.as_bytes());
    assert_eq!(v["revoked"], serde_json::json!([sign_serial]));
    assert_eq!(v["reason"], 3);

    let crl = reqwest::blocking::get(ca.url("/crl/131016/sign.crl")).unwrap().bytes().unwrap();
    std::fs::write(w.join("part.crl"), crl).unwrap();
    let t = text(&run(w, "openssl", &["crl", "-inform", "DER", "-in", "part.crl", "-noout", "-text", "-CAfile", &sign_ca]));
    assert!(t.contains("verify OK"), "{t}");
    assert!(t.contains("Issuing Distribution Point: critical"), "{t}");
    assert!(t.contains(&format!("Serial Number: {sign_serial}")), "{t}");
    assert!(t.contains("Affiliation Changed"), "{t}");
    let full = reqwest::blocking::get(ca.url("/crl/sign.crl")).unwrap().bytes().unwrap();
    std::fs::write(w.join("full.crl"), full).unwrap();
    let t = text(&run(w, "openssl", &["crl", "-inform", "DER", "-in", "full.crl", "-noout", "-text"]));
    assert!(t.contains(&format!("Serial Number: {sign_serial}")), "{t}");
    let auth_crl = reqwest::blocking::get(ca.url("/crl/auth.crl")).unwrap().bytes().unwrap();
    std::fs::write(w.join("auth.crl"), auth_crl).unwrap();
    let t = text(&run(w, "openssl", &["crl", "-inform", "DER", "-in", "auth.crl", "-noout", "-text"]));
    assert!(!t.contains(&auth_serial), "the authentication certificate survives 異動: {t}");

    // A deletion notice afterwards finds nothing left to revoke for this resident.
    let r = reqwest::blocking::Client::new()
        .post(ca.url("/registry/notice"))
        .header("Content-Type", "application/json")
        .body(r#"{"change":"deleted","card_id":"CARD-1"}"#)
        .send()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(v["revoked"], serde_json::json!([]));
    let bad = reqwest::blocking::Client::new()
        .post(ca.url("/registry/notice"))
        .header("Content-Type", "application/json")
        .body(r#"{"change":"moved"}"#)
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[test]
fn retried_transaction_yields_exactly_one_certificate() {
    let ca = CaServer::start(&[]);
    let tid = random_nonce();
    let body = Body::Ir(vec![req_msg(0, CertProfile::UserAuth, None, None)]);
    let first = issued(&exchange(&ca, message(body.clone(), &tid), &ra(&ca)));
    // The response was "lost": the kiosk sends the same request again (fresh nonce).
    let second = issued(&exchange(&ca, message(body, &tid), &ra(&ca)));
    assert_eq!(first, second, "the same certificate comes back");
    let n: i64 = ca
        .db()
        .query_row("SELECT COUNT(*) FROM certs WHERE transaction_id = ?1", [tid.as_bytes()], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    // Another request under the same transactionID is refused.
    let other = Body::Cr(vec![req_msg(1, CertProfile::UserAuth, None, None)]);
    let resp = exchange(&ca, message(other, &tid), &ra(&ca));
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::TransactionIdInUse]).0));
    assert_eq!(ca.cert_count(), 1);
}

#[test]
fn bad_requests_get_cmp_errors_or_http_4xx_and_no_certificate() {
    let ca = CaServer::start(&[]);
    let ir = |profile, pd: Option<&PersonalData>| {
        Body::Ir(vec![req_msg(profile_id(profile), profile, pd, None)])
    };
    fn profile_id(p: CertProfile) -> u8 {
        p.cert_req_id()
    }
    let secret = ca.read("pbm-secret");

    // HTTP-level refusals.
    let mut good = message(ir(CertProfile::UserAuth, None), &random_nonce());
    protect(&mut good, &ra(&ca)).unwrap();
    let good_der = good.to_der().unwrap();
    assert_eq!(post_raw(&ca, "text/plain", good_der.clone()).0, 415);
    assert_eq!(post_raw(&ca, "application/pkixcmp", vec![0x30; 70 * 1024]).0, 413);
    assert_eq!(post_raw(&ca, "application/pkixcmp", b"not DER at all".to_vec()).0, 400);
    assert_eq!(post_raw(&ca, "application/pkixcmp", good_der[..good_der.len() / 2].to_vec()).0, 400);
    assert_eq!(reqwest::blocking::get(ca.url("/pkix/")).unwrap().status(), 405);
    assert_eq!(reqwest::blocking::get(ca.url("/nothing")).unwrap().status(), 404);

    // Protection failures.
    let wrong_secret = exchange(&ca, message(ir(CertProfile::UserAuth, None), &random_nonce()), &mac(&ca, "wrong"));
    assert_eq!(fail_bit(&wrong_secret), Some(FailInfo::of(&[Failure::BadMessageCheck]).0));
    let mut unprotected = message(ir(CertProfile::UserAuth, None), &random_nonce());
    unprotected.protection = None;
    let (s, b) = post_raw(&ca, "application/pkixcmp", unprotected.to_der().unwrap());
    assert_eq!(s, 200);
    assert_eq!(fail_bit(&b), Some(FailInfo::of(&[Failure::BadMessageCheck]).0));
    let stranger_key = RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let stranger = Protector::Signature {
        cert: self_signed(&stranger_key),
        key: stranger_key,
        chain: vec![],
    };
    let resp = exchange(&ca, message(ir(CertProfile::UserAuth, None), &random_nonce()), &stranger);
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::SignerNotTrusted]).0));
    let mut tampered = message(ir(CertProfile::UserAuth, None), &random_nonce());
    protect(&mut tampered, &ra(&ca)).unwrap();
    tampered.header.sender_nonce = Some(random_nonce());
    let (_, b) = post_raw(&ca, "application/pkixcmp", tampered.to_der().unwrap());
    assert_eq!(fail_bit(&b), Some(FailInfo::of(&[Failure::BadMessageCheck]).0));

    // Policy refusals.
    let resp = exchange(&ca, message(ir(CertProfile::Signing, None), &random_nonce()), &ra(&ca));
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::BadCertTemplate]).0), "signing without personal data");
    let mut bad_pd = personal();
    bad_pd.sex = "3".into();
    let resp = exchange(&ca, message(ir(CertProfile::Signing, Some(&bad_pd)), &random_nonce()), &ra(&ca));
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::BadCertTemplate]).0));
    let resp = exchange(&ca, message(ir(CertProfile::UserAuth, Some(&personal())), &random_nonce()), &ra(&ca));
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::BadCertTemplate]).0), "personal data in an auth certificate");
    let resp = exchange(&ca, message(ir(CertProfile::UserAuth, None), &random_nonce()), &mac(&ca, &secret));
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::BadPop]).0), "raVerified only from the RA");
    let rr = Body::Rr(vec![RevDetails {
        cert_details: CertTemplate {
            version: None,
            serial_number: Some(x509_cert::serial_number::SerialNumber::from(1u32)),
            signature: None,
            issuer: None,
            validity: None,
            subject: None,
            subject_public_key_info: None,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        },
        crl_entry_details: None,
    }]);
    let resp = exchange(&ca, message(rr.clone(), &random_nonce()), &mac(&ca, &secret));
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::NotAuthorized]).0));
    let resp = exchange(&ca, message(rr, &random_nonce()), &ra(&ca));
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::BadCertId]).0));
    let resp = exchange(&ca, message(Body::PollReq(vec![]), &random_nonce()), &ra(&ca));
    assert_eq!(fail_bit(&resp), Some(FailInfo::of(&[Failure::BadRequest]).0));

    assert_eq!(ca.cert_count(), 0, "no refusal issued a certificate");
    let refused: i64 = ca.db().query_row("SELECT COUNT(*) FROM audit WHERE action LIKE '%-refused'", [], |r| r.get(0)).unwrap();
    assert!(refused >= 10, "refusals are audited ({refused})");

    // The same channel still works for a good request.
    let (s, b) = post_raw(&ca, "application/pkixcmp", good_der);
    assert_eq!(s, 200);
    assert_eq!(issued(&b).len(), 1);
}

fn self_signed(key: &RsaPrivateKey) -> Certificate {
    use jpki_kiosk::ca::certs::{self, CertSpec};
    let name = Name::from_str("CN=stranger").unwrap();
    let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
    let spec = CertSpec {
        serial: certs::random_serial().unwrap(),
        subject: name.clone(),
        not_before: certs::unix_now() - 60,
        not_after: certs::unix_now() + 3600,
        extensions: vec![certs::ski(&spki).unwrap(), certs::eku(&[certs::EKU_CLIENT_AUTH]).unwrap()],
        spki,
    };
    certs::sign_cert(spec, &name, key).unwrap()
}

mod fuzz {
    //! Mutated DER straight into the CA's request handler (in process, real SQLite store).
    use super::*;
    use jpki_kiosk::ca::cmp::CmpOutcome;
    use jpki_kiosk::ca::{Ca, Config};
    use proptest::prelude::*;

    struct Fixture {
        ca: Ca,
        request: Vec<u8>,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let ca = Ca::open(Config::new(dir.path().join("ca"))).unwrap();
            let secret = std::fs::read_to_string(dir.path().join("ca/pbm-secret")).unwrap();
            let reference = std::fs::read(dir.path().join("ca/pbm-ref")).unwrap();
            let p = Protector::Mac { reference, secret: Zeroizing::new(secret.trim().as_bytes().to_vec()) };
            let mut req = message(
                Body::P10cr(csr()),
                &random_nonce(),
            );
            protect(&mut req, &p).unwrap();
            Fixture { ca, request: req.to_der().unwrap(), _dir: dir }
        })
    }

    fn csr() -> x509_cert::request::CertReq {
        use x509_cert::builder::{Builder, RequestBuilder};
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(card_key().clone());
        let b = RequestBuilder::new(Name::from_str("CN=fuzz").unwrap(), &signer).unwrap();
        b.build::<rsa::pkcs1v15::Signature>().unwrap()
    }

    fn check(outcome: CmpOutcome) {
        match outcome {
            CmpOutcome::Malformed(_) => {}
            CmpOutcome::Response(bytes) => {
                let msg = Message::from_der(&bytes).expect("responses decode");
                assert!(matches!(msg.body, Body::Error(_)), "a mutated request got {}", msg.body.name());
            }
            CmpOutcome::Internal => panic!("internal error on mutated input"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn mutated_requests_never_issue_or_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let f = fixture();
            let mut bytes = f.request.clone();
            for (i, x) in &flips {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            if let Some(c) = cut {
                bytes.truncate(c.index(bytes.len()));
            }
            check(f.ca.handle_cmp(&bytes));
            let n = f.ca.with_store(|s| s.count_certs().unwrap()).unwrap();
            prop_assert_eq!(n, 0);
        }
    }

    #[test]
    fn the_unmutated_request_does_issue() {
        // Guards the property above against a fixture that could never succeed.
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::open(Config::new(dir.path().join("ca"))).unwrap();
        let secret = std::fs::read_to_string(dir.path().join("ca/pbm-secret")).unwrap();
        let reference = std::fs::read(dir.path().join("ca/pbm-ref")).unwrap();
        let p = Protector::Mac { reference, secret: Zeroizing::new(secret.trim().as_bytes().to_vec()) };
        let mut req = message(Body::P10cr(csr()), &random_nonce());
        protect(&mut req, &p).unwrap();
        let CmpOutcome::Response(bytes) = ca.handle_cmp(&req.to_der().unwrap()) else { panic!("no response") };
        assert_eq!(issued(&bytes).len(), 1);
        assert_eq!(ca.with_store(|s| s.count_certs().unwrap()).unwrap(), 1);
    }
}
