//! CRL generation (RFC 5280 §5), full and per-municipality partitions.
//!
//! `x509-cert` 0.2 has no CRL builder and its `TbsCertList` holds every entry as a struct.
//! Here the revoked entries are DER-encoded one row at a time straight from SQLite into one
//! buffer, which then sits in the `TBSCertList` as a pre-encoded value: memory is the size
//! of the CRL itself, not of the certificate table.
//!
//! It does not decide when to re-issue (the server does: on revocation and on schedule).

use const_oid::ObjectIdentifier;
use std::collections::HashMap;

use der::asn1::{AnyRef, BitString, GeneralizedTime, OctetString, Uint, UintRef};
use der::{Decode, Encode, Sequence, Tag};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlReason};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::time::Time;
use x509_cert::Version;

use super::certs::x509_time;
use super::issue::distribution_point_names;
use super::material::Material;
use super::store::Store;
use super::CaError;
use crate::pki::jpki_profile::CertProfile;
use crate::pki::{sha256_with_rsa, Sha256Signer};

const OID_CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const OID_REASON_CODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const OID_INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");
// x509-cert 0.2 gives IssuingDistributionPoint the wrong OID; use the right one here.
const OID_IDP: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.28");
const OID_AKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");

/// `TBSCertList` with the revoked entries pre-encoded.
#[derive(Sequence)]
struct TbsCertListRaw<'a> {
    version: Version,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    this_update: Time,
    next_update: Option<Time>,
    revoked_certificates: Option<AnyRef<'a>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    crl_extensions: Option<Extensions>,
}

/// `CertificateList` around an already-encoded `TBSCertList`.
#[derive(Sequence)]
struct CertificateListRaw<'a> {
    tbs_cert_list: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// One `revokedCertificates` entry with pre-encoded extensions.
#[derive(Sequence)]
struct RevokedEntryRaw<'a> {
    serial_number: UintRef<'a>,
    revocation_date: Time,
    crl_entry_extensions: Option<AnyRef<'a>>,
}

/// The DER `Extensions` of an entry: reasonCode (absent for unspecified, RFC 5280 §5.3.1)
/// and invalidityDate; `None` when there is neither.
fn entry_extensions(reason: u32, invalidity: Option<i64>) -> Result<Option<Vec<u8>>, CaError> {
    let mut exts = Vec::new();
    if reason != 0 {
        let r = reason_from_u32(reason).ok_or(CaError::Corrupt("reason"))?;
        exts.push(ext(OID_REASON_CODE, false, &r)?);
    }
    if let Some(t) = invalidity {
        let secs = std::time::Duration::from_secs(t.max(0) as u64);
        exts.push(ext(OID_INVALIDITY_DATE, false, &GeneralizedTime::from_unix_duration(secs)?)?);
    }
    if exts.is_empty() {
        return Ok(None);
    }
    Ok(Some(exts.to_der()?))
}

/// A generated CRL.
#[derive(Debug, Clone)]
pub struct Crl {
    /// DER.
    pub der: Vec<u8>,
    /// CRL number.
    pub number: u64,
    /// nextUpdate (Unix seconds).
    pub next_update: i64,
    /// Number of entries.
    pub entries: u64,
}

/// The scope key of a CRL (`sign`, `auth`, `sign/131016`, …), used for CRL numbers.
pub fn scope(profile: CertProfile, municipality: Option<&str>) -> String {
    match municipality {
        Some(m) => format!("{}/{m}", profile.as_str()),
        None => profile.as_str().to_string(),
    }
}

fn ext<T: Encode>(oid: ObjectIdentifier, critical: bool, v: &T) -> Result<Extension, CaError> {
    Ok(Extension { extn_id: oid, critical, extn_value: OctetString::new(v.to_der()?)? })
}

