//! Whether the identity documents staff recorded are enough for the visit.
//!
//! jpki-facts §4.3 and §4.5: one government photo ID (A group: licence, passport, the My
//! Number card itself…) or a combination of non-photo documents (B group: health
//! insurance card, pension certificate…). How many B documents make up for an A one
//! differs between municipalities, so it is a setting ([`IdentityPolicy`], default 2).
//! Anyone acting for the holder (legal representative, or a voluntary proxy on the
//! second visit of the 照会書 flow) must show their own photo ID. Lock release may accept
//! B documents or demand a photo ID, again a setting.
//!
//! Not here: which document types exist, and recording their numbers (the workflow does
//! that; images are never stored). This module only counts groups.

use serde::{Deserialize, Serialize};

use super::fee::VisitKind;

/// The group of an identity document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentGroup {
    /// A group: a government-issued photo ID.
    Photo,
    /// B group: a document without a photo.
    NonPhoto,
}

/// Who stands at the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presenter {
    /// The certificate holder in person.
    Holder,
    /// A legal representative (parent of an under-15, guardian of an adult ward).
    LegalRepresentative,
    /// A voluntary proxy (任意代理人).
    VoluntaryProxy,
}

/// The municipality's identity settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityPolicy {
    /// How many B-group documents replace one photo ID (default 2).
    pub non_photo_required: u8,
    /// Whether lock release accepts B-group documents instead of a photo ID (default yes).
    pub lock_release_accepts_non_photo: bool,
}

impl Default for IdentityPolicy {
    fn default() -> Self {
        IdentityPolicy {
            non_photo_required: 2,
            lock_release_accepts_non_photo: true,
        }
    }
}

/// What is missing; shown to staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityShortfall {
    /// Neither a photo ID nor enough non-photo documents.
    #[error("one photo ID or {required} non-photo documents are needed, {found} were shown")]
    NotEnough {
        /// Non-photo documents needed.
        required: u8,
        /// Non-photo documents shown.
        found: usize,
    },
    /// This visit needs a photo ID (someone acting for the holder, or lock release where
    /// the municipality demands one).
    #[error("this visit needs a government photo ID")]
    PhotoRequired,
    /// A voluntary proxy cannot be served on the first visit; the 照会書 is mailed.
    #[error("a voluntary proxy is served only on the second visit, with the answer sheet")]
    ProxyNeedsInquiry,
}

