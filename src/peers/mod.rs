//! Real peers the demo and the tests run against, started and stopped by the kiosk's own
//! code: no mocks. Test and demo equipment only; the appliance image never starts these.
//!
//! - [`card_stack`]: a private pcscd with vsmartcard's vpcd in its own mount and network
//!   namespaces, and `jpki-vcard` processes plugged into it;
//! - [`ca_process`]: `jpki-ca serve` on loopback.

pub mod ca_process;
pub mod card_stack;
