//! Proof tokens: values that only the code that checks something can make.
//!
//! As in rustls (`verify::ServerVerified`), each token has private fields and is made
//! only by the check function beside it. A step that needs a checked fact holds the token
//! as a field, so skipping the check does not compile: the fee step holds a
//! [`CardVerified`] and a [`CaConfirmed`], and `CardVerified` can only come from
//! [`card_verified`], which needs a [`SignatureValid`] from [`check_slot`] (read back
//! equal to what was issued, and a self-test signature that verifies) for every
//! certificate [`check_written`] saw written.
//!
//! ```compile_fail,E0451
//! // A fee for an unverified card does not compile: the token has private fields.
//! let forged = jpki_kiosk::issuance::proof::CardVerified { slots: Vec::new() };
//! ```
//!
//! Tokens are never deserialised: after a crash, [`super::journal`] replays the journaled
//! events through the same checks, so a resumed visit re-earns every token.
//!
//! Not here: the checks of the rules (`crate::rules`), which return values, not tokens.

use std::collections::{BTreeMap, BTreeSet};

use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

use super::error::IssuanceError;
use super::event::IssuedCert;
use super::model::{CardSerial, Slot, TransactionId, VisitId};

/// The modulus size every JPKI key has (bytes).
const RSA_2048_BYTES: usize = 256;
/// The DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
/// Domain separation of the self-test challenge: it can never be a document hash.
const SELF_TEST_LABEL: &[u8] = b"JPKI-KIOSK SELF-TEST v1";

/// Every wanted key is on this card, and each is RSA-2048 with e = 65537.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysOnCard {
    serial: CardSerial,
    keys: BTreeMap<Slot, Vec<u8>>,
}

impl KeysOnCard {
    /// The card the keys are on.
    pub fn serial(&self) -> &CardSerial {
        &self.serial
    }

    /// The slots, in order.
    pub fn slots(&self) -> Vec<Slot> {
        self.keys.keys().copied().collect()
    }

    /// The slot's public key (SPKI DER).
    pub fn spki(&self, slot: Slot) -> Option<&[u8]> {
        self.keys.get(&slot).map(Vec::as_slice)
    }
}

/// Checks that every wanted slot has a generated key of the right kind.
pub fn check_keys(
    serial: &CardSerial,
    wanted: &BTreeSet<Slot>,
    generated: &BTreeMap<Slot, Vec<u8>>,
) -> Result<KeysOnCard, IssuanceError> {
    let mut keys = BTreeMap::new();
    for slot in wanted {
        let spki = generated
            .get(slot)
            .ok_or_else(|| IssuanceError::Unreachable(format!("no key generated for {slot:?}")))?;
        let key = RsaPublicKey::from_public_key_der(spki)
            .map_err(|_| IssuanceError::BadPublicKey { slot: *slot })?;
        if key.size() != RSA_2048_BYTES || *key.e() != BigUint::from(65_537u32) {
            return Err(IssuanceError::BadPublicKey { slot: *slot });
        }
        keys.insert(*slot, spki.clone());
    }
    Ok(KeysOnCard {
        serial: serial.clone(),
        keys,
    })
}

/// Every key's PIN is set on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinsSet {
    slots: BTreeSet<Slot>,
}

/// Checks that the PIN of every key is set.
pub fn check_pins(keys: &KeysOnCard, set: &BTreeSet<Slot>) -> Option<PinsSet> {
    keys.keys
        .keys()
        .all(|slot| set.contains(slot))
        .then(|| PinsSet { slots: set.clone() })
}

/// Each certificate the CA issued parses and certifies exactly the card's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertsMatchKeys {
    certs: BTreeMap<Slot, Vec<u8>>,
}

impl CertsMatchKeys {
    /// The slot's certificate (DER).
    pub fn cert(&self, slot: Slot) -> Option<&[u8]> {
        self.certs.get(&slot).map(Vec::as_slice)
    }

    /// The slots, in order.
    pub fn slots(&self) -> Vec<Slot> {
        self.certs.keys().copied().collect()
    }
}

