//! The issuance commands: this project's ISO 7816-4/-8/-9 stand-in for J-LIS's confidential
//! set (`docs/card-protocol.md` §3).
//!
//! A deployment on real cards replaces this module with the card maker's commands; the
//! public JPKI-AP (`card::jpki_ap`) stays. Builders and the public-key parser are pure;
//! [`Personalizer`] runs them over a [`JpkiAp`] session. This module decides nothing about
//! who may be issued a card (that is `rules`) and never logs data fields.

use rsa::{BigUint, RsaPublicKey};

use super::admin_key;
use super::apdu::{Command, StatusWord};
use super::error::CardError;
use super::files::{KeySlot, CERT_EF_CAPACITY, CHALLENGE_LEN, SERIAL_LEN};
use super::jpki_ap::{self, JpkiAp};
use super::pin::{AuthPin, PinSecret, SigningPassword};
use super::transport::CardTransport;

/// Largest UPDATE BINARY data field of a short APDU.
pub const WRITE_CHUNK: usize = 255;

// ---- Builders ----

/// GET DATA of the card serial (`00 CA 01 01 10`).
pub fn get_serial() -> Command {
    Command::new(0x00, 0xCA, 0x01, 0x01).with_le(SERIAL_LEN as u16)
}

/// GET CHALLENGE, 16 bytes (`00 84 00 00 10`).
pub fn get_challenge() -> Command {
    Command::new(0x00, 0x84, 0x00, 0x00).with_le(CHALLENGE_LEN as u16)
}

/// EXTERNAL AUTHENTICATE with the issuer administration key, reference `81`.
pub fn external_authenticate(cryptogram: &[u8; CHALLENGE_LEN]) -> Command {
    Command::new(0x00, 0x82, 0x00, 0x81).with_data(cryptogram)
}

/// GENERATE ASYMMETRIC KEY PAIR into the selected key IEF (`00 47 80 00 00`).
pub fn generate_key_pair() -> Command {
    Command::new(0x00, 0x47, 0x80, 0x00).with_le(256)
}

/// Read the public key of the selected key IEF again (`00 47 81 00 00`).
pub fn read_public_key() -> Command {
    Command::new(0x00, 0x47, 0x81, 0x00).with_le(256)
}

/// RESET RETRY COUNTER with a new value (`00 2C 02 80 Lc <PIN>`): initial set-up or
/// reset of a forgotten PIN.
pub fn reset_retry_counter_new<P: PinSecret>(pin: &P) -> Command {
    Command::new(0x00, 0x2C, 0x02, 0x80).with_data(pin.pin_bytes())
}

/// RESET RETRY COUNTER, counter only (`00 2C 03 80`): lock release, the PIN is kept.
pub fn reset_retry_counter() -> Command {
    Command::new(0x00, 0x2C, 0x03, 0x80)
}

/// UPDATE BINARY of up to 255 bytes at `offset` of the selected EF.
pub fn update_binary(offset: u16, chunk: &[u8]) -> Command {
    let [hi, lo] = offset.to_be_bytes();
    Command::new(0x00, 0xD6, hi, lo).with_data(chunk)
}

/// ERASE BINARY of the whole selected EF or key IEF (`00 0E 00 00`).
pub fn erase_binary() -> Command {
    Command::new(0x00, 0x0E, 0x00, 0x00)
}

// ---- Parser ----

/// One BER-TLV (ISO 7816-4 §5.2): tag (1–3 bytes), definite length (short, `81`, `82`).
fn tlv(input: &[u8]) -> Result<(u32, &[u8], &[u8]), CardError> {
    let bad = CardError::Malformed("public key data object");
    let mut i = 0;
    let mut tag = u32::from(*input.first().ok_or(bad.clone())?);
    i += 1;
    if tag & 0x1F == 0x1F {
        // Subsequent tag bytes while bit 8 is set; at most two more.
        loop {
            let b = *input.get(i).ok_or(bad.clone())?;
            tag = (tag << 8) | u32::from(b);
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i >= 3 {
                return Err(bad);
            }
        }
    }
    let first = *input.get(i).ok_or(bad.clone())?;
    i += 1;
    let len = match first {
        0x00..=0x7F => usize::from(first),
        0x81 => {
            let l = usize::from(*input.get(i).ok_or(bad.clone())?);
            i += 1;
            l
        }
        0x82 => {
            let b = input.get(i..i + 2).ok_or(bad.clone())?;
            i += 2;
            usize::from(u16::from_be_bytes([b[0], b[1]]))
        }
        _ => return Err(bad),
    };
    let value = input.get(i..i + len).ok_or(bad)?;
    Ok((tag, value, &input[i + len..]))
}

