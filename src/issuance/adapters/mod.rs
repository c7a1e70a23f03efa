//! The adapters a visit runs on: each turns the state machine's commands of one kind into
//! I/O and the answer into an [`Event`]. Small traits, so the driver can be read without
//! the devices and each real adapter is thin enough to check by reading.
//!
//! Real adapters: [`card::PcscCard`] (the card layer over pcscd), [`ca::CmpCa`] (the CMP
//! client over HTTPS), [`store::SqliteJournal`] (the visit journal), [`store::SqliteAudit`]
//! (the audit log), [`RegistryLookup`] (the resident registry), [`cases::Records`] (the
//! registry with the proxy case file), [`printer::LedgerPrinter`] (the fee into the ledger,
//! the receipt to CUPS, a USB printer or a saved PDF; the 照会書 saved as PDF),
//! [`ReceiptFile`] (a receipt saved as JSON, for tests that need no printer),
//! [`SystemClock`], and the [`ResidentPad`] that holds the PINs.
//!
//! What it is not: the decision maker. No adapter decides what happens next; they only
//! report what the world said.

pub mod ca;
pub mod card;
pub mod cases;
pub mod printer;
pub mod reconcile_views;
pub mod script;
pub mod store;

use std::path::PathBuf;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::command::{CaCommand, CardCommand, Command, Receipt};
use super::event::Event;
use super::journal::JournalRecord;
use super::model::{
    CardSerial, CurrentCert, Form, InquiryCase, RegisteredResident, ResidentRef, Slot,
};
use crate::card::pin::{AuthPin, PinFormatError, SigningPassword};
use crate::pki::jpki_profile::{requested_profile, CertProfile};
use crate::registry::{ResidentId, ResidentRegistry};

/// Why an adapter could not keep its record (journal or audit): the visit must stop,
/// because a command that is not journaled must not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored journal record does not parse.
    #[error("journal record {seq} does not parse: {source}")]
    Corrupt {
        /// Its sequence number.
        seq: i64,
        /// Why.
        source: serde_json::Error,
    },
    /// The audit log refused.
    #[error("audit: {0}")]
    Audit(#[from] crate::audit::AuditError),
}

/// The card: runs one card command, with PINs from the pad. `None` when there is nothing
/// to answer yet (no card in the reader).
pub trait CardPort {
    /// Runs `command`.
    fn run(&mut self, command: &CardCommand, pad: &mut ResidentPad) -> Option<Event>;
}

/// The prefectural CA: runs one CA command.
pub trait CaPort {
    /// Runs `command`. Always answers: an unreachable CA is an event too.
    fn run(&mut self, command: &CaCommand) -> Event;
    /// Learns what the journal says was sent before a restart (the requests behind a
    /// later confirmation).
    fn recall(&mut self, records: &[JournalRecord]);
}

/// The visit journal: one record per row, appended in order.
pub trait JournalPort {
    /// Appends `record` to the visit's journal; durable when this returns.
    fn append(&mut self, visit: &str, record: &JournalRecord) -> Result<(), StoreError>;
    /// Marks the visit ended (a finished visit is not resumed).
    fn close(&mut self, visit: &str) -> Result<(), StoreError>;
    /// The visit that was open when the kiosk stopped, with its records.
    fn unfinished(&self) -> Result<Option<(String, Vec<JournalRecord>)>, StoreError>;
}

