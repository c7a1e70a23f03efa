//! The kiosk's side of CMP protection (RFC 4210 §5.1.3): the credential it protects
//! requests with (RA signature, or PasswordBasedMac with the shared secret for initial
//! enrolment), and the trust a response's protection is checked against (a signer chaining
//! to the configured CMP-signer trust and carrying a CMP-responder EKU, or the same MAC).
//!
//! The PasswordBasedMac itself, the error type and the message layer are shared with the
//! CA in [`crate::pki`]; protection is computed over `ProtectedPart` as sent and verified
//! over the bytes as received ([`crate::pki::message::Received`]). No I/O.

use std::fmt;
use std::time::SystemTime;

use der::asn1::OctetString;
use der::oid::ObjectIdentifier;
use der::Decode;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::RsaPrivateKey;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::chain::{self, ChainError};
use crate::pki::protection::{
    pbm_algorithm, pbm_mac, pbm_params, verify_pbm, PbmPolicy, PASSWORD_BASED_MAC,
};
pub use crate::pki::protection::ProtectionError;
use crate::pki::{sha256_with_rsa, SHA256_WITH_RSA, SHA384_WITH_RSA, SHA512_WITH_RSA};

const SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// id-kp-cmcCA and id-kp-cmcRA (RFC 6402): the EKUs of a CMP responder (RFC 9483 §3.1).
const CMC_CA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.27");
const CMC_RA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.28");

/// Iterations we use when sending a MAC-protected request.
const PBM_ITERATIONS: u64 = 1_000;
/// PBM parameters accepted on a response: at most OpenSSL's own limit of iterations (a
/// bigger count would let a peer make the kiosk spin), HMAC-SHA1 under either OID.
const PBM_POLICY: PbmPolicy = PbmPolicy { max_iterations: 100_000, hmac_sha1_rsadsi: true };

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
        Credential::Mac { reference, .. } => Ok(HeaderFields {
            alg: pbm_algorithm(salt, PBM_ITERATIONS)?,
            sender_kid: Some(OctetString::new(reference.clone())?),
            extra_certs: Vec::new(),
        }),
        Credential::Signature { cert, chain, .. } => {
            let mut extra = vec![(**cert).clone()];
            extra.extend(chain.iter().cloned());
            Ok(HeaderFields {
                alg: sha256_with_rsa(),
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
        Credential::Mac { secret, .. } => pbm_mac(&pbm_params(alg, &PBM_POLICY)?, secret, protected_part),
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
            verify_pbm(alg, secret, protection, protected_part, &PBM_POLICY)?;
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
                .map_err(|e| ProtectionError::SignerNotTrusted(e.to_string()))?;
            // A pinned signer (itself an anchor) needs nothing more; one merely
            // issued by a trusted root must say it is a CMP responder, or any
            // certificate of that root (a resident's) could sign responses.
            if !path.is_empty() && !is_cmp_responder(signer) {
                return Err(ProtectionError::SignerNotAuthorized);
            }
            chain::verify_rsa(signer, &alg.oid, protected_part, protection).map_err(
                |e| match e {
                    ChainError::BadSignature => ProtectionError::BadSignature,
                    other => ProtectionError::SignerNotTrusted(other.to_string()),
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
