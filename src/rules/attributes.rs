//! The personal-data attributes of the signing certificate (arc `1.2.392.200149.8.5.5`),
//! built from registered items and chosen substitutes, and checked when read back.
//!
//! | Arc | Attribute | Built by |
//! |---|---|---|
//! | `.1` | 氏名 | [`repertoire::apply`] on the registered name |
//! | `.2` | 氏名代替文字の使用位置情報 | derived by the same call |
//! | `.3` | 性別 (JIS X 0303 digit) | [`Sex::code`] |
//! | `.4` | 生年月日 `EYYYYMMDD` | [`CertBirthDate`] |
//! | `.5` | 住所 | [`repertoire::apply`] on the registered address |
//! | `.6` | 住所代替文字の使用位置情報 | derived by the same call |
//!
//! This module makes and checks the values only; the otherName/UTF8String encoding and the
//! rest of the certificate profile belong to the PKI layer. The authentication
//! certificate carries none of these.

use super::repertoire::{self, CertifiedText, SubstituteError, Substitution};
use super::wareki::{CertBirthDate, WarekiError};
use time::Date;

/// The last arc of each attribute under `1.2.392.200149.8.5.5`.
pub mod arc {
    /// 氏名.
    pub const NAME: u32 = 1;
    /// 氏名代替文字の使用位置情報.
    pub const NAME_POSITIONS: u32 = 2;
    /// 性別.
    pub const SEX: u32 = 3;
    /// 生年月日.
    pub const BIRTH_DATE: u32 = 4;
    /// 住所.
    pub const ADDRESS: u32 = 5;
    /// 住所代替文字の使用位置情報.
    pub const ADDRESS_POSITIONS: u32 = 6;
    /// All six, in arc order.
    pub const ALL: [u32; 6] = [
        NAME,
        NAME_POSITIONS,
        SEX,
        BIRTH_DATE,
        ADDRESS,
        ADDRESS_POSITIONS,
    ];
}

/// Sex as the certificate encodes it (JIS X 0303).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// 0: not known.
    Unknown,
    /// 1: male.
    Male,
    /// 2: female.
    Female,
    /// 9: not applicable.
    NotApplicable,
}

impl Sex {
    /// The JIS X 0303 digit.
    pub fn code(self) -> u8 {
        match self {
            Sex::Unknown => 0,
            Sex::Male => 1,
            Sex::Female => 2,
            Sex::NotApplicable => 9,
        }
    }

    /// The sex for a JIS X 0303 digit.
    pub fn from_code(code: u8) -> Option<Sex> {
        match code {
            0 => Some(Sex::Unknown),
            1 => Some(Sex::Male),
            2 => Some(Sex::Female),
            9 => Some(Sex::NotApplicable),
            _ => None,
        }
    }
}

/// Why the attributes could not be built or a read-back set is inconsistent. Arcs and
/// positions are named, never contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// The name's substitutes do not fit it.
    #[error("name: {0}")]
    Name(SubstituteError),
    /// The address's substitutes do not fit it.
    #[error("address: {0}")]
    Address(SubstituteError),
    /// The name or address is empty (after trimming spaces).
    #[error("attribute .{arc} is empty")]
    Empty {
        /// The attribute's arc.
        arc: u32,
    },
    /// The birth date cannot be encoded, or a read-back value is not `EYYYYMMDD`.
    #[error("birth date: {0}")]
    BirthDate(WarekiError),
    /// A read-back sex value is not a JIS X 0303 digit.
    #[error("sex is not a JIS X 0303 digit")]
    Sex,
    /// A read-back set lacks an attribute, has one twice, or has an unknown arc.
    #[error("attribute .{arc} is missing, repeated or unknown")]
    Set {
        /// The attribute's arc.
        arc: u32,
    },
    /// A read-back text holds a character outside JIS X 0208/0212.
    #[error("attribute .{arc} holds a character outside JIS X 0208/0212")]
    Repertoire {
        /// The attribute's arc.
        arc: u32,
    },
    /// A read-back position string is not one `0`/`1` per character of its text.
    #[error("position string .{arc} does not fit its text")]
    Positions {
        /// The position string's arc.
        arc: u32,
    },
}

/// The six personal-data attribute values of a signing certificate, consistent by
/// construction. `Debug` shows the position strings only.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningAttributes {
    name: CertifiedText,
    sex: Sex,
    birth_date: CertBirthDate,
    address: CertifiedText,
}