/// Parses `7F49 { 81 modulus, 82 exponent }` (ISO 7816-8 public key data object) into an
/// RSA public key, insisting on RSA-2048 and nothing after the object.
pub fn parse_public_key(data: &[u8]) -> Result<RsaPublicKey, CardError> {
    let (tag, body, rest) = tlv(data)?;
    if tag != 0x7F49 || !rest.is_empty() {
        return Err(CardError::Malformed("expected a 7F49 public key object"));
    }
    let (mut n, mut e) = (None, None);
    let mut inner = body;
    while !inner.is_empty() {
        let (tag, value, rest) = tlv(inner)?;
        match tag {
            0x81 if n.is_none() => n = Some(value),
            0x82 if e.is_none() => e = Some(value),
            _ => return Err(CardError::Malformed("unexpected tag in 7F49")),
        }
        inner = rest;
    }
    let (n, e) = match (n, e) {
        (Some(n), Some(e)) => (n, e),
        _ => return Err(CardError::Malformed("7F49 lacks modulus or exponent")),
    };
    let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
        .map_err(|_| CardError::Malformed("not a valid RSA public key"))?;
    if rsa::traits::PublicKeyParts::size(&key) != 256 {
        return Err(CardError::Malformed("not an RSA-2048 key"));
    }
    Ok(key)
}

/// How a certificate write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The EF already held exactly these bytes: nothing was sent but the read.
    AlreadyThere,
    /// Erased, written and read back equal.
    Written,
}

/// The issuance session: administrative authentication, then the stand-in commands.
pub struct Personalizer<'a, T> {
    ap: &'a mut JpkiAp<T>,
}

impl<'a, T: CardTransport> Personalizer<'a, T> {
    /// Works on `ap`, whose AP must be selected (e.g. by [`JpkiAp::detect`]).
    pub fn new(ap: &'a mut JpkiAp<T>) -> Self {
        Personalizer { ap }
    }

    /// The card's 16-byte serial.
    pub fn serial(&mut self) -> Result<[u8; SERIAL_LEN], CardError> {
        let r = self.ap.send(&get_serial())?;
        if r.sw != StatusWord::OK {
            return Err(CardError::unexpected("GET DATA (serial)", r.sw));
        }
        r.data[..].try_into().map_err(|_| CardError::Malformed("card serial length"))
    }

    /// Proves the kiosk holds the issuer's master key: GET DATA serial, GET CHALLENGE,
    /// EXTERNAL AUTHENTICATE with the cryptogram of the card's diversified key. The card
    /// forgets this on SELECT AP and on any power event. Returns the serial.
    pub fn authenticate(&mut self, master_key: &[u8]) -> Result<[u8; SERIAL_LEN], CardError> {
        let serial = self.serial()?;
        // The challenge must be the APDU right before EXTERNAL AUTHENTICATE.
        let r = self.ap.send(&get_challenge())?;
        if r.sw != StatusWord::OK {
            return Err(CardError::unexpected("GET CHALLENGE", r.sw));
        }
        let challenge: [u8; CHALLENGE_LEN] =
            r.data[..].try_into().map_err(|_| CardError::Malformed("challenge length"))?;
        let key = admin_key::card_key(master_key, &serial);
        let cryptogram = admin_key::cryptogram(&key, &challenge, &serial);
        let sw = self.ap.send(&external_authenticate(&cryptogram))?.sw;
        match sw {
            StatusWord::OK => Ok(serial),
            StatusWord::AUTH_METHOD_BLOCKED => Err(CardError::AdminKeyBlocked),
            sw => match sw.tries_left() {
                Some(tries_left) => Err(CardError::AdminAuthFailed { tries_left }),
                None => Err(CardError::unexpected("EXTERNAL AUTHENTICATE", sw)),
            },
        }
    }

