//! The card demo (`jpki-kiosk card-demo`): personalises a virtual JPKI card end to end
//! through a private pcscd, the way the counter will, and checks the result as a client.
//!
//! Steps: start the card stack with `DIR/card.vcard`; detect the card; authenticate as
//! issuer; generate both key pairs on the card; set both PINs; make a throwaway test CA
//! (a signing root and an auth root) and certificates for the card's two public keys;
//! write the four certificates (each read back); read them again as a client would (the
//! signing certificate only after its password); sign a test message with each key and
//! verify the signatures against the certificates. The CA certificates go to `DIR/ca/`.
//!
//! The test CA is deliberately minimal and lives only in memory for one run: it is not
//! the reference prefectural CA (`ca`), and nothing here follows the JPKI certificate
//! profile beyond key type and signature algorithm.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use der::{Decode, Encode, EncodePem};
use rsa::pkcs1v15::{SigningKey, VerifyingKey};
use rsa::pkcs8::EncodePublicKey;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::Certificate;

use crate::card::admin_key::DEMO_MASTER_KEY;
use crate::card::files::{fid, KeySlot};
use crate::card::jpki_ap::JpkiAp;
use crate::card::personalize::Personalizer;
use crate::card::pin::{AuthPin, SigningPassword};
use crate::card::transport::{self, ApduStats, CardTransport, Metered, PcscTransport};
use crate::card::CardError;
use crate::peers::card_stack::{CardStack, StackError};

/// Default auth PIN of the demo (documented in the CLI help and README).
pub const DEFAULT_AUTH_PIN: &str = "1234";
/// Default signing password of the demo.
pub const DEFAULT_SIGN_PASSWORD: &str = "JPKI2026";

/// What the demo needs.
#[derive(Debug)]
pub struct DemoOptions {
    /// Directory for `card.vcard`, `ca/` and the stack's logs.
    pub data: PathBuf,
    /// The auth PIN to set.
    pub auth_pin: AuthPin,
    /// The signing password to set.
    pub sign_password: SigningPassword,
    /// Measure APDU round trips with extra retry queries (for the bench).
    pub rtt_probe: usize,
    /// Extra `jpki-vcard serve` options, e.g. `--profile real-card`.
    pub card_args: Vec<String>,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The virtual card stack did not come up.
    #[error("card stack: {0}")]
    Stack(#[from] StackError),
    /// The card refused or the reader failed.
    #[error("card: {0}")]
    Card(#[from] CardError),
    /// Building a test certificate failed.
    #[error("test CA: {0}")]
    Ca(String),
    /// A check failed: the card does not behave as written.
    #[error("check failed: {0}")]
    Check(String),
    /// Writing output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being written.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl From<crate::card::TransportError> for DemoError {
    fn from(e: crate::card::TransportError) -> Self {
        DemoError::Card(e.into())
    }
}

/// Figures of one run (for `--stats` and `docs/performance.md`).
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// Each step and how long it took.
    pub steps: Vec<(String, Duration)>,
    /// APDUs of the personalisation proper (detect .. last certificate read back).
    pub personalisation: ApduStats,
    /// The protocol minimum for the same personalisation (`docs/card-protocol.md` §5).
    pub personalisation_minimum: usize,
    /// Every APDU of the run except the RTT probe.
    pub all: ApduStats,
    /// Retry queries sent only to measure round trips.
    pub probe: ApduStats,
    /// Time the card spent generating its two key pairs (the GENERATE steps).
    pub card_keygen: Duration,
    /// Time the host spent generating the two test CA keys, not overlapped with card work.
    pub ca_keygen_wait: Duration,
    /// Time to start pcscd and plug in the card.
    pub stack_start: Duration,
    /// Time of the card work: personalisation and client checks (no stack start/stop,
    /// no RTT probe, no disconnect).
    pub work: Duration,
    /// The whole run.
    pub total: Duration,
    /// Sizes of the four certificates written: auth EE, auth CA, sign EE, sign CA.
    pub cert_sizes: [usize; 4],
}

impl DemoReport {
    /// The card work except on-card key generation and waiting for the CA keys.
    pub fn other(&self) -> Duration {
        self.work.saturating_sub(self.card_keygen).saturating_sub(self.ca_keygen_wait)
    }

