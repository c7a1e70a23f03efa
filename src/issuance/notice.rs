//! What people are told when something goes wrong, and what they do next.
//!
//! [`notice_for`] is one exhaustive `match` over [`IssuanceError`], as rustls maps its
//! errors to alerts in one place: a new error variant does not compile until someone
//! decides who is told and how the visit recovers. A [`Notice`] carries a message key;
//! the UI translates it, and [`japanese`] gives the Japanese text the counter shows.
//! Nothing here formats personal data or PINs: a notice says tries left, never a PIN.

use serde::{Deserialize, Serialize};

use super::error::IssuanceError;

/// Who the notice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The staff screen.
    Staff,
    /// The resident's screen (and the staff screen too).
    Resident,
}

/// What happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recovery {
    /// Staff retry the step (the visit re-sends the same request).
    RetryStep,
    /// Put the (same) card back on the reader.
    ReinsertCard,
    /// The resident enters the PIN again.
    ReenterPin {
        /// Tries left before the PIN blocks.
        tries_left: u8,
    },
    /// Call a supervisor or the help desk.
    CallStaff,
    /// The CA is down: the visit waits and re-sends the same request.
    RetryCaLater,
    /// Reprint the receipt (the payment stays recorded once).
    ReprintReceipt,
    /// Void the payment and refund it.
    VoidAndRefund,
    /// The visit is over.
    EndVisit,
    /// Correct the application form.
    FixApplication,
}

/// A notice: the message key, who sees it, and the recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The message key the UI translates (see [`japanese`]).
    pub what: &'static str,
    /// Who it is for.
    pub audience: Audience,
    /// What to do next.
    pub recovery: Recovery,
}

const fn notice(what: &'static str, audience: Audience, recovery: Recovery) -> Notice {
    Notice {
        what,
        audience,
        recovery,
    }
}

/// Maps every error to its notice.
pub fn notice_for(error: &IssuanceError) -> Notice {
    use Audience::{Resident, Staff};
    use IssuanceError as E;
    use Recovery::*;
    match error {
        E::Mismatch { .. } => notice("application-mismatch", Staff, FixApplication),
        E::FormUnreadable => notice("form-unreadable", Staff, FixApplication),
        E::NotRegistered => notice("not-registered", Staff, FixApplication),
        E::RegistryUnavailable => notice("registry-unavailable", Staff, RetryStep),
        E::NotServable { .. } => notice("not-servable", Staff, EndVisit),
        E::IdentityShortfall { .. } => notice("identity-shortfall", Staff, RetryStep),
        E::SigningWithheld { .. } => notice("signing-withheld", Resident, RetryStep),
        E::NothingToIssue => notice("nothing-to-issue", Resident, EndVisit),
        E::RenewalTooEarly { .. } => notice("renewal-too-early", Resident, EndVisit),
        E::RenewalExpired => notice("renewal-expired", Staff, EndVisit),
        E::NoCertsToRenew => notice("no-certs-to-renew", Staff, EndVisit),
        E::CaseUnknown => notice("case-unknown", Staff, FixApplication),
        E::CaseExpired { .. } => notice("case-expired", Resident, EndVisit),
        E::CaseMismatch => notice("case-mismatch", Staff, EndVisit),
        E::NothingToRevoke => notice("nothing-to-revoke", Staff, EndVisit),
        E::NotJpkiCard { .. } => notice("not-jpki-card", Resident, ReinsertCard),
        E::WrongCard => notice("wrong-card", Resident, ReinsertCard),
        E::CardRemoved => notice("card-removed", Resident, ReinsertCard),
        E::AdminAuthFailed { .. } => notice("admin-auth-failed", Staff, CallStaff),
        E::AdminKeyBlocked => notice("admin-key-blocked", Staff, CallStaff),
        E::CardUnexpected { .. } => notice("card-unexpected", Staff, RetryStep),
        E::ReaderFailed => notice("reader-failed", Staff, RetryStep),
        E::BadPublicKey { .. } => notice("bad-public-key", Staff, CallStaff),
        E::CaRejected { .. } => notice("ca-rejected", Staff, CallStaff),
        E::CaUnreachable => notice("ca-unreachable", Staff, RetryCaLater),
        E::CertDoesNotMatchKey { .. } => notice("cert-does-not-match-key", Staff, CallStaff),
        E::ReadBackMismatch { .. } => notice("read-back-mismatch", Staff, RetryStep),
        E::WrongPin { tries_left, .. } => notice(
            "wrong-pin",
            Resident,
            ReenterPin {
                tries_left: *tries_left,
            },
        ),
        E::PinBlocked { .. } => notice("pin-blocked", Resident, ReenterPin { tries_left: 0 }),
        E::SelfTestFailed { .. } => notice("self-test-failed", Staff, CallStaff),
        E::FeeMismatch { .. } => notice("fee-mismatch", Staff, VoidAndRefund),
        E::PrinterOutOfPaper => notice("printer-out-of-paper", Staff, ReprintReceipt),
        E::PrinterOffline => notice("printer-offline", Staff, ReprintReceipt),
        E::TooLateToCancel => notice("too-late-to-cancel", Staff, CallStaff),
        E::UnexpectedEvent { .. } => notice("unexpected-event", Staff, RetryStep),
        E::StaleTransaction => notice("stale-transaction", Staff, RetryCaLater),
        E::Unreachable(_) => notice("internal-error", Staff, CallStaff),
    }
}

