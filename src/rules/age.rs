//! Age, certificate eligibility, certificate validity and the renewal window.
//!
//! Age follows 年齢計算ニ関スル法律 with 民法 Art. 143: age is counted from the day of birth,
//! and a year of age is completed at the **end of the day before** the birthday. For the
//! counter this means:
//! - "age on date D" is the age the person has all through day D, i.e. the years completed
//!   by the end of day D−1 ([`age_on`]). Someone whose 15th birthday is D is 15 on D; on
//!   the day before, they attain 15 only at midnight, so the counter treats them as 14;
//! - a person born on 2/29 completes each year at the end of 2/28 (the last day of
//!   February when the anniversary does not exist, and the day before it when it does), so
//!   they are a year older from 3/1 in common years and from 2/29 in leap years;
//! - a person born on April 1st completes each year at the end of March 31st. That is why
//!   April 1st births go to school a year earlier (早生まれ); for the counter it changes
//!   nothing, because the age on their birthday is already the new age.
//!
//! Certificate rules (jpki-facts §3.2, §4.2, §4.4): no signing certificate under 15 or for
//! an adult ward; either certificate may be declined; a certificate is valid until the
//! holder's 5th birthday after issuance, capped by the card's expiry; renewal opens three
//! months before expiry. Nothing here reads the clock: the visit date is an argument.

use time::{Date, Month};

/// The age from which a signing certificate may be issued.
pub const SIGNING_MIN_AGE: u16 = 15;

/// How many birthdays after issuance a certificate lasts.
pub const VALIDITY_BIRTHDAYS: i32 = 5;

/// How many months before expiry renewal opens.
pub const RENEWAL_WINDOW_MONTHS: u8 = 3;

/// Why an age or a date could not be worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgeError {
    /// The date asked about lies before the birth date: a registry or input error.
    #[error("the date lies before the birth date")]
    BeforeBirth,
    /// The card expired on or before the issuance date, so no certificate can be issued.
    #[error("the card expires before the certificate would be issued")]
    CardExpired,
    /// A computed date falls outside the supported calendar range.
    #[error("date out of range")]
    OutOfRange,
}

/// The day at whose end a person born on `birth` completes `years` years of age: the day
/// before the anniversary, or February's last day for a 2/29 birth in a common year.
pub fn day_age_attained(birth: Date, years: u16) -> Result<Date, AgeError> {
    let year = birth.year() + i32::from(years);
    let anniversary = Date::from_calendar_date(year, birth.month(), birth.day())
        .or_else(|_| Date::from_calendar_date(year, Month::March, 1))
        .map_err(|_| AgeError::OutOfRange)?;
    anniversary.previous_day().ok_or(AgeError::OutOfRange)
}

/// The age a person has all through day `on` (the years completed by the end of the day
/// before).
pub fn age_on(birth: Date, on: Date) -> Result<u16, AgeError> {
    if on < birth {
        return Err(AgeError::BeforeBirth);
    }
    let years = u16::try_from(on.year() - birth.year()).map_err(|_| AgeError::OutOfRange)?;
    if years > 0 && day_age_attained(birth, years)? >= on {
        Ok(years - 1)
    } else {
        Ok(years)
    }
}

/// Which certificates the resident asks for. Either may be declined (jpki-facts §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    /// The signing certificate (署名用).
    pub sign: bool,
    /// The user-authentication certificate (利用者証明用).
    pub auth: bool,
}

impl Requested {
    /// Both certificates, the usual case.
    pub const BOTH: Requested = Requested {
        sign: true,
        auth: true,
    };
}

/// Why a certificate may not be issued to this resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    /// Under 15 on the visit date: no signing certificate.
    UnderFifteen,
    /// 成年被後見人 (adult ward): no signing certificate.
    AdultWard,
}

/// What the counter does about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertDecision {
    /// Issue it.
    Issue,
    /// The resident declined it.
    Declined,
    /// The rules forbid it; shown to staff and resident with the reason.
    NotEligible(Ineligible),
}

/// The decision for both certificates of one visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    /// The signing certificate.
    pub sign: CertDecision,
    /// The user-authentication certificate.
    pub auth: CertDecision,
}

impl Eligibility {
    /// Whether anything will be issued at all.
    pub fn issues_any(&self) -> bool {
        self.sign == CertDecision::Issue || self.auth == CertDecision::Issue
    }
}

