//! Certificate building blocks of the reference CA: UTF8String names, the X.509 extensions
//! the JPKI profile uses, random serial numbers, and signing a `TBSCertificate`.
//!
//! This is mechanism only. Which extensions a given certificate gets is decided in
//! [`super::material`] (CA, RA and TLS certificates) and [`super::issue`] (residents').

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use const_oid::db::rfc4519;
use const_oid::ObjectIdentifier;
use der::asn1::{Any, Ia5String, OctetString, SetOfVec, UtcTime, GeneralizedTime};
use der::{Encode, Tag};
use rand_core::RngCore;
use rsa::RsaPrivateKey;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage,
    KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use crate::pki::{key_identifier, sha256_with_rsa, PkiError, Sha256Signer};

/// `id-kp-serverAuth`.
pub const EKU_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
/// `id-kp-clientAuth`.
pub const EKU_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
/// `id-kp-cmcRA` (RFC 6402): marks the RA and the CMP responder.
pub const EKU_CMC_RA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.28");

/// A Name whose attribute values are all UTF8String, in the order given (most significant
/// first), one attribute per RDN — as the J-LIS roots spell theirs.
pub fn utf8_name(parts: &[(ObjectIdentifier, &str)]) -> Result<Name, PkiError> {
    let mut rdns = Vec::with_capacity(parts.len());
    for (oid, value) in parts {
        let atv = AttributeTypeAndValue { oid: *oid, value: Any::new(Tag::Utf8String, value.as_bytes())? };
        rdns.push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?));
    }
    Ok(RdnSequence(rdns))
}

/// Attribute type shorthands for [`utf8_name`].
pub mod attr {
    use super::*;
    /// countryName.
    pub const C: ObjectIdentifier = rfc4519::C;
    /// organizationName.
    pub const O: ObjectIdentifier = rfc4519::O;
    /// organizationalUnitName.
    pub const OU: ObjectIdentifier = rfc4519::OU;
    /// commonName.
    pub const CN: ObjectIdentifier = rfc4519::CN;
}

/// An X.509 `Time` for a Unix timestamp: UTCTime through 2049, GeneralizedTime after
/// (RFC 5280 §4.1.2.5).
pub fn x509_time(unix: i64) -> Result<Time, PkiError> {
    let d = Duration::from_secs(u64::try_from(unix).map_err(|_| PkiError::Invalid {
        field: "time",
        reason: "before 1970",
    })?);
    Ok(match UtcTime::from_unix_duration(d) {
        Ok(t) if unix < 2_524_608_000 => Time::UtcTime(t),
        _ => Time::GeneralTime(GeneralizedTime::from_unix_duration(d)?),
    })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A fresh random serial: 16 random bytes, top bit clear (positive) and the next bit set
/// (no leading zero octet), so 127 bits of which 126 are random.
pub fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(SerialNumber::new(&b)?)
}

fn ext<T: Encode>(oid: ObjectIdentifier, critical: bool, value: &T) -> Result<Extension, PkiError> {
    Ok(Extension { extn_id: oid, critical, extn_value: OctetString::new(value.to_der()?)? })
}

/// keyUsage (always critical in this CA's certificates).
pub fn key_usage(flags: impl Into<der::flagset::FlagSet<KeyUsages>>) -> Result<Extension, PkiError> {
    ext(ObjectIdentifier::new_unwrap("2.5.29.15"), true, &KeyUsage(flags.into()))
}

/// basicConstraints, critical.
pub fn basic_constraints(ca: bool) -> Result<Extension, PkiError> {
    ext(
        ObjectIdentifier::new_unwrap("2.5.29.19"),
        true,
        &BasicConstraints { ca, path_len_constraint: None },
    )
}

/// subjectKeyIdentifier (method 1).
pub fn ski(spki: &SubjectPublicKeyInfoOwned) -> Result<Extension, PkiError> {
    ext(
        ObjectIdentifier::new_unwrap("2.5.29.14"),
        false,
        &SubjectKeyIdentifier(OctetString::new(key_identifier(spki))?),
    )
}

/// authorityKeyIdentifier with the issuer's key identifier only.
pub fn aki(issuer_key_id: &[u8]) -> Result<Extension, PkiError> {
    ext(
        ObjectIdentifier::new_unwrap("2.5.29.35"),
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(issuer_key_id)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )
}

/// extendedKeyUsage, non-critical.
pub fn eku(oids: &[ObjectIdentifier]) -> Result<Extension, PkiError> {
    ext(ObjectIdentifier::new_unwrap("2.5.29.37"), false, &ExtendedKeyUsage(oids.to_vec()))
}

/// subjectAltName, non-critical (every certificate here has a non-empty subject).
pub fn san(names: Vec<GeneralName>) -> Result<Extension, PkiError> {
    ext(ObjectIdentifier::new_unwrap("2.5.29.17"), false, &SubjectAltName(names))
}

/// A URI general name.
pub fn uri(u: &str) -> Result<GeneralName, PkiError> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(u)?))
}

/// A dNSName general name.
pub fn dns(u: &str) -> Result<GeneralName, PkiError> {
    Ok(GeneralName::DnsName(Ia5String::new(u)?))
}

