//! The kiosk's CMP client against OpenSSL's mock CMP server (`openssl cmp
//! -port`), over real loopback sockets. The mock listens on all interfaces;
//! the client only ever connects to 127.0.0.1, and the mock stops by itself
//! after `-max_msgs` (or is killed when the test ends).

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use der::{DecodePem, Encode};
use jpki_kiosk::enroll::client::{ClientConfig, CmpClient};
use jpki_kiosk::enroll::error::CaStatus;
use jpki_kiosk::enroll::http::{HttpConfig, HttpTransport};
use jpki_kiosk::enroll::protect::{Credential, RaKey, ResponseTrust};
use jpki_kiosk::enroll::{
    CertProfile, EnrollError, EnrollRequest, Enroller, Failure, KeyRequest, Progress, Recovery,
    RegInfo, RequestKind, Transaction,
};
use rsa::pkcs8::DecodePrivateKey;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cert(dir: &Path, name: &str) -> Certificate {
    Certificate::from_pem(fs::read(dir.join(name)).unwrap()).unwrap()
}

/// A test CA with a CMP signer, an RA certificate and end-entity keys, made
/// with the openssl CLI in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

const EE_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("ee.ext"), EE_EXT).unwrap();
        for (name, subject) in [("ca", "/CN=Test Pref CA"), ("other-ca", "/CN=Other CA")] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.crt"),
                    "-subj",
                    subject,
                    "-days",
                    "2",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        let pki = Pki { dir };
        fs::write(
            pki.path().join("srv.ext"),
            format!("{EE_EXT}extendedKeyUsage=1.3.6.1.5.5.7.3.28\n"),
        )
        .unwrap();
        pki.issue_with("srv", "/CN=Test CMP signer", "srv.ext");
        pki.issue("ra", "/CN=Test kiosk RA");
        pki
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// New key `<name>.key` and a certificate `<name>.crt` from the test CA.
    fn issue(&self, name: &str, subject: &str) {
        self.issue_with(name, subject, "ee.ext")
    }

    /// Like [`Pki::issue`], with the extensions of `ext_file`.
    fn issue_with(&self, name: &str, subject: &str, ext_file: &str) {
        let d = self.path();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subject,
            ],
        );
        self.certify(name, name, ext_file);
    }

    /// Certificate `<cert_name>.crt` for the key of `<csr_name>.csr`, with `ext_file`.
    fn certify(&self, csr_name: &str, cert_name: &str, ext_file: &str) {
        openssl(
            self.path(),
            &[
                "x509",
                "-req",
                "-in",
                &format!("{csr_name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                ext_file,
                "-out",
                &format!("{cert_name}.crt"),
            ],
        );
    }

    fn spki(&self, name: &str) -> SubjectPublicKeyInfoOwned {
        let out = Command::new("openssl")
            .args(["pkey", "-in", &format!("{name}.key"), "-pubout"])
            .current_dir(self.path())
            .output()
            .unwrap();
        SubjectPublicKeyInfoOwned::from_pem(&out.stdout).unwrap()
    }

    fn ra_credential(&self) -> Credential {
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(
            &fs::read_to_string(self.path().join("ra.key")).unwrap(),
        )
        .unwrap();
        Credential::Signature {
            key: RaKey::from_rsa(&key).unwrap(),
            cert: Box::new(cert(self.path(), "ra.crt")),
            chain: vec![],
        }
    }

    fn client(
        &self,
        mock: &Mock,
        credential: Credential,
        trust: ResponseTrust,
    ) -> CmpClient<HttpTransport> {
        let http = HttpTransport::new(&HttpConfig::new(format!(
            "http://127.0.0.1:{}/pkix/",
            mock.port
        )))
        .unwrap();
        CmpClient::new(
            http,
            ClientConfig::new(credential, trust, vec![cert(self.path(), "ca.crt")]),
        )
    }

    fn signer_trust(&self) -> ResponseTrust {
        ResponseTrust {
            signer_anchors: vec![cert(self.path(), "ca.crt")],
            mac_secret: None,
        }
    }
}

