//! The application form's live checks and their binding to the staff window.
//!
//! On every edit the view calls `FormAdapter.edited`; [`check`] runs the counter's rules
//! on what was typed (furigana with [`normalise_furigana`], the birth date in 和暦 or 西暦
//! with [`crate::rules::wareki`], and the certificate repertoire with
//! [`repertoire::propose`]) and the binding writes the results back. Each character
//! needing a 代替文字 is listed with the municipality's proposed substitute; staff mark it
//! confirmed once the resident agrees, and the form can be submitted only when every
//! check passes. This module does not store the application or decide the visit.

use std::cell::RefCell;
use std::rc::Rc;

use slint::{ComponentHandle, ModelRc, SharedString, VecModel};
use time::{Date, Month};

use super::{DateCheck, FormAdapter, FuriganaCheck, Sex, StaffWindow, SubstituteRow};
use crate::rules::kana::{normalise_furigana, Script};
use crate::rules::repertoire::{self, SubstituteTable};
use crate::rules::wareki::{self, Era};

/// What staff typed into the form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormInput {
    /// 宛名番号, the registry record staff look the resident up by.
    pub resident_id: String,
    /// 氏名 as registered.
    pub name: String,
    /// ふりがな.
    pub furigana: String,
    /// 住所.
    pub address: String,
    /// `Some(era)` for a 和暦 date, `None` for 西暦.
    pub era: Option<Era>,
    /// Year as typed (era year or Gregorian year).
    pub year: String,
    /// Month as typed.
    pub month: String,
    /// Day as typed.
    pub day: String,
    /// 性別 as the JIS X 0303 digit (1 male, 2 female), once chosen.
    pub sex: Option<u8>,
    /// The resident asks for the signing certificate.
    pub want_sign: bool,
    /// The resident asks for the user-authentication certificate.
    pub want_auth: bool,
}

/// One character that needs a 代替文字, and whether the resident agreed to the proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    /// Position in characters of the normalised text, from 0.
    pub index: usize,
    /// The registered character.
    pub original: char,
    /// The proposed substitute; `None` when the table has none (ask the supervisor).
    pub proposed: Option<String>,
    /// The resident agreed to `proposed`.
    pub confirmed: bool,
}

/// The form's checks.
#[derive(Debug, Clone, PartialEq)]
pub struct FormChecks {
    /// The furigana check.
    pub furigana: FuriganaCheck,
    /// The date check.
    pub date: DateCheck,
    /// The birth date, when it is valid.
    pub birth_date: Option<Date>,
    /// The same date in the other calendar, for staff to read back to the resident.
    pub date_other: String,
    /// The name's characters that need a 代替文字.
    pub name_marks: Vec<Marked>,
    /// The address's characters that need a 代替文字.
    pub address_marks: Vec<Marked>,
    /// Every check passed and every substitute is confirmed.
    pub complete: bool,
}

/// Runs the form's checks. `confirmed` lists the (field, index, original) triples the
/// resident already agreed to, so confirmations survive unrelated edits.
pub fn check(
    input: &FormInput,
    table: &SubstituteTable,
    confirmed: &[(Field, usize, char)],
) -> FormChecks {
    let furigana = if input.furigana.trim().is_empty() {
        FuriganaCheck::Empty
    } else if normalise_furigana(&input.furigana, Script::Hiragana).is_ok() {
        FuriganaCheck::Ok
    } else {
        FuriganaCheck::Invalid
    };
    let (date, birth_date, date_other) = check_date(input);
    let marks = |field: Field, text: &str| -> Vec<Marked> {
        repertoire::propose(text, table)
            .into_iter()
            .map(|p| Marked {
                confirmed: confirmed.contains(&(field, p.index, p.original)),
                index: p.index,
                original: p.original,
                proposed: p.designated,
            })
            .collect()
    };
    let name_marks = marks(Field::Name, &input.name);
    let address_marks = marks(Field::Address, &input.address);
    let all_confirmed = name_marks
        .iter()
        .chain(&address_marks)
        .all(|m| m.proposed.is_some() && m.confirmed);
    let id = input.resident_id.trim();
    let complete = !id.is_empty()
        && id.chars().all(|c| c.is_ascii_digit())
        && (input.want_sign || input.want_auth)
        && !input.name.trim().is_empty()
        && !input.address.trim().is_empty()
        && furigana == FuriganaCheck::Ok
        && date == DateCheck::Ok
        && input.sex.is_some()
        && all_confirmed;
    FormChecks { furigana, date, birth_date, date_other, name_marks, address_marks, complete }
}

