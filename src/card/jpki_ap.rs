//! The public JPKI-AP, as real My Number cards answer it (`docs/card-protocol.md` §2).
//!
//! Two layers: pure command builders and parsers (no I/O, shared with the virtual card's
//! tests), and [`JpkiAp`], a session over any [`CardTransport`] that turns status words
//! into [`CardError`]s. Nothing here issues cards: the administrative stand-in commands
//! live in `card::personalize`. Nothing here logs APDU data.

use der::asn1::{AnyRef, OctetStringRef};
use der::{Decode, Encode, Reader};
use sha2::digest::const_oid::AssociatedOid;
use sha2::Digest;
use spki::AlgorithmIdentifierRef;

use super::apdu::{Command, Response, StatusWord};
use super::error::CardError;
use super::files::{fid, KeySlot, CERT_EF_CAPACITY, JPKI_AID, TOKEN_JUKI, TOKEN_LEN, TOKEN_MY_NUMBER};
use super::pin::PinSecret;
use super::transport::CardTransport;

/// Largest READ BINARY answer a short APDU can ask for.
pub const READ_CHUNK: usize = 256;

// ---- Builders (ISO 7816-4 §11 unless noted) ----

/// SELECT by DF name of JPKI-AP, no FCI (`00 A4 04 0C 0A <AID>`).
pub fn select_ap() -> Command {
    Command::new(0x00, 0xA4, 0x04, 0x0C).with_data(&JPKI_AID)
}

/// SELECT EF/IEF by file identifier, no FCI (`00 A4 02 0C 02 <FID>`).
pub fn select_ef(fid: u16) -> Command {
    Command::new(0x00, 0xA4, 0x02, 0x0C).with_data(&fid.to_be_bytes())
}

/// READ BINARY of the current EF (`00 B0 <offset> <Le>`), Le 1..=256.
pub fn read_binary(offset: u16, le: u16) -> Command {
    let [hi, lo] = offset.to_be_bytes();
    Command::new(0x00, 0xB0, hi, lo).with_le(le)
}

/// VERIFY against the selected PIN IEF (`00 20 00 80 Lc <PIN ASCII>`).
pub fn verify<P: PinSecret>(pin: &P) -> Command {
    Command::new(0x00, 0x20, 0x00, 0x80).with_data(pin.pin_bytes())
}

/// The retry query: VERIFY without data (case 1). It only asks for the counter; it uses
/// no try, because no reference data is compared.
pub fn retry_query() -> Command {
    Command::new(0x00, 0x20, 0x00, 0x80)
}

/// CHANGE REFERENCE DATA with the new value only (`00 24 01 80 Lc <new>`): the old PIN
/// was verified just before.
pub fn change_reference_data<P: PinSecret>(new: &P) -> Command {
    Command::new(0x00, 0x24, 0x01, 0x80).with_data(new.pin_bytes())
}

/// COMPUTE DIGITAL SIGNATURE, JICSAP dialect (`80 2A 00 80 Lc <DigestInfo> 00`).
/// The card adds the PKCS#1 v1.5 padding.
pub fn compute_signature(digest_info: &[u8]) -> Command {
    Command::new(0x80, 0x2A, 0x00, 0x80).with_data(digest_info).with_le(256)
}

/// `DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }`
/// (RFC 8017 §9.2).
#[derive(der::Sequence)]
struct DigestInfo<'a> {
    digest_algorithm: AlgorithmIdentifierRef<'a>,
    digest: OctetStringRef<'a>,
}

/// The DER DigestInfo for SHA-256 of `message`, with NULL parameters as PKCS#1 writes it.
pub fn digest_info_sha256(message: &[u8]) -> Vec<u8> {
    let hash = sha2::Sha256::digest(message);
    let info = DigestInfo {
        digest_algorithm: AlgorithmIdentifierRef {
            oid: sha2::Sha256::OID,
            parameters: Some(AnyRef::NULL),
        },
        // A 32-byte slice always fits an OCTET STRING.
        digest: OctetStringRef::new(&hash).expect("32 bytes fit"),
    };
    // Encoding a well-formed structure of fixed small size cannot fail.
    info.to_der().expect("DigestInfo encodes")
}

// ---- Parsers ----

