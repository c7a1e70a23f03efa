//! The plain data a visit is made of: ids, slots, dates, the application form, the
//! registered record as the registry adapter reports it, identity documents.
//!
//! Every type here is serde-serialisable, because events and commands carry them into the
//! journal, and every type that holds personal data has a redacted `Debug`. Nothing here
//! checks anything: the rules live in `crate::rules`, the decisions in [`super::state`].

use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::card::files::KeySlot;
use crate::registry::{Application, ResidentId, ResidentRecord, ResidentStatus, Sex};
use crate::rules::identity::DocumentGroup;

/// The kiosk's own id of one visit (not personal data; chosen by the driver).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VisitId(pub String);

/// A registry id as it travels in commands: `Debug` shows it redacted (`*******001`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResidentRef(pub String);

impl fmt::Debug for ResidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentRef({})", redact(&self.0))
    }
}

impl From<&str> for ResidentRef {
    fn from(id: &str) -> ResidentRef {
        ResidentRef(id.to_owned())
    }
}

/// A certificate in DER, as written to and read from the card. The signing certificate
/// carries the holder's name and address, so `Debug` shows only the length; the journal
/// stores it as hex.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Der(#[serde(with = "hex_bytes")] pub Vec<u8>);

impl fmt::Debug for Der {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Der({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Der {
    fn from(bytes: Vec<u8>) -> Der {
        Der(bytes)
    }
}

/// A card's 16-byte serial (GET DATA `01 01`), as lower-case hex. `Debug` shows the last
/// four digits only: enough for staff to tell two cards apart.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CardSerial(pub String);

impl CardSerial {
    /// The last four hex digits, as shown to staff.
    pub fn tail(&self) -> &str {
        let start = self.0.len().saturating_sub(4);
        self.0.get(start..).unwrap_or("")
    }
}

impl fmt::Debug for CardSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardSerial(…{})", self.tail())
    }
}

/// One of the card's two key pairs, as it travels in events and commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// User authentication (利用者証明用).
    Auth,
    /// Signing (署名用).
    Sign,
}

impl Slot {
    /// Both slots, in the order the visit works on them.
    pub const ALL: [Slot; 2] = [Slot::Auth, Slot::Sign];

    /// The card layer's name of the slot.
    pub fn key_slot(self) -> KeySlot {
        match self {
            Slot::Auth => KeySlot::Auth,
            Slot::Sign => KeySlot::Sign,
        }
    }

    /// A one-byte tag, used in the self-test challenge.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Slot::Auth => 1,
            Slot::Sign => 2,
        }
    }
}

/// Seconds since the Unix epoch, as the driver's clock reports them in `Tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// A CMP transaction id (16 bytes, hex in JSON). Chosen once per visit from the driver's
/// randomness and journaled, so a retry re-sends the same transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TransactionId(#[serde(with = "hex16")] pub [u8; 16]);

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId({})", hex::encode(self.0))
    }
}

/// The randomness a visit needs, drawn by the driver when it opens the visit and kept in
/// the journal: the state machine never draws random numbers itself, so a replay makes
/// the same choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// The CMP transaction id of the certificate request.
    pub transaction: TransactionId,
    /// The CMP transaction id of the revocation request (re-issue after loss).
    pub revocation: TransactionId,
    /// The CMP sender nonce of the certificate request.
    #[serde(with = "hex16")]
    pub sender_nonce: [u8; 16],
    /// Mixed into the self-test challenge each key signs.
    #[serde(with = "hex16")]
    pub test_nonce: [u8; 16],
}

impl Seed {
    /// A seed drawn from `rng` (the counter passes the OS generator).
    pub fn from_rng(rng: &mut impl rand_core::RngCore) -> Seed {
        let mut r = [[0u8; 16]; 4];
        for x in &mut r {
            rng.fill_bytes(x);
        }
        Seed {
            transaction: TransactionId(r[0]),
            revocation: TransactionId(r[1]),
            sender_nonce: r[2],
            test_nonce: r[3],
        }
    }
}

