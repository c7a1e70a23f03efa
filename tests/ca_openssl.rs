//! `openssl cmp` (OpenSSL 3.0) as the client of a real `jpki-ca` on loopback: p10cr with
//! MAC protection, ir -newkey with RA signature protection, rr, genm caCerts, polling,
//! HTTPS with and without a client certificate; issued certificates and CRLs checked with
//! `openssl verify`, `openssl x509` and `openssl crl`.

#[path = "common/ca_server.rs"]
mod ca_server;

use ca_server::{run, text, CaServer};
use std::path::Path;

fn cmp(ca: &CaServer, work: &Path, args: &[&str]) -> std::process::Output {
    let server = format!("{}/pkix/", ca.http);
    let trusted = ca.file("sign-ca.pem");
    let mut all = vec!["cmp", "-server", &server, "-trusted", trusted.to_str().unwrap()];
    all.extend_from_slice(args);
    run(work, "openssl", &all)
}

fn ra_args(ca: &CaServer) -> Vec<String> {
    vec![
        "-cert".into(),
        ca.file("ra.pem").display().to_string(),
        "-key".into(),
        ca.file("ra.key").display().to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn new_key(work: &Path, name: &str) {
    let o = run(work, "openssl", &["genrsa", "-out", name, "2048"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn p10cr_with_mac_protection_issues_a_verifiable_auth_certificate() {
    let ca = CaServer::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let o = run(w, "openssl", &["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "ee.key", "-subj", "/CN=ignored", "-out", "ee.csr"]);
    assert!(o.status.success(), "{}", text(&o));
    let secret = format!("pass:{}", ca.read("pbm-secret"));
    let o = cmp(&ca, w, &["-cmd", "p10cr", "-ref", &ca.read("pbm-ref"), "-secret", &secret, "-csr", "ee.csr", "-certout", "ee.pem", "-recipient", "/CN=jpki-ca"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("received PKICONF"), "{}", text(&o));

    let auth_ca = ca.file("auth-ca.pem");
    let o = run(w, "openssl", &["verify", "-CAfile", auth_ca.to_str().unwrap(), "ee.pem"]);
    assert!(o.status.success() && text(&o).contains("ee.pem: OK"), "{}", text(&o));
    let sign_ca = ca.file("sign-ca.pem");
    let o = run(w, "openssl", &["verify", "-CAfile", sign_ca.to_str().unwrap(), "ee.pem"]);
    assert!(!o.status.success(), "an auth certificate must not chain to the signing root");

    let o = run(w, "openssl", &["x509", "-in", "ee.pem", "-noout", "-text"]);
    let t = text(&o);
    assert!(t.contains("Policy: 1.2.392.200149.8.5.1.3.30"), "{t}");
    assert!(t.contains("Key Usage: critical") && t.contains("Digital Signature"), "{t}");
    assert!(!t.contains("Non Repudiation"), "{t}");
    assert!(!t.contains("1.2.392.200149.8.5.5"), "auth certificates carry no personal data: {t}");
    assert!(!t.contains("CN = ignored"), "the CA chooses the subject: {t}");
    assert!(t.contains("Not After") && t.contains("14:59:59 20"), "validity ends at midnight JST: {t}");
    assert!(t.contains(&format!("URI:http://{}/crl/auth.crl", ca.http)), "{t}");

    // Exactly one certificate, confirmed by certConf, and the exchange audited.
    let db = ca.db();
    let (n, confirmed): (i64, i64) = db
        .query_row("SELECT COUNT(*), SUM(confirmed) FROM certs", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((n, confirmed), (1, 1));
    let audited: i64 = db.query_row("SELECT COUNT(*) FROM audit WHERE action IN ('cmp-p10cr', 'issue', 'cert-confirmed')", [], |r| r.get(0)).unwrap();
    assert_eq!(audited, 3);
}

#[test]
fn ir_with_signature_then_rr_puts_the_serial_on_the_crl() {
    let ca = CaServer::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    new_key(w, "new.key");
    let mut args = vec!["-cmd".to_string(), "ir".into(), "-newkey".into(), "new.key".into(), "-subject".into(), "/CN=x".into(), "-certout".into(), "ir.pem".into()];
    args.extend(ra_args(&ca));
    let o = cmp(&ca, w, &strs(&args));
    assert!(o.status.success(), "{}", text(&o));
    let auth_ca = ca.file("auth-ca.pem").display().to_string();
    let o = run(w, "openssl", &["verify", "-CAfile", &auth_ca, "ir.pem"]);
    assert!(o.status.success(), "{}", text(&o));

    let mut args = vec!["-cmd".to_string(), "rr".into(), "-oldcert".into(), "ir.pem".into(), "-revreason".into(), "1".into()];
    args.extend(ra_args(&ca));
    let o = cmp(&ca, w, &strs(&args));
    assert!(o.status.success() && text(&o).contains("revocation accepted"), "{}", text(&o));

    // A second revocation of the same certificate is refused.
    let o = cmp(&ca, w, &strs(&args));
    assert!(!o.status.success(), "{}", text(&o));

    let serial = text(&run(w, "openssl", &["x509", "-in", "ir.pem", "-noout", "-serial"]))
        .trim()
        .trim_start_matches("serial=")
        .to_string();
    let crl = reqwest::blocking::get(ca.url("/crl/auth.crl")).unwrap();
    assert_eq!(crl.status(), 200);
    assert_eq!(crl.headers()["content-type"], "application/pkix-crl");
    std::fs::write(w.join("auth.crl"), crl.bytes().unwrap()).unwrap();
    let o = run(w, "openssl", &["crl", "-inform", "DER", "-in", "auth.crl", "-noout", "-text", "-CAfile", &auth_ca]);
    let t = text(&o);
    assert!(t.contains("verify OK"), "{t}");
    assert!(t.contains(&format!("Serial Number: {serial}")), "{serial} not in {t}");
    assert!(t.contains("Key Compromise"), "{t}");
    assert!(t.contains("X509v3 CRL Number"), "{t}");
    let o = run(w, "openssl", &["crl", "-inform", "DER", "-in", "auth.crl", "-out", "auth-crl.pem"]);
    assert!(o.status.success());
    let o = run(w, "openssl", &["verify", "-crl_check", "-CAfile", &auth_ca, "-CRLfile", "auth-crl.pem", "ir.pem"]);
    assert!(!o.status.success() && text(&o).contains("certificate revoked"), "{}", text(&o));

    // The signing CRL stays empty and its number starts at 1.
    let crl = reqwest::blocking::get(ca.url("/crl/sign.crl")).unwrap().bytes().unwrap();
    std::fs::write(w.join("sign.crl"), crl).unwrap();
    let t = text(&run(w, "openssl", &["crl", "-inform", "DER", "-in", "sign.crl", "-noout", "-text"]));
    assert!(t.contains("No Revoked Certificates"), "{t}");
}

#[test]
fn genm_ca_certs_and_p10cr_with_signature_protection() {
    let ca = CaServer::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut args = vec!["-cmd".to_string(), "genm".into(), "-infotype".into(), "caCerts".into()];
    args.extend(ra_args(&ca));
    let o = cmp(&ca, w, &strs(&args));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("genp contains ITAV of type: id-it-caCerts"), "{}", text(&o));

    let o = run(w, "openssl", &["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "ee.key", "-subj", "/CN=x", "-out", "ee.csr"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut args = vec!["-cmd".to_string(), "p10cr".into(), "-csr".into(), "ee.csr".into(), "-certout".into(), "ee.pem".into()];
    args.extend(ra_args(&ca));
    let o = cmp(&ca, w, &strs(&args));
    assert!(o.status.success(), "{}", text(&o));
    let auth_ca = ca.file("auth-ca.pem").display().to_string();
    assert!(run(w, "openssl", &["verify", "-CAfile", &auth_ca, "ee.pem"]).status.success());
}

#[test]
fn polling_delays_issuance_until_ready() {
    let ca = CaServer::start(&["--poll-delay-ms", "1200"]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    new_key(w, "k.key");
    let mut args = vec!["-cmd".to_string(), "ir".into(), "-newkey".into(), "k.key".into(), "-subject".into(), "/CN=x".into(), "-certout".into(), "p.pem".into()];
    args.extend(ra_args(&ca));
    let o = cmp(&ca, w, &strs(&args));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("POLLREP") || t.contains("waiting"), "expected polling: {t}");
    assert!(w.join("p.pem").exists());
    assert_eq!(ca.cert_count(), 1);
}

#[test]
fn https_requires_an_ra_client_certificate() {
    let ca = CaServer::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let server = format!("{}/pkix/", ca.https);
    let tls_ca = ca.file("tls-ca.pem").display().to_string();
    let sign_ca = ca.file("sign-ca.pem").display().to_string();
    let ra = ra_args(&ca);
    let base = ["cmp", "-cmd", "genm", "-server", &server, "-tls_used", "-tls_trusted", &tls_ca, "-trusted", &sign_ca];
    let mut with_cert: Vec<&str> = base.to_vec();
    with_cert.extend(["-tls_cert", &ra[1], "-tls_key", &ra[3]]);
    with_cert.extend(strs(&ra));
    let o = run(work.path(), "openssl", &with_cert);
    assert!(o.status.success(), "{}", text(&o));

    let mut without: Vec<&str> = base.to_vec();
    without.extend(strs(&ra));
    let o = run(work.path(), "openssl", &without);
    assert!(!o.status.success(), "a client without certificate must be refused: {}", text(&o));

    // The same through rustls (reqwest): no identity → handshake refused; RA identity → 200.
    let root = reqwest::Certificate::from_pem(ca.read("tls-ca.pem").as_bytes()).unwrap();
    let url = format!("https://localhost:{}/crl/sign.crl", ca.https.port());
    let anon = reqwest::blocking::Client::builder().add_root_certificate(root.clone()).build().unwrap();
    assert!(anon.get(&url).send().is_err());
    let pem = format!("{}\n{}\n", ca.read("ra.pem"), ca.read("ra.key"));
    let id = reqwest::Identity::from_pem(pem.as_bytes()).unwrap();
    let client = reqwest::blocking::Client::builder().add_root_certificate(root).identity(id).build().unwrap();
    let r = client.get(&url).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn kur_renews_and_revokes_the_old_certificate_as_superseded() {
    let ca = CaServer::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    new_key(w, "old.key");
    new_key(w, "new.key");
    let mut args = vec!["-cmd".to_string(), "ir".into(), "-newkey".into(), "old.key".into(), "-subject".into(), "/CN=x".into(), "-certout".into(), "old.pem".into()];
    args.extend(ra_args(&ca));
    assert!(cmp(&ca, w, &strs(&args)).status.success());
    let mut args = vec!["-cmd".to_string(), "kur".into(), "-oldcert".into(), "old.pem".into(), "-newkey".into(), "new.key".into(), "-certout".into(), "new.pem".into()];
    args.extend(ra_args(&ca));
    let o = cmp(&ca, w, &strs(&args));
    assert!(o.status.success() && text(&o).contains("received PKICONF"), "{}", text(&o));
    let auth_ca = ca.file("auth-ca.pem").display().to_string();
    assert!(run(w, "openssl", &["verify", "-CAfile", &auth_ca, "new.pem"]).status.success());
    let serial = text(&run(w, "openssl", &["x509", "-in", "old.pem", "-noout", "-serial"]))
        .trim()
        .trim_start_matches("serial=")
        .to_string();
    let crl = reqwest::blocking::get(ca.url("/crl/auth.crl")).unwrap().bytes().unwrap();
    std::fs::write(w.join("auth.crl"), crl).unwrap();
    let t = text(&run(w, "openssl", &["crl", "-inform", "DER", "-in", "auth.crl", "-noout", "-text"]));
    assert!(t.contains(&format!("Serial Number: {serial}")) && t.contains("Superseded"), "{t}");
    assert_eq!(ca.cert_count(), 2);
}