/// The Japanese text for each message key (the counter's default language).
pub const JAPANESE: &[(&str, &str)] = &[
    ("application-mismatch", "申請内容が住民記録と一致しません。該当項目を確認してください。"),
    ("form-unreadable", "申請内容を読み取れません。申請書を確認してください。"),
    ("not-registered", "住民記録が見つかりません。宛名番号を確認してください。"),
    ("registry-unavailable", "住民記録に接続できません。もう一度お試しください。"),
    ("not-servable", "この方は本日の手続きができません（転出・死亡・異動処理中）。"),
    ("identity-shortfall", "本人確認書類が不足しています。"),
    ("signing-withheld", "署名用電子証明書は発行できません（15歳未満または成年被後見人）。利用者証明用のみ発行します。"),
    ("nothing-to-issue", "発行する電子証明書がありません。"),
    ("renewal-too-early", "更新は有効期限の3か月前から受け付けます。"),
    ("renewal-expired", "電子証明書の有効期限が切れています。新規発行の手続きをしてください。"),
    ("no-certs-to-renew", "カードに更新できる電子証明書がありません。"),
    ("case-unknown", "照会番号が見つかりません。回答書の番号を確認してください。"),
    ("case-expired", "回答書の有効期限が過ぎています。改めて申請してください。"),
    ("case-mismatch", "照会書の申請者と本日の申請者が一致しません。"),
    ("nothing-to-revoke", "失効できる有効な電子証明書がありません。"),
    ("not-jpki-card", "このカードは使用できません。マイナンバーカードを置いてください。"),
    ("wrong-card", "最初のカードと異なります。最初のカードを置いてください。"),
    ("card-removed", "カードが取り外されました。同じカードをもう一度置いてください。"),
    ("admin-auth-failed", "カードの管理認証に失敗しました。責任者を呼んでください。"),
    ("admin-key-blocked", "このカードには書き込みできません。責任者を呼んでください。"),
    ("card-unexpected", "カードが想定外の応答をしました。もう一度お試しください。"),
    ("reader-failed", "カードリーダーが応答しません。もう一度お試しください。"),
    ("bad-public-key", "カードの鍵が不正です。責任者を呼んでください。"),
    ("ca-rejected", "認証局が申請を受け付けませんでした。責任者を呼んでください。"),
    ("ca-unreachable", "認証局に接続できません。しばらくしてから同じ申請を再送します。"),
    ("cert-does-not-match-key", "認証局の証明書がカードの鍵と一致しません。責任者を呼んでください。"),
    ("read-back-mismatch", "証明書の書き込みを確認できませんでした。もう一度書き込みます。"),
    ("wrong-pin", "暗証番号が違います。もう一度入力してください。"),
    ("pin-blocked", "暗証番号がロックされました。新しい暗証番号を設定してください。"),
    ("self-test-failed", "カードの動作確認に失敗しました。責任者を呼んでください。"),
    ("fee-mismatch", "受領額が手数料と一致しません。取り消して返金してください。"),
    ("printer-out-of-paper", "用紙切れです。用紙を補充して受領書を再印刷してください。"),
    ("printer-offline", "プリンターが応答しません。確認して受領書を再印刷してください。"),
    ("too-late-to-cancel", "証明書は発行済みのため取り消せません。失効手続きを行ってください。"),
    ("unexpected-event", "操作の順序が正しくありません。画面の案内に従ってください。"),
    ("stale-transaction", "古い認証局応答を受け取りました。再送を待ってください。"),
    ("internal-error", "内部エラーが発生しました。責任者を呼んでください。"),
];

