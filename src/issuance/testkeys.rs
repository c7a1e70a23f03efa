//! Test fixtures: two RSA-2048 key pairs with self-signed certificates, made once with
//! `openssl req -x509` and stored as DER, standing in for the card's keys and the CA's
//! certificates. Test code only; never a key of any real card or CA.

use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};

use super::model::Slot;

/// The slot's public key, SPKI DER.
pub fn spki(slot: Slot) -> Vec<u8> {
    match slot {
        Slot::Auth => include_bytes!("testdata/auth.spki.der").to_vec(),
        Slot::Sign => include_bytes!("testdata/sign.spki.der").to_vec(),
    }
}

/// A certificate for the slot's key, DER.
pub fn cert(slot: Slot) -> Vec<u8> {
    match slot {
        Slot::Auth => include_bytes!("testdata/auth.crt.der").to_vec(),
        Slot::Sign => include_bytes!("testdata/sign.crt.der").to_vec(),
    }
}

/// Signs a DigestInfo as the card does: PKCS#1 v1.5 type-1 padding around it.
pub fn sign(slot: Slot, digest_info: &[u8]) -> Vec<u8> {
    let der: &[u8] = match slot {
        Slot::Auth => include_bytes!("testdata/auth.key.der"),
        Slot::Sign => include_bytes!("testdata/sign.key.der"),
    };
    let key = RsaPrivateKey::from_pkcs8_der(der).expect("fixture key parses");
    key.sign(Pkcs1v15Sign::new_unprefixed(), digest_info)
        .expect("fixture key signs")
}
