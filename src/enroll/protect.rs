//! CMP message protection as the kiosk's client needs it (RFC 4210 §5.1.3):
//! computing it on requests (RA signature, or PasswordBasedMac with the shared
//! secret for initial enrolment) and verifying it on responses (signature by a
//! certificate chaining to the configured CMP-signer trust, or the same MAC).
//!
//! Protection is always computed over the exact `ProtectedPart` bytes (see
//! [`super::wire::RawMessage`]). This module is the client's own: it works on
//! raw header/body TLVs, so it can be swapped for a shared implementation
//! without touching message building. It does no I/O.

use std::fmt;
use std::time::SystemTime;

use der::asn1::{Any, OctetString};
use der::oid::ObjectIdentifier;
use der::Decode;
use hmac::{Hmac, Mac};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::RsaPrivateKey;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::chain::{self, ChainError};

/// id-PasswordBasedMac (RFC 4210 §5.1.3.1).
pub const PASSWORD_BASED_MAC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113533.7.66.13");
/// sha256WithRSAEncryption.
pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// hmac-sha1 as OpenSSL's PBM writes it (RFC 2404 / RFC 4210).
const HMAC_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.8.1.2");
const HMAC_SHA1_RSADSI: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.7");
const HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
const SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// id-kp-cmcCA and id-kp-cmcRA (RFC 6402): the EKUs of a CMP responder (RFC 9483 §3.1).
const CMC_CA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.27");
const CMC_RA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.28");

/// Iterations we use when sending a MAC-protected request.
const PBM_ITERATIONS: u64 = 1_000;
/// Largest iteration count accepted on a response (OpenSSL's own limit); a
/// bigger one would let a peer make the kiosk spin.
const PBM_MAX_ITERATIONS: u64 = 100_000;

/// How the kiosk protects its requests.
#[non_exhaustive]
pub enum Credential {
    /// PasswordBasedMac with a reference (senderKID) and shared secret, as
    /// issued out of band for initial enrolment.
    Mac {
        /// The reference the CA knows the secret by.
        reference: Vec<u8>,
        /// The shared secret.
        secret: Zeroizing<Vec<u8>>,
    },
    /// sha256WithRSAEncryption by the kiosk's RA certificate.
    Signature {
        /// The RA private key.
        key: RaKey,
        /// The RA certificate (sent first in extraCerts).
        cert: Box<Certificate>,
        /// Intermediates between the RA certificate and its root.
        chain: Vec<Certificate>,
    },
}

/// The RA's RSA private key, prepared for signing (RSA-2048 or larger).
pub struct RaKey(Box<ring::rsa::KeyPair>);

impl RaKey {
    /// From an `rsa` key (must be at least 2048 bits).
    pub fn from_rsa(key: &RsaPrivateKey) -> Result<Self, ProtectionError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| ProtectionError::Malformed(e.to_string()))?;
        Self::from_pkcs8_der(der.as_bytes())
    }

    /// From a PKCS#8 PEM file's contents (as `jpki-ca` writes `ra.key`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, ProtectionError> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| ProtectionError::Malformed(e.to_string()))?;
        Self::from_rsa(&key)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, ProtectionError> {
        ring::rsa::KeyPair::from_pkcs8(der)
            .map(|k| RaKey(Box::new(k)))
            .map_err(|e| ProtectionError::Malformed(format!("RA key: {e}")))
    }

    fn sign_sha256(&self, data: &[u8]) -> Result<Vec<u8>, ProtectionError> {
        let mut sig = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                data,
                &mut sig,
            )
            .map_err(|_| ProtectionError::Malformed("RA signature failed".into()))?;
        Ok(sig)
    }
}

impl fmt::Debug for RaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaKey(<redacted>)")
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Mac { reference, .. } => f
                .debug_struct("Mac")
                .field("reference", &String::from_utf8_lossy(reference))
                .field("secret", &"<redacted>")
                .finish(),
            Credential::Signature { cert, .. } => f
                .debug_struct("Signature")
                .field("cert", &cert.tbs_certificate.subject.to_string())
                .field("key", &"<redacted>")
                .finish(),
        }
    }
}

