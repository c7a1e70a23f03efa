//! The vpicc side of vsmartcard's vpcd protocol: the virtual card as a TCP client of the
//! vpcd reader driver inside pcscd.
//!
//! Wire format (both directions): `u16` big-endian length, then that many bytes. From
//! vpcd, a 1-byte payload is a control byte (`00` power off, `01` power on, `02` reset,
//! `04` get ATR — the only one answered); anything else is a command APDU, answered with
//! one frame holding the response APDU.
//!
//! Two socket details matter (see `docs/vcard.md`): Debian 12's vpcd writes the length
//! and the body in two `send()`s, so without `TCP_QUICKACK` re-armed after every read
//! each APDU waits ~44 ms for a delayed ACK; and each reply goes out as one buffer with
//! `TCP_NODELAY`.
//!
//! This module also applies the timing profiles and the fault injections the kiosk's
//! tests use. It does not know what the APDUs mean: that is [`VirtualCard`]'s job.
//! It persists the card (through [`StateFile`]) before replying to any APDU that changed
//! it, so a reply the kiosk saw is never lost by a crash.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use rand_core::OsRng;
use zeroize::Zeroizing;

use super::model::{Operation, PowerEvent, VirtualCard};
use super::state::{StateError, StateFile};
use crate::card::apdu::StatusWord;
use crate::card::files::ATR;

/// vpcd's default port for reader slot 0 (`0x8C7B`).
pub const DEFAULT_VPCD: &str = "127.0.0.1:35963";
/// Pause between connection attempts while vpcd is absent.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(200);

/// vpcd control bytes.
mod control {
    pub const POWER_OFF: u8 = 0x00;
    pub const POWER_ON: u8 = 0x01;
    pub const RESET: u8 = 0x02;
    pub const GET_ATR: u8 = 0x04;
}

/// How long the card takes, modelled on a contact RSA-2048 card or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingProfile {
    /// Total time of an on-card key generation (the real work counts towards it).
    pub keygen: Duration,
    /// Total time of a signature.
    pub sign: Duration,
    /// Link speed in bytes per second over C-APDU + R-APDU bytes; `None` = no delay.
    pub link_bytes_per_sec: Option<u32>,
}

impl TimingProfile {
    /// No added delay.
    pub const FAST: TimingProfile =
        TimingProfile { keygen: Duration::ZERO, sign: Duration::ZERO, link_bytes_per_sec: None };

    /// Published figures for RSA-2048 contact cards: key generation ≈ 10 s, signature
    /// ≈ 270 ms, ≈ 20 KB/s on the wire.
    pub const REAL_CARD: TimingProfile = TimingProfile {
        keygen: Duration::from_secs(10),
        sign: Duration::from_millis(270),
        link_bytes_per_sec: Some(20_000),
    };

    /// The delay to add after `spent` of real work on `op` with `wire_bytes` exchanged.
    pub fn delay(&self, op: Operation, wire_bytes: usize, spent: Duration) -> Duration {
        let link = match self.link_bytes_per_sec {
            Some(bps) if bps > 0 => {
                Duration::from_micros(wire_bytes as u64 * 1_000_000 / u64::from(bps))
            }
            _ => Duration::ZERO,
        };
        let work = match op {
            Operation::Plain => Duration::ZERO,
            Operation::KeyGeneration => self.keygen.saturating_sub(spent),
            Operation::Signature => self.sign.saturating_sub(spent),
        };
        link + work
    }
}

impl Default for TimingProfile {
    fn default() -> Self {
        TimingProfile::FAST
    }
}

/// Faults injected for the kiosk's tests. APDUs are counted from 1 per process run;
/// ATR polls and control bytes do not count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The Nth APDU is not executed: the connection closes (card pulled) and serving ends.
    pub drop_before: Option<u64>,
    /// The Nth APDU is executed and saved, but its reply is never sent: the connection
    /// closes and serving ends.
    pub drop_after: Option<u64>,
    /// Answer these status words to these APDUs, without executing them.
    pub fail_sw: Vec<FailSw>,
    /// Added to every APDU.
    pub latency: Duration,
}

/// `--fail-sw HEX@N`: answer `sw` to the `nth` APDU without executing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailSw {
    /// The status word to answer.
    pub sw: StatusWord,
    /// Which APDU (from 1).
    pub nth: u64,
}

/// Why a `--fail-sw` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FailSwParseError {
    /// Not of the form `HEX@N`, e.g. `6A82@3`.
    #[error("expected SW@N with a 4-digit hex status word and N >= 1, e.g. 6A82@3")]
    Malformed,
}

impl FromStr for FailSw {
    type Err = FailSwParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (sw, nth) = s.split_once('@').ok_or(FailSwParseError::Malformed)?;
        let sw = sw.trim_start_matches("0x").replace(' ', "");
        if sw.len() != 4 {
            return Err(FailSwParseError::Malformed);
        }
        let sw = u16::from_str_radix(&sw, 16).map_err(|_| FailSwParseError::Malformed)?;
        let nth: u64 = nth.parse().map_err(|_| FailSwParseError::Malformed)?;
        if nth == 0 {
            return Err(FailSwParseError::Malformed);
        }
        Ok(FailSw { sw: StatusWord(sw), nth })
    }
}