/// Which certificates a resident gets on the visit date. A rule that forbids a
/// certificate is reported even when the resident also declined it, so staff see why.
pub fn eligibility(
    birth: Date,
    adult_ward: bool,
    visit: Date,
    requested: Requested,
) -> Result<Eligibility, AgeError> {
    let age = age_on(birth, visit)?;
    let sign = if age < SIGNING_MIN_AGE {
        CertDecision::NotEligible(Ineligible::UnderFifteen)
    } else if adult_ward {
        CertDecision::NotEligible(Ineligible::AdultWard)
    } else if requested.sign {
        CertDecision::Issue
    } else {
        CertDecision::Declined
    };
    let auth = if requested.auth {
        CertDecision::Issue
    } else {
        CertDecision::Declined
    };
    Ok(Eligibility { sign, auth })
}

/// The holder's birthday in `year`; a 2/29 birthday falls on 2/28 in common years.
pub fn birthday_in(birth: Date, year: i32) -> Result<Date, AgeError> {
    Date::from_calendar_date(year, birth.month(), birth.day())
        .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
        .map_err(|_| AgeError::OutOfRange)
}

/// The holder's 5th birthday strictly after the issuance date (a birthday on the
/// issuance day itself does not count).
pub fn fifth_birthday_after(birth: Date, issued: Date) -> Result<Date, AgeError> {
    if issued < birth {
        return Err(AgeError::BeforeBirth);
    }
    let this_year = birthday_in(birth, issued.year())?;
    let first_year = if this_year > issued {
        issued.year()
    } else {
        issued.year() + 1
    };
    birthday_in(birth, first_year + VALIDITY_BIRTHDAYS - 1)
}

/// The last day a certificate issued on `issued` is valid: the holder's 5th birthday after
/// issuance, or the card's expiry if that comes first.
pub fn validity_end(birth: Date, issued: Date, card_expiry: Date) -> Result<Date, AgeError> {
    if card_expiry <= issued {
        return Err(AgeError::CardExpired);
    }
    Ok(fifth_birthday_after(birth, issued)?.min(card_expiry))
}

/// `date` moved back by `months` calendar months; a day the target month lacks becomes
/// that month's last day (05-31 minus 3 months is 02-28, or 02-29 in a leap year).
pub fn months_before(date: Date, months: u8) -> Result<Date, AgeError> {
    let index = date.year() * 12 + i32::from(u8::from(date.month())) - 1 - i32::from(months);
    let year = index.div_euclid(12);
    let month_number = u8::try_from(index.rem_euclid(12) + 1).map_err(|_| AgeError::OutOfRange)?;
    let month = Month::try_from(month_number).map_err(|_| AgeError::OutOfRange)?;
    let day = date.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).map_err(|_| AgeError::OutOfRange)
}

/// The first day renewal is possible: three calendar months before expiry, clamped to
/// the month's end.
pub fn renewal_opens(expiry: Date) -> Result<Date, AgeError> {
    months_before(expiry, RENEWAL_WINDOW_MONTHS)
}

/// Where the visit date stands against a certificate's renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalStatus {
    /// Too early; renewal opens on `opens`.
    TooEarly {
        /// The first day of the window.
        opens: Date,
    },
    /// The window is open; the certificate is still valid through `expiry`.
    Open {
        /// The certificate's last valid day.
        expiry: Date,
    },
    /// The certificate has expired; the visit is a new issuance, not a renewal.
    Expired,
}

