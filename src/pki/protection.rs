//! CMP message protection (RFC 4210 §5.1.3), for both ends: PasswordBasedMac with a shared
//! secret, and sha256WithRSAEncryption signatures by a certificate sent in extraCerts.
//!
//! [`pbm_algorithm`], [`pbm_params`] and [`pbm_mac`] are the one PasswordBasedMac
//! implementation; what a receiver accepts (iteration bound, MAC OIDs) is a [`PbmPolicy`]
//! chosen by the CA and by the client. [`protect`] fills in protectionAlg, senderKID and
//! extraCerts and computes the protection over `ProtectedPart`; [`verify_mac`] and
//! [`verify_signature`] check a [`Received`] message over the bytes as received. Deciding
//! *whom* to trust (the RA trust list, the PBM reference, the client's responder trust) is
//! the caller's job. Secrets are held in `Zeroizing` buffers and never appear in `Debug`
//! output or errors.

use core::fmt;

use const_oid::ObjectIdentifier;
use crmf::pop::PbmParameter;
use der::asn1::{Any, BitString, OctetString};
use hmac::{Hmac, Mac};
use rand_core::RngCore;
use rsa::RsaPrivateKey;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::message::{Message, Received};
use super::{issued_by, sha256_with_rsa, subject_key_id, verify_sha256, PkiError, Sha256Signer};
use super::SHA256_WITH_RSA;

/// `PasswordBasedMac` (RFC 4211 §4.4).
pub const PASSWORD_BASED_MAC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113533.7.66.13");
/// `hmac-sha1` (RFC 2104 / RFC 3370 §3.1): OpenSSL 3.0's default PBM MAC.
pub const HMAC_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.8.1.2");
/// `hmacWithSHA1` (RSADSI): the same MAC under PKCS#5's OID.
pub const HMAC_SHA1_RSADSI: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.7");
/// `id-hmacWithSHA256` (RFC 4231).
pub const HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
/// `id-sha256`.
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `id-sha1`.
pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// Iterations [`Protector::Mac`] uses (OpenSSL's default).
const PBM_ITERATIONS: u64 = 500;

/// What a receiver accepts in PasswordBasedMac parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PbmPolicy {
    /// Largest iterationCount accepted: each iteration costs a hash, so an unbounded count
    /// is a denial-of-service lever.
    pub max_iterations: u64,
    /// Whether HMAC-SHA1 may also be named by its RSADSI OID ([`HMAC_SHA1_RSADSI`]).
    pub hmac_sha1_rsadsi: bool,
}

/// How to protect an outgoing message.
// Built once per client or server and reused: the size of the key variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Protector {
    /// PasswordBasedMac with a shared secret; `reference` becomes the senderKID.
    Mac {
        /// The reference value (OpenSSL's `-ref`).
        reference: Vec<u8>,
        /// The shared secret (OpenSSL's `-secret`).
        secret: Zeroizing<Vec<u8>>,
    },
    /// A sha256WithRSAEncryption signature; the certificate goes first in extraCerts and its
    /// SKI becomes the senderKID.
    Signature {
        /// The signing key.
        key: RsaPrivateKey,
        /// The certificate of `key`.
        cert: Certificate,
        /// Certificates that chain `cert` to a root the peer trusts.
        chain: Vec<Certificate>,
    },
}

impl fmt::Debug for Protector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protector::Mac { .. } => f.write_str("Protector::Mac { <redacted> }"),
            Protector::Signature { .. } => f.write_str("Protector::Signature { <redacted> }"),
        }
    }
}

