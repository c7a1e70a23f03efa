//! The shipped resident registry: one SQLite file in WAL mode.
//!
//! Dates are stored as ISO `YYYY-MM-DD` text, sex as its JIS X 0303 digit, the status as a
//! word with an optional date. Each row also keeps a lookup key of the name (normalised,
//! spaces removed) so that [`ResidentRegistry::by_name_and_birth`] finds "髙橋 一郎" and
//! "髙橋　一郎" alike. The counter only reads; [`SqliteRegistry::insert`] and
//! [`SqliteRegistry::seed_sample`] exist for set-up, demos and tests.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};
use time::Date;

use super::{
    sample, text_key, RegistryError, ResidentId, ResidentRecord, ResidentRegistry, ResidentStatus,
    Sex,
};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS residents (
    resident_id TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    furigana    TEXT,
    birth_date  TEXT NOT NULL,
    sex         INTEGER NOT NULL CHECK (sex IN (0, 1, 2, 9)),
    address     TEXT NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('resident', 'moved_out', 'deceased', 'pending_change')),
    status_date TEXT CHECK ((status = 'resident') = (status_date IS NULL)),
    adult_ward  INTEGER NOT NULL CHECK (adult_ward IN (0, 1))
) STRICT;
CREATE INDEX IF NOT EXISTS residents_by_name_birth ON residents (name_key, birth_date);
";

const COLUMNS: &str =
    "resident_id, name, furigana, birth_date, sex, address, status, status_date, adult_ward";

/// The resident registry in a SQLite file.
pub struct SqliteRegistry {
    conn: Connection,
}

impl SqliteRegistry {
    /// Opens (creating if needed) the registry at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<SqliteRegistry, RegistryError> {
        let conn = Connection::open(path)?;
        // WAL lets staff tools read while the registry sync writes.
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(RegistryError::SchemaTooNew { found: version });
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(SqliteRegistry { conn })
    }

    /// Adds or replaces a record.
    pub fn insert(&self, r: &ResidentRecord) -> Result<(), RegistryError> {
        insert_with(&self.conn, r)
    }

    /// Loads the fictional sample town of [`sample`] in one transaction.
    pub fn seed_sample(&mut self) -> Result<usize, RegistryError> {
        let residents = sample::residents();
        let tx = self.conn.transaction()?;
        for r in &residents {
            insert_with(&tx, r)?;
        }
        tx.commit()?;
        Ok(residents.len())
    }

    /// Number of records.
    pub fn len(&self) -> Result<usize, RegistryError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM residents", [], |r| r.get(0))?;
        // Invariant: count(*) is never negative.
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Whether the registry is empty.
    pub fn is_empty(&self) -> Result<bool, RegistryError> {
        Ok(self.len()? == 0)
    }
}

fn insert_with(conn: &Connection, r: &ResidentRecord) -> Result<(), RegistryError> {
    let (status, status_date) = match r.status {
        ResidentStatus::Resident => ("resident", None),
        ResidentStatus::MovedOut { on } => ("moved_out", Some(on)),
        ResidentStatus::Deceased { on } => ("deceased", Some(on)),
        ResidentStatus::PendingChange { since } => ("pending_change", Some(since)),
    };
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO residents ({COLUMNS}, name_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            r.id.as_str(),
            r.name,
            r.furigana,
            r.birth_date.to_string(),
            r.sex.code(),
            r.address,
            status,
            status_date.map(|d| d.to_string()),
            r.adult_ward,
            text_key(&r.name),
        ],
    )?;
    Ok(())
}