/// The Japanese text for a message key.
pub fn japanese(what: &str) -> Option<&'static str> {
    JAPANESE
        .iter()
        .find(|(key, _)| *key == what)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuance::error::{FormField, IdShortfall, SigningWithheld};
    use crate::issuance::model::{CardKind, Slot, Standing};
    use crate::rules::fee::Yen;
    use Audience::{Resident, Staff};
    use Recovery::*;

    fn check(error: IssuanceError, what: &str, audience: Audience, recovery: Recovery) {
        let n = notice_for(&error);
        assert_eq!(
            (n.what, n.audience, n.recovery),
            (what, audience, recovery),
            "{error:?}"
        );
        assert!(japanese(n.what).is_some(), "no Japanese text for {what}");
    }

    #[test]
    fn mismatch() {
        check(
            IssuanceError::Mismatch {
                field: FormField::Name,
            },
            "application-mismatch",
            Staff,
            FixApplication,
        );
    }
    #[test]
    fn form_unreadable() {
        check(
            IssuanceError::FormUnreadable,
            "form-unreadable",
            Staff,
            FixApplication,
        );
    }
    #[test]
    fn not_registered() {
        check(
            IssuanceError::NotRegistered,
            "not-registered",
            Staff,
            FixApplication,
        );
    }
    #[test]
    fn registry_unavailable() {
        check(
            IssuanceError::RegistryUnavailable,
            "registry-unavailable",
            Staff,
            RetryStep,
        );
    }
    #[test]
    fn not_servable() {
        check(
            IssuanceError::NotServable {
                standing: Standing::MovedOut,
            },
            "not-servable",
            Staff,
            EndVisit,
        );
    }
    #[test]
    fn identity_shortfall() {
        let shortfall = IdShortfall::NotEnough {
            required: 2,
            found: 1,
        };
        check(
            IssuanceError::IdentityShortfall { shortfall },
            "identity-shortfall",
            Staff,
            RetryStep,
        );
    }
    #[test]
    fn signing_withheld() {
        let reason = SigningWithheld::UnderFifteen;
        check(
            IssuanceError::SigningWithheld { reason },
            "signing-withheld",
            Resident,
            RetryStep,
        );
    }
    #[test]
    fn nothing_to_issue() {
        check(
            IssuanceError::NothingToIssue,
            "nothing-to-issue",
            Resident,
            EndVisit,
        );
    }
    #[test]
    fn renewal_too_early() {
        let e = IssuanceError::RenewalTooEarly {
            opens: "2027-01-01".into(),
        };
        check(e, "renewal-too-early", Resident, EndVisit);
    }
    #[test]
    fn renewal_expired() {
        check(
            IssuanceError::RenewalExpired,
            "renewal-expired",
            Staff,
            EndVisit,
        );
    }
    #[test]
    fn no_certs_to_renew() {
        check(
            IssuanceError::NoCertsToRenew,
            "no-certs-to-renew",
            Staff,
            EndVisit,
        );
    }
    #[test]
    fn case_unknown() {
        check(
            IssuanceError::CaseUnknown,
            "case-unknown",
            Staff,
            FixApplication,
        );
    }
    #[test]
    fn case_expired() {
        let e = IssuanceError::CaseExpired {
            expired: "2026-12-22".into(),
        };
        check(e, "case-expired", Resident, EndVisit);
    }
    #[test]
    fn case_mismatch() {
        check(
            IssuanceError::CaseMismatch,
            "case-mismatch",
            Staff,
            EndVisit,
        );
    }
    #[test]
    fn nothing_to_revoke() {
        check(
            IssuanceError::NothingToRevoke,
            "nothing-to-revoke",
            Staff,
            EndVisit,
        );
    }
    #[test]
    fn not_jpki_card() {
        check(
            IssuanceError::NotJpkiCard {
                kind: CardKind::Juki,
            },
            "not-jpki-card",
            Resident,
            ReinsertCard,
        );
    }
    #[test]
    fn wrong_card() {
        check(
            IssuanceError::WrongCard,
            "wrong-card",
            Resident,
            ReinsertCard,
        );
    }
    #[test]
    fn card_removed() {
        check(
            IssuanceError::CardRemoved,
            "card-removed",
            Resident,
            ReinsertCard,
        );
    }
    #[test]
    fn admin_auth_failed() {
        check(
            IssuanceError::AdminAuthFailed { tries_left: 9 },
            "admin-auth-failed",
            Staff,
            CallStaff,
        );
    }
    #[test]
    fn admin_key_blocked() {
        check(
            IssuanceError::AdminKeyBlocked,
            "admin-key-blocked",
            Staff,
            CallStaff,
        );
    }
    #[test]
    fn card_unexpected() {
        check(
            IssuanceError::CardUnexpected { sw: 0x6F00 },
            "card-unexpected",
            Staff,
            RetryStep,
        );
    }
    #[test]
    fn reader_failed() {
        check(
            IssuanceError::ReaderFailed,
            "reader-failed",
            Staff,
            RetryStep,
        );
    }
    #[test]
    fn bad_public_key() {
        check(
            IssuanceError::BadPublicKey { slot: Slot::Auth },
            "bad-public-key",
            Staff,
            CallStaff,
        );
    }
    #[test]
    fn ca_rejected() {
        let e = IssuanceError::CaRejected {
            fail_info: vec!["badPOP".into()],
        };
        check(e, "ca-rejected", Staff, CallStaff);
    }
    #[test]
    fn ca_unreachable() {
        check(
            IssuanceError::CaUnreachable,
            "ca-unreachable",
            Staff,
            RetryCaLater,
        );
    }
    #[test]
    fn cert_does_not_match_key() {
        let e = IssuanceError::CertDoesNotMatchKey { slot: Slot::Sign };
        check(e, "cert-does-not-match-key", Staff, CallStaff);
    }
    #[test]
    fn read_back_mismatch() {
        check(
            IssuanceError::ReadBackMismatch { slot: Slot::Sign },
            "read-back-mismatch",
            Staff,
            RetryStep,
        );
    }
    #[test]
    fn wrong_pin_says_tries_left() {
        let e = IssuanceError::WrongPin {
            slot: Slot::Sign,
            tries_left: 4,
        };
        check(e, "wrong-pin", Resident, ReenterPin { tries_left: 4 });
    }
    #[test]
    fn pin_blocked() {
        let e = IssuanceError::PinBlocked { slot: Slot::Auth };
        check(e, "pin-blocked", Resident, ReenterPin { tries_left: 0 });
    }
    #[test]
    fn self_test_failed() {
        check(
            IssuanceError::SelfTestFailed { slot: Slot::Auth },
            "self-test-failed",
            Staff,
            CallStaff,
        );
    }
    #[test]
    fn fee_mismatch() {
        let e = IssuanceError::FeeMismatch {
            fee: Yen(200),
            paid: Yen(100),
        };
        check(e, "fee-mismatch", Staff, VoidAndRefund);
    }
    #[test]
    fn printer_out_of_paper() {
        check(
            IssuanceError::PrinterOutOfPaper,
            "printer-out-of-paper",
            Staff,
            ReprintReceipt,
        );
    }
    #[test]
    fn printer_offline() {
        check(
            IssuanceError::PrinterOffline,
            "printer-offline",
            Staff,
            ReprintReceipt,
        );
    }
    #[test]
    fn too_late_to_cancel() {
        check(
            IssuanceError::TooLateToCancel,
            "too-late-to-cancel",
            Staff,
            CallStaff,
        );
    }
    #[test]
    fn unexpected_event() {
        let e = IssuanceError::UnexpectedEvent {
            step: "idle".into(),
            event: "printed".into(),
        };
        check(e, "unexpected-event", Staff, RetryStep);
    }
    #[test]
    fn stale_transaction() {
        check(
            IssuanceError::StaleTransaction,
            "stale-transaction",
            Staff,
            RetryCaLater,
        );
    }
    #[test]
    fn unreachable() {
        check(
            IssuanceError::Unreachable("x".into()),
            "internal-error",
            Staff,
            CallStaff,
        );
    }

    #[test]
    fn every_key_has_one_japanese_text() {
        let mut keys: Vec<_> = JAPANESE.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), JAPANESE.len());
    }
}
