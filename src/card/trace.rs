//! APDU transcripts: record the exchanges of a session, with PIN bytes masked, and replay
//! a recorded transcript to the card layer as if it were the card.
//!
//! The format is line-based text, kept in `tests/fixtures/apdu/*.trace`:
//!
//! ```text
//! # a comment
//! > 00A4040C0AD392F000260100000001
//! < 9000
//! > 0020008004********
//! < 63C2
//! ```
//!
//! `>` is a command APDU, `<` the card's whole response (data then SW), both in hex. In
//! VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER with a new value, the data field
//! (a PIN) is written as `**` per byte, and replay accepts any byte there.
//!
//! This is test support for unit tests of code above the transport. It never replaces
//! pcscd in integration tests, which run against the real stack.

use std::fmt::Write as _;

use super::apdu::Response;
use super::error::TransportError;
use super::transport::CardTransport;

/// True when the data field of this command header carries a PIN.
fn carries_pin(header: &[u8]) -> bool {
    matches!(header, [_, 0x20, ..] | [_, 0x24, ..] | [_, 0x2C, 0x02, ..])
}

/// The hex of a command with a PIN data field masked.
pub fn mask_command(apdu: &[u8]) -> String {
    let mut out = String::with_capacity(apdu.len() * 2);
    let pin_range = if carries_pin(apdu) && apdu.len() > 5 {
        let lc = usize::from(apdu[4]);
        5..(5 + lc).min(apdu.len())
    } else {
        0..0
    };
    for (i, b) in apdu.iter().enumerate() {
        if pin_range.contains(&i) {
            out.push_str("**");
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02X}");
        }
    }
    out
}

/// Wraps a transport and writes every exchange to a transcript.
pub struct Recorder<T> {
    inner: T,
    text: String,
}

impl<T: CardTransport> Recorder<T> {
    /// Starts an empty transcript.
    pub fn new(inner: T) -> Recorder<T> {
        Recorder { inner, text: String::new() }
    }

    /// Adds a `#` comment line (e.g. the step that follows).
    pub fn comment(&mut self, text: &str) {
        for line in text.lines() {
            self.text.push_str("# ");
            self.text.push_str(line);
            self.text.push('\n');
        }
    }

    /// The transcript so far.
    pub fn transcript(&self) -> &str {
        &self.text
    }

    /// The wrapped transport.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: CardTransport> CardTransport for Recorder<T> {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
        let resp = self.inner.transmit_raw(apdu)?;
        self.text.push_str("> ");
        self.text.push_str(&mask_command(apdu));
        self.text.push_str("\n< ");
        self.text.push_str(&hex::encode_upper(resp.to_bytes()));
        self.text.push('\n');
        Ok(resp)
    }
}

/// Why a transcript could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A line is neither a comment, a command, nor a response, or its hex is bad.
    #[error("line {0}: not a transcript line")]
    BadLine(usize),
    /// A command without its response, or a response without a command.
    #[error("line {0}: commands and responses must alternate")]
    Unpaired(usize),
}

/// One exchange: the expected command (`None` bytes are masked) and the answer.
type Exchange = (Vec<Option<u8>>, Vec<u8>);

fn parse_command(hex: &str) -> Option<Vec<Option<u8>>> {
    let b = hex.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|pair| match pair {
            b"**" => Some(None),
            _ => u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok().map(Some),
        })
        .collect()
}

/// Plays a recorded transcript back as the card.
pub struct Replay {
    exchanges: std::collections::VecDeque<Exchange>,
    played: usize,
}