/// A row as stored, before its meaning is checked.
struct RawRow {
    id: String,
    name: String,
    furigana: Option<String>,
    birth_date: String,
    sex: i64,
    address: String,
    status: String,
    status_date: Option<String>,
    adult_ward: bool,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            id: row.get(0)?,
            name: row.get(1)?,
            furigana: row.get(2)?,
            birth_date: row.get(3)?,
            sex: row.get(4)?,
            address: row.get(5)?,
            status: row.get(6)?,
            status_date: row.get(7)?,
            adult_ward: row.get(8)?,
        })
    }

    fn into_record(self) -> Result<ResidentRecord, RegistryError> {
        let id = ResidentId::new(&self.id)?;
        let corrupt = |what| RegistryError::Corrupt {
            resident: id.redacted(),
            what,
        };
        let birth_date = parse_date(&self.birth_date).ok_or_else(|| corrupt("birth date"))?;
        let sex = u8::try_from(self.sex)
            .ok()
            .and_then(Sex::from_code)
            .ok_or_else(|| corrupt("sex code"))?;
        let status_date = match &self.status_date {
            Some(text) => Some(parse_date(text).ok_or_else(|| corrupt("status date"))?),
            None => None,
        };
        let status = match (self.status.as_str(), status_date) {
            ("resident", None) => ResidentStatus::Resident,
            ("moved_out", Some(on)) => ResidentStatus::MovedOut { on },
            ("deceased", Some(on)) => ResidentStatus::Deceased { on },
            ("pending_change", Some(since)) => ResidentStatus::PendingChange { since },
            _ => return Err(corrupt("status")),
        };
        Ok(ResidentRecord {
            id,
            name: self.name,
            furigana: self.furigana,
            birth_date,
            sex,
            address: self.address,
            status,
            adult_ward: self.adult_ward,
        })
    }
}

fn parse_date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, &format).ok()
}

