//! The CA's keys and infrastructure certificates: created on first start, reused after.
//!
//! Files under the CA directory (keys are PKCS#8 PEM, mode 0600):
//!
//! | File | What |
//! |---|---|
//! | `sign-ca.pem`, `auth-ca.pem` | the two self-signed JPKI roots |
//! | `tls-ca.pem` | the LGWAN infrastructure CA: trust anchor for TLS, issuer of the RA |
//! | `ra.pem`, `ra.key` | the kiosk's RA certificate (clientAuth + cmcRA) and key |
//! | `cmp-signer.pem` | the CMP responder certificate (issued by the signing root) |
//! | `tls-server.pem` | the HTTPS server certificate (SAN 127.0.0.1, localhost) |
//! | `pbm-ref`, `pbm-secret` | reference and shared secret for MAC-protected requests |
//! | `private/*.key` | the CA-side private keys |
//!
//! It is not the issuance policy for residents' certificates ([`super::issue`]).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use const_oid::ObjectIdentifier;
use der::{Encode, EncodePem};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand_core::RngCore;
use rsa::RsaPrivateKey;
use spki::SubjectPublicKeyInfoOwned;
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::certs::{self, attr, utf8_name, CaKey, CertSpec};
use super::CaError;
use crate::pki::{key_identifier, subject_key_id};

/// A CA (or responder) certificate together with its key.
pub struct Issuer {
    /// The certificate.
    pub cert: Certificate,
    /// Its private key.
    pub key: RsaPrivateKey,
    /// Its subject key identifier.
    pub key_id: Vec<u8>,
    /// The same key, prepared for fast signing.
    pub signer: CaKey,
}

impl Issuer {
    fn new(cert: Certificate, key: RsaPrivateKey) -> Result<Self, CaError> {
        let key_id = subject_key_id(&cert);
        let signer = CaKey::new(&key)?;
        Ok(Issuer { cert, key, key_id, signer })
    }

    /// The subject (= issuer name of what it signs).
    pub fn name(&self) -> &Name {
        &self.cert.tbs_certificate.subject
    }
}

/// Everything the CA signs with or hands out.
pub struct Material {
    /// Signing-certificate root (署名用).
    pub sign_ca: Issuer,
    /// User-authentication root (利用者証明用).
    pub auth_ca: Issuer,
    /// LGWAN infrastructure CA (TLS and RA trust anchor).
    pub tls_ca: Issuer,
    /// The CMP responder's certificate and key.
    pub cmp_signer: Issuer,
    /// The kiosk's RA certificate (its key is only written out for the kiosk).
    pub ra_cert: Certificate,
    /// TLS server certificate.
    pub tls_server_cert: Certificate,
    /// TLS server key, PKCS#8 DER.
    pub tls_server_key: Zeroizing<Vec<u8>>,
    /// PBM reference (senderKID of MAC-protected requests).
    pub pbm_ref: Vec<u8>,
    /// PBM shared secret.
    pub pbm_secret: Zeroizing<Vec<u8>>,
    /// Key for the keyed hashes that stand in for holder and card identifiers.
    pub id_key: Zeroizing<Vec<u8>>,
}

const SIGN_OU: &str = "JPKI for digital signature";
const AUTH_OU: &str = "JPKI for user authentication";
const JLIS_OU: &str = "Japan Agency for Local Authority Information Systems";

/// Subject of a JPKI root.
pub fn root_name(signing: bool) -> Result<Name, CaError> {
    let ou = if signing { SIGN_OU } else { AUTH_OU };
    Ok(utf8_name(&[(attr::C, "JP"), (attr::O, "JPKI"), (attr::OU, ou), (attr::OU, JLIS_OU)])?)
}

/// The organisational unit naming a profile in subjects and CRL names.
pub fn profile_ou(signing: bool) -> &'static str {
    if signing {
        SIGN_OU
    } else {
        AUTH_OU
    }
}

fn root_alt_name(signing: bool) -> Result<Name, CaError> {
    let ou = if signing { "公的個人認証サービス署名用" } else { "公的個人認証サービス利用者証明用" };
    Ok(utf8_name(&[
        (attr::C, "JP"),
        (attr::O, "公的個人認証サービス"),
        (attr::OU, ou),
        (attr::OU, "地方公共団体情報システム機構"),
    ])?)
}

/// notAfter of a certificate valid for `years` from now: the day before the anniversary,
/// at 14:59:59Z (midnight JST), as the J-LIS roots have it.
fn years_from_now(years: i32) -> i64 {
    let today_jst = (OffsetDateTime::now_utc() + Duration::hours(9)).date();
    let year = today_jst.year() + years;
    // Issued on 29 February: the anniversary in a common year is 28 February.
    let anniversary = today_jst
        .replace_year(year)
        .or_else(|_| time::Date::from_calendar_date(year, time::Month::February, 28))
        .expect("28 February exists in every year");
    let end = anniversary - Duration::days(1);
    end.with_hms(14, 59, 59).expect("valid time").assume_utc().unix_timestamp()
}

