//! Issuance policy: what goes into a resident's signing or user-authentication certificate.
//!
//! The CA decides the subject (`C=JP, O=JPKI, OU=<profile OU>, CN=<serial in hex>`: no
//! personal data in the DN), the serial, the validity and every extension. From the request
//! it takes only the public key, the profile (by policy OID), the six personal-data
//! attributes (signing only) and the regInfo pairs (validity and CRL partition).
//!
//! This module builds certificates; it does not talk CMP or touch the store.

use spki::SubjectPublicKeyInfoOwned;
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use super::certs::{self, attr, utf8_name, CertSpec};
use super::material::{profile_ou, Material};
use super::CaError;
use crate::pki::jpki_profile::{validity_end, CertProfile, PersonalData, RegInfo};
use crate::pki::rsa_public_key;

/// Why a request cannot be issued as asked (each maps to a CMP failInfo).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The template is unusable: missing key, wrong key type or size, personal data where
    /// the profile forbids it or missing where it requires it, invalid attributes.
    #[error("bad certificate template: {0}")]
    BadTemplate(String),
    /// Proof of possession missing or wrong.
    #[error("bad proof of possession: {0}")]
    BadPop(&'static str),
    /// regInfo is malformed.
    #[error("bad regInfo: {0}")]
    BadRegInfo(String),
}

/// A checked request for one certificate.
#[derive(Debug, Clone)]
pub struct IssueInput {
    /// Which certificate.
    pub profile: CertProfile,
    /// The card's public key.
    pub spki: SubjectPublicKeyInfoOwned,
    /// The six attributes (signing profile only).
    pub personal: Option<PersonalData>,
    /// Birth date, card expiry, municipality, identifiers.
    pub reg: RegInfo,
}

/// Accepted RSA modulus sizes (the JPKI profile is RSA-2048; 3072/4096 tolerated).
const MIN_BITS: usize = 2048;
const MAX_BITS: usize = 4096;

impl IssueInput {
    /// Checks profile/personal-data consistency and the key.
    pub fn check(
        profile: CertProfile,
        spki: Option<SubjectPublicKeyInfoOwned>,
        personal: Option<PersonalData>,
        reg: RegInfo,
    ) -> Result<Self, Refusal> {
        let spki = spki.ok_or_else(|| Refusal::BadTemplate("no public key".into()))?;
        let key = rsa_public_key(&spki).map_err(|_| Refusal::BadTemplate("not an RSA key".into()))?;
        let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(Refusal::BadTemplate(format!("RSA key of {bits} bits")));
        }
        match (profile, &personal) {
            (CertProfile::Signing, None) => {
                return Err(Refusal::BadTemplate("signing certificate needs the six personal-data attributes".into()))
            }
            (CertProfile::Signing, Some(pd)) => {
                pd.validate().map_err(|e| Refusal::BadTemplate(e.to_string()))?
            }
            (_, Some(_)) => {
                return Err(Refusal::BadTemplate(
                    "personal data is only allowed in the signing certificate".into(),
                ))
            }
            _ => {}
        }
        Ok(IssueInput { profile, spki, personal, reg })
    }
}

/// The path of a CRL: `/crl/<scope>.crl` or `/crl/<municipality>/<scope>.crl`.
pub fn crl_path(profile: CertProfile, municipality: Option<&str>) -> String {
    match municipality {
        Some(m) => format!("/crl/{m}/{}.crl", profile.as_str()),
        None => format!("/crl/{}.crl", profile.as_str()),
    }
}

/// The distribution point names of a CRL scope: its HTTP URL and an X.500 name under the
/// CA's DN, as JPKI's partitioned CRLs appear to be named.
pub fn distribution_point_names(
    profile: CertProfile,
    municipality: Option<&str>,
    base_url: &str,
) -> Result<Vec<GeneralName>, CaError> {
    let signing = profile == CertProfile::Signing;
    let cn = match municipality {
        Some(m) => format!("{m} CRLDP"),
        None => "CRLDP".to_string(),
    };
    let dn = utf8_name(&[
        (attr::C, "JP"),
        (attr::O, "JPKI"),
        (attr::OU, profile_ou(signing)),
        (attr::OU, "CRL Distribution Points"),
        (attr::CN, &cn),
    ])?;
    Ok(vec![
        certs::uri(&format!("{base_url}{}", crl_path(profile, municipality)))?,
        GeneralName::DirectoryName(dn),
    ])
}

/// The subject the CA gives a resident's certificate.
pub fn subject_for(profile: CertProfile, serial: &SerialNumber) -> Result<Name, CaError> {
    let signing = profile == CertProfile::Signing;
    Ok(utf8_name(&[
        (attr::C, "JP"),
        (attr::O, "JPKI"),
        (attr::OU, profile_ou(signing)),
        (attr::CN, &hex::encode_upper(serial.as_bytes())),
    ])?)
}