/// The audit log, as the driver feeds it: one call per journal record.
pub trait AuditPort {
    /// Records what `record` means for the audit log (many records mean nothing there).
    fn note(
        &mut self,
        visit: &str,
        record: &JournalRecord,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Records that the visit was resumed after a restart.
    fn resumed(&mut self, visit: &str, at: OffsetDateTime) -> Result<(), StoreError>;
}

/// The municipality's records: the resident registry and, where one is kept, the proxy
/// case file ([`cases::Records`]).
pub trait RegistryPort {
    /// Looks the resident up.
    fn fetch(&mut self, id: &ResidentRef) -> Event;
    /// Looks a proxy case up (`CaseAnswered`). `None`: no case file here (the counter
    /// answers, or nobody).
    fn case_lookup(&mut self, _case: &str) -> Option<Event> {
        None
    }
    /// Records a proxy case with the request as entered (`CaseStored`). `None`: no case
    /// file here.
    fn case_store(&mut self, _case: &InquiryCase, _request: Option<&Form>) -> Option<Event> {
        None
    }
}

/// The printer.
pub trait PrinterPort {
    /// Prints (or saves) the receipt.
    fn print(&mut self, receipt: &Receipt) -> Event;
    /// Prints the 照会書兼回答書 (`Printed` / `PrintFailed`). `None`: this printer has no
    /// letter (the counter answers, or nobody).
    fn print_inquiry(&mut self, _letter: &cases::InquiryLetter) -> Option<Event> {
        None
    }
}

/// Staff and resident: what they answer to screens and pad prompts. `None` means "nobody
/// has answered yet": the driver stops and waits.
pub trait Counter {
    /// The answer to `command` (a screen, a notice or a pad prompt); PINs go into `pad`.
    fn answer(&mut self, command: &Command, pad: &mut PadEntry<'_>) -> Option<Event>;
    /// A card, CA, registry or printer command is about to run or has run (for the
    /// progress shown to staff). Nothing to answer.
    fn progress(&mut self, _command: &Command, _stage: Stage) {}
}

/// Where a command stands, for [`Counter::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// About to run.
    Started,
    /// Answered; `failed` when the answer is a failure (card pulled, CA unreachable…).
    Finished {
        /// The answer reports a failure.
        failed: bool,
    },
}

impl<T: Counter + ?Sized> Counter for &mut T {
    fn answer(&mut self, command: &Command, pad: &mut PadEntry<'_>) -> Option<Event> {
        (**self).answer(command, pad)
    }
    fn progress(&mut self, command: &Command, stage: Stage) {
        (**self).progress(command, stage)
    }
}

/// Wall-clock time for audit records and ticks.
pub trait Clock {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// Where the card adapter finds the certificates a card holds but will not show without a
/// PIN (the signing certificate): the CA's holder query by card id
/// ([`ca::CaDirectory`]). Each answer is a live certificate with its public key (SPKI
/// DER), which the adapter matches against the key on the card.
pub trait CertDirectory {
    /// The live certificates the CA issued for `card`.
    fn certs_of_card(&mut self, card: &CardSerial) -> Result<Vec<(CurrentCert, Vec<u8>)>, String>;
}

/// A certificate as the visit knows it: slot (from its policy), serial (upper-case hex)
/// and last day (notAfter is the end of a JST day, 14:59:59Z, so its UTC date is that
/// day). `None` for a certificate of neither JPKI profile.
pub fn current_cert(cert: &x509_cert::Certificate) -> Option<CurrentCert> {
    let tbs = &cert.tbs_certificate;
    let slot = match requested_profile(tbs.extensions.as_ref()).ok()? {
        CertProfile::UserAuth => Slot::Auth,
        CertProfile::Signing => Slot::Sign,
    };
    let secs = tbs.validity.not_after.to_unix_duration().as_secs();
    let not_after = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?)
        .ok()?
        .date();
    Some(CurrentCert {
        slot,
        serial: hex::encode_upper(tbs.serial_number.as_bytes()),
        not_after,
    })
}

macro_rules! by_mut_ref {
    ($trait:ident { $(fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* }) => {
        impl<T: $trait + ?Sized> $trait for &mut T {
            $(fn $name(&mut self $(, $arg: $ty)*) -> $ret { (**self).$name($($arg),*) })*
        }
    };
}

by_mut_ref!(CardPort { fn run(&mut self, command: &CardCommand, pad: &mut ResidentPad) -> Option<Event>; });
by_mut_ref!(CaPort {
    fn run(&mut self, command: &CaCommand) -> Event;
    fn recall(&mut self, records: &[JournalRecord]) -> ();
});
by_mut_ref!(RegistryPort {
    fn fetch(&mut self, id: &ResidentRef) -> Event;
    fn case_lookup(&mut self, case: &str) -> Option<Event>;
    fn case_store(&mut self, case: &InquiryCase, request: Option<&Form>) -> Option<Event>;
});
by_mut_ref!(PrinterPort {
    fn print(&mut self, receipt: &Receipt) -> Event;
    fn print_inquiry(&mut self, letter: &cases::InquiryLetter) -> Option<Event>;
});

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The resident pad's memory: the PINs entered for this visit, zeroized when replaced or
/// dropped. Only the card adapter takes them out; the state machine hears only that the pad
/// holds one (`PadReady`, `PadConfirmed`). `Debug` shows which entries are held, never them.
#[derive(Default)]
pub struct ResidentPad {
    new_auth: Option<AuthPin>,
    new_sign: Option<SigningPassword>,
    confirm_auth: Option<AuthPin>,
    confirm_sign: Option<SigningPassword>,
}

impl std::fmt::Debug for ResidentPad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentPad")
            .field("new_auth", &self.new_auth.is_some())
            .field("new_sign", &self.new_sign.is_some())
            .field("confirm_auth", &self.confirm_auth.is_some())
            .field("confirm_sign", &self.confirm_sign.is_some())
            .finish()
    }
}

