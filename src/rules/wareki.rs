//! 和暦 (Japanese era dates) from 明治 to 令和, and the certificate's birth-date encoding.
//!
//! What it does:
//! - converts a Gregorian [`Date`] to its era date and back ([`to_wareki`], [`from_wareki`]);
//! - writes era dates as the counter does (`昭和55年2月17日`, `平成元年1月8日`) and as the
//!   short form (`S55.2.17`), and parses both ([`parse`]);
//! - encodes and decodes the signing certificate's `EYYYYMMDD` birth date ([`CertBirthDate`]).
//!
//! What it does not do: it never reads the clock, and it knows no era before 明治 and no
//! dates before the Gregorian calendar's adoption in Japan. 明治 began on 1868-10-23, but
//! until 明治5年12月2日 Japan counted months and days with the lunisolar 天保暦: a 明治 date
//! written before 1873-01-01 does not share the Gregorian month and day. Converting it
//! needs an almanac that no counter use needs (nobody born then is alive), so every
//! function here rejects dates before [`GREGORIAN_ADOPTION`] (1873-01-01 = 明治6年1月1日)
//! with [`WarekiError::BeforeGregorianCalendar`], as Java's `JapaneseDate` does.
//!
//! An era date is accepted only inside its era's span: the day an era changes belongs to
//! the new era only, so `昭和64年1月8日`, `平成31年5月1日` and `平成32年1月1日` are
//! rejected with [`WarekiError::OutsideEra`]. See `docs/rules.md` for why.

use std::fmt;

use time::{Date, Month};

/// The first day of the Gregorian calendar in Japan (明治6年1月1日).
pub const GREGORIAN_ADOPTION: Date = time::macros::date!(1873 - 01 - 01);

/// An era (元号) from 明治 to 令和.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Era {
    /// 明治, from 1868-10-23.
    Meiji,
    /// 大正, from 1912-07-30.
    Taisho,
    /// 昭和, from 1926-12-25.
    Showa,
    /// 平成, from 1989-01-08.
    Heisei,
    /// 令和, from 2019-05-01.
    Reiwa,
}

impl Era {
    /// All eras, oldest first.
    pub const ALL: [Era; 5] = [Era::Meiji, Era::Taisho, Era::Showa, Era::Heisei, Era::Reiwa];

    /// The era's first day, in the Gregorian calendar.
    pub fn start(self) -> Date {
        match self {
            Era::Meiji => time::macros::date!(1868 - 10 - 23),
            Era::Taisho => time::macros::date!(1912 - 07 - 30),
            Era::Showa => time::macros::date!(1926 - 12 - 25),
            Era::Heisei => time::macros::date!(1989 - 01 - 08),
            Era::Reiwa => time::macros::date!(2019 - 05 - 01),
        }
    }

    /// The era's last day, or `None` for the current era.
    pub fn last_day(self) -> Option<Date> {
        let next = self.next()?;
        next.start().previous_day()
    }

    /// The era after this one.
    pub fn next(self) -> Option<Era> {
        match self {
            Era::Meiji => Some(Era::Taisho),
            Era::Taisho => Some(Era::Showa),
            Era::Showa => Some(Era::Heisei),
            Era::Heisei => Some(Era::Reiwa),
            Era::Reiwa => None,
        }
    }

