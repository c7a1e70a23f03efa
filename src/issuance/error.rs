//! Everything that can go wrong in a visit, as one typed enum.
//!
//! [`IssuanceError`] is plain data (serde, `Clone`) because it travels in `Notify`
//! commands and in the journal; [`super::notice`] maps each variant to what people are
//! told and what they do next. `Display` is for logs: technical, no personal data, no PIN.
//! Rule outcomes (a registry mismatch, a shortfall of documents) are errors here because
//! they stop the step and someone must act on them.

use serde::{Deserialize, Serialize};

use super::model::{CardKind, Slot, Standing};
use crate::rules::fee::Yen;

/// A field of the application form (mirrors `registry::Field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormField {
    /// 氏名.
    Name,
    /// ふりがな.
    Furigana,
    /// 生年月日.
    BirthDate,
    /// 性別.
    Sex,
    /// 住所.
    Address,
}

/// What the identity documents lack (mirrors `rules::identity::IdentityShortfall`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IdShortfall {
    /// Neither a photo ID nor enough non-photo documents.
    NotEnough {
        /// Non-photo documents needed.
        required: u8,
        /// Non-photo documents shown.
        found: usize,
    },
    /// This presenter needs a photo ID.
    PhotoRequired,
    /// A voluntary proxy is served only on the second visit.
    ProxyNeedsInquiry,
}

/// Why the rules withhold the signing certificate (mirrors `rules::age::Ineligible`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningWithheld {
    /// Under 15 on the visit date.
    UnderFifteen,
    /// 成年被後見人.
    AdultWard,
}

