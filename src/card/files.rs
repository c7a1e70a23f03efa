//! Identifiers of the JPKI card application: the AID, its files and their PINs.
//!
//! Shared by the kiosk's card layer and the virtual card. Values are those every public
//! JPKI client uses (OpenSC `jpki.h`, jpki-rs, myna); see `docs/card-protocol.md` §1.

/// DF name of the JPKI application (JPKI-AP).
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];

/// The ATR in OpenSC's JPKI table. The kiosk never detects a card by it.
pub const ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// Token string of a My Number card (EF `0006`, space padded to 32 bytes).
pub const TOKEN_MY_NUMBER: &str = "JPKIAPICCTOKEN2";
/// Token string of an old Juki-net card, which the kiosk refuses.
pub const TOKEN_JUKI: &str = "JPKIAPICCTOKEN";
/// Token string of the smartphone (GP-SE) JPKI.
pub const TOKEN_SMARTPHONE: &str = "JPKIAPGPSETOKEN";
/// Length of the token EF.
pub const TOKEN_LEN: usize = 32;

/// File identifiers inside JPKI-AP.
pub mod fid {
    /// Token information.
    pub const TOKEN: u16 = 0x0006;
    /// User-authentication certificate (利用者証明用).
    pub const AUTH_CERT: u16 = 0x000A;
    /// User-authentication CA certificate.
    pub const AUTH_CA_CERT: u16 = 0x000B;
    /// Signing certificate (署名用); readable only after the signing password.
    pub const SIGN_CERT: u16 = 0x0001;
    /// Signing CA certificate.
    pub const SIGN_CA_CERT: u16 = 0x0002;
    /// User-authentication private key IEF.
    pub const AUTH_KEY: u16 = 0x0017;
    /// User-authentication PIN IEF (4 digits, 3 tries).
    pub const AUTH_PIN: u16 = 0x0018;
    /// Signing private key IEF.
    pub const SIGN_KEY: u16 = 0x001A;
    /// Signing password IEF (6-16 of A-Z/0-9, 5 tries).
    pub const SIGN_PIN: u16 = 0x001B;
}

/// Largest certificate a certificate EF holds.
pub const CERT_EF_CAPACITY: usize = 4096;

/// Tries a fresh auth PIN has.
pub const AUTH_PIN_TRIES: u8 = 3;
/// Tries a fresh signing password has.
pub const SIGN_PIN_TRIES: u8 = 5;
/// Tries the administration key has in a card's whole life.
pub const ADMIN_KEY_TRIES: u8 = 10;

/// Which of the two key pairs on the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySlot {
    /// User authentication (利用者証明用): key `0017`, PIN `0018`, certificate `000A`.
    Auth,
    /// Signing (署名用): key `001A`, password `001B`, certificate `0001`.
    Sign,
}

impl KeySlot {
    /// Both slots, auth first.
    pub const ALL: [KeySlot; 2] = [KeySlot::Auth, KeySlot::Sign];

    /// The private key IEF.
    pub fn key_fid(self) -> u16 {
        match self {
            KeySlot::Auth => fid::AUTH_KEY,
            KeySlot::Sign => fid::SIGN_KEY,
        }
    }

    /// The PIN IEF that guards the key.
    pub fn pin_fid(self) -> u16 {
        match self {
            KeySlot::Auth => fid::AUTH_PIN,
            KeySlot::Sign => fid::SIGN_PIN,
        }
    }

    /// The end-entity certificate EF.
    pub fn cert_fid(self) -> u16 {
        match self {
            KeySlot::Auth => fid::AUTH_CERT,
            KeySlot::Sign => fid::SIGN_CERT,
        }
    }

    /// The CA certificate EF.
    pub fn ca_cert_fid(self) -> u16 {
        match self {
            KeySlot::Auth => fid::AUTH_CA_CERT,
            KeySlot::Sign => fid::SIGN_CA_CERT,
        }
    }

    /// Tries the PIN has when full.
    pub fn pin_tries(self) -> u8 {
        match self {
            KeySlot::Auth => AUTH_PIN_TRIES,
            KeySlot::Sign => SIGN_PIN_TRIES,
        }
    }
}

/// Domain-separation label of the administration key diversification (§3.1).
pub const ADMIN_KDF_LABEL: &[u8] = b"JPKI-KIOSK ADMIN v1";
/// Length of the card serial returned by GET DATA `01 01`.
pub const SERIAL_LEN: usize = 16;
/// Length of the GET CHALLENGE answer and of the cryptogram.
pub const CHALLENGE_LEN: usize = 16;