    /// The era's name in kanji (`昭和`).
    pub fn name(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// The era's one-letter abbreviation (`S` for 昭和), as on forms and in short dates.
    pub fn letter(self) -> char {
        match self {
            Era::Meiji => 'M',
            Era::Taisho => 'T',
            Era::Showa => 'S',
            Era::Heisei => 'H',
            Era::Reiwa => 'R',
        }
    }

    /// The era digit of the certificate's birth date (1 明治 … 5 令和).
    pub fn cert_digit(self) -> u8 {
        match self {
            Era::Meiji => 1,
            Era::Taisho => 2,
            Era::Showa => 3,
            Era::Heisei => 4,
            Era::Reiwa => 5,
        }
    }

    /// The era for a certificate era digit; `None` for 0 (unknown) and digits above 5.
    pub fn from_cert_digit(digit: u8) -> Option<Era> {
        Era::ALL.into_iter().find(|e| e.cert_digit() == digit)
    }

    /// The era whose span holds `date`, or `None` before 明治.
    pub fn of(date: Date) -> Option<Era> {
        Era::ALL.into_iter().rev().find(|e| date >= e.start())
    }

    fn from_letter(letter: char) -> Option<Era> {
        let upper = letter.to_ascii_uppercase();
        Era::ALL.into_iter().find(|e| e.letter() == upper)
    }
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an era date or a certificate birth date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WarekiError {
    /// The date lies before 1873-01-01, when Japan still used the lunisolar calendar.
    #[error("date before the Gregorian calendar's adoption in Japan (1873-01-01)")]
    BeforeGregorianCalendar,
    /// The era year, month and day do not fall inside the era's span (e.g. 平成32年).
    #[error("date outside the span of {era}")]
    OutsideEra {
        /// The era that was named.
        era: Era,
    },
    /// Month or day do not exist (e.g. 2月30日), or the year is 0 or too large.
    #[error("no such calendar date")]
    NoSuchDate,
    /// The text is not an era date in a form this module reads.
    #[error("not an era date (expected e.g. 昭和55年2月17日 or S55.2.17)")]
    Syntax,
    /// The certificate birth date is not 9 digits `EYYYYMMDD` with E in 0..=5.
    #[error("certificate birth date is not of the form EYYYYMMDD")]
    CertFormat,
    /// The certificate's era digit names another era than the Gregorian date lies in.
    #[error("certificate era digit {digit} does not match the date's era {actual}")]
    CertEraMismatch {
        /// The era digit found.
        digit: u8,
        /// The era the Gregorian date lies in.
        actual: Era,
    },
}

/// A date in the Japanese era calendar, known to be a real date inside its era's span.
///
/// Only [`to_wareki`], [`WarekiDate::new`] and [`parse`] make one, and they check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WarekiDate {
    era: Era,
    year: u16,
    month: u8,
    day: u8,
}

impl WarekiDate {
    /// An era date from its parts; fails if it does not lie in the era's span.
    pub fn new(era: Era, year: u16, month: u8, day: u8) -> Result<WarekiDate, WarekiError> {
        let date = from_wareki(era, year, month, day)?;
        to_wareki(date)
    }

    /// The era.
    pub fn era(&self) -> Era {
        self.era
    }
    /// The year within the era (1 = 元年).
    pub fn year(&self) -> u16 {
        self.year
    }
    /// The month, 1–12.
    pub fn month(&self) -> u8 {
        self.month
    }
    /// The day of the month.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// The Gregorian date.
    pub fn to_date(&self) -> Date {
        // Invariant: every WarekiDate was built from a valid date inside its era.
        from_wareki(self.era, self.year, self.month, self.day)
            .expect("WarekiDate holds a checked date")
    }

    /// The short form used on forms and in systems: `S55.2.17`, `H1.1.8`.
    pub fn short(&self) -> String {
        format!(
            "{}{}.{}.{}",
            self.era.letter(),
            self.year,
            self.month,
            self.day
        )
    }
}

impl fmt::Display for WarekiDate {
    /// The long form, year 1 written 元年: `昭和55年2月17日`, `平成元年1月8日`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.year == 1 {
            write!(f, "{}元年{}月{}日", self.era, self.month, self.day)
        } else {
            write!(
                f,
                "{}{}年{}月{}日",
                self.era, self.year, self.month, self.day
            )
        }
    }
}

/// The era date of a Gregorian date.
pub fn to_wareki(date: Date) -> Result<WarekiDate, WarekiError> {
    if date < GREGORIAN_ADOPTION {
        return Err(WarekiError::BeforeGregorianCalendar);
    }
    // Invariant: every date from 1873 on lies in some era.
    let era = Era::of(date).ok_or(WarekiError::BeforeGregorianCalendar)?;
    let year = date.year() - era.start().year() + 1;
    Ok(WarekiDate {
        era,
        year: u16::try_from(year).map_err(|_| WarekiError::NoSuchDate)?,
        month: u8::from(date.month()),
        day: date.day(),
    })
}

/// The Gregorian date of an era date; the date must exist and lie inside the era.
pub fn from_wareki(era: Era, year: u16, month: u8, day: u8) -> Result<Date, WarekiError> {
    if year == 0 || year > 9000 {
        return Err(WarekiError::NoSuchDate);
    }
    let month = Month::try_from(month).map_err(|_| WarekiError::NoSuchDate)?;
    let gregorian_year = era.start().year() + i32::from(year) - 1;
    let date = Date::from_calendar_date(gregorian_year, month, day)
        .map_err(|_| WarekiError::NoSuchDate)?;
    if date < GREGORIAN_ADOPTION {
        return Err(WarekiError::BeforeGregorianCalendar);
    }
    let after_end = era.last_day().is_some_and(|last| date > last);
    if date < era.start() || after_end {
        return Err(WarekiError::OutsideEra { era });
    }
    Ok(date)
}