impl std::fmt::Debug for SigningAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningAttributes")
            .field("name", &self.name)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl SigningAttributes {
    /// Builds the attributes from the registered items and the substitutes chosen at the
    /// counter (positions index the normalised registered text, see
    /// [`repertoire::apply`]).
    pub fn build(
        name: &str,
        name_substitutes: &[Substitution],
        sex: Sex,
        birth_date: Date,
        address: &str,
        address_substitutes: &[Substitution],
    ) -> Result<SigningAttributes, AttributeError> {
        if name.trim().is_empty() {
            return Err(AttributeError::Empty { arc: arc::NAME });
        }
        if address.trim().is_empty() {
            return Err(AttributeError::Empty { arc: arc::ADDRESS });
        }
        Ok(SigningAttributes {
            name: repertoire::apply(name, name_substitutes).map_err(AttributeError::Name)?,
            sex,
            birth_date: CertBirthDate::new(birth_date).map_err(AttributeError::BirthDate)?,
            address: repertoire::apply(address, address_substitutes)
                .map_err(AttributeError::Address)?,
        })
    }

    /// The certified name and its position string.
    pub fn name(&self) -> &CertifiedText {
        &self.name
    }
    /// The sex.
    pub fn sex(&self) -> Sex {
        self.sex
    }
    /// The birth date.
    pub fn birth_date(&self) -> CertBirthDate {
        self.birth_date
    }
    /// The certified address and its position string.
    pub fn address(&self) -> &CertifiedText {
        &self.address
    }

    /// `(arc, value)` for each attribute, in arc order, ready for the UTF8String values.
    pub fn values(&self) -> [(u32, String); 6] {
        [
            (arc::NAME, self.name.text().to_owned()),
            (arc::NAME_POSITIONS, self.name.positions().to_owned()),
            (arc::SEX, self.sex.code().to_string()),
            (arc::BIRTH_DATE, self.birth_date.encode()),
            (arc::ADDRESS, self.address.text().to_owned()),
            (arc::ADDRESS_POSITIONS, self.address.positions().to_owned()),
        ]
    }

    /// Reads a set of `(arc, value)` pairs back, in any order (cards and parsers do not
    /// keep arc order), and checks it: each arc exactly once, texts inside the
    /// repertoire, position strings one `0`/`1` per character, a consistent birth date.
    pub fn from_values<'a>(
        values: impl IntoIterator<Item = (u32, &'a str)>,
    ) -> Result<SigningAttributes, AttributeError> {
        let mut slots: [Option<&str>; 6] = [None; 6];
        for (a, value) in values {
            let slot = usize::try_from(a)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| slots.get_mut(i))
                .ok_or(AttributeError::Set { arc: a })?;
            if slot.replace(value).is_some() {
                return Err(AttributeError::Set { arc: a });
            }
        }
        let get = |a: u32| slots[a as usize - 1].ok_or(AttributeError::Set { arc: a });
        let name = certified(get(arc::NAME)?, get(arc::NAME_POSITIONS)?, arc::NAME)?;
        let address = certified(
            get(arc::ADDRESS)?,
            get(arc::ADDRESS_POSITIONS)?,
            arc::ADDRESS,
        )?;
        let sex = match get(arc::SEX)?.as_bytes() {
            [d @ b'0'..=b'9'] => Sex::from_code(d - b'0').ok_or(AttributeError::Sex)?,
            _ => return Err(AttributeError::Sex),
        };
        let birth_date =
            CertBirthDate::decode(get(arc::BIRTH_DATE)?).map_err(AttributeError::BirthDate)?;
        Ok(SigningAttributes {
            name,
            sex,
            birth_date,
            address,
        })
    }
}