/// cRLDistributionPoints with one distribution point whose fullName holds `names`.
pub fn crl_dp(names: Vec<GeneralName>) -> Result<Extension, PkiError> {
    ext(
        ObjectIdentifier::new_unwrap("2.5.29.31"),
        false,
        &CrlDistributionPoints(vec![DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(names)),
            reasons: None,
            crl_issuer: None,
        }]),
    )
}

/// A CA signing key held by OpenSSL's libcrypto, whose RSA-2048 signing is about twice as
/// fast as `ring`'s and five times the `rsa` crate's (the CA makes four signatures per
/// resident, see docs/ca-protocol.md).
///
/// It signs with the RSA primitive directly (PKCS#1 v1.5 over a DigestInfo made here):
/// OpenSSL 3.0's `EVP_DigestSign` looks its algorithms up by name on every call, which
/// cost a sixth of each signature in profiles.
pub struct CaKey {
    rsa: openssl::rsa::Rsa<openssl::pkey::Private>,
}

/// `DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }`
/// (RFC 8017 §9.2), what PKCS#1 v1.5 signs.
#[derive(der::Sequence)]
struct DigestInfo<'a> {
    algorithm: spki::AlgorithmIdentifierRef<'a>,
    digest: der::asn1::OctetStringRef<'a>,
}

impl CaKey {
    /// Wraps an RSA private key.
    pub fn new(key: &RsaPrivateKey) -> Result<Self, PkiError> {
        let der = pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(key).map_err(|e| PkiError::Key(e.to_string()))?;
        let rsa = openssl::rsa::Rsa::private_key_from_der(der.as_bytes()).map_err(|e| PkiError::Key(e.to_string()))?;
        Ok(CaKey { rsa })
    }
}

impl Sha256Signer for CaKey {
    fn sign_sha256(&self, data: &[u8]) -> Result<der::asn1::BitString, PkiError> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(data);
        let info = DigestInfo {
            algorithm: spki::AlgorithmIdentifierRef { oid: const_oid::db::rfc5912::ID_SHA_256, parameters: Some(der::asn1::AnyRef::NULL) },
            digest: der::asn1::OctetStringRef::new(&digest)?,
        }
        .to_der()?;
        let mut sig = vec![0u8; self.rsa.size() as usize];
        let n = self
            .rsa
            .private_encrypt(&info, &mut sig, openssl::rsa::Padding::PKCS1)
            .map_err(|_| PkiError::Sign)?;
        sig.truncate(n);
        Ok(der::asn1::BitString::from_bytes(&sig)?)
    }
}

/// What a certificate to be signed contains; the issuer comes with the signing key.
pub struct CertSpec {
    /// Serial number.
    pub serial: SerialNumber,
    /// Subject name.
    pub subject: Name,
    /// Subject public key.
    pub spki: SubjectPublicKeyInfoOwned,
    /// notBefore (Unix seconds).
    pub not_before: i64,
    /// notAfter (Unix seconds).
    pub not_after: i64,
    /// Extensions, in order.
    pub extensions: Vec<Extension>,
}

/// Signs `spec` as a v3 certificate issued by `issuer` with `key` (sha256WithRSAEncryption).
pub fn sign_cert(spec: CertSpec, issuer: &Name, key: &dyn Sha256Signer) -> Result<Certificate, PkiError> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: spec.serial,
        signature: sha256_with_rsa(),
        issuer: issuer.clone(),
        validity: Validity {
            not_before: x509_time(spec.not_before)?,
            not_after: x509_time(spec.not_after)?,
        },
        subject: spec.subject,
        subject_public_key_info: spec.spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(spec.extensions),
    };
    let signature = key.sign_sha256(&tbs.to_der()?)?;
    Ok(Certificate { tbs_certificate: tbs, signature_algorithm: sha256_with_rsa(), signature })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_signer_makes_the_same_pkcs1_signature_as_the_rsa_crate() {
        // PKCS#1 v1.5 is deterministic: libcrypto over our DigestInfo must give exactly
        // the bytes the rsa crate gives, and they must verify.
        let key = RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let ours = CaKey::new(&key).unwrap().sign_sha256(b"tbsCertificate").unwrap();
        let reference = crate::pki::sign_sha256(&key, b"tbsCertificate").unwrap();
        assert_eq!(ours, reference);
        let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
        assert!(crate::pki::verify_sha256(&spki, b"tbsCertificate", ours.raw_bytes()));
        assert!(!crate::pki::verify_sha256(&spki, b"tbsCertificatf", ours.raw_bytes()));
    }

    #[test]
    fn serials_are_positive_and_distinct() {
        let a = random_serial().unwrap();
        let b = random_serial().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_bytes().len(), 16);
        assert!(a.as_bytes()[0] & 0x80 == 0 && a.as_bytes()[0] != 0);
    }

    #[test]
    fn names_are_utf8_and_ordered() {
        let n = utf8_name(&[(attr::C, "JP"), (attr::O, "公的個人認証サービス")]).unwrap();
        assert_eq!(n.0.len(), 2);
        let first = n.0[0].0.iter().next().unwrap();
        assert_eq!(first.oid, attr::C);
        assert_eq!(der::Tagged::tag(&first.value), Tag::Utf8String);
    }

    #[test]
    fn times_switch_to_generalized_after_2049() {
        assert!(matches!(x509_time(1_700_000_000).unwrap(), Time::UtcTime(_)));
        assert!(matches!(x509_time(2_600_000_000).unwrap(), Time::GeneralTime(_)));
    }
}
