//! The issuer's administration key (stand-in, `docs/card-protocol.md` §3.1).
//!
//! A card is manufactured holding only its own diversified key; the kiosk holds the
//! master key and derives the card's key from the card serial. Both sides compute the
//! same cryptogram over the card's challenge, so no key ever crosses the interface.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::files::{ADMIN_KDF_LABEL, CHALLENGE_LEN, SERIAL_LEN};

type HmacSha256 = Hmac<Sha256>;

/// The demo and test master key. `jpki-vcard` and the kiosk use it unless told otherwise;
/// a real deployment's master key lives in the municipality's key store.
pub const DEMO_MASTER_KEY: [u8; 32] = *b"jpki-kiosk demo master key (v1)!";

/// A card's diversified administration key: HMAC-SHA256(master, label ‖ serial).
pub fn card_key(master: &[u8], serial: &[u8; SERIAL_LEN]) -> Zeroizing<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(master).expect("HMAC takes keys of any length");
    mac.update(ADMIN_KDF_LABEL);
    mac.update(serial);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The EXTERNAL AUTHENTICATE cryptogram: the first 16 bytes of
/// HMAC-SHA256(card key, challenge ‖ serial).
pub fn cryptogram(
    card_key: &[u8; 32],
    challenge: &[u8; CHALLENGE_LEN],
    serial: &[u8; SERIAL_LEN],
) -> [u8; CHALLENGE_LEN] {
    let mut mac = HmacSha256::new_from_slice(card_key).expect("HMAC takes keys of any length");
    mac.update(challenge);
    mac.update(serial);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; CHALLENGE_LEN];
    out.copy_from_slice(&full[..CHALLENGE_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_card_and_cryptograms_per_challenge() {
        let a = card_key(&DEMO_MASTER_KEY, &[1; 16]);
        let b = card_key(&DEMO_MASTER_KEY, &[2; 16]);
        assert_ne!(*a, *b);
        let c1 = cryptogram(&a, &[7; 16], &[1; 16]);
        let c2 = cryptogram(&a, &[8; 16], &[1; 16]);
        assert_ne!(c1, c2);
        assert_eq!(c1, cryptogram(&a, &[7; 16], &[1; 16]));
    }

    #[test]
    fn master_key_matters() {
        let a = card_key(&DEMO_MASTER_KEY, &[1; 16]);
        let b = card_key(b"another master key", &[1; 16]);
        assert_ne!(*a, *b);
    }
}

/// An issuer master key held in memory: zeroized on drop, never printed.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<Vec<u8>>);

impl MasterKey {
    /// Wraps key bytes.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> MasterKey {
        MasterKey(bytes)
    }

    /// The demo and test key ([`DEMO_MASTER_KEY`]).
    pub fn demo() -> MasterKey {
        MasterKey(Zeroizing::new(DEMO_MASTER_KEY.to_vec()))
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}
