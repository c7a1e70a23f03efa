//! The JPKI end-entity certificate profile as far as both ends of CMP need it.
//!
//! - object identifiers of the two certificate policies and the six personal-data
//!   attributes (arc `1.2.392.200149.8.5.5`);
//! - [`PersonalData`] ↔ subjectAltName otherNames `[0]{ OID, [0] UTF8String }`, parsed in
//!   any order and validated (substitute-position strings, sex code, era birth date);
//! - [`RegInfo`], the `id-regInfo-utf8Pairs` string the kiosk sends with each request;
//! - [`validity_end`], the "5th birthday after issuance, capped by the card" rule.
//!
//! It is not the CA's issuance policy (subject names, serials, CRL partitions: see
//! [`crate::ca`]) and it never logs or displays personal data: `Debug` is redacted.

use core::fmt;

use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, Utf8StringRef};
use der::{Decode, Encode};
use time::{Date, Month, OffsetDateTime, Time};
use x509_cert::ext::pkix::certpolicy::{CertificatePolicies, PolicyInformation};
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::{Extension, Extensions};

use super::PkiError;

/// 氏名 (name).
pub const OID_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.1");
/// 氏名代替文字の使用位置情報 (name substitute-character positions).
pub const OID_NAME_SUBSTITUTE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.2");
/// 性別 (sex, JIS X 0303 code).
pub const OID_SEX: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.3");
/// 生年月日 (birth date, `EYYYYMMDD`).
pub const OID_BIRTH_DATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.4");
/// 住所 (address).
pub const OID_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.5");
/// 住所代替文字の使用位置情報 (address substitute-character positions).
pub const OID_ADDRESS_SUBSTITUTE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.6");
/// Certificate policy of the signing certificate (署名用電子証明書, class 20).
pub const POLICY_SIGNING: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.1.20");
/// Certificate policy of the user-authentication certificate (利用者証明用, class 30).
pub const POLICY_AUTH: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.3.30");
/// `id-regInfo-utf8Pairs` (RFC 4211 §7.1).
pub const OID_REGINFO_UTF8_PAIRS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.5.2.1");
/// `id-ce-certificatePolicies`.
pub const OID_CERTIFICATE_POLICIES: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.32");
/// `id-ce-subjectAltName`.
pub const OID_SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");

/// The two JPKI end-entity certificate types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum CertProfile {
    /// 利用者証明用電子証明書: no personal data, keyUsage digitalSignature.
    UserAuth,
    /// 署名用電子証明書: personal data in subjectAltName, keyUsage with nonRepudiation.
    Signing,
}

impl CertProfile {
    /// The certificate policy OID of this profile.
    pub fn policy_oid(self) -> ObjectIdentifier {
        match self {
            CertProfile::UserAuth => POLICY_AUTH,
            CertProfile::Signing => POLICY_SIGNING,
        }
    }

    /// Short name used in the CA's store and URLs (`auth`, `sign`).
    pub fn as_str(self) -> &'static str {
        match self {
            CertProfile::UserAuth => "auth",
            CertProfile::Signing => "sign",
        }
    }

    /// Inverse of [`CertProfile::as_str`].
    pub fn from_str_name(s: &str) -> Option<Self> {
        match s {
            "auth" => Some(CertProfile::UserAuth),
            "sign" => Some(CertProfile::Signing),
            _ => None,
        }
    }

    /// The certReqId the kiosk uses for this profile in `ir`/`cr`/`kur`.
    pub fn cert_req_id(self) -> u8 {
        match self {
            CertProfile::UserAuth => 0,
            CertProfile::Signing => 1,
        }
    }

    /// A certificatePolicies extension naming this profile's policy (non-critical).
    pub fn policies_extension(self) -> Result<Extension, PkiError> {
        let policies = CertificatePolicies(vec![PolicyInformation {
            policy_identifier: self.policy_oid(),
            policy_qualifiers: None,
        }]);
        Ok(Extension {
            extn_id: OID_CERTIFICATE_POLICIES,
            critical: false,
            extn_value: OctetString::new(policies.to_der()?)?,
        })
    }
}

/// Which profile a request template asks for: the signing policy OID in its
/// certificatePolicies means signing; anything else (or no extension) means user
/// authentication, as a generic CMP client gets.
pub fn requested_profile(extensions: Option<&Extensions>) -> Result<CertProfile, PkiError> {
    let Some(ext) = extensions
        .into_iter()
        .flatten()
        .find(|e| e.extn_id == OID_CERTIFICATE_POLICIES)
    else {
        return Ok(CertProfile::UserAuth);
    };
    let policies = CertificatePolicies::from_der(ext.extn_value.as_bytes())?;
    if policies.0.iter().any(|p| p.policy_identifier == POLICY_SIGNING) {
        Ok(CertProfile::Signing)
    } else {
        Ok(CertProfile::UserAuth)
    }
}

