//! The resident registry (住民基本台帳) as the counter sees it, and the check of an
//! application against the registered record.
//!
//! What it is:
//! - [`ResidentRegistry`], the adapter trait for the municipality's registry: look a
//!   resident up by id, or by name and birth date;
//! - [`sqlite::SqliteRegistry`], the shipped implementation (SQLite in WAL mode), with a
//!   fictional sample town in [`sample`];
//! - [`match_application`], a pure function that names the first field in which the
//!   application differs from the record, and [`ResidentRecord::check_servable`], which
//!   refuses residents who moved out, died, or have a 異動 pending.
//!
//! What it is not: it never writes the registry on behalf of the counter (異動 are the
//! registry's own business; the certificate revocation that follows them is J-LIS's), and
//! it does not decide eligibility (see `rules::age`).
//!
//! Personal data: `Debug` of records and applications prints only the redacted resident
//! id; errors name fields, never their contents.

use std::fmt;

use time::Date;

pub use crate::rules::attributes::Sex;
use crate::rules::{kana, repertoire};

pub mod sample;
pub mod sqlite;

/// A resident's id in the municipality's registry (宛名番号): 1–16 ASCII letters or
/// digits. `Debug` and [`redacted`](Self::redacted) show only the last three.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentId(String);

impl ResidentId {
    /// Checks the form of an id.
    pub fn new(id: &str) -> Result<ResidentId, RegistryError> {
        let ok = (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(ResidentId(id.to_owned()))
        } else {
            Err(RegistryError::BadId)
        }
    }

    /// The full id, for the registry query itself; never for logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used in logs and the audit trail: `*******001`.
    pub fn redacted(&self) -> String {
        let keep = self.0.len().min(3);
        let (hidden, shown) = self.0.split_at(self.0.len() - keep);
        format!("{}{}", "*".repeat(hidden.len()), shown)
    }
}

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({})", self.redacted())
    }
}

/// Where the resident stands in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidentStatus {
    /// Registered and living in the municipality.
    Resident,
    /// Moved out (転出) on the date given.
    MovedOut {
        /// The date of the move.
        on: Date,
    },
    /// Died on the date given.
    Deceased {
        /// The date of death.
        on: Date,
    },
    /// A 異動 (move within the town, name change…) has been notified but not yet entered:
    /// the certified items are about to change.
    PendingChange {
        /// The date the 異動 was notified.
        since: Date,
    },
}

/// Why the counter may not serve a resident whatever the application says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotServable {
    /// The resident moved out; the new municipality serves them.
    #[error("the resident has moved out")]
    MovedOut,
    /// The resident is recorded as deceased.
    #[error("the resident is recorded as deceased")]
    Deceased,
    /// A 異動 is pending: enter it first, or the new certificate would be revoked at once.
    #[error("a change of registered items (異動) is pending")]
    PendingChange,
}

/// A registered resident, with the name and address in their registered glyphs.
#[derive(Clone, PartialEq, Eq)]
pub struct ResidentRecord {
    /// The registry id.
    pub id: ResidentId,
    /// 氏名 as registered (may hold characters outside the certificate repertoire).
    pub name: String,
    /// ふりがな as registered, if the registry has it.
    pub furigana: Option<String>,
    /// 生年月日.
    pub birth_date: Date,
    /// 性別.
    pub sex: Sex,
    /// 住所 as registered.
    pub address: String,
    /// Where the resident stands.
    pub status: ResidentStatus,
    /// 成年被後見人 (adult ward): no signing certificate.
    pub adult_ward: bool,
}

impl fmt::Debug for ResidentRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResidentRecord")
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl ResidentRecord {
    /// Whether the counter may serve this resident at all.
    pub fn check_servable(&self) -> Result<(), NotServable> {
        match self.status {
            ResidentStatus::Resident => Ok(()),
            ResidentStatus::MovedOut { .. } => Err(NotServable::MovedOut),
            ResidentStatus::Deceased { .. } => Err(NotServable::Deceased),
            ResidentStatus::PendingChange { .. } => Err(NotServable::PendingChange),
        }
    }
}

/// The items the resident (or staff) wrote on the application form.
#[derive(Clone, PartialEq, Eq)]
pub struct Application {
    /// 氏名, in the registered glyphs.
    pub name: String,
    /// ふりがな, hiragana or katakana.
    pub furigana: String,
    /// 生年月日 (read from 和暦 or Gregorian by `rules::wareki`).
    pub birth_date: Date,
    /// 性別.
    pub sex: Sex,
    /// 住所.
    pub address: String,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application").finish_non_exhaustive()
    }
}

/// An item of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// 氏名.
    Name,
    /// ふりがな.
    Furigana,
    /// 生年月日.
    BirthDate,
    /// 性別.
    Sex,
    /// 住所.
    Address,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Name => "name",
            Field::Furigana => "furigana",
            Field::BirthDate => "birth date",
            Field::Sex => "sex",
            Field::Address => "address",
        })
    }
}

/// The application differs from the registry; the visit stops and staff see the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the application's {field} differs from the registry")]
pub struct Mismatch {
    /// The first differing field, in form order: name, furigana, birth date, sex, address.
    pub field: Field,
}