/// A PIN lent by the pad for one card command.
pub enum PadPin<'a> {
    /// The auth PIN.
    Auth(&'a AuthPin),
    /// The signing password.
    Sign(&'a SigningPassword),
}

impl ResidentPad {
    /// The new PIN for `slot` (kept until the card confirms it was set: a pulled card
    /// needs it again).
    pub fn new_pin(&self, slot: Slot) -> Option<PadPin<'_>> {
        match slot {
            Slot::Auth => self.new_auth.as_ref().map(PadPin::Auth),
            Slot::Sign => self.new_sign.as_ref().map(PadPin::Sign),
        }
    }

    /// The confirmation entry for `slot`'s self-test.
    pub fn confirmation(&self, slot: Slot) -> Option<PadPin<'_>> {
        match slot {
            Slot::Auth => self.confirm_auth.as_ref().map(PadPin::Auth),
            Slot::Sign => self.confirm_sign.as_ref().map(PadPin::Sign),
        }
    }

    /// Forgets the new PIN of `slot` once it is on the card.
    pub fn forget_new(&mut self, slot: Slot) {
        match slot {
            Slot::Auth => self.new_auth = None,
            Slot::Sign => self.new_sign = None,
        }
    }

    /// Forgets the confirmation entry of `slot` (after the test used it).
    pub fn forget_confirmation(&mut self, slot: Slot) {
        match slot {
            Slot::Auth => self.confirm_auth = None,
            Slot::Sign => self.confirm_sign = None,
        }
    }

    /// Forgets everything (`Pad(Clear)`, end of visit).
    pub fn clear(&mut self) {
        *self = ResidentPad::default();
    }
}

/// What a person at the pad can do with it: enter, never read back.
pub struct PadEntry<'a>(&'a mut ResidentPad);

impl PadEntry<'_> {
    /// The resident typed a new PIN for `slot` twice, equal; its format is checked here.
    pub fn enter_new(
        &mut self,
        slot: Slot,
        typed: Zeroizing<String>,
    ) -> Result<(), PinFormatError> {
        match slot {
            Slot::Auth => self.0.new_auth = Some(AuthPin::new(&typed)?),
            Slot::Sign => self.0.new_sign = Some(SigningPassword::new(&typed)?),
        }
        Ok(())
    }

    /// The resident typed `slot`'s PIN once for the self-test.
    pub fn enter_confirmation(
        &mut self,
        slot: Slot,
        typed: Zeroizing<String>,
    ) -> Result<(), PinFormatError> {
        match slot {
            Slot::Auth => self.0.confirm_auth = Some(AuthPin::new(&typed)?),
            Slot::Sign => self.0.confirm_sign = Some(SigningPassword::new(&typed)?),
        }
        Ok(())
    }
}