/// The six personal-data attributes of a signing certificate (基本4情報 + 代替文字 positions).
///
/// `Debug` prints nothing of the content: these are personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalData {
    /// 氏名, as registered (may contain a full-width space).
    pub name: String,
    /// One `'0'`/`'1'` per character of `name`; `'1'` marks a substitute character.
    pub name_substitute_positions: String,
    /// JIS X 0303 sex code: `0`, `1`, `2` or `9`.
    pub sex: String,
    /// `EYYYYMMDD`: era digit 1–5 and the Gregorian date.
    pub birth_date: String,
    /// 住所.
    pub address: String,
    /// One `'0'`/`'1'` per character of `address`.
    pub address_substitute_positions: String,
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalData { <redacted> }")
    }
}

fn invalid(field: &'static str, reason: &'static str) -> PkiError {
    PkiError::Invalid { field, reason }
}

fn check_positions(text: &str, positions: &str, field: &'static str) -> Result<(), PkiError> {
    if positions.chars().any(|c| c != '0' && c != '1') {
        return Err(invalid(field, "only '0' and '1' are allowed"));
    }
    if positions.chars().count() != text.chars().count() {
        return Err(invalid(field, "needs one digit per character"));
    }
    Ok(())
}

impl PersonalData {
    /// Checks every attribute against the JPKI formats.
    pub fn validate(&self) -> Result<(), PkiError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "empty"));
        }
        if self.address.trim().is_empty() {
            return Err(invalid("address", "empty"));
        }
        check_positions(&self.name, &self.name_substitute_positions, "name substitute positions")?;
        check_positions(
            &self.address,
            &self.address_substitute_positions,
            "address substitute positions",
        )?;
        if !matches!(self.sex.as_str(), "0" | "1" | "2" | "9") {
            return Err(invalid("sex", "not one of 0, 1, 2, 9"));
        }
        BirthDate::parse(&self.birth_date)?;
        Ok(())
    }

    fn pairs(&self) -> [(ObjectIdentifier, &str); 6] {
        [
            (OID_NAME, &self.name),
            (OID_NAME_SUBSTITUTE, &self.name_substitute_positions),
            (OID_SEX, &self.sex),
            (OID_BIRTH_DATE, &self.birth_date),
            (OID_ADDRESS, &self.address),
            (OID_ADDRESS_SUBSTITUTE, &self.address_substitute_positions),
        ]
    }

    /// The six otherNames, in OID order.
    pub fn to_general_names(&self) -> Result<Vec<GeneralName>, PkiError> {
        self.pairs()
            .into_iter()
            .map(|(oid, value)| {
                let utf8 = Utf8StringRef::new(value)?;
                Ok(GeneralName::OtherName(OtherName {
                    type_id: oid,
                    value: Any::encode_from(&utf8)?,
                }))
            })
            .collect()
    }

    /// A (non-critical) subjectAltName extension holding the six otherNames.
    pub fn subject_alt_name(&self) -> Result<Extension, PkiError> {
        let san = SubjectAltName(self.to_general_names()?);
        Ok(Extension {
            extn_id: OID_SUBJECT_ALT_NAME,
            critical: false,
            extn_value: OctetString::new(san.to_der()?)?,
        })
    }

    /// Reads the personal data out of general names, in any order.
    ///
    /// `Ok(None)` when no JPKI attribute is present; an error when some are present but
    /// not all six, when one appears twice, or when a value is not a UTF8String.
    pub fn from_general_names(names: &[GeneralName]) -> Result<Option<Self>, PkiError> {
        let mut found: [Option<String>; 6] = Default::default();
        let oids = [
            OID_NAME,
            OID_NAME_SUBSTITUTE,
            OID_SEX,
            OID_BIRTH_DATE,
            OID_ADDRESS,
            OID_ADDRESS_SUBSTITUTE,
        ];
        let mut any = false;
        for name in names {
            let GeneralName::OtherName(other) = name else {
                continue;
            };
            let Some(i) = oids.iter().position(|o| *o == other.type_id) else {
                continue;
            };
            any = true;
            if found[i].is_some() {
                return Err(invalid("personal data", "attribute repeated"));
            }
            let value: Utf8StringRef<'_> = other
                .value
                .decode_as()
                .map_err(|_| invalid("personal data", "value is not a UTF8String"))?;
            found[i] = Some(value.as_str().to_owned());
        }
        if !any {
            return Ok(None);
        }
        let [Some(name), Some(ns), Some(sex), Some(birth), Some(address), Some(ads)] = found else {
            return Err(invalid("personal data", "not all six attributes present"));
        };
        Ok(Some(PersonalData {
            name,
            name_substitute_positions: ns,
            sex,
            birth_date: birth,
            address,
            address_substitute_positions: ads,
        }))
    }

    /// Reads the personal data from the subjectAltName among `extensions`, if any.
    pub fn from_extensions(extensions: Option<&Extensions>) -> Result<Option<Self>, PkiError> {
        let Some(ext) = extensions
            .into_iter()
            .flatten()
            .find(|e| e.extn_id == OID_SUBJECT_ALT_NAME)
        else {
            return Ok(None);
        };
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())?;
        Self::from_general_names(&san.0)
    }
}

