//! The virtual card's behaviour: one command APDU in, one response APDU out.
//!
//! [`VirtualCard`] answers exactly as `docs/card-protocol.md` specifies, for the public
//! JPKI-AP (§2) and for this project's issuance stand-in (§3). It is sans-I/O: it never
//! touches a socket or a file. The caller feeds it raw C-APDU bytes and power events and
//! gets back the R-APDU plus an [`Effect`] saying whether the persistent part
//! ([`CardState`]) changed, so that it can be saved before the reply leaves the card —
//! a pulled card must never have answered `90 00` for a change it then forgot.
//!
//! It is not a general ISO 7816 file system: there is one application with a fixed set of
//! files, no FCI, no secure messaging and no logical channels.

use std::fmt;

use rand_core::{CryptoRngCore, OsRng};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::card::admin_key;
use crate::card::apdu::{Command, StatusWord};
use crate::card::files::{
    fid, KeySlot, ADMIN_KEY_TRIES, CERT_EF_CAPACITY, CHALLENGE_LEN, JPKI_AID, SERIAL_LEN,
    TOKEN_JUKI, TOKEN_LEN, TOKEN_MY_NUMBER,
};

/// Size in bits of the keys the card generates.
pub const KEY_BITS: usize = 2048;
/// Length of the public key data object returned by GENERATE (§3.2).
pub const PUBLIC_KEY_DO_LEN: usize = 270;
/// Length of the per-card PIN salt.
pub const PIN_SALT_LEN: usize = 16;

/// Which JPKI application, if any, the card carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardKind {
    /// A My Number card: token `JPKIAPICCTOKEN2`.
    MyNumber,
    /// A Juki-net era card: token `JPKIAPICCTOKEN` (the kiosk refuses it).
    Juki,
    /// A card without JPKI-AP: SELECT of the AID answers `6A 82`.
    NoJpki,
}

impl CardKind {
    /// The 32-byte token EF content, `None` when the card has no JPKI application.
    pub fn token(self) -> Option<[u8; TOKEN_LEN]> {
        let text = match self {
            CardKind::MyNumber => TOKEN_MY_NUMBER,
            CardKind::Juki => TOKEN_JUKI,
            CardKind::NoJpki => return None,
        };
        let mut token = [b' '; TOKEN_LEN];
        token[..text.len()].copy_from_slice(text.as_bytes());
        Some(token)
    }
}

/// One PIN IEF: a salted SHA-256 of the PIN (never the PIN) and its try counter.
#[derive(Clone, PartialEq, Eq)]
pub struct PinRecord {
    /// `SHA-256(salt ‖ FID ‖ PIN)`, `None` while the PIN was never set.
    pub hash: Option<Zeroizing<[u8; 32]>>,
    /// Tries left; 0 = blocked.
    pub tries_left: u8,
}

impl fmt::Debug for PinRecord {
    // The hash is a secret (a 4-digit PIN falls to a brute force of its salted hash).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinRecord {{ set: {}, tries_left: {} }}", self.hash.is_some(), self.tries_left)
    }
}

/// Everything the card remembers across power cycles: what `state.rs` saves.
#[derive(Clone)]
pub struct CardState {
    /// Card serial (GET DATA `01 01`).
    pub serial: [u8; SERIAL_LEN],
    /// The diversified administration key `K_card` (§3.1).
    pub card_key: Zeroizing<[u8; 32]>,
    /// EXTERNAL AUTHENTICATE tries left in the card's life.
    pub admin_tries_left: u8,
    /// Token EF `0006`; `None` = no JPKI application on the card.
    pub token: Option<[u8; TOKEN_LEN]>,
    /// Salt of both PIN hashes, random per card.
    pub pin_salt: [u8; PIN_SALT_LEN],
    /// Auth PIN (`0018`).
    pub auth_pin: PinRecord,
    /// Signing password (`001B`).
    pub sign_pin: PinRecord,
    /// EF `000A`.
    pub auth_cert: Vec<u8>,
    /// EF `000B`.
    pub auth_ca_cert: Vec<u8>,
    /// EF `0001`.
    pub sign_cert: Vec<u8>,
    /// EF `0002`.
    pub sign_ca_cert: Vec<u8>,
    /// Key IEF `0017`.
    pub auth_key: Option<RsaPrivateKey>,
    /// Key IEF `001A`.
    pub sign_key: Option<RsaPrivateKey>,
}

