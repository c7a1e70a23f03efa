//! The voluntary proxy's case file (任意代理人) and its letter: [`SqliteCases`] keeps each
//! case (number, holder, expiry, the request as entered) in SQLite; [`Records`] puts it
//! beside the resident registry so the driver reaches both through its registry port;
//! [`inquiry_pdf`] lays out the 照会書兼回答書 mailed to the holder's registered address,
//! with the printer's fonts (`print::pdf`).
//!
//! What it is not: the rule on what makes a case valid (the visit checks holder and
//! expiry, `state.rs`), or a mailer. The answer sheet's PIN boxes are printed empty: the
//! holder writes the PINs by hand, the kiosk never prints one.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use time::Date;

use super::{fetch_from, RegistryPort, StoreError};
use crate::issuance::event::Event;
use crate::issuance::model::{Form, InquiryCase, RegisteredResident, ResidentRef};
use crate::print::pdf::{self, Block, Font, Paper};
use crate::print::PrintError;
use crate::registry::ResidentRegistry;

/// The proxy case file in SQLite (WAL).
#[derive(Debug)]
pub struct SqliteCases {
    db: Connection,
}

fn parse_date(text: &str) -> Option<Date> {
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

impl SqliteCases {
    /// Opens (creating) the case file at `path`.
    pub fn open(path: &Path) -> Result<SqliteCases, StoreError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS proxy_cases (
               case_number TEXT PRIMARY KEY, resident_id TEXT NOT NULL, expires TEXT NOT NULL,
               request TEXT NOT NULL, opened INTEGER NOT NULL);",
        )?;
        Ok(SqliteCases { db })
    }

    /// Records `case` with the request as entered; the same case number again changes
    /// nothing (a re-run after a restart), so a case is never rewritten.
    pub fn store(&mut self, case: &InquiryCase, request: Option<&Form>) -> Result<(), StoreError> {
        let request = request
            .map(|f| serde_json::to_string(f).unwrap_or_default())
            .unwrap_or_default();
        self.db.execute(
            "INSERT OR IGNORE INTO proxy_cases (case_number, resident_id, expires, request, opened)
             VALUES (?1, ?2, ?3, ?4, unixepoch())",
            params![
                case.case,
                case.resident_id.0,
                case.expires.to_string(),
                request
            ],
        )?;
        Ok(())
    }

    /// The case numbered `number`, if recorded.
    pub fn lookup(&self, number: &str) -> Result<Option<InquiryCase>, StoreError> {
        let row: Option<(String, String)> = self
            .db
            .query_row(
                "SELECT resident_id, expires FROM proxy_cases WHERE case_number = ?1",
                [number],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(resident, expires)| {
            Some(InquiryCase {
                case: number.to_owned(),
                resident_id: ResidentRef(resident),
                expires: parse_date(&expires)?,
            })
        }))
    }

    /// The request recorded with a case (the form of the first visit).
    pub fn request(&self, number: &str) -> Result<Option<Form>, StoreError> {
        let text: Option<String> = self
            .db
            .query_row(
                "SELECT request FROM proxy_cases WHERE case_number = ?1",
                [number],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }
}

/// The resident registry and the proxy case file: the municipality's records the driver
/// reaches through its registry port.
#[derive(Debug)]
pub struct Records<R> {
    /// The resident registry.
    pub registry: R,
    /// The proxy case file.
    pub cases: SqliteCases,
}

impl<R: ResidentRegistry> RegistryPort for Records<R> {
    fn fetch(&mut self, id: &ResidentRef) -> Event {
        fetch_from(&self.registry, id)
    }

    fn case_lookup(&mut self, case: &str) -> Option<Event> {
        match self.cases.lookup(case) {
            Ok(case) => Some(Event::CaseAnswered { case }),
            Err(e) => {
                tracing::warn!(error = %e, "case file lookup failed");
                None
            }
        }
    }

    fn case_store(&mut self, case: &InquiryCase, request: Option<&Form>) -> Option<Event> {
        match self.cases.store(case, request) {
            Ok(()) => Some(Event::CaseStored),
            Err(e) => {
                tracing::warn!(error = %e, "case not recorded");
                None
            }
        }
    }
}

/// What the 照会書兼回答書 says: the case and where it goes.
#[derive(Clone, PartialEq, Eq)]
pub struct InquiryLetter {
    /// The case.
    pub case: InquiryCase,
    /// The holder as registered (the letter goes to this address only).
    pub holder: RegisteredResident,
    /// The date of the proxy's request.
    pub requested: Date,
}

