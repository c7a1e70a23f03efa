//! Getting APDUs to the card: the [`CardTransport`] trait, its PC/SC implementation over
//! pcscd ([`PcscTransport`]), and a [`Metered`] wrapper that counts, times and traces.
//!
//! [`CardTransport::transmit`] is the one place that follows `61 xx` with GET RESPONSE
//! (and re-sends on `6C xx`); everything above it sees whole responses. This module knows
//! nothing of JPKI: it neither builds nor interprets commands beyond those two status
//! words. Traces show CLA INS P1 P2, lengths and the status word — never a data field,
//! which may hold a PIN.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use super::apdu::{Command, Response, StatusWord};
use super::error::TransportError;

/// Upper bound on a response assembled from `61 xx` chains: no JPKI object comes near it,
/// and it stops a card that answers `61 xx` forever.
const MAX_RESPONSE: usize = 64 * 1024;

/// Something that carries APDUs to a card and brings back its answers.
pub trait CardTransport {
    /// Sends the bytes of one command APDU and returns the card's answer as is.
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError>;

    /// Sends `cmd` and returns the whole response: `61 xx` is followed with GET RESPONSE
    /// (ISO 7816-4 §7.6.1) until the card stops offering more, and `6C xx` re-sends the
    /// command once with Le = xx. This is the only place in the crate that does either.
    fn transmit(&mut self, cmd: &Command) -> Result<Response, TransportError> {
        let mut resp = self.transmit_raw(&cmd.to_bytes())?;
        if resp.sw.sw1() == 0x6C {
            let le = if resp.sw.sw2() == 0 { 256 } else { u16::from(resp.sw.sw2()) };
            resp = self.transmit_raw(&cmd.clone().with_le(le).to_bytes())?;
        }
        while let Some(n) = resp.sw.bytes_remaining() {
            let more = self.transmit_raw(&get_response(n).to_bytes())?;
            resp.data.extend_from_slice(&more.data);
            resp.sw = more.sw;
            if resp.data.len() > MAX_RESPONSE {
                return Err(TransportError::ResponseTooLong);
            }
        }
        Ok(resp)
    }
}

impl<T: CardTransport + ?Sized> CardTransport for &mut T {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
        (**self).transmit_raw(apdu)
    }
}

impl<T: CardTransport + ?Sized> CardTransport for Box<T> {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
        (**self).transmit_raw(apdu)
    }
}

/// GET RESPONSE `00 C0 00 00 Le` (ISO 7816-4 §11.4.3).
pub fn get_response(le: u16) -> Command {
    Command::new(0x00, 0xC0, 0x00, 0x00).with_le(le)
}

fn pcsc_transmit(card: &pcsc::Card, apdu: &[u8]) -> Result<Response, TransportError> {
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
    let resp = match card.transmit(apdu, &mut buf) {
        Ok(out) => Response::parse(out).ok_or_else(|| after_failure(card, TransportError::NoStatusWord)),
        Err(
            pcsc::Error::NotTransacted | pcsc::Error::CommError | pcsc::Error::UnresponsiveCard,
        ) => Err(after_failure(card, TransportError::CommunicationFailed)),
        Err(e) => Err(e.into()),
    };
    // The buffer may hold card data: wipe it.
    zeroize::Zeroize::zeroize(&mut buf[..]);
    resp
}