impl Replay {
    /// Reads a transcript.
    pub fn parse(text: &str) -> Result<Replay, TraceError> {
        let mut exchanges = std::collections::VecDeque::new();
        let mut pending: Option<Vec<Option<u8>>> = None;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(cmd) = line.strip_prefix("> ") {
                if pending.is_some() {
                    return Err(TraceError::Unpaired(n));
                }
                pending = Some(parse_command(cmd.trim()).ok_or(TraceError::BadLine(n))?);
            } else if let Some(resp) = line.strip_prefix("< ") {
                let cmd = pending.take().ok_or(TraceError::Unpaired(n))?;
                let resp = hex::decode(resp.trim()).map_err(|_| TraceError::BadLine(n))?;
                if resp.len() < 2 {
                    return Err(TraceError::BadLine(n));
                }
                exchanges.push_back((cmd, resp));
            } else {
                return Err(TraceError::BadLine(n));
            }
        }
        if pending.is_some() {
            return Err(TraceError::Unpaired(text.lines().count()));
        }
        Ok(Replay { exchanges, played: 0 })
    }

    /// Exchanges not played yet.
    pub fn remaining(&self) -> usize {
        self.exchanges.len()
    }
}

impl CardTransport for Replay {
    /// # Panics
    /// When the command differs from the transcript or the transcript has ended: the code
    /// under test no longer sends what was recorded.
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
        self.played += 1;
        let (want, resp) = match self.exchanges.pop_front() {
            Some(x) => x,
            None => panic!("exchange {}: transcript ended, got {}", self.played, mask_command(apdu)),
        };
        let matches = want.len() == apdu.len()
            && want.iter().zip(apdu).all(|(w, b)| w.is_none_or(|w| w == *b));
        if !matches {
            let shown: String =
                want.iter().map(|w| w.map_or("**".to_string(), |b| format!("{b:02X}"))).collect();
            panic!("exchange {}: expected {shown}, got {}", self.played, mask_command(apdu));
        }
        // The transcript held at least two bytes for every response.
        Ok(Response::parse(&resp).expect("checked when parsed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::apdu::{Command, StatusWord};

    #[test]
    fn pins_are_masked_and_nothing_else() {
        assert_eq!(mask_command(&[0x00, 0x20, 0x00, 0x80, 0x04, b'1', b'2', b'3', b'4']), "0020008004********");
        assert_eq!(mask_command(&[0x00, 0x20, 0x00, 0x80]), "00200080");
        assert_eq!(mask_command(&[0x00, 0x2C, 0x02, 0x80, 0x01, b'X']), "002C028001**");
        assert_eq!(mask_command(&[0x00, 0x2C, 0x03, 0x80]), "002C0380");
        assert_eq!(mask_command(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x18]), "00A4020C020018");
    }

    #[test]
    fn a_recording_replays() {
        let mut rec = Recorder::new(Replay::parse("> 00200080\n< 63C3\n> 0020008004********\n< 9000\n").unwrap());
        rec.comment("tries, then the PIN");
        let pin = crate::card::pin::AuthPin::new("1234").unwrap();
        assert_eq!(rec.transmit(&crate::card::jpki_ap::retry_query()).unwrap().sw, StatusWord(0x63C3));
        assert_eq!(rec.transmit(&crate::card::jpki_ap::verify(&pin)).unwrap().sw, StatusWord::OK);
        let text = rec.transcript().to_string();
        assert!(!text.contains("31323334"), "{text}");
        let mut again = Replay::parse(&text).unwrap();
        assert_eq!(again.transmit(&Command::new(0, 0x20, 0, 0x80)).unwrap().sw, StatusWord(0x63C3));
        assert_eq!(again.remaining(), 1);
    }

    #[test]
    #[should_panic(expected = "exchange 1: expected 00200080, got 00A4")]
    fn a_different_command_fails_the_replay() {
        let mut r = Replay::parse("> 00200080\n< 63C3\n").unwrap();
        let _ = r.transmit_raw(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x18]);
    }

    #[test]
    fn bad_transcripts_are_refused() {
        assert_eq!(Replay::parse("> 00\n> 00\n").err(), Some(TraceError::Unpaired(2)));
        assert_eq!(Replay::parse("< 9000\n").err(), Some(TraceError::Unpaired(1)));
        assert_eq!(Replay::parse("> 0G\n< 9000\n").err(), Some(TraceError::BadLine(1)));
        assert_eq!(Replay::parse("hello\n").err(), Some(TraceError::BadLine(1)));
        assert_eq!(Replay::parse("> 00\n").err(), Some(TraceError::Unpaired(1)));
    }
}
