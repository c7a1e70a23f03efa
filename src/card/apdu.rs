//! Command and response APDUs (ISO/IEC 7816-4 §5), short lengths only.
//!
//! Both sides of the card use these types: the kiosk builds [`Command`]s and parses
//! [`Response`]s; the virtual card parses [`Command`]s from untrusted bytes with
//! [`Command::parse`] and builds [`Response`]s. This module never transmits.
//!
//! Only the data field can hold a secret (a PIN), so it lives in a [`Zeroizing`] buffer
//! and [`Command`]'s `Debug` never prints it.

use std::fmt;

use zeroize::Zeroizing;

/// A command APDU: header, optional data field, optional expected length.
///
/// `le` is the number of bytes expected, 1..=256 (256 is encoded as `00`).
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Data field (may hold a PIN: wiped on drop).
    pub data: Zeroizing<Vec<u8>>,
    /// Expected response length, if any (case 2 or 4).
    pub le: Option<u16>,
}

/// Why a byte string is not a short command APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApduParseError {
    /// Fewer than the four header bytes.
    #[error("APDU shorter than its 4-byte header")]
    TooShort,
    /// Lc disagrees with the bytes present, or Lc = 0 with more bytes following.
    #[error("Lc does not match the data present")]
    WrongLength,
    /// Extended-length encoding (a zero byte where Lc or Le starts, with more after it).
    #[error("extended-length APDUs are not supported")]
    ExtendedLength,
}

impl ApduParseError {
    /// The status word a card answers for this malformed command.
    pub fn status_word(self) -> StatusWord {
        StatusWord::WRONG_LENGTH
    }
}

impl Command {
    /// A case-1 command (header only).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Command { cla, ins, p1, p2, data: Zeroizing::new(Vec::new()), le: None }
    }

    /// Sets the data field (case 3, or case 4 with [`Command::with_le`]).
    ///
    /// # Panics
    /// If `data` is longer than 255 bytes: short APDUs cannot carry it, and every caller
    /// in this crate chunks its data first.
    pub fn with_data(mut self, data: &[u8]) -> Self {
        assert!(data.len() <= 255, "short APDU data field holds at most 255 bytes");
        self.data = Zeroizing::new(data.to_vec());
        self
    }

    /// Sets the expected length, 1..=256.
    ///
    /// # Panics
    /// If `le` is 0 or above 256.
    pub fn with_le(mut self, le: u16) -> Self {
        assert!((1..=256).contains(&le), "short Le is 1..=256");
        self.le = Some(le);
        self
    }

    /// Serialises to the bytes sent to the card. The buffer is wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(6 + self.data.len()));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push(if le == 256 { 0 } else { le as u8 });
        }
        out
    }

    /// Parses untrusted bytes as a short command APDU (the four cases of ISO 7816-3 §12.1).
    pub fn parse(bytes: &[u8]) -> Result<Command, ApduParseError> {
        if bytes.len() < 4 {
            return Err(ApduParseError::TooShort);
        }
        let mut cmd = Command::new(bytes[0], bytes[1], bytes[2], bytes[3]);
        let body = &bytes[4..];
        match body.len() {
            // Case 1.
            0 => {}
            // Case 2: Le only (00 = 256).
            1 => cmd.le = Some(if body[0] == 0 { 256 } else { u16::from(body[0]) }),
            _ => {
                let lc = usize::from(body[0]);
                if lc == 0 {
                    // B1 = 00 followed by more bytes is the extended-length form.
                    return Err(ApduParseError::ExtendedLength);
                }
                match body.len() - 1 {
                    n if n == lc => {}
                    n if n == lc + 1 => {
                        let le = body[1 + lc];
                        cmd.le = Some(if le == 0 { 256 } else { u16::from(le) });
                    }
                    _ => return Err(ApduParseError::WrongLength),
                }
                cmd.data = Zeroizing::new(body[1..1 + lc].to_vec());
            }
        }
        Ok(cmd)
    }
}

impl fmt::Debug for Command {
    // The data field may be a PIN: show only its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Command({:02X} {:02X} {:02X} {:02X}, data: {} bytes, le: {:?})",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le
        )
    }
}