/// Japanese eras as the birth-date attribute numbers them, with their first day.
const ERA_STARTS: [(u8, i32, Month, u8); 5] = [
    (1, 1868, Month::January, 25), // 明治 (first day of 明治元年 as the calendar reckons it)
    (2, 1912, Month::July, 30),    // 大正
    (3, 1926, Month::December, 25), // 昭和
    (4, 1989, Month::January, 8),  // 平成
    (5, 2019, Month::May, 1),      // 令和
];

/// A birth date in the `EYYYYMMDD` form: era digit + Gregorian date.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BirthDate {
    /// Era number 1 (明治) to 5 (令和).
    pub era: u8,
    /// The Gregorian date.
    pub date: Date,
}

impl fmt::Debug for BirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BirthDate(<redacted>)")
    }
}

fn parse_yyyymmdd(s: &str, field: &'static str) -> Result<Date, PkiError> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(field, "not 8 digits YYYYMMDD"));
    }
    let year: i32 = s[0..4].parse().map_err(|_| invalid(field, "year"))?;
    let month: u8 = s[4..6].parse().map_err(|_| invalid(field, "month"))?;
    let day: u8 = s[6..8].parse().map_err(|_| invalid(field, "day"))?;
    let month = Month::try_from(month).map_err(|_| invalid(field, "no such month"))?;
    Date::from_calendar_date(year, month, day).map_err(|_| invalid(field, "no such date"))
}

fn format_yyyymmdd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

impl BirthDate {
    /// Parses `EYYYYMMDD` and checks that the date falls inside era `E`.
    pub fn parse(s: &str) -> Result<Self, PkiError> {
        const F: &str = "birth date";
        if s.len() != 9 || !s.is_ascii() {
            return Err(invalid(F, "not 9 digits EYYYYMMDD"));
        }
        let era = match s.as_bytes()[0] {
            b @ b'1'..=b'5' => b - b'0',
            _ => return Err(invalid(F, "era digit not 1-5")),
        };
        let date = parse_yyyymmdd(&s[1..], F)?;
        let start = |i: usize| {
            let (_, y, m, d) = ERA_STARTS[i];
            Date::from_calendar_date(y, m, d).expect("era table holds valid dates")
        };
        let idx = usize::from(era - 1);
        if date < start(idx) || (idx + 1 < ERA_STARTS.len() && date >= start(idx + 1)) {
            return Err(invalid(F, "date outside the era"));
        }
        Ok(BirthDate { era, date })
    }

    /// Formats as `EYYYYMMDD`.
    pub fn to_attribute(&self) -> String {
        format!("{}{}", self.era, format_yyyymmdd(self.date))
    }
}

/// The registration information the kiosk sends with a request
/// (`id-regInfo-utf8Pairs`: `jpki-birth-date?E…%card-expiry?YYYYMMDD%municipality-code?NNNNNN%`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegInfo {
    /// The holder's birth date (drives the validity).
    pub birth_date: Option<BirthDate>,
    /// The card's expiry date (caps the validity).
    pub card_expiry: Option<Date>,
    /// The 6-digit local-government code (picks the CRL partition).
    pub municipality_code: Option<String>,
    /// The card's identifier (`card-id`): lets 異動 notices find the card's certificates.
    /// The CA keeps only a keyed hash of it.
    pub card_id: Option<String>,
    /// The resident's identifier in the registry (`resident-id`), for 異動 notices.
    /// Personal data: the CA keeps only a keyed hash of it.
    pub resident_id: Option<String>,
}

