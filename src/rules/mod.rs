//! The counter's rules as pure functions: era dates, the certificate character repertoire
//! and its substitutes, furigana, age and eligibility, validity and renewal dates, fees,
//! identity documents, and the signing certificate's personal-data attribute values.
//!
//! Nothing here does I/O or reads the clock: the visit date and every record come in as
//! arguments, so each rule is tested with a table. A rule that says "no" returns a value
//! the workflow shows to people (an [`age::CertDecision`], a substitute position); errors
//! are kept for input that cannot be read at all. PIN format checks live with the PIN
//! types in the card layer, not here. The decisions behind each rule are in
//! `docs/rules.md`.
//!
//! From a registered name to the signing certificate's attributes:
//!
//! ```
//! use jpki_kiosk::rules::attributes::{Sex, SigningAttributes};
//! use jpki_kiosk::rules::repertoire::{self, Substitution, SubstituteTable};
//! use jpki_kiosk::rules::wareki;
//!
//! let table = SubstituteTable::shipped();
//! let name = "髙橋　一郎";
//! // Staff show each proposal to the resident, who may choose another substitute.
//! let chosen: Vec<Substitution> = repertoire::propose(name, &table)
//!     .into_iter()
//!     .map(|p| Substitution { index: p.index, replacement: p.designated.unwrap() })
//!     .collect();
//! let birth = wareki::parse("昭和55年2月17日")?.to_date();
//! let address = "山吹県白樺郡若葉町本郷一丁目２番３号";
//! let attrs = SigningAttributes::build(name, &chosen, Sex::Male, birth, address, &[])?;
//! assert_eq!(attrs.name().text(), "高橋　一郎");
//! assert_eq!(attrs.name().positions(), "10000");
//! assert_eq!(attrs.birth_date().encode(), "319800217");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod age;
pub mod attributes;
pub mod fee;
pub mod identity;
pub mod kana;
pub mod repertoire;
pub mod wareki;