/// Reads an era date in the long form (`昭和55年2月17日`, `平成元年1月8日`, full-width
/// digits allowed, spaces ignored) or the short form (`S55.2.17`, `s55/02/17`, `H1-1-8`).
pub fn parse(text: &str) -> Result<WarekiDate, WarekiError> {
    // Full-width digits and separators are what people type on a Japanese IME.
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '．' => '.',
            '／' => '/',
            '－' => '-',
            'Ａ'..='Ｚ' | 'ａ'..='ｚ' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect();
    let (era, year, month, day) = parse_long(&cleaned)
        .or_else(|| parse_short(&cleaned))
        .ok_or(WarekiError::Syntax)?;
    WarekiDate::new(era, year, month, day)
}

fn parse_long(s: &str) -> Option<(Era, u16, u8, u8)> {
    let era = Era::ALL.into_iter().find(|e| s.starts_with(e.name()))?;
    let rest = &s[era.name().len()..];
    let (year, rest) = if let Some(rest) = rest.strip_prefix("元年") {
        (1, rest)
    } else {
        let (y, rest) = rest.split_once('年')?;
        (number(y)?, rest)
    };
    let (month, rest) = rest.split_once('月')?;
    let day = rest.strip_suffix('日')?;
    Some((
        era,
        year,
        u8::try_from(number(month)?).ok()?,
        u8::try_from(number(day)?).ok()?,
    ))
}

fn parse_short(s: &str) -> Option<(Era, u16, u8, u8)> {
    let mut chars = s.chars();
    let era = Era::from_letter(chars.next()?)?;
    let rest = chars.as_str();
    let sep = rest.chars().find(|c| matches!(c, '.' | '/' | '-'))?;
    let mut parts = rest.split(sep);
    let year = number(parts.next()?)?;
    let month = u8::try_from(number(parts.next()?)?).ok()?;
    let day = u8::try_from(number(parts.next()?)?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((era, year, month, day))
}

/// One to four ASCII digits.
fn number(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The signing certificate's birth date attribute: `EYYYYMMDD`, the era digit followed by
/// the Gregorian date (`319800217` = 1980-02-17, 昭和55年).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertBirthDate {
    era: Option<Era>,
    date: Date,
}

impl CertBirthDate {
    /// The encoding of a birth date; the era digit is the date's own era.
    pub fn new(date: Date) -> Result<CertBirthDate, WarekiError> {
        let w = to_wareki(date)?;
        Ok(CertBirthDate {
            era: Some(w.era),
            date,
        })
    }

    /// The era named by the digit; `None` when the digit is 0 (unknown).
    pub fn era(&self) -> Option<Era> {
        self.era
    }

    /// The Gregorian date.
    pub fn date(&self) -> Date {
        self.date
    }

    /// The 9-digit attribute value.
    pub fn encode(&self) -> String {
        format!(
            "{}{:04}{:02}{:02}",
            self.era.map_or(0, Era::cert_digit),
            self.date.year(),
            u8::from(self.date.month()),
            self.date.day()
        )
    }

    /// Reads a 9-digit attribute value and checks that a non-zero era digit names the
    /// era the date lies in.
    pub fn decode(text: &str) -> Result<CertBirthDate, WarekiError> {
        let b = text.as_bytes();
        if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
            return Err(WarekiError::CertFormat);
        }
        let digit = b[0] - b'0';
        let era = match digit {
            0 => None,
            d => Some(Era::from_cert_digit(d).ok_or(WarekiError::CertFormat)?),
        };
        let field = |r: std::ops::Range<usize>| -> u16 {
            // Invariant: all nine bytes are ASCII digits, checked above.
            text[r].parse().expect("ASCII digits")
        };
        let month = Month::try_from(field(5..7) as u8).map_err(|_| WarekiError::NoSuchDate)?;
        let date = Date::from_calendar_date(i32::from(field(1..5)), month, field(7..9) as u8)
            .map_err(|_| WarekiError::NoSuchDate)?;
        if let Some(era) = era {
            let actual = to_wareki(date)?.era;
            if actual != era {
                return Err(WarekiError::CertEraMismatch { digit, actual });
            }
        }
        Ok(CertBirthDate { era, date })
    }
}