/// Why a message's protection could not be computed or was not accepted.
///
/// The texts are the kiosk's (they end up in its logs); the CA words the CMP errors it
/// sends itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectionError {
    /// The message carries no protection (or no protectionAlg).
    #[error("response is not protected")]
    Missing,
    /// protectionAlg (or a PBM owf/mac) is not one we implement.
    #[error("unsupported protection algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// MAC-protected, but no shared secret is configured.
    #[error("MAC-protected response but no shared secret configured")]
    NoSecret,
    /// The MAC does not match: wrong secret, or the message was altered.
    #[error("MAC does not verify")]
    MacMismatch,
    /// The PBM iteration count is outside what the receiver accepts.
    #[error("PBM iteration count {0} refused")]
    IterationCount(u64),
    /// Signature-protected but no (matching) certificate in extraCerts.
    #[error("no signer certificate in extraCerts")]
    NoSignerCertificate,
    /// The signer certificate does not chain to the configured trust, or is out of date.
    #[error("signer not trusted: {0}")]
    SignerNotTrusted(String),
    /// The signer chains to a trusted root but is not a CMP responder (no
    /// id-kp-cmcCA/cmcRA): e.g. a resident's certificate from the same CA.
    #[error("signer certificate is not a CMP responder")]
    SignerNotAuthorized,
    /// The signature over the message does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A parameter did not decode, or a key could not be used.
    #[error("malformed protection parameters: {0}")]
    Malformed(String),
}

/// Which kind of protection a message claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtectionKind {
    /// No protection.
    None,
    /// PasswordBasedMac.
    Mac,
    /// A signature (sha256WithRSAEncryption).
    Signature,
    /// Anything else.
    Unsupported,
}

/// Classifies the protection a message claims (before verifying it).
pub fn protection_kind(msg: &Message<'_>) -> ProtectionKind {
    match (&msg.header.protection_alg, &msg.protection) {
        (None, _) | (_, None) => ProtectionKind::None,
        (Some(alg), Some(_)) if alg.oid == PASSWORD_BASED_MAC => ProtectionKind::Mac,
        (Some(alg), Some(_)) if alg.oid == SHA256_WITH_RSA => ProtectionKind::Signature,
        _ => ProtectionKind::Unsupported,
    }
}

/// The PasswordBasedMac protectionAlg we send: OWF SHA-256, HMAC-SHA256, `salt`,
/// `iterations`.
pub fn pbm_algorithm(salt: &[u8], iterations: u64) -> der::Result<AlgorithmIdentifierOwned> {
    let params = PbmParameter {
        salt: OctetString::new(salt.to_vec())?,
        owf: AlgorithmIdentifierOwned { oid: SHA256, parameters: None },
        iteration_count: iterations,
        mac: AlgorithmIdentifierOwned { oid: HMAC_SHA256, parameters: None },
    };
    Ok(AlgorithmIdentifierOwned { oid: PASSWORD_BASED_MAC, parameters: Some(Any::encode_from(&params)?) })
}

/// The PBM parameters of a PasswordBasedMac protectionAlg, if `policy` accepts them.
pub fn pbm_params(alg: &AlgorithmIdentifierOwned, policy: &PbmPolicy) -> Result<PbmParameter, ProtectionError> {
    let params: PbmParameter = alg
        .parameters
        .as_ref()
        .ok_or_else(|| ProtectionError::Malformed("PBM without parameters".into()))?
        .decode_as()
        .map_err(|e| ProtectionError::Malformed(e.to_string()))?;
    let n = params.iteration_count;
    if n == 0 || n > policy.max_iterations {
        return Err(ProtectionError::IterationCount(n));
    }
    if params.mac.oid == HMAC_SHA1_RSADSI && !policy.hmac_sha1_rsadsi {
        return Err(ProtectionError::UnsupportedAlgorithm(params.mac.oid.to_string()));
    }
    Ok(params)
}