/// What a response's protection is checked against.
#[derive(Default)]
pub struct ResponseTrust {
    /// Trust anchors for the certificate that signs CMP responses (the CA's
    /// roots, or the pinned CMP-signer certificate itself).
    pub signer_anchors: Vec<Certificate>,
    /// Shared secret for MAC-protected responses, if MAC is allowed.
    pub mac_secret: Option<Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for ResponseTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseTrust")
            .field("signer_anchors", &self.signer_anchors.len())
            .field(
                "mac_secret",
                &self.mac_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a response's protection was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectionError {
    /// The message carries no protection (or no protectionAlg).
    #[error("response is not protected")]
    Missing,
    /// protectionAlg (or a PBM owf/mac) is not one we implement.
    #[error("unsupported protection algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// MAC-protected, but the kiosk has no shared secret configured.
    #[error("MAC-protected response but no shared secret configured")]
    NoSecret,
    /// The MAC does not match: wrong secret, or the message was altered.
    #[error("MAC does not verify")]
    MacMismatch,
    /// The PBM iteration count is outside 1..=100000.
    #[error("PBM iteration count {0} refused")]
    IterationCount(u64),
    /// Signature-protected but no certificate in extraCerts.
    #[error("no signer certificate in extraCerts")]
    NoSignerCertificate,
    /// The signer certificate does not chain to the configured trust.
    #[error("signer not trusted: {0}")]
    SignerNotTrusted(ChainError),
    /// The signer chains to a trusted root but is not a CMP responder (no
    /// id-kp-cmcCA/cmcRA): e.g. a resident's certificate from the same CA.
    #[error("signer certificate is not a CMP responder")]
    SignerNotAuthorized,
    /// The signature over the message does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A parameter did not decode.
    #[error("malformed protection parameters: {0}")]
    Malformed(String),
}

/// The header fields a credential puts in a request.
pub struct HeaderFields {
    /// protectionAlg.
    pub alg: AlgorithmIdentifierOwned,
    /// senderKID.
    pub sender_kid: Option<OctetString>,
    /// extraCerts.
    pub extra_certs: Vec<Certificate>,
}

/// The subjectKeyIdentifier of a certificate, if it has one.
pub fn subject_key_id(cert: &Certificate) -> Option<Vec<u8>> {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == SKI)
        .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
        .map(|ski| ski.0.as_bytes().to_vec())
}

/// Header fields for a request protected with `cred`; `salt` feeds the PBM
/// salt, so a retried request (same salt) is byte-identical.
pub fn header_fields(cred: &Credential, salt: &[u8; 16]) -> Result<HeaderFields, der::Error> {
    match cred {
        Credential::Mac { reference, .. } => {
            let params = cmpv2::parameter::PbmParameter {
                salt: OctetString::new(salt.to_vec())?,
                owf: AlgorithmIdentifierOwned {
                    oid: ID_SHA256,
                    parameters: None,
                },
                iteration_count: PBM_ITERATIONS,
                mac: AlgorithmIdentifierOwned {
                    oid: HMAC_SHA256,
                    parameters: None,
                },
            };
            Ok(HeaderFields {
                alg: AlgorithmIdentifierOwned {
                    oid: PASSWORD_BASED_MAC,
                    parameters: Some(Any::encode_from(&params)?),
                },
                sender_kid: Some(OctetString::new(reference.clone())?),
                extra_certs: Vec::new(),
            })
        }
        Credential::Signature { cert, chain, .. } => {
            let mut extra = vec![(**cert).clone()];
            extra.extend(chain.iter().cloned());
            Ok(HeaderFields {
                alg: AlgorithmIdentifierOwned {
                    oid: SHA256_WITH_RSA,
                    parameters: Some(Any::from(der::asn1::Null)),
                },
                sender_kid: subject_key_id(cert).map(OctetString::new).transpose()?,
                extra_certs: extra,
            })
        }
    }
}

/// Compute the protection bits for `protected_part` (DER of ProtectedPart).
pub fn protect(
    cred: &Credential,
    alg: &AlgorithmIdentifierOwned,
    protected_part: &[u8],
) -> Result<Vec<u8>, ProtectionError> {
    match cred {
        Credential::Mac { secret, .. } => pbm(alg, secret, protected_part),
        Credential::Signature { key, .. } => key.sign_sha256(protected_part),
    }
}