/// Whether a certificate that is valid through `expiry` can be renewed on `today`. The
/// window runs from [`renewal_opens`] through `expiry`, both included.
pub fn renewal_status(expiry: Date, today: Date) -> Result<RenewalStatus, AgeError> {
    let opens = renewal_opens(expiry)?;
    Ok(if today < opens {
        RenewalStatus::TooEarly { opens }
    } else if today <= expiry {
        RenewalStatus::Open { expiry }
    } else {
        RenewalStatus::Expired
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::date;

    use super::*;

    #[test]
    fn age_on_dates_around_birthdays() {
        let table = [
            // (birth, on, age)
            (date!(2011 - 04 - 02), date!(2026 - 04 - 01), 14),
            (date!(2011 - 04 - 02), date!(2026 - 04 - 02), 15),
            (date!(2011 - 04 - 01), date!(2026 - 03 - 31), 14),
            (date!(2011 - 04 - 01), date!(2026 - 04 - 01), 15),
            (date!(2008 - 02 - 29), date!(2023 - 02 - 28), 14),
            (date!(2008 - 02 - 29), date!(2023 - 03 - 01), 15),
            (date!(2008 - 02 - 29), date!(2024 - 02 - 28), 15),
            (date!(2008 - 02 - 29), date!(2024 - 02 - 29), 16),
            (date!(2008 - 03 - 01), date!(2024 - 02 - 29), 15),
            (date!(2008 - 03 - 01), date!(2024 - 03 - 01), 16),
            (date!(1980 - 02 - 17), date!(2026 - 11 - 22), 46),
            (date!(2026 - 11 - 22), date!(2026 - 11 - 22), 0),
            (date!(2025 - 12 - 31), date!(2026 - 01 - 01), 0),
        ];
        for (birth, on, age) in table {
            assert_eq!(age_on(birth, on), Ok(age), "{birth} on {on}");
        }
        assert_eq!(
            age_on(date!(2000 - 01 - 02), date!(2000 - 01 - 01)),
            Err(AgeError::BeforeBirth)
        );
    }

    #[test]
    fn day_age_attained_is_the_day_before_the_birthday() {
        let table = [
            (date!(2011 - 04 - 01), 15, date!(2026 - 03 - 31)),
            (date!(2011 - 04 - 02), 15, date!(2026 - 04 - 01)),
            (date!(2008 - 02 - 29), 15, date!(2023 - 02 - 28)),
            (date!(2008 - 02 - 29), 16, date!(2024 - 02 - 28)),
            (date!(2008 - 03 - 01), 16, date!(2024 - 02 - 29)),
            (date!(2000 - 01 - 01), 1, date!(2000 - 12 - 31)),
        ];
        for (birth, years, day) in table {
            assert_eq!(day_age_attained(birth, years), Ok(day), "{birth} {years}");
        }
    }

    #[test]
    fn eligibility_table() {
        use CertDecision::*;
        let visit = date!(2026 - 11 - 22);
        let adult = date!(1980 - 02 - 17);
        let fourteen = date!(2011 - 11 - 23); // 15 tomorrow
        let fifteen = date!(2011 - 11 - 22); // 15 today
        let none = Requested {
            sign: false,
            auth: false,
        };
        let auth_only = Requested {
            sign: false,
            auth: true,
        };
        let table = [
            (adult, false, Requested::BOTH, Issue, Issue),
            (adult, false, auth_only, Declined, Issue),
            (
                adult,
                false,
                Requested {
                    sign: true,
                    auth: false,
                },
                Issue,
                Declined,
            ),
            (adult, false, none, Declined, Declined),
            (
                adult,
                true,
                Requested::BOTH,
                NotEligible(Ineligible::AdultWard),
                Issue,
            ),
            (
                adult,
                true,
                auth_only,
                NotEligible(Ineligible::AdultWard),
                Issue,
            ),
            (
                fourteen,
                false,
                Requested::BOTH,
                NotEligible(Ineligible::UnderFifteen),
                Issue,
            ),
            (
                fourteen,
                true,
                Requested::BOTH,
                NotEligible(Ineligible::UnderFifteen),
                Issue,
            ),
            (fifteen, false, Requested::BOTH, Issue, Issue),
        ];
        for (birth, ward, req, sign, auth) in table {
            let e = eligibility(birth, ward, visit, req).unwrap();
            assert_eq!(
                (e.sign, e.auth),
                (sign, auth),
                "{birth} ward={ward} {req:?}"
            );
            assert_eq!(e.issues_any(), sign == Issue || auth == Issue);
        }
    }

    #[test]
    fn validity_ends_on_the_fifth_birthday_after_issuance() {
        let far = date!(2099 - 12 - 31);
        let table = [
            // (birth, issued, card expiry, end)
            (
                date!(1980 - 02 - 17),
                date!(2026 - 11 - 22),
                far,
                date!(2031 - 02 - 17),
            ),
            (
                date!(1980 - 12 - 01),
                date!(2026 - 11 - 22),
                far,
                date!(2030 - 12 - 01),
            ),
            // Issued on the birthday: that birthday does not count.
            (
                date!(1980 - 11 - 22),
                date!(2026 - 11 - 22),
                far,
                date!(2031 - 11 - 22),
            ),
            (
                date!(1980 - 11 - 23),
                date!(2026 - 11 - 22),
                far,
                date!(2030 - 11 - 23),
            ),
            // 2/29 births: the birthday is 2/28 in common years.
            (
                date!(2000 - 02 - 29),
                date!(2026 - 11 - 22),
                far,
                date!(2031 - 02 - 28),
            ),
            (
                date!(2000 - 02 - 29),
                date!(2023 - 03 - 01),
                far,
                date!(2028 - 02 - 29),
            ),
            (
                date!(2000 - 02 - 29),
                date!(2023 - 02 - 28),
                far,
                date!(2028 - 02 - 29),
            ),
            (
                date!(2000 - 02 - 29),
                date!(2023 - 02 - 27),
                far,
                date!(2027 - 02 - 28),
            ),
            // Capped by the card's expiry.
            (
                date!(1980 - 02 - 17),
                date!(2026 - 11 - 22),
                date!(2029 - 06 - 30),
                date!(2029 - 06 - 30),
            ),
        ];
        for (birth, issued, card, end) in table {
            assert_eq!(
                validity_end(birth, issued, card),
                Ok(end),
                "{birth} {issued}"
            );
        }
        let d = date!(2026 - 11 - 22);
        assert_eq!(
            validity_end(date!(1980 - 01 - 01), d, d),
            Err(AgeError::CardExpired)
        );
    }

    #[test]
    fn renewal_window_clamps_month_ends() {
        let table = [
            (date!(2027 - 05 - 31), date!(2027 - 02 - 28)),
            (date!(2028 - 05 - 31), date!(2028 - 02 - 29)),
            (date!(2027 - 05 - 30), date!(2027 - 02 - 28)),
            (date!(2027 - 05 - 28), date!(2027 - 02 - 28)),
            (date!(2027 - 02 - 17), date!(2026 - 11 - 17)),
            (date!(2027 - 01 - 31), date!(2026 - 10 - 31)),
            (date!(2027 - 12 - 31), date!(2027 - 09 - 30)),
            (date!(2027 - 03 - 31), date!(2026 - 12 - 31)),
        ];
        for (expiry, opens) in table {
            assert_eq!(renewal_opens(expiry), Ok(opens), "{expiry}");
        }
    }

    #[test]
    fn renewal_status_around_the_window() {
        let expiry = date!(2027 - 05 - 31);
        let table = [
            (
                date!(2027 - 02 - 27),
                RenewalStatus::TooEarly {
                    opens: date!(2027 - 02 - 28),
                },
            ),
            (date!(2027 - 02 - 28), RenewalStatus::Open { expiry }),
            (date!(2027 - 05 - 31), RenewalStatus::Open { expiry }),
            (date!(2027 - 06 - 01), RenewalStatus::Expired),
        ];
        for (today, status) in table {
            assert_eq!(renewal_status(expiry, today), Ok(status), "{today}");
        }
    }

    fn any_date(lo: Date, hi: Date) -> impl Strategy<Value = Date> {
        (lo.to_julian_day()..=hi.to_julian_day()).prop_map(|j| Date::from_julian_day(j).unwrap())
    }

    proptest! {
        #[test]
        fn age_grows_by_at_most_one_per_day(
            birth in any_date(date!(1900 - 01 - 01), date!(2030 - 12 - 31)),
            offset in 0u32..40_000,
        ) {
            let on = birth + time::Duration::days(i64::from(offset));
            let next = on.next_day().unwrap();
            let (a, b) = (age_on(birth, on).unwrap(), age_on(birth, next).unwrap());
            prop_assert!(b == a || b == a + 1);
            // The age changes exactly on the day after the day it is attained.
            prop_assert_eq!(b == a + 1, day_age_attained(birth, b).unwrap() == on);
        }

        #[test]
        fn validity_is_within_four_to_five_years(
            birth in any_date(date!(1900 - 01 - 01), date!(2020 - 12 - 31)),
            issued in any_date(date!(2021 - 01 - 01), date!(2040 - 12 - 31)),
        ) {
            let end = fifth_birthday_after(birth, issued).unwrap();
            prop_assert!(end > issued);
            prop_assert!(end.year() - issued.year() >= 4 && end.year() - issued.year() <= 5);
            prop_assert!(end <= issued + time::Duration::days(5 * 366));
            prop_assert!(end > issued + time::Duration::days(4 * 365));
            // No birthday lies strictly between the 4th and the 5th counted ones.
            prop_assert_eq!(birthday_in(birth, end.year()).unwrap(), end);
        }

        #[test]
        fn renewal_opens_about_three_months_before(
            expiry in any_date(date!(2000 - 01 - 01), date!(2100 - 12 - 31)),
        ) {
            let opens = renewal_opens(expiry).unwrap();
            let days = (expiry - opens).whole_days();
            prop_assert!((89..=92).contains(&days), "{} days", days);
        }
    }
}