/// Builds, signs and numbers the CRL of a scope, streaming its entries from the store.
pub fn build(
    store: &Store,
    material: &Material,
    profile: CertProfile,
    municipality: Option<&str>,
    base_url: &str,
    now: i64,
    lifetime_secs: i64,
) -> Result<Crl, CaError> {
    let issuer = material.issuer(profile == CertProfile::Signing);
    let number = store.next_crl_number(&scope(profile, municipality))?;

    let mut entries_der = Vec::new();
    let mut entries = 0u64;
    // crlEntryExtensions depend only on the reason unless an invalidity date is present:
    // encode each distinct one once.
    let mut by_reason: HashMap<u32, Option<Vec<u8>>> = HashMap::new();
    let mut serial_buf = [0u8; 32];
    store.for_each_revoked(profile.as_str(), municipality, |row| -> Result<(), CaError> {
        let len = row.serial.len() / 2;
        let serial = serial_buf.get_mut(..len).ok_or(CaError::Corrupt("serial"))?;
        hex::decode_to_slice(&row.serial, serial).map_err(|_| CaError::Corrupt("serial"))?;
        let exts_der = match row.invalidity {
            None => match by_reason.get(&row.reason) {
                Some(cached) => cached.clone(),
                None => {
                    let e = entry_extensions(row.reason, None)?;
                    by_reason.insert(row.reason, e.clone());
                    e
                }
            },
            Some(_) => entry_extensions(row.reason, row.invalidity)?,
        };
        let entry = RevokedEntryRaw {
            serial_number: UintRef::new(serial)?,
            revocation_date: x509_time(row.revoked_at)?,
            crl_entry_extensions: exts_der.as_deref().map(AnyRef::from_der).transpose()?,
        };
        entry.encode_to_vec(&mut entries_der)?;
        entries += 1;
        Ok(())
    })?;

    let mut crl_extensions = vec![
        ext(
            OID_AKI,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer.key_id.clone())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        ext(OID_CRL_NUMBER, false, &CrlNumber(Uint::new(&number.to_be_bytes())?))?,
    ];
    if municipality.is_some() {
        let idp = IssuingDistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(distribution_point_names(
                profile,
                municipality,
                base_url,
            )?)),
            only_contains_user_certs: true,
            only_contains_ca_certs: false,
            only_some_reasons: None,
            indirect_crl: false,
            only_contains_attribute_certs: false,
        };
        crl_extensions.push(ext(OID_IDP, true, &idp)?);
    }

    let next_update = now + lifetime_secs;
    let revoked = if entries == 0 {
        None
    } else {
        Some(AnyRef::new(Tag::Sequence, &entries_der)?)
    };
    let tbs = TbsCertListRaw {
        version: Version::V2,
        signature: sha256_with_rsa(),
        issuer: issuer.name().clone(),
        this_update: x509_time(now)?,
        next_update: Some(x509_time(next_update)?),
        revoked_certificates: revoked,
        crl_extensions: Some(crl_extensions),
    };
    let tbs_der = tbs.to_der()?;
    drop(tbs);
    drop(entries_der);
    let signature = issuer.signer.sign_sha256(&tbs_der)?;
    let list = CertificateListRaw {
        tbs_cert_list: AnyRef::from_der(&tbs_der)?,
        signature_algorithm: sha256_with_rsa(),
        signature,
    };
    let der = list.to_der()?;
    Ok(Crl { der, number, next_update, entries })
}

fn reason_from_u32(v: u32) -> Option<CrlReason> {
    Some(match v {
        0 => CrlReason::Unspecified,
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => return None,
    })
}

/// Whether `v` is an RFC 5280 CRLReason this CA records (8, removeFromCRL, is not).
pub fn valid_reason(v: u32) -> bool {
    reason_from_u32(v).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::testing;
    use der::Decode;
    use x509_cert::crl::CertificateList;

    #[test]
    fn streamed_crl_decodes_with_entries_number_and_partition_idp() {
        let (_d, ca) = testing::ca();
        ca.with_store(|s| {
            for i in 0..50u32 {
                let muni = if i % 2 == 0 { Some("131016") } else { None };
                s.insert_revocation_raw(&format!("{:08X}", i + 1), "sign", muni, i % 6, 1_700_000_000).unwrap();
            }
            s.insert_revocation_raw("7F", "auth", None, 1, 1_700_000_000).unwrap();
        })
        .unwrap();
        let full = ca.reissue_crl(CertProfile::Signing, None).unwrap();
        assert_eq!(full.entries, 50);
        let list = CertificateList::from_der(&full.der).unwrap();
        let entries = list.tbs_cert_list.revoked_certificates.as_ref().unwrap();
        assert_eq!(entries.len(), 50);
        assert!(entries.iter().filter(|e| e.crl_entry_extensions.is_none()).count() > 0, "unspecified has no reasonCode");
        let tbs_der = list.tbs_cert_list.to_der().unwrap();
        let sig = list.signature.as_bytes().unwrap();
        let root = &ca.material.sign_ca.cert.tbs_certificate.subject_public_key_info;
        assert!(crate::pki::verify_sha256(root, &tbs_der, sig));

        let again = ca.reissue_crl(CertProfile::Signing, None).unwrap();
        assert_eq!(again.number, full.number + 1);

        let part = ca.reissue_crl(CertProfile::Signing, Some("131016")).unwrap();
        assert_eq!(part.entries, 25);
        let list = CertificateList::from_der(&part.der).unwrap();
        let exts = list.tbs_cert_list.crl_extensions.unwrap();
        assert!(exts.iter().any(|e| e.extn_id == OID_IDP && e.critical));

        let auth = ca.current_crl(CertProfile::UserAuth, None).unwrap();
        assert_eq!(auth.entries, 1);
        let empty = ca.reissue_crl(CertProfile::UserAuth, Some("999999")).unwrap();
        let list = CertificateList::from_der(&empty.der).unwrap();
        assert!(list.tbs_cert_list.revoked_certificates.is_none());
    }
}