impl ResidentPad {
    /// The entry side of the pad, for the [`Counter`].
    pub fn entry(&mut self) -> PadEntry<'_> {
        PadEntry(self)
    }
}

/// The registry adapter over any [`ResidentRegistry`] (the SQLite one at the counter).
pub struct RegistryLookup<R>(pub R);

impl<R: ResidentRegistry> RegistryPort for RegistryLookup<R> {
    fn fetch(&mut self, id: &ResidentRef) -> Event {
        fetch_from(&self.0, id)
    }
}

/// The registry's answer for `id` as the visit hears it.
fn fetch_from<R: ResidentRegistry>(registry: &R, id: &ResidentRef) -> Event {
    let Ok(id) = ResidentId::new(&id.0) else {
        // A malformed id is an unknown one: the form goes back to staff.
        return Event::RegistryAnswered { record: None };
    };
    match registry.by_id(&id) {
        Ok(record) => Event::RegistryAnswered {
            record: record.as_ref().map(RegisteredResident::from_record),
        },
        Err(e) => {
            tracing::warn!(error = %e, "registry lookup failed");
            Event::RegistryFailed
        }
    }
}

/// Saves each receipt as `DIR/receipt-VISIT-COPY.json` (stand-in for the printer).
#[derive(Debug, Clone)]
pub struct ReceiptFile {
    /// Where receipts go.
    pub dir: PathBuf,
}

impl PrinterPort for ReceiptFile {
    fn print(&mut self, receipt: &Receipt) -> Event {
        let path = self
            .dir
            .join(format!("receipt-{}-{}.json", receipt.visit.0, receipt.copy));
        let text = serde_json::to_string_pretty(receipt).unwrap_or_default();
        match std::fs::write(&path, text) {
            Ok(()) => Event::Printed,
            Err(e) => {
                tracing::warn!(error = %e, "receipt not saved");
                Event::PrintFailed {
                    failure: super::event::PrintFailure::Offline,
                }
            }
        }
    }

    /// Saves the letter as `DIR/inquiry-CASE.pdf`.
    fn print_inquiry(&mut self, letter: &cases::InquiryLetter) -> Option<Event> {
        let path = self.dir.join(format!("inquiry-{}.pdf", letter.case.case));
        let saved = crate::print::pdf::Font::load_default()
            .and_then(|font| cases::inquiry_pdf(letter, &font))
            .map_err(|e| e.to_string())
            .and_then(|pdf| std::fs::write(&path, pdf).map_err(|e| e.to_string()));
        Some(match saved {
            Ok(()) => Event::Printed,
            Err(e) => {
                tracing::warn!(error = %e, "inquiry letter not saved");
                Event::PrintFailed {
                    failure: super::event::PrintFailure::Offline,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_debug_shows_no_pin_and_clear_forgets() {
        let mut pad = ResidentPad::default();
        pad.entry()
            .enter_new(Slot::Auth, Zeroizing::new("4821".into()))
            .unwrap();
        pad.entry()
            .enter_new(Slot::Sign, Zeroizing::new("KIOSK77".into()))
            .unwrap();
        let shown = format!("{pad:?}");
        assert!(
            !shown.contains("4821") && !shown.contains("KIOSK77"),
            "{shown}"
        );
        assert!(matches!(pad.new_pin(Slot::Auth), Some(PadPin::Auth(_))));
        assert!(pad.confirmation(Slot::Sign).is_none());
        pad.forget_new(Slot::Auth);
        assert!(pad.new_pin(Slot::Auth).is_none());
        pad.clear();
        assert!(pad.new_pin(Slot::Sign).is_none());
    }

    #[test]
    fn bad_pin_format_is_refused_at_the_pad() {
        let mut pad = ResidentPad::default();
        assert!(pad
            .entry()
            .enter_new(Slot::Auth, Zeroizing::new("12".into()))
            .is_err());
        assert!(pad.new_pin(Slot::Auth).is_none());
    }
}