fn check_date(input: &FormInput) -> (DateCheck, Option<Date>, String) {
    let parse = |s: &str| s.trim().parse::<u16>().ok();
    let (Some(year), Some(month), Some(day)) =
        (parse(&input.year), parse(&input.month), parse(&input.day))
    else {
        return (DateCheck::Incomplete, None, String::new());
    };
    let invalid = (DateCheck::Invalid, None, String::new());
    let (Ok(month8), Ok(day8)) = (u8::try_from(month), u8::try_from(day)) else {
        return invalid;
    };
    match input.era {
        Some(era) => match wareki::from_wareki(era, year, month8, day8) {
            Ok(d) => (DateCheck::Ok, Some(d), format!("西暦{}年{}月{}日", d.year(), month8, day8)),
            Err(_) => invalid,
        },
        None => {
            let Ok(m) = Month::try_from(month8) else { return invalid };
            match Date::from_calendar_date(i32::from(year), m, day8) {
                Ok(d) => match wareki::to_wareki(d) {
                    Ok(w) => (DateCheck::Ok, Some(d), w.to_string()),
                    Err(_) => invalid,
                },
                Err(_) => invalid,
            }
        }
    }
}

/// A form field that can need 代替文字.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// 氏名.
    Name,
    /// 住所.
    Address,
}

/// The application as the visit's workflow takes it, from a complete form: the typed
/// text, the birth date, and each confirmed 代替文字 by its index in the registered text.
/// `None` while the checks are not complete.
pub fn application(input: &FormInput, checks: &FormChecks) -> Option<crate::issuance::model::Form> {
    use crate::issuance::model::{Form, SubstituteChoice, SubstitutedField};
    if !checks.complete {
        return None;
    }
    let choices = |field: SubstitutedField, marks: &[Marked]| -> Option<Vec<SubstituteChoice>> {
        marks
            .iter()
            .map(|m| {
                let replacement = m.proposed.as_deref()?.chars().next()?;
                Some(SubstituteChoice { field, index: m.index, replacement })
            })
            .collect()
    };
    let mut substitutes = choices(SubstitutedField::Name, &checks.name_marks)?;
    substitutes.extend(choices(SubstitutedField::Address, &checks.address_marks)?);
    Some(Form {
        resident_id: input.resident_id.trim().to_string(),
        name: input.name.trim().to_string(),
        furigana: input.furigana.trim().to_string(),
        birth_date: checks.birth_date?,
        sex: input.sex?,
        address: input.address.trim().to_string(),
        want_sign: input.want_sign,
        want_auth: input.want_auth,
        substitutes,
        case: None,
    })
}

/// Wires the staff window's form to [`check`]. `on_submit` gets the input and its checks
/// when staff press 「入力内容を確定する」 on a complete form.
pub struct FormBinding {
    state: Rc<RefCell<FormState>>,
}

struct FormState {
    table: SubstituteTable,
    confirmed: Vec<(Field, usize, char)>,
    checks: Option<FormChecks>,
}

impl FormBinding {
    /// Binds `window`'s form, proposing substitutes from `table`.
    pub fn bind(
        window: &StaffWindow,
        table: SubstituteTable,
        on_submit: impl Fn(FormInput, FormChecks) + 'static,
    ) -> FormBinding {
        let state = Rc::new(RefCell::new(FormState { table, confirmed: Vec::new(), checks: None }));
        let adapter = window.global::<FormAdapter>();

        let (weak, s) = (window.as_weak(), state.clone());
        adapter.on_edited(move || {
            if let Some(w) = weak.upgrade() {
                refresh(&w, &s);
            }
        });
        let (weak, s) = (window.as_weak(), state.clone());
        adapter.on_confirm_substitute(move |field, row| {
            let Some(w) = weak.upgrade() else { return };
            let field = if field == "address" { Field::Address } else { Field::Name };
            {
                let mut st = s.borrow_mut();
                let mark = st.checks.as_ref().and_then(|c| {
                    let marks = if field == Field::Name { &c.name_marks } else { &c.address_marks };
                    usize::try_from(row).ok().and_then(|r| marks.get(r)).cloned()
                });
                if let Some(m) = mark {
                    let key = (field, m.index, m.original);
                    // A second tap takes the confirmation back.
                    if let Some(pos) = st.confirmed.iter().position(|k| *k == key) {
                        st.confirmed.remove(pos);
                    } else {
                        st.confirmed.push(key);
                    }
                }
            }
            refresh(&w, &s);
        });
        let (weak, s) = (window.as_weak(), state.clone());
        adapter.on_submit(move || {
            let Some(w) = weak.upgrade() else { return };
            let checks = refresh(&w, &s);
            if checks.complete {
                on_submit(read_input(&w), checks);
            }
        });
        refresh(window, &state);
        FormBinding { state }
    }

    /// The last checks shown.
    pub fn checks(&self) -> Option<FormChecks> {
        self.state.borrow().checks.clone()
    }
}

