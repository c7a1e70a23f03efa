//! The virtual card's persistent state on disk: one JSON file per card.
//!
//! The file is the card's EEPROM. It holds secrets (`K_card`, the private keys as PKCS#8
//! DER in hex, the salted PIN hashes), so it is created with mode 0600. It is saved
//! atomically — temporary file in the same directory, fsync, rename over, fsync of the
//! directory — so a crash or a pulled card leaves either the old or the new card, never a
//! torn one. Loading refuses anything it does not fully understand: a corrupt file is an
//! error, never silently replaced by a fresh card.
//!
//! This module does not decide *when* to save; the vpcd loop saves whenever the model
//! reports [`Effect::persist`](super::model::Effect).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand_core::CryptoRngCore;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::model::{CardKind, CardState, PinRecord, KEY_BITS, PIN_SALT_LEN};
use crate::card::files::{KeySlot, ADMIN_KEY_TRIES, CERT_EF_CAPACITY, SERIAL_LEN, TOKEN_LEN};

/// The state file format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file system refused (permissions, full disk, missing directory).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file exists but is not a valid card state (truncated, edited, foreign).
    #[error("{path} is not a valid virtual card state: {reason}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file was written by another version of `jpki-vcard`.
    #[error("{path} has state format {found}, this program reads format {FORMAT_VERSION}")]
    UnsupportedVersion {
        /// The file concerned.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
    },
    /// The state could not be serialised (a key the PKCS#8 encoder refused).
    #[error("cannot encode the card state: {0}")]
    Encode(String),
    /// A new card was asked for where a card already exists.
    #[error("{0} already exists; remove it first to make a new card")]
    AlreadyExists(PathBuf),
}

/// Where a card's state lives.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

/// On-disk layout, version 1. Byte strings are hex.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: u32,
    serial: String,
    card_key: Zeroizing<String>,
    admin_tries_left: u8,
    /// `null` for a card without JPKI-AP.
    token: Option<String>,
    pin_salt: String,
    auth_pin: PinV1,
    sign_pin: PinV1,
    ef_000a: String,
    ef_000b: String,
    ef_0001: String,
    ef_0002: String,
    /// PKCS#8 DER, hex.
    key_0017: Option<Zeroizing<String>>,
    key_001a: Option<Zeroizing<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinV1 {
    hash: Option<Zeroizing<String>>,
    tries_left: u8,
}

#[derive(Deserialize)]
struct VersionOnly {
    format: u32,
}

impl StateFile {
    /// The state at `path` (nothing is read yet).
    pub fn new(path: impl Into<PathBuf>) -> StateFile {
        StateFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file a save writes before renaming it over the state.
    pub fn temp_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }

    /// Whether the state file exists.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Reads the card. A missing file is an error here; see [`StateFile::load_or_create`].
    pub fn load(&self) -> Result<CardState, StateError> {
        let text = fs::read_to_string(&self.path).map_err(|e| self.io("read", e))?;
        let text = Zeroizing::new(text);
        let version: VersionOnly =
            serde_json::from_str(&text).map_err(|e| self.corrupt(e.to_string()))?;
        if version.format != FORMAT_VERSION {
            return Err(StateError::UnsupportedVersion {
                path: self.path.clone(),
                found: version.format,
            });
        }
        let file: FileV1 = serde_json::from_str(&text).map_err(|e| self.corrupt(e.to_string()))?;
        decode(file).map_err(|reason| self.corrupt(reason))
    }

    /// Reads the card, or makes and saves a factory-fresh My Number card when the file
    /// does not exist. Returns the state and whether it was just created.
    pub fn load_or_create(
        &self,
        master_key: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(CardState, bool), StateError> {
        match fs::symlink_metadata(&self.path) {
            Ok(_) => Ok((self.load()?, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let state = CardState::fresh_random(CardKind::MyNumber, master_key, rng);
                self.save(&state)?;
                Ok((state, true))
            }
            Err(e) => Err(self.io("stat", e)),
        }
    }

    /// Makes a new card file; refuses to overwrite an existing one.
    pub fn create(&self, state: &CardState) -> Result<(), StateError> {
        if fs::symlink_metadata(&self.path).is_ok() {
            return Err(StateError::AlreadyExists(self.path.clone()));
        }
        self.save(state)
    }

    /// Saves atomically: temp file, fsync, rename over, fsync the directory.
    pub fn save(&self, state: &CardState) -> Result<(), StateError> {
        let json = Zeroizing::new(
            serde_json::to_string_pretty(&encode(state)?)
                .map_err(|e| StateError::Encode(e.to_string()))?,
        );
        let temp = self.temp_path();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| self.io_at("create", &temp, e))?;
        f.write_all(json.as_bytes()).map_err(|e| self.io_at("write", &temp, e))?;
        f.write_all(b"\n").map_err(|e| self.io_at("write", &temp, e))?;
        f.sync_all().map_err(|e| self.io_at("fsync", &temp, e))?;
        drop(f);
        fs::rename(&temp, &self.path).map_err(|e| self.io("rename over", e))?;
        // The rename is durable only once the directory entry is.
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io_at("fsync directory", &dir, e))?;
        Ok(())
    }