    fn admin_sw(command: &'static str, sw: StatusWord) -> Result<(), CardError> {
        match sw {
            StatusWord::OK => Ok(()),
            StatusWord::SECURITY_NOT_SATISFIED => Err(CardError::SecurityNotSatisfied),
            StatusWord::WRONG_DATA => Err(CardError::BadPinFormat),
            StatusWord::DATA_NOT_FOUND => Err(CardError::NoKey),
            sw => Err(CardError::unexpected(command, sw)),
        }
    }

    fn public_key_command(&mut self, slot: KeySlot, cmd: &Command, name: &'static str) -> Result<RsaPublicKey, CardError> {
        self.ap.select(slot.key_fid())?;
        let r = self.ap.send(cmd)?;
        Self::admin_sw(name, r.sw)?;
        parse_public_key(&r.data)
    }

    /// Generates a fresh RSA-2048 key pair on the card in `slot` and returns its public
    /// key. The card empties the slot's certificate EF (it no longer matches).
    pub fn generate_key_pair(&mut self, slot: KeySlot) -> Result<RsaPublicKey, CardError> {
        self.public_key_command(slot, &generate_key_pair(), "GENERATE ASYMMETRIC KEY PAIR")
    }

    /// Reads the public key of `slot` again (e.g. after a pulled card, to learn whether
    /// the generation went through). [`CardError::NoKey`] when there is none.
    pub fn read_public_key(&mut self, slot: KeySlot) -> Result<RsaPublicKey, CardError> {
        self.public_key_command(slot, &read_public_key(), "GENERATE ASYMMETRIC KEY PAIR (read)")
    }

    /// Sets (or resets) a PIN: new value, counter full, lock cleared.
    pub fn set_pin<P: PinSecret>(&mut self, pin: &P) -> Result<(), CardError> {
        self.ap.select(P::SLOT.pin_fid())?;
        let sw = self.ap.send(&reset_retry_counter_new(pin))?.sw;
        Self::admin_sw("RESET RETRY COUNTER", sw)
    }

    /// Sets both PINs of a new card and leaves the signing password verified, so the
    /// signing certificate can be read back after it is written. The VERIFY goes out
    /// while `001B` is still selected from its set-up: one SELECT fewer.
    pub fn set_pins(&mut self, auth: &AuthPin, sign: &SigningPassword) -> Result<(), CardError> {
        self.set_pin(auth)?;
        self.set_pin(sign)?;
        let sw = self.ap.send(&jpki_ap::verify(sign))?.sw;
        jpki_ap::verify_result(sw)
    }

    /// Releases a locked PIN (ロック解除): counter full, PIN kept.
    pub fn release_lock(&mut self, slot: KeySlot) -> Result<(), CardError> {
        self.ap.select(slot.pin_fid())?;
        let sw = self.ap.send(&reset_retry_counter())?.sw;
        match sw {
            StatusWord::CONDITIONS_NOT_SATISFIED => Err(CardError::PinNotSet),
            sw => Self::admin_sw("RESET RETRY COUNTER", sw),
        }
    }

    /// Erases a certificate EF or destroys the key in a key IEF.
    pub fn erase(&mut self, ef: u16) -> Result<(), CardError> {
        self.ap.select(ef)?;
        let sw = self.ap.send(&erase_binary())?.sw;
        Self::admin_sw("ERASE BINARY", sw)
    }

    /// Writes a certificate: SELECT, ERASE, UPDATE BINARY in 255-byte chunks, then reads it
    /// all back and compares, so a write torn by a pulled card is never taken as done.
    /// The signing certificate reads back only while the signing password is verified.
    pub fn write_certificate(&mut self, ef: u16, der: &[u8]) -> Result<(), CardError> {
        if der.len() > CERT_EF_CAPACITY {
            return Err(CardError::TooLarge { len: der.len(), capacity: CERT_EF_CAPACITY });
        }
        self.ap.select(ef)?;
        Self::admin_sw("ERASE BINARY", self.ap.send(&erase_binary())?.sw)?;
        for (i, chunk) in der.chunks(WRITE_CHUNK).enumerate() {
            // At most 4096 / 255 chunks: the offset fits u16.
            let offset = (i * WRITE_CHUNK) as u16;
            let sw = self.ap.send(&update_binary(offset, chunk))?.sw;
            match sw {
                StatusWord::NOT_ENOUGH_MEMORY => {
                    return Err(CardError::TooLarge { len: der.len(), capacity: CERT_EF_CAPACITY })
                }
                sw => Self::admin_sw("UPDATE BINARY", sw)?,
            }
        }
        match self.ap.read_selected_der(ef)? {
            Some(back) if back == der => Ok(()),
            _ => Err(CardError::ReadBackMismatch { fid: ef }),
        }
    }

