//! What the world tells the visit: staff actions, the resident pad, the card, the CA,
//! the printer and the clock. Adapters turn their results into these.
//!
//! Events carry facts, never secrets: the resident pad keeps the PINs and an event only
//! says that the pad holds a valid, double-entered one. Failures carry their kind as
//! data (tries left, status word) so the notice can say what to do next.

use serde::{Deserialize, Serialize};
use time::Date;

use super::model::{
    hex_bytes, iso_date, CardKind, CardSerial, CurrentCert, Der, Form, IdDocument, InquiryCase,
    PresenterKind, RegisteredResident, Seed, Slot, Timestamp, TransactionId, VisitId,
};
use crate::rules::fee::{FeeTable, Yen};
use crate::rules::identity::IdentityPolicy;

/// Which visit the staff opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Visit {
    /// First certificates on a card (新規発行).
    NewIssuance,
    /// New keys and certificates inside the renewal window (更新, CMP `kur`).
    Renewal,
    /// Re-issue after the card or its certificates were lost (紛失による再発行): the old
    /// certificates are revoked with reason keyCompromise first.
    ReissueAfterLoss,
    /// Revocation at the counter on the holder's own request (reason
    /// cessationOfOperation); the card is present and its keys and certificates are erased.
    RevocationOwnRequest,
    /// Revocation of a lost or stolen card's certificates (reason keyCompromise); no card.
    RevocationLost,
    /// ロック解除: the PIN's retry counter is reset, the PIN is kept.
    PinLockRelease {
        /// Which PIN.
        slot: Slot,
    },
    /// 初期化・再設定: a new PIN from the resident pad (which also clears a lock).
    PinReset {
        /// Which PIN.
        slot: Slot,
    },
    /// A voluntary proxy's first visit (任意代理人): the request is recorded and the
    /// 照会書 is printed for mailing to the holder's registered address.
    ProxyInquiry,
    /// A voluntary proxy's second visit, with the answer sheet (the form carries the case
    /// number): a new issuance once the case checks out.
    ProxyCompletion,
}

impl Visit {
    /// Whether the visit revokes only (no certificate is issued).
    pub fn is_revocation(self) -> bool {
        matches!(self, Visit::RevocationOwnRequest | Visit::RevocationLost)
    }

    /// The PIN a PIN-service visit works on.
    pub fn pin_service(self) -> Option<Slot> {
        match self {
            Visit::PinLockRelease { slot } | Visit::PinReset { slot } => Some(slot),
            _ => None,
        }
    }

    /// The visit kind the fee table knows.
    pub fn fee_kind(self) -> crate::rules::fee::VisitKind {
        use crate::rules::fee::VisitKind;
        match self {
            Visit::NewIssuance => VisitKind::NewIssuance,
            Visit::Renewal => VisitKind::Renewal,
            Visit::ReissueAfterLoss => VisitKind::ReissueAfterLoss,
            Visit::RevocationOwnRequest | Visit::RevocationLost => VisitKind::Revocation,
            Visit::PinLockRelease { .. } => VisitKind::PinLockRelease,
            Visit::PinReset { .. } => VisitKind::PinReset,
            Visit::ProxyInquiry => VisitKind::ProxyInquiry,
            // The second visit is charged as the service it completes.
            Visit::ProxyCompletion => VisitKind::NewIssuance,
        }
    }
}

/// The start of a visit: who, when, with which settings and which randomness. Kept in
/// the journal's first record so a resumed visit runs under the rules it started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    /// The kiosk's id of the visit.
    pub visit: VisitId,
    /// What the resident came for.
    pub kind: Visit,
    /// The visit date (ages and validity are worked out for it).
    #[serde(with = "iso_date")]
    pub date: Date,
    /// The staff member who serves the resident.
    pub operator: String,
    /// Randomness drawn by the driver.
    pub seed: Seed,
    /// The municipality's fee table in force.
    pub fees: FeeTable,
    /// The municipality's identity settings in force.
    pub identity: IdentityPolicy,
}

