//! CMP message protection (RFC 4210 §5.1.3): PasswordBasedMac with a shared secret, and
//! sha256WithRSAEncryption signatures by a certificate sent in extraCerts.
//!
//! [`protect`] fills in protectionAlg, senderKID and extraCerts and computes the protection
//! over `ProtectedPart`; [`verify_mac`] and [`verify_signature`] check a received message.
//! Deciding *whom* to trust (the RA trust list, the PBM reference) is the caller's job.
//! Secrets are held in `Zeroizing` buffers and never appear in `Debug` output or errors.

use core::fmt;

use const_oid::ObjectIdentifier;
use crmf::pop::PbmParameter;
use der::asn1::{Any, BitString, OctetString};
use der::{Decode, Encode};
use hmac::{Hmac, Mac};
use rand_core::RngCore;
use rsa::RsaPrivateKey;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::message::Message;
use super::{issued_by, sha256_with_rsa, subject_key_id, verify_sha256, PkiError, Sha256Signer};
use super::SHA256_WITH_RSA;

/// `PasswordBasedMac` (RFC 4211 §4.4).
pub const PASSWORD_BASED_MAC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113533.7.66.13");
/// `hmac-sha1` (RFC 2104 / RFC 3370 §3.1): OpenSSL 3.0's default PBM MAC.
pub const HMAC_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.8.1.2");
/// `id-hmacWithSHA256` (RFC 4231).
pub const HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
/// `id-sha256`.
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `id-sha1`.
pub const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// Iterations used when we MAC-protect (OpenSSL's default).
const PBM_ITERATIONS: u64 = 500;
/// Upper bound accepted from a peer: each iteration costs a hash, so an unbounded count is
/// a denial-of-service lever.
const PBM_MAX_ITERATIONS: u64 = 10_000;

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

/// Why a received message's protection was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtectionError {
    /// The message carries no protection (or no protectionAlg).
    #[error("message is not protected")]
    Missing,
    /// The protectionAlg, OWF or MAC algorithm is not one we support.
    #[error("unsupported protection algorithm")]
    UnsupportedAlgorithm,
    /// PBM parameters are absent, malformed or out of bounds.
    #[error("bad PBM parameters")]
    BadParameters,
    /// The MAC does not match: wrong secret or a modified message.
    #[error("MAC does not verify")]
    BadMac,
    /// No usable signer certificate in extraCerts.
    #[error("no signer certificate in extraCerts")]
    NoSignerCert,
    /// The signer certificate does not chain to a trusted certificate, or is out of date.
    #[error("signer certificate is not trusted")]
    UntrustedSigner,
    /// The signature does not verify: wrong key or a modified message.
    #[error("signature does not verify")]
    BadSignature,
    /// The message could not be re-encoded.
    #[error("message cannot be encoded")]
    Encoding,
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

fn owf(alg: ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    match alg {
        SHA256 => Some(Sha256::digest(data).to_vec()),
        SHA1 => Some(Sha1::digest(data).to_vec()),
        _ => None,
    }
}