    /// Makes the EF hold `der`: reads it first and writes only when it differs (an empty
    /// or torn EF, or an old certificate). The way to resume after a pulled card.
    pub fn ensure_certificate(&mut self, ef: u16, der: &[u8]) -> Result<WriteOutcome, CardError> {
        self.ap.select(ef)?;
        match self.ap.read_selected_der(ef) {
            Ok(Some(current)) if current == der => return Ok(WriteOutcome::AlreadyThere),
            Ok(_) | Err(CardError::ReadBackMismatch { .. } | CardError::Malformed(_)) => {}
            Err(e) => return Err(e),
        }
        self.write_certificate(ef, der)?;
        Ok(WriteOutcome::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::pin::SigningPassword;
    use rsa::traits::PublicKeyParts;

    fn key_object(n: &[u8], e: &[u8]) -> Vec<u8> {
        let mut inner = vec![0x81, 0x82];
        inner.extend_from_slice(&(n.len() as u16).to_be_bytes());
        inner.extend_from_slice(n);
        inner.push(0x82);
        inner.push(e.len() as u8);
        inner.extend_from_slice(e);
        let mut out = vec![0x7F, 0x49, 0x82];
        out.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        out.extend_from_slice(&inner);
        out
    }

    fn modulus() -> Vec<u8> {
        // Any odd 2048-bit number passes RsaPublicKey::new's checks.
        let mut n = vec![0xC3; 256];
        n[255] = 0x01;
        n
    }

    #[test]
    fn builders_match_the_protocol_bytes() {
        assert_eq!(hex::encode_upper(&*get_serial().to_bytes()), "00CA010110");
        assert_eq!(hex::encode_upper(&*get_challenge().to_bytes()), "0084000010");
        assert_eq!(hex::encode_upper(&*external_authenticate(&[0xAB; 16]).to_bytes())[..10], *"0082008110");
        assert_eq!(hex::encode_upper(&*generate_key_pair().to_bytes()), "0047800000");
        assert_eq!(hex::encode_upper(&*read_public_key().to_bytes()), "0047810000");
        let pw = SigningPassword::new("JPKI2026").unwrap();
        assert_eq!(hex::encode_upper(&*reset_retry_counter_new(&pw).to_bytes()), "002C0280084A504B4932303236");
        assert_eq!(hex::encode_upper(&*reset_retry_counter().to_bytes()), "002C0380");
        assert_eq!(hex::encode_upper(&*update_binary(0x01FE, &[1, 2]).to_bytes()), "00D601FE020102");
        assert_eq!(hex::encode_upper(&*erase_binary().to_bytes()), "000E0000");
    }

    #[test]
    fn public_key_object_round_trip() {
        let obj = key_object(&modulus(), &[0x01, 0x00, 0x01]);
        // 5 bytes of 7F49 header + 4 + 256 (modulus) + 5 (exponent).
        assert_eq!(obj.len(), 270);
        let key = parse_public_key(&obj).unwrap();
        assert_eq!(key.n().to_bytes_be(), modulus());
        assert_eq!(key.e(), &BigUint::from(65537u32));
    }

    #[test]
    fn bad_public_key_objects_are_refused() {
        let good = key_object(&modulus(), &[0x01, 0x00, 0x01]);
        // Truncated anywhere.
        for cut in [0, 1, 3, 5, 100, 268] {
            assert!(parse_public_key(&good[..cut]).is_err(), "cut {cut}");
        }
        // Trailing byte.
        let mut long = good.clone();
        long.push(0);
        assert!(parse_public_key(&long).is_err());
        // Wrong outer tag.
        let mut wrong = good.clone();
        wrong[1] = 0x4A;
        assert!(parse_public_key(&wrong).is_err());
        // 1024-bit modulus.
        let mut short_n = vec![0xC3; 128];
        short_n[127] = 1;
        assert!(parse_public_key(&key_object(&short_n, &[1, 0, 1])).is_err());
        // Missing exponent.
        let mut no_e = vec![0x7F, 0x49, 0x82, 0x01, 0x04, 0x81, 0x82, 0x01, 0x00];
        no_e.extend_from_slice(&modulus());
        assert!(parse_public_key(&no_e).is_err());
    }

    #[test]
    fn tlv_tags_and_lengths() {
        assert_eq!(tlv(&[0x81, 0x01, 0xAA]).unwrap(), (0x81, &[0xAA][..], &[][..]));
        assert_eq!(tlv(&[0x5F, 0x20, 0x00, 0x01]).unwrap(), (0x5F20, &[][..], &[0x01][..]));
        assert_eq!(tlv(&[0x53, 0x81, 0x01, 0x07]).unwrap().1, &[0x07]);
        assert!(tlv(&[0x53, 0x83, 0, 0, 1]).is_err());
        assert!(tlv(&[0x5F]).is_err());
    }
}

/// The card layer against the virtual card's sans-I/O model: every APDU goes through the
/// same code as over pcscd, minus the reader.
#[cfg(test)]
mod model_tests {
    use super::*;
    use crate::card::admin_key::DEMO_MASTER_KEY;
    use crate::card::files::fid;
    use crate::card::jpki_ap::JpkiAp;
    use crate::card::pin::{AuthPin, SigningPassword};
    use crate::card::TransportError;
    use crate::card::apdu::Response;
    use crate::vcard::{CardKind, CardState, VirtualCard};
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use signature::Verifier;

    struct Model {
        card: VirtualCard,
        sent: usize,
    }

    impl CardTransport for Model {
        fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
            self.sent += 1;
            let (out, _effect) = self.card.process(apdu, &mut rand_core::OsRng);
            Response::parse(&out).ok_or(TransportError::NoStatusWord)
        }
    }

    fn card(kind: CardKind) -> JpkiAp<Model> {
        let state = CardState::fresh_random(kind, &DEMO_MASTER_KEY, &mut rand_core::OsRng);
        JpkiAp::new(Model { card: VirtualCard::new(state), sent: 0 })
    }

    /// A DER SEQUENCE of `n` bytes in all, shaped like a certificate.
    fn fake_cert(n: usize, fill: u8) -> Vec<u8> {
        let body = n - 4;
        let mut v = vec![0x30, 0x82];
        v.extend_from_slice(&(body as u16).to_be_bytes());
        v.extend((0..body).map(|i| fill.wrapping_add(i as u8)));
        v
    }

    #[test]
    fn detection_refuses_juki_and_non_jpki_cards() {
        assert_eq!(card(CardKind::MyNumber).detect(), Ok(()));
        assert_eq!(card(CardKind::Juki).detect(), Err(CardError::JukiCard));
        assert!(matches!(card(CardKind::NoJpki).detect(), Err(CardError::NotJpki(_))));
    }

    #[test]
    fn issuance_needs_the_right_master_key() {
        let mut ap = card(CardKind::MyNumber);
        ap.detect().unwrap();
        let mut p = Personalizer::new(&mut ap);
        // Without authentication every issuance command is refused.
        assert_eq!(p.set_pin(&AuthPin::new("1234").unwrap()), Err(CardError::SecurityNotSatisfied));
        assert_eq!(p.authenticate(b"not the master key"), Err(CardError::AdminAuthFailed { tries_left: 9 }));
        assert!(p.authenticate(&DEMO_MASTER_KEY).is_ok());
        assert_eq!(p.set_pin(&AuthPin::new("1234").unwrap()), Ok(()));
    }

    #[test]
    fn full_personalisation_then_use_as_a_client() {
        let mut ap = card(CardKind::MyNumber);
        ap.detect().unwrap();
        let auth_pin = AuthPin::new("4711").unwrap();
        let password = SigningPassword::new("abc123").unwrap();
        let auth_cert = fake_cert(900, 1);
        let sign_cert = fake_cert(1300, 2);
        let ca_cert = fake_cert(300, 3);
        let (auth_key, sign_key) = {
            let mut p = Personalizer::new(&mut ap);
            p.authenticate(&DEMO_MASTER_KEY).unwrap();
            let a = p.generate_key_pair(KeySlot::Auth).unwrap();
            let s = p.generate_key_pair(KeySlot::Sign).unwrap();
            assert_eq!(p.read_public_key(KeySlot::Auth).unwrap(), a);
            p.set_pin(&auth_pin).unwrap();
            p.set_pin(&password).unwrap();
            (a, s)
        };
        ap.verify(&password).unwrap();
        {
            let mut p = Personalizer::new(&mut ap);
            p.write_certificate(fid::AUTH_CERT, &auth_cert).unwrap();
            p.write_certificate(fid::SIGN_CERT, &sign_cert).unwrap();
            p.write_certificate(fid::AUTH_CA_CERT, &ca_cert).unwrap();
            assert_eq!(p.ensure_certificate(fid::AUTH_CA_CERT, &ca_cert), Ok(WriteOutcome::AlreadyThere));
        }
        // A new session: the signing certificate hides behind its password.
        ap.detect().unwrap();
        assert_eq!(ap.read_certificate(fid::AUTH_CERT).unwrap(), auth_cert);
        assert_eq!(ap.read_certificate(fid::SIGN_CERT), Err(CardError::SecurityNotSatisfied));
        assert_eq!(ap.read_certificate(fid::SIGN_CA_CERT), Err(CardError::EmptyFile { fid: fid::SIGN_CA_CERT }));
        ap.verify(&password).unwrap();
        assert_eq!(ap.read_certificate(fid::SIGN_CERT).unwrap(), sign_cert);

        // Minimum reads: 1300 bytes is 6 READ BINARYs after the SELECT.
        let before = ap.transport().sent;
        ap.read_certificate(fid::SIGN_CERT).unwrap();
        assert_eq!(ap.transport().sent - before, 1 + 1300usize.div_ceil(256));

        for (slot, key) in [(KeySlot::Auth, &auth_key), (KeySlot::Sign, &sign_key)] {
            if slot == KeySlot::Auth {
                assert_eq!(ap.sign_sha256(slot, b"m"), Err(CardError::SecurityNotSatisfied));
                ap.verify(&auth_pin).unwrap();
            }
            let sig = ap.sign_sha256(slot, b"message").unwrap();
            VerifyingKey::<sha2::Sha256>::new(key.clone())
                .verify(b"message", &Signature::try_from(sig.as_slice()).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn pins_count_down_lock_and_release() {
        let mut ap = card(CardKind::MyNumber);
        ap.detect().unwrap();
        let good = AuthPin::new("1234").unwrap();
        let bad = AuthPin::new("9999").unwrap();
        assert_eq!(ap.verify(&good), Err(CardError::PinNotSet));
        {
            let mut p = Personalizer::new(&mut ap);
            p.authenticate(&DEMO_MASTER_KEY).unwrap();
            p.set_pin(&good).unwrap();
        }
        assert_eq!(ap.pin_status(KeySlot::Auth).unwrap().tries_left, 3);
        assert_eq!(ap.verify(&bad), Err(CardError::WrongPin { tries_left: 2 }));
        assert_eq!(ap.verify(&bad), Err(CardError::WrongPin { tries_left: 1 }));
        assert_eq!(ap.verify(&bad), Err(CardError::WrongPin { tries_left: 0 }));
        assert_eq!(ap.verify(&good), Err(CardError::Blocked));
        assert!(ap.pin_status(KeySlot::Auth).unwrap().is_blocked());
        // Lock release needs administration again after SELECT AP.
        ap.detect().unwrap();
        assert_eq!(Personalizer::new(&mut ap).release_lock(KeySlot::Auth), Err(CardError::SecurityNotSatisfied));
        Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY).unwrap();
        Personalizer::new(&mut ap).release_lock(KeySlot::Auth).unwrap();
        assert_eq!(ap.verify(&good), Ok(()));
        // The resident's own change.
        let new = AuthPin::new("2468").unwrap();
        ap.change_pin(&good, &new).unwrap();
        assert_eq!(ap.verify(&new), Ok(()));
    }

    #[test]
    fn revocation_erases_the_key_and_its_certificate() {
        let mut ap = card(CardKind::MyNumber);
        ap.detect().unwrap();
        let password = SigningPassword::new("REVOKE1").unwrap();
        let mut p = Personalizer::new(&mut ap);
        p.authenticate(&DEMO_MASTER_KEY).unwrap();
        assert_eq!(p.read_public_key(KeySlot::Sign), Err(CardError::NoKey));
        p.generate_key_pair(KeySlot::Sign).unwrap();
        p.set_pin(&password).unwrap();
        p.write_certificate(fid::SIGN_CA_CERT, &fake_cert(600, 4)).unwrap();
        p.erase(KeySlot::Sign.key_fid()).unwrap();
        p.erase(fid::SIGN_CA_CERT).unwrap();
        assert_eq!(p.read_public_key(KeySlot::Sign), Err(CardError::NoKey));
        ap.verify(&password).unwrap();
        assert_eq!(ap.sign_sha256(KeySlot::Sign, b"m"), Err(CardError::NoKey));
        assert_eq!(ap.read_certificate(fid::SIGN_CA_CERT), Err(CardError::EmptyFile { fid: fid::SIGN_CA_CERT }));
    }

    /// The kiosk's personalisation sequence with fixed certificates (as the demo runs it).
    fn personalise_fixed<T: CardTransport>(ap: &mut JpkiAp<T>) {
        ap.detect().unwrap();
        let mut p = Personalizer::new(ap);
        p.authenticate(&DEMO_MASTER_KEY).unwrap();
        p.generate_key_pair(KeySlot::Auth).unwrap();
        p.generate_key_pair(KeySlot::Sign).unwrap();
        p.set_pins(&AuthPin::new("1234").unwrap(), &SigningPassword::new("JPKI2026").unwrap()).unwrap();
        for (i, ef) in [fid::AUTH_CERT, fid::AUTH_CA_CERT, fid::SIGN_CERT, fid::SIGN_CA_CERT].into_iter().enumerate() {
            p.write_certificate(ef, &fake_cert(905 + 4 * i, i as u8)).unwrap();
        }
    }

    /// The exact bytes of a whole personalisation, against a transcript recorded from the
    /// virtual card (`JPKI_RECORD_TRACES=1` records it again after a deliberate change).
    #[test]
    fn personalisation_sends_exactly_the_recorded_transcript() {
        use crate::card::trace::{Recorder, Replay};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/apdu/personalisation.trace");
        if std::env::var_os("JPKI_RECORD_TRACES").is_some() {
            let state = CardState::fresh(CardKind::MyNumber, [0x5A; 16], &DEMO_MASTER_KEY, &mut rand_core::OsRng);
            let mut ap = JpkiAp::new(Recorder::new(Model { card: VirtualCard::new(state), sent: 0 }));
            ap.transport().comment("A whole personalisation (card::personalize), recorded from jpki-vcard's model.");
            ap.transport().comment("detect, admin authentication, 2 key pairs, 2 PINs + VERIFY, 4 certificates written and read back.");
            ap.transport().comment("PIN data fields are masked.");
            personalise_fixed(&mut ap);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, ap.transport().transcript()).unwrap();
        }
        let text = std::fs::read_to_string(&path).expect("transcript fixture present");
        // The PIN-carrying commands are there, masked.
        for masked in ["> 002C028004********", "> 002C028008****************", "> 0020008008****************"] {
            assert!(text.lines().any(|l| l == masked), "{masked} missing");
        }
        let mut ap = JpkiAp::new(Replay::parse(&text).unwrap());
        personalise_fixed(&mut ap);
        assert_eq!(ap.transport().remaining(), 0, "the kiosk sent fewer APDUs than recorded");
        // 19 + per certificate SELECT + ERASE + 4 UPDATE + 4 READ.
        assert_eq!(text.lines().filter(|l| l.starts_with("> ")).count(), 19 + 2 + 4 * 9);
    }

    #[test]
    fn a_torn_write_is_detected_and_redone() {
        let mut ap = card(CardKind::MyNumber);
        ap.detect().unwrap();
        Personalizer::new(&mut ap).authenticate(&DEMO_MASTER_KEY).unwrap();
        let cert = fake_cert(800, 9);
        // The first two chunks only, as if the card left the reader.
        ap.select(fid::AUTH_CA_CERT).unwrap();
        for (i, chunk) in cert.chunks(WRITE_CHUNK).take(2).enumerate() {
            assert_eq!(ap.send(&update_binary((i * WRITE_CHUNK) as u16, chunk)).unwrap().sw, StatusWord::OK);
        }
        assert_eq!(ap.read_certificate(fid::AUTH_CA_CERT), Err(CardError::ReadBackMismatch { fid: fid::AUTH_CA_CERT }));
        assert_eq!(
            Personalizer::new(&mut ap).ensure_certificate(fid::AUTH_CA_CERT, &cert),
            Ok(WriteOutcome::Written)
        );
        assert_eq!(ap.read_certificate(fid::AUTH_CA_CERT).unwrap(), cert);
    }
}

/// A hostile or broken card: whatever it answers, the kiosk side returns an error and
/// never panics.
#[cfg(test)]
mod hostile_card {
    use super::*;
    use crate::card::admin_key::DEMO_MASTER_KEY;
    use crate::card::apdu::Response;
    use crate::card::files::fid;
    use crate::card::pin::{AuthPin, SigningPassword};
    use crate::card::TransportError;
    use proptest::prelude::*;

    struct Scripted {
        answers: Vec<Vec<u8>>,
        next: usize,
    }

    impl CardTransport for Scripted {
        fn transmit_raw(&mut self, _apdu: &[u8]) -> Result<Response, TransportError> {
            if self.next >= 2000 || self.answers.is_empty() {
                return Err(TransportError::CardRemoved);
            }
            let a = &self.answers[self.next % self.answers.len()];
            self.next += 1;
            Response::parse(a).ok_or(TransportError::NoStatusWord)
        }
    }

    /// Answers biased towards the status words and shapes the kiosk reacts to.
    fn answer() -> impl Strategy<Value = Vec<u8>> {
        let sw = prop_oneof![
            Just(vec![0x90, 0x00]),
            Just(vec![0x61, 0x00]),
            Just(vec![0x61, 0x0E]),
            Just(vec![0x6C, 0x10]),
            Just(vec![0x6B, 0x00]),
            (0u8..16).prop_map(|x| vec![0x63, 0xC0 | x]),
            any::<[u8; 2]>().prop_map(|b| b.to_vec()),
        ];
        let data = prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 0..300),
            Just(vec![0x30, 0x82, 0x0F, 0xFF]),
            Just(vec![0x7F, 0x49, 0x82, 0x01, 0x09, 0x81, 0x82]),
        ];
        (data, sw).prop_map(|(mut d, sw)| {
            d.extend_from_slice(&sw);
            d
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn no_answer_makes_the_kiosk_panic(answers in proptest::collection::vec(answer(), 1..12)) {
            let mut ap = JpkiAp::new(Scripted { answers, next: 0 });
            let _ = ap.detect();
            let _ = ap.read_certificate(fid::AUTH_CERT);
            let _ = ap.pin_status(KeySlot::Sign);
            let _ = ap.verify(&AuthPin::new("1234").unwrap());
            let _ = ap.sign_sha256(KeySlot::Auth, b"m");
            let mut p = Personalizer::new(&mut ap);
            let _ = p.authenticate(&DEMO_MASTER_KEY);
            let _ = p.generate_key_pair(KeySlot::Auth);
            let _ = p.set_pins(&AuthPin::new("1234").unwrap(), &SigningPassword::new("A12345").unwrap());
            let _ = p.ensure_certificate(fid::SIGN_CA_CERT, &[0x30, 0x03, 1, 2, 3]);
        }

        #[test]
        fn parsers_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_public_key(&bytes);
            let _ = crate::card::jpki_ap::der_total_len(&bytes);
            let _ = crate::card::jpki_ap::check_token(&bytes);
            let _ = crate::card::trace::Replay::parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
