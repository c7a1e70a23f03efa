//! The two JPKI secrets a resident chooses: the 4-digit user-authentication PIN and the
//! 6–16 character signing password.
//!
//! Both are zeroizing newtypes: the bytes are wiped on drop, there is no `Clone`, `Copy`
//! or `Display`, and `Debug` prints only a placeholder. Constructors check the format the
//! card enforces (`docs/card-protocol.md` §3.3) and say what is wrong without echoing
//! the input. This module is not a PIN policy (weak-PIN rules belong to `rules`) and
//! never talks to a card.

use std::fmt;

use zeroize::Zeroizing;

use super::files::KeySlot;

/// Why a string is not an acceptable PIN or password. Never contains the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinFormatError {
    /// The auth PIN must be exactly 4 characters.
    #[error("the PIN must be exactly 4 digits (got {0} characters)")]
    AuthLength(usize),
    /// The auth PIN may hold only the digits 0–9.
    #[error("the PIN may contain only digits 0-9")]
    AuthNotDigits,
    /// The signing password must be 6 to 16 characters.
    #[error("the signing password must be 6 to 16 characters (got {0})")]
    SignLength(usize),
    /// The signing password may hold only A–Z and 0–9 (lower case is accepted and upper-cased).
    #[error("the signing password may contain only letters A-Z and digits 0-9")]
    SignCharacters,
    /// The signing password needs at least one letter.
    #[error("the signing password needs at least one letter")]
    SignNoLetter,
    /// The signing password needs at least one digit.
    #[error("the signing password needs at least one digit")]
    SignNoDigit,
}

/// The user-authentication PIN (利用者証明用電子証明書の暗証番号): exactly 4 digits.
pub struct AuthPin(Zeroizing<Vec<u8>>);

impl AuthPin {
    /// Checks and takes a PIN as typed.
    pub fn new(pin: &str) -> Result<AuthPin, PinFormatError> {
        let n = pin.chars().count();
        if n != 4 {
            return Err(PinFormatError::AuthLength(n));
        }
        if !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinFormatError::AuthNotDigits);
        }
        Ok(AuthPin(Zeroizing::new(pin.as_bytes().to_vec())))
    }

    /// The ASCII bytes sent to the card (VERIFY, no padding).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AuthPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthPin(<redacted>)")
    }
}

/// The signing password (署名用電子証明書のパスワード): 6–16 of A–Z and 0–9, with at least
/// one letter and one digit. Lower-case letters are upper-cased, as counter terminals do.
pub struct SigningPassword(Zeroizing<Vec<u8>>);

impl SigningPassword {
    /// Checks and takes a password as typed.
    pub fn new(password: &str) -> Result<SigningPassword, PinFormatError> {
        let n = password.chars().count();
        if !(6..=16).contains(&n) {
            return Err(PinFormatError::SignLength(n));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(n));
        for c in password.chars() {
            if !c.is_ascii_alphanumeric() {
                return Err(PinFormatError::SignCharacters);
            }
            bytes.push(c.to_ascii_uppercase() as u8);
        }
        if !bytes.iter().any(u8::is_ascii_uppercase) {
            return Err(PinFormatError::SignNoLetter);
        }
        if !bytes.iter().any(u8::is_ascii_digit) {
            return Err(PinFormatError::SignNoDigit);
        }
        Ok(SigningPassword(bytes))
    }

    /// The ASCII bytes sent to the card (VERIFY, no padding).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningPassword(<redacted>)")
    }
}

/// Either secret, tied to the key slot whose PIN IEF it opens, so an auth PIN can never
/// be sent to the signing password's IEF by mistake.
pub trait PinSecret {
    /// The key pair this secret guards.
    const SLOT: KeySlot;
    /// The ASCII bytes the card compares.
    fn pin_bytes(&self) -> &[u8];
}

impl PinSecret for AuthPin {
    const SLOT: KeySlot = KeySlot::Auth;
    fn pin_bytes(&self) -> &[u8] {
        self.expose()
    }
}

impl PinSecret for SigningPassword {
    const SLOT: KeySlot = KeySlot::Sign;
    fn pin_bytes(&self) -> &[u8] {
        self.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_pin_format() {
        assert!(AuthPin::new("0000").is_ok());
        assert_eq!(AuthPin::new("123").unwrap_err(), PinFormatError::AuthLength(3));
        assert_eq!(AuthPin::new("12345").unwrap_err(), PinFormatError::AuthLength(5));
        assert_eq!(AuthPin::new("12a4").unwrap_err(), PinFormatError::AuthNotDigits);
        // Full-width digits are 4 characters but not ASCII digits.
        assert_eq!(AuthPin::new("１２３４").unwrap_err(), PinFormatError::AuthNotDigits);
        assert_eq!(AuthPin::new("1234").unwrap().expose(), b"1234");
    }

    #[test]
    fn signing_password_format() {
        assert_eq!(SigningPassword::new("jpki2026").unwrap().expose(), b"JPKI2026");
        assert_eq!(SigningPassword::new("A1B2C").unwrap_err(), PinFormatError::SignLength(5));
        assert_eq!(
            SigningPassword::new("A1234567890123456").unwrap_err(),
            PinFormatError::SignLength(17)
        );
        assert!(SigningPassword::new("A123456789012345").is_ok());
        assert_eq!(SigningPassword::new("ABCDEF").unwrap_err(), PinFormatError::SignNoDigit);
        assert_eq!(SigningPassword::new("123456").unwrap_err(), PinFormatError::SignNoLetter);
        assert_eq!(SigningPassword::new("ABC-123").unwrap_err(), PinFormatError::SignCharacters);
        assert_eq!(SigningPassword::new("ＡBC123").unwrap_err(), PinFormatError::SignCharacters);
    }

    #[test]
    fn debug_and_errors_never_echo_the_secret() {
        let p = AuthPin::new("4711").unwrap();
        let s = SigningPassword::new("SECRET99").unwrap();
        let shown = format!("{p:?} {s:?}");
        assert!(!shown.contains("4711") && !shown.contains("SECRET99"), "{shown}");
        let e = SigningPassword::new("SECRET!9").unwrap_err().to_string();
        assert!(!e.contains("SECRET"), "{e}");
    }
}
