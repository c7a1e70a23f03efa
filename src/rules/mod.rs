//! The counter's rules as pure functions: era dates, the certificate character repertoire
//! and its substitutes, age and eligibility, validity and renewal dates, and fees.
//!
//! Nothing here does I/O or reads the clock: the visit date and every record come in as
//! arguments, so each rule is tested with a table. A rule that says "no" returns a value
//! the workflow shows to people (an [`age::CertDecision`], a substitute position); errors
//! are kept for input that cannot be read at all. PIN format checks live with the PIN
//! types in the card layer, not here. The decisions behind each rule are in
//! `docs/rules.md`.

pub mod age;
pub mod fee;
pub mod kana;
pub mod repertoire;
pub mod wareki;