impl CardState {
    /// A factory-fresh card: given serial, `K_card` derived from `master_key`, no keys,
    /// no certificates, PINs not set, a random PIN salt.
    pub fn fresh(
        kind: CardKind,
        serial: [u8; SERIAL_LEN],
        master_key: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> CardState {
        let mut pin_salt = [0u8; PIN_SALT_LEN];
        rng.fill_bytes(&mut pin_salt);
        CardState {
            serial,
            card_key: admin_key::card_key(master_key, &serial),
            admin_tries_left: ADMIN_KEY_TRIES,
            token: kind.token(),
            pin_salt,
            auth_pin: PinRecord { hash: None, tries_left: KeySlot::Auth.pin_tries() },
            sign_pin: PinRecord { hash: None, tries_left: KeySlot::Sign.pin_tries() },
            auth_cert: Vec::new(),
            auth_ca_cert: Vec::new(),
            sign_cert: Vec::new(),
            sign_ca_cert: Vec::new(),
            auth_key: None,
            sign_key: None,
        }
    }

    /// A fresh card with a random serial.
    pub fn fresh_random(
        kind: CardKind,
        master_key: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> CardState {
        let mut serial = [0u8; SERIAL_LEN];
        rng.fill_bytes(&mut serial);
        CardState::fresh(kind, serial, master_key, rng)
    }

    /// The PIN record of a slot.
    pub fn pin(&self, slot: KeySlot) -> &PinRecord {
        match slot {
            KeySlot::Auth => &self.auth_pin,
            KeySlot::Sign => &self.sign_pin,
        }
    }

    fn pin_mut(&mut self, slot: KeySlot) -> &mut PinRecord {
        match slot {
            KeySlot::Auth => &mut self.auth_pin,
            KeySlot::Sign => &mut self.sign_pin,
        }
    }

    /// The private key of a slot, if generated.
    pub fn key(&self, slot: KeySlot) -> Option<&RsaPrivateKey> {
        match slot {
            KeySlot::Auth => self.auth_key.as_ref(),
            KeySlot::Sign => self.sign_key.as_ref(),
        }
    }

    fn key_mut(&mut self, slot: KeySlot) -> &mut Option<RsaPrivateKey> {
        match slot {
            KeySlot::Auth => &mut self.auth_key,
            KeySlot::Sign => &mut self.sign_key,
        }
    }

    /// The content of a certificate EF; `None` for any other FID.
    pub fn cert(&self, fid: u16) -> Option<&Vec<u8>> {
        match fid {
            fid::AUTH_CERT => Some(&self.auth_cert),
            fid::AUTH_CA_CERT => Some(&self.auth_ca_cert),
            fid::SIGN_CERT => Some(&self.sign_cert),
            fid::SIGN_CA_CERT => Some(&self.sign_ca_cert),
            _ => None,
        }
    }

    fn cert_mut(&mut self, fid: u16) -> Option<&mut Vec<u8>> {
        match fid {
            fid::AUTH_CERT => Some(&mut self.auth_cert),
            fid::AUTH_CA_CERT => Some(&mut self.auth_ca_cert),
            fid::SIGN_CERT => Some(&mut self.sign_cert),
            fid::SIGN_CA_CERT => Some(&mut self.sign_ca_cert),
            _ => None,
        }
    }

    /// The salted hash the card stores for `pin` in `slot`.
    pub fn pin_hash(&self, slot: KeySlot, pin: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut h = Sha256::new();
        h.update(self.pin_salt);
        h.update(slot.pin_fid().to_be_bytes());
        h.update(pin);
        Zeroizing::new(h.finalize().into())
    }
}

impl fmt::Debug for CardState {
    // Never the keys, K_card or the PIN hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardState")
            .field("serial", &hex::encode_upper(self.serial))
            .field("admin_tries_left", &self.admin_tries_left)
            .field("jpki_ap", &self.token.is_some())
            .field("auth_pin", &self.auth_pin)
            .field("sign_pin", &self.sign_pin)
            .field("auth_cert_len", &self.auth_cert.len())
            .field("auth_ca_cert_len", &self.auth_ca_cert.len())
            .field("sign_cert_len", &self.sign_cert.len())
            .field("sign_ca_cert_len", &self.sign_ca_cert.len())
            .field("auth_key", &self.auth_key.is_some())
            .field("sign_key", &self.sign_key.is_some())
            .finish()
    }
}

/// A power event from the reader (vpcd control bytes `00`, `01`, `02`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerEvent {
    /// Power off (or the card left the reader).
    Off,
    /// Power on.
    On,
    /// Warm reset.
    Reset,
}