/// A two-byte status word (SW1 SW2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// `90 00` success.
    pub const OK: StatusWord = StatusWord(0x9000);
    /// `67 00` wrong length.
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);
    /// `69 81` command incompatible with file structure.
    pub const INCOMPATIBLE_FILE: StatusWord = StatusWord(0x6981);
    /// `69 82` security status not satisfied.
    pub const SECURITY_NOT_SATISFIED: StatusWord = StatusWord(0x6982);
    /// `69 83` authentication method blocked (the administration key).
    pub const AUTH_METHOD_BLOCKED: StatusWord = StatusWord(0x6983);
    /// `69 84` reference data not usable: a blocked PIN, in JICSAP wording.
    pub const PIN_BLOCKED: StatusWord = StatusWord(0x6984);
    /// `69 85` conditions of use not satisfied.
    pub const CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord(0x6985);
    /// `69 86` command not allowed (no current EF).
    pub const NO_CURRENT_EF: StatusWord = StatusWord(0x6986);
    /// `6A 80` incorrect data.
    pub const WRONG_DATA: StatusWord = StatusWord(0x6A80);
    /// `6A 82` file or application not found.
    pub const FILE_NOT_FOUND: StatusWord = StatusWord(0x6A82);
    /// `6A 84` not enough memory space in the file.
    pub const NOT_ENOUGH_MEMORY: StatusWord = StatusWord(0x6A84);
    /// `6A 86` incorrect P1-P2.
    pub const WRONG_P1P2: StatusWord = StatusWord(0x6A86);
    /// `6A 88` referenced data not found.
    pub const DATA_NOT_FOUND: StatusWord = StatusWord(0x6A88);
    /// `6B 00` offset outside the file.
    pub const WRONG_OFFSET: StatusWord = StatusWord(0x6B00);
    /// `6D 00` instruction not supported.
    pub const INS_NOT_SUPPORTED: StatusWord = StatusWord(0x6D00);
    /// `6E 00` class not supported.
    pub const CLA_NOT_SUPPORTED: StatusWord = StatusWord(0x6E00);

    /// SW1.
    pub fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// SW2.
    pub fn sw2(self) -> u8 {
        self.0 as u8
    }

    /// `63 Cx`: a wrong PIN or the retry query, with x tries left.
    pub fn tries_left(self) -> Option<u8> {
        (self.0 & 0xFFF0 == 0x63C0).then_some((self.0 & 0x0F) as u8)
    }

    /// `63 Cx` for `tries` tries left (at most 15).
    pub fn with_tries(tries: u8) -> StatusWord {
        StatusWord(0x63C0 | u16::from(tries.min(15)))
    }

    /// `61 xx`: `Some(n)` bytes still available through GET RESPONSE (`00` = 256).
    pub fn bytes_remaining(self) -> Option<u16> {
        (self.sw1() == 0x61).then(|| if self.sw2() == 0 { 256 } else { u16::from(self.sw2()) })
    }

    /// `61 xx` for `n` remaining bytes (256 and above encode as `00`).
    pub fn more_data(n: usize) -> StatusWord {
        StatusWord(0x6100 | if n >= 256 { 0 } else { n as u16 })
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW({:04X})", self.0)
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X} {:02X}", self.sw1(), self.sw2())
    }
}

/// A response APDU: data followed by the status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data (may be empty). Wiped on drop.
    pub data: Zeroizing<Vec<u8>>,
    /// Status word.
    pub sw: StatusWord,
}

impl Response {
    /// A response with data.
    pub fn new(data: Vec<u8>, sw: StatusWord) -> Self {
        Response { data: Zeroizing::new(data), sw }
    }

    /// A status word alone.
    pub fn status(sw: StatusWord) -> Self {
        Response::new(Vec::new(), sw)
    }

    /// Parses the bytes a card returned. `None` when there is no status word.
    pub fn parse(bytes: &[u8]) -> Option<Response> {
        let n = bytes.len().checked_sub(2)?;
        Some(Response::new(
            bytes[..n].to_vec(),
            StatusWord(u16::from_be_bytes([bytes[n], bytes[n + 1]])),
        ))
    }

    /// Serialises: data then SW1 SW2.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.0.to_be_bytes());
        out
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({} bytes, {:?})", self.data.len(), self.sw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_cases_round_trip() {
        let cases = [
            Command::new(0x00, 0x20, 0x00, 0x80),
            Command::new(0x00, 0xB0, 0x01, 0x00).with_le(256),
            Command::new(0x00, 0xA4, 0x02, 0x0C).with_data(&[0x00, 0x18]),
            Command::new(0x80, 0x2A, 0x00, 0x80).with_data(&[1; 51]).with_le(256),
        ];
        for c in cases {
            assert_eq!(Command::parse(&c.to_bytes()).unwrap(), c);
        }
    }

    #[test]
    fn case2_le_00_means_256() {
        let c = Command::parse(&[0x00, 0xB0, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(c.le, Some(256));
        assert!(c.data.is_empty());
    }

    #[test]
    fn malformed_lengths_are_rejected() {
        assert_eq!(Command::parse(&[0x00, 0xA4, 0x04]), Err(ApduParseError::TooShort));
        // Lc = 5 but 2 bytes present.
        assert_eq!(
            Command::parse(&[0x00, 0xA4, 0x02, 0x0C, 0x05, 0x00, 0x18]),
            Err(ApduParseError::WrongLength)
        );
        // Lc = 1 with two trailing bytes too many.
        assert_eq!(
            Command::parse(&[0x00, 0x20, 0x00, 0x80, 0x01, 0x31, 0x00, 0x00]),
            Err(ApduParseError::WrongLength)
        );
        // Extended length: 00 Lc1 Lc2.
        assert_eq!(
            Command::parse(&[0x00, 0xD6, 0x00, 0x00, 0x00, 0x01, 0x00, 0xAA]),
            Err(ApduParseError::ExtendedLength)
        );
    }

    #[test]
    fn status_word_helpers() {
        assert_eq!(StatusWord(0x63C2).tries_left(), Some(2));
        assert_eq!(StatusWord(0x6300).tries_left(), None);
        assert_eq!(StatusWord::with_tries(5), StatusWord(0x63C5));
        assert_eq!(StatusWord(0x610D).bytes_remaining(), Some(13));
        assert_eq!(StatusWord(0x6100).bytes_remaining(), Some(256));
        assert_eq!(StatusWord::more_data(269 - 256), StatusWord(0x610D));
        assert_eq!(StatusWord::OK.to_string(), "90 00");
    }

    #[test]
    fn debug_never_shows_data() {
        let c = Command::new(0x00, 0x20, 0x00, 0x80).with_data(b"1234");
        let shown = format!("{c:?}");
        assert!(!shown.contains("1234") && !shown.contains("31 32"), "{shown}");
    }

    #[test]
    fn response_parse() {
        let r = Response::parse(&[0xAA, 0x90, 0x00]).unwrap();
        assert_eq!(&r.data[..], &[0xAA]);
        assert_eq!(r.sw, StatusWord::OK);
        assert!(Response::parse(&[0x90]).is_none());
        assert_eq!(r.to_bytes(), vec![0xAA, 0x90, 0x00]);
    }
}