/// Total length of the DER object starting at `header` (tag, length and content),
/// from its first bytes. A certificate EF must start with a SEQUENCE.
pub fn der_total_len(header: &[u8]) -> Result<usize, CardError> {
    let mut r = der::SliceReader::new(header).map_err(|_| CardError::Malformed("DER header"))?;
    let h = der::Header::decode(&mut r).map_err(|_| CardError::Malformed("DER header"))?;
    if h.tag != der::Tag::Sequence {
        return Err(CardError::Malformed("certificate EF does not start with a SEQUENCE"));
    }
    let head_len = usize::try_from(r.position()).map_err(|_| CardError::Malformed("DER header"))?;
    let body = usize::try_from(h.length).map_err(|_| CardError::Malformed("DER length"))?;
    Ok(head_len + body)
}

/// What the token EF `0006` says.
pub fn check_token(data: &[u8]) -> Result<(), CardError> {
    let text = data.iter().take(TOKEN_LEN).copied().collect::<Vec<u8>>();
    // Space padded; tolerate NUL padding too.
    let trimmed = trim_padding(&text);
    if trimmed == TOKEN_MY_NUMBER.as_bytes() {
        Ok(())
    } else if trimmed == TOKEN_JUKI.as_bytes() {
        Err(CardError::JukiCard)
    } else {
        Err(CardError::UnknownToken)
    }
}

fn trim_padding(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| c != b' ' && c != 0).map_or(0, |i| i + 1);
    &b[..end]
}

/// The answer to VERIFY (with data) as a result.
pub fn verify_result(sw: StatusWord) -> Result<(), CardError> {
    match sw {
        StatusWord::OK => Ok(()),
        StatusWord::PIN_BLOCKED => Err(CardError::Blocked),
        StatusWord::CONDITIONS_NOT_SATISFIED => Err(CardError::PinNotSet),
        sw => match sw.tries_left() {
            Some(tries_left) => Err(CardError::WrongPin { tries_left }),
            None => Err(CardError::unexpected("VERIFY", sw)),
        },
    }
}

/// What the retry query says about a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinStatus {
    /// Tries left; 0 means blocked.
    pub tries_left: u8,
}

impl PinStatus {
    /// No tries left.
    pub fn is_blocked(self) -> bool {
        self.tries_left == 0
    }
}

// ---- Session ----

/// A JPKI-AP session over a transport.
pub struct JpkiAp<T> {
    t: T,
}

impl<T: CardTransport> JpkiAp<T> {
    /// Wraps a connected transport. Nothing is sent yet.
    pub fn new(t: T) -> JpkiAp<T> {
        JpkiAp { t }
    }

    /// The transport, for commands this session does not know.
    pub fn transport(&mut self) -> &mut T {
        &mut self.t
    }

    /// Unwraps.
    pub fn into_inner(self) -> T {
        self.t
    }

    /// Sends one command and returns the whole response.
    pub fn send(&mut self, cmd: &Command) -> Result<Response, CardError> {
        Ok(self.t.transmit(cmd)?)
    }

    /// SELECT of the AP. This clears the card's security state (PINs, administration).
    pub fn select_ap(&mut self) -> Result<(), CardError> {
        match self.send(&select_ap())?.sw {
            StatusWord::OK => Ok(()),
            sw => Err(CardError::NotJpki(sw)),
        }
    }

    /// SELECT of an EF or IEF inside the AP.
    pub fn select(&mut self, fid: u16) -> Result<(), CardError> {
        match self.send(&select_ef(fid))?.sw {
            StatusWord::OK => Ok(()),
            sw => Err(CardError::unexpected("SELECT EF", sw)),
        }
    }

    /// Recognises a My Number card: SELECT AP, SELECT `0006`, READ BINARY of its 32 bytes.
    /// Never by ATR (makers differ). Leaves the AP selected with a clean security state.
    pub fn detect(&mut self) -> Result<(), CardError> {
        self.select_ap()?;
        match self.send(&select_ef(fid::TOKEN))?.sw {
            StatusWord::OK => {}
            sw => return Err(CardError::NotJpki(sw)),
        }
        let r = self.send(&read_binary(0, TOKEN_LEN as u16))?;
        if r.sw != StatusWord::OK {
            return Err(CardError::NotJpki(r.sw));
        }
        check_token(&r.data)
    }