/// Verify a response's protection. Returns the signer certificate for
/// signature protection, `None` for MAC.
pub fn verify(
    alg: Option<&AlgorithmIdentifierOwned>,
    sender_kid: Option<&OctetString>,
    protection: Option<&[u8]>,
    extra_certs: &[Certificate],
    protected_part: &[u8],
    trust: &ResponseTrust,
    now: SystemTime,
) -> Result<Option<Certificate>, ProtectionError> {
    let (Some(alg), Some(protection)) = (alg, protection) else {
        return Err(ProtectionError::Missing);
    };
    match alg.oid {
        PASSWORD_BASED_MAC => {
            let secret = trust.mac_secret.as_ref().ok_or(ProtectionError::NoSecret)?;
            let expected = pbm(alg, secret, protected_part)?;
            // Constant-time comparison through the hmac crate's verifier.
            let mut m = Hmac::<Sha256>::new_from_slice(&expected)
                .map_err(|_| ProtectionError::MacMismatch)?;
            m.update(b"cmp");
            let reference = m.finalize().into_bytes();
            let mut m = Hmac::<Sha256>::new_from_slice(protection)
                .map_err(|_| ProtectionError::MacMismatch)?;
            m.update(b"cmp");
            m.verify_slice(&reference)
                .map_err(|_| ProtectionError::MacMismatch)?;
            Ok(None)
        }
        SHA256_WITH_RSA | SHA384_WITH_RSA | SHA512_WITH_RSA => {
            let kid = sender_kid.map(|k| k.as_bytes());
            let signer = extra_certs
                .iter()
                .find(|c| kid.is_some() && subject_key_id(c).as_deref() == kid)
                .or_else(|| extra_certs.first())
                .ok_or(ProtectionError::NoSignerCertificate)?;
            let path = chain::chain_to_anchor(signer, extra_certs, &trust.signer_anchors, now)
                .map_err(ProtectionError::SignerNotTrusted)?;
            // A pinned signer (itself an anchor) needs nothing more; one merely
            // issued by a trusted root must say it is a CMP responder, or any
            // certificate of that root (a resident's) could sign responses.
            if !path.is_empty() && !is_cmp_responder(signer) {
                return Err(ProtectionError::SignerNotAuthorized);
            }
            chain::verify_rsa(signer, &alg.oid, protected_part, protection).map_err(
                |e| match e {
                    ChainError::BadSignature => ProtectionError::BadSignature,
                    other => ProtectionError::SignerNotTrusted(other),
                },
            )?;
            Ok(Some(signer.clone()))
        }
        other => Err(ProtectionError::UnsupportedAlgorithm(other.to_string())),
    }
}

fn is_cmp_responder(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == EXT_KEY_USAGE)
        .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .any(|eku| eku.0.iter().any(|o| *o == CMC_RA || *o == CMC_CA))
}

