//! jpki-kiosk: the software of a town-hall counter appliance that issues JPKI
//! (公的個人認証サービス) certificates onto residents' IC cards.
//!
//! The library holds everything the three binaries share:
//! - [`card`]: the kiosk's side of the card (JPKI-AP over PC/SC, and the
//!   issuance stand-in commands documented in `docs/card-protocol.md`);
//! - [`vcard`]: the virtual JPKI card that plugs into pcscd through vpcd
//!   (a test peer, never shipped in the appliance image);
//! - [`pki`]: certificate profile and CMP pieces shared by CA and client;
//! - [`ca`]: the reference prefectural CA (a test peer, never shipped);
//! - [`enroll`]: the kiosk's CMP client;
//! - [`rules`]: the counter's rules as pure functions;
//! - [`ledger`]: the counter's cash ledger, refunds and close of day;
//! - [`print`]: receipts, issuance records and the day's ledger as PDF, and their printing;
//! - [`registry`]: the resident registry the applications are checked against;
//! - [`audit`]: the append-only, hash-chained audit log;
//! - [`staff`]: operators, sign-in and supervisor approvals;
//! - [`ui`]: the Slint screens (staff window, resident PIN pad) and their adapters;
//! - [`logging`]: `tracing` to journald or stderr, and redacted ids for log fields;
//! - [`carddemo`]: the card demo (`jpki-kiosk card-demo`);
//! - [`peers`]: real peers for the demo and tests (a private pcscd with virtual cards).
//! - [`issuance`]: the visits as state machines that do no I/O, their journal and notices.
//! - [`site`]: the appliance's per-site configuration (`site.toml`), validated at load;
//! - [`doctor`]: the appliance's self-test (`jpki-kiosk doctor`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod ca;
pub mod card;
pub mod carddemo;
pub mod doctor;
pub mod enroll;
pub mod issuance;
pub mod kiosk;
pub mod logging;
pub mod ledger;
pub mod peers;
pub mod pki;
pub mod print;
pub mod registry;
pub mod rules;
pub mod site;
pub mod staff;
pub mod ui;
pub mod vcard;