/// pcsc-lite and vpcd report a card that vanished in the middle of an exchange as a
/// failed transmission (`SCARD_E_NOT_TRANSACTED`) or an empty answer, not as a removal:
/// ask pcscd whether the card is still there, giving its presence poll (~0.4 s with
/// vpcd) the time to notice. `otherwise` when it stays present.
fn after_failure(card: &pcsc::Card, otherwise: TransportError) -> TransportError {
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        match card.status2_owned() {
            Ok(s) if s.status().contains(pcsc::Status::PRESENT) => {}
            Ok(_) | Err(pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard) => {
                return TransportError::CardRemoved
            }
            Err(pcsc::Error::ResetCard) => return TransportError::CardReset,
            Err(other) => return other.into(),
        }
        if Instant::now() >= deadline {
            return otherwise;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a PC/SC context (fails with [`TransportError::NoService`] when pcscd is down).
pub fn establish() -> Result<pcsc::Context, TransportError> {
    Ok(pcsc::Context::establish(pcsc::Scope::User)?)
}

/// The readers pcscd knows, in its order ([`TransportError::NoReader`] when none).
pub fn list_readers(ctx: &pcsc::Context) -> Result<Vec<CString>, TransportError> {
    let readers = ctx.list_readers_owned()?;
    if readers.is_empty() {
        return Err(TransportError::NoReader);
    }
    Ok(readers)
}

/// Waits until a card is present in `reader` (pcscd's card-inserted event,
/// `SCardGetStatusChange`). Returns the ATR, for logging only: cards are recognised by
/// SELECT, never by ATR.
pub fn wait_for_card(
    ctx: &pcsc::Context,
    reader: &CStr,
    timeout: Duration,
) -> Result<Vec<u8>, TransportError> {
    wait_for_state(ctx, reader, timeout, true)
}

/// Waits up to `timeout` for a card in any reader pcscd lists (the kiosk's one reader,
/// or whichever a resident used) and returns that reader's name. Readers plugged in
/// while waiting are not watched: call again.
pub fn wait_for_any_card(ctx: &pcsc::Context, timeout: Duration) -> Result<CString, TransportError> {
    let deadline = Instant::now() + timeout;
    let mut states: Vec<pcsc::ReaderState> = list_readers(ctx)?
        .into_iter()
        .map(|r| pcsc::ReaderState::new(r, pcsc::State::UNAWARE))
        .collect();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return Err(TransportError::Timeout),
            Err(e) => return Err(e.into()),
        }
        for st in &states {
            let ev = st.event_state();
            if ev.contains(pcsc::State::PRESENT) && !ev.contains(pcsc::State::MUTE) {
                return Ok(st.name().to_owned());
            }
        }
        for st in &mut states {
            st.sync_current_state();
        }
        if left.is_zero() {
            return Err(TransportError::Timeout);
        }
    }
}

/// Whether a (responsive) card is in `reader` now.
pub fn card_present(ctx: &pcsc::Context, reader: &CStr) -> Result<bool, TransportError> {
    match wait_for_state(ctx, reader, Duration::ZERO, true) {
        Ok(_) => Ok(true),
        Err(TransportError::Timeout) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until `reader` is empty (the card was pulled, or the virtual card stopped).
pub fn wait_for_removal(
    ctx: &pcsc::Context,
    reader: &CStr,
    timeout: Duration,
) -> Result<(), TransportError> {
    wait_for_state(ctx, reader, timeout, false).map(|_| ())
}

fn wait_for_state(
    ctx: &pcsc::Context,
    reader: &CStr,
    timeout: Duration,
    present: bool,
) -> Result<Vec<u8>, TransportError> {
    let deadline = Instant::now() + timeout;
    let mut states = [pcsc::ReaderState::new(reader.to_owned(), pcsc::State::UNAWARE)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return Err(TransportError::Timeout),
            Err(e) => return Err(e.into()),
        }
        let st = states[0].event_state();
        if st.contains(pcsc::State::UNKNOWN) {
            return Err(TransportError::NoReader);
        }
        // A mute card (no ATR) counts as absent: nothing can talk to it.
        let is_present = st.contains(pcsc::State::PRESENT) && !st.contains(pcsc::State::MUTE);
        if is_present == present {
            return Ok(states[0].atr().to_vec());
        }
        states[0].sync_current_state();
        if left.is_zero() {
            return Err(TransportError::Timeout);
        }
    }
}

/// A card connected through pcscd, in exclusive share mode (no other process can send
/// APDUs between ours), T=1 or T=0 as the reader negotiates.
pub struct PcscTransport {
    ctx: pcsc::Context,
    reader: CString,
    card: pcsc::Card,
}

impl PcscTransport {
    /// Connects to the card in `reader`. [`TransportError::NoCard`] when it is empty.
    pub fn connect(ctx: &pcsc::Context, reader: &CStr) -> Result<PcscTransport, TransportError> {
        let card = ctx.connect(reader, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY)?;
        Ok(PcscTransport { ctx: ctx.clone(), reader: reader.to_owned(), card })
    }

    /// Waits up to `timeout` for a card in `reader`, then connects to it.
    pub fn wait_and_connect(
        ctx: &pcsc::Context,
        reader: &CStr,
        timeout: Duration,
    ) -> Result<PcscTransport, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            wait_for_card(ctx, reader, deadline.saturating_duration_since(Instant::now()))?;
            match PcscTransport::connect(ctx, reader) {
                // The card can vanish between the event and the connect, or still be
                // powering up: wait for the next event.
                Err(TransportError::NoCard | TransportError::CardRemoved)
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// The reader this transport is connected through.
    pub fn reader(&self) -> &CStr {
        &self.reader
    }

    /// Starts an exclusive PC/SC transaction for a multi-APDU operation. Keep it short:
    /// pcscd and other clients wait while it is open.
    pub fn transaction(&mut self) -> Result<PcscTransaction<'_>, TransportError> {
        Ok(PcscTransaction { tx: self.card.transaction()? })
    }

    /// True while the card is still in the reader and powered for this handle.
    pub fn is_present(&self) -> Result<bool, TransportError> {
        match self.card.status2_owned() {
            Ok(s) => Ok(s.status().contains(pcsc::Status::PRESENT)),
            Err(pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gets a working connection again after [`TransportError::CardReset`] (same card,
    /// fresh security state) or [`TransportError::CardRemoved`] (waits up to `timeout`
    /// for a card, which may be another one: the caller must detect it again).
    pub fn reconnect(&mut self, timeout: Duration) -> Result<(), TransportError> {
        match self.card.reconnect(
            pcsc::ShareMode::Exclusive,
            pcsc::Protocols::ANY,
            pcsc::Disposition::LeaveCard,
        ) {
            Ok(()) => Ok(()),
            Err(_) => {
                let fresh = PcscTransport::wait_and_connect(&self.ctx, &self.reader, timeout)?;
                self.card = fresh.card;
                Ok(())
            }
        }
    }

    /// The reader's name and the card's ATR (for logs).
    pub fn atr(&self) -> Result<Vec<u8>, TransportError> {
        Ok(self.card.status2_owned()?.atr().to_vec())
    }
}

impl CardTransport for PcscTransport {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
        pcsc_transmit(&self.card, apdu)
    }
}

/// An open exclusive transaction on a [`PcscTransport`]; ends (leaving the card as is)
/// when dropped.
pub struct PcscTransaction<'a> {
    tx: pcsc::Transaction<'a>,
}

impl CardTransport for PcscTransaction<'_> {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
        pcsc_transmit(&self.tx, apdu)
    }
}

/// Counts of what went over the wire, for benches and the demo's statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApduStats {
    /// APDUs sent (GET RESPONSE included).
    pub apdus: usize,
    /// Command bytes sent.
    pub bytes_sent: usize,
    /// Response bytes received (status words included).
    pub bytes_received: usize,
    /// Round-trip time of each APDU, in order.
    pub round_trips: Vec<Duration>,
}