    /// Reads the DER object in the currently selected EF with the fewest READ BINARYs:
    /// the first 256-byte read carries the DER header (and all of a small object), the
    /// rest follows in 256-byte chunks. `Ok(None)` when the EF is empty.
    pub fn read_selected_der(&mut self, ef: u16) -> Result<Option<Vec<u8>>, CardError> {
        let first = self.send(&read_binary(0, READ_CHUNK as u16))?;
        match first.sw {
            StatusWord::OK => {}
            StatusWord::WRONG_OFFSET => return Ok(None),
            StatusWord::SECURITY_NOT_SATISFIED => return Err(CardError::SecurityNotSatisfied),
            sw => return Err(CardError::unexpected("READ BINARY", sw)),
        }
        let total = der_total_len(&first.data)?;
        if total > CERT_EF_CAPACITY {
            return Err(CardError::Malformed("DER length beyond the EF"));
        }
        let mut out = first.data.to_vec();
        if out.len() >= total {
            out.truncate(total);
            return Ok(Some(out));
        }
        if out.len() < READ_CHUNK {
            // The EF ended before the DER object did.
            return Err(CardError::ReadBackMismatch { fid: ef });
        }
        while out.len() < total {
            let want = (total - out.len()).min(READ_CHUNK);
            // `total` is bounded by the 4096-byte EF, so the offset fits 15 bits.
            let r = self.send(&read_binary(out.len() as u16, want as u16))?;
            match r.sw {
                StatusWord::OK if !r.data.is_empty() => out.extend_from_slice(&r.data),
                // Short content: a torn file.
                StatusWord::OK | StatusWord::WRONG_OFFSET => {
                    return Err(CardError::ReadBackMismatch { fid: ef })
                }
                sw => return Err(CardError::unexpected("READ BINARY", sw)),
            }
        }
        out.truncate(total);
        Ok(Some(out))
    }

    /// SELECT and read a certificate EF. [`CardError::EmptyFile`] when there is none; the
    /// signing certificate needs the signing password verified first
    /// ([`CardError::SecurityNotSatisfied`] otherwise).
    pub fn read_certificate(&mut self, ef: u16) -> Result<Vec<u8>, CardError> {
        self.select(ef)?;
        self.read_selected_der(ef)?.ok_or(CardError::EmptyFile { fid: ef })
    }

    /// Tries left of a PIN (the retry query; uses no try).
    pub fn pin_status(&mut self, slot: KeySlot) -> Result<PinStatus, CardError> {
        self.select(slot.pin_fid())?;
        let sw = self.send(&retry_query())?.sw;
        match sw.tries_left() {
            Some(tries_left) => Ok(PinStatus { tries_left }),
            None if sw == StatusWord::PIN_BLOCKED => Ok(PinStatus { tries_left: 0 }),
            None if sw == StatusWord::CONDITIONS_NOT_SATISFIED => Err(CardError::PinNotSet),
            None => Err(CardError::unexpected("VERIFY (retry query)", sw)),
        }
    }

    /// SELECT of the PIN's IEF and VERIFY. The PIN stays verified until SELECT AP or a
    /// power event.
    pub fn verify<P: PinSecret>(&mut self, pin: &P) -> Result<(), CardError> {
        self.select(P::SLOT.pin_fid())?;
        let sw = self.send(&verify(pin))?.sw;
        verify_result(sw)
    }

    /// The resident's own PIN change: VERIFY the current PIN, then CHANGE REFERENCE DATA.
    pub fn change_pin<P: PinSecret>(&mut self, current: &P, new: &P) -> Result<(), CardError> {
        self.verify(current)?;
        match self.send(&change_reference_data(new))?.sw {
            StatusWord::OK => Ok(()),
            StatusWord::SECURITY_NOT_SATISFIED => Err(CardError::SecurityNotSatisfied),
            StatusWord::WRONG_DATA => Err(CardError::BadPinFormat),
            sw => Err(CardError::unexpected("CHANGE REFERENCE DATA", sw)),
        }
    }

    /// Signs a DigestInfo with the key in `slot` (its PIN must be verified already):
    /// SELECT of the key IEF, then COMPUTE DIGITAL SIGNATURE.
    pub fn sign_digest_info(&mut self, slot: KeySlot, digest_info: &[u8]) -> Result<Vec<u8>, CardError> {
        if digest_info.len() > 255 {
            return Err(CardError::TooLarge { len: digest_info.len(), capacity: 255 });
        }
        self.select(slot.key_fid())?;
        let r = self.send(&compute_signature(digest_info))?;
        match r.sw {
            StatusWord::OK => Ok(r.data.to_vec()),
            StatusWord::SECURITY_NOT_SATISFIED => Err(CardError::SecurityNotSatisfied),
            StatusWord::DATA_NOT_FOUND => Err(CardError::NoKey),
            sw => Err(CardError::unexpected("COMPUTE DIGITAL SIGNATURE", sw)),
        }
    }