fn pbm_mac(
    params: &PbmParameter,
    secret: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, ProtectionError> {
    if params.iteration_count == 0 || params.iteration_count > PBM_MAX_ITERATIONS {
        return Err(ProtectionError::BadParameters);
    }
    // RFC 4211 §4.4: BASEKEY = OWF(password || salt), then OWF applied iterationCount-1
    // more times; the MAC key is the final value.
    let mut input = Zeroizing::new(secret.to_vec());
    input.extend_from_slice(params.salt.as_bytes());
    let mut key = Zeroizing::new(
        owf(params.owf.oid, &input).ok_or(ProtectionError::UnsupportedAlgorithm)?,
    );
    for _ in 1..params.iteration_count {
        key = Zeroizing::new(owf(params.owf.oid, &key).ok_or(ProtectionError::UnsupportedAlgorithm)?);
    }
    let mac = match params.mac.oid {
        HMAC_SHA1 => {
            let mut m = Hmac::<Sha1>::new_from_slice(&key).map_err(|_| ProtectionError::BadParameters)?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        HMAC_SHA256 => {
            let mut m =
                Hmac::<Sha256>::new_from_slice(&key).map_err(|_| ProtectionError::BadParameters)?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        _ => return Err(ProtectionError::UnsupportedAlgorithm),
    };
    Ok(mac)
}

fn alg(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters: None }
}

/// Protects `msg` in place: sets protectionAlg, senderKID and (for signatures) extraCerts,
/// then computes the protection over `ProtectedPart`.
pub fn protect(msg: &mut Message<'_>, p: &Protector) -> Result<(), PkiError> {
    match p {
        Protector::Mac { reference, secret } => {
            let mut salt = [0u8; 16];
            rand_core::OsRng.fill_bytes(&mut salt);
            let params = PbmParameter {
                salt: OctetString::new(salt.to_vec())?,
                owf: alg(SHA256),
                iteration_count: PBM_ITERATIONS,
                mac: alg(HMAC_SHA256),
            };
            msg.header.protection_alg = Some(AlgorithmIdentifierOwned {
                oid: PASSWORD_BASED_MAC,
                parameters: Some(Any::encode_from(&params)?),
            });
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

/// Verifies PasswordBasedMac protection with `secret` (HMAC-SHA1 or HMAC-SHA256 over a
/// SHA-256 or SHA-1 OWF). The caller checks that senderKID names that secret.
pub fn verify_mac(msg: &Message<'_>, secret: &[u8]) -> Result<(), ProtectionError> {
    let (Some(alg), Some(prot)) = (&msg.header.protection_alg, &msg.protection) else {
        return Err(ProtectionError::Missing);
    };
    if alg.oid != PASSWORD_BASED_MAC {
        return Err(ProtectionError::UnsupportedAlgorithm);
    }
    let params = alg
        .parameters
        .as_ref()
        .ok_or(ProtectionError::BadParameters)?
        .to_der()
        .ok()
        .and_then(|d| PbmParameter::from_der(&d).ok())
        .ok_or(ProtectionError::BadParameters)?;
    let data = msg.protected_part_der().map_err(|_| ProtectionError::Encoding)?;
    let expected = pbm_mac(&params, secret, &data)?;
    let got = prot.as_bytes().ok_or(ProtectionError::BadMac)?;
    // Compare without an early exit, so timing does not reveal how many bytes matched.
    if got.len() != expected.len()
        || got.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0
    {
        return Err(ProtectionError::BadMac);
    }
    Ok(())
}

fn time_ok(cert: &Certificate) -> bool {
    let now = std::time::SystemTime::now();
    let v = &cert.tbs_certificate.validity;
    v.not_before.to_system_time() <= now && now <= v.not_after.to_system_time()
}

/// Verifies signature protection and returns the signer certificate.
///
/// The signer is the extraCerts certificate whose SKI equals senderKID (or the first one
/// when senderKID is absent). It must be one of `trusted` or be issued by one of them, and
/// be within its validity period.
pub fn verify_signature(
    msg: &Message<'_>,
    trusted: &[Certificate],
) -> Result<Certificate, ProtectionError> {
    let (Some(alg), Some(prot)) = (&msg.header.protection_alg, &msg.protection) else {
        return Err(ProtectionError::Missing);
    };
    if alg.oid != SHA256_WITH_RSA {
        return Err(ProtectionError::UnsupportedAlgorithm);
    }
    let extra = msg.extra_certs.as_deref().unwrap_or_default();
    let signer = match &msg.header.sender_kid {
        Some(kid) => extra.iter().find(|c| subject_key_id(c) == kid.as_bytes()),
        None => extra.first(),
    }
    .ok_or(ProtectionError::NoSignerCert)?;
    let chains = trusted.iter().any(|t| t == signer || issued_by(signer, t));
    if !chains || !time_ok(signer) {
        return Err(ProtectionError::UntrustedSigner);
    }
    let data = msg.protected_part_der().map_err(|_| ProtectionError::Encoding)?;
    let sig = prot.as_bytes().ok_or(ProtectionError::BadSignature)?;
    if !verify_sha256(&signer.tbs_certificate.subject_public_key_info, &data, sig) {
        return Err(ProtectionError::BadSignature);
    }
    Ok(signer.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::message::{new_header, random_nonce, Body};
    use crate::pki::{sign_sha256, test_keys};
    use cmpv2::body::PkiBody;
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
            body: Body::Cmp(PkiBody::PkiConf(der::asn1::Null)),
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

    #[test]
    fn mac_protection_round_trip_and_tamper() {
        let p = Protector::Mac { reference: b"ref".to_vec(), secret: Zeroizing::new(b"s3cret".to_vec()) };
        let mut msg = message();
        protect(&mut msg, &p).unwrap();
        assert_eq!(protection_kind(&msg), ProtectionKind::Mac);
        let der = msg.to_der().unwrap();
        let back = Message::from_der(&der).unwrap();
        verify_mac(&back, b"s3cret").unwrap();
        assert_eq!(verify_mac(&back, b"wrong"), Err(ProtectionError::BadMac));
        let mut tampered = back.clone();
        tampered.header.trans_id = Some(random_nonce());
        assert_eq!(verify_mac(&tampered, b"s3cret"), Err(ProtectionError::BadMac));
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn hmac_sha1_pbm_is_accepted() {
        // OpenSSL 3.0's default parameters: OWF SHA-256, MAC HMAC-SHA1, 500 iterations.
        let params = PbmParameter {
            salt: OctetString::new(vec![1u8; 16]).unwrap(),
            owf: alg(SHA256),
            iteration_count: 500,
            mac: alg(HMAC_SHA1),
        };
        let mut msg = message();
        msg.header.protection_alg = Some(AlgorithmIdentifierOwned {
            oid: PASSWORD_BASED_MAC,
            parameters: Some(Any::encode_from(&params).unwrap()),
        });
        let mac = pbm_mac(&params, b"pw", &msg.protected_part_der().unwrap()).unwrap();
        assert_eq!(mac.len(), 20);
        msg.protection = Some(BitString::from_bytes(&mac).unwrap());
        verify_mac(&msg, b"pw").unwrap();
    }

    #[test]
    fn signature_protection_round_trip_and_trust() {
        let key = test_keys::key();
        let cert = self_signed(key);
        let p = Protector::Signature { key: key.clone(), cert: cert.clone(), chain: vec![] };
        let mut msg = message();
        protect(&mut msg, &p).unwrap();
        let der = msg.to_der().unwrap();
        let back = Message::from_der(&der).unwrap();
        assert_eq!(verify_signature(&back, &[cert.clone()]).unwrap(), cert);
        assert_eq!(verify_signature(&back, &[]), Err(ProtectionError::UntrustedSigner));
        let mut tampered = back.clone();
        tampered.header.sender_nonce = Some(random_nonce());
        assert_eq!(
            verify_signature(&tampered, &[cert.clone()]),
            Err(ProtectionError::BadSignature)
        );
        assert_eq!(verify_mac(&back, b"x"), Err(ProtectionError::UnsupportedAlgorithm));
    }
}
