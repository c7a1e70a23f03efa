//! The virtual JPKI card (`jpki-vcard`): a test peer that plugs into pcscd through
//! vsmartcard's vpcd driver. Never shipped in the appliance image.
//!
//! - [`model`]: the card itself, sans-I/O ([`VirtualCard`], [`CardState`]);
//! - [`state`]: the persistent state on disk, saved atomically;
//! - [`vpcd`]: the vpicc side of the vpcd wire protocol, with timing profiles and faults.
//!
//! It is not a general-purpose ISO 7816 card emulator: it knows exactly the commands of
//! `docs/card-protocol.md`.

pub mod model;

pub use model::{CardKind, CardState, Effect, Operation, PowerEvent, VirtualCard};
