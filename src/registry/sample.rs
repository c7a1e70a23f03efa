//! A fictional town's residents for demos and tests: 山吹県白樺郡若葉町 (no such
//! prefecture exists). Every person and address here is invented.
//!
//! The set covers the counter's cases: names outside the certificate repertoire (髙, 𠮷,
//! 﨑), a name inside JIS X 0212 only (桒), a minor aged 14 and one aged 15 in late 2026,
//! a 2/29 birth, an adult ward, a resident who moved out, one with a pending 異動, a
//! deceased resident, and ordinary adults.

use time::macros::date;

use super::{ResidentId, ResidentRecord, ResidentStatus, Sex};

/// The fictional town's address prefix.
pub const TOWN: &str = "山吹県白樺郡若葉町";

/// Ids of the sample residents, named by the case each one covers.
pub mod ids {
    /// 髙橋　一郎: 髙 needs a substitute.
    pub const TAKAHASHI: &str = "1000000001";
    /// 𠮷田　花子: 𠮷 needs a substitute.
    pub const YOSHIDA: &str = "1000000002";
    /// 佐藤　健太: 14 until 2027-06-15.
    pub const MINOR_14: &str = "1000000003";
    /// 佐藤　美咲: 15 since 2026-05-03.
    pub const MINOR_15: &str = "1000000004";
    /// 渡邉　久子: adult ward.
    pub const ADULT_WARD: &str = "1000000005";
    /// 鈴木　大輔: moved out.
    pub const MOVED_OUT: &str = "1000000006";
    /// 田中　翔太: born 2/29, 異動 pending.
    pub const PENDING: &str = "1000000007";
    /// 山本　恵子: ordinary adult (born 昭和55年2月17日).
    pub const YAMAMOTO: &str = "1000000008";
    /// 桒原　誠: 桒 is JIS X 0212, no substitute needed.
    pub const KUWAHARA: &str = "1000000009";
    /// 伊藤　昭: deceased.
    pub const DECEASED: &str = "1000000010";
    /// 山﨑　浩二: 﨑 needs a substitute.
    pub const YAMAZAKI: &str = "1000000011";
    /// 小林　さくら: born 令和元年5月1日.
    pub const CHILD: &str = "1000000012";
}

/// The sample residents.
pub fn residents() -> Vec<ResidentRecord> {
    let resident = ResidentStatus::Resident;
    #[rustfmt::skip]
    let rows = [
        (ids::TAKAHASHI, "髙橋　一郎", "タカハシ　イチロウ", date!(1975 - 04 - 12), Sex::Male,
         "本郷一丁目２番３号", resident, false),
        (ids::YOSHIDA, "𠮷田　花子", "ヨシダ　ハナコ", date!(1988 - 09 - 30), Sex::Female,
         "本郷一丁目５番８号　若葉ハイツ２０１号", resident, false),
        (ids::MINOR_14, "佐藤　健太", "サトウ　ケンタ", date!(2012 - 06 - 15), Sex::Male,
         "緑が丘三丁目１４番２号", resident, false),
        (ids::MINOR_15, "佐藤　美咲", "サトウ　ミサキ", date!(2011 - 05 - 03), Sex::Female,
         "緑が丘三丁目１４番２号", resident, false),
        (ids::ADULT_WARD, "渡邉　久子", "ワタナベ　ヒサコ", date!(1938 - 01 - 20), Sex::Female,
         "大字川辺１２３番地", resident, true),
        (ids::MOVED_OUT, "鈴木　大輔", "スズキ　ダイスケ", date!(1990 - 02 - 28), Sex::Male,
         "駅前二丁目７番１号", ResidentStatus::MovedOut { on: date!(2026 - 03 - 31) }, false),
        (ids::PENDING, "田中　翔太", "タナカ　ショウタ", date!(1996 - 02 - 29), Sex::Male,
         "駅前二丁目９番４号",
         ResidentStatus::PendingChange { since: date!(2026 - 11 - 20) }, false),
        (ids::YAMAMOTO, "山本　恵子", "ヤマモト　ケイコ", date!(1980 - 02 - 17), Sex::Female,
         "本郷二丁目１番１６号", resident, false),
        (ids::KUWAHARA, "桒原　誠", "クワハラ　マコト", date!(1959 - 11 - 03), Sex::Male,
         "大字川辺４５６番地１", resident, false),
        (ids::DECEASED, "伊藤　昭", "イトウ　アキラ", date!(1930 - 05 - 05), Sex::Male,
         "大字川辺７８番地", ResidentStatus::Deceased { on: date!(2025 - 12 - 01) }, false),
        (ids::YAMAZAKI, "山﨑　浩二", "ヤマザキ　コウジ", date!(1965 - 07 - 07), Sex::Male,
         "緑が丘一丁目３番１０号", resident, false),
        (ids::CHILD, "小林　さくら", "コバヤシ　サクラ", date!(2019 - 05 - 01), Sex::Female,
         "本郷一丁目５番８号　若葉ハイツ３０２号", resident, false),
    ];
    rows.into_iter()
        .map(
            |(id, name, furigana, birth_date, sex, street, status, adult_ward)| {
                ResidentRecord {
                    // Invariant: the ids above are 10 ASCII digits.
                    id: ResidentId::new(id).expect("sample ids are well formed"),
                    name: name.to_owned(),
                    furigana: Some(furigana.to_owned()),
                    birth_date,
                    sex,
                    address: format!("{TOWN}{street}"),
                    status,
                    adult_ward,
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::rules::{age, repertoire};

    fn get(id: &str) -> ResidentRecord {
        residents()
            .into_iter()
            .find(|r| r.id.as_str() == id)
            .unwrap()
    }

    #[test]
    fn the_sample_covers_the_counter_cases() {
        let visit = date!(2026 - 11 - 22);
        assert_eq!(age::age_on(get(ids::MINOR_14).birth_date, visit), Ok(14));
        assert_eq!(age::age_on(get(ids::MINOR_15).birth_date, visit), Ok(15));
        assert!(get(ids::ADULT_WARD).adult_ward);
        assert!(get(ids::MOVED_OUT).check_servable().is_err());
        assert!(get(ids::PENDING).check_servable().is_err());
        assert!(get(ids::DECEASED).check_servable().is_err());
        let table = repertoire::SubstituteTable::shipped();
        for (id, positions) in [
            (ids::TAKAHASHI, "10000"),
            (ids::YOSHIDA, "10000"),
            (ids::YAMAZAKI, "01000"),
        ] {
            let c = repertoire::apply_designated(&get(id).name, &table).unwrap();
            assert_eq!(c.positions(), positions, "{id}");
        }
        assert!(repertoire::propose(&get(ids::KUWAHARA).name, &table).is_empty());
        for r in residents() {
            assert!(
                repertoire::propose(&r.address, &table).is_empty(),
                "{:?}",
                r.id
            );
        }
    }
}