/// Everything [`serve`] needs besides the card.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// vpcd's address (`HOST:PORT`).
    pub vpcd: String,
    /// Timing profile.
    pub timing: TimingProfile,
    /// Fault injection.
    pub faults: Faults,
    /// Pause between connection attempts.
    pub reconnect_every: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            vpcd: DEFAULT_VPCD.to_string(),
            timing: TimingProfile::FAST,
            faults: Faults::default(),
            reconnect_every: RECONNECT_EVERY,
        }
    }
}

/// How serving ended (it otherwise runs until the process is stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeExit {
    /// A `--drop-before`/`--drop-after` fault pulled the card at this APDU.
    CardPulled {
        /// The APDU number.
        apdu: u64,
        /// Whether the APDU was executed (and saved) before the card was pulled.
        executed: bool,
    },
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VpcdError {
    /// `--vpcd` does not name a socket address.
    #[error("cannot resolve vpcd address {addr}: {source}")]
    Address {
        /// The address given.
        addr: String,
        /// Why it does not resolve.
        #[source]
        source: io::Error,
    },
    /// The card could not be saved; it stops rather than answer for a change it may
    /// forget.
    #[error("cannot save the card")]
    Save(#[from] StateError),
}

/// A parsed vpcd message.
enum Message {
    Control(u8),
    Apdu(Zeroizing<Vec<u8>>),
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Control(b) => write!(f, "Control({b:02X})"),
            Message::Apdu(a) => write!(f, "Apdu({} bytes)", a.len()),
        }
    }
}

/// Resolves `--vpcd` once, up front, so a typo fails fast instead of retrying forever.
pub fn resolve(addr: &str) -> Result<SocketAddr, VpcdError> {
    addr.to_socket_addrs()
        .and_then(|mut it| {
            it.next().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
        })
        .map_err(|source| VpcdError::Address { addr: addr.to_string(), source })
}

/// Serves `card` to vpcd until a fault pulls the card or saving fails. Reconnects every
/// [`ServeConfig::reconnect_every`] while vpcd is absent or after it closes the
/// connection (pcscd restarting); a lost connection is a card removal (power off).
pub fn serve(
    card: &mut VirtualCard,
    file: &StateFile,
    config: &ServeConfig,
) -> Result<ServeExit, VpcdError> {
    let addr = resolve(&config.vpcd)?;
    let mut session = Session { card, file, config, apdus: 0 };
    let mut waiting_logged = false;
    loop {
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                if !waiting_logged {
                    tracing::info!(%addr, error = %e, "vpcd not reachable; retrying");
                    waiting_logged = true;
                }
                thread::sleep(config.reconnect_every);
                continue;
            }
        };
        waiting_logged = false;
        tracing::info!(%addr, "connected to vpcd: card inserted");
        match session.run(stream) {
            Ok(Some(exit)) => return Ok(exit),
            Ok(None) => tracing::info!("vpcd closed the connection: card removed"),
            Err(Failure::Io(e)) => tracing::info!(error = %e, "vpcd connection lost: card removed"),
            Err(Failure::Save(e)) => return Err(VpcdError::Save(e)),
        }
        session.card.power(PowerEvent::Off);
        thread::sleep(config.reconnect_every);
    }
}

enum Failure {
    Io(io::Error),
    Save(StateError),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

struct Session<'a> {
    card: &'a mut VirtualCard,
    file: &'a StateFile,
    config: &'a ServeConfig,
    apdus: u64,
}

impl Session<'_> {
    /// One connection. `Ok(None)`: vpcd closed it; `Ok(Some(_))`: a fault ended serving.
    fn run(&mut self, mut stream: TcpStream) -> Result<Option<ServeExit>, Failure> {
        stream.set_nodelay(true)?;
        loop {
            let message = match read_message(&mut stream) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            match message {
                Message::Control(control::GET_ATR) => write_frame(&mut stream, &ATR)?,
                Message::Control(control::POWER_OFF) => self.power(PowerEvent::Off),
                Message::Control(control::POWER_ON) => self.power(PowerEvent::On),
                Message::Control(control::RESET) => self.power(PowerEvent::Reset),
                Message::Control(other) => {
                    tracing::warn!(control = other, "unknown vpcd control byte ignored")
                }
                Message::Apdu(apdu) => {
                    if let Some(exit) = self.apdu(&mut stream, &apdu)? {
                        let _ = stream.shutdown(Shutdown::Both);
                        return Ok(Some(exit));
                    }
                }
            }
        }
    }

    fn power(&mut self, event: PowerEvent) {
        tracing::debug!(?event, "power");
        self.card.power(event);
    }

    fn apdu(&mut self, stream: &mut TcpStream, apdu: &[u8]) -> Result<Option<ServeExit>, Failure> {
        self.apdus += 1;
        let n = self.apdus;
        let faults = &self.config.faults;
        let header = Header(apdu);
        if faults.drop_before == Some(n) {
            tracing::warn!(n, %header, "fault: card pulled before executing this APDU");
            return Ok(Some(ServeExit::CardPulled { apdu: n, executed: false }));
        }
        let started = Instant::now();
        let (reply, effect) = match faults.fail_sw.iter().find(|f| f.nth == n) {
            Some(f) => {
                tracing::warn!(n, %header, sw = %f.sw, "fault: answering without executing");
                (f.sw.0.to_be_bytes().to_vec(), Default::default())
            }
            None => self.card.process(apdu, &mut OsRng),
        };
        // Save before the reply leaves: the kiosk must never see a success the card forgets.
        if effect.persist {
            self.file.save(self.card.state()).map_err(Failure::Save)?;
        }
        let sw = StatusWord(u16::from_be_bytes([reply[reply.len() - 2], reply[reply.len() - 1]]));
        tracing::debug!(n, %header, reply_len = reply.len() - 2, %sw, saved = effect.persist, "apdu");
        if faults.drop_after == Some(n) {
            tracing::warn!(n, %header, "fault: card pulled after executing this APDU");
            return Ok(Some(ServeExit::CardPulled { apdu: n, executed: true }));
        }
        let delay =
            self.config.timing.delay(effect.operation, apdu.len() + reply.len(), started.elapsed())
                + faults.latency;
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        write_frame(stream, &reply)?;
        Ok(None)
    }
}