/// A running `openssl cmp -port` mock server.
struct Mock {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Mock {
    fn start(pki: &Pki, args: &[&str]) -> Mock {
        // A free loopback port; the mock needs a concrete number.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = pki.path().join(format!("mock-{port}.log"));
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("openssl")
            .args([
                "cmp",
                "-port",
                &port.to_string(),
                "-srv_trusted",
                "ca.crt",
                "-accept_raverified",
            ])
            .args(args)
            .current_dir(pki.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("openssl cmp starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mock CMP server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The readiness probe above was one connection without a request;
        // the mock counts only requests, so it does not use up -max_msgs.
        Mock { child, port, log }
    }

    /// Stop the mock and return how many CMP requests it received, plus its log.
    fn stop(mut self) -> (usize, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        fs::File::open(&self.log)
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        (log.matches("Received request").count(), log)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn auth_request(pki: &Pki, key: &str) -> EnrollRequest {
    EnrollRequest {
        kind: RequestKind::Initial,
        keys: vec![KeyRequest {
            profile: CertProfile::UserAuth,
            public_key: pki.spki(key),
        }],
        personal_data: None,
        reg_info: RegInfo::parse("card-expiry?20350101%municipality-code?131016%").unwrap(),
        transaction: Transaction::random(),
    }
}

#[test]
fn mock_issues_and_client_confirms_with_pkiconf() {
    let pki = Pki::new();
    pki.issue("card", "/CN=card auth key");
    let mock = Mock::start(
        &pki,
        &[
            "-srv_cert",
            "srv.crt",
            "-srv_key",
            "srv.key",
            "-rsp_cert",
            "card.crt",
            "-max_msgs",
            "2",
        ],
    );
    let client = pki.client(&mock, pki.ra_credential(), pki.signer_trust());
    let req = auth_request(&pki, "card");
    let mut events = Vec::new();
    let issued = client
        .enroll(&req, &mut |p| events.push(p))
        .expect("certificate accepted");
    assert_eq!(issued.certificates.len(), 1);
    assert_eq!(
        issued.certificates[0].certificate,
        cert(pki.path(), "card.crt")
    );
    assert_eq!(
        issued.certificates[0]
            .certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap(),
        req.keys[0].public_key.to_der().unwrap()
    );
    assert_eq!(issued.ca_chain, vec![cert(pki.path(), "ca.crt")]);
    assert_eq!(events, vec![Progress::Sent { attempt: 1 }]);
    client
        .confirm(&issued)
        .expect("certConf answered with pkiConf");
    let (requests, log) = mock.stop();
    assert_eq!(requests, 2, "{log}");
}

#[test]
fn mock_with_shared_secret_mac_both_ways() {
    let pki = Pki::new();
    pki.issue("card", "/CN=card auth key");
    let mock = Mock::start(
        &pki,
        &[
            "-srv_secret",
            "pass:test123",
            "-srv_ref",
            "ra01",
            "-srv_cert",
            "srv.crt",
            "-srv_key",
            "srv.key",
            "-rsp_cert",
            "card.crt",
            "-max_msgs",
            "2",
        ],
    );
    let secret = || Zeroizing::new(b"test123".to_vec());
    let cred = Credential::Mac {
        reference: b"ra01".to_vec(),
        secret: secret(),
    };
    let trust = ResponseTrust {
        signer_anchors: vec![],
        mac_secret: Some(secret()),
    };
    let client = pki.client(&mock, cred, trust);
    let issued = client
        .enroll(&auth_request(&pki, "card"), &mut |_| {})
        .expect("certificate accepted");
    client.confirm(&issued).expect("pkiConf");
    assert_eq!(mock.stop().0, 2);

    // A kiosk with the wrong secret refuses the CA's answer (and the CA ours).
    let mock = Mock::start(
        &pki,
        &[
            "-srv_secret",
            "pass:test123",
            "-srv_ref",
            "ra01",
            "-srv_cert",
            "srv.crt",
            "-srv_key",
            "srv.key",
            "-rsp_cert",
            "card.crt",
            "-max_msgs",
            "1",
        ],
    );
    let wrong = || Zeroizing::new(b"test124".to_vec());
    let client = pki.client(
        &mock,
        Credential::Mac {
            reference: b"ra01".to_vec(),
            secret: wrong(),
        },
        ResponseTrust {
            signer_anchors: vec![],
            mac_secret: Some(wrong()),
        },
    );
    let err = client
        .enroll(&auth_request(&pki, "card"), &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(
            err,
            EnrollError::Protection(_) | EnrollError::Rejected { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn mock_error_response_is_a_typed_rejection() {
    let pki = Pki::new();
    pki.issue("card", "/CN=card auth key");
    let mock = Mock::start(
        &pki,
        &[
            "-srv_cert",
            "srv.crt",
            "-srv_key",
            "srv.key",
            "-rsp_cert",
            "card.crt",
            "-send_error",
            "-max_msgs",
            "1",
        ],
    );
    let client = pki.client(&mock, pki.ra_credential(), pki.signer_trust());
    let err = client
        .enroll(&auth_request(&pki, "card"), &mut |_| {})
        .unwrap_err();
    let EnrollError::Rejected {
        status,
        fail_info,
        authenticated,
        ..
    } = &err
    else {
        panic!("expected Rejected, got {err:?}")
    };
    assert_eq!(*status, CaStatus::Rejection);
    assert!(fail_info.contains(Failure::BadRequest), "{err}");
    assert!(*authenticated, "the mock signs its error messages");
    assert_eq!(err.notice().recovery, Recovery::CallSupervisor);
    assert_eq!(mock.stop().0, 1);
}

#[test]
fn mock_polling_then_issue() {
    let pki = Pki::new();
    pki.issue("card", "/CN=card auth key");
    let mock = Mock::start(
        &pki,
        &[
            "-srv_cert",
            "srv.crt",
            "-srv_key",
            "srv.key",
            "-rsp_cert",
            "card.crt",
            "-poll_count",
            "2",
            "-check_after",
            "1",
        ],
    );
    let client = pki.client(&mock, pki.ra_credential(), pki.signer_trust());
    let mut events = Vec::new();
    let started = Instant::now();
    let issued = client
        .enroll(&auth_request(&pki, "card"), &mut |p| events.push(p))
        .expect("issued after polling");
    assert_eq!(
        issued.certificates[0].certificate,
        cert(pki.path(), "card.crt")
    );
    // OpenSSL's -poll_count 2: ip(waiting) → pollReq → pollRep(checkAfter 1) → pollReq → ip.
    assert_eq!(
        events,
        vec![
            Progress::Sent { attempt: 1 },
            Progress::Waiting {
                polls: 1,
                check_after: 1
            }
        ]
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "checkAfter was honoured"
    );
    client.confirm(&issued).expect("pkiConf");
    let (requests, log) = mock.stop();
    // ir, two pollReq, certConf.
    assert_eq!(requests, 4, "{log}");
}

#[test]
fn mock_certificate_for_another_key_is_refused_without_certconf() {
    let pki = Pki::new();
    pki.issue("card", "/CN=card auth key");
    pki.issue("stranger", "/CN=someone else");
    let mock = Mock::start(
        &pki,
        &[
            "-srv_cert",
            "srv.crt",
            "-srv_key",
            "srv.key",
            "-rsp_cert",
            "stranger.crt",
            "-max_msgs",
            "2",
        ],
    );
    let client = pki.client(&mock, pki.ra_credential(), pki.signer_trust());
    let err = client
        .enroll(&auth_request(&pki, "card"), &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(err, EnrollError::KeyMismatch { cert_req_id: 0 }),
        "{err:?}"
    );
    // Give a stray certConf time to arrive, then check none did.
    std::thread::sleep(Duration::from_millis(200));
    let (requests, log) = mock.stop();
    assert_eq!(requests, 1, "{log}");
}

#[test]
fn mock_signed_by_untrusted_signer_is_refused() {
    let pki = Pki::new();
    pki.issue("card", "/CN=card auth key");
    let mock = Mock::start(
        &pki,
        &[
            "-srv_cert",
            "srv.crt",
            "-srv_key",
            "srv.key",
            "-rsp_cert",
            "card.crt",
            "-max_msgs",
            "1",
        ],
    );
    let trust = ResponseTrust {
        signer_anchors: vec![cert(pki.path(), "other-ca.crt")],
        mac_secret: None,
    };
    let client = pki.client(&mock, pki.ra_credential(), trust);
    let err = client
        .enroll(&auth_request(&pki, "card"), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, EnrollError::Protection(_)), "{err:?}");
}

/// `openssl s_server` requiring a client certificate from the test CA, for
/// one connection. Its stdin is relayed to the client once the handshake is
/// done, so a canned CMP-typed HTTP response written there becomes the answer.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(pki: &Pki) -> TlsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-cert",
                "tls.crt",
                "-key",
                "tls.key",
            ])
            .args([
                "-CAfile",
                "ca.crt",
                "-Verify",
                "1",
                "-verify_return_error",
                "-naccept",
                "1",
                "-quiet",
            ])
            .current_dir(pki.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        let reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), reply).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Wait for the port by looking at the socket table rather than
        // connecting: a probe connection would use up -naccept 1.
        let hex_port = format!(":{port:04X} ");
        while !fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .contains(&hex_port)
        {
            assert!(Instant::now() < deadline, "s_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_uses_the_ra_client_certificate_and_only_the_configured_roots() {
    let pki = Pki::new();
    let d = pki.path();
    fs::write(
        d.join("tls.ext"),
        format!("{EE_EXT}subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "tls.ext",
            "-out",
            "tls.crt",
        ],
    );
    let identity = || {
        let mut pem = fs::read(d.join("ra.crt")).unwrap();
        pem.extend(fs::read(d.join("ra.key")).unwrap());
        Some(Zeroizing::new(pem))
    };
    let exchange = |roots: &str, id: Option<Zeroizing<Vec<u8>>>| {
        let server = TlsServer::start(&pki);
        let mut c = HttpConfig::new(format!("https://127.0.0.1:{}/pkix/", server.port));
        c.tls_roots_pem = fs::read(d.join(roots)).unwrap();
        c.client_identity_pem = id;
        c.retry.attempts = 1;
        c.timeout = Duration::from_secs(10);
        HttpTransport::new(&c).unwrap().exchange(b"x")
    };
    use jpki_kiosk::enroll::Transport;

    // With the RA certificate and the CA's root: a full HTTPS round trip.
    assert_eq!(exchange("ca.crt", identity()).unwrap(), b"ok");

    // Without a client certificate the server refuses us.
    let err = exchange("ca.crt", None).unwrap_err();
    assert!(matches!(err, EnrollError::Tls(_)), "{err:?}");
    assert_eq!(err.notice().recovery, Recovery::CallSupervisor);

    // A server certificate from a root we were not given is refused by us.
    let err = exchange("other-ca.crt", identity()).unwrap_err();
    assert!(matches!(err, EnrollError::Tls(_)), "{err:?}");
}

#[test]
fn mock_refuses_a_request_signed_by_an_unknown_ra() {
    let pki = Pki::new();
    pki.issue("card", "/CN=card auth key");
    let d = pki.path();
    // A self-signed "RA" the mock's -srv_trusted does not know.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "rogue.key",
            "-out",
            "rogue.crt",
            "-subj",
            "/CN=Rogue RA",
            "-days",
            "1",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
    );
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&fs::read_to_string(d.join("rogue.key")).unwrap())
        .unwrap();
    let rogue = Credential::Signature {
        key: RaKey::from_rsa(&key).unwrap(),
        cert: Box::new(cert(d, "rogue.crt")),
        chain: vec![],
    };
    let mock = Mock::start(
        &pki,
        &[
            "-srv_cert",
            "srv.crt",
            "-srv_key",
            "srv.key",
            "-rsp_cert",
            "card.crt",
            "-max_msgs",
            "1",
        ],
    );
    let client = pki.client(&mock, rogue, pki.signer_trust());
    let err = client
        .enroll(&auth_request(&pki, "card"), &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(
            err,
            EnrollError::Rejected {
                authenticated: true,
                ..
            }
        ),
        "{err:?}"
    );
}