/// A certificate the CA issued for one slot.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// The slot whose key it certifies.
    pub slot: Slot,
    /// The certificate, DER.
    #[serde(with = "hex_bytes")]
    pub der: Vec<u8>,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedCert({:?}, {} bytes)", self.slot, self.der.len())
    }
}

/// What went wrong at the card, as the card adapter classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CardFailure {
    /// VERIFY answered `63 Cx` with x > 0.
    WrongPin {
        /// The slot whose PIN was wrong.
        slot: Slot,
        /// Tries left.
        tries_left: u8,
    },
    /// VERIFY answered `63 C0` or `69 84`.
    PinBlocked {
        /// The slot whose PIN is blocked.
        slot: Slot,
    },
    /// EXTERNAL AUTHENTICATE answered `63 Cx`: the kiosk's key does not fit this card.
    AdminAuthFailed {
        /// Tries left in the card's life.
        tries_left: u8,
    },
    /// EXTERNAL AUTHENTICATE answered `69 83`: the card can no longer be personalised.
    AdminKeyBlocked,
    /// Any other status word.
    Unexpected {
        /// The status word.
        sw: u16,
    },
    /// The reader or pcscd failed (not a pulled card: that is `CardRemoved`).
    Transport,
}

/// Why the CA refused the request (CMP `PKIStatusInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRejection {
    /// The `PKIFailureInfo` bit names, e.g. `badPOP`.
    pub fail_info: Vec<String>,
}

/// Why the receipt printer did not print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrintFailure {
    /// Out of paper.
    OutOfPaper,
    /// Offline, jammed or not answering.
    Offline,
}

/// Everything the visit reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// Staff opened a visit.
    VisitOpened(Opening),
    /// Staff submitted the application form.
    FormSubmitted {
        /// The form.
        form: Form,
    },
    /// The registry answered a `Fetch`; `None` when the id is not registered.
    RegistryAnswered {
        /// The registered record.
        record: Option<RegisteredResident>,
    },
    /// The registry could not be reached.
    RegistryFailed,
    /// Staff recorded the identity documents they inspected.
    IdentityRecorded {
        /// Who stands at the counter.
        presenter: PresenterKind,
        /// The documents.
        documents: Vec<IdDocument>,
    },
    /// A card is in the reader and was identified by SELECT and its token EF.
    CardDetected {
        /// The card serial.
        serial: CardSerial,
        /// What kind of card.
        kind: CardKind,
    },
    /// The card left the reader (or the reader reset it).
    CardRemoved,
    /// The resident pad holds a valid, double-entered new PIN for the slot.
    PadReady {
        /// The slot.
        slot: Slot,
    },
    /// The resident pad holds a confirmation entry of the slot's PIN, for the self-test.
    PadConfirmed {
        /// The slot.
        slot: Slot,
    },
    /// Administrative authentication succeeded in this card session.
    CardAuthenticated,
    /// A key pair was generated on the card.
    KeyGenerated {
        /// The slot.
        slot: Slot,
        /// The public key, SubjectPublicKeyInfo DER.
        #[serde(with = "hex_bytes")]
        spki: Vec<u8>,
    },
    /// The slot's PIN was set on the card from the pad.
    PinSet {
        /// The slot.
        slot: Slot,
    },
    /// A certificate was written to the card.
    CertWritten {
        /// The slot.
        slot: Slot,
    },
    /// A certificate was read back from the card.
    CertRead {
        /// The slot.
        slot: Slot,
        /// What the card holds.
        der: Der,
    },
    /// The card signed the self-test challenge after verifying the pad's confirmation PIN.
    TestSigned {
        /// The slot.
        slot: Slot,
        /// The signature.
        #[serde(with = "hex_bytes")]
        signature: Vec<u8>,
    },
    /// The slot's PIN retry counter was reset on the card (lock release).
    LockReleased {
        /// The slot.
        slot: Slot,
    },
    /// The slot's key and certificate were erased from the card.
    SlotErased {
        /// The slot.
        slot: Slot,
    },
    /// A card command failed.
    CardFailed {
        /// What failed.
        failure: CardFailure,
    },
    /// The CA issued the certificates of a transaction.
    CaIssued {
        /// The transaction.
        transaction: TransactionId,
        /// One certificate per requested slot.
        certs: Vec<IssuedCert>,
    },
    /// The CA refused the transaction.
    CaRejected {
        /// The transaction.
        transaction: TransactionId,
        /// Why.
        rejection: CaRejection,
    },
    /// The certificates the resident holds now (`ReadCurrentCerts` or `FindLive`).
    CurrentCerts {
        /// The certificates; empty when there are none.
        certs: Vec<CurrentCert>,
    },
    /// The case store answered a `CaseLookup`; `None` for an unknown case number.
    CaseAnswered {
        /// The case.
        case: Option<InquiryCase>,
    },
    /// The case store recorded a new case.
    CaseStored,
    /// The CA revoked the certificates of a revocation transaction.
    CaRevoked {
        /// The transaction.
        transaction: TransactionId,
    },
    /// The CA did not answer (connection refused, TLS failure, timeout).
    CaUnreachable {
        /// The transaction.
        transaction: TransactionId,
    },
    /// The CA answered the certConf with pkiConf.
    CaConfirmed {
        /// The transaction.
        transaction: TransactionId,
    },
    /// Staff recorded the payment.
    FeePaid {
        /// The amount taken.
        amount: Yen,
    },
    /// The receipt came out of the printer.
    Printed,
    /// The printer failed.
    PrintFailed {
        /// Why.
        failure: PrintFailure,
    },
    /// Staff asked to try the current step again.
    StaffRetry,
    /// Staff cancelled the visit.
    StaffCancel,
    /// The clock.
    Tick {
        /// Now.
        now: Timestamp,
    },
}