fn spki_of(key: &RsaPrivateKey) -> Result<SubjectPublicKeyInfoOwned, CaError> {
    SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).map_err(|e| CaError::Key(e.to_string()))
}

fn root(key: &RsaPrivateKey, signing: bool) -> Result<Certificate, CaError> {
    let name = root_name(signing)?;
    let spki = spki_of(key)?;
    let spec = CertSpec {
        serial: certs::random_serial()?,
        subject: name.clone(),
        not_before: certs::unix_now(),
        not_after: years_from_now(10),
        extensions: vec![
            certs::ski(&spki)?,
            certs::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
            certs::basic_constraints(true)?,
            certs::san(vec![GeneralName::DirectoryName(root_alt_name(signing)?)])?,
            // The J-LIS roots name their own DN as CRL distribution point (X.500 style).
            certs::crl_dp(vec![GeneralName::DirectoryName(name.clone())])?,
        ],
        spki,
    };
    Ok(certs::sign_cert(spec, &name, key)?)
}

fn tls_ca(key: &RsaPrivateKey) -> Result<Certificate, CaError> {
    let name = utf8_name(&[
        (attr::C, "JP"),
        (attr::O, "JPKI reference"),
        (attr::OU, "LGWAN"),
        (attr::CN, "JPKI reference LGWAN infrastructure CA"),
    ])?;
    let spki = spki_of(key)?;
    let spec = CertSpec {
        serial: certs::random_serial()?,
        subject: name.clone(),
        not_before: certs::unix_now(),
        not_after: years_from_now(10),
        extensions: vec![
            certs::ski(&spki)?,
            certs::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
            certs::basic_constraints(true)?,
        ],
        spki,
    };
    Ok(certs::sign_cert(spec, &name, key)?)
}

fn leaf(
    issuer: &Issuer,
    key: &RsaPrivateKey,
    subject: Name,
    usages: impl Into<der::flagset::FlagSet<KeyUsages>>,
    ekus: &[ObjectIdentifier],
    alt: Option<Vec<GeneralName>>,
    years: i32,
) -> Result<Certificate, CaError> {
    let spki = spki_of(key)?;
    let mut extensions = vec![
        certs::ski(&spki)?,
        certs::aki(&issuer.key_id)?,
        certs::key_usage(usages)?,
        certs::basic_constraints(false)?,
        certs::eku(ekus)?,
    ];
    if let Some(names) = alt {
        extensions.push(certs::san(names)?);
    }
    let spec = CertSpec {
        serial: certs::random_serial()?,
        subject,
        not_before: certs::unix_now() - 60,
        not_after: years_from_now(years),
        extensions,
        spki,
    };
    Ok(certs::sign_cert(spec, issuer.name(), &issuer.signer)?)
}

fn write_file(path: &Path, data: &[u8], private: bool) -> Result<(), CaError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| CaError::Io(path.display().to_string(), e))?;
    f.write_all(data).map_err(|e| CaError::Io(path.display().to_string(), e))?;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, CaError> {
    fs::read(path).map_err(|e| CaError::Io(path.display().to_string(), e))
}

fn pem(cert: &Certificate) -> Result<String, CaError> {
    Ok(cert.to_pem(LineEnding::LF)?)
}

fn key_pem(key: &RsaPrivateKey) -> Result<Zeroizing<String>, CaError> {
    key.to_pkcs8_pem(LineEnding::LF).map_err(|e| CaError::Key(e.to_string()))
}

fn load_key(path: &Path) -> Result<RsaPrivateKey, CaError> {
    let pem = Zeroizing::new(String::from_utf8(read(path)?).map_err(|_| CaError::Key("not UTF-8".into()))?);
    RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| CaError::Key(format!("{}: {e}", path.display())))
}

fn load_cert(path: &Path) -> Result<Certificate, CaError> {
    use der::DecodePem;
    Ok(Certificate::from_pem(read(path)?)?)
}

/// Generates `n` RSA-2048 keys, spread over the available cores (key generation dominates
/// a first start).
fn generate_keys(n: usize) -> Result<Vec<RsaPrivateKey>, CaError> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| s.spawn(|| RsaPrivateKey::new(&mut rand_core::OsRng, 2048)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| CaError::Key("key generation thread panicked".into()))?
                    .map_err(|e| CaError::Key(e.to_string()))
            })
            .collect()
    })
}