/// PasswordBasedMac (RFC 4211 §4.4) of `data`: BASEKEY = OWF(secret || salt), then OWF
/// applied iterationCount-1 more times; the MAC key is the final value.
pub fn pbm_mac(params: &PbmParameter, secret: &[u8], data: &[u8]) -> Result<Vec<u8>, ProtectionError> {
    let (n, salt) = (params.iteration_count, params.salt.as_bytes());
    let key = match params.owf.oid {
        SHA256 => owf::<Sha256>(secret, salt, n),
        SHA1 => owf::<Sha1>(secret, salt, n),
        other => return Err(ProtectionError::UnsupportedAlgorithm(other.to_string())),
    };
    let malformed = |e: hmac::digest::InvalidLength| ProtectionError::Malformed(e.to_string());
    let tag = match params.mac.oid {
        HMAC_SHA256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(&key).map_err(malformed)?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        HMAC_SHA1 | HMAC_SHA1_RSADSI => {
            let mut m = Hmac::<Sha1>::new_from_slice(&key).map_err(malformed)?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        other => return Err(ProtectionError::UnsupportedAlgorithm(other.to_string())),
    };
    Ok(tag)
}

fn owf<D: Digest>(secret: &[u8], salt: &[u8], n: u64) -> Zeroizing<Vec<u8>> {
    let mut h = D::new();
    h.update(secret);
    h.update(salt);
    let mut key = Zeroizing::new(h.finalize().to_vec());
    // The first of the n rounds is the one above.
    for _ in 1..n {
        key = Zeroizing::new(D::digest(&*key).to_vec());
    }
    key
}

/// Verifies PasswordBasedMac `protection` over `protected_part` with `secret`.
pub fn verify_pbm(
    alg: &AlgorithmIdentifierOwned,
    secret: &[u8],
    protection: &[u8],
    protected_part: &[u8],
    policy: &PbmPolicy,
) -> Result<(), ProtectionError> {
    let params = pbm_params(alg, policy)?;
    let expected = pbm_mac(&params, secret, protected_part)?;
    // Compare without an early exit, so timing does not reveal how many bytes matched.
    if protection.len() != expected.len()
        || protection.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0
    {
        return Err(ProtectionError::MacMismatch);
    }
    Ok(())
}

/// Protects `msg` in place: sets protectionAlg, senderKID and (for signatures) extraCerts,
/// then computes the protection over `ProtectedPart`.
pub fn protect(msg: &mut Message<'_>, p: &Protector) -> Result<(), PkiError> {
    match p {
        Protector::Mac { reference, secret } => {
            let mut salt = [0u8; 16];
            rand_core::OsRng.fill_bytes(&mut salt);
            let alg = pbm_algorithm(&salt, PBM_ITERATIONS)?;
            let params: PbmParameter = alg.parameters.as_ref().expect("just set").decode_as()?;
            msg.header.protection_alg = Some(alg);
            msg.header.sender_kid = Some(OctetString::new(reference.clone())?);
            let data = msg.protected_part_der()?;
            let mac = pbm_mac(&params, secret, &data).map_err(|_| PkiError::Sign)?;
            msg.protection = Some(BitString::from_bytes(&mac)?);
        }
        Protector::Signature { key, cert, chain } => protect_signed(msg, key, cert, chain)?,
    }
    Ok(())
}

/// Signature protection with any [`Sha256Signer`]: sets protectionAlg, senderKID (the SKI
/// of `cert`) and extraCerts (`cert`, then `chain`), then signs `ProtectedPart`.
pub fn protect_signed(
    msg: &mut Message<'_>,
    signer: &dyn Sha256Signer,
    cert: &Certificate,
    chain: &[Certificate],
) -> Result<(), PkiError> {
    msg.header.protection_alg = Some(sha256_with_rsa());
    msg.header.sender_kid = Some(OctetString::new(subject_key_id(cert))?);
    let mut extra = vec![cert.clone()];
    extra.extend(chain.iter().cloned());
    msg.extra_certs = Some(extra);
    let data = msg.protected_part_der()?;
    msg.protection = Some(signer.sign_sha256(&data)?);
    Ok(())
}

fn alg_and_protection<'m>(msg: &'m Message<'_>) -> Result<(&'m AlgorithmIdentifierOwned, &'m BitString), ProtectionError> {
    match (&msg.header.protection_alg, &msg.protection) {
        (Some(alg), Some(prot)) => Ok((alg, prot)),
        _ => Err(ProtectionError::Missing),
    }
}

/// Verifies PasswordBasedMac protection with `secret` over the received bytes. The caller
/// checks that senderKID names that secret.
pub fn verify_mac(rx: &Received<'_>, secret: &[u8], policy: &PbmPolicy) -> Result<(), ProtectionError> {
    let (alg, prot) = alg_and_protection(&rx.message)?;
    if alg.oid != PASSWORD_BASED_MAC {
        return Err(ProtectionError::UnsupportedAlgorithm(alg.oid.to_string()));
    }
    let got = prot.as_bytes().ok_or(ProtectionError::MacMismatch)?;
    verify_pbm(alg, secret, got, &rx.protected_part, policy)
}