/// Everything that can go wrong in a visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssuanceError {
    /// The application differs from the registry in `field` (usually a typo on the form).
    #[error("the application's {field:?} differs from the registry")]
    Mismatch {
        /// The first differing field.
        field: FormField,
    },
    /// The form could not be read (sex digit not JIS X 0303).
    #[error("the form holds a value the registry cannot compare")]
    FormUnreadable,
    /// No resident with this id (typo, or another municipality's resident).
    #[error("no registered resident with this id")]
    NotRegistered,
    /// The registry did not answer (database or network down).
    #[error("the resident registry is unavailable")]
    RegistryUnavailable,
    /// The resident may not be served here (moved out, deceased, 異動 pending).
    #[error("the resident cannot be served: {standing:?}")]
    NotServable {
        /// The registry standing.
        standing: Standing,
    },
    /// The documents are not enough for this visit.
    #[error("identity documents are not enough: {shortfall:?}")]
    IdentityShortfall {
        /// What is missing.
        shortfall: IdShortfall,
    },
    /// The rules withhold the signing certificate; the visit goes on with the other one.
    #[error("no signing certificate: {reason:?}")]
    SigningWithheld {
        /// Why.
        reason: SigningWithheld,
    },
    /// Both certificates are declined or withheld: there is nothing to issue.
    #[error("nothing to issue")]
    NothingToIssue,
    /// Renewal asked before the window opens (3 months before expiry).
    #[error("renewal opens on {opens}")]
    RenewalTooEarly {
        /// The first day of the window, `YYYY-MM-DD`.
        opens: String,
    },
    /// The certificates have expired: the resident needs a new issuance, not a renewal.
    #[error("the certificates have expired; a new issuance is needed")]
    RenewalExpired,
    /// Renewal asked for a card without certificates.
    #[error("the card holds no certificate to renew")]
    NoCertsToRenew,
    /// The proxy's case number is unknown (typo, or another municipality's letter).
    #[error("unknown proxy case")]
    CaseUnknown,
    /// The answer sheet came back after the case expired: a new first visit is needed.
    #[error("the proxy case expired on {expired}")]
    CaseExpired {
        /// The last valid day, `YYYY-MM-DD`.
        expired: String,
    },
    /// The case belongs to another resident than the application.
    #[error("the proxy case belongs to another resident")]
    CaseMismatch,
    /// A revocation found no live certificate (on the card, or at the CA for a lost card).
    #[error("no live certificate to revoke")]
    NothingToRevoke,
    /// The card in the reader is not a My Number card's JPKI-AP.
    #[error("the card is not a JPKI card: {kind:?}")]
    NotJpkiCard {
        /// What was found.
        kind: CardKind,
    },
    /// A different card was inserted after keys were generated on the first one.
    #[error("a different card was inserted")]
    WrongCard,
    /// The card left the reader in the middle of a step.
    #[error("the card was removed")]
    CardRemoved,
    /// The kiosk's administration key does not fit the card (wrong master key, forged card).
    #[error("card administration authentication failed, {tries_left} tries left")]
    AdminAuthFailed {
        /// Tries left in the card's life.
        tries_left: u8,
    },
    /// The card's administration key is blocked; the card cannot be personalised.
    #[error("card administration key blocked")]
    AdminKeyBlocked,
    /// The card answered a status word the step does not expect (card or driver bug).
    #[error("the card answered {sw:04X}")]
    CardUnexpected {
        /// The status word.
        sw: u16,
    },
    /// The reader or pcscd failed.
    #[error("the card reader failed")]
    ReaderFailed,
    /// The card returned a public key that is not RSA-2048 with e = 65537 (broken card).
    #[error("the card's {slot:?} key is not an RSA-2048 key")]
    BadPublicKey {
        /// The slot.
        slot: Slot,
    },
    /// The CA refused the request.
    #[error("the CA rejected the request: {fail_info:?}")]
    CaRejected {
        /// The `PKIFailureInfo` bit names.
        fail_info: Vec<String>,
    },
    /// The CA did not answer; the same transaction is re-sent later.
    #[error("the CA is unreachable")]
    CaUnreachable,
    /// The CA's certificate does not certify the card's key, or is missing (CA bug or
    /// attack); the certificates are rejected.
    #[error("the CA's {slot:?} certificate does not match the card's key")]
    CertDoesNotMatchKey {
        /// The slot.
        slot: Slot,
    },
    /// The certificate read back differs from the one written (torn write).
    #[error("the {slot:?} certificate read back differs from the one written")]
    ReadBackMismatch {
        /// The slot.
        slot: Slot,
    },
    /// The resident entered a wrong PIN for the self-test signature.
    #[error("wrong {slot:?} PIN, {tries_left} tries left")]
    WrongPin {
        /// The slot.
        slot: Slot,
        /// Tries left.
        tries_left: u8,
    },
    /// The PIN is blocked; the resident sets a new one on the pad.
    #[error("{slot:?} PIN blocked")]
    PinBlocked {
        /// The slot.
        slot: Slot,
    },
    /// The self-test signature does not verify against the certificate (broken card).
    #[error("the {slot:?} self-test signature does not verify")]
    SelfTestFailed {
        /// The slot.
        slot: Slot,
    },
    /// Staff recorded a payment that is not the fee.
    #[error("paid {paid} but the fee is {fee}")]
    FeeMismatch {
        /// The fee.
        fee: Yen,
        /// What was recorded.
        paid: Yen,
    },
    /// The printer is out of paper; the receipt is reprinted once paper is in.
    #[error("the printer is out of paper")]
    PrinterOutOfPaper,
    /// The printer is offline or jammed.
    #[error("the printer is offline")]
    PrinterOffline,
    /// The certificates are confirmed to the CA: cancelling now needs a revocation visit.
    #[error("too late to cancel: the certificates are live")]
    TooLateToCancel,
    /// An event that does not belong to the current step (a stale or duplicated adapter
    /// answer, or a driver bug); the state is unchanged.
    #[error("event {event} is not expected in step {step}")]
    UnexpectedEvent {
        /// The step.
        step: String,
        /// The event's name.
        event: String,
    },
    /// A CA answer for another transaction (stale answer after a restart).
    #[error("CA answer for another transaction")]
    StaleTransaction,
    /// A bug: a state the code believes impossible.
    #[error("internal error: {0}; please file a bug")]
    Unreachable(String),
}
