//! What an audit entry records: the [`Action`] (a closed list of the counter's acts, each
//! with a stable name) and its [`Outcome`].
//!
//! The stable names are what the log stores and hashes; they never change once shipped, so
//! an old log still reads and verifies after an upgrade. Adding an action is fine; renaming
//! one is not. This module does not decide who may do what (see `staff`) nor when an act
//! happens (the visit's workflow does).

use std::fmt;

/// An act of staff, the kiosk, the card or the CA that the audit log records.
///
/// Failures are recorded under the same action with [`Outcome::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// An operator signed in (or tried to: see the outcome).
    SignIn,
    /// An operator signed out.
    SignOut,
    /// A supervisor enrolled a new operator.
    OperatorEnrolled,
    /// A supervisor disabled an operator.
    OperatorDisabled,
    /// A supervisor unlocked an operator locked out by failed sign-ins.
    OperatorUnlocked,
    /// An operator's passphrase was changed.
    PassphraseChanged,
    /// A supervisor approved an act that needs one (revocation for loss, PIN reset for a
    /// proxy, fee waiver); the details name the purpose and the supervisor.
    SupervisorApproval,
    /// A visit began at the counter.
    VisitStarted,
    /// A visit was resumed after a restart.
    VisitResumed,
    /// A visit ended (completed, refused or cancelled: see the details).
    VisitEnded,
    /// The application was checked against the resident registry.
    RegistryChecked,
    /// Staff recorded the identity documents they checked (types only, never numbers or
    /// images in the audit log).
    IdentityRecorded,
    /// Eligibility for each certificate was decided.
    EligibilityDecided,
    /// A card was detected in the reader.
    CardDetected,
    /// Key pairs were generated on the card.
    KeysGenerated,
    /// The resident set PINs on the resident pad (the PINs themselves are never recorded).
    PinsSet,
    /// A request was sent to the prefectural CA.
    CaRequestSent,
    /// The CA answered (issued, rejected, waiting).
    CaAnswered,
    /// Certificates were written to the card.
    CertificatesWritten,
    /// The card was read back and a test signature with each key verified.
    CardVerified,
    /// Old keys and certificates were erased from a card.
    CardErased,
    /// A revocation was requested from the CA.
    Revocation,
    /// A PIN lock was released (the PIN kept).
    PinLockReleased,
    /// A PIN was initialised and set anew.
    PinReset,
    /// A proxy's inquiry letter (照会書) was issued.
    ProxyInquiryIssued,
    /// A proxy's answer sheet (回答書) was accepted or refused.
    ProxyAnswerChecked,
    /// A fee was recorded as paid.
    FeeRecorded,
    /// A fee was waived (needs a supervisor approval).
    FeeWaived,
    /// A receipt was printed.
    ReceiptPrinted,
    /// The day's ledger was printed with the audit log's head hash on it.
    LedgerPrinted,
    /// Card, local records and CA were reconciled.
    Reconciliation,
    /// The kiosk started.
    KioskStarted,
    /// The audit log itself was verified.
    AuditVerified,
}