/// What executing one APDU did beyond the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Effect {
    /// The persistent state changed: save it before sending the reply.
    pub persist: bool,
    /// The slow operation the card performed, for timing profiles.
    pub operation: Operation,
}

/// Operations that take a real card noticeable time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operation {
    /// Anything fast.
    #[default]
    Plain,
    /// An on-card RSA key pair generation.
    KeyGeneration,
    /// An RSA private-key signature.
    Signature,
}

/// What the current EF selection points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selected {
    Token,
    Cert(u16),
    Key(KeySlot),
    Pin(KeySlot),
}

impl Selected {
    fn from_fid(f: u16) -> Option<Selected> {
        Some(match f {
            fid::TOKEN => Selected::Token,
            fid::AUTH_CERT | fid::AUTH_CA_CERT | fid::SIGN_CERT | fid::SIGN_CA_CERT => {
                Selected::Cert(f)
            }
            fid::AUTH_KEY => Selected::Key(KeySlot::Auth),
            fid::SIGN_KEY => Selected::Key(KeySlot::Sign),
            fid::AUTH_PIN => Selected::Pin(KeySlot::Auth),
            fid::SIGN_PIN => Selected::Pin(KeySlot::Sign),
            _ => return None,
        })
    }
}

/// Security and selection state; lost on every power event.
#[derive(Default)]
struct Volatile {
    app_selected: bool,
    selected: Option<Selected>,
    auth_verified: bool,
    sign_verified: bool,
    admin: bool,
    challenge: Option<[u8; CHALLENGE_LEN]>,
    pending: Option<Zeroizing<Vec<u8>>>,
}

impl Volatile {
    fn verified(&self, slot: KeySlot) -> bool {
        match slot {
            KeySlot::Auth => self.auth_verified,
            KeySlot::Sign => self.sign_verified,
        }
    }

    fn set_verified(&mut self, slot: KeySlot, v: bool) {
        match slot {
            KeySlot::Auth => self.auth_verified = v,
            KeySlot::Sign => self.sign_verified = v,
        }
    }
}

/// The virtual JPKI card: persistent [`CardState`] plus the session state.
pub struct VirtualCard {
    state: CardState,
    vol: Volatile,
}

impl fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualCard")
            .field("state", &self.state)
            .field("app_selected", &self.vol.app_selected)
            .field("selected", &self.vol.selected)
            .field("auth_verified", &self.vol.auth_verified)
            .field("sign_verified", &self.vol.sign_verified)
            .field("admin", &self.vol.admin)
            .finish_non_exhaustive()
    }
}