/// Checks the CA's certificates against the card's keys: one per key, none extra, and
/// each one's SubjectPublicKeyInfo equal to the key the card generated.
pub fn check_certs(
    keys: &KeysOnCard,
    _pins: &PinsSet,
    issued: &[IssuedCert],
) -> Result<CertsMatchKeys, IssuanceError> {
    let mut certs = BTreeMap::new();
    for cert in issued {
        let Some(spki) = keys.spki(cert.slot) else {
            return Err(IssuanceError::CertDoesNotMatchKey { slot: cert.slot });
        };
        if certs.contains_key(&cert.slot) || cert_spki(&cert.der).as_deref() != Some(spki) {
            return Err(IssuanceError::CertDoesNotMatchKey { slot: cert.slot });
        }
        certs.insert(cert.slot, cert.der.clone());
    }
    if let Some(missing) = keys.keys.keys().find(|slot| !certs.contains_key(slot)) {
        return Err(IssuanceError::CertDoesNotMatchKey { slot: *missing });
    }
    Ok(CertsMatchKeys { certs })
}

/// The certificate's SubjectPublicKeyInfo, DER; `None` when it does not parse.
fn cert_spki(der: &[u8]) -> Option<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    cert.tbs_certificate.subject_public_key_info.to_der().ok()
}

/// The card adapter wrote every issued certificate. What the card really holds is
/// checked per slot by [`check_slot`], which reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertsWritten {
    certs: CertsMatchKeys,
}

impl CertsWritten {
    /// The slots, in order.
    pub fn slots(&self) -> Vec<Slot> {
        self.certs.slots()
    }
}

/// Every issued certificate has been written.
pub fn check_written(certs: &CertsMatchKeys, written: &BTreeSet<Slot>) -> Option<CertsWritten> {
    certs
        .certs
        .keys()
        .all(|slot| written.contains(slot))
        .then(|| CertsWritten {
            certs: certs.clone(),
        })
}

/// The challenge the card signs in the self-test, as the DigestInfo the card pads: the
/// SHA-256 of a label, the visit id, the slot and the visit's test nonce, so a signature
/// made for another visit or slot never passes.
pub fn self_test_digest_info(visit: &VisitId, slot: Slot, nonce: &[u8; 16]) -> Vec<u8> {
    let mut info = SHA256_DIGEST_INFO_PREFIX.to_vec();
    info.extend_from_slice(&self_test_digest(visit, slot, nonce));
    info
}

fn self_test_digest(visit: &VisitId, slot: Slot, nonce: &[u8; 16]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(SELF_TEST_LABEL);
    hash.update(visit.0.as_bytes());
    hash.update([0, slot.tag()]);
    hash.update(nonce);
    hash.finalize().into()
}

/// One slot passed the self-test: the certificate read back from the card is the one
/// issued, and the card's key signed this visit's challenge with a signature that
/// verifies against that certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureValid {
    slot: Slot,
}

/// Checks one slot's read-back and self-test signature (RSASSA-PKCS1-v1_5, SHA-256).
pub fn check_slot(
    written: &CertsWritten,
    visit: &VisitId,
    nonce: &[u8; 16],
    slot: Slot,
    read_back: &[u8],
    signature: &[u8],
) -> Result<SignatureValid, IssuanceError> {
    if written.certs.cert(slot) != Some(read_back) {
        return Err(IssuanceError::ReadBackMismatch { slot });
    }
    let failed = IssuanceError::SelfTestFailed { slot };
    let spki = cert_spki(read_back).ok_or_else(|| failed.clone())?;
    let key = RsaPublicKey::from_public_key_der(&spki).map_err(|_| failed.clone())?;
    let digest = self_test_digest(visit, slot, nonce);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
        .map_err(|_| failed)?;
    Ok(SignatureValid { slot })
}

/// The card holds the issued certificates, and each key signs and verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardVerified {
    slots: Vec<Slot>,
}

impl CardVerified {
    /// The verified slots, in order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
}

/// Every written certificate passed [`check_slot`].
pub fn card_verified(
    written: &CertsWritten,
    signatures: &BTreeMap<Slot, SignatureValid>,
) -> Option<CardVerified> {
    let slots = written.slots();
    slots
        .iter()
        .all(|slot| signatures.get(slot).is_some_and(|sig| sig.slot == *slot))
        .then_some(CardVerified { slots })
}

/// The CA acknowledged the certConf of this visit's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfirmed {
    transaction: TransactionId,
}