impl Material {
    /// Loads the material from `dir`, creating all of it on first start.
    ///
    /// `hostnames` are extra DNS names for the TLS server certificate.
    pub fn load_or_create(dir: &Path, hostnames: &[String]) -> Result<Self, CaError> {
        let private = dir.join("private");
        if !dir.join("sign-ca.pem").exists() {
            Self::create(dir, &private, hostnames)?;
        }
        Self::load(dir, &private)
    }

    fn create(dir: &Path, private: &Path, hostnames: &[String]) -> Result<(), CaError> {
        fs::create_dir_all(private).map_err(|e| CaError::Io(private.display().to_string(), e))?;
        fs::set_permissions(private, fs::Permissions::from_mode(0o700))
            .map_err(|e| CaError::Io(private.display().to_string(), e))?;
        let mut keys = generate_keys(6)?.into_iter();
        let mut next = || keys.next().ok_or_else(|| CaError::Key("missing key".into()));
        let (sign_key, auth_key, tls_ca_key) = (next()?, next()?, next()?);
        let (signer_key, ra_key, server_key) = (next()?, next()?, next()?);

        let sign_ca = Issuer::new(root(&sign_key, true)?, sign_key)?;
        let auth_ca = Issuer::new(root(&auth_key, false)?, auth_key)?;
        let tls_ca = Issuer::new(tls_ca(&tls_ca_key)?, tls_ca_key)?;
        let signer = leaf(
            &sign_ca,
            &signer_key,
            utf8_name(&[
                (attr::C, "JP"),
                (attr::O, "JPKI"),
                (attr::OU, SIGN_OU),
                (attr::CN, "JPKI reference CMP responder"),
            ])?,
            KeyUsages::DigitalSignature,
            &[certs::EKU_CMC_RA],
            None,
            10,
        )?;
        let ra = leaf(
            &tls_ca,
            &ra_key,
            utf8_name(&[
                (attr::C, "JP"),
                (attr::O, "JPKI reference"),
                (attr::OU, "LGWAN"),
                (attr::CN, "kiosk RA 01"),
            ])?,
            KeyUsages::DigitalSignature,
            &[certs::EKU_CLIENT_AUTH, certs::EKU_CMC_RA],
            None,
            3,
        )?;
        let mut alt = vec![
            GeneralName::from(std::net::IpAddr::from([127, 0, 0, 1])),
            certs::dns("localhost")?,
        ];
        for h in hostnames {
            if let Ok(ip) = h.parse::<std::net::IpAddr>() {
                alt.push(GeneralName::from(ip));
            } else {
                alt.push(certs::dns(h)?);
            }
        }
        let server = leaf(
            &tls_ca,
            &server_key,
            utf8_name(&[(attr::C, "JP"), (attr::O, "JPKI reference"), (attr::CN, "jpki-ca")])?,
            KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
            &[certs::EKU_SERVER_AUTH],
            Some(alt),
            3,
        )?;

        let mut ref_bytes = [0u8; 6];
        rand_core::OsRng.fill_bytes(&mut ref_bytes);
        let pbm_ref = format!("kiosk-{}", hex::encode(ref_bytes));
        let mut secret = Zeroizing::new([0u8; 24]);
        rand_core::OsRng.fill_bytes(&mut *secret);
        let secret_hex = Zeroizing::new(hex::encode(*secret));
        let mut id_key = Zeroizing::new([0u8; 32]);
        rand_core::OsRng.fill_bytes(&mut *id_key);

        write_file(&private.join("sign-ca.key"), key_pem(&sign_ca.key)?.as_bytes(), true)?;
        write_file(&private.join("auth-ca.key"), key_pem(&auth_ca.key)?.as_bytes(), true)?;
        write_file(&private.join("tls-ca.key"), key_pem(&tls_ca.key)?.as_bytes(), true)?;
        write_file(&private.join("cmp-signer.key"), key_pem(&signer_key)?.as_bytes(), true)?;
        write_file(&private.join("tls-server.key"), key_pem(&server_key)?.as_bytes(), true)?;
        write_file(&private.join("id-key"), &*id_key, true)?;
        write_file(&dir.join("ra.key"), key_pem(&ra_key)?.as_bytes(), true)?;
        write_file(&dir.join("pbm-ref"), pbm_ref.as_bytes(), false)?;
        write_file(&dir.join("pbm-secret"), secret_hex.as_bytes(), true)?;
        write_file(&dir.join("ra.pem"), pem(&ra)?.as_bytes(), false)?;
        write_file(&dir.join("cmp-signer.pem"), pem(&signer)?.as_bytes(), false)?;
        write_file(&dir.join("tls-server.pem"), pem(&server)?.as_bytes(), false)?;
        write_file(&dir.join("tls-ca.pem"), pem(&tls_ca.cert)?.as_bytes(), false)?;
        write_file(&dir.join("auth-ca.pem"), pem(&auth_ca.cert)?.as_bytes(), false)?;
        // Written last: its presence marks a complete first start.
        write_file(&dir.join("sign-ca.pem"), pem(&sign_ca.cert)?.as_bytes(), false)?;
        Ok(())
    }

