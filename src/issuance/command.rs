//! What the visit asks the world to do. Adapters run these; the driver journals each one
//! before running it (see [`super::journal`]).
//!
//! A batch of commands is run in order. When one fails, its adapter reports the failure
//! as an event and the driver drops the rest of the batch: the state machine re-issues
//! whatever is still needed once the failure is dealt with. No command carries a PIN:
//! `SetPinFromPad` and `TestSign` tell the card adapter to take it from the resident pad.

use serde::{Deserialize, Serialize};
use time::Date;

use super::error::IssuanceError;
use super::model::{
    hex_bytes, iso_date, CardSerial, Der, InquiryCase, ResidentRef, Slot, SubstituteChoice,
    TransactionId, VisitId,
};
use crate::rules::fee::Yen;

/// A command to the card adapter (JPKI-AP plus the issuance stand-in of
/// `docs/card-protocol.md` §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CardCommand {
    /// Report the card in the reader (`CardDetected`), or `CardRemoved` if none.
    Detect,
    /// GET CHALLENGE + EXTERNAL AUTHENTICATE with the card's diversified key.
    Authenticate,
    /// GENERATE ASYMMETRIC KEY PAIR into the slot's key IEF.
    GenerateKey {
        /// The slot.
        slot: Slot,
    },
    /// RESET RETRY COUNTER with new reference data taken from the resident pad.
    SetPinFromPad {
        /// The slot.
        slot: Slot,
    },
    /// Erase the slot's certificate EF, write the certificate, report `CertWritten`.
    WriteCert {
        /// The slot.
        slot: Slot,
        /// The certificate.
        der: Der,
    },
    /// Read the slot's certificate back (the signing one after VERIFY with the pad's
    /// confirmation entry).
    ReadCert {
        /// The slot.
        slot: Slot,
    },
    /// VERIFY with the pad's confirmation entry, SELECT the key, COMPUTE DIGITAL SIGNATURE
    /// over `digest_info`.
    TestSign {
        /// The slot.
        slot: Slot,
        /// A SHA-256 DigestInfo (the card pads it).
        #[serde(with = "hex_bytes")]
        digest_info: Vec<u8>,
    },
    /// RESET RETRY COUNTER `00 2C 03 80` (lock release, PIN kept) on the bound card only.
    ReleaseLock {
        /// The slot.
        slot: Slot,
        /// The card this visit is bound to; the adapter refuses any other.
        card: CardSerial,
    },
    /// RESET RETRY COUNTER `00 2C 02 80` with a new PIN from the pad, on the bound card
    /// only.
    ResetPin {
        /// The slot.
        slot: Slot,
        /// The card this visit is bound to; the adapter refuses any other.
        card: CardSerial,
    },
    /// Read the certificates on the card now and report `CurrentCerts` (the auth
    /// certificate needs no PIN; see `docs/workflow.md` on renewal).
    ReadCurrentCerts,
    /// ERASE BINARY on the slot's certificate EF and key IEF.
    EraseSlot {
        /// The slot.
        slot: Slot,
    },
}

/// A command to the resident pad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PadCommand {
    /// Ask the resident for a new PIN for the slot, entered twice (answers `PadReady`).
    AskNew {
        /// The slot.
        slot: Slot,
    },
    /// Ask the resident to enter the slot's PIN once more (answers `PadConfirmed`).
    AskConfirm {
        /// The slot.
        slot: Slot,
    },
    /// Wipe everything the pad holds.
    Clear,
}

/// The registered items the CA certifies (signing certificate only; the auth
/// certificate carries none).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// 氏名 as registered.
    pub name: String,
    /// 生年月日.
    #[serde(with = "iso_date")]
    pub birth_date: Date,
    /// 性別 (JIS X 0303 digit).
    pub sex: u8,
    /// 住所 as registered.
    pub address: String,
    /// The substitutes the resident accepted.
    pub substitutes: Vec<SubstituteChoice>,
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Holder(..)")
    }
}

/// A key to certify.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyToCertify {
    /// The slot.
    pub slot: Slot,
    /// The public key, SubjectPublicKeyInfo DER.
    #[serde(with = "hex_bytes")]
    pub spki: Vec<u8>,
}

impl std::fmt::Debug for KeyToCertify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyToCertify({:?})", self.slot)
    }
}

/// Which CMP request carries the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestKind {
    /// `ir`: first certificates (new issuance, re-issue).
    Initial,
    /// `kur`: key update of the certificates named (renewal).
    KeyUpdate {
        /// The serials of the certificates being renewed (hex).
        old_serials: Vec<String>,
    },
}

/// The RFC 5280 reason of a revocation the counter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// keyCompromise (1): lost or stolen card.
    KeyCompromise,
    /// cessationOfOperation (5): the holder's own request.
    CessationOfOperation,
}