/// The APDU header for logs: never the data field, which may be a PIN.
struct Header<'a>(&'a [u8]);

impl fmt::Display for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().take(4).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02X}")?;
        }
        if self.0.len() > 4 {
            write!(f, " +{} bytes", self.0.len() - 4)?;
        }
        Ok(())
    }
}

fn read_message(stream: &mut TcpStream) -> io::Result<Message> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    quickack(stream);
    let len = usize::from(u16::from_be_bytes(len));
    let mut body = Zeroizing::new(vec![0u8; len]);
    stream.read_exact(&mut body)?;
    quickack(stream);
    Ok(if len == 1 { Message::Control(body[0]) } else { Message::Apdu(body) })
}

/// Linux clears TCP_QUICKACK after it fires, so it is re-armed after every read;
/// without it each vpcd message waits ~44 ms (vpcd's split send meets delayed ACK).
fn quickack(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_quickack(true) {
        tracing::debug!(error = %e, "TCP_QUICKACK not set");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// One frame, one buffer: length and body leave in a single segment.
fn write_frame(stream: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    let len = u16::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 65535 bytes"))?;
    let mut frame = Vec::with_capacity(2 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_sw_parses() {
        assert_eq!("6A82@3".parse::<FailSw>(), Ok(FailSw { sw: StatusWord(0x6A82), nth: 3 }));
        assert_eq!("6f00@12".parse::<FailSw>().unwrap().sw, StatusWord(0x6F00));
        for bad in ["6A82", "6A8@1", "6A82@0", "XYZW@1", "6A82@-1", "6A8200@1"] {
            assert!(bad.parse::<FailSw>().is_err(), "{bad}");
        }
    }

    #[test]
    fn real_card_delays() {
        let p = TimingProfile::REAL_CARD;
        // 258-byte signature reply + 57-byte command at 20 KB/s, plus the signature time.
        let d = p.delay(Operation::Signature, 315, Duration::from_millis(20));
        assert_eq!(d, Duration::from_micros(15_750) + Duration::from_millis(250));
        // Real work longer than the model adds nothing for the work itself.
        assert_eq!(p.delay(Operation::KeyGeneration, 0, Duration::from_secs(11)), Duration::ZERO);
        assert_eq!(
            p.delay(Operation::KeyGeneration, 0, Duration::from_secs(1)),
            Duration::from_secs(9)
        );
        assert_eq!(
            TimingProfile::FAST.delay(Operation::Signature, 10_000, Duration::ZERO),
            Duration::ZERO
        );
    }

    #[test]
    fn header_hides_the_data_field() {
        let apdu = [0x00, 0x20, 0x00, 0x80, 0x04, 0x31, 0x32, 0x33, 0x34];
        assert_eq!(Header(&apdu).to_string(), "00 20 00 80 +5 bytes");
        assert_eq!(Header(&[0x00, 0xA4]).to_string(), "00 A4");
    }

    #[test]
    fn frames_are_one_buffer_with_a_length() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        write_frame(&mut server, &[0x90, 0x00]).unwrap();
        let mut got = [0u8; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, [0x00, 0x02, 0x90, 0x00]);
        client.write_all(&[0x00, 0x01, 0x04, 0x00, 0x04, 0x00, 0xA4, 0x04, 0x0C]).unwrap();
        assert!(matches!(read_message(&mut server).unwrap(), Message::Control(0x04)));
        match read_message(&mut server).unwrap() {
            Message::Apdu(a) => assert_eq!(a.as_slice(), &[0x00, 0xA4, 0x04, 0x0C]),
            other => panic!("{other:?}"),
        }
        drop(client);
        assert_eq!(read_message(&mut server).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
