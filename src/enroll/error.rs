//! Errors of the CMP enrolment client and what counter staff are told about
//! them.
//!
//! [`EnrollError`] is technical (its `Display` is for logs and carries no
//! personal data); [`EnrollError::notice`] maps each error to a short Japanese
//! message for staff and a [`Recovery`]. The mapping is one exhaustive match,
//! so a new variant cannot be added without deciding what staff should do.
//! This module does not decide how the workflow reacts; it only advises.

use super::chain::ChainError;
use super::protect::ProtectionError;

// The failure bits are the wire layer's: one definition for the CA and the kiosk.
pub use crate::pki::message::{FailInfo, Failure};

/// What the CA said its status was (RFC 4210 PKIStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaStatus {
    /// `rejection` (2).
    Rejection,
    /// Any other status where a certificate was expected (e.g. a revocation
    /// warning); the number is the PKIStatus value.
    Other(u8),
}

/// What the staff member should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery {
    /// Try the same step again now (the same transaction is re-sent).
    RetryNow,
    /// The CA or network is down; try again later in the visit or another day.
    RetryLater,
    /// A configuration, security or CA-side problem: the supervisor must look.
    CallSupervisor,
    /// The application data is wrong: correct it and submit again.
    FixApplication,
    /// Nothing more can be done in this visit.
    EndVisit,
}

/// What staff see for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// Short Japanese text for counter staff.
    pub message: &'static str,
    /// Suggested next step.
    pub recovery: Recovery,
}

