//! 異動 (resident-record change) notices from the registry side.
//!
//! `POST /registry/notice` with a JSON body names a resident (by `resident_id`, `card_id`
//! or certificate `serials`) and what changed. Per 公的個人認証法 Art. 12 a change of name,
//! birth date, sex or address revokes the holder's *signing* certificates
//! (affiliationChanged); deletion of the record revokes them with cessationOfOperation.
//! User-authentication certificates are never touched here.
//!
//! This module parses and applies notices; it does not authenticate the registry (the
//! reference CA listens on loopback only).

use serde::{Deserialize, Serialize};

use super::{Ca, CaError};
use crate::pki::jpki_profile::CertProfile;

/// What happened to the resident record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// 氏名 changed.
    Name,
    /// 生年月日 corrected.
    BirthDate,
    /// 性別 changed.
    Sex,
    /// 住所 changed (move, 住居表示 change).
    Address,
    /// The resident record was deleted (death, emigration).
    Deleted,
}

impl Change {
    /// The RFC 5280 CRLReason the change maps to.
    pub fn reason(self) -> u32 {
        match self {
            Change::Deleted => 5, // cessationOfOperation
            _ => 3,               // affiliationChanged
        }
    }
}

/// A registry change notice.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// What changed.
    pub change: Change,
    /// The resident's registry identifier (as the kiosk sent it in `resident-id`).
    #[serde(default)]
    pub resident_id: Option<String>,
    /// The card's identifier (as the kiosk sent it in `card-id`).
    #[serde(default)]
    pub card_id: Option<String>,
    /// Certificate serials (hex).
    #[serde(default)]
    pub serials: Vec<String>,
}

/// The answer to a notice.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NoticeResult {
    /// Serials of the signing certificates revoked now.
    pub revoked: Vec<String>,
    /// Serials named in the notice that were left alone (authentication certificates,
    /// already revoked, unknown).
    pub untouched: Vec<String>,
    /// The CRLReason value used.
    pub reason: u32,
}

impl Ca {
    /// Applies a registry notice (JSON) and returns what was revoked.
    pub fn registry_notice(&self, json: &[u8]) -> Result<NoticeResult, CaError> {
        let notice: Notice = serde_json::from_slice(json).map_err(|e| CaError::BadNotice(e.to_string()))?;
        if notice.resident_id.is_none() && notice.card_id.is_none() && notice.serials.is_empty() {
            return Err(CaError::BadNotice("no resident_id, card_id or serials".into()));
        }
        let reason = notice.change.reason();
        let holder = notice.resident_id.as_deref().map(|r| self.material.redacted_ref("resident", r));
        let card = notice.card_id.as_deref().map(|c| self.material.redacted_ref("card", c));
        let mut result = NoticeResult { revoked: vec![], untouched: vec![], reason };
        let mut scopes = Vec::new();
        {
            let mut store = self.store.lock().map_err(|_| CaError::Poisoned)?;
            store.atomically(|s| -> Result<(), CaError> {
                let mut candidates = if holder.is_some() || card.is_some() {
                    s.live_serials_by_ref("sign", holder.as_deref(), card.as_deref())?
                } else {
                    vec![]
                };
                for serial in &notice.serials {
                    let serial = serial.to_ascii_uppercase();
                    if !candidates.contains(&serial) {
                        candidates.push(serial);
                    }
                }
                for serial in candidates {
                    let row = s.cert_by_serial(&serial)?;
                    match row {
                        Some(row) if row.profile == "sign" && !row.revoked => {
                            s.revoke(&row, reason, None, super::certs::unix_now())?;
                            s.audit(
                                "registry",
                                "revoke",
                                &format!("serial={serial} reason={reason} channel=ido-notice change={:?}", notice.change),
                            )?;
                            scopes.push((CertProfile::Signing, row.municipality.clone()));
                            result.revoked.push(serial);
                        }
                        _ => result.untouched.push(serial),
                    }
                }
                s.audit(
                    "registry",
                    "ido-notice",
                    &format!("change={:?} revoked={} untouched={}", notice.change, result.revoked.len(), result.untouched.len()),
                )?;
                Ok(())
            })?;
        }
        if !result.revoked.is_empty() {
            self.reissue_crl(CertProfile::Signing, None)?;
            scopes.sort();
            scopes.dedup();
            for (p, m) in scopes {
                if m.is_some() {
                    self.reissue_crl(p, m.as_deref())?;
                }
            }
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_parse_and_map_to_reasons() {
        let n: Notice = serde_json::from_str(r#"{"change":"address","resident_id":"R-1"}"#).unwrap();
        assert_eq!(n.change.reason(), 3);
        let n: Notice = serde_json::from_str(r#"{"change":"deleted","serials":["0A"]}"#).unwrap();
        assert_eq!(n.change.reason(), 5);
        assert!(serde_json::from_str::<Notice>(r#"{"change":"hair"}"#).is_err());
        assert!(serde_json::from_str::<Notice>(r#"{"change":"name","pin":"1234"}"#).is_err());
    }
}