/// ISO 7816-4 instruction bytes the card knows.
mod ins {
    pub const ERASE_BINARY: u8 = 0x0E;
    pub const VERIFY: u8 = 0x20;
    pub const CHANGE_REFERENCE_DATA: u8 = 0x24;
    pub const RESET_RETRY_COUNTER: u8 = 0x2C;
    pub const COMPUTE_SIGNATURE: u8 = 0x2A;
    pub const GENERATE_KEY_PAIR: u8 = 0x47;
    pub const EXTERNAL_AUTHENTICATE: u8 = 0x82;
    pub const GET_CHALLENGE: u8 = 0x84;
    pub const SELECT: u8 = 0xA4;
    pub const READ_BINARY: u8 = 0xB0;
    pub const GET_RESPONSE: u8 = 0xC0;
    pub const GET_DATA: u8 = 0xCA;
    pub const UPDATE_BINARY: u8 = 0xD6;
}

type Answer = (Vec<u8>, StatusWord);

fn sw(s: StatusWord) -> Answer {
    (Vec::new(), s)
}

impl VirtualCard {
    /// A card holding `state`, with an empty session (nothing selected or verified).
    pub fn new(state: CardState) -> VirtualCard {
        VirtualCard { state, vol: Volatile::default() }
    }

    /// The persistent state (to save, or to inspect in tests).
    pub fn state(&self) -> &CardState {
        &self.state
    }

    /// Gives the persistent state back.
    pub fn into_state(self) -> CardState {
        self.state
    }

    /// A power event: every session state (selection, verified PINs, administrative
    /// authentication, challenge, pending GET RESPONSE data) is lost.
    pub fn power(&mut self, _event: PowerEvent) {
        self.vol = Volatile::default();
    }

    /// Executes one command APDU and returns the response APDU (data ‖ SW1 SW2).
    ///
    /// `rng` supplies challenges and RSA blinding; key pairs always come from the
    /// operating system's generator.
    pub fn process(&mut self, apdu: &[u8], rng: &mut impl CryptoRngCore) -> (Vec<u8>, Effect) {
        let mut effect = Effect::default();
        // A challenge is good for the very next APDU only; pending GET RESPONSE data
        // likewise survives only until the next command.
        let challenge = self.vol.challenge.take();
        let pending = self.vol.pending.take();
        let (mut data, status) = match Command::parse(apdu) {
            Err(e) => sw(e.status_word()),
            Ok(cmd) => self.dispatch(&cmd, challenge, pending, rng, &mut effect),
        };
        data.extend_from_slice(&status.0.to_be_bytes());
        (data, effect)
    }

    fn dispatch(
        &mut self,
        cmd: &Command,
        challenge: Option<[u8; CHALLENGE_LEN]>,
        pending: Option<Zeroizing<Vec<u8>>>,
        rng: &mut impl CryptoRngCore,
        effect: &mut Effect,
    ) -> Answer {
        match (cmd.cla, cmd.ins) {
            (0x00, ins::SELECT) => self.select(cmd),
            (0x00, ins::READ_BINARY) => self.read_binary(cmd),
            (0x00, ins::VERIFY) => self.verify(cmd, effect),
            (0x00, ins::CHANGE_REFERENCE_DATA) => self.change_reference_data(cmd, effect),
            (0x80, ins::COMPUTE_SIGNATURE) => self.compute_signature(cmd, rng, effect),
            (0x00, ins::GET_DATA) => self.get_data(cmd),
            (0x00, ins::GET_CHALLENGE) => self.get_challenge(cmd, rng),
            (0x00, ins::EXTERNAL_AUTHENTICATE) => {
                self.external_authenticate(cmd, challenge, effect)
            }
            (0x00, ins::GENERATE_KEY_PAIR) => self.generate(cmd, effect),
            (0x00, ins::GET_RESPONSE) => self.get_response(cmd, pending),
            (0x00, ins::RESET_RETRY_COUNTER) => self.reset_retry_counter(cmd, effect),
            (0x00, ins::UPDATE_BINARY) => self.update_binary(cmd, effect),
            (0x00, ins::ERASE_BINARY) => self.erase_binary(cmd, effect),
            (0x00 | 0x80, _) => sw(StatusWord::INS_NOT_SUPPORTED),
            _ => sw(StatusWord::CLA_NOT_SUPPORTED),
        }
    }

