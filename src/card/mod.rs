//! The card: JPKI-AP as real cards answer it, and the issuance stand-in commands.
//!
//! `docs/card-protocol.md` specifies every command byte by byte. The modules here that
//! build and parse APDUs never transmit; only the transport touches PC/SC.

pub mod admin_key;
pub mod apdu;
pub mod files;