    fn io(&self, op: &'static str, source: io::Error) -> StateError {
        self.io_at(op, &self.path, source)
    }

    fn io_at(&self, op: &'static str, path: &Path, source: io::Error) -> StateError {
        StateError::Io { op, path: path.to_path_buf(), source }
    }

    fn corrupt(&self, reason: String) -> StateError {
        StateError::Corrupt { path: self.path.clone(), reason }
    }
}

fn encode(state: &CardState) -> Result<FileV1, StateError> {
    let key = |k: &Option<RsaPrivateKey>| -> Result<Option<Zeroizing<String>>, StateError> {
        k.as_ref()
            .map(|k| {
                let der = k
                    .to_pkcs8_der()
                    .map_err(|e| StateError::Encode(format!("private key: {e}")))?;
                Ok(Zeroizing::new(hex::encode(der.as_bytes())))
            })
            .transpose()
    };
    let pin = |p: &PinRecord| PinV1 {
        hash: p.hash.as_ref().map(|h| Zeroizing::new(hex::encode(h.as_slice()))),
        tries_left: p.tries_left,
    };
    Ok(FileV1 {
        format: FORMAT_VERSION,
        serial: hex::encode_upper(state.serial),
        card_key: Zeroizing::new(hex::encode(state.card_key.as_slice())),
        admin_tries_left: state.admin_tries_left,
        token: state.token.map(hex::encode_upper),
        pin_salt: hex::encode(state.pin_salt),
        auth_pin: pin(&state.auth_pin),
        sign_pin: pin(&state.sign_pin),
        ef_000a: hex::encode(&state.auth_cert),
        ef_000b: hex::encode(&state.auth_ca_cert),
        ef_0001: hex::encode(&state.sign_cert),
        ef_0002: hex::encode(&state.sign_ca_cert),
        key_0017: key(&state.auth_key)?,
        key_001a: key(&state.sign_key)?,
    })
}

fn fixed<const N: usize>(field: &str, text: &str) -> Result<[u8; N], String> {
    let bytes = Zeroizing::new(hex::decode(text).map_err(|e| format!("{field}: {e}"))?);
    bytes.as_slice().try_into().map_err(|_| format!("{field}: {} bytes, expected {N}", bytes.len()))
}

