//! Benchmarks of the reference CA, each beside an OpenSSL baseline measured in the same run:
//!
//! 1. `openssl speed rsa2048` sign/s (1 and 2 processes): the compute bound;
//! 2. one resident's whole CMP exchange (ir for both certificates + certConf) on loopback,
//!    median and p99, beside `openssl cmp` against OpenSSL's mock server and against jpki-ca;
//! 3. issuance throughput with several client threads (enough to keep both of the CA's
//!    cores busy), and the CA's resident memory before and after;
//! 4. CRL generation for 100,000 and 1,000,000 revoked entries beside `openssl ca -gencrl`.
//!
//! Run: `cargo bench --bench ca_bench [-- --residents N --samples N --clients N --crl 100000,1000000]`.
//! Results go to stdout as Markdown (see docs/performance.md).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmpv2::certified_key_pair::CertOrEncCert;
use crmf::pop::ProofOfPossession;
use crmf::request::{CertRequest, CertTemplate};
use der::asn1::{Any, Int, Null, OctetString, Utf8StringRef};
use der::{Decode, DecodePem, Encode};
use jpki_kiosk::ca::{Ca, Config};
use jpki_kiosk::pki::jpki_profile::{CertProfile, PersonalData, RegInfo, OID_REGINFO_UTF8_PAIRS};
use jpki_kiosk::pki::message::{new_header, random_nonce, Body, CertReqMsg, CertStatus, Message};
use jpki_kiosk::pki::protection::{protect, Protector};
use pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::Certificate;
use zeroize::Zeroizing;