/// Compares an application with the registered record and names the first field that
/// differs.
///
/// - Name and address: equal after `repertoire::normalise` (half-width ASCII to full
///   width) with all spaces removed. Glyphs are compared exactly: 高橋 is not 髙橋;
///   substitutes are chosen later, for the certificate only.
/// - Furigana: equal after bringing both to katakana with collapsed spaces; an invalid
///   reading on the form differs. Not compared when the registry has none.
/// - Birth date and sex: equal.
pub fn match_application(record: &ResidentRecord, app: &Application) -> Result<(), Mismatch> {
    let differs = |field| Err(Mismatch { field });
    if text_key(&record.name) != text_key(&app.name) {
        return differs(Field::Name);
    }
    if let Some(registered) = &record.furigana {
        let as_katakana = |s: &str| kana::normalise_furigana(s, kana::Script::Katakana);
        match (as_katakana(registered), as_katakana(&app.furigana)) {
            (Ok(a), Ok(b)) if a == b => {}
            _ => return differs(Field::Furigana),
        }
    }
    if record.birth_date != app.birth_date {
        return differs(Field::BirthDate);
    }
    if record.sex != app.sex {
        return differs(Field::Sex);
    }
    if text_key(&record.address) != text_key(&app.address) {
        return differs(Field::Address);
    }
    Ok(())
}

/// The form in which names and addresses are compared and looked up.
pub(crate) fn text_key(text: &str) -> String {
    repertoire::normalise(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// Why the registry could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A resident id is not 1–16 ASCII letters or digits.
    #[error("malformed resident id")]
    BadId,
    /// The database could not be opened, read or written.
    #[error("registry database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database was written by a newer kiosk whose schema this one does not know.
    #[error("registry schema version {found} is newer than this kiosk's")]
    SchemaTooNew {
        /// The `user_version` found.
        found: i64,
    },
    /// A stored row breaks the schema's meaning (bad date, unknown status…).
    #[error("registry row for resident {resident} is corrupt: {what}")]
    Corrupt {
        /// The redacted id of the row.
        resident: String,
        /// What is wrong.
        what: &'static str,
    },
}

/// The municipality's resident registry, read-only from the counter.
pub trait ResidentRegistry {
    /// The record with this id, if any.
    fn by_id(&self, id: &ResidentId) -> Result<Option<ResidentRecord>, RegistryError>;

    /// Every record with this name and birth date (several residents can share both).
    /// The name is compared as [`match_application`] compares it.
    fn by_name_and_birth(
        &self,
        name: &str,
        birth_date: Date,
    ) -> Result<Vec<ResidentRecord>, RegistryError>;
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn record() -> ResidentRecord {
        ResidentRecord {
            id: ResidentId::new("1000000001").unwrap(),
            name: "髙橋　一郎".into(),
            furigana: Some("タカハシ　イチロウ".into()),
            birth_date: date!(1975 - 04 - 12),
            sex: Sex::Male,
            address: "山吹県白樺郡若葉町本郷一丁目２番３号".into(),
            status: ResidentStatus::Resident,
            adult_ward: false,
        }
    }

    fn application() -> Application {
        Application {
            name: "髙橋 一郎".into(),
            furigana: "たかはし いちろう".into(),
            birth_date: date!(1975 - 04 - 12),
            sex: Sex::Male,
            address: "山吹県白樺郡若葉町本郷一丁目2番3号".into(),
        }
    }

    #[test]
    fn matching_application_passes() {
        assert_eq!(match_application(&record(), &application()), Ok(()));
        let mut no_reading = record();
        no_reading.furigana = None;
        let mut app = application();
        app.furigana = "なんでも".into();
        assert_eq!(match_application(&no_reading, &app), Ok(()));
    }

    #[test]
    fn each_differing_field_is_named() {
        type Edit = fn(&mut Application);
        let table: [(Edit, Field); 8] = [
            (|a| a.name = "高橋 一郎".into(), Field::Name),
            (|a| a.name = "髙橋 一朗".into(), Field::Name),
            (|a| a.furigana = "たかはし いちろ".into(), Field::Furigana),
            (|a| a.furigana = "髙橋".into(), Field::Furigana),
            (|a| a.birth_date = date!(1975 - 04 - 13), Field::BirthDate),
            (|a| a.sex = Sex::Female, Field::Sex),
            (
                |a| a.address = "山吹県白樺郡若葉町本郷一丁目2番4号".into(),
                Field::Address,
            ),
            (
                |a| a.address = "山吹県白樺郡若葉町本郷1丁目2番3号".into(),
                Field::Address,
            ),
        ];
        for (edit, field) in table {
            let mut app = application();
            edit(&mut app);
            assert_eq!(match_application(&record(), &app), Err(Mismatch { field }));
        }
        // The first field in form order wins.
        let mut app = application();
        app.sex = Sex::Female;
        app.name = "高橋 一郎".into();
        assert_eq!(
            match_application(&record(), &app),
            Err(Mismatch { field: Field::Name })
        );
    }

    #[test]
    fn status_decides_whether_to_serve() {
        let d = date!(2026 - 01 - 01);
        let table = [
            (ResidentStatus::Resident, Ok(())),
            (
                ResidentStatus::MovedOut { on: d },
                Err(NotServable::MovedOut),
            ),
            (
                ResidentStatus::Deceased { on: d },
                Err(NotServable::Deceased),
            ),
            (
                ResidentStatus::PendingChange { since: d },
                Err(NotServable::PendingChange),
            ),
        ];
        for (status, expected) in table {
            let mut r = record();
            r.status = status;
            assert_eq!(r.check_servable(), expected, "{status:?}");
        }
    }

    #[test]
    fn ids_are_checked_and_redacted() {
        let id = ResidentId::new("1000000001").unwrap();
        assert_eq!(id.redacted(), "*******001");
        assert_eq!(ResidentId::new("7").unwrap().redacted(), "7");
        for bad in ["", "12345678901234567", "10-01", "１０"] {
            assert!(
                matches!(ResidentId::new(bad), Err(RegistryError::BadId)),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_output_carries_no_personal_data() {
        let text = format!(
            "{:?} {:?} {}",
            record(),
            application(),
            Mismatch { field: Field::Name }
        );
        for secret in ["髙橋", "一郎", "タカハシ", "若葉町", "1975", "1000000001"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("*******001"));
    }
}