fn time_ok(cert: &Certificate) -> bool {
    let now = std::time::SystemTime::now();
    let v = &cert.tbs_certificate.validity;
    v.not_before.to_system_time() <= now && now <= v.not_after.to_system_time()
}

/// Verifies sha256WithRSAEncryption protection over the received bytes and returns the
/// signer certificate.
///
/// The signer is the extraCerts certificate whose SKI equals senderKID (or the first one
/// when senderKID is absent). It must be one of `trusted` or be issued by one of them, and
/// be within its validity period.
pub fn verify_signature(rx: &Received<'_>, trusted: &[Certificate]) -> Result<Certificate, ProtectionError> {
    let msg = &rx.message;
    let (alg, prot) = alg_and_protection(msg)?;
    if alg.oid != SHA256_WITH_RSA {
        return Err(ProtectionError::UnsupportedAlgorithm(alg.oid.to_string()));
    }
    let extra = msg.extra_certs.as_deref().unwrap_or_default();
    let signer = match &msg.header.sender_kid {
        Some(kid) => extra.iter().find(|c| subject_key_id(c) == kid.as_bytes()),
        None => extra.first(),
    }
    .ok_or(ProtectionError::NoSignerCertificate)?;
    if !trusted.iter().any(|t| t == signer || issued_by(signer, t)) {
        return Err(ProtectionError::SignerNotTrusted("not issued by a trusted certificate".into()));
    }
    if !time_ok(signer) {
        return Err(ProtectionError::SignerNotTrusted("outside its validity period".into()));
    }
    let sig = prot.as_bytes().ok_or(ProtectionError::BadSignature)?;
    if !verify_sha256(&signer.tbs_certificate.subject_public_key_info, &rx.protected_part, sig) {
        return Err(ProtectionError::BadSignature);
    }
    Ok(signer.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::message::{new_header, random_nonce, Body};
    use der::Encode;
    use crate::pki::{sign_sha256, test_keys};
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;
    use x509_cert::{TbsCertificate, Version};
    use std::str::FromStr;

    fn message() -> Message<'static> {
        let n = GeneralName::DirectoryName(Name::from_str("CN=test").unwrap());
        Message {
            header: new_header(n.clone(), n, random_nonce(), None),
            body: Body::PkiConf(der::asn1::Null),
            protection: None,
            extra_certs: None,
        }
    }

    fn self_signed(key: &RsaPrivateKey) -> Certificate {
        let name = Name::from_str("CN=signer").unwrap();
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::from(7u32),
            signature: sha256_with_rsa(),
            issuer: name.clone(),
            validity: Validity::from_now(std::time::Duration::from_secs(3600)).unwrap(),
            subject: name,
            subject_public_key_info: SubjectPublicKeyInfoOwned::from_key(key.to_public_key())
                .unwrap(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: None,
        };
        let sig = sign_sha256(key, &tbs.to_der().unwrap()).unwrap();
        Certificate { tbs_certificate: tbs, signature_algorithm: sha256_with_rsa(), signature: sig }
    }

    const POLICY: PbmPolicy = PbmPolicy { max_iterations: 10_000, hmac_sha1_rsadsi: false };

    fn alg(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned { oid, parameters: None }
    }

    /// `msg` encoded, with its header changed by `edit` after protection was computed.
    fn tampered(msg: &Message<'_>, edit: impl FnOnce(&mut Message<'_>)) -> Vec<u8> {
        let mut m = msg.clone();
        edit(&mut m);
        m.to_der().unwrap()
    }

    #[test]
    fn mac_protection_round_trip_and_tamper() {
        let p = Protector::Mac { reference: b"ref".to_vec(), secret: Zeroizing::new(b"s3cret".to_vec()) };
        let mut msg = message();
        protect(&mut msg, &p).unwrap();
        assert_eq!(protection_kind(&msg), ProtectionKind::Mac);
        let der = msg.to_der().unwrap();
        let back = Received::from_der(&der).unwrap();
        verify_mac(&back, b"s3cret", &POLICY).unwrap();
        assert_eq!(verify_mac(&back, b"wrong", &POLICY), Err(ProtectionError::MacMismatch));
        let der = tampered(&msg, |m| m.header.trans_id = Some(random_nonce()));
        assert_eq!(verify_mac(&Received::from_der(&der).unwrap(), b"s3cret", &POLICY), Err(ProtectionError::MacMismatch));
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn pbm_matches_rfc_4211_definition_and_policy_bounds_it() {
        // Independent computation: SHA-256 applied 1000 times, then HMAC-SHA256.
        let alg = pbm_algorithm(&[1; 16], 1000).unwrap();
        let params = pbm_params(&alg, &PbmPolicy { max_iterations: 1000, hmac_sha1_rsadsi: false }).unwrap();
        let tag = pbm_mac(&params, b"test123", b"x").unwrap();
        let mut k = Sha256::new().chain_update(b"test123").chain_update([1u8; 16]).finalize().to_vec();
        for _ in 0..999 {
            k = Sha256::digest(&k).to_vec();
        }
        let mut m = Hmac::<Sha256>::new_from_slice(&k).unwrap();
        m.update(b"x");
        assert_eq!(tag, m.finalize().into_bytes().to_vec());
        let strict = PbmPolicy { max_iterations: 999, hmac_sha1_rsadsi: false };
        assert_eq!(pbm_params(&alg, &strict).unwrap_err(), ProtectionError::IterationCount(1000));
        assert_eq!(verify_pbm(&alg, b"test123", &tag, b"x", &strict), Err(ProtectionError::IterationCount(1000)));
    }

    #[test]
    fn hmac_sha1_pbm_is_accepted_and_its_rsadsi_oid_only_by_policy() {
        // OpenSSL 3.0's default parameters: OWF SHA-256, MAC HMAC-SHA1, 500 iterations.
        for (mac_oid, rsadsi_ok) in [(HMAC_SHA1, false), (HMAC_SHA1_RSADSI, true)] {
            let params = PbmParameter {
                salt: OctetString::new(vec![1u8; 16]).unwrap(),
                owf: alg(SHA256),
                iteration_count: 500,
                mac: alg(mac_oid),
            };
            let mut msg = message();
            msg.header.protection_alg = Some(AlgorithmIdentifierOwned {
                oid: PASSWORD_BASED_MAC,
                parameters: Some(Any::encode_from(&params).unwrap()),
            });
            let mac = pbm_mac(&params, b"pw", &msg.protected_part_der().unwrap()).unwrap();
            assert_eq!(mac.len(), 20);
            msg.protection = Some(BitString::from_bytes(&mac).unwrap());
            let der = msg.to_der().unwrap();
            let rx = Received::from_der(&der).unwrap();
            let policy = PbmPolicy { max_iterations: 500, hmac_sha1_rsadsi: rsadsi_ok };
            verify_mac(&rx, b"pw", &policy).unwrap();
            if rsadsi_ok {
                assert!(matches!(verify_mac(&rx, b"pw", &POLICY), Err(ProtectionError::UnsupportedAlgorithm(_))));
            }
        }
    }

    #[test]
    fn signature_protection_round_trip_and_trust() {
        let key = test_keys::key();
        let cert = self_signed(key);
        let p = Protector::Signature { key: key.clone(), cert: cert.clone(), chain: vec![] };
        let mut msg = message();
        protect(&mut msg, &p).unwrap();
        let der = msg.to_der().unwrap();
        let back = Received::from_der(&der).unwrap();
        assert_eq!(verify_signature(&back, &[cert.clone()]).unwrap(), cert);
        assert!(matches!(verify_signature(&back, &[]), Err(ProtectionError::SignerNotTrusted(_))));
        let der = tampered(&msg, |m| m.header.sender_nonce = Some(random_nonce()));
        assert_eq!(
            verify_signature(&Received::from_der(&der).unwrap(), &[cert.clone()]),
            Err(ProtectionError::BadSignature)
        );
        assert!(matches!(verify_mac(&back, b"x", &POLICY), Err(ProtectionError::UnsupportedAlgorithm(_))));
    }
}