/// Everything that can go wrong talking CMP to the prefectural CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// No connection: CA down, LGWAN link down, wrong address.
    #[error("CA unreachable: {0}")]
    Unreachable(String),
    /// Connected but no answer in time (every retry exhausted).
    #[error("CA did not answer in time")]
    Timeout,
    /// The CA's web server answered with a non-success HTTP status.
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// TLS handshake failed: our RA certificate refused, or the server's
    /// certificate is not from the configured roots.
    #[error("TLS failure: {0}")]
    Tls(String),
    /// The CA refused the request (error message or rejection status).
    #[error("CA rejected the request: status {status:?}, failInfo {fail_info}, text {text:?}")]
    Rejected {
        /// The PKIStatus.
        status: CaStatus,
        /// Which failure bits the CA set.
        fail_info: FailInfo,
        /// The CA's free text (technical, no personal data).
        text: String,
        /// false when the error message was unprotected (it may be forged,
        /// so it is reported but never acted upon beyond stopping).
        authenticated: bool,
    },
    /// The answer is not a CMP message we understand, or lacks a field.
    #[error("malformed CMP response: {0}")]
    Malformed(String),
    /// The answer is of a type that does not fit the request.
    #[error("unexpected CMP body {got} (expected {expected})")]
    UnexpectedBody {
        /// What was expected.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// The response's protection did not verify: possible attack or wrong
    /// configuration (shared secret, CMP signer trust).
    #[error("response protection: {0}")]
    Protection(#[from] ProtectionError),
    /// transactionID differs from the one sent.
    #[error("response belongs to another transaction")]
    WrongTransaction,
    /// recipNonce differs from our senderNonce (replay or confusion).
    #[error("response nonce does not match the request")]
    WrongNonce,
    /// A returned certificate does not chain to the configured CA root.
    #[error("certificate for request {cert_req_id} not trusted: {source}")]
    CertificateNotTrusted {
        /// Which request.
        cert_req_id: i64,
        /// Why.
        source: ChainError,
    },
    /// A returned certificate carries another public key than the one sent.
    #[error("certificate for request {cert_req_id} has another public key")]
    KeyMismatch {
        /// Which request.
        cert_req_id: i64,
    },
    /// The CA answered "accepted" without a certificate for a request.
    #[error("no certificate returned for request {cert_req_id}")]
    MissingCertificate {
        /// Which request.
        cert_req_id: i64,
    },
    /// The CA kept saying "waiting" longer than the polling policy allows.
    #[error("gave up polling after {polls} polls")]
    PollingGaveUp {
        /// Number of pollReq sent.
        polls: u32,
    },
    /// The application data cannot make a valid request (personal data in
    /// the wrong format, signing certificate without personal data); nothing
    /// was sent.
    #[error("invalid application: {0}")]
    InvalidRequest(String),
    /// The client was set up wrongly (unreadable PEM, bad URL, empty request).
    #[error("client configuration: {0}")]
    Config(String),
}

impl EnrollError {
    /// The message for staff and the suggested recovery.
    pub fn notice(&self) -> Notice {
        use Recovery::*;
        let (message, recovery) = match self {
            EnrollError::Unreachable(_) => ("認証局に接続できません。回線を確認し、しばらくしてから再試行してください。", RetryLater),
            EnrollError::Timeout => ("認証局の応答がありません。もう一度送信してください。", RetryNow),
            EnrollError::HttpStatus(s) if *s >= 500 => ("認証局が一時的に利用できません。しばらくしてから再試行してください。", RetryLater),
            EnrollError::HttpStatus(_) => ("認証局が要求を受け付けませんでした。管理者に連絡してください。", CallSupervisor),
            EnrollError::Tls(_) => ("認証局との安全な接続を確立できません。端末証明書の設定を管理者に確認してください。", CallSupervisor),
            EnrollError::Rejected { fail_info, authenticated, .. } => return rejection_notice(*fail_info, *authenticated),
            EnrollError::Malformed(_) | EnrollError::UnexpectedBody { .. } => ("認証局の応答を解釈できません。管理者に連絡してください。", CallSupervisor),
            EnrollError::Protection(_) => ("認証局の応答の真正性を確認できません。処理を中止し、管理者に連絡してください。", CallSupervisor),
            EnrollError::WrongTransaction | EnrollError::WrongNonce => ("認証局の応答が要求と一致しません。もう一度送信してください。", RetryNow),
            EnrollError::CertificateNotTrusted { .. } => ("発行された証明書を検証できません。カードに書き込まず、管理者に連絡してください。", CallSupervisor),
            EnrollError::KeyMismatch { .. } => ("発行された証明書がカードの鍵と一致しません。カードに書き込まず、管理者に連絡してください。", CallSupervisor),
            EnrollError::MissingCertificate { .. } => ("認証局から証明書が返されませんでした。管理者に連絡してください。", CallSupervisor),
            EnrollError::PollingGaveUp { .. } => ("認証局の発行処理が完了していません。しばらくしてから再試行してください。", RetryLater),
            EnrollError::InvalidRequest(_) => ("申請内容の形式に誤りがあります。申請書を確認して入力し直してください。", FixApplication),
            EnrollError::Config(_) => ("端末の設定に誤りがあります。管理者に連絡してください。", CallSupervisor),
        };
        Notice { message, recovery }
    }
}

/// Staff notice for a CA rejection, decided by the most telling failure bit.
fn rejection_notice(fi: FailInfo, authenticated: bool) -> Notice {
    use Failure as F;
    use Recovery::*;
    let (message, recovery) = if !authenticated {
        (
            "認証局から検証できない拒否応答がありました。管理者に連絡してください。",
            CallSupervisor,
        )
    } else if fi.contains(F::BadCertTemplate)
        || fi.contains(F::BadDataFormat)
        || fi.contains(F::IncorrectData)
    {
        ("申請内容（氏名・住所・生年月日など）に誤りがあります。申請書を確認して再申請してください。", FixApplication)
    } else if fi.contains(F::SystemUnavail) || fi.contains(F::SystemFailure) {
        (
            "認証局が一時的に処理できません。しばらくしてから再試行してください。",
            RetryLater,
        )
    } else if fi.contains(F::CertRevoked)
        || fi.contains(F::DuplicateCertReq)
        || fi.contains(F::CertConfirmed)
    {
        ("この申請はすでに処理済みか、対象の証明書が失効しています。本日の手続を終了してください。", EndVisit)
    } else if fi.contains(F::TransactionIdInUse) {
        (
            "同じ申請番号の処理が認証局で進行中です。しばらくしてから再試行してください。",
            RetryLater,
        )
    } else if fi.contains(F::BadTime) {
        (
            "端末の時刻が認証局と一致しません。管理者に連絡してください。",
            CallSupervisor,
        )
    } else if fi.contains(F::BadRecipientNonce) || fi.contains(F::BadSenderNonce) {
        (
            "認証局との通信手順に不整合がありました。もう一度送信してください。",
            RetryNow,
        )
    } else {
        // badMessageCheck, signerNotTrusted, wrongIntegrity, notAuthorized,
        // wrongAuthority, badPOP, badAlg, badRequest and unknown bits: the
        // kiosk or the CA is misconfigured; staff cannot fix it at the counter.
        (
            "認証局が申請を拒否しました。管理者に連絡してください。",
            CallSupervisor,
        )
    };
    Notice { message, recovery }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(f: &[Failure]) -> EnrollError {
        EnrollError::Rejected {
            status: CaStatus::Rejection,
            fail_info: FailInfo::of(f),
            text: String::new(),
            authenticated: true,
        }
    }

    #[test]
    fn every_variant_has_a_japanese_notice_and_recovery() {
        let cases: Vec<(EnrollError, Recovery)> = vec![
            (EnrollError::Unreachable("x".into()), Recovery::RetryLater),
            (EnrollError::Timeout, Recovery::RetryNow),
            (EnrollError::HttpStatus(503), Recovery::RetryLater),
            (EnrollError::HttpStatus(404), Recovery::CallSupervisor),
            (EnrollError::Tls("x".into()), Recovery::CallSupervisor),
            (
                rejected(&[Failure::BadCertTemplate]),
                Recovery::FixApplication,
            ),
            (rejected(&[Failure::SystemUnavail]), Recovery::RetryLater),
            (rejected(&[Failure::DuplicateCertReq]), Recovery::EndVisit),
            (
                rejected(&[Failure::TransactionIdInUse]),
                Recovery::RetryLater,
            ),
            (rejected(&[Failure::BadRecipientNonce]), Recovery::RetryNow),
            (rejected(&[Failure::BadTime]), Recovery::CallSupervisor),
            (
                rejected(&[Failure::BadMessageCheck]),
                Recovery::CallSupervisor,
            ),
            (rejected(&[Failure::BadPop]), Recovery::CallSupervisor),
            (
                EnrollError::Rejected {
                    status: CaStatus::Rejection,
                    fail_info: FailInfo::of(&[Failure::BadCertTemplate]),
                    text: String::new(),
                    authenticated: false,
                },
                Recovery::CallSupervisor,
            ),
            (EnrollError::Malformed("x".into()), Recovery::CallSupervisor),
            (
                EnrollError::UnexpectedBody {
                    expected: "ip",
                    got: "cp",
                },
                Recovery::CallSupervisor,
            ),
            (
                EnrollError::Protection(ProtectionError::MacMismatch),
                Recovery::CallSupervisor,
            ),
            (EnrollError::WrongTransaction, Recovery::RetryNow),
            (EnrollError::WrongNonce, Recovery::RetryNow),
            (
                EnrollError::CertificateNotTrusted {
                    cert_req_id: 0,
                    source: ChainError::BadSignature,
                },
                Recovery::CallSupervisor,
            ),
            (
                EnrollError::KeyMismatch { cert_req_id: 1 },
                Recovery::CallSupervisor,
            ),
            (
                EnrollError::MissingCertificate { cert_req_id: 1 },
                Recovery::CallSupervisor,
            ),
            (
                EnrollError::PollingGaveUp { polls: 3 },
                Recovery::RetryLater,
            ),
            (
                EnrollError::InvalidRequest("x".into()),
                Recovery::FixApplication,
            ),
            (EnrollError::Config("x".into()), Recovery::CallSupervisor),
        ];
        for (err, want) in cases {
            let n = err.notice();
            assert_eq!(n.recovery, want, "{err}");
            // Japanese text for staff: at least one kana/kanji character, and it ends a sentence.
            assert!(
                n.message
                    .chars()
                    .any(|c| ('\u{3040}'..='\u{9FFF}').contains(&c)),
                "{err}"
            );
            assert!(n.message.ends_with('。'), "{err}");
        }
    }

    #[test]
    fn fail_info_names_bits_above_sixteen() {
        let fi = FailInfo::of(&[
            Failure::BadRequest,
            Failure::BadCertTemplate,
            Failure::DuplicateCertReq,
        ]);
        assert_eq!(fi.0, (1 << 2) | (1 << 19) | (1 << 26));
        assert_eq!(
            fi.failures(),
            vec![
                Failure::BadRequest,
                Failure::BadCertTemplate,
                Failure::DuplicateCertReq
            ]
        );
        assert!(!fi.contains(Failure::BadTime));
    }
}
