//! Where the card, the local record and the CA disagree about one card.
//!
//! [`reconcile`] is pure: the reconciliation command gathers the three views (the card
//! adapter reads the certificate EFs and asks for each key's public part, the journal
//! gives the local record, the CA answers a status query) and prints the discrepancies.
//! An empty list means the three agree. Not here: repairing anything; each discrepancy
//! names what staff do next in `docs/workflow.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::Outcome;
use super::event::Event;
use super::journal::{resume, JournalRecord};
use super::model::{CardSerial, Slot};

/// What the card holds, per slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardView {
    /// The card's serial.
    pub serial: Option<CardSerial>,
    /// Slots with a key pair on the card.
    pub keys: Vec<Slot>,
    /// Certificates on the card (DER), per slot.
    pub certs: BTreeMap<Slot, Vec<u8>>,
    /// Slots whose certificate could not be read (the signing certificate without the
    /// resident's password): the card is not compared for them.
    pub unread: Vec<Slot>,
}

/// What the kiosk's journal says the card should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalView {
    /// The card the last visit was bound to.
    pub serial: Option<CardSerial>,
    /// Certificates the kiosk recorded as issued and confirmed, per slot.
    pub certs: BTreeMap<Slot, Vec<u8>>,
}

impl LocalView {
    /// What a visit's journal says: the card it was bound to, and, when it ended issued,
    /// the certificates of its own CA transaction.
    pub fn from_journal(records: &[JournalRecord]) -> LocalView {
        let (visit, _) = resume(records);
        let serial = visit.bound_card().cloned();
        if visit.outcome() != Some(&Outcome::Issued) {
            return LocalView {
                serial,
                certs: BTreeMap::new(),
            };
        }
        let own = visit.transaction();
        let certs = records
            .iter()
            .rev()
            .find_map(|record| match record {
                JournalRecord::Event {
                    event: Event::CaIssued { transaction, certs },
                    ..
                } if Some(*transaction) == own => {
                    Some(certs.iter().map(|c| (c.slot, c.der.clone())).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
        LocalView { serial, certs }
    }
}

/// The CA's state of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaStatus {
    /// Issued and confirmed: valid.
    Live,
    /// Issued, certConf not received yet.
    Unconfirmed,
    /// Revoked (or rejected at certConf).
    Revoked,
}

/// What the CA knows of this card's certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaView {
    /// Certificates the CA issued for this card: slot, DER, status.
    pub certs: Vec<(Slot, Vec<u8>, CaStatus)>,
}

/// One disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Discrepancy {
    /// The card in the reader is not the one the local record names.
    OtherCard,
    /// The card holds a certificate the CA does not have as live.
    CardCertNotLive {
        /// The slot.
        slot: Slot,
        /// The CA's status, `None` if unknown to the CA.
        status: Option<CaStatus>,
    },
    /// The CA has a live (or unconfirmed) certificate for the card that the card lacks.
    CaCertNotOnCard {
        /// The slot.
        slot: Slot,
    },
    /// The local record and the card differ for a slot.
    LocalDiffersFromCard {
        /// The slot.
        slot: Slot,
    },
    /// The local record and the CA differ for a slot (recorded issued, CA not live, or
    /// the reverse).
    LocalDiffersFromCa {
        /// The slot.
        slot: Slot,
    },
    /// The card holds a key pair with no certificate (an interrupted visit).
    KeyWithoutCert {
        /// The slot.
        slot: Slot,
    },
}

/// Lists where the three views disagree, slot by slot.
pub fn reconcile(card: &CardView, local: &LocalView, ca: &CaView) -> Vec<Discrepancy> {
    let mut out = Vec::new();
    if card.serial.is_some() && local.serial.is_some() && card.serial != local.serial {
        // The other two views are about a different card: comparing slots means nothing.
        out.push(Discrepancy::OtherCard);
        return out;
    }
    for slot in Slot::ALL {
        let on_card = card.certs.get(&slot);
        let recorded = local.certs.get(&slot);
        let at_ca = |der: &[u8]| {
            ca.certs
                .iter()
                .find(|(s, d, _)| *s == slot && d.as_slice() == der)
                .map(|(_, _, st)| *st)
        };
        let live_at_ca: Vec<&Vec<u8>> = ca
            .certs
            .iter()
            .filter(|(s, _, st)| *s == slot && *st != CaStatus::Revoked)
            .map(|(_, d, _)| d)
            .collect();
        let unread = card.unread.contains(&slot);
        if unread {
            // Only the local record and the CA can be compared.
        } else if let Some(der) = on_card {
            let status = at_ca(der);
            if status != Some(CaStatus::Live) {
                out.push(Discrepancy::CardCertNotLive { slot, status });
            }
        } else if card.keys.contains(&slot) {
            out.push(Discrepancy::KeyWithoutCert { slot });
        }
        if !unread && live_at_ca.iter().any(|d| Some(*d) != on_card) {
            out.push(Discrepancy::CaCertNotOnCard { slot });
        }
        if !unread && on_card != recorded {
            out.push(Discrepancy::LocalDiffersFromCard { slot });
        }
        let recorded_live = recorded.is_some_and(|d| at_ca(d) == Some(CaStatus::Live));
        let ca_live_unrecorded = live_at_ca.iter().any(|d| Some(*d) != recorded);
        if (recorded.is_some() && !recorded_live) || ca_live_unrecorded {
            out.push(Discrepancy::LocalDiffersFromCa { slot });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial() -> Option<CardSerial> {
        Some(CardSerial("ab".repeat(16)))
    }

    fn agreeing() -> (CardView, LocalView, CaView) {
        let cert = vec![0x30, 0x82, 0, 1, 0xAA];
        let card = CardView {
            serial: serial(),
            keys: vec![Slot::Auth],
            certs: BTreeMap::from([(Slot::Auth, cert.clone())]),
            unread: vec![],
        };
        let local = LocalView {
            serial: serial(),
            certs: BTreeMap::from([(Slot::Auth, cert.clone())]),
        };
        let ca = CaView {
            certs: vec![(Slot::Auth, cert, CaStatus::Live)],
        };
        (card, local, ca)
    }

    #[test]
    fn agreeing_views_have_no_discrepancy() {
        let (card, local, ca) = agreeing();
        assert_eq!(reconcile(&card, &local, &ca), vec![]);
        assert_eq!(
            reconcile(
                &CardView::default(),
                &LocalView::default(),
                &CaView::default()
            ),
            vec![]
        );
    }

    #[test]
    fn crash_before_card_write_is_reported() {
        let (mut card, mut local, mut ca) = agreeing();
        card.certs.clear();
        local.certs.clear();
        ca.certs[0].2 = CaStatus::Unconfirmed;
        assert_eq!(
            reconcile(&card, &local, &ca),
            vec![
                Discrepancy::KeyWithoutCert { slot: Slot::Auth },
                Discrepancy::CaCertNotOnCard { slot: Slot::Auth },
                Discrepancy::LocalDiffersFromCa { slot: Slot::Auth },
            ]
        );
    }

    #[test]
    fn revoked_cert_still_on_card_is_reported() {
        let (card, local, mut ca) = agreeing();
        ca.certs[0].2 = CaStatus::Revoked;
        assert_eq!(
            reconcile(&card, &local, &ca),
            vec![
                Discrepancy::CardCertNotLive {
                    slot: Slot::Auth,
                    status: Some(CaStatus::Revoked)
                },
                Discrepancy::LocalDiffersFromCa { slot: Slot::Auth },
            ]
        );
    }

    #[test]
    fn other_card_stops_the_comparison() {
        let (mut card, local, ca) = agreeing();
        card.serial = Some(CardSerial("cd".repeat(16)));
        assert_eq!(reconcile(&card, &local, &ca), vec![Discrepancy::OtherCard]);
    }

    #[test]
    fn an_unread_slot_is_compared_between_record_and_ca_only() {
        let (mut card, mut local, mut ca) = agreeing();
        let sign = vec![0x30, 0x82, 0, 1, 0xBB];
        local.certs.insert(Slot::Sign, sign.clone());
        ca.certs.push((Slot::Sign, sign.clone(), CaStatus::Live));
        card.keys.push(Slot::Sign);
        card.unread.push(Slot::Sign);
        // The card's signing certificate was not read: no card discrepancy for it.
        assert_eq!(reconcile(&card, &local, &ca), vec![]);
        // The CA revoked it while the record says issued: still found.
        ca.certs[1].2 = CaStatus::Revoked;
        assert_eq!(reconcile(&card, &local, &ca), vec![Discrepancy::LocalDiffersFromCa { slot: Slot::Sign }]);
    }
}