fn read_input(window: &StaffWindow) -> FormInput {
    let a = window.global::<FormAdapter>();
    FormInput {
        resident_id: a.get_resident_id().into(),
        name: a.get_name().into(),
        furigana: a.get_furigana().into(),
        address: a.get_address().into(),
        // The view offers only the five eras; an index outside them cannot be typed.
        era: if a.get_wareki() {
            Some(usize::try_from(a.get_era()).ok().and_then(|i| Era::ALL.get(i).copied()).unwrap_or(Era::Reiwa))
        } else {
            None
        },
        year: a.get_year().into(),
        month: a.get_month().into(),
        day: a.get_day().into(),
        sex: match a.get_sex() {
            Sex::Male => Some(1),
            Sex::Female => Some(2),
            Sex::Unset => None,
        },
        want_sign: a.get_want_sign(),
        want_auth: a.get_want_auth(),
    }
}

fn refresh(window: &StaffWindow, state: &Rc<RefCell<FormState>>) -> FormChecks {
    let input = read_input(window);
    let checks = {
        let st = state.borrow();
        check(&input, &st.table, &st.confirmed)
    };
    let a = window.global::<FormAdapter>();
    a.set_furigana_check(checks.furigana);
    a.set_date_check(checks.date);
    a.set_date_other(checks.date_other.as_str().into());
    a.set_name_substitutes(rows(&checks.name_marks));
    a.set_address_substitutes(rows(&checks.address_marks));
    a.set_can_submit(checks.complete);
    state.borrow_mut().checks = Some(checks.clone());
    checks
}

fn rows(marks: &[Marked]) -> ModelRc<SubstituteRow> {
    ModelRc::new(VecModel::from(
        marks
            .iter()
            .map(|m| SubstituteRow {
                position: i32::try_from(m.index + 1).unwrap_or(i32::MAX),
                original: SharedString::from(m.original.to_string()),
                proposed: m.proposed.as_deref().unwrap_or("").into(),
                confirmed: m.confirmed,
            })
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FormInput {
        FormInput {
            resident_id: "1000000001".into(),
            name: "髙橋 一郎".into(),
            furigana: "たかはし いちろう".into(),
            address: "東京都千代田区霞が関2-1-2".into(),
            era: Some(Era::Showa),
            year: "55".into(),
            month: "3".into(),
            day: "1".into(),
            sex: Some(1),
            want_sign: true,
            want_auth: true,
        }
    }

    #[test]
    fn marks_substitutes_and_waits_for_confirmation() {
        let table = SubstituteTable::shipped();
        let c = check(&sample(), &table, &[]);
        assert_eq!(c.name_marks.len(), 1);
        assert_eq!(c.name_marks[0].original, '髙');
        assert_eq!(c.name_marks[0].proposed.as_deref(), Some("高"));
        assert!(!c.complete);
        let c = check(&sample(), &table, &[(Field::Name, 0, '髙')]);
        assert!(c.name_marks[0].confirmed);
        assert!(c.complete, "{c:?}");
    }

    #[test]
    fn dates_in_both_calendars() {
        let table = SubstituteTable::shipped();
        let c = check(&sample(), &table, &[]);
        assert_eq!(c.date, DateCheck::Ok);
        assert_eq!(c.date_other, "西暦1980年3月1日");
        let mut g = sample();
        g.era = None;
        g.year = "1980".into();
        let c = check(&g, &table, &[]);
        assert_eq!(c.date_other, "昭和55年3月1日");
        g.day = "31".into();
        g.month = "2".into();
        assert_eq!(check(&g, &table, &[]).date, DateCheck::Invalid);
        g.day = String::new();
        assert_eq!(check(&g, &table, &[]).date, DateCheck::Incomplete);
        let mut w = sample();
        w.era = Some(Era::Heisei);
        w.year = "32".into();
        assert_eq!(check(&w, &table, &[]).date, DateCheck::Invalid);
    }

    #[test]
    fn a_complete_form_becomes_the_application() {
        let table = SubstituteTable::shipped();
        let input = sample();
        let c = check(&input, &table, &[]);
        assert!(application(&input, &c).is_none(), "substitute not confirmed yet");
        let c = check(&input, &table, &[(Field::Name, 0, '髙')]);
        let form = application(&input, &c).expect("complete");
        assert_eq!(form.resident_id, "1000000001");
        assert_eq!(form.sex, 1);
        assert_eq!(form.birth_date, time::macros::date!(1980 - 03 - 01));
        assert_eq!(form.substitutes.len(), 1);
        assert_eq!(form.substitutes[0].index, 0);
        assert_eq!(form.substitutes[0].replacement, '高');
        let mut none = sample();
        none.want_sign = false;
        none.want_auth = false;
        assert!(!check(&none, &table, &[(Field::Name, 0, '髙')]).complete, "nothing asked for");
        let mut bad_id = sample();
        bad_id.resident_id = "12a".into();
        assert!(!check(&bad_id, &table, &[(Field::Name, 0, '髙')]).complete);
    }

    #[test]
    fn furigana_must_be_kana() {
        let table = SubstituteTable::shipped();
        let mut f = sample();
        f.furigana = "Takahashi".into();
        assert_eq!(check(&f, &table, &[]).furigana, FuriganaCheck::Invalid);
        f.furigana = "  ".into();
        assert_eq!(check(&f, &table, &[]).furigana, FuriganaCheck::Empty);
    }
}
