//! The virtual JPKI card (`jpki-vcard`): a test peer that plugs into pcscd through
//! vsmartcard's vpcd driver. Never shipped in the appliance image.
//!
//! - [`model`]: the card itself, sans-I/O ([`VirtualCard`], [`CardState`]);
//! - [`state`]: the persistent state on disk, saved atomically ([`StateFile`]);
//! - [`vpcd`]: the vpicc side of the vpcd wire protocol ([`serve`]), with timing
//!   profiles ([`TimingProfile`]) and fault injection ([`Faults`]).
//!
//! It is not a general-purpose ISO 7816 card emulator: it knows exactly the commands of
//! `docs/card-protocol.md`, and `docs/vcard.md` describes the program.

pub mod model;
pub mod state;
pub mod vpcd;

pub use model::{CardKind, CardState, Effect, Operation, PowerEvent, VirtualCard};
pub use state::{StateError, StateFile};
pub use vpcd::{serve, FailSw, Faults, ServeConfig, ServeExit, TimingProfile, VpcdError};
