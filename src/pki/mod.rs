//! Certificate profile and CMP pieces shared by the reference CA and the kiosk's client.
//!
//! - [`jpki_profile`]: the JPKI object identifiers, the signing certificate's personal-data
//!   otherNames, the `regInfo` pairs the kiosk sends, and the validity rule;
//! - [`message`]: the CMP wire layer of both ends: `PKIMessage`, every body they send or
//!   accept (with corrected types where `cmpv2`/`crmf` 0.2 are wrong), and received
//!   messages kept with their protected bytes;
//! - [`protection`]: MAC (PasswordBasedMac) and signature protection of CMP messages;
//! - [`holder_query`]: the genm/genp holder query between the kiosk and the CA.
//!
//! This module does no I/O and keeps no state; transport, storage and policy decisions live
//! in [`crate::ca`] (server) and [`crate::enroll`] (client).

pub mod holder_query;
pub mod jpki_profile;
pub mod message;
pub mod protection;

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use rsa::pkcs1v15::{Signature, SigningKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use signature::{SignatureEncoding, Signer};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

/// `sha256WithRSAEncryption` (RFC 4055).
pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// `sha384WithRSAEncryption` (RFC 4055).
pub const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
/// `sha512WithRSAEncryption` (RFC 4055).
pub const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// Errors of the shared PKI helpers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A structure could not be encoded or decoded (malformed input or a bug in a builder).
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    /// An RSA key could not be used (wrong size, unsupported public key).
    #[error("RSA key: {0}")]
    Key(String),
    /// Signing failed inside the RSA implementation.
    #[error("signing failed")]
    Sign,
    /// A personal-data attribute or regInfo value breaks the JPKI format.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which attribute (never its value: it is personal data).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The `sha256WithRSAEncryption` algorithm identifier with its NULL parameter.
pub fn sha256_with_rsa() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        // RFC 4055 §5: the parameters MUST be NULL for the PKCS#1 v1.5 signature OIDs.
        parameters: Some(der::asn1::Null.into()),
    }
}

/// Something that makes sha256WithRSAEncryption (PKCS#1 v1.5) signatures.
///
/// Implemented for `rsa::RsaPrivateKey`; the CA plugs in a faster signer for its own keys.
pub trait Sha256Signer {
    /// Signs `data`; returns the signature as the BIT STRING certificates and CMP carry.
    fn sign_sha256(&self, data: &[u8]) -> Result<BitString, PkiError>;
}

impl Sha256Signer for RsaPrivateKey {
    fn sign_sha256(&self, data: &[u8]) -> Result<BitString, PkiError> {
        sign_sha256(self, data)
    }
}

/// Signs `data` with PKCS#1 v1.5 and SHA-256.
pub fn sign_sha256(key: &RsaPrivateKey, data: &[u8]) -> Result<BitString, PkiError> {
    let signer = SigningKey::<Sha256>::new(key.clone());
    let sig: Signature = signer.try_sign(data).map_err(|_| PkiError::Sign)?;
    Ok(BitString::from_bytes(&sig.to_vec())?)
}

/// `rsaEncryption`.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Verifies a PKCS#1 v1.5 SHA-256 signature made by the RSA key (2048–8192 bits) in `spki`.
///
/// Uses `ring`, whose verification is about ten times faster than the `rsa` crate's; the
/// CA verifies every RA-signed request and the RA certificate's own signature.
pub fn verify_sha256(spki: &SubjectPublicKeyInfoOwned, data: &[u8], sig: &[u8]) -> bool {
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return false;
    }
    // The subjectPublicKey bits of an rsaEncryption key are the PKCS#1 RSAPublicKey DER.
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.raw_bytes(),
    );
    key.verify(data, sig).is_ok()
}

/// The RSA public key inside a SubjectPublicKeyInfo.
pub fn rsa_public_key(spki: &SubjectPublicKeyInfoOwned) -> Result<RsaPublicKey, PkiError> {
    let der = spki.to_der()?;
    RsaPublicKey::from_public_key_der(&der).map_err(|e| PkiError::Key(e.to_string()))
}

/// Key identifier: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    use sha1::Sha1;
    Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

/// The SubjectKeyIdentifier of a certificate: the extension if present, else computed.
pub fn subject_key_id(cert: &Certificate) -> Vec<u8> {
    if let Ok(Some((_, ski))) =
        cert.tbs_certificate.get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
    {
        return ski.0.as_bytes().to_vec();
    }
    key_identifier(&cert.tbs_certificate.subject_public_key_info)
}

/// Checks that `cert` was signed by the key of `issuer` (and names it as issuer).
pub fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject
        || cert.signature_algorithm.oid != SHA256_WITH_RSA
    {
        return false;
    }
    let Ok(tbs) = cert.tbs_certificate.to_der() else {
        return false;
    };
    let Some(sig) = cert.signature.as_bytes() else {
        return false;
    };
    verify_sha256(&issuer.tbs_certificate.subject_public_key_info, &tbs, sig)
}

/// SHA-256 of a certificate's DER: the `certHash` of certConf for sha256WithRSA certificates.
pub fn cert_hash(cert: &Certificate) -> Result<OctetString, PkiError> {
    Ok(OctetString::new(Sha256::digest(cert.to_der()?).to_vec())?)
}

/// Parses every certificate of a PEM bundle.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<Certificate>, PkiError> {
    Ok(Certificate::load_pem_chain(pem)?)
}

/// Decodes one DER certificate.
pub fn cert_from_der(der: &[u8]) -> Result<Certificate, PkiError> {
    Ok(Certificate::from_der(der)?)
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! One small RSA key per test process: generating keys is the slow part of every test.
    use rsa::RsaPrivateKey;
    use std::sync::OnceLock;

    /// A 2048-bit key (the smallest size signatures are verified for).
    pub fn key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("keygen"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::EncodePublicKey;

    #[test]
    fn sign_and_verify_round_trip() {
        let key = test_keys::key();
        let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
        let sig = sign_sha256(key, b"protected part").unwrap();
        assert!(verify_sha256(&spki, b"protected part", sig.raw_bytes()));
        assert!(!verify_sha256(&spki, b"protected parT", sig.raw_bytes()));
        let der = key.to_public_key().to_public_key_der().unwrap();
        assert_eq!(spki.to_der().unwrap(), der.as_bytes());
    }

    #[test]
    fn key_identifier_is_sha1_of_key_bits() {
        let key = test_keys::key();
        let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
        let id = key_identifier(&spki);
        assert_eq!(id.len(), 20);
        assert_eq!(id, sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec());
    }
}