/// Checks the documents of the person at the counter. `answer_sheet` is true on the
/// second visit of a voluntary proxy (the 回答書 is back).
pub fn check_identity(
    documents: &[DocumentGroup],
    presenter: Presenter,
    kind: VisitKind,
    answer_sheet: bool,
    policy: &IdentityPolicy,
) -> Result<(), IdentityShortfall> {
    let has_photo = documents.contains(&DocumentGroup::Photo);
    let photo_only = match presenter {
        Presenter::Holder => {
            kind == VisitKind::PinLockRelease && !policy.lock_release_accepts_non_photo
        }
        Presenter::LegalRepresentative => true,
        Presenter::VoluntaryProxy => {
            // Visit 1 only records the request; it needs the proxy's ID like any other.
            if kind != VisitKind::ProxyInquiry && !answer_sheet {
                return Err(IdentityShortfall::ProxyNeedsInquiry);
            }
            kind != VisitKind::ProxyInquiry
        }
    };
    if has_photo {
        return Ok(());
    }
    if photo_only {
        return Err(IdentityShortfall::PhotoRequired);
    }
    let found = documents
        .iter()
        .filter(|d| **d == DocumentGroup::NonPhoto)
        .count();
    let required = policy.non_photo_required.max(1);
    if found >= usize::from(required) {
        Ok(())
    } else {
        Err(IdentityShortfall::NotEnough { required, found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DocumentGroup::{NonPhoto as B, Photo as A};
    use Presenter::*;

    #[test]
    fn identity_table() {
        let p = IdentityPolicy::default();
        let strict = IdentityPolicy {
            non_photo_required: 3,
            lock_release_accepts_non_photo: false,
        };
        let not_enough = |found| Err(IdentityShortfall::NotEnough { required: 2, found });
        let table: Vec<(
            &[DocumentGroup],
            Presenter,
            VisitKind,
            bool,
            &IdentityPolicy,
            _,
        )> = vec![
            (&[A], Holder, VisitKind::NewIssuance, false, &p, Ok(())),
            (&[B, B], Holder, VisitKind::NewIssuance, false, &p, Ok(())),
            (
                &[B],
                Holder,
                VisitKind::NewIssuance,
                false,
                &p,
                not_enough(1),
            ),
            (&[], Holder, VisitKind::Renewal, false, &p, not_enough(0)),
            (
                &[B, B],
                Holder,
                VisitKind::NewIssuance,
                false,
                &strict,
                Err(IdentityShortfall::NotEnough {
                    required: 3,
                    found: 2,
                }),
            ),
            (
                &[B, B, B],
                Holder,
                VisitKind::NewIssuance,
                false,
                &strict,
                Ok(()),
            ),
            (
                &[B, B],
                Holder,
                VisitKind::PinLockRelease,
                false,
                &p,
                Ok(()),
            ),
            (
                &[B, B, B],
                Holder,
                VisitKind::PinLockRelease,
                false,
                &strict,
                Err(IdentityShortfall::PhotoRequired),
            ),
            (
                &[A],
                Holder,
                VisitKind::PinLockRelease,
                false,
                &strict,
                Ok(()),
            ),
            (
                &[A],
                LegalRepresentative,
                VisitKind::NewIssuance,
                false,
                &p,
                Ok(()),
            ),
            (
                &[B, B],
                LegalRepresentative,
                VisitKind::NewIssuance,
                false,
                &p,
                Err(IdentityShortfall::PhotoRequired),
            ),
            (
                &[A],
                VoluntaryProxy,
                VisitKind::NewIssuance,
                false,
                &p,
                Err(IdentityShortfall::ProxyNeedsInquiry),
            ),
            (
                &[B, B],
                VoluntaryProxy,
                VisitKind::ProxyInquiry,
                false,
                &p,
                Ok(()),
            ),
            (
                &[B],
                VoluntaryProxy,
                VisitKind::ProxyInquiry,
                false,
                &p,
                not_enough(1),
            ),
            (
                &[A],
                VoluntaryProxy,
                VisitKind::NewIssuance,
                true,
                &p,
                Ok(()),
            ),
            (
                &[B, B],
                VoluntaryProxy,
                VisitKind::NewIssuance,
                true,
                &p,
                Err(IdentityShortfall::PhotoRequired),
            ),
        ];
        for (docs, who, kind, sheet, policy, expected) in table {
            assert_eq!(
                check_identity(docs, who, kind, sheet, policy),
                expected,
                "{docs:?} {who:?} {kind:?} sheet={sheet}"
            );
        }
    }

    #[test]
    fn policy_reads_from_json_with_defaults() {
        let p: IdentityPolicy = serde_json::from_str(r#"{"non_photo_required": 3}"#).unwrap();
        assert_eq!(p.non_photo_required, 3);
        assert!(p.lock_release_accepts_non_photo);
        assert!(serde_json::from_str::<IdentityPolicy>(r#"{"photo": 1}"#).is_err());
    }

    #[test]
    fn zero_non_photo_setting_still_needs_a_document() {
        let p = IdentityPolicy {
            non_photo_required: 0,
            lock_release_accepts_non_photo: true,
        };
        assert_eq!(
            check_identity(&[], Holder, VisitKind::NewIssuance, false, &p),
            Err(IdentityShortfall::NotEnough {
                required: 1,
                found: 0
            })
        );
    }
}