    /// Signs SHA-256 of `message` with the key in `slot` (PKCS#1 v1.5, padded on the card).
    pub fn sign_sha256(&mut self, slot: KeySlot, message: &[u8]) -> Result<Vec<u8>, CardError> {
        self.sign_digest_info(slot, &digest_info_sha256(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::pin::{AuthPin, SigningPassword};

    #[test]
    fn builders_match_the_protocol_bytes() {
        assert_eq!(
            hex::encode_upper(&*select_ap().to_bytes()),
            "00A4040C0AD392F000260100000001"
        );
        assert_eq!(hex::encode_upper(&*select_ef(0x001B).to_bytes()), "00A4020C02001B");
        assert_eq!(hex::encode_upper(&*read_binary(0x0100, 256).to_bytes()), "00B0010000");
        assert_eq!(hex::encode_upper(&*read_binary(0x0200, 0xDC).to_bytes()), "00B00200DC");
        assert_eq!(hex::encode_upper(&*retry_query().to_bytes()), "00200080");
        let pin = AuthPin::new("1234").unwrap();
        assert_eq!(hex::encode_upper(&*verify(&pin).to_bytes()), "002000800431323334");
        let pw = SigningPassword::new("abc123").unwrap();
        assert_eq!(hex::encode_upper(&*change_reference_data(&pw).to_bytes()), "0024018006414243313233");
        let sig = compute_signature(&[0xAA; 51]).to_bytes();
        assert_eq!(&sig[..5], &[0x80, 0x2A, 0x00, 0x80, 51]);
        assert_eq!(sig.len(), 5 + 51 + 1);
        assert_eq!(sig[sig.len() - 1], 0);
    }

    #[test]
    fn digest_info_is_the_pkcs1_sha256_form() {
        let di = digest_info_sha256(b"abc");
        // RFC 8017 §9.2 note 1: the SHA-256 prefix, then the hash.
        assert_eq!(hex::encode(&di[..19]), "3031300d060960864801650304020105000420");
        assert_eq!(&di[19..], sha2::Sha256::digest(b"abc").as_slice());
        // rsa's own table agrees.
        let scheme = rsa::Pkcs1v15Sign::new::<sha2::Sha256>();
        assert_eq!(&di[..19], &*scheme.prefix);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_total_len(&[0x30, 0x82, 0x02, 0xD8, 0, 0]).unwrap(), 0x2D8 + 4);
        assert_eq!(der_total_len(&[0x30, 0x03, 1, 2, 3]).unwrap(), 5);
        assert_eq!(der_total_len(&[0x30, 0x81, 0x80]).unwrap(), 0x80 + 3);
        assert!(der_total_len(&[0x04, 0x01, 0x00]).is_err());
        assert!(der_total_len(&[0x30]).is_err());
        assert!(der_total_len(&[]).is_err());
    }

    #[test]
    fn tokens() {
        let pad = |s: &str| format!("{s:<32}").into_bytes();
        assert_eq!(check_token(&pad("JPKIAPICCTOKEN2")), Ok(()));
        assert_eq!(check_token(&pad("JPKIAPICCTOKEN")), Err(CardError::JukiCard));
        assert_eq!(check_token(&pad("JPKIAPGPSETOKEN")), Err(CardError::UnknownToken));
        assert_eq!(check_token(b"JPKIAPICCTOKEN2\0\0"), Ok(()));
        assert_eq!(check_token(b""), Err(CardError::UnknownToken));
    }

    #[test]
    fn verify_answers() {
        assert_eq!(verify_result(StatusWord::OK), Ok(()));
        assert_eq!(verify_result(StatusWord(0x63C2)), Err(CardError::WrongPin { tries_left: 2 }));
        assert_eq!(verify_result(StatusWord(0x63C0)), Err(CardError::WrongPin { tries_left: 0 }));
        assert_eq!(verify_result(StatusWord(0x6984)), Err(CardError::Blocked));
        assert_eq!(verify_result(StatusWord(0x6985)), Err(CardError::PinNotSet));
        assert_eq!(
            verify_result(StatusWord(0x6986)),
            Err(CardError::unexpected("VERIFY", StatusWord(0x6986)))
        );
    }
}
