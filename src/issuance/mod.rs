//! The counter's visits as state machines that do no I/O, and what they need around them:
//! the journal records that make a visit resumable, the reconciliation of card, local
//! record and CA, and the notices that tell people what went wrong.
//!
//! The shape follows rustls: [`Issuance::handle`] takes the visit by value and one
//! [`Event`], and returns the next visit with the [`Command`]s for the adapters (card,
//! CMP client, registry, resident pad, printer, screens). Adapters are the only code that
//! touches the world; a driver loops "journal the command, run it, journal the result,
//! hand it to `handle`". `docs/workflow.md` describes the states, the journal and the
//! compensation rules.
//!
//! What it is not: an adapter, a PIN holder (the resident pad keeps PINs; events only say
//! the pad holds a valid one), or a clock.
//!
//! ```
//! use jpki_kiosk::issuance::{Command, Event, Issuance, Screen};
//! # use jpki_kiosk::issuance::event::{Opening, Visit};
//! # use jpki_kiosk::issuance::model::{Seed, TransactionId, VisitId};
//! # let opening = Opening {
//! #     visit: VisitId("v-0001".into()), kind: Visit::NewIssuance,
//! #     date: time::macros::date!(2026 - 11 - 22), operator: "staff-07".into(),
//! #     seed: Seed {
//! #         transaction: TransactionId([1; 16]), revocation: TransactionId([4; 16]),
//! #         sender_nonce: [2; 16], test_nonce: [3; 16],
//! #     },
//! #     fees: Default::default(), identity: Default::default(),
//! # };
//! let (visit, commands) = Issuance::new().handle(Event::VisitOpened(opening)).unwrap();
//! assert_eq!(commands, vec![Command::Show { screen: Screen::Form }]);
//! // An event out of order is refused and leaves the visit as it was.
//! let refused = visit.clone().handle(Event::Printed).unwrap_err();
//! assert_eq!(refused.state, visit);
//! ```

pub mod adapters;
pub mod command;
pub mod driver;
pub mod error;
pub mod event;
pub mod journal;
pub mod model;
pub mod notice;
pub mod proof;
pub mod reconcile;
pub mod state;

#[cfg(test)]
mod testkeys;
#[cfg(test)]
mod tests;

pub use command::{CaCommand, CardCommand, Command, Outcome, PadCommand, Screen};
pub use error::IssuanceError;
pub use event::Event;
pub use journal::{resume, JournalRecord};
pub use notice::{notice_for, Notice};
pub use reconcile::{reconcile, Discrepancy};
pub use state::{Issuance, Refused};
