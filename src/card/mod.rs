//! The card: JPKI-AP as real cards answer it, and the issuance stand-in commands.
//!
//! `docs/card-protocol.md` specifies every command byte by byte. The modules here that
//! build and parse APDUs never transmit; only the transport touches PC/SC.
//!
//! - [`transport`]: the [`CardTransport`] trait, pcscd access, counting and tracing;
//! - [`jpki_ap`]: the public JPKI-AP (detect, read certificates, PINs, signatures);
//! - [`personalize`]: the issuance stand-in (admin authentication, key generation, PIN
//!   set-up and lock release, certificate writing, erasing);
//! - [`pin`]: the resident's two secrets as zeroizing newtypes;
//! - [`error`]: [`TransportError`] and [`CardError`];
//! - [`trace`]: APDU transcripts (PINs masked) recorded and replayed in unit tests.

pub mod admin_key;
pub mod apdu;
pub mod error;
pub mod files;
pub mod jpki_ap;
pub mod personalize;
pub mod pin;
pub mod trace;
pub mod transport;

pub use error::{CardError, TransportError};
pub use transport::CardTransport;