    fn load(dir: &Path, private: &Path) -> Result<Self, CaError> {
        let issuer = |cert: &str, key: PathBuf| -> Result<Issuer, CaError> {
            Issuer::new(load_cert(&dir.join(cert))?, load_key(&key)?)
        };
        let server_key = load_key(&private.join("tls-server.key"))?;
        let tls_server_key = Zeroizing::new(
            server_key.to_pkcs8_der().map_err(|e| CaError::Key(e.to_string()))?.as_bytes().to_vec(),
        );
        let trim = |v: Vec<u8>| -> Vec<u8> {
            let s = String::from_utf8_lossy(&v);
            s.trim().as_bytes().to_vec()
        };
        Ok(Material {
            sign_ca: issuer("sign-ca.pem", private.join("sign-ca.key"))?,
            auth_ca: issuer("auth-ca.pem", private.join("auth-ca.key"))?,
            tls_ca: issuer("tls-ca.pem", private.join("tls-ca.key"))?,
            cmp_signer: issuer("cmp-signer.pem", private.join("cmp-signer.key"))?,
            ra_cert: load_cert(&dir.join("ra.pem"))?,
            tls_server_cert: load_cert(&dir.join("tls-server.pem"))?,
            tls_server_key,
            pbm_ref: trim(read(&dir.join("pbm-ref"))?),
            pbm_secret: Zeroizing::new(trim(read(&dir.join("pbm-secret"))?)),
            id_key: Zeroizing::new(read(&private.join("id-key"))?),
        })
    }

    /// The issuer of a profile's certificates.
    pub fn issuer(&self, signing: bool) -> &Issuer {
        if signing {
            &self.sign_ca
        } else {
            &self.auth_ca
        }
    }

    /// A keyed hash standing in for a holder or card identifier in the store and logs.
    pub fn redacted_ref(&self, kind: &str, id: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(&self.id_key).expect("HMAC takes any key");
        m.update(kind.as_bytes());
        m.update(b":");
        m.update(id.as_bytes());
        hex::encode(&m.finalize().into_bytes()[..16])
    }

    /// SKI of a certificate's key, for checks.
    pub fn key_id_of(cert: &Certificate) -> Vec<u8> {
        key_identifier(&cert.tbs_certificate.subject_public_key_info)
    }

    /// DER of the TLS server certificate chain (server, then infrastructure CA).
    pub fn tls_chain_der(&self) -> Result<Vec<Vec<u8>>, CaError> {
        Ok(vec![self.tls_server_cert.to_der()?, self.tls_ca.cert.to_der()?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};

    #[test]
    fn first_start_creates_and_restart_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = Material::load_or_create(dir.path(), &[]).unwrap();
        let b = Material::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(a.sign_ca.cert, b.sign_ca.cert);
        assert_eq!(a.ra_cert, b.ra_cert);
        assert_eq!(*a.pbm_secret, *b.pbm_secret);
        for f in ["ra.key", "pbm-secret", "private/sign-ca.key", "private/id-key"] {
            let mode = fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let ra_pem = fs::read_to_string(dir.path().join("ra.pem")).unwrap();
        assert!(ra_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn roots_follow_the_jlis_profile() {
        let dir = tempfile::tempdir().unwrap();
        let m = Material::load_or_create(dir.path(), &[]).unwrap();
        for root in [&m.sign_ca.cert, &m.auth_ca.cert] {
            let tbs = &root.tbs_certificate;
            assert_eq!(tbs.subject, tbs.issuer);
            let (crit, ku) = tbs.get::<KeyUsage>().unwrap().unwrap();
            assert!(crit && ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
            let (crit, bc) = tbs.get::<BasicConstraints>().unwrap().unwrap();
            assert!(crit && bc.ca);
            assert!(tbs.get::<x509_cert::ext::pkix::AuthorityKeyIdentifier>().unwrap().is_none());
            assert!(tbs.get::<SubjectAltName>().unwrap().is_some());
            let end = tbs.validity.not_after.to_unix_duration().as_secs();
            assert_eq!(end % 86_400, 14 * 3600 + 59 * 60 + 59, "notAfter at 14:59:59Z");
            assert!(crate::pki::issued_by(root, root));
        }
        assert!(crate::pki::issued_by(&m.cmp_signer.cert, &m.sign_ca.cert));
        assert!(crate::pki::issued_by(&m.ra_cert, &m.tls_ca.cert));
        assert_ne!(m.redacted_ref("resident", "R-1"), m.redacted_ref("card", "R-1"));
    }
}