/// A certificate the resident holds now: read off the card (renewal) or found at the CA
/// (re-issue after loss, when the card is gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentCert {
    /// The slot.
    pub slot: Slot,
    /// The certificate serial number, hex.
    pub serial: String,
    /// The last day it is valid.
    #[serde(with = "iso_date")]
    pub not_after: Date,
}

/// A voluntary proxy's pending request: the 照会書(兼回答書) mailed to the holder's
/// registered address on the first visit, answered on the second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InquiryCase {
    /// The case number printed on the letter.
    pub case: String,
    /// The holder's registry id.
    pub resident_id: ResidentRef,
    /// The last day the answer sheet is accepted.
    #[serde(with = "iso_date")]
    pub expires: Date,
}

/// A certificate field the form gives a substitute for (代替文字).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubstitutedField {
    /// 氏名.
    Name,
    /// 住所.
    Address,
}

/// One substitute the resident agreed to, by character index in the registered text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubstituteChoice {
    /// Name or address.
    pub field: SubstitutedField,
    /// The character index in the registered text.
    pub index: usize,
    /// The substitute character.
    pub replacement: char,
}

impl fmt::Debug for SubstituteChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubstituteChoice({:?} #{})", self.field, self.index)
    }
}

/// The application form as staff entered it. Personal data: `Debug` shows nothing but the
/// redacted resident id.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    /// The registry id staff looked the resident up by.
    pub resident_id: String,
    /// 氏名, in the registered glyphs.
    pub name: String,
    /// ふりがな.
    pub furigana: String,
    /// 生年月日.
    #[serde(with = "iso_date")]
    pub birth_date: Date,
    /// 性別 as the JIS X 0303 digit.
    pub sex: u8,
    /// 住所.
    pub address: String,
    /// The resident asks for the signing certificate.
    pub want_sign: bool,
    /// The resident asks for the user-authentication certificate.
    pub want_auth: bool,
    /// The substitutes (代替文字) shown to and accepted by the resident.
    pub substitutes: Vec<SubstituteChoice>,
    /// The 照会書 case number, on a proxy's second visit.
    #[serde(default)]
    pub case: Option<String>,
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Form")
            .field("resident_id", &redact(&self.resident_id))
            .finish_non_exhaustive()
    }
}

impl Form {
    /// The form as the registry's matcher reads it; `None` when the sex digit is not a
    /// JIS X 0303 code.
    pub fn application(&self) -> Option<Application> {
        Some(Application {
            name: self.name.clone(),
            furigana: self.furigana.clone(),
            birth_date: self.birth_date,
            sex: Sex::from_code(self.sex)?,
            address: self.address.clone(),
        })
    }
}

/// Where a resident stands in the registry, as the registry adapter reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Living in the municipality.
    Resident,
    /// Moved out.
    MovedOut,
    /// Deceased.
    Deceased,
    /// A 異動 is notified but not entered.
    PendingChange,
}

/// The registered record of the resident, as the registry adapter reports it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredResident {
    /// Registry id.
    pub id: String,
    /// 氏名 as registered.
    pub name: String,
    /// ふりがな, if registered.
    pub furigana: Option<String>,
    /// 生年月日.
    #[serde(with = "iso_date")]
    pub birth_date: Date,
    /// 性別 (JIS X 0303 digit).
    pub sex: u8,
    /// 住所 as registered.
    pub address: String,
    /// Where the resident stands.
    pub standing: Standing,
    /// 成年被後見人.
    pub adult_ward: bool,
}

impl fmt::Debug for RegisteredResident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredResident")
            .field("id", &redact(&self.id))
            .field("standing", &self.standing)
            .finish_non_exhaustive()
    }
}

impl RegisteredResident {
    /// Builds the report from the registry module's record (what the SQLite registry
    /// adapter returns).
    pub fn from_record(record: &ResidentRecord) -> RegisteredResident {
        RegisteredResident {
            id: record.id.as_str().to_owned(),
            name: record.name.clone(),
            furigana: record.furigana.clone(),
            birth_date: record.birth_date,
            sex: record.sex.code(),
            address: record.address.clone(),
            standing: match record.status {
                ResidentStatus::Resident => Standing::Resident,
                ResidentStatus::MovedOut { .. } => Standing::MovedOut,
                ResidentStatus::Deceased { .. } => Standing::Deceased,
                ResidentStatus::PendingChange { .. } => Standing::PendingChange,
            },
            adult_ward: record.adult_ward,
        }
    }