/// Builds and signs one end-entity certificate.
pub fn build(
    material: &Material,
    input: &IssueInput,
    serial: SerialNumber,
    now: OffsetDateTime,
    base_url: &str,
) -> Result<Certificate, CaError> {
    let signing = input.profile == CertProfile::Signing;
    let issuer = material.issuer(signing);
    let not_after = validity_end(now, input.reg.birth_date.as_ref(), input.reg.card_expiry);
    let not_before = now.unix_timestamp();
    if not_after.unix_timestamp() <= not_before {
        return Err(CaError::Refused(Refusal::BadRegInfo("card already expired".into())));
    }
    let mut extensions = vec![
        certs::ski(&input.spki)?,
        certs::aki(&issuer.key_id)?,
        if signing {
            certs::key_usage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation)?
        } else {
            certs::key_usage(KeyUsages::DigitalSignature)?
        },
        input.profile.policies_extension()?,
    ];
    if let Some(pd) = &input.personal {
        extensions.push(pd.subject_alt_name()?);
    }
    extensions.push(certs::crl_dp(distribution_point_names(
        input.profile,
        input.reg.municipality_code.as_deref(),
        base_url,
    )?)?);
    let spec = CertSpec {
        subject: subject_for(input.profile, &serial)?,
        serial,
        spki: input.spki.clone(),
        not_before,
        not_after: not_after.unix_timestamp(),
        extensions,
    };
    Ok(certs::sign_cert(spec, issuer.name(), &issuer.signer)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::testing;
    use x509_cert::ext::pkix::KeyUsage;

    fn pd() -> PersonalData {
        PersonalData {
            name: "公的太郎".into(),
            name_substitute_positions: "0010".into(),
            sex: "1".into(),
            birth_date: "420000101".into(),
            address: "北海道".into(),
            address_substitute_positions: "000".into(),
        }
    }

    #[test]
    fn templates_are_checked_against_the_profile() {
        let (_d, ca) = testing::ca();
        let spki = ca.material.sign_ca.cert.tbs_certificate.subject_public_key_info.clone();
        let ok = IssueInput::check(CertProfile::Signing, Some(spki.clone()), Some(pd()), RegInfo::default());
        assert!(ok.is_ok());
        let r = IssueInput::check(CertProfile::Signing, Some(spki.clone()), None, RegInfo::default());
        assert!(matches!(r, Err(Refusal::BadTemplate(_))));
        let r = IssueInput::check(CertProfile::UserAuth, Some(spki.clone()), Some(pd()), RegInfo::default());
        assert!(matches!(r, Err(Refusal::BadTemplate(_))));
        let r = IssueInput::check(CertProfile::UserAuth, None, None, RegInfo::default());
        assert!(matches!(r, Err(Refusal::BadTemplate(_))));
    }

    #[test]
    fn signing_certificate_content() {
        let (_d, ca) = testing::ca();
        let spki = ca.material.tls_ca.cert.tbs_certificate.subject_public_key_info.clone();
        let reg = RegInfo::parse("municipality-code?011002%card-expiry?20991231%").unwrap();
        let input = IssueInput::check(CertProfile::Signing, Some(spki), Some(pd()), reg).unwrap();
        let serial = certs::random_serial().unwrap();
        let now = OffsetDateTime::now_utc();
        let cert = build(&ca.material, &input, serial.clone(), now, "http://h:1").unwrap();
        let tbs = &cert.tbs_certificate;
        assert!(crate::pki::issued_by(&cert, &ca.material.sign_ca.cert));
        assert_eq!(tbs.serial_number, serial);
        assert_eq!(tbs.subject, subject_for(CertProfile::Signing, &serial).unwrap());
        let (crit, ku) = tbs.get::<KeyUsage>().unwrap().unwrap();
        assert!(crit && ku.digital_signature() && ku.non_repudiation());
        assert_eq!(PersonalData::from_extensions(tbs.extensions.as_ref()).unwrap(), Some(pd()));
        assert_eq!(
            crate::pki::jpki_profile::requested_profile(tbs.extensions.as_ref()).unwrap(),
            CertProfile::Signing
        );
        assert_eq!(crl_path(CertProfile::Signing, Some("011002")), "/crl/011002/sign.crl");
        // Card expiry far away: the 5th birthday (1 January) decides, at 14:59:59Z.
        let end = tbs.validity.not_after.to_unix_duration().as_secs() as i64;
        let expected = validity_end(now, input.reg.birth_date.as_ref(), input.reg.card_expiry);
        assert_eq!(end, expected.unix_timestamp());
    }

    #[test]
    fn expired_card_is_refused() {
        let (_d, ca) = testing::ca();
        let spki = ca.material.tls_ca.cert.tbs_certificate.subject_public_key_info.clone();
        let reg = RegInfo::parse("card-expiry?20200101%").unwrap();
        let input = IssueInput::check(CertProfile::UserAuth, Some(spki), None, reg).unwrap();
        let r = build(&ca.material, &input, certs::random_serial().unwrap(), OffsetDateTime::now_utc(), "http://h:1");
        assert!(matches!(r, Err(CaError::Refused(Refusal::BadRegInfo(_)))));
    }
}