/// A command to the CMP client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CaCommand {
    /// Send (or re-send: same transaction id and nonce) the certificate request.
    Submit {
        /// `ir` or `kur`.
        kind: RequestKind,
        /// The CMP transaction id.
        transaction: TransactionId,
        /// The CMP sender nonce.
        #[serde(with = "super::model::hex16")]
        sender_nonce: [u8; 16],
        /// The card the keys live on.
        card: CardSerial,
        /// The keys.
        keys: Vec<KeyToCertify>,
        /// The registered items, when a signing certificate is requested.
        holder: Option<Holder>,
        /// The registry id, sent to the CA as regInfo `resident-id` so that a later visit
        /// can find the resident's certificates (`FindLive`). Absent in journals written
        /// before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resident: Option<ResidentRef>,
    },
    /// Report the resident's live certificates (answers `CurrentCerts`).
    FindLive {
        /// The transaction (the visit's revocation transaction).
        transaction: TransactionId,
        /// The registry id.
        resident_id: ResidentRef,
    },
    /// `rr`: revoke the certificates named (answers `CaRevoked`); re-sent with the same
    /// transaction until answered.
    Revoke {
        /// The transaction.
        transaction: TransactionId,
        /// The serials (hex).
        serials: Vec<String>,
        /// The reason.
        reason: RevocationReason,
    },
    /// certConf: accept (written, read back and self-tested) or reject (the CA revokes).
    Confirm {
        /// The transaction.
        transaction: TransactionId,
        /// Whether the certificates are accepted.
        accept: bool,
    },
}

/// What a receipt says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The visit.
    pub visit: VisitId,
    /// The visit date.
    #[serde(with = "iso_date")]
    pub date: Date,
    /// The certificates issued.
    pub slots: Vec<Slot>,
    /// The fee taken.
    pub fee: Yen,
    /// 1 for the first print, 2 and up for reprints (marked 再発行 on paper).
    pub copy: u32,
}

/// How a visit ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Certificates issued, paid, receipt printed.
    Issued,
    /// The certificates were revoked at the CA (and erased from the card when present).
    Revoked,
    /// The PIN service was done on the card.
    PinServiced,
    /// A proxy's first visit: the 照会書 was printed for mailing.
    InquiryIssued {
        /// The case.
        case: InquiryCase,
    },
    /// Staff cancelled; nothing is left on the card or at the CA.
    Cancelled,
    /// The visit was refused (registry standing, nothing to issue).
    Refused {
        /// Why.
        reason: IssuanceError,
    },
    /// The visit failed after the card was touched; compensation has run.
    Failed {
        /// Why.
        reason: IssuanceError,
    },
}

/// A screen (staff and resident side) to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Screen {
    /// The application form.
    Form,
    /// Waiting for the registry.
    CheckingRegistry,
    /// Record the identity documents.
    IdentityCheck,
    /// What will be issued (shown to staff and resident).
    Plan {
        /// The slots that will be issued.
        slots: Vec<Slot>,
    },
    /// Put the card on the reader.
    InsertCard,
    /// Put the same card back (last four digits of its serial).
    ReinsertCard {
        /// The serial's tail.
        serial_tail: String,
    },
    /// The resident pad is asking for PINs.
    PinPad,
    /// Working on card or CA; please wait.
    Working,
    /// The CA is not reachable; the visit waits and retries the same request.
    WaitingForCa,
    /// Take the fee.
    CollectFee {
        /// The amount.
        amount: Yen,
    },
    /// Printing the receipt.
    Printing,
    /// The visit is over.
    Ended {
        /// How.
        outcome: Outcome,
    },
}

/// Everything the visit asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// Show a screen.
    Show {
        /// The screen.
        screen: Screen,
    },
    /// Tell people about a problem (mapped by [`super::notice::notice_for`]).
    Notify {
        /// The problem.
        problem: IssuanceError,
    },
    /// Fetch the registered record (answers `RegistryAnswered` or `RegistryFailed`).
    RegistryFetch {
        /// The registry id.
        resident_id: ResidentRef,
    },
    /// A card command.
    Card {
        /// The command.
        card: CardCommand,
    },
    /// A resident-pad command.
    Pad {
        /// The command.
        pad: PadCommand,
    },
    /// A CA command.
    Ca {
        /// The command.
        ca: CaCommand,
    },
    /// Look a proxy case up (answers `CaseAnswered`).
    CaseLookup {
        /// The case number.
        case: String,
    },
    /// Record a new proxy case (answers `CaseStored`; storing the same case again is a
    /// no-op).
    CaseStore {
        /// The case.
        case: InquiryCase,
    },
    /// Print the 照会書(兼回答書) for mailing to the holder's registered address (answers
    /// `Printed` or `PrintFailed`). The address comes from the registry by resident id.
    PrintInquiry {
        /// The case.
        case: InquiryCase,
    },
    /// Print the receipt (answers `Printed` or `PrintFailed`).
    PrintReceipt {
        /// The receipt.
        receipt: Receipt,
    },
}

impl Command {
    /// Shorthand for `Command::Card`.
    pub fn card(card: CardCommand) -> Command {
        Command::Card { card }
    }
    /// Shorthand for `Command::Pad`.
    pub fn pad(pad: PadCommand) -> Command {
        Command::Pad { pad }
    }
    /// Shorthand for `Command::Ca`.
    pub fn ca(ca: CaCommand) -> Command {
        Command::Ca { ca }
    }
    /// Shorthand for `Command::Show`.
    pub fn show(screen: Screen) -> Command {
        Command::Show { screen }
    }
    /// Shorthand for `Command::Notify`.
    pub fn notify(problem: IssuanceError) -> Command {
        Command::Notify { problem }
    }
}