impl fmt::Debug for RegInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegInfo")
            .field("birth_date", &self.birth_date.map(|_| "<redacted>"))
            .field("card_expiry", &self.card_expiry)
            .field("municipality_code", &self.municipality_code)
            .field("card_id", &self.card_id.as_ref().map(|_| "<redacted>"))
            .field("resident_id", &self.resident_id.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

const KEY_BIRTH: &str = "jpki-birth-date";
const KEY_EXPIRY: &str = "card-expiry";
const KEY_MUNI: &str = "municipality-code";
const KEY_CARD: &str = "card-id";
const KEY_RESIDENT: &str = "resident-id";

fn check_id(value: &str, field: &'static str) -> Result<String, PkiError> {
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid(field, "1-64 ASCII letters, digits or '-'"));
    }
    Ok(value.to_owned())
}

impl RegInfo {
    /// Parses the utf8Pairs string; unknown names are ignored, known ones validated.
    pub fn parse(pairs: &str) -> Result<Self, PkiError> {
        let mut info = RegInfo::default();
        for pair in pairs.split('%').filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('?') else {
                return Err(invalid("regInfo", "pair without '?'"));
            };
            match name {
                KEY_BIRTH => info.birth_date = Some(BirthDate::parse(value)?),
                KEY_EXPIRY => info.card_expiry = Some(parse_yyyymmdd(value, "card expiry")?),
                KEY_MUNI => {
                    if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(invalid("municipality code", "not 6 digits"));
                    }
                    info.municipality_code = Some(value.to_owned());
                }
                KEY_CARD => info.card_id = Some(check_id(value, "card id")?),
                KEY_RESIDENT => info.resident_id = Some(check_id(value, "resident id")?),
                _ => {}
            }
        }
        Ok(info)
    }

    /// Formats as the utf8Pairs string (absent values are left out).
    pub fn to_utf8_pairs(&self) -> String {
        let mut s = String::new();
        if let Some(b) = &self.birth_date {
            s += &format!("{KEY_BIRTH}?{}%", b.to_attribute());
        }
        if let Some(d) = self.card_expiry {
            s += &format!("{KEY_EXPIRY}?{}%", format_yyyymmdd(d));
        }
        if let Some(m) = &self.municipality_code {
            s += &format!("{KEY_MUNI}?{m}%");
        }
        if let Some(c) = &self.card_id {
            s += &format!("{KEY_CARD}?{c}%");
        }
        if let Some(r) = &self.resident_id {
            s += &format!("{KEY_RESIDENT}?{r}%");
        }
        s
    }
}

/// 14:59:59Z, the last second of a day in JST.
const END_OF_JST_DAY: Time = match Time::from_hms(14, 59, 59) {
    Ok(t) => t,
    Err(_) => panic!("constant time"),
};

fn anniversary(birth: Date, year: i32) -> Date {
    // A 29 February birthday falls on 28 February in common years.
    Date::from_calendar_date(year, birth.month(), birth.day()).unwrap_or_else(|_| {
        Date::from_calendar_date(year, Month::February, 28).expect("28 February exists")
    })
}