/// A read-back text with its position string, checked.
fn certified(text: &str, positions: &str, text_arc: u32) -> Result<CertifiedText, AttributeError> {
    if text.is_empty() {
        return Err(AttributeError::Empty { arc: text_arc });
    }
    if !text.chars().all(repertoire::in_repertoire) {
        return Err(AttributeError::Repertoire { arc: text_arc });
    }
    let fits = positions.chars().count() == text.chars().count()
        && positions.bytes().all(|b| b == b'0' || b == b'1');
    if !fits {
        return Err(AttributeError::Positions { arc: text_arc + 1 });
    }
    Ok(CertifiedText::from_parts(
        text.to_owned(),
        positions.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn sub(index: usize, r: &str) -> Substitution {
        Substitution {
            index,
            replacement: r.to_owned(),
        }
    }

    fn takahashi() -> SigningAttributes {
        SigningAttributes::build(
            "髙橋　一郎",
            &[sub(0, "高")],
            Sex::Male,
            date!(1980 - 02 - 17),
            "山吹県白樺郡若葉町本郷一丁目２番３号",
            &[],
        )
        .unwrap()
    }

    #[test]
    fn builds_the_six_values() {
        let values = takahashi().values();
        let expected = [
            (1, "高橋　一郎"),
            (2, "10000"),
            (3, "1"),
            (4, "319800217"),
            (5, "山吹県白樺郡若葉町本郷一丁目２番３号"),
            (6, "000000000000000000"),
        ];
        for ((a, v), (ea, ev)) in values.iter().zip(expected) {
            assert_eq!((*a, v.as_str()), (ea, ev));
        }
    }

    #[test]
    fn build_refuses_what_the_certificate_cannot_hold() {
        let d = date!(1980 - 02 - 17);
        let table = [
            (
                ("髙橋", vec![], "若葉町"),
                AttributeError::Name(SubstituteError::Missing { index: 0 }),
            ),
            (
                ("  ", vec![], "若葉町"),
                AttributeError::Empty { arc: arc::NAME },
            ),
            (
                ("高橋", vec![], ""),
                AttributeError::Empty { arc: arc::ADDRESS },
            ),
            (
                ("高橋", vec![sub(0, "高")], "若葉町"),
                AttributeError::Name(SubstituteError::NotNeeded { index: 0 }),
            ),
        ];
        for ((name, subs, address), err) in table {
            assert_eq!(
                SigningAttributes::build(name, &subs, Sex::Male, d, address, &[]),
                Err(err)
            );
        }
        let address_err =
            SigningAttributes::build("高橋", &[], Sex::Male, d, "𠮷野町", &[]).unwrap_err();
        assert_eq!(
            address_err,
            AttributeError::Address(SubstituteError::Missing { index: 0 })
        );
        let old = SigningAttributes::build("高橋", &[], Sex::Male, date!(1870 - 1 - 1), "町", &[]);
        assert_eq!(
            old,
            Err(AttributeError::BirthDate(
                WarekiError::BeforeGregorianCalendar
            ))
        );
    }

    #[test]
    fn reads_back_in_any_order() {
        let a = takahashi();
        let values = a.values();
        let mut shuffled: Vec<(u32, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // The test card's order: 1, 4, 3, 5, 2, 6.
        shuffled = [0, 3, 2, 4, 1, 5].iter().map(|&i| shuffled[i]).collect();
        assert_eq!(SigningAttributes::from_values(shuffled), Ok(a));
    }

    #[test]
    fn read_back_refuses_inconsistent_sets() {
        let good = takahashi().values();
        let with = |arc: u32, value: &'static str| -> Vec<(u32, String)> {
            good.iter()
                .map(|(a, v)| {
                    if *a == arc {
                        (*a, value.to_owned())
                    } else {
                        (*a, v.clone())
                    }
                })
                .collect()
        };
        let table = [
            (with(2, "1000"), AttributeError::Positions { arc: 2 }),
            (with(2, "10002"), AttributeError::Positions { arc: 2 }),
            (with(6, ""), AttributeError::Positions { arc: 6 }),
            (with(1, "髙橋　一郎"), AttributeError::Repertoire { arc: 1 }),
            (with(1, ""), AttributeError::Empty { arc: 1 }),
            (with(3, "3"), AttributeError::Sex),
            (with(3, "11"), AttributeError::Sex),
            (
                with(4, "419800217"),
                AttributeError::BirthDate(WarekiError::CertEraMismatch {
                    digit: 4,
                    actual: crate::rules::wareki::Era::Showa,
                }),
            ),
        ];
        for (values, err) in table {
            let pairs = values.iter().map(|(a, v)| (*a, v.as_str()));
            assert_eq!(SigningAttributes::from_values(pairs), Err(err));
        }
        let pairs: Vec<(u32, &str)> = good.iter().map(|(a, v)| (*a, v.as_str())).collect();
        let missing = pairs[..5].to_vec();
        assert_eq!(
            SigningAttributes::from_values(missing),
            Err(AttributeError::Set { arc: 6 })
        );
        let mut repeated = pairs.clone();
        repeated.push((3, "1"));
        assert_eq!(
            SigningAttributes::from_values(repeated),
            Err(AttributeError::Set { arc: 3 })
        );
        let mut unknown = pairs.clone();
        unknown.push((7, "x"));
        assert_eq!(
            SigningAttributes::from_values(unknown),
            Err(AttributeError::Set { arc: 7 })
        );
        let mut zero = pairs;
        zero.push((0, "x"));
        assert_eq!(
            SigningAttributes::from_values(zero),
            Err(AttributeError::Set { arc: 0 })
        );
    }

    #[test]
    fn sex_codes_round_trip() {
        for code in [0, 1, 2, 9] {
            assert_eq!(Sex::from_code(code).map(Sex::code), Some(code));
        }
        assert_eq!(Sex::from_code(3), None);
    }
}