    /// The figures as a JSON object, names as in `docs/performance.md`.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        serde_json::json!({
            "card.personalisation_apdus": self.personalisation.apdus,
            "card.personalisation_apdus_minimum": self.personalisation_minimum,
            "card.personalisation_apdu_ratio": self.personalisation.apdus as f64 / self.personalisation_minimum.max(1) as f64,
            "card.personalisation_bytes_sent": self.personalisation.bytes_sent,
            "card.personalisation_bytes_received": self.personalisation.bytes_received,
            "card.demo_apdus": self.all.apdus,
            "card.apdu_rtt_median_ms": ms(self.probe.rtt_quantile(0.5)),
            "card.apdu_rtt_p95_ms": ms(self.probe.rtt_quantile(0.95)),
            "card.apdu_rtt_samples": self.probe.apdus,
            "card.demo_total_s": self.total.as_secs_f64(),
            "card.demo_keygen_card_s": self.card_keygen.as_secs_f64(),
            "card.demo_keygen_ca_wait_s": self.ca_keygen_wait.as_secs_f64(),
            "card.demo_stack_start_s": self.stack_start.as_secs_f64(),
            "card.demo_card_work_s": self.work.as_secs_f64(),
            "card.demo_other_s": self.other().as_secs_f64(),
            "card.cert_sizes": self.cert_sizes,
        })
    }
}

/// The protocol minimum of a personalisation with certificates of `sizes` bytes
/// (`docs/card-protocol.md` §5): detect 3, administrative authentication 3, per key pair
/// SELECT + GENERATE + GET RESPONSE, per PIN SELECT + RESET RETRY COUNTER, one VERIFY of
/// the signing password (to read its certificate back), and per certificate SELECT,
/// ⌈n/255⌉ UPDATE BINARY and ⌈n/256⌉ READ BINARY, plus ERASE for the two CA EFs (the
/// end-entity EFs were emptied by GENERATE).
pub fn personalisation_minimum(sizes: &[usize; 4]) -> usize {
    let certs: usize = sizes.iter().map(|n| 1 + n.div_ceil(255) + n.div_ceil(256)).sum();
    3 + 3 + 2 * 3 + 2 * 2 + 1 + certs + 2
}

struct Clock<'w> {
    out: &'w mut dyn Write,
    started: Instant,
    report: DemoReport,
}

impl Clock<'_> {
    fn step<R>(&mut self, name: &str, f: impl FnOnce() -> Result<R, DemoError>) -> Result<R, DemoError> {
        let t = Instant::now();
        let r = f();
        let took = t.elapsed();
        let mark = if r.is_ok() { "ok" } else { "FAILED" };
        let _ = writeln!(
            self.out,
            "[{:>8.3} s] {name:<48} {:>9.1} ms  {mark}",
            self.started.elapsed().as_secs_f64(),
            took.as_secs_f64() * 1e3
        );
        self.report.steps.push((name.to_string(), took));
        r
    }
}

/// A test CA: one self-signed root.
struct TestCa {
    name: Name,
    key: SigningKey<Sha256>,
    cert: Certificate,
}

fn ca_err(e: impl std::fmt::Display) -> DemoError {
    DemoError::Ca(e.to_string())
}

fn make_root(subject: &str, private: RsaPrivateKey, serial: u32) -> Result<TestCa, DemoError> {
    let name = Name::from_str(subject).map_err(ca_err)?;
    let key = SigningKey::<Sha256>::new(private);
    let spki = SubjectPublicKeyInfoOwned::from_key(key.as_ref().to_public_key()).map_err(ca_err)?;
    let validity = Validity::from_now(Duration::from_secs(10 * 365 * 86_400)).map_err(ca_err)?;
    let builder = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::from(serial),
        validity,
        name.clone(),
        spki,
        &key,
    )
    .map_err(ca_err)?;
    let cert = builder.build::<rsa::pkcs1v15::Signature>().map_err(ca_err)?;
    Ok(TestCa { name, key, cert })
}

fn issue(ca: &TestCa, subject: &str, public: &RsaPublicKey, serial: u32) -> Result<Vec<u8>, DemoError> {
    let spki_der = public.to_public_key_der().map_err(ca_err)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(ca_err)?;
    let validity = Validity::from_now(Duration::from_secs(5 * 365 * 86_400)).map_err(ca_err)?;
    let builder = CertificateBuilder::new(
        Profile::Leaf { issuer: ca.name.clone(), enable_key_agreement: false, enable_key_encipherment: false },
        SerialNumber::from(serial),
        validity,
        Name::from_str(subject).map_err(ca_err)?,
        spki,
        &ca.key,
    )
    .map_err(ca_err)?;
    let cert = builder.build::<rsa::pkcs1v15::Signature>().map_err(ca_err)?;
    cert.to_der().map_err(ca_err)
}