    /// The record as the registry's matcher reads it; `None` for a malformed id or sex.
    pub fn record(&self) -> Option<ResidentRecord> {
        Some(ResidentRecord {
            id: ResidentId::new(&self.id).ok()?,
            name: self.name.clone(),
            furigana: self.furigana.clone(),
            birth_date: self.birth_date,
            sex: Sex::from_code(self.sex)?,
            address: self.address.clone(),
            // The standing is checked separately; the dates are not needed for matching.
            status: ResidentStatus::Resident,
            adult_ward: self.adult_ward,
        })
    }
}

/// Who stands at the counter for the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenterKind {
    /// The holder in person.
    Holder,
    /// A legal representative (under 15, adult ward).
    LegalRepresentative,
    /// A voluntary proxy (任意代理人).
    VoluntaryProxy,
}

/// An identity document staff inspected. The number is recorded; images never are.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdDocument {
    /// The document type as the staff screen names it (`driving_licence`, `passport`…).
    pub kind: String,
    /// A (photo) or B (non-photo) group.
    pub group: DocumentGroup,
    /// The document number, recorded for the file; redacted in `Debug`.
    pub number: String,
}

impl fmt::Debug for IdDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IdDocument({}, {:?}, {})",
            self.kind,
            self.group,
            redact(&self.number)
        )
    }
}

/// What the card detection found in the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardKind {
    /// A My Number card's JPKI-AP (`JPKIAPICCTOKEN2`).
    MyNumber,
    /// A Juki-era card (`JPKIAPICCTOKEN`): refused.
    Juki,
    /// Anything else (no JPKI-AP, smartphone token…): refused.
    Other,
}

/// `*****001`: the form in which ids appear in `Debug`.
pub(crate) fn redact(id: &str) -> String {
    let keep = id.chars().count().min(3);
    let hidden = id.chars().count() - keep;
    let shown: String = id.chars().skip(hidden).collect();
    format!("{}{}", "*".repeat(hidden), shown)
}

/// Dates as `YYYY-MM-DD` in the journal.
pub(crate) mod iso_date {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use time::{macros::format_description, Date};

    const FORMAT: &[time::format_description::FormatItem<'static>] =
        format_description!("[year]-[month]-[day]");

    pub fn serialize<S: Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
        let text = date.format(FORMAT).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = String::deserialize(d)?;
        Date::parse(&text, FORMAT).map_err(D::Error::custom)
    }
}

/// 16-byte values as hex in the journal.
pub(crate) mod hex16 {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 16];
        hex::decode_to_slice(text, &mut out).map_err(D::Error::custom)?;
        Ok(out)
    }
}

/// DER and other byte strings as hex in the journal.
pub(crate) mod hex_bytes {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_debug_hides_personal_data() {
        let form = Form {
            resident_id: "0000123456".into(),
            name: "山田　太郎".into(),
            furigana: "やまだ　たろう".into(),
            birth_date: time::macros::date!(1980 - 02 - 17),
            sex: 1,
            address: "若葉町本郷一丁目".into(),
            want_sign: true,
            want_auth: true,
            substitutes: vec![],
            case: None,
        };
        let shown = format!("{form:?}");
        assert!(!shown.contains("山田") && !shown.contains("1980") && !shown.contains("123"));
        assert!(shown.contains("*******456"), "{shown}");
        let json = serde_json::to_string(&form).unwrap();
        assert!(json.contains("\"birth_date\":\"1980-02-17\""), "{json}");
        assert_eq!(serde_json::from_str::<Form>(&json).unwrap(), form);
    }

    #[test]
    fn serial_debug_shows_tail_only() {
        let serial = CardSerial("00112233445566778899aabbccddeeff".into());
        assert_eq!(format!("{serial:?}"), "CardSerial(…eeff)");
    }
}