/// Accepts a pkiConf only for the visit's own transaction.
pub fn check_confirmed(expected: TransactionId, got: TransactionId) -> Option<CaConfirmed> {
    (expected == got).then_some(CaConfirmed { transaction: got })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuance::testkeys;

    fn serial() -> CardSerial {
        CardSerial("00".repeat(16))
    }

    #[test]
    fn keys_must_be_rsa_2048() {
        let wanted = BTreeSet::from([Slot::Auth]);
        let good = BTreeMap::from([(Slot::Auth, testkeys::spki(Slot::Auth))]);
        assert!(check_keys(&serial(), &wanted, &good).is_ok());
        let bad = BTreeMap::from([(Slot::Auth, vec![0x30, 0x00])]);
        assert_eq!(
            check_keys(&serial(), &wanted, &bad),
            Err(IssuanceError::BadPublicKey { slot: Slot::Auth })
        );
    }

    #[test]
    fn certs_must_certify_the_cards_keys() {
        let wanted = BTreeSet::from(Slot::ALL);
        let generated = Slot::ALL.map(|s| (s, testkeys::spki(s))).into();
        let keys = check_keys(&serial(), &wanted, &generated).unwrap();
        let pins = check_pins(&keys, &wanted).unwrap();
        let right: Vec<_> = Slot::ALL
            .iter()
            .map(|&slot| IssuedCert {
                slot,
                der: testkeys::cert(slot),
            })
            .collect();
        assert!(check_certs(&keys, &pins, &right).is_ok());
        // Swapped certificates: each certifies the other slot's key.
        let swapped: Vec<_> = Slot::ALL
            .iter()
            .zip(Slot::ALL.iter().rev())
            .map(|(&slot, &other)| IssuedCert {
                slot,
                der: testkeys::cert(other),
            })
            .collect();
        assert_eq!(
            check_certs(&keys, &pins, &swapped),
            Err(IssuanceError::CertDoesNotMatchKey { slot: Slot::Auth })
        );
        assert_eq!(
            check_certs(&keys, &pins, &right[..1]),
            Err(IssuanceError::CertDoesNotMatchKey { slot: Slot::Sign })
        );
    }

    #[test]
    fn self_test_signature_is_bound_to_visit_and_slot() {
        let wanted = BTreeSet::from([Slot::Sign]);
        let generated = BTreeMap::from([(Slot::Sign, testkeys::spki(Slot::Sign))]);
        let keys = check_keys(&serial(), &wanted, &generated).unwrap();
        let pins = check_pins(&keys, &wanted).unwrap();
        let issued = [IssuedCert {
            slot: Slot::Sign,
            der: testkeys::cert(Slot::Sign),
        }];
        let certs = check_certs(&keys, &pins, &issued).unwrap();
        let written = check_written(&certs, &BTreeSet::from([Slot::Sign])).unwrap();
        let read = testkeys::cert(Slot::Sign);
        let visit = VisitId("v1".into());
        let nonce = [7u8; 16];
        let info = self_test_digest_info(&visit, Slot::Sign, &nonce);
        let sig = testkeys::sign(Slot::Sign, &info);
        let valid = check_slot(&written, &visit, &nonce, Slot::Sign, &read, &sig).unwrap();
        let other_visit = VisitId("v2".into());
        assert_eq!(
            check_slot(&written, &other_visit, &nonce, Slot::Sign, &read, &sig),
            Err(IssuanceError::SelfTestFailed { slot: Slot::Sign })
        );
        assert!(card_verified(&written, &BTreeMap::new()).is_none());
        let verified = card_verified(&written, &BTreeMap::from([(Slot::Sign, valid)])).unwrap();
        assert_eq!(verified.slots(), &[Slot::Sign]);
    }

    #[test]
    fn torn_write_is_caught() {
        let wanted = BTreeSet::from([Slot::Auth]);
        let generated = BTreeMap::from([(Slot::Auth, testkeys::spki(Slot::Auth))]);
        let keys = check_keys(&serial(), &wanted, &generated).unwrap();
        let pins = check_pins(&keys, &wanted).unwrap();
        let issued = [IssuedCert {
            slot: Slot::Auth,
            der: testkeys::cert(Slot::Auth),
        }];
        let certs = check_certs(&keys, &pins, &issued).unwrap();
        assert!(check_written(&certs, &BTreeSet::new()).is_none());
        let written = check_written(&certs, &BTreeSet::from([Slot::Auth])).unwrap();
        let mut torn = testkeys::cert(Slot::Auth);
        torn.truncate(300);
        let visit = VisitId("v1".into());
        let info = self_test_digest_info(&visit, Slot::Auth, &[0; 16]);
        let sig = testkeys::sign(Slot::Auth, &info);
        assert_eq!(
            check_slot(&written, &visit, &[0; 16], Slot::Auth, &torn, &sig),
            Err(IssuanceError::ReadBackMismatch { slot: Slot::Auth })
        );
    }
}