struct Args {
    residents: usize,
    samples: usize,
    clients: usize,
    crl_sizes: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args { residents: 400, samples: 200, clients: 8, crl_sizes: vec![100_000, 1_000_000] };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        match v[i].as_str() {
            "--residents" => a.residents = v[i + 1].parse().expect("number"),
            "--samples" => a.samples = v[i + 1].parse().expect("number"),
            "--clients" => a.clients = v[i + 1].parse().expect("number"),
            "--crl" => a.crl_sizes = v[i + 1].split(',').filter(|s| !s.is_empty()).map(|s| s.parse().expect("number")).collect(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn sh(dir: &Path, program: &str, args: &[&str]) -> String {
    let o = Command::new(program).current_dir(dir).args(args).output().expect("run");
    assert!(o.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn openssl_sign_per_s(dir: &Path, multi: Option<&str>) -> f64 {
    let mut a = vec!["speed", "-seconds", "3"];
    if let Some(m) = multi {
        a.extend(["-multi", m]);
    }
    a.push("rsa2048");
    let out = sh(dir, "openssl", &a);
    // "rsa 2048 bits 0.000458s 0.000027s   2183.5  37200.0" (multi: "rsa 2048 bits ... sign/s verify/s" too)
    let line = out.lines().rev().find(|l| l.starts_with("rsa 2048") || l.starts_with("rsa  2048")).expect("speed line");
    let nums: Vec<f64> = line.split_whitespace().filter_map(|w| w.trim_end_matches('s').parse().ok()).collect();
    nums[nums.len() - 2]
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used so far: `/proc/PID/stat` fields 14 and 15.
fn cpu_secs(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; count fields after its closing ')'.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    f.iter().sum::<f64>() / ticks
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(v[v.len() / 2]);
    let p99 = ms(v[((v.len() as f64 * 0.99).ceil() as usize).saturating_sub(1).min(v.len() - 1)]);
    (median, p99)
}

struct Server {
    child: std::process::Child,
    http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_ca(dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jpki-ca"))
        .args(["serve", "--dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn jpki-ca");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let http = line.split_whitespace().find_map(|w| w.strip_prefix("http=")).expect("address").to_string();
    Server { child, http }
}

struct Kiosk {
    ra: Protector,
    mac: Protector,
    keys: Vec<SubjectPublicKeyInfoOwned>,
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

fn req_msg(id: u8, profile: CertProfile, spki: &SubjectPublicKeyInfoOwned, reg: &str) -> CertReqMsg {
    let mut exts = vec![profile.policies_extension().unwrap()];
    if profile == CertProfile::Signing {
        exts.push(personal().subject_alt_name().unwrap());
    }
    let value = Any::encode_from(&Utf8StringRef::new(reg).unwrap()).unwrap();
    CertReqMsg {
        cert_req: CertRequest {
            cert_req_id: Int::new(&[id]).unwrap(),
            cert_template: CertTemplate {
                version: None,
                serial_number: None,
                signature: None,
                issuer: None,
                validity: None,
                subject: None,
                subject_public_key_info: Some(spki.clone()),
                issuer_unique_id: None,
                subject_unique_id: None,
                extensions: Some(exts),
            },
            controls: None,
        },
        popo: Some(ProofOfPossession::RaVerified(Null)),
        reg_info: Some(vec![AttributeTypeAndValue { oid: OID_REGINFO_UTF8_PAIRS, value }]),
    }
}

fn message(body: Body, tid: &OctetString) -> Message<'static> {
    let n = GeneralName::DirectoryName(Name::from_str("CN=kiosk").unwrap());
    Message { header: new_header(n.clone(), n, tid.clone(), None), body, protection: None, extra_certs: None }
}

impl Kiosk {
    fn new(dir: &Path) -> Self {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
        let keys = (0..4)
            .map(|_| {
                let k = RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
                SubjectPublicKeyInfoOwned::from_key(k.to_public_key()).unwrap()
            })
            .collect();
        Kiosk {
            ra: Protector::Signature {
                key: RsaPrivateKey::from_pkcs8_pem(&read("ra.key")).unwrap(),
                cert: Certificate::from_pem(read("ra.pem")).unwrap(),
                chain: vec![],
            },
            mac: Protector::Mac { reference: read("pbm-ref").into_bytes(), secret: Zeroizing::new(read("pbm-secret").into_bytes()) },
            keys,
        }
    }

    /// A signed `ir` for both certificates of resident `n`, and its transactionID.
    fn ir(&self, n: usize) -> (OctetString, Vec<u8>) {
        let tid = random_nonce();
        let spki = &self.keys[n % self.keys.len()];
        let reg = RegInfo::parse(&format!(
            "jpki-birth-date?319800217%municipality-code?131016%resident-id?R-{n}%"
        ))
        .unwrap()
        .to_utf8_pairs();
        let body = Body::Ir(vec![
            req_msg(0, CertProfile::UserAuth, spki, &reg),
            req_msg(1, CertProfile::Signing, spki, &reg),
        ]);
        let mut m = message(body, &tid);
        protect(&mut m, &self.ra).unwrap();
        (tid, m.to_der().unwrap())
    }

    /// ir → ip → certConf → pkiConf; returns the number of certificates.
    fn exchange(&self, client: &reqwest::blocking::Client, url: &str, tid: &OctetString, ir: Vec<u8>) -> usize {
        let post = |b: Vec<u8>| -> Vec<u8> {
            let r = client.post(url).header("Content-Type", "application/pkixcmp").body(b).send().unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().unwrap().to_vec()
        };
        let ip = post(ir);
        let msg = Message::from_der(&ip).unwrap();
        let Body::Ip(rep) = msg.body else { panic!("not ip: {}", msg.body.name()) };
        let statuses: Vec<CertStatus> = rep
            .response
            .iter()
            .map(|r| {
                let Some(kp) = &r.certified_key_pair else { panic!("no certificate") };
                let CertOrEncCert::Certificate(c) = &kp.cert_or_enc_cert else { panic!("encrypted") };
                CertStatus { cert_hash: jpki_kiosk::pki::cert_hash(c).unwrap(), cert_req_id: jpki_kiosk::pki::message::int_from_i64(r.cert_req_id), status_info: None }
            })
            .collect();
        let n = statuses.len();
        let mut conf = message(Body::CertConf(statuses), tid);
        conf.header.recip_nonce = msg.header.sender_nonce.clone();
        protect(&mut conf, &self.mac).unwrap();
        let pk = post(conf.to_der().unwrap());
        assert!(matches!(Message::from_der(&pk).unwrap().body, Body::PkiConf(_)));
        n
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().tcp_nodelay(true).build().unwrap()
}

fn openssl_cmp_latency(work: &Path, ca_dir: &Path, http: &str, samples: usize) -> ((f64, f64), (f64, f64)) {
    let ca = |f: &str| ca_dir.join(f).display().to_string();
    sh(work, "openssl", &["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "ee.key", "-subj", "/CN=bench", "-out", "ee.csr"]);
    let secret = format!("pass:{}", std::fs::read_to_string(ca_dir.join("pbm-secret")).unwrap().trim());
    let reference = std::fs::read_to_string(ca_dir.join("pbm-ref")).unwrap().trim().to_string();
    let server = format!("{http}/pkix/");
    let p10 = |out: &str| -> Duration {
        let t = Instant::now();
        sh(work, "openssl", &["cmp", "-cmd", "p10cr", "-server", &server, "-ref", &reference, "-secret", &secret, "-csr", "ee.csr", "-certout", out, "-trusted", &ca("sign-ca.pem"), "-recipient", "/CN=jpki-ca"]);
        t.elapsed()
    };
    let ours: Vec<Duration> = (0..samples).map(|_| p10("ours.pem")).collect();

    // OpenSSL's mock server binds every interface: run it and its client in a private
    // network namespace with only loopback.
    let script = format!(
        r#"set -e
ip link set lo up
openssl cmp -port 18080 -srv_ref {reference} -srv_secret {secret} -srv_cert {signer} -srv_key {key} -rsp_cert ours.pem >/dev/null 2>&1 &
srv=$!
sleep 0.5
for i in $(seq {samples}); do
  s=$(date +%s%N)
  openssl cmp -cmd p10cr -server 127.0.0.1:18080/pkix/ -ref {reference} -secret {secret} -csr ee.csr -certout mock.pem -trusted {root} -recipient /CN=jpki-ca >/dev/null 2>&1
  e=$(date +%s%N)
  echo $((e - s))
done
kill $srv
"#,
        signer = ca("cmp-signer.pem"),
        key = ca("private/cmp-signer.key"),
        root = ca("sign-ca.pem"),
    );
    std::fs::write(work.join("mock.sh"), script).unwrap();
    let out = sh(work, "unshare", &["-n", "bash", "mock.sh"]);
    let mock: Vec<Duration> = out.lines().filter_map(|l| l.trim().parse().ok()).map(Duration::from_nanos).collect();
    assert_eq!(mock.len(), samples, "mock run: {out}");
    (stats(ours), stats(mock))
}

fn crl_bench(work: &Path, n: usize) -> (f64, usize, f64, usize) {
    let dir = work.join(format!("crl-{n}"));
    let ca = Ca::open(Config::new(&dir)).unwrap();
    ca.with_store(|s| {
        s.atomically(|s| -> Result<(), jpki_kiosk::ca::store::StoreError> {
            for i in 0..n {
                s.insert_revocation_raw(&format!("{:016X}", 0x4000_0000_0000_0000u64 + i as u64), "sign", None, (i % 6) as u32, 1_780_000_000)?;
            }
            Ok(())
        })
        .unwrap()
    })
    .unwrap();
    let t = Instant::now();
    let crl = ca.reissue_crl(CertProfile::Signing, None).unwrap();
    let ours = t.elapsed().as_secs_f64();
    assert_eq!(crl.entries as usize, n);

    // The same entries as an `openssl ca` database.
    let mut index = std::io::BufWriter::new(std::fs::File::create(dir.join("index.txt")).unwrap());
    let reasons = ["unspecified", "keyCompromise", "CACompromise", "affiliationChanged", "superseded", "cessationOfOperation"];
    for i in 0..n {
        writeln!(index, "R\t301231145959Z\t260601000000Z,{}\t{:016X}\tunknown\t/CN={i}", reasons[i % 6], 0x4000_0000_0000_0000u64 + i as u64).unwrap();
    }
    index.flush().unwrap();
    drop(index);
    std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = jpki\n[jpki]\ndatabase = index.txt\ncrlnumber = crlnumber\ncertificate = sign-ca.pem\nprivate_key = private/sign-ca.key\ndefault_md = sha256\ndefault_crl_days = 1\n",
    )
    .unwrap();
    let t = Instant::now();
    sh(&dir, "openssl", &["ca", "-gencrl", "-config", "ca.cnf", "-out", "openssl.crl"]);
    let theirs = t.elapsed().as_secs_f64();
    sh(&dir, "openssl", &["crl", "-in", "openssl.crl", "-outform", "DER", "-out", "openssl.der"]);
    let their_size = std::fs::metadata(dir.join("openssl.der")).unwrap().len() as usize;
    std::fs::write(dir.join("ours.der"), &crl.der).unwrap();
    let check = sh(&dir, "openssl", &["crl", "-inform", "DER", "-in", "ours.der", "-noout", "-CAfile", "sign-ca.pem"]);
    assert!(check.contains("verify OK"), "{check}");
    (ours, crl.der.len(), theirs, their_size)
}

fn main() {
    let a = args();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    println!("## jpki-ca benchmarks ({})", if cfg!(debug_assertions) { "debug build" } else { "optimised build" });
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\ncores: {nproc}; load average at start: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));

    let sign1 = openssl_sign_per_s(w, None);
    let sign2 = openssl_sign_per_s(w, Some("2"));
    println!("\n### Compute bound\n\n`openssl speed rsa2048`: {sign1:.0} sign/s (1 process), {sign2:.0} sign/s (2 processes)");
    let ca_sign = {
        use jpki_kiosk::pki::Sha256Signer;
        let k = jpki_kiosk::ca::certs::CaKey::new(&RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap()).unwrap();
        let t = Instant::now();
        let mut n = 0u32;
        while t.elapsed() < Duration::from_secs(3) {
            k.sign_sha256(b"tbs").unwrap();
            n += 1;
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    println!("The CA's signer (libcrypto through the `openssl` crate), same key size: {ca_sign:.0} sign/s (1 thread)");
    println!("One resident = 2 certificate signatures + 2 response signatures (ip, pkiConf) = 4 RSA signatures on the CA;");
    println!("bound = {:.0} residents/s = {:.0} certificates/s on 2 cores.", sign2 / 4.0, sign2 / 2.0);

    let ca_dir = w.join("ca");
    let server = start_ca(&ca_dir);
    let url = format!("http://{}/pkix/", server.http);
    let kiosk = Arc::new(Kiosk::new(&ca_dir));
    let rss_start = rss_kib(server.child.id());

    // Latency: sequential residents on one keep-alive connection.
    let c = client();
    for i in 0..5 {
        let (tid, ir) = kiosk.ir(i);
        kiosk.exchange(&c, &url, &tid, ir);
    }
    let prepared: Vec<_> = (0..a.samples).map(|i| kiosk.ir(1000 + i)).collect();
    let mut lat = Vec::with_capacity(a.samples);
    for (tid, ir) in prepared {
        let t = Instant::now();
        kiosk.exchange(&c, &url, &tid, ir);
        lat.push(t.elapsed());
    }
    let (med, p99) = stats(lat);
    let rss_after_latency = rss_kib(server.child.id());

    // Throughput: `clients` kiosks at once, requests prepared before the clock starts.
    // One exchange waits on four signatures in turn, so two clients would leave the CA's
    // cores idle between them.
    let per_thread = a.residents / a.clients;
    let batches: Vec<Vec<_>> = (0..a.clients).map(|t| (0..per_thread).map(|i| kiosk.ir(100_000 * (t + 1) + i)).collect()).collect();
    let (ca_cpu0, own_cpu0) = (cpu_secs(&server.child.id().to_string()), cpu_secs("self"));
    let t = Instant::now();
    let handles: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let kiosk = kiosk.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let c = client();
                batch.into_iter().map(|(tid, ir)| kiosk.exchange(&c, &url, &tid, ir)).sum::<usize>()
            })
        })
        .collect();
    let certs: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = t.elapsed().as_secs_f64();
    let ca_cpu = cpu_secs(&server.child.id().to_string()) - ca_cpu0;
    let own_cpu = cpu_secs("self") - own_cpu0;
    let rss_end = rss_kib(server.child.id());
    let residents = per_thread * a.clients;
    println!("\n### Issuance through CMP over HTTP (ir for both certificates + certConf, {} client threads)\n", a.clients);
    println!("| residents | certificates | seconds | residents/s | certificates/s | % of OpenSSL bound | % of the CA signer's bound (2 threads) |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {residents} | {certs} | {secs:.2} | {:.1} | {:.1} | {:.0} % | {:.0} % |",
        residents as f64 / secs,
        certs as f64 / secs,
        100.0 * (residents as f64 / secs) / (sign2 / 4.0),
        100.0 * (residents as f64 / secs) / (2.0 * ca_sign / 4.0)
    );
    let per = |cpu: f64| 1000.0 * cpu / residents as f64;
    println!(
        "\nCPU per resident: CA {:.2} ms (its 4 signatures alone: {:.2} ms at the signer's rate), bench client {:.2} ms; both share the 2 cores.",
        per(ca_cpu),
        4000.0 / ca_sign,
        per(own_cpu)
    );
    println!("\nCA resident memory: {rss_start} KiB at start, {rss_after_latency} KiB after {} residents, {rss_end} KiB after {} residents.", a.samples + 5, a.samples + 5 + residents);

    let ((o_med, o_p99), (m_med, m_p99)) = openssl_cmp_latency(w, &ca_dir, &server.http, 30.min(a.samples));
    println!("\n### Latency of one exchange on loopback\n");
    println!("| client → server | exchange | median ms | p99 ms |");
    println!("|---|---|---|---|");
    println!("| kiosk client code → jpki-ca | ir (2 certs) + certConf | {med:.2} | {p99:.2} |");
    println!("| `openssl cmp` → jpki-ca (process per run) | p10cr + certConf | {o_med:.2} | {o_p99:.2} |");
    println!("| `openssl cmp` → OpenSSL mock server (process per run) | p10cr + certConf | {m_med:.2} | {m_p99:.2} |");
    drop(server);

    println!("\n### CRL generation (signing CRL, one entry per revoked certificate)\n");
    println!("| entries | jpki-ca s | jpki-ca bytes | `openssl ca -gencrl` s | OpenSSL bytes | speed-up |");
    println!("|---|---|---|---|---|---|");
    for n in a.crl_sizes {
        let (ours, size, theirs, their_size) = crl_bench(w, n);
        println!("| {n} | {ours:.2} | {size} | {theirs:.2} | {their_size} | {:.1}× |", theirs / ours);
    }
}