impl ResidentRegistry for SqliteRegistry {
    fn by_id(&self, id: &ResidentId) -> Result<Option<ResidentRecord>, RegistryError> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM residents WHERE resident_id = ?1"),
                [id.as_str()],
                RawRow::read,
            )
            .optional()?;
        raw.map(RawRow::into_record).transpose()
    }

    fn by_name_and_birth(
        &self,
        name: &str,
        birth_date: Date,
    ) -> Result<Vec<ResidentRecord>, RegistryError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM residents WHERE name_key = ?1 AND birth_date = ?2
             ORDER BY resident_id"
        ))?;
        let rows = stmt.query_map(
            params![text_key(name), birth_date.to_string()],
            RawRow::read,
        )?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(raw?.into_record()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::registry::sample::ids;
    use crate::registry::{match_application, Application, Field, Mismatch};

    fn seeded() -> (tempfile::TempDir, SqliteRegistry) {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
        assert_eq!(reg.seed_sample().unwrap(), sample::residents().len());
        (dir, reg)
    }

    fn id(s: &str) -> ResidentId {
        ResidentId::new(s).unwrap()
    }

    #[test]
    fn records_round_trip_through_the_file() {
        let (dir, reg) = seeded();
        drop(reg);
        // A fresh connection reads what the first one wrote.
        let reg = SqliteRegistry::open(&dir.path().join("registry.sqlite")).unwrap();
        assert_eq!(reg.len().unwrap(), sample::residents().len());
        for expected in sample::residents() {
            let got = reg.by_id(&expected.id).unwrap().unwrap();
            assert!(got == expected, "{:?}", expected.id);
        }
        assert!(reg.by_id(&id("9999999999")).unwrap().is_none());
    }

    #[test]
    fn opens_in_wal_mode_and_reopens_idempotently() {
        let (dir, mut reg) = seeded();
        let mode: String = reg
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // Seeding again replaces rather than duplicates.
        reg.seed_sample().unwrap();
        assert_eq!(reg.len().unwrap(), sample::residents().len());
        assert!(dir.path().join("registry.sqlite-wal").exists());
    }

    #[test]
    fn looks_up_by_name_and_birth_date() {
        let (_dir, reg) = seeded();
        let table = [
            ("髙橋　一郎", date!(1975 - 04 - 12), vec![ids::TAKAHASHI]),
            ("髙橋 一郎", date!(1975 - 04 - 12), vec![ids::TAKAHASHI]),
            ("髙橋一郎", date!(1975 - 04 - 12), vec![ids::TAKAHASHI]),
            ("𠮷田　花子", date!(1988 - 09 - 30), vec![ids::YOSHIDA]),
            // Another glyph or another date finds nobody.
            ("高橋　一郎", date!(1975 - 04 - 12), vec![]),
            ("髙橋　一郎", date!(1975 - 04 - 13), vec![]),
        ];
        for (name, birth, expected) in table {
            let found: Vec<String> = reg
                .by_name_and_birth(name, birth)
                .unwrap()
                .into_iter()
                .map(|r| r.id.as_str().to_owned())
                .collect();
            assert_eq!(found, expected, "{name} {birth}");
        }
    }

    #[test]
    fn namesakes_born_the_same_day_are_all_returned() {
        let (_dir, reg) = seeded();
        let mut twin = reg.by_id(&id(ids::YAMAMOTO)).unwrap().unwrap();
        twin.id = id("2000000001");
        twin.address = format!("{}駅前一丁目１番１号", sample::TOWN);
        reg.insert(&twin).unwrap();
        let found = reg
            .by_name_and_birth("山本　恵子", date!(1980 - 02 - 17))
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [ids::YAMAMOTO, "2000000001"]);
    }

    #[test]
    fn statuses_and_flags_survive_storage() {
        let (_dir, reg) = seeded();
        let get = |s: &str| reg.by_id(&id(s)).unwrap().unwrap();
        assert_eq!(
            get(ids::MOVED_OUT).status,
            ResidentStatus::MovedOut {
                on: date!(2026 - 03 - 31)
            }
        );
        assert_eq!(
            get(ids::DECEASED).status,
            ResidentStatus::Deceased {
                on: date!(2025 - 12 - 01)
            }
        );
        assert_eq!(
            get(ids::PENDING).status,
            ResidentStatus::PendingChange {
                since: date!(2026 - 11 - 20)
            }
        );
        assert_eq!(get(ids::PENDING).birth_date, date!(1996 - 02 - 29));
        assert!(get(ids::ADULT_WARD).adult_ward);
        assert!(!get(ids::YAMAMOTO).adult_ward);
        assert_eq!(get(ids::YOSHIDA).name, "𠮷田　花子");
    }

    #[test]
    fn application_checked_against_the_stored_record() {
        let (_dir, reg) = seeded();
        let record = reg.by_id(&id(ids::YAMAMOTO)).unwrap().unwrap();
        let mut app = Application {
            name: "山本 恵子".into(),
            furigana: "やまもと けいこ".into(),
            birth_date: crate::rules::wareki::parse("昭和55年2月17日")
                .unwrap()
                .to_date(),
            sex: Sex::Female,
            address: format!("{}本郷二丁目1番16号", sample::TOWN),
        };
        assert_eq!(match_application(&record, &app), Ok(()));
        app.address = format!("{}本郷二丁目1番17号", sample::TOWN);
        assert_eq!(
            match_application(&record, &app),
            Err(Mismatch {
                field: Field::Address
            })
        );
    }

    #[test]
    fn corrupt_rows_are_reported_with_a_redacted_id() {
        let (_dir, reg) = seeded();
        reg.conn
            .execute(
                "UPDATE residents SET birth_date = '1980-02-30' WHERE resident_id = ?1",
                [ids::YAMAMOTO],
            )
            .unwrap();
        match reg.by_id(&id(ids::YAMAMOTO)) {
            Err(RegistryError::Corrupt { resident, what }) => {
                assert_eq!((resident.as_str(), what), ("*******008", "birth date"));
            }
            other => panic!("expected a corrupt row, got {other:?}"),
        }
        // The schema itself refuses a status without its date.
        let refused = reg.conn.execute(
            "UPDATE residents SET status = 'deceased', status_date = NULL WHERE resident_id = ?1",
            [ids::KUWAHARA],
        );
        assert!(refused.is_err());
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        assert!(matches!(
            SqliteRegistry::open(&path),
            Err(RegistryError::SchemaTooNew { found }) if found == SCHEMA_VERSION + 1
        ));
    }
}