fn public_key_of(cert_der: &[u8]) -> Result<RsaPublicKey, DemoError> {
    let cert = Certificate::from_der(cert_der).map_err(ca_err)?;
    let spki_der = cert.tbs_certificate.subject_public_key_info.to_der().map_err(ca_err)?;
    rsa::pkcs8::DecodePublicKey::from_public_key_der(&spki_der).map_err(ca_err)
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), DemoError> {
    if cond {
        Ok(())
    } else {
        Err(DemoError::Check(what.into()))
    }
}

/// The certificates a personalisation wrote, for callers that check the card later.
#[derive(Debug, Clone)]
pub struct Personalised {
    /// `(EF, DER)` of the four certificates, in the order written.
    pub certificates: Vec<(u16, Vec<u8>)>,
    /// The auth root (for `auth-ca.pem`).
    pub auth_ca: Certificate,
    /// The signing root (for `sign-ca.pem`).
    pub sign_ca: Certificate,
}

impl Personalised {
    /// The DER written to `ef`.
    pub fn certificate(&self, ef: u16) -> Option<&[u8]> {
        self.certificates.iter().find(|(f, _)| *f == ef).map(|(_, d)| d.as_slice())
    }
}

/// Runs the demo, printing each step to `out`. Leaves `data/card.vcard` personalised and
/// the CA certificates in `data/ca/`.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let data = opts.data.as_path();
    std::fs::create_dir_all(data.join("ca"))
        .map_err(|source| DemoError::Io { context: format!("creating {}/ca", data.display()), source })?;
    let mut clock = Clock { out, started, report: DemoReport::default() };
    let (stack, card) = clock.step("start pcscd+vpcd (private namespaces) and the card", || {
        let mut stack = CardStack::start(&data.join("stack"))?;
        let extra: Vec<&str> = opts.card_args.iter().map(String::as_str).collect();
        let card = stack.start_card(0, &card_file(data), &extra)?;
        Ok((stack, card))
    })?;
    let stack_start = started.elapsed();
    let reader = stack.reader_name(0)?;
    let (done, mut report) = personalise(&reader, opts, started, clock.out)?;
    let mut clock = Clock { out: clock.out, started, report: DemoReport::default() };
    clock.step("write CA certificates to ca/", || {
        for (name, cert) in [("auth-ca.pem", &done.auth_ca), ("sign-ca.pem", &done.sign_ca)] {
            let pem = cert.to_pem(der::pem::LineEnding::LF).map_err(ca_err)?;
            let path = data.join("ca").join(name);
            std::fs::write(&path, pem)
                .map_err(|source| DemoError::Io { context: format!("writing {}", path.display()), source })?;
        }
        Ok(())
    })?;
    clock.step("stop the card stack", || {
        drop(card);
        drop(stack);
        Ok(())
    })?;
    report.steps.extend(clock.report.steps);
    report.stack_start = stack_start;
    report.total = started.elapsed();
    let r = &report;
    let _ = writeln!(
        clock.out,
        "done in {:.2} s (stack start {:.2} s); card work {:.3} s: key generation {:.3} s, waiting for CA keys {:.3} s, everything else {:.3} s",
        r.total.as_secs_f64(),
        r.stack_start.as_secs_f64(),
        r.work.as_secs_f64(),
        r.card_keygen.as_secs_f64(),
        r.ca_keygen_wait.as_secs_f64(),
        r.other().as_secs_f64()
    );
    let _ = writeln!(
        clock.out,
        "personalisation: {} APDUs (protocol minimum {}), {} bytes sent, {} received",
        r.personalisation.apdus, r.personalisation_minimum, r.personalisation.bytes_sent, r.personalisation.bytes_received
    );
    Ok(report)
}

