//! Staff passphrases: a zeroizing newtype, and their slow hash (Argon2id).
//!
//! Parameters (RFC 9106 Argon2id, version 0x13): 19 MiB of memory, 2 passes, 1 lane, a
//! 16-byte random salt from the OS, a 32-byte tag; stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). These are OWASP's recommended minimum
//! for Argon2id; on the appliance one hash takes some tens of milliseconds, which is nothing
//! at a sign-in and makes guessing a stolen database slow. The parameters are stored with
//! each hash, so raising them later still verifies old hashes.
//!
//! This module never logs, prints or stores a passphrase: `Debug` shows only its length
//! class, and the bytes are wiped on drop.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// Argon2 memory cost in KiB (19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Argon2 passes.
pub const T_COST: u32 = 2;
/// Argon2 lanes.
pub const P_COST: u32 = 1;

/// Fewest characters in a passphrase.
pub const MIN_CHARS: usize = 12;
/// Most characters in a passphrase (bounds the hashing work an input can ask for).
pub const MAX_CHARS: usize = 128;

/// A staff member's passphrase. Not `Clone`; wiped on drop; `Debug` shows nothing of it.
pub struct Passphrase(Zeroizing<String>);

/// A passphrase shorter than [`MIN_CHARS`] or longer than [`MAX_CHARS`] characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a passphrase has {MIN_CHARS} to {MAX_CHARS} characters")]
pub struct BadPassphrase;

impl Passphrase {
    /// Takes ownership of the typed text (so no copy is left behind) and checks its length.
    pub fn new(text: String) -> Result<Passphrase, BadPassphrase> {
        let text = Zeroizing::new(text);
        let n = text.chars().count();
        if (MIN_CHARS..=MAX_CHARS).contains(&n) {
            Ok(Passphrase(text))
        } else {
            Err(BadPassphrase)
        }
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

fn argon2() -> Result<Argon2<'static>, argon2::Error> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a passphrase with a fresh salt into a PHC string.
pub(crate) fn hash(pass: &Passphrase) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    let hasher = argon2().map_err(argon2::password_hash::Error::from)?;
    Ok(hasher.hash_password(pass.bytes(), &salt)?.to_string())
}

/// Whether `pass` matches the stored PHC string; `Err` when the string is unreadable.
pub(crate) fn matches(pass: &Passphrase, phc: &str) -> Result<bool, argon2::password_hash::Error> {
    let parsed = PasswordHash::new(phc)?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(argon2::password_hash::Error::Algorithm);
    }
    // The parameters come from the stored string, so old hashes keep verifying.
    match Argon2::default().verify_password(pass.bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Spends the time of one verification, for an unknown operator id: a sign-in must not
/// tell by its speed whether an id exists.
pub(crate) fn waste_one_check(pass: &Passphrase) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let p = Passphrase::new("timing-equaliser-only".to_owned()).ok()?;
        hash(&p).ok()
    });
    if let Some(phc) = dummy {
        let _ = matches(pass, phc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.to_owned()).unwrap()
    }

    #[test]
    fn length_is_checked_in_characters() {
        assert!(Passphrase::new("short".into()).is_err());
        assert!(Passphrase::new("x".repeat(129)).is_err());
        // 12 characters of 3 bytes each.
        assert!(Passphrase::new("あいうえおかきくけこさし".into()).is_ok());
        assert!(Passphrase::new("あいうえおかきくけこさ".into()).is_err());
    }

    #[test]
    fn debug_shows_nothing() {
        let p = pass("correct horse battery");
        assert_eq!(format!("{p:?}"), "Passphrase(<redacted>)");
    }

    #[test]
    fn hashes_are_salted_argon2id_with_the_documented_parameters() {
        let p = pass("correct horse battery");
        let started = std::time::Instant::now();
        let a = hash(&p).unwrap();
        eprintln!("one Argon2id hash: {:?}", started.elapsed());
        let b = hash(&p).unwrap();
        assert_ne!(a, b, "salts must differ");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(!a.contains("correct"));
        assert!(matches(&p, &a).unwrap());
        assert!(!matches(&pass("correct horse batterx"), &a).unwrap());
        assert!(matches(&p, "not a phc string").is_err());
    }
}