impl ApduStats {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &ApduStats) {
        self.apdus += other.apdus;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.round_trips.extend_from_slice(&other.round_trips);
    }

    /// The `q`-quantile (0.0..=1.0) of the round trips, nearest rank.
    pub fn rtt_quantile(&self, q: f64) -> Option<Duration> {
        if self.round_trips.is_empty() {
            return None;
        }
        let mut v = self.round_trips.clone();
        v.sort_unstable();
        let rank = ((q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }
}

/// Wraps a transport: counts APDUs and bytes, times each round trip, and traces the
/// header, lengths and status word of every exchange (never the data).
pub struct Metered<T> {
    inner: T,
    stats: ApduStats,
}

impl<T: CardTransport> Metered<T> {
    /// Starts counting from zero.
    pub fn new(inner: T) -> Metered<T> {
        Metered { inner, stats: ApduStats::default() }
    }

    /// What has gone over the wire so far.
    pub fn stats(&self) -> &ApduStats {
        &self.stats
    }

    /// Takes the counts, restarting from zero.
    pub fn take_stats(&mut self) -> ApduStats {
        std::mem::take(&mut self.stats)
    }

    /// The wrapped transport.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: CardTransport> CardTransport for Metered<T> {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
        let started = Instant::now();
        let result = self.inner.transmit_raw(apdu);
        let rtt = started.elapsed();
        let (lc, le) = header_lengths(apdu);
        let h = |i: usize| apdu.get(i).copied().unwrap_or(0);
        match &result {
            Ok(resp) => {
                self.stats.apdus += 1;
                self.stats.bytes_sent += apdu.len();
                self.stats.bytes_received += resp.data.len() + 2;
                self.stats.round_trips.push(rtt);
                tracing::debug!(
                    "APDU {:02X} {:02X} {:02X} {:02X} lc={} le={} -> {} bytes SW {} ({} us)",
                    h(0), h(1), h(2), h(3), lc, le, resp.data.len(), resp.sw, rtt.as_micros()
                );
            }
            Err(e) => {
                tracing::debug!(
                    "APDU {:02X} {:02X} {:02X} {:02X} lc={} le={} -> error: {e}",
                    h(0), h(1), h(2), h(3), lc, le
                );
            }
        }
        result
    }
}

/// Lc and Le of a short APDU, for traces (0 when absent).
fn header_lengths(apdu: &[u8]) -> (usize, usize) {
    match apdu.len() {
        0..=4 => (0, 0),
        5 => (0, if apdu[4] == 0 { 256 } else { usize::from(apdu[4]) }),
        n => {
            let lc = usize::from(apdu[4]);
            let le = if n > 5 + lc { if apdu[n - 1] == 0 { 256 } else { usize::from(apdu[n - 1]) } } else { 0 };
            (lc, le)
        }
    }
}