impl Action {
    /// Every action, in the order of the table above.
    pub const ALL: &'static [Action] = &[
        Action::SignIn,
        Action::SignOut,
        Action::OperatorEnrolled,
        Action::OperatorDisabled,
        Action::OperatorUnlocked,
        Action::PassphraseChanged,
        Action::SupervisorApproval,
        Action::VisitStarted,
        Action::VisitResumed,
        Action::VisitEnded,
        Action::RegistryChecked,
        Action::IdentityRecorded,
        Action::EligibilityDecided,
        Action::CardDetected,
        Action::KeysGenerated,
        Action::PinsSet,
        Action::CaRequestSent,
        Action::CaAnswered,
        Action::CertificatesWritten,
        Action::CardVerified,
        Action::CardErased,
        Action::Revocation,
        Action::PinLockReleased,
        Action::PinReset,
        Action::ProxyInquiryIssued,
        Action::ProxyAnswerChecked,
        Action::FeeRecorded,
        Action::FeeWaived,
        Action::ReceiptPrinted,
        Action::LedgerPrinted,
        Action::Reconciliation,
        Action::KioskStarted,
        Action::AuditVerified,
    ];

    /// The stable name stored in the log (and covered by the hash).
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::SignIn => "staff.sign_in",
            Action::SignOut => "staff.sign_out",
            Action::OperatorEnrolled => "staff.enrolled",
            Action::OperatorDisabled => "staff.disabled",
            Action::OperatorUnlocked => "staff.unlocked",
            Action::PassphraseChanged => "staff.passphrase_changed",
            Action::SupervisorApproval => "staff.supervisor_approval",
            Action::VisitStarted => "visit.started",
            Action::VisitResumed => "visit.resumed",
            Action::VisitEnded => "visit.ended",
            Action::RegistryChecked => "registry.checked",
            Action::IdentityRecorded => "identity.recorded",
            Action::EligibilityDecided => "eligibility.decided",
            Action::CardDetected => "card.detected",
            Action::KeysGenerated => "card.keys_generated",
            Action::PinsSet => "card.pins_set",
            Action::CaRequestSent => "ca.request_sent",
            Action::CaAnswered => "ca.answered",
            Action::CertificatesWritten => "card.certificates_written",
            Action::CardVerified => "card.verified",
            Action::CardErased => "card.erased",
            Action::Revocation => "ca.revocation",
            Action::PinLockReleased => "card.pin_lock_released",
            Action::PinReset => "card.pin_reset",
            Action::ProxyInquiryIssued => "proxy.inquiry_issued",
            Action::ProxyAnswerChecked => "proxy.answer_checked",
            Action::FeeRecorded => "fee.recorded",
            Action::FeeWaived => "fee.waived",
            Action::ReceiptPrinted => "receipt.printed",
            Action::LedgerPrinted => "ledger.printed",
            Action::Reconciliation => "kiosk.reconciliation",
            Action::KioskStarted => "kiosk.started",
            Action::AuditVerified => "audit.verified",
        }
    }

    /// The action with this stable name, if this kiosk knows it.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A short, stable, machine-readable error code: 1–64 of `A–Z a–z 0–9 . _ : -`
/// (for example `card.wrong_pin`, `sw:6983`, `ca.rejected:badPOP`).
///
/// The narrow alphabet keeps names, addresses and free text out of the log by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorCode(String);

impl ErrorCode {
    /// Checks the form of a code.
    pub fn new(code: &str) -> Option<ErrorCode> {
        is_code(code).then(|| ErrorCode(code.to_owned()))
    }

    /// The code as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` fits the code alphabet (shared with detail keys and values).
pub(crate) fn is_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// How the recorded act ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It failed with this code.
    Failed(ErrorCode),
}

impl Outcome {
    /// `"ok"` or `"failed"`, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The error code of a failure.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Outcome::Ok => None,
            Outcome::Failed(c) => Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = HashSet::new();
        for &a in Action::ALL {
            assert!(seen.insert(a.as_str()), "duplicate name {a}");
            assert!(is_code(a.as_str()), "{a} outside the code alphabet");
            assert_eq!(Action::from_name(a.as_str()), Some(a));
        }
        assert_eq!(Action::from_name("staff.sign_in "), None);
        assert_eq!(Action::from_name("nothing"), None);
    }

    #[test]
    fn names_are_stable() {
        // These strings are in logs already written; changing one breaks reading them.
        assert_eq!(Action::SignIn.as_str(), "staff.sign_in");
        assert_eq!(Action::PinsSet.as_str(), "card.pins_set");
        assert_eq!(Action::SupervisorApproval.as_str(), "staff.supervisor_approval");
        assert_eq!(Action::ALL.len(), 33);
    }

    #[test]
    fn error_codes_keep_free_text_out() {
        for good in ["card.wrong_pin", "sw:6983", "ca.rejected:badPOP", "E-1"] {
            assert_eq!(ErrorCode::new(good).unwrap().as_str(), good);
        }
        let long = "x".repeat(65);
        for bad in ["", "wrong pin", "髙橋", "a/b", "x\n", long.as_str()] {
            assert!(ErrorCode::new(bad).is_none(), "{bad:?}");
        }
    }
}
