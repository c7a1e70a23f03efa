//! Certificate path checks the client makes on what the CA returns: signature
//! by the issuer (RSA PKCS#1 v1.5 with SHA-256/384/512), validity at an
//! injected time, CA flag on intermediates, and a bounded walk up to one of
//! the configured trust anchors.
//!
//! This is deliberately not a general RFC 5280 path validator (no name
//! constraints, policy processing or revocation): the kiosk only needs to know
//! that a certificate came from the prefectural CA it is configured for.

use std::time::SystemTime;

use der::{Decode, Encode};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;
use sha2::{Sha256, Sha384, Sha512};
use signature::Verifier;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

const SHA256_RSA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const BASIC_CONSTRAINTS: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.19");

/// Longest chain (leaf to anchor) the client will walk.
const MAX_DEPTH: usize = 4;

/// Why a certificate (or a signature by one) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// No anchor or intermediate has the issuer's name and a key that verifies
    /// the signature: a certificate from another CA, or a forged one.
    #[error("no trusted issuer for {subject}")]
    NoTrustedIssuer {
        /// Subject of the certificate that could not be placed.
        subject: String,
    },
    /// The signature algorithm is not RSA PKCS#1 v1.5 with SHA-2.
    #[error("unsupported signature algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The signature does not verify with the key it should.
    #[error("bad signature")]
    BadSignature,
    /// Outside notBefore..notAfter at the injected time (or the clock is wrong).
    #[error("certificate {subject} is not valid at this time")]
    OutsideValidity {
        /// Subject of the certificate.
        subject: String,
    },
    /// An intermediate without basicConstraints cA = TRUE.
    #[error("{subject} is not a CA certificate")]
    NotCa {
        /// Subject of the certificate.
        subject: String,
    },
    /// A key or field that does not decode.
    #[error("undecodable certificate field: {0}")]
    Malformed(String),
}

/// Verify `signature` over `message` with the RSA key in `signer`, using the
/// hash named by `alg` (a sha*WithRSAEncryption OID).
pub fn verify_rsa(
    signer: &Certificate,
    alg: &der::oid::ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), ChainError> {
    let spki = signer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| ChainError::Malformed(e.to_string()))?;
    let key = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| ChainError::Malformed(e.to_string()))?;
    let sig = Signature::try_from(signature).map_err(|_| ChainError::BadSignature)?;
    let ok = match *alg {
        SHA256_RSA => VerifyingKey::<Sha256>::new(key).verify(message, &sig),
        SHA384_RSA => VerifyingKey::<Sha384>::new(key).verify(message, &sig),
        SHA512_RSA => VerifyingKey::<Sha512>::new(key).verify(message, &sig),
        other => return Err(ChainError::UnsupportedAlgorithm(other.to_string())),
    };
    ok.map_err(|_| ChainError::BadSignature)
}

/// Is `cert` signed by `issuer` (names match and the signature verifies)?
pub fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), ChainError> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(ChainError::NoTrustedIssuer {
            subject: cert.tbs_certificate.subject.to_string(),
        });
    }
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| ChainError::Malformed(e.to_string()))?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| ChainError::Malformed("signature has unused bits".into()))?;
    verify_rsa(issuer, &cert.signature_algorithm.oid, &tbs, sig)
}

/// Is `now` inside the certificate's validity period?
pub fn check_validity(cert: &Certificate, now: SystemTime) -> Result<(), ChainError> {
    let v = &cert.tbs_certificate.validity;
    if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
        return Err(ChainError::OutsideValidity {
            subject: cert.tbs_certificate.subject.to_string(),
        });
    }
    Ok(())
}

fn is_ca(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == BASIC_CONSTRAINTS)
        .filter_map(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
        .any(|bc| bc.ca)
}