fn decode(f: FileV1) -> Result<CardState, String> {
    let cert = |field: &str, text: &str| -> Result<Vec<u8>, String> {
        let c = hex::decode(text).map_err(|e| format!("{field}: {e}"))?;
        if c.len() > CERT_EF_CAPACITY {
            return Err(format!("{field}: {} bytes, more than the EF holds", c.len()));
        }
        Ok(c)
    };
    let pin = |field: &str, p: &PinV1, slot: KeySlot| -> Result<PinRecord, String> {
        if p.tries_left > slot.pin_tries() {
            return Err(format!(
                "{field}: {} tries left, at most {}",
                p.tries_left,
                slot.pin_tries()
            ));
        }
        let hash = match &p.hash {
            Some(h) => Some(Zeroizing::new(fixed::<32>(field, h)?)),
            None => None,
        };
        Ok(PinRecord { hash, tries_left: p.tries_left })
    };
    let key = |field: &str,
               k: &Option<Zeroizing<String>>|
     -> Result<Option<RsaPrivateKey>, String> {
        let Some(text) = k else { return Ok(None) };
        let der = Zeroizing::new(hex::decode(text.as_str()).map_err(|e| format!("{field}: {e}"))?);
        let key = RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| format!("{field}: {e}"))?;
        if key.size() * 8 != KEY_BITS {
            return Err(format!("{field}: a {}-bit key, expected {KEY_BITS}", key.size() * 8));
        }
        Ok(Some(key))
    };
    if f.admin_tries_left > ADMIN_KEY_TRIES {
        return Err(format!("admin_tries_left: {}, at most {ADMIN_KEY_TRIES}", f.admin_tries_left));
    }
    let token = match &f.token {
        Some(t) => Some(fixed::<TOKEN_LEN>("token", t)?),
        None => None,
    };
    Ok(CardState {
        serial: fixed::<SERIAL_LEN>("serial", &f.serial)?,
        card_key: Zeroizing::new(fixed::<32>("card_key", &f.card_key)?),
        admin_tries_left: f.admin_tries_left,
        token,
        pin_salt: fixed::<PIN_SALT_LEN>("pin_salt", &f.pin_salt)?,
        auth_pin: pin("auth_pin", &f.auth_pin, KeySlot::Auth)?,
        sign_pin: pin("sign_pin", &f.sign_pin, KeySlot::Sign)?,
        auth_cert: cert("ef_000a", &f.ef_000a)?,
        auth_ca_cert: cert("ef_000b", &f.ef_000b)?,
        sign_cert: cert("ef_0001", &f.ef_0001)?,
        sign_ca_cert: cert("ef_0002", &f.ef_0002)?,
        auth_key: key("key_0017", &f.key_0017)?,
        sign_key: key("key_001a", &f.key_001a)?,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use rand_core::OsRng;

    use super::*;
    use crate::card::admin_key::{self, DEMO_MASTER_KEY};

    fn sample() -> CardState {
        let mut s = CardState::fresh(CardKind::MyNumber, [7; 16], &DEMO_MASTER_KEY, &mut OsRng);
        s.auth_pin.hash = Some(s.pin_hash(KeySlot::Auth, b"1234"));
        s.auth_pin.tries_left = 2;
        s.sign_cert = vec![0x30, 0x82, 0x00, 0x01, 0x05];
        s.admin_tries_left = 9;
        s
    }

    fn same(a: &CardState, b: &CardState) {
        assert_eq!(a.serial, b.serial);
        assert_eq!(*a.card_key, *b.card_key);
        assert_eq!(a.admin_tries_left, b.admin_tries_left);
        assert_eq!(a.token, b.token);
        assert_eq!(a.pin_salt, b.pin_salt);
        assert_eq!(a.auth_pin, b.auth_pin);
        assert_eq!(a.sign_pin, b.sign_pin);
        assert_eq!(
            (&a.auth_cert, &a.auth_ca_cert, &a.sign_cert, &a.sign_ca_cert),
            (&b.auth_cert, &b.auth_ca_cert, &b.sign_cert, &b.sign_ca_cert)
        );
        assert_eq!(a.auth_key, b.auth_key);
        assert_eq!(a.sign_key, b.sign_key);
    }

    #[test]
    fn round_trip_with_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("card.json"));
        let mut s = sample();
        s.sign_key = Some(RsaPrivateKey::new(&mut OsRng, 2048).unwrap());
        file.save(&s).unwrap();
        same(&file.load().unwrap(), &s);
        let mode = fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds keys");
        assert!(!file.temp_path().exists());
    }

    #[test]
    fn missing_file_makes_a_fresh_card_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("new.json"));
        let (a, created) = file.load_or_create(&DEMO_MASTER_KEY, &mut OsRng).unwrap();
        assert!(created);
        assert_eq!(*a.card_key, *admin_key::card_key(&DEMO_MASTER_KEY, &a.serial));
        assert_eq!(a.token, CardKind::MyNumber.token());
        assert!(a.auth_pin.hash.is_none() && a.sign_key.is_none() && a.auth_cert.is_empty());
        let (b, created) = file.load_or_create(&DEMO_MASTER_KEY, &mut OsRng).unwrap();
        assert!(!created);
        same(&a, &b);
    }

    #[test]
    fn create_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("c.json"));
        file.create(&sample()).unwrap();
        assert!(matches!(file.create(&sample()), Err(StateError::AlreadyExists(_))));
    }

    #[test]
    fn corrupt_files_are_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("card.json"));
        file.save(&sample()).unwrap();
        let good = fs::read_to_string(file.path()).unwrap();
        let cases = [
            good[..good.len() / 2].to_string(),
            String::new(),
            good.replace("\"admin_tries_left\": 9", "\"admin_tries_left\": 11"),
            good.replace("\"tries_left\": 2", "\"tries_left\": 4"),
            good.replace("\"format\": 1", "\"format\": 1, \"extra\": 0"),
            good.replace(&hex::encode_upper([7u8; 16]), "0707"),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_ne!(text, &good, "case {i} must change the file");
            fs::write(file.path(), text).unwrap();
            let err = file.load().unwrap_err();
            assert!(matches!(err, StateError::Corrupt { .. }), "case {i}: {err}");
            assert!(file.load_or_create(&DEMO_MASTER_KEY, &mut OsRng).is_err(), "case {i}");
            assert_eq!(&fs::read_to_string(file.path()).unwrap(), text, "case {i} left as it was");
        }
        fs::write(file.path(), good.replace("\"format\": 1", "\"format\": 2")).unwrap();
        assert!(matches!(file.load(), Err(StateError::UnsupportedVersion { found: 2, .. })));
    }

    #[test]
    fn torn_save_leaves_the_old_card() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("card.json"));
        let old = sample();
        file.save(&old).unwrap();
        // A save that died after writing half its temp file: the state is untouched.
        fs::write(file.temp_path(), b"{\"format\": 1, \"serial\": \"07").unwrap();
        same(&file.load().unwrap(), &old);
        // The next save writes over the leftover temp file.
        let mut new = old.clone();
        new.admin_tries_left = 3;
        file.save(&new).unwrap();
        same(&file.load().unwrap(), &new);
        assert!(!file.temp_path().exists());
    }

    #[test]
    fn no_jpki_card_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("none.json"));
        let s = CardState::fresh(CardKind::NoJpki, [1; 16], b"other master", &mut OsRng);
        file.save(&s).unwrap();
        let back = file.load().unwrap();
        assert_eq!(back.token, None);
        same(&back, &s);
    }
}