/// Personalises the card in `reader` (this process's pcscd) and checks it as a client:
/// everything of the demo between starting and stopping the stack. Step times print
/// relative to `started`.
pub fn personalise(
    reader: &std::ffi::CStr,
    opts: &DemoOptions,
    started: Instant,
    out: &mut dyn Write,
) -> Result<(Personalised, DemoReport), DemoError> {
    let work_started = Instant::now();
    let mut clock = Clock { out, started, report: DemoReport::default() };

    // The test CA's keys are made on the host while the card generates its own.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rng = rand_core::OsRng;
        let keys = (RsaPrivateKey::new(&mut rng, 2048), RsaPrivateKey::new(&mut rng, 2048));
        let _ = tx.send(keys);
    });

    let ctx = transport::establish()?;
    let mut pcsc = PcscTransport::connect(&ctx, reader)?;
    let mut personalisation = ApduStats::default();
    // --- Personalisation proper ---
    let mut tx1 = pcsc.transaction()?;
    let mut ap = JpkiAp::new(Metered::new(&mut tx1));
    clock.step("detect (SELECT AP, token EF 0006)", || Ok(ap.detect()?))?;
    let serial = clock.step("administrative authentication", || {
        Ok(Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY)?)
    })?;
    let _ = writeln!(clock.out, "             card serial {}", hex::encode_upper(serial));
    let mut keys = Vec::new();
    for slot in KeySlot::ALL {
        let t = Instant::now();
        let label = match slot {
            KeySlot::Auth => "generate auth key pair on the card (0017)",
            KeySlot::Sign => "generate signing key pair on the card (001A)",
        };
        keys.push(clock.step(label, || Ok(Personalizer::new(&mut ap).generate_key_pair(slot)?))?);
        clock.report.card_keygen += t.elapsed();
    }
    clock.step("set auth PIN and signing password", || {
        Ok(Personalizer::new(&mut ap).set_pins(&opts.auth_pin, &opts.sign_password)?)
    })?;
    personalisation.merge(ap.transport().stats());
    let mut ap = JpkiAp::new(Metered::new(ap.into_inner().into_inner()));

    let t = Instant::now();
    let (auth_ca_key, sign_ca_key) = rx.recv().map_err(|_| DemoError::Ca("key thread died".into()))?;
    clock.report.ca_keygen_wait = t.elapsed();
    let (auth_ca_key, sign_ca_key) = (auth_ca_key.map_err(ca_err)?, sign_ca_key.map_err(ca_err)?);
    let certs = clock.step("test CA: 2 roots, 2 end-entity certificates", || {
        let auth_ca = make_root("CN=Test JPKI Auth CA,OU=JPKI for user authentication,O=JPKI Kiosk Test,C=JP", auth_ca_key, 1)?;
        let sign_ca = make_root("CN=Test JPKI Sign CA,OU=JPKI for digital signature,O=JPKI Kiosk Test,C=JP", sign_ca_key, 1)?;
        let auth_ee = issue(&auth_ca, "CN=Test Resident Auth,O=JPKI Kiosk Test,C=JP", &keys[0], 2)?;
        let sign_ee = issue(&sign_ca, "CN=Test Resident Sign,O=JPKI Kiosk Test,C=JP", &keys[1], 2)?;
        Ok((auth_ee, auth_ca, sign_ee, sign_ca))
    })?;
    let (auth_ee, auth_ca, sign_ee, sign_ca) = certs;
    let auth_ca_der = auth_ca.cert.to_der().map_err(ca_err)?;
    let sign_ca_der = sign_ca.cert.to_der().map_err(ca_err)?;
    let plan: [(u16, &[u8], &str); 4] = [
        (fid::AUTH_CERT, &auth_ee, "write+read back auth certificate (000A)"),
        (fid::AUTH_CA_CERT, &auth_ca_der, "write+read back auth CA certificate (000B)"),
        (fid::SIGN_CERT, &sign_ee, "write+read back signing certificate (0001)"),
        (fid::SIGN_CA_CERT, &sign_ca_der, "write+read back signing CA certificate (0002)"),
    ];
    for (i, (ef, der, label)) in plan.iter().enumerate() {
        clock.report.cert_sizes[i] = der.len();
        clock.step(label, || Ok(Personalizer::new(&mut ap).write_certificate(*ef, der)?))?;
    }
    personalisation.merge(ap.transport().stats());
    clock.report.personalisation_minimum = personalisation_minimum(&clock.report.cert_sizes);
    drop(ap);
    drop(tx1);

    // --- Checks, as a client sees the card ---
    let mut tx2 = pcsc.transaction()?;
    let mut ap = JpkiAp::new(Metered::new(&mut tx2));
    clock.step("read certificates back as a client", || {
        ap.detect()?;
        for (ef, der, _) in &plan {
            if *ef == fid::SIGN_CERT {
                match ap.read_certificate(*ef) {
                    Err(CardError::SecurityNotSatisfied) => {}
                    other => {
                        return Err(DemoError::Check(format!(
                            "signing certificate readable without the password: {:?}",
                            other.map(|v| v.len())
                        )))
                    }
                }
                ap.verify(&opts.sign_password)?;
            }
            check(ap.read_certificate(*ef)? == *der, format!("EF {ef:04X} differs from what was written"))?;
        }
        Ok(())
    })?;
    let message = b"jpki-kiosk card demo test message";
    clock.step("sign with the auth key (VERIFY PIN), verify", || {
        ap.verify(&opts.auth_pin)?;
        let sig = ap.sign_sha256(KeySlot::Auth, message)?;
        let key = VerifyingKey::<Sha256>::new(public_key_of(&auth_ee)?);
        let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).map_err(ca_err)?;
        signature::Verifier::verify(&key, message, &sig)
            .map_err(|_| DemoError::Check("auth signature does not verify against the certificate".into()))
    })?;
    clock.step("sign with the signing key (VERIFY password), verify", || {
        ap.verify(&opts.sign_password)?;
        let sig = ap.sign_sha256(KeySlot::Sign, message)?;
        let key = VerifyingKey::<Sha256>::new(public_key_of(&sign_ee)?);
        let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).map_err(ca_err)?;
        signature::Verifier::verify(&key, message, &sig)
            .map_err(|_| DemoError::Check("signing signature does not verify against the certificate".into()))
    })?;
    let mut all = personalisation.clone();
    all.merge(ap.transport().stats());
    clock.report.work = work_started.elapsed();
    if opts.rtt_probe > 0 {
        let n = opts.rtt_probe;
        let mut probe = Metered::new(ap.into_inner().into_inner());
        clock.step(&format!("RTT probe: {n} retry queries"), || {
            for _ in 0..n {
                probe.transmit(&crate::card::jpki_ap::retry_query())?;
            }
            Ok(())
        })?;
        clock.report.probe = probe.take_stats();
    }
    drop(tx2);
    clock.step("disconnect (the card is reset: PINs no longer verified)", || {
        drop(pcsc);
        Ok(())
    })?;
    clock.report.personalisation = personalisation;
    clock.report.all = all;

    clock.report.total = started.elapsed();
    let done = Personalised {
        certificates: plan.iter().map(|(ef, der, _)| (*ef, der.to_vec())).collect(),
        auth_ca: auth_ca.cert,
        sign_ca: sign_ca.cert,
    };
    Ok((done, clock.report))
}