impl fmt::Display for CertBirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::date;

    use super::*;

    #[test]
    fn boundaries_convert_both_ways() {
        let table = [
            (date!(1873 - 01 - 01), Era::Meiji, 6, 1, 1, "明治6年1月1日"),
            (
                date!(1912 - 07 - 29),
                Era::Meiji,
                45,
                7,
                29,
                "明治45年7月29日",
            ),
            (
                date!(1912 - 07 - 30),
                Era::Taisho,
                1,
                7,
                30,
                "大正元年7月30日",
            ),
            (
                date!(1926 - 12 - 24),
                Era::Taisho,
                15,
                12,
                24,
                "大正15年12月24日",
            ),
            (
                date!(1926 - 12 - 25),
                Era::Showa,
                1,
                12,
                25,
                "昭和元年12月25日",
            ),
            (
                date!(1980 - 02 - 17),
                Era::Showa,
                55,
                2,
                17,
                "昭和55年2月17日",
            ),
            (
                date!(1989 - 01 - 07),
                Era::Showa,
                64,
                1,
                7,
                "昭和64年1月7日",
            ),
            (
                date!(1989 - 01 - 08),
                Era::Heisei,
                1,
                1,
                8,
                "平成元年1月8日",
            ),
            (
                date!(2019 - 04 - 30),
                Era::Heisei,
                31,
                4,
                30,
                "平成31年4月30日",
            ),
            (date!(2019 - 05 - 01), Era::Reiwa, 1, 5, 1, "令和元年5月1日"),
            (date!(2020 - 01 - 01), Era::Reiwa, 2, 1, 1, "令和2年1月1日"),
        ];
        for (d, era, y, m, day, text) in table {
            let w = to_wareki(d).unwrap();
            assert_eq!(
                (w.era(), w.year(), w.month(), w.day()),
                (era, y, m, day),
                "{d}"
            );
            assert_eq!(w.to_string(), text);
            assert_eq!(from_wareki(era, y, m, day), Ok(d));
            assert_eq!(parse(text).unwrap().to_date(), d, "{text}");
        }
    }

    #[test]
    fn dates_outside_the_era_are_rejected() {
        let table = [
            (Era::Showa, 64, 1, 8),
            (Era::Heisei, 1, 1, 7),
            (Era::Heisei, 31, 5, 1),
            (Era::Heisei, 32, 1, 1),
            (Era::Reiwa, 1, 4, 30),
            (Era::Taisho, 15, 12, 25),
            (Era::Meiji, 45, 7, 30),
            (Era::Showa, 1, 12, 24),
        ];
        for (era, y, m, d) in table {
            assert_eq!(
                from_wareki(era, y, m, d),
                Err(WarekiError::OutsideEra { era }),
                "{era}{y}"
            );
        }
    }

    #[test]
    fn impossible_and_pre_gregorian_dates_are_rejected() {
        assert_eq!(
            from_wareki(Era::Showa, 55, 2, 30),
            Err(WarekiError::NoSuchDate)
        );
        assert_eq!(
            from_wareki(Era::Showa, 0, 1, 1),
            Err(WarekiError::NoSuchDate)
        );
        assert_eq!(
            from_wareki(Era::Showa, 55, 13, 1),
            Err(WarekiError::NoSuchDate)
        );
        // 平成4年 (1992) is a leap year, 平成5年 is not.
        assert!(from_wareki(Era::Heisei, 4, 2, 29).is_ok());
        assert_eq!(
            from_wareki(Era::Heisei, 5, 2, 29),
            Err(WarekiError::NoSuchDate)
        );
        assert_eq!(
            from_wareki(Era::Meiji, 1, 10, 23),
            Err(WarekiError::BeforeGregorianCalendar)
        );
        assert_eq!(
            from_wareki(Era::Meiji, 5, 12, 31),
            Err(WarekiError::BeforeGregorianCalendar)
        );
        assert_eq!(
            to_wareki(date!(1872 - 12 - 31)),
            Err(WarekiError::BeforeGregorianCalendar)
        );
        assert_eq!(
            to_wareki(date!(1868 - 10 - 23)),
            Err(WarekiError::BeforeGregorianCalendar)
        );
    }

    #[test]
    fn parses_long_and_short_forms() {
        let d = date!(1980 - 02 - 17);
        for text in [
            "昭和55年2月17日",
            "昭和５５年２月１７日",
            " 昭和 55 年 02 月 17 日 ",
            "S55.2.17",
            "s55/02/17",
            "S55-2-17",
            "Ｓ５５．２．１７",
        ] {
            assert_eq!(parse(text).map(|w| w.to_date()), Ok(d), "{text}");
        }
        assert_eq!(
            parse("平成元年1月8日").unwrap().to_date(),
            date!(1989 - 01 - 08)
        );
        assert_eq!(
            parse("平成1年1月8日").unwrap().to_date(),
            date!(1989 - 01 - 08)
        );
        assert_eq!(parse("R1.5.1").unwrap().to_date(), date!(2019 - 05 - 01));
        assert_eq!(parse("H1.1.8").unwrap().short(), "H1.1.8");
    }

    #[test]
    fn rejects_malformed_text() {
        for text in [
            "",
            "昭和",
            "昭和55年2月",
            "昭和55年2月17",
            "X55.2.17",
            "S55.2",
            "S55.2.17.1",
            "S55.2/17",
            "昭和五十五年二月十七日",
            "1980-02-17",
            "S-1.2.3",
            "S12345.1.1",
        ] {
            assert_eq!(parse(text), Err(WarekiError::Syntax), "{text}");
        }
        assert_eq!(
            parse("平成32年1月1日"),
            Err(WarekiError::OutsideEra { era: Era::Heisei })
        );
        assert_eq!(
            parse("H31.5.1"),
            Err(WarekiError::OutsideEra { era: Era::Heisei })
        );
    }

    #[test]
    fn certificate_encoding_both_ways() {
        let table = [
            (date!(1980 - 02 - 17), "319800217"),
            (date!(1989 - 01 - 07), "319890107"),
            (date!(1989 - 01 - 08), "419890108"),
            (date!(2019 - 04 - 30), "420190430"),
            (date!(2019 - 05 - 01), "520190501"),
            (date!(1912 - 07 - 30), "219120730"),
            (date!(1899 - 12 - 01), "118991201"),
        ];
        for (d, text) in table {
            let c = CertBirthDate::new(d).unwrap();
            assert_eq!(c.encode(), text);
            assert_eq!(CertBirthDate::decode(text), Ok(c));
        }
        let unknown = CertBirthDate::decode("019800217").unwrap();
        assert_eq!(
            (unknown.era(), unknown.date()),
            (None, date!(1980 - 02 - 17))
        );
        assert_eq!(unknown.encode(), "019800217");
    }

    #[test]
    fn certificate_encoding_rejects_inconsistent_values() {
        assert_eq!(
            CertBirthDate::decode("419890107"),
            Err(WarekiError::CertEraMismatch {
                digit: 4,
                actual: Era::Showa
            })
        );
        assert_eq!(
            CertBirthDate::decode("520190430"),
            Err(WarekiError::CertEraMismatch {
                digit: 5,
                actual: Era::Heisei
            })
        );
        for bad in [
            "61980021",
            "619800217",
            "31980021x",
            "3198002170",
            "",
            "３19800217",
        ] {
            assert_eq!(
                CertBirthDate::decode(bad),
                Err(WarekiError::CertFormat),
                "{bad}"
            );
        }
        assert_eq!(
            CertBirthDate::decode("319800230"),
            Err(WarekiError::NoSuchDate)
        );
        assert_eq!(
            CertBirthDate::decode("319801317"),
            Err(WarekiError::NoSuchDate)
        );
        assert_eq!(
            CertBirthDate::decode("118600101"),
            Err(WarekiError::BeforeGregorianCalendar)
        );
    }

    fn any_date() -> impl Strategy<Value = Date> {
        let lo = GREGORIAN_ADOPTION.to_julian_day();
        let hi = date!(2200 - 12 - 31).to_julian_day();
        (lo..=hi).prop_map(|j| Date::from_julian_day(j).unwrap())
    }

    proptest! {
        #[test]
        fn wareki_round_trips(d in any_date()) {
            let w = to_wareki(d).unwrap();
            prop_assert_eq!(w.to_date(), d);
            prop_assert_eq!(parse(&w.to_string()), Ok(w));
            prop_assert_eq!(parse(&w.short()), Ok(w));
            prop_assert!(d >= w.era().start());
            prop_assert!(w.era().last_day().is_none_or(|l| d <= l));
        }

        #[test]
        fn cert_encoding_round_trips(d in any_date()) {
            let c = CertBirthDate::new(d).unwrap();
            let text = c.encode();
            prop_assert_eq!(text.len(), 9);
            prop_assert_eq!(CertBirthDate::decode(&text), Ok(c));
            prop_assert_eq!(c.era(), Some(to_wareki(d).unwrap().era()));
        }
    }
}