/// PasswordBasedMac (RFC 4211 §4.4): key = OWF^n(secret || salt), then MAC.
fn pbm(
    alg: &AlgorithmIdentifierOwned,
    secret: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, ProtectionError> {
    let params: cmpv2::parameter::PbmParameter = alg
        .parameters
        .as_ref()
        .ok_or_else(|| ProtectionError::Malformed("PBM without parameters".into()))?
        .decode_as()
        .map_err(|e| ProtectionError::Malformed(e.to_string()))?;
    let n = params.iteration_count;
    if n == 0 || n > PBM_MAX_ITERATIONS {
        return Err(ProtectionError::IterationCount(n));
    }
    let salt = params.salt.as_bytes();
    let key: Zeroizing<Vec<u8>> = match params.owf.oid {
        ID_SHA256 => Zeroizing::new(owf::<Sha256>(secret, salt, n)),
        ID_SHA1 => Zeroizing::new(owf::<Sha1>(secret, salt, n)),
        other => return Err(ProtectionError::UnsupportedAlgorithm(other.to_string())),
    };
    let tag = match params.mac.oid {
        HMAC_SHA256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(&key)
                .map_err(|e| ProtectionError::Malformed(e.to_string()))?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        HMAC_SHA1 | HMAC_SHA1_RSADSI => {
            let mut m = Hmac::<Sha1>::new_from_slice(&key)
                .map_err(|e| ProtectionError::Malformed(e.to_string()))?;
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        other => return Err(ProtectionError::UnsupportedAlgorithm(other.to_string())),
    };
    Ok(tag)
}

fn owf<D: Digest>(secret: &[u8], salt: &[u8], n: u64) -> Vec<u8> {
    let mut h = D::new();
    h.update(secret);
    h.update(salt);
    let mut key = h.finalize().to_vec();
    // The first of the n rounds is the one above.
    for _ in 1..n {
        key = D::digest(&key).to_vec();
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac_cred() -> Credential {
        Credential::Mac {
            reference: b"ra01".to_vec(),
            secret: Zeroizing::new(b"test123".to_vec()),
        }
    }

    #[test]
    fn mac_round_trip_and_tamper() {
        let cred = mac_cred();
        let hf = header_fields(&cred, &[7; 16]).unwrap();
        let tag = protect(&cred, &hf.alg, b"protected part").unwrap();
        let trust = ResponseTrust {
            mac_secret: Some(Zeroizing::new(b"test123".to_vec())),
            ..Default::default()
        };
        let now = SystemTime::now();
        assert_eq!(
            verify(
                Some(&hf.alg),
                None,
                Some(&tag),
                &[],
                b"protected part",
                &trust,
                now
            ),
            Ok(None)
        );
        assert_eq!(
            verify(
                Some(&hf.alg),
                None,
                Some(&tag),
                &[],
                b"protected parT",
                &trust,
                now
            ),
            Err(ProtectionError::MacMismatch)
        );
        let wrong = ResponseTrust {
            mac_secret: Some(Zeroizing::new(b"test124".to_vec())),
            ..Default::default()
        };
        assert_eq!(
            verify(
                Some(&hf.alg),
                None,
                Some(&tag),
                &[],
                b"protected part",
                &wrong,
                now
            ),
            Err(ProtectionError::MacMismatch)
        );
        assert_eq!(
            verify(
                Some(&hf.alg),
                None,
                None,
                &[],
                b"protected part",
                &trust,
                now
            ),
            Err(ProtectionError::Missing)
        );
    }

    #[test]
    fn pbm_matches_rfc_4211_definition() {
        // Independent computation: SHA-256 applied 1000 times, then HMAC-SHA256.
        let cred = mac_cred();
        let hf = header_fields(&cred, &[1; 16]).unwrap();
        let tag = protect(&cred, &hf.alg, b"x").unwrap();
        let mut k = Sha256::new()
            .chain_update(b"test123")
            .chain_update([1u8; 16])
            .finalize()
            .to_vec();
        for _ in 0..999 {
            k = Sha256::digest(&k).to_vec();
        }
        let mut m = Hmac::<Sha256>::new_from_slice(&k).unwrap();
        m.update(b"x");
        assert_eq!(tag, m.finalize().into_bytes().to_vec());
    }

    #[test]
    fn signature_verifies_only_for_trusted_signer() {
        use super::super::chain::tests::{root, small_key, TestRng};
        // The RA key must be RSA-2048 or larger.
        let key = RsaPrivateKey::new(&mut TestRng(11), 2048).unwrap();
        let cert = root(&key, "CMP signer");
        let cred = Credential::Signature {
            key: RaKey::from_rsa(&key).unwrap(),
            cert: Box::new(cert.clone()),
            chain: vec![],
        };
        let hf = header_fields(&cred, &[0; 16]).unwrap();
        let sig = protect(&cred, &hf.alg, b"body").unwrap();
        let now = SystemTime::now();
        let trusted = ResponseTrust {
            signer_anchors: vec![cert.clone()],
            mac_secret: None,
        };
        let got = verify(
            Some(&hf.alg),
            hf.sender_kid.as_ref(),
            Some(&sig),
            &hf.extra_certs,
            b"body",
            &trusted,
            now,
        );
        assert_eq!(got, Ok(Some(cert.clone())));
        assert_eq!(
            verify(
                Some(&hf.alg),
                None,
                Some(&sig),
                &hf.extra_certs,
                b"bodY",
                &trusted,
                now
            ),
            Err(ProtectionError::BadSignature)
        );
        let other = root(&small_key(12), "Other");
        let untrusted = ResponseTrust {
            signer_anchors: vec![other],
            mac_secret: None,
        };
        assert!(matches!(
            verify(
                Some(&hf.alg),
                None,
                Some(&sig),
                &hf.extra_certs,
                b"body",
                &untrusted,
                now
            ),
            Err(ProtectionError::SignerNotTrusted(_))
        ));
    }

    #[test]
    fn signer_issued_by_a_trusted_root_needs_the_cmp_responder_eku() {
        use super::super::chain::tests::{leaf, root, small_key, TestRng};
        let ca_key = small_key(13);
        let ca = root(&ca_key, "Pref CA");
        let resident_key = RsaPrivateKey::new(&mut TestRng(14), 2048).unwrap();
        // A resident's certificate from the same root: no cmcRA/cmcCA EKU.
        let resident = leaf(&ca_key, &ca, &resident_key.to_public_key(), "resident");
        let cred = Credential::Signature {
            key: RaKey::from_rsa(&resident_key).unwrap(),
            cert: Box::new(resident),
            chain: vec![],
        };
        let hf = header_fields(&cred, &[0; 16]).unwrap();
        let sig = protect(&cred, &hf.alg, b"body").unwrap();
        let trust = ResponseTrust {
            signer_anchors: vec![ca],
            mac_secret: None,
        };
        assert_eq!(
            verify(
                Some(&hf.alg),
                hf.sender_kid.as_ref(),
                Some(&sig),
                &hf.extra_certs,
                b"body",
                &trust,
                SystemTime::now()
            ),
            Err(ProtectionError::SignerNotAuthorized)
        );
    }

    #[test]
    fn small_ra_keys_are_refused() {
        use super::super::chain::tests::small_key;
        assert!(RaKey::from_rsa(&small_key(5)).is_err());
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = format!("{:?}", mac_cred());
        assert!(!s.contains("test123"), "{s}");
        assert!(s.contains("ra01"));
    }
}