/// Where the demo keeps the card (`DIR/card.vcard`).
pub fn card_file(data: &Path) -> PathBuf {
    data.join("card.vcard")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_counts_each_part() {
        // 3 detect + 3 admin + 6 keys + 4 PINs + 1 VERIFY + 2 CA erases = 19, plus per
        // certificate SELECT + writes + reads.
        assert_eq!(personalisation_minimum(&[255, 256, 256, 257]), 19 + 3 + 4 + 4 + 5);
    }

    #[test]
    fn test_ca_issues_certificates_clients_can_size() {
        let mut rng = rand_core::OsRng;
        let ca = make_root("CN=T,C=JP", RsaPrivateKey::new(&mut rng, 2048).unwrap(), 1).unwrap();
        let ee_key = RsaPrivateKey::new(&mut rng, 2048).unwrap().to_public_key();
        let ee = issue(&ca, "CN=E,C=JP", &ee_key, 2).unwrap();
        // OpenSC sizes the EF from `30 82 LL LL`.
        assert_eq!(&ee[..2], &[0x30, 0x82]);
        assert_eq!(usize::from(u16::from_be_bytes([ee[2], ee[3]])) + 4, ee.len());
        assert_eq!(public_key_of(&ee).unwrap(), ee_key);
        // The root verifies the leaf.
        let cert = Certificate::from_der(&ee).unwrap();
        let tbs = cert.tbs_certificate.to_der().unwrap();
        let sig = rsa::pkcs1v15::Signature::try_from(cert.signature.raw_bytes()).unwrap();
        let vk = VerifyingKey::<Sha256>::new(ca.key.as_ref().to_public_key());
        signature::Verifier::verify(&vk, &tbs, &sig).unwrap();
    }
}