/// The notAfter of an end-entity certificate issued at `now`.
///
/// The holder's 5th birthday after issuance (dates reckoned in JST; a birthday on the day
/// of issuance does not count), ending at 14:59:59Z = midnight JST; without a birth date,
/// five years after issuance. Capped by the card's expiry (also at 14:59:59Z).
pub fn validity_end(
    now: OffsetDateTime,
    birth: Option<&BirthDate>,
    card_expiry: Option<Date>,
) -> OffsetDateTime {
    let issue_date_jst = (now + time::Duration::hours(9)).date();
    let end_date = match birth {
        Some(b) => {
            let mut first = anniversary(b.date, issue_date_jst.year());
            if first <= issue_date_jst {
                first = anniversary(b.date, issue_date_jst.year() + 1);
            }
            anniversary(b.date, first.year() + 4)
        }
        None => anniversary(issue_date_jst, issue_date_jst.year() + 5),
    };
    let end_date = match card_expiry {
        Some(cap) if cap < end_date => cap,
        _ => end_date,
    };
    end_date.with_time(END_OF_JST_DAY).assume_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn sample() -> PersonalData {
        PersonalData {
            name: "公的　太郎".into(),
            name_substitute_positions: "00000".into(),
            sex: "1".into(),
            birth_date: "319800217".into(),
            address: "東京都千代田区霞が関二丁目１番２号".into(),
            address_substitute_positions: "0".repeat(17),
        }
    }

    #[test]
    fn personal_data_round_trips_through_san_in_any_order() {
        let pd = sample();
        pd.validate().unwrap();
        let mut names = pd.to_general_names().unwrap();
        names.reverse();
        names.swap(1, 3);
        let back = PersonalData::from_general_names(&names).unwrap().unwrap();
        assert_eq!(back, pd);
        let ext = pd.subject_alt_name().unwrap();
        let exts = vec![ext];
        assert_eq!(PersonalData::from_extensions(Some(&exts)).unwrap().unwrap(), pd);
    }

    #[test]
    fn partial_or_repeated_personal_data_is_an_error() {
        let names = sample().to_general_names().unwrap();
        assert!(PersonalData::from_general_names(&names[..5]).is_err());
        let mut twice = names.clone();
        twice.push(names[0].clone());
        assert!(PersonalData::from_general_names(&twice).is_err());
        assert!(PersonalData::from_general_names(&[]).unwrap().is_none());
    }

    #[test]
    fn validation_rejects_bad_attributes() {
        let mut p = sample();
        p.name_substitute_positions = "0000".into();
        assert!(p.validate().is_err());
        let mut p = sample();
        p.name_substitute_positions = "00200".into();
        assert!(p.validate().is_err());
        let mut p = sample();
        p.sex = "3".into();
        assert!(p.validate().is_err());
        let mut p = sample();
        p.address = " ".into();
        p.address_substitute_positions = "0".into();
        assert!(p.validate().is_err());
        let mut p = sample();
        p.birth_date = "419800217".into(); // 1980 is 昭和, not 平成
        assert!(p.validate().is_err());
        assert!(!format!("{p:?}").contains("太郎"));
    }

    #[test]
    fn era_boundaries() {
        assert!(BirthDate::parse("319890107").is_ok());
        assert!(BirthDate::parse("419890107").is_err());
        assert!(BirthDate::parse("419890108").is_ok());
        assert!(BirthDate::parse("520190501").is_ok());
        assert!(BirthDate::parse("420190501").is_err());
        assert!(BirthDate::parse("120000101").is_err());
        assert!(BirthDate::parse("320230230").is_err());
        assert!(BirthDate::parse("019800217").is_err());
        assert_eq!(BirthDate::parse("319800217").unwrap().to_attribute(), "319800217");
    }

    #[test]
    fn reginfo_round_trip_and_validation() {
        let s = "jpki-birth-date?319800217%card-expiry?20351231%municipality-code?131016%card-id?C0FFEE%resident-id?R-1%";
        let r = RegInfo::parse(s).unwrap();
        assert_eq!(r.card_expiry, Some(date!(2035 - 12 - 31)));
        assert_eq!(r.municipality_code.as_deref(), Some("131016"));
        assert_eq!(r.to_utf8_pairs(), s);
        assert!(RegInfo::parse("municipality-code?13101%").is_err());
        assert!(RegInfo::parse("garbage").is_err());
        assert!(RegInfo::parse("card-id?a b%").is_err());
        assert!(!format!("{r:?}").contains("R-1"));
        assert_eq!(RegInfo::parse("other?x%").unwrap(), RegInfo::default());
    }

    #[test]
    fn validity_is_fifth_birthday_after_issuance_capped_by_card() {
        let birth = BirthDate::parse("319800217").unwrap();
        let now = datetime!(2026-11-21 10:00 UTC);
        assert_eq!(validity_end(now, Some(&birth), None), datetime!(2031-02-17 14:59:59 UTC));
        // Issued on the birthday (JST): that birthday does not count.
        let on_birthday = datetime!(2026-02-16 16:00 UTC); // 2026-02-17 01:00 JST
        assert_eq!(
            validity_end(on_birthday, Some(&birth), None),
            datetime!(2031-02-17 14:59:59 UTC)
        );
        let cap = date!(2029 - 06 - 30);
        assert_eq!(validity_end(now, Some(&birth), Some(cap)), datetime!(2029-06-30 14:59:59 UTC));
        assert_eq!(validity_end(now, None, None), datetime!(2031-11-21 14:59:59 UTC));
        let leap = BirthDate::parse("420000229").unwrap();
        assert_eq!(validity_end(now, Some(&leap), None), datetime!(2031-02-28 14:59:59 UTC));
    }

    #[test]
    fn requested_profile_follows_the_policy_extension() {
        assert_eq!(requested_profile(None).unwrap(), CertProfile::UserAuth);
        let sign = vec![CertProfile::Signing.policies_extension().unwrap()];
        assert_eq!(requested_profile(Some(&sign)).unwrap(), CertProfile::Signing);
        let auth = vec![CertProfile::UserAuth.policies_extension().unwrap()];
        assert_eq!(requested_profile(Some(&auth)).unwrap(), CertProfile::UserAuth);
    }
}