/// Walk from `leaf` through `pool` (untrusted intermediates) to one of
/// `anchors`, checking every signature and validity at `now`. Returns the
/// path above the leaf, ending with the anchor. A leaf that is itself an
/// anchor (a pinned certificate) returns an empty path.
pub fn chain_to_anchor(
    leaf: &Certificate,
    pool: &[Certificate],
    anchors: &[Certificate],
    now: SystemTime,
) -> Result<Vec<Certificate>, ChainError> {
    check_validity(leaf, now)?;
    if anchors.contains(leaf) {
        return Ok(Vec::new());
    }
    let mut path = Vec::new();
    let mut current = leaf.clone();
    for _ in 0..MAX_DEPTH {
        let issuer_name = &current.tbs_certificate.issuer;
        let mut last_err = None;
        for anchor in anchors
            .iter()
            .filter(|a| &a.tbs_certificate.subject == issuer_name)
        {
            match signed_by(&current, anchor).and_then(|()| check_validity(anchor, now)) {
                Ok(()) => {
                    path.push(anchor.clone());
                    return Ok(path);
                }
                Err(e) => last_err = Some(e),
            }
        }
        let next = pool
            .iter()
            .filter(|c| &c.tbs_certificate.subject == issuer_name && *c != &current)
            .find(|c| match signed_by(&current, c) {
                Ok(()) => true,
                Err(e) => {
                    last_err = Some(e);
                    false
                }
            });
        let Some(next) = next else {
            return Err(last_err.unwrap_or(ChainError::NoTrustedIssuer {
                subject: current.tbs_certificate.subject.to_string(),
            }));
        };
        check_validity(next, now)?;
        if !is_ca(next) {
            return Err(ChainError::NotCa {
                subject: next.tbs_certificate.subject.to_string(),
            });
        }
        path.push(next.clone());
        current = next.clone();
    }
    Err(ChainError::NoTrustedIssuer {
        subject: leaf.tbs_certificate.subject.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::str::FromStr;
    use std::time::Duration;

    use rsa::RsaPrivateKey;
    use spki::SubjectPublicKeyInfoOwned;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::time::Validity;

    /// A 1024-bit key: fast, and good enough to test the logic.
    pub(crate) fn small_key(seed: u64) -> RsaPrivateKey {
        RsaPrivateKey::new(&mut TestRng(seed), 1024).unwrap()
    }

    /// splitmix64: deterministic keys keep the tests reproducible without
    /// another dependency (never used outside tests).
    pub(crate) struct TestRng(pub(crate) u64);
    impl rand_core::RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for TestRng {}

    pub(crate) fn root(key: &RsaPrivateKey, cn: &str) -> Certificate {
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
        let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
        CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(1u32),
            Validity::from_now(Duration::from_secs(3600)).unwrap(),
            Name::from_str(&format!("CN={cn}")).unwrap(),
            spki,
            &signer,
        )
        .unwrap()
        .build::<rsa::pkcs1v15::Signature>()
        .unwrap()
    }

    pub(crate) fn leaf(
        issuer_key: &RsaPrivateKey,
        issuer: &Certificate,
        subject_key: &rsa::RsaPublicKey,
        cn: &str,
    ) -> Certificate {
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(issuer_key.clone());
        let spki = SubjectPublicKeyInfoOwned::from_key(subject_key.clone()).unwrap();
        CertificateBuilder::new(
            Profile::Leaf {
                issuer: issuer.tbs_certificate.subject.clone(),
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            SerialNumber::from(7u32),
            Validity::from_now(Duration::from_secs(3600)).unwrap(),
            Name::from_str(&format!("CN={cn}")).unwrap(),
            spki,
            &signer,
        )
        .unwrap()
        .build::<rsa::pkcs1v15::Signature>()
        .unwrap()
    }

    #[test]
    fn leaf_chains_to_its_root_and_not_to_another() {
        let ca_key = small_key(1);
        let other_key = small_key(2);
        let ee_key = small_key(3);
        let ca = root(&ca_key, "Test CA");
        let impostor = root(&other_key, "Test CA"); // same name, other key
        let ee = leaf(&ca_key, &ca, &ee_key.to_public_key(), "ee");
        let now = SystemTime::now();
        assert_eq!(
            chain_to_anchor(&ee, &[], std::slice::from_ref(&ca), now).unwrap(),
            vec![ca.clone()]
        );
        assert_eq!(
            chain_to_anchor(&ee, &[], &[impostor], now),
            Err(ChainError::BadSignature)
        );
        // Validity is checked at the injected time.
        let later = now + Duration::from_secs(7200);
        assert!(matches!(
            chain_to_anchor(&ee, &[], &[ca], later),
            Err(ChainError::OutsideValidity { .. })
        ));
    }

    #[test]
    fn pinned_anchor_needs_no_issuer() {
        let key = small_key(4);
        let cert = root(&key, "Signer");
        assert!(
            chain_to_anchor(&cert, &[], std::slice::from_ref(&cert), SystemTime::now())
                .unwrap()
                .is_empty()
        );
    }
}