    /// Answers `data` within `le`, keeping the rest for GET RESPONSE (`61 xx`).
    fn respond(&mut self, mut data: Vec<u8>, le: Option<u16>) -> Answer {
        let le = usize::from(le.unwrap_or(256));
        if data.len() <= le {
            return (data, StatusWord::OK);
        }
        let rest = Zeroizing::new(data.split_off(le));
        let status = StatusWord::more_data(rest.len());
        self.vol.pending = Some(rest);
        (data, status)
    }

    // --- §2 public JPKI-AP -------------------------------------------------------------

    fn select(&mut self, cmd: &Command) -> Answer {
        match cmd.p1 {
            0x04 => {
                if self.state.token.is_none() || cmd.data.as_slice() != JPKI_AID {
                    // Foreign probes (OpenSC tries ~20 AIDs) must leave our state alone.
                    return sw(StatusWord::FILE_NOT_FOUND);
                }
                self.vol = Volatile { app_selected: true, ..Volatile::default() };
                sw(StatusWord::OK)
            }
            0x02 => {
                if cmd.data.len() != 2 || cmd.le.is_some() {
                    return sw(StatusWord::WRONG_LENGTH);
                }
                let f = u16::from_be_bytes([cmd.data[0], cmd.data[1]]);
                match Selected::from_fid(f).filter(|_| self.vol.app_selected) {
                    Some(s) => {
                        self.vol.selected = Some(s);
                        sw(StatusWord::OK)
                    }
                    None => sw(StatusWord::FILE_NOT_FOUND),
                }
            }
            _ => sw(StatusWord::WRONG_P1P2),
        }
    }

    fn read_binary(&mut self, cmd: &Command) -> Answer {
        if cmd.p1 & 0x80 != 0 {
            return sw(StatusWord::WRONG_P1P2);
        }
        let Some(le) = cmd.le.filter(|_| cmd.data.is_empty()) else {
            return sw(StatusWord::WRONG_LENGTH);
        };
        let offset = usize::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
        let content: &[u8] = match self.vol.selected {
            None => return sw(StatusWord::NO_CURRENT_EF),
            Some(Selected::Key(_) | Selected::Pin(_)) => return sw(StatusWord::INCOMPATIBLE_FILE),
            Some(Selected::Cert(fid::SIGN_CERT)) if !self.vol.sign_verified => {
                return sw(StatusWord::SECURITY_NOT_SATISFIED)
            }
            Some(Selected::Token) => match &self.state.token {
                Some(t) => t,
                None => return sw(StatusWord::NO_CURRENT_EF),
            },
            Some(Selected::Cert(f)) => match self.state.cert(f) {
                Some(c) => c,
                None => return sw(StatusWord::NO_CURRENT_EF),
            },
        };
        if offset >= content.len() {
            return sw(StatusWord::WRONG_OFFSET);
        }
        let end = content.len().min(offset + usize::from(le));
        (content[offset..end].to_vec(), StatusWord::OK)
    }

    fn selected_pin(&self) -> Option<KeySlot> {
        match self.vol.selected {
            Some(Selected::Pin(slot)) => Some(slot),
            _ => None,
        }
    }

