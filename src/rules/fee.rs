//! Visit kinds and the fee the counter charges for each, in whole yen.
//!
//! The defaults follow jpki-facts §4.4: first issuance and renewal are free, re-issue after
//! a lost card costs 200 yen. A municipality overrides any amount in a JSON file read by
//! [`FeeTable::from_json`]; missing keys keep their defaults, unknown keys are refused so a
//! typo never silently charges the default. Money is a [`Yen`] of `u32`: never a float.
//!
//! Not here: fee waivers (a supervisor's decision, recorded by the workflow) and payment.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount in whole yen.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Yen(pub u32);

impl Yen {
    /// No charge.
    pub const ZERO: Yen = Yen(0);

    /// Whether the visit is free.
    pub fn is_free(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Yen {
    /// As on a receipt: `200円`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}円", self.0)
    }
}

/// What the resident came for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// First certificates on a card (新規発行).
    NewIssuance,
    /// Renewal inside the window before expiry (更新).
    Renewal,
    /// Re-issue after the card or its certificates were lost (紛失による再発行).
    ReissueAfterLoss,
    /// Re-issue after a certified item (name, address, …) changed (異動後の再発行).
    ReissueOnChangedItem,
    /// Revocation at the counter (失効申請), own request or lost card.
    Revocation,
    /// PIN lock release, keeping the PIN (ロック解除).
    PinLockRelease,
    /// PIN initialisation and re-set (初期化・再設定).
    PinReset,
    /// First visit of a voluntary proxy (任意代理人): the request is recorded and the
    /// 照会書 is mailed. The second visit is charged as the service it completes.
    ProxyInquiry,
}

impl VisitKind {
    /// Every kind, in the order of the fee table.
    pub const ALL: [VisitKind; 8] = [
        VisitKind::NewIssuance,
        VisitKind::Renewal,
        VisitKind::ReissueAfterLoss,
        VisitKind::ReissueOnChangedItem,
        VisitKind::Revocation,
        VisitKind::PinLockRelease,
        VisitKind::PinReset,
        VisitKind::ProxyInquiry,
    ];
}

/// The fee for each visit kind. Field names are the JSON keys of the override file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeeTable {
    /// First issuance (default free).
    pub new_issuance: Yen,
    /// Renewal (default free).
    pub renewal: Yen,
    /// Re-issue after loss (default 200 yen).
    pub reissue_after_loss: Yen,
    /// Re-issue after a changed item (default free).
    pub reissue_on_changed_item: Yen,
    /// Revocation (default free).
    pub revocation: Yen,
    /// Lock release (default free).
    pub pin_lock_release: Yen,
    /// PIN reset (default free).
    pub pin_reset: Yen,
    /// First proxy visit (default free).
    pub proxy_inquiry: Yen,
}

impl Default for FeeTable {
    fn default() -> Self {
        FeeTable {
            new_issuance: Yen::ZERO,
            renewal: Yen::ZERO,
            reissue_after_loss: Yen(200),
            reissue_on_changed_item: Yen::ZERO,
            revocation: Yen::ZERO,
            pin_lock_release: Yen::ZERO,
            pin_reset: Yen::ZERO,
            proxy_inquiry: Yen::ZERO,
        }
    }
}

/// Why a fee override file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeeConfigError {
    /// Not JSON, an unknown key, or an amount that is not a whole number of yen ≥ 0.
    #[error("fee table: {0}")]
    Invalid(#[from] serde_json::Error),
}

impl FeeTable {
    /// Reads a municipality's override, e.g. `{"reissue_after_loss": 300}`.
    pub fn from_json(text: &str) -> Result<FeeTable, FeeConfigError> {
        Ok(serde_json::from_str(text)?)
    }
}

/// The fee for a visit.
pub fn fee_for(kind: VisitKind, table: &FeeTable) -> Yen {
    match kind {
        VisitKind::NewIssuance => table.new_issuance,
        VisitKind::Renewal => table.renewal,
        VisitKind::ReissueAfterLoss => table.reissue_after_loss,
        VisitKind::ReissueOnChangedItem => table.reissue_on_changed_item,
        VisitKind::Revocation => table.revocation,
        VisitKind::PinLockRelease => table.pin_lock_release,
        VisitKind::PinReset => table.pin_reset,
        VisitKind::ProxyInquiry => table.proxy_inquiry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fees() {
        let t = FeeTable::default();
        let expected = [
            (VisitKind::NewIssuance, 0),
            (VisitKind::Renewal, 0),
            (VisitKind::ReissueAfterLoss, 200),
            (VisitKind::ReissueOnChangedItem, 0),
            (VisitKind::Revocation, 0),
            (VisitKind::PinLockRelease, 0),
            (VisitKind::PinReset, 0),
            (VisitKind::ProxyInquiry, 0),
        ];
        assert_eq!(expected.len(), VisitKind::ALL.len());
        for (kind, yen) in expected {
            assert_eq!(fee_for(kind, &t), Yen(yen), "{kind:?}");
        }
    }

    #[test]
    fn overrides_keep_unnamed_defaults() {
        let t = FeeTable::from_json(r#"{"reissue_after_loss": 300, "pin_reset": 100}"#).unwrap();
        assert_eq!(fee_for(VisitKind::ReissueAfterLoss, &t), Yen(300));
        assert_eq!(fee_for(VisitKind::PinReset, &t), Yen(100));
        assert_eq!(fee_for(VisitKind::NewIssuance, &t), Yen(0));
        assert_eq!(FeeTable::from_json("{}").unwrap(), FeeTable::default());
    }

    #[test]
    fn each_key_sets_its_own_kind() {
        for (i, kind) in VisitKind::ALL.into_iter().enumerate() {
            let key = serde_json::to_value(kind).unwrap();
            let json = format!("{{{key}: {}}}", 1000 + i);
            let t = FeeTable::from_json(&json).unwrap();
            for other in VisitKind::ALL {
                let expected = if other == kind {
                    Yen(1000 + i as u32)
                } else {
                    fee_for(other, &FeeTable::default())
                };
                assert_eq!(fee_for(other, &t), expected, "{json} {other:?}");
            }
        }
    }

    #[test]
    fn refuses_bad_overrides() {
        for bad in [
            r#"{"reissue_after_los": 300}"#,
            r#"{"renewal": -1}"#,
            r#"{"renewal": 1.5}"#,
            r#"{"renewal": "200"}"#,
            r#"{"renewal": 4294967296}"#,
            "not json",
        ] {
            assert!(FeeTable::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yen_prints_as_on_a_receipt() {
        assert_eq!(Yen(200).to_string(), "200円");
        assert!(Yen::ZERO.is_free());
        assert!(!Yen(1).is_free());
    }
}