impl std::fmt::Debug for InquiryLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InquiryLetter")
            .field("case", &self.case.case)
            .finish_non_exhaustive()
    }
}

fn date_ja(d: Date) -> String {
    format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day())
}

/// The 照会書兼回答書 as an A4 PDF: the inquiry to the holder, then the answer sheet the
/// proxy brings back on the second visit (case number, expiry, boxes the holder fills in).
pub fn inquiry_pdf(letter: &InquiryLetter, font: &Font) -> Result<Vec<u8>, PrintError> {
    let w = Paper::A4.width_mm() - 2.0 * Paper::A4.margin_mm();
    let h = &letter.holder;
    let case = &letter.case;
    let blocks = vec![
        Block::left(10.5, format!("〒　{}", h.address)),
        Block::left(12.0, format!("{}　様", h.name)),
        Block::Gap(8.0),
        Block::centered(16.0, w, "照会書兼回答書"),
        Block::centered(10.0, w, "（電子証明書の発行申請について）"),
        Block::Gap(4.0),
        Block::pair(10.5, w, "照会番号", case.case.clone()),
        Block::pair(10.5, w, "申請日", date_ja(letter.requested)),
        Block::pair(10.5, w, "回答期限", date_ja(case.expires)),
        Block::Rule,
        Block::left(
            10.5,
            "あなたの電子証明書の発行について、代理人から申請がありました。",
        ),
        Block::left(10.5, "ご本人が申請したものであれば、下の回答書に記入し、"),
        Block::left(10.5, "代理人が回答期限までに窓口へお持ちください。"),
        Block::left(
            10.5,
            "心当たりがない場合は、市区町村の窓口へご連絡ください。",
        ),
        Block::Gap(6.0),
        Block::centered(14.0, w, "回答書"),
        Block::pair(10.5, w, "照会番号", case.case.clone()),
        Block::left(
            10.5,
            "上記の申請は、私が代理人に依頼したものに相違ありません。",
        ),
        Block::left(10.5, "氏名（自署）：＿＿＿＿＿＿＿＿＿＿＿＿＿＿＿＿"),
        Block::Gap(3.0),
        Block::left(10.5, "利用者証明用電子証明書の暗証番号（数字4桁）：□□□□"),
        Block::left(
            10.5,
            "署名用電子証明書の暗証番号（英数字6〜16桁）：□□□□□□□□□□□□□□□□",
        ),
        Block::left(9.0, "暗証番号は記入後、目隠しシールを貼ってください。"),
        Block::Rule,
        Block::left(
            9.0,
            format!("この回答書は{}まで有効です。", date_ja(case.expires)),
        ),
    ];
    pdf::render("照会書兼回答書", font, Paper::A4, &blocks, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(n: &str, resident: &str) -> InquiryCase {
        InquiryCase {
            case: n.into(),
            resident_id: ResidentRef(resident.into()),
            expires: time::macros::date!(2026 - 12 - 22),
        }
    }

    #[test]
    fn a_case_is_kept_once_and_found_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.db");
        let mut cases = SqliteCases::open(&path).unwrap();
        assert_eq!(cases.lookup("v-1").unwrap(), None);
        cases.store(&case("v-1", "R-1"), None).unwrap();
        // Storing again (after a restart) is a no-op, even with other data: never rewritten.
        cases.store(&case("v-1", "R-2"), None).unwrap();
        let again = SqliteCases::open(&path).unwrap();
        assert_eq!(again.lookup("v-1").unwrap(), Some(case("v-1", "R-1")));
        assert_eq!(again.lookup("v-2").unwrap(), None);
        assert_eq!(again.request("v-1").unwrap(), None);
    }

    #[test]
    fn letter_debug_shows_no_personal_data() {
        let letter = InquiryLetter {
            case: case("v-9", "R-9"),
            holder: RegisteredResident {
                id: "R-9".into(),
                name: "山田　花子".into(),
                furigana: None,
                birth_date: time::macros::date!(1990 - 01 - 20),
                sex: 2,
                address: "山吹県".into(),
                standing: crate::issuance::model::Standing::Resident,
                adult_ward: false,
            },
            requested: time::macros::date!(2026 - 11 - 22),
        };
        let shown = format!("{letter:?}");
        assert!(shown.contains("v-9") && !shown.contains("山田") && !shown.contains("R-9"));
    }
}
