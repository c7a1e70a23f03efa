//! The resident's personal data (基本4情報 and substitute-character positions)
//! as the signing-certificate request carries it: a subjectAltName of six
//! otherNames under `1.2.392.200149.8.5.5` (`[0]{ OID, [0] UTF8String }`).
//!
//! Only the encoding the client needs for a request lives here; parsing
//! issued certificates and the certificate profile belong to the CA side.
//! `Debug` never shows the data itself.

use std::fmt;

use der::asn1::{Any, ObjectIdentifier, Utf8StringRef};
use der::Encode;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// 氏名 (name).
pub const OID_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.1");
/// 氏名代替文字の使用位置情報.
pub const OID_NAME_SUBSTITUTE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.2");
/// 性別 (sex, JIS X 0303 digit).
pub const OID_SEX: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.3");
/// 生年月日 (EYYYYMMDD).
pub const OID_BIRTH_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.4");
/// 住所 (address).
pub const OID_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.5");
/// 住所代替文字の使用位置情報.
pub const OID_ADDRESS_SUBSTITUTE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.6");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// The six personal-data attributes of a signing certificate, as strings in
/// the formats of the J-LIS profile (see `docs/enroll.md`).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PersonalData {
    /// 氏名, e.g. "総務　太郎".
    pub name: String,
    /// One digit per character of `name`: '1' where a substitute is used.
    pub name_substitute_positions: String,
    /// '0', '1', '2' or '9' (JIS X 0303).
    pub sex: String,
    /// EYYYYMMDD: era digit, then the Gregorian date.
    pub birth_date: String,
    /// 住所.
    pub address: String,
    /// One digit per character of `address`.
    pub address_substitute_positions: String,
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalData(<redacted>)")
    }
}

impl PersonalData {
    /// The subjectAltName extension (non-critical) with the six otherNames,
    /// in OID order.
    pub fn subject_alt_name(&self) -> der::Result<Extension> {
        let pairs = [
            (OID_NAME, &self.name),
            (OID_NAME_SUBSTITUTE, &self.name_substitute_positions),
            (OID_SEX, &self.sex),
            (OID_BIRTH_DATE, &self.birth_date),
            (OID_ADDRESS, &self.address),
            (OID_ADDRESS_SUBSTITUTE, &self.address_substitute_positions),
        ];
        let names = pairs
            .into_iter()
            .map(|(oid, v)| {
                Ok(GeneralName::OtherName(OtherName {
                    type_id: oid,
                    value: Any::encode_from(&Utf8StringRef::new(v)?)?,
                }))
            })
            .collect::<der::Result<Vec<_>>>()?;
        Ok(Extension {
            extn_id: SUBJECT_ALT_NAME,
            critical: false,
            extn_value: der::asn1::OctetString::new(SubjectAltName(names).to_der()?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    fn sample() -> PersonalData {
        PersonalData {
            name: "総務　太郎".into(),
            name_substitute_positions: "00000".into(),
            sex: "1".into(),
            birth_date: "319800217".into(),
            address: "東京都千代田区霞が関２－１－２".into(),
            address_substitute_positions: "000000000000000".into(),
        }
    }

    #[test]
    fn san_carries_six_utf8_other_names() {
        let ext = sample().subject_alt_name().unwrap();
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).unwrap();
        assert_eq!(san.0.len(), 6);
        let GeneralName::OtherName(first) = &san.0[0] else {
            panic!("not an otherName")
        };
        assert_eq!(first.type_id, OID_NAME);
        assert_eq!(
            Utf8StringRef::try_from(&first.value).unwrap().as_str(),
            "総務　太郎"
        );
        let GeneralName::OtherName(dob) = &san.0[3] else {
            panic!("not an otherName")
        };
        assert_eq!(dob.type_id, OID_BIRTH_DATE);
    }

    #[test]
    fn debug_shows_no_personal_data() {
        let s = format!("{:?}", sample());
        assert!(!s.contains("総務") && !s.contains("3198"), "{s}");
    }
}