/// A status word as a result: `Ok` for `90 00`.
pub fn expect_ok(resp: &Response) -> Result<(), StatusWord> {
    if resp.sw == StatusWord::OK {
        Ok(())
    } else {
        Err(resp.sw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers from a script and records what it was sent.
    struct Script {
        answers: VecDeque<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl CardTransport for Script {
        fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Response, TransportError> {
            self.sent.push(apdu.to_vec());
            let a = self.answers.pop_front().expect("script ran out");
            Response::parse(&a).ok_or(TransportError::NoStatusWord)
        }
    }

    fn script(answers: &[&[u8]]) -> Script {
        Script { answers: answers.iter().map(|a| a.to_vec()).collect(), sent: Vec::new() }
    }

    #[test]
    fn get_response_chain_is_followed() {
        let mut first = vec![0xAA; 256];
        first.extend_from_slice(&[0x61, 0x0D]);
        let mut second = vec![0xBB; 13];
        second.extend_from_slice(&[0x90, 0x00]);
        let mut t = script(&[&first, &second]);
        let r = t.transmit(&Command::new(0x00, 0x47, 0x80, 0x00).with_le(256)).unwrap();
        assert_eq!(r.sw, StatusWord::OK);
        assert_eq!(r.data.len(), 269);
        assert_eq!(t.sent[1], vec![0x00, 0xC0, 0x00, 0x00, 0x0D]);
    }

    #[test]
    fn wrong_le_is_resent_once() {
        let mut t = script(&[&[0x6C, 0x04], &[1, 2, 3, 4, 0x90, 0x00]]);
        let r = t.transmit(&Command::new(0x00, 0xB0, 0x00, 0x00).with_le(256)).unwrap();
        assert_eq!(&r.data[..], &[1, 2, 3, 4]);
        assert_eq!(t.sent[1], vec![0x00, 0xB0, 0x00, 0x00, 0x04]);
    }

    #[test]
    fn endless_61xx_is_cut_off() {
        let answers: Vec<Vec<u8>> = (0..400)
            .map(|_| {
                let mut a = vec![0; 256];
                a.extend_from_slice(&[0x61, 0x00]);
                a
            })
            .collect();
        let mut t = Script { answers: answers.into(), sent: Vec::new() };
        assert_eq!(
            t.transmit(&Command::new(0, 0xC0, 0, 0).with_le(256)).unwrap_err(),
            TransportError::ResponseTooLong
        );
    }

    #[test]
    fn metered_counts_every_apdu_including_get_response() {
        let mut first = vec![0xAA; 256];
        first.extend_from_slice(&[0x61, 0x0D]);
        let mut second = vec![0xBB; 13];
        second.extend_from_slice(&[0x90, 0x00]);
        let mut m = Metered::new(script(&[&first, &second]));
        m.transmit(&Command::new(0x00, 0x47, 0x80, 0x00).with_le(256)).unwrap();
        let s = m.stats();
        assert_eq!(s.apdus, 2);
        assert_eq!(s.bytes_sent, 5 + 5);
        assert_eq!(s.bytes_received, 258 + 15);
        assert_eq!(s.round_trips.len(), 2);
    }

    #[test]
    fn traces_show_the_header_and_never_the_data() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut m = Metered::new(script(&[&[0x63, 0xC2]]));
            let pin = crate::card::pin::AuthPin::new("4711").unwrap();
            m.transmit(&crate::card::jpki_ap::verify(&pin)).unwrap();
        });
        let logged = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("APDU 00 20 00 80 lc=4 le=0 -> 0 bytes SW 63 C2"), "{logged}");
        assert!(!logged.contains("4711") && !logged.contains("34 37 31 31") && !logged.contains("34373131"), "{logged}");
    }

    #[test]
    fn header_lengths_of_the_four_cases() {
        assert_eq!(header_lengths(&[0, 0x20, 0, 0x80]), (0, 0));
        assert_eq!(header_lengths(&[0, 0xB0, 0, 0, 0]), (0, 256));
        assert_eq!(header_lengths(&[0, 0xA4, 2, 0xC, 2, 0, 0x18]), (2, 0));
        assert_eq!(header_lengths(&[0x80, 0x2A, 0, 0x80, 1, 9, 0]), (1, 256));
    }

    #[test]
    fn quantiles() {
        let s = ApduStats {
            round_trips: (1..=100).map(Duration::from_millis).collect(),
            ..Default::default()
        };
        assert_eq!(s.rtt_quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(s.rtt_quantile(0.95), Some(Duration::from_millis(95)));
        assert_eq!(ApduStats::default().rtt_quantile(0.5), None);
    }
}