    fn verify(&mut self, cmd: &Command, effect: &mut Effect) -> Answer {
        if cmd.p1 != 0x00 || cmd.p2 != 0x80 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if cmd.le.is_some() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        let Some(slot) = self.selected_pin() else {
            return sw(StatusWord::NO_CURRENT_EF);
        };
        let tries = self.state.pin(slot).tries_left;
        if cmd.data.is_empty() {
            // Retry query: always 63 Cx, even when verified (OpenSC's PKCS#15 bind
            // fails on anything else), and it costs no try.
            return sw(StatusWord::with_tries(tries));
        }
        if tries == 0 {
            return sw(StatusWord::PIN_BLOCKED);
        }
        let candidate = self.state.pin_hash(slot, &cmd.data);
        let Some(stored) = &self.state.pin(slot).hash else {
            return sw(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        let right: bool = stored.as_slice().ct_eq(candidate.as_slice()).into();
        let full = slot.pin_tries();
        let record = self.state.pin_mut(slot);
        if right {
            if record.tries_left != full {
                record.tries_left = full;
                effect.persist = true;
            }
            self.vol.set_verified(slot, true);
            sw(StatusWord::OK)
        } else {
            record.tries_left -= 1;
            effect.persist = true;
            self.vol.set_verified(slot, false);
            sw(StatusWord::with_tries(record.tries_left))
        }
    }

    fn change_reference_data(&mut self, cmd: &Command, effect: &mut Effect) -> Answer {
        if cmd.p1 != 0x01 || cmd.p2 != 0x80 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if cmd.data.is_empty() || cmd.le.is_some() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        let Some(slot) = self.selected_pin() else {
            return sw(StatusWord::NO_CURRENT_EF);
        };
        if !self.vol.verified(slot) {
            return sw(StatusWord::SECURITY_NOT_SATISFIED);
        }
        if !pin_format_ok(slot, &cmd.data) {
            return sw(StatusWord::WRONG_DATA);
        }
        let hash = self.state.pin_hash(slot, &cmd.data);
        let record = self.state.pin_mut(slot);
        record.hash = Some(hash);
        record.tries_left = slot.pin_tries();
        effect.persist = true;
        sw(StatusWord::OK)
    }

    fn compute_signature(
        &mut self,
        cmd: &Command,
        rng: &mut impl CryptoRngCore,
        effect: &mut Effect,
    ) -> Answer {
        if cmd.p1 != 0x00 || cmd.p2 != 0x80 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if cmd.data.is_empty() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        let slot = match self.vol.selected {
            Some(Selected::Key(slot)) => slot,
            _ => return sw(StatusWord::NO_CURRENT_EF),
        };
        if !self.vol.verified(slot) {
            return sw(StatusWord::SECURITY_NOT_SATISFIED);
        }
        let Some(key) = self.state.key(slot) else {
            return sw(StatusWord::DATA_NOT_FOUND);
        };
        if !is_digest_info(&cmd.data) {
            return sw(StatusWord::WRONG_DATA);
        }
        // The whole DigestInfo is the "hash": the card adds only the type-1 padding.
        match key.sign_with_rng(rng, Pkcs1v15Sign::new_unprefixed(), &cmd.data) {
            Ok(sig) => {
                effect.operation = Operation::Signature;
                self.respond(sig, cmd.le)
            }
            // Unreachable for a 2048-bit key and a DigestInfo of at most 83 bytes.
            Err(_) => sw(StatusWord::WRONG_DATA),
        }
    }

    // --- §3 issuance stand-in ----------------------------------------------------------

    fn get_data(&mut self, cmd: &Command) -> Answer {
        if !cmd.data.is_empty() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        match (cmd.p1, cmd.p2) {
            (0x01, 0x01) => {
                let serial = self.state.serial.to_vec();
                self.respond(serial, cmd.le)
            }
            _ => sw(StatusWord::DATA_NOT_FOUND),
        }
    }

    fn get_challenge(&mut self, cmd: &Command, rng: &mut impl CryptoRngCore) -> Answer {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if !cmd.data.is_empty() || cmd.le != Some(CHALLENGE_LEN as u16) {
            return sw(StatusWord::WRONG_LENGTH);
        }
        let mut challenge = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut challenge);
        self.vol.challenge = Some(challenge);
        (challenge.to_vec(), StatusWord::OK)
    }

    fn external_authenticate(
        &mut self,
        cmd: &Command,
        challenge: Option<[u8; CHALLENGE_LEN]>,
        effect: &mut Effect,
    ) -> Answer {
        if cmd.p1 != 0x00 || cmd.p2 != 0x81 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if cmd.data.len() != CHALLENGE_LEN || cmd.le.is_some() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        if self.state.admin_tries_left == 0 {
            return sw(StatusWord::AUTH_METHOD_BLOCKED);
        }
        let Some(challenge) = challenge else {
            return sw(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        let expected = admin_key::cryptogram(&self.state.card_key, &challenge, &self.state.serial);
        if bool::from(expected.ct_eq(cmd.data.as_slice())) {
            // The lifetime counter is never reset (§3.1).
            self.vol.admin = true;
            sw(StatusWord::OK)
        } else {
            self.state.admin_tries_left -= 1;
            self.vol.admin = false;
            effect.persist = true;
            sw(StatusWord::with_tries(self.state.admin_tries_left))
        }
    }

    fn generate(&mut self, cmd: &Command, effect: &mut Effect) -> Answer {
        if !matches!(cmd.p1, 0x80 | 0x81) || cmd.p2 != 0x00 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if !cmd.data.is_empty() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        if !self.vol.admin {
            return sw(StatusWord::SECURITY_NOT_SATISFIED);
        }
        let slot = match self.vol.selected {
            Some(Selected::Key(slot)) => slot,
            _ => return sw(StatusWord::NO_CURRENT_EF),
        };
        if cmd.p1 == 0x80 {
            // Real randomness whatever rng the caller passed: this is a resident's key.
            let Ok(key) = RsaPrivateKey::new(&mut OsRng, KEY_BITS) else {
                return sw(StatusWord::NOT_ENOUGH_MEMORY);
            };
            *self.state.key_mut(slot) = Some(key);
            // The old certificate no longer matches the key.
            if let Some(cert) = self.state.cert_mut(slot.cert_fid()) {
                cert.clear();
            }
            effect.persist = true;
            effect.operation = Operation::KeyGeneration;
        }
        let Some(key) = self.state.key(slot) else {
            return sw(StatusWord::DATA_NOT_FOUND);
        };
        let object = public_key_object(key);
        self.respond(object, cmd.le)
    }

    fn get_response(&mut self, cmd: &Command, pending: Option<Zeroizing<Vec<u8>>>) -> Answer {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if !cmd.data.is_empty() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        match pending {
            Some(rest) => self.respond(rest.to_vec(), cmd.le),
            None => sw(StatusWord::CONDITIONS_NOT_SATISFIED),
        }
    }

    fn reset_retry_counter(&mut self, cmd: &Command, effect: &mut Effect) -> Answer {
        if !matches!(cmd.p1, 0x02 | 0x03) || cmd.p2 != 0x80 {
            return sw(StatusWord::WRONG_P1P2);
        }
        // P1=02 carries the new PIN; P1=03 carries nothing.
        if (cmd.p1 == 0x02) == cmd.data.is_empty() || cmd.le.is_some() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        if !self.vol.admin {
            return sw(StatusWord::SECURITY_NOT_SATISFIED);
        }
        let Some(slot) = self.selected_pin() else {
            return sw(StatusWord::NO_CURRENT_EF);
        };
        if cmd.p1 == 0x02 {
            if !pin_format_ok(slot, &cmd.data) {
                return sw(StatusWord::WRONG_DATA);
            }
            let hash = self.state.pin_hash(slot, &cmd.data);
            self.state.pin_mut(slot).hash = Some(hash);
            // A new PIN must be proven again before use.
            self.vol.set_verified(slot, false);
        } else if self.state.pin(slot).hash.is_none() {
            return sw(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        self.state.pin_mut(slot).tries_left = slot.pin_tries();
        effect.persist = true;
        sw(StatusWord::OK)
    }

    fn update_binary(&mut self, cmd: &Command, effect: &mut Effect) -> Answer {
        if cmd.p1 & 0x80 != 0 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if cmd.data.is_empty() || cmd.le.is_some() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        if !self.vol.admin {
            return sw(StatusWord::SECURITY_NOT_SATISFIED);
        }
        let offset = usize::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
        let f = match self.vol.selected {
            None => return sw(StatusWord::NO_CURRENT_EF),
            Some(Selected::Key(_) | Selected::Pin(_)) => return sw(StatusWord::INCOMPATIBLE_FILE),
            // The token EF is written at manufacture only.
            Some(Selected::Token) => return sw(StatusWord::SECURITY_NOT_SATISFIED),
            Some(Selected::Cert(f)) => f,
        };
        let Some(content) = self.state.cert_mut(f) else {
            return sw(StatusWord::NO_CURRENT_EF);
        };
        if offset > content.len() {
            return sw(StatusWord::WRONG_OFFSET);
        }
        let end = offset + cmd.data.len();
        if end > CERT_EF_CAPACITY {
            return sw(StatusWord::NOT_ENOUGH_MEMORY);
        }
        if end > content.len() {
            content.resize(end, 0);
        }
        content[offset..end].copy_from_slice(&cmd.data);
        effect.persist = true;
        sw(StatusWord::OK)
    }

    fn erase_binary(&mut self, cmd: &Command, effect: &mut Effect) -> Answer {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return sw(StatusWord::WRONG_P1P2);
        }
        if !cmd.data.is_empty() || cmd.le.is_some() {
            return sw(StatusWord::WRONG_LENGTH);
        }
        if !self.vol.admin {
            return sw(StatusWord::SECURITY_NOT_SATISFIED);
        }
        match self.vol.selected {
            None => return sw(StatusWord::NO_CURRENT_EF),
            Some(Selected::Token | Selected::Pin(_)) => return sw(StatusWord::INCOMPATIBLE_FILE),
            Some(Selected::Cert(f)) => {
                if let Some(c) = self.state.cert_mut(f) {
                    c.clear();
                }
            }
            Some(Selected::Key(slot)) => *self.state.key_mut(slot) = None,
        }
        effect.persist = true;
        sw(StatusWord::OK)
    }
}

/// The PIN formats of §3.3: `0018` exactly 4 digits; `001B` 6–16 of `A–Z 0–9` with at
/// least one letter and one digit.
pub fn pin_format_ok(slot: KeySlot, pin: &[u8]) -> bool {
    match slot {
        KeySlot::Auth => pin.len() == 4 && pin.iter().all(u8::is_ascii_digit),
        KeySlot::Sign => {
            (6..=16).contains(&pin.len())
                && pin.iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
                && pin.iter().any(u8::is_ascii_digit)
                && pin.iter().any(u8::is_ascii_uppercase)
        }
    }
}

/// Whether `data` is exactly a DER DigestInfo for SHA-1/224/256/384/512.
pub fn is_digest_info(data: &[u8]) -> bool {
    let schemes = [
        Pkcs1v15Sign::new::<sha1::Sha1>(),
        Pkcs1v15Sign::new::<Sha224>(),
        Pkcs1v15Sign::new::<Sha256>(),
        Pkcs1v15Sign::new::<Sha384>(),
        Pkcs1v15Sign::new::<Sha512>(),
    ];
    schemes.iter().any(|s| {
        let hash_len = s.hash_len.unwrap_or(0);
        data.len() == s.prefix.len() + hash_len && data.starts_with(&s.prefix)
    })
}

/// The public key data object `7F49 82 0109 { 81 82 0100 <n> 82 03 <e> }` (§3.2).
pub fn public_key_object(key: &RsaPrivateKey) -> Vec<u8> {
    let n = left_pad(&key.n().to_bytes_be(), KEY_BITS / 8);
    let e = key.e().to_bytes_be();
    let mut inner = Vec::with_capacity(PUBLIC_KEY_DO_LEN);
    inner.extend_from_slice(&[0x81, 0x82]);
    inner.extend_from_slice(&(n.len() as u16).to_be_bytes());
    inner.extend_from_slice(&n);
    inner.extend_from_slice(&[0x82, e.len() as u8]);
    inner.extend_from_slice(&e);
    let mut out = Vec::with_capacity(PUBLIC_KEY_DO_LEN);
    out.extend_from_slice(&[0x7F, 0x49, 0x82]);
    out.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    out.extend_from_slice(&inner);
    out
}

fn left_pad(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len.saturating_sub(bytes.len())];
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests;