impl Event {
    /// The event's name, as it appears in the journal's `event` field and in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Event::VisitOpened(_) => "visit_opened",
            Event::FormSubmitted { .. } => "form_submitted",
            Event::RegistryAnswered { .. } => "registry_answered",
            Event::RegistryFailed => "registry_failed",
            Event::IdentityRecorded { .. } => "identity_recorded",
            Event::CardDetected { .. } => "card_detected",
            Event::CardRemoved => "card_removed",
            Event::PadReady { .. } => "pad_ready",
            Event::PadConfirmed { .. } => "pad_confirmed",
            Event::CardAuthenticated => "card_authenticated",
            Event::KeyGenerated { .. } => "key_generated",
            Event::PinSet { .. } => "pin_set",
            Event::CertWritten { .. } => "cert_written",
            Event::CertRead { .. } => "cert_read",
            Event::TestSigned { .. } => "test_signed",
            Event::SlotErased { .. } => "slot_erased",
            Event::LockReleased { .. } => "lock_released",
            Event::CaseAnswered { .. } => "case_answered",
            Event::CaseStored => "case_stored",
            Event::CardFailed { .. } => "card_failed",
            Event::CaIssued { .. } => "ca_issued",
            Event::CaRejected { .. } => "ca_rejected",
            Event::CaUnreachable { .. } => "ca_unreachable",
            Event::CurrentCerts { .. } => "current_certs",
            Event::CaRevoked { .. } => "ca_revoked",
            Event::CaConfirmed { .. } => "ca_confirmed",
            Event::FeePaid { .. } => "fee_paid",
            Event::Printed => "printed",
            Event::PrintFailed { .. } => "print_failed",
            Event::StaffRetry => "staff_retry",
            Event::StaffCancel => "staff_cancel",
            Event::Tick { .. } => "tick",
        }
    }
}
