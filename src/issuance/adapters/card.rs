//! The card adapter: runs the visit's card commands with the card layer (`card::jpki_ap`,
//! `card::personalize`) over [`PcscTransport`], one exclusive PC/SC transaction per
//! command, as `docs/workflow.md` ("How adapters drive it") maps them.
//!
//! After a pulled card the connection is dropped and the visit hears `CardRemoved`; the
//! next `Detect` connects again and reads the serial afresh, so the state machine can tell
//! the same card from another. What it is not: a decision maker (it never retries a
//! command by itself) or a PIN holder (PINs are borrowed from the [`ResidentPad`]).

use std::ffi::CString;
use std::time::Duration;

use rsa::pkcs8::EncodePublicKey;
use zeroize::Zeroizing;

use super::{current_cert, CardPort, CertDirectory, PadPin, ResidentPad};
use crate::card::apdu::StatusWord;
use crate::card::jpki_ap::JpkiAp;
use crate::card::personalize::{self, Personalizer};
use crate::card::transport::{ApduStats, CardTransport, Metered, PcscTransport};
use crate::card::{CardError, TransportError};
use crate::issuance::command::CardCommand;
use crate::issuance::event::{CardFailure, Event};
use crate::issuance::model::{CardKind, CardSerial, CurrentCert, Slot};

/// Bytes per UPDATE BINARY (`docs/card-protocol.md`: short APDUs).
const WRITE_CHUNK: usize = 255;

/// A card reader through pcscd.
pub struct PcscCard {
    ctx: pcsc::Context,
    reader: CString,
    master_key: Zeroizing<Vec<u8>>,
    conn: Option<PcscTransport>,
    /// How long `Detect` waits for a card before answering "nothing yet".
    pub detect_timeout: Duration,
    /// Every APDU sent so far (for the bench and the pull test).
    pub stats: ApduStats,
    directory: Option<Box<dyn CertDirectory>>,
}

impl std::fmt::Debug for PcscCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscCard")
            .field("reader", &self.reader)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl PcscCard {
    /// A card adapter on `reader`, authenticating as issuer with `master_key`.
    pub fn new(ctx: pcsc::Context, reader: CString, master_key: &[u8]) -> PcscCard {
        PcscCard {
            ctx,
            reader,
            master_key: Zeroizing::new(master_key.to_vec()),
            conn: None,
            detect_timeout: Duration::from_secs(2),
            stats: ApduStats::default(),
            directory: None,
        }
    }

    /// Lets `ReadCurrentCerts` name the signing certificate through `directory` (the CA's
    /// holder query by card id).
    pub fn with_directory(mut self, directory: Box<dyn CertDirectory>) -> PcscCard {
        self.directory = Some(directory);
        self
    }

    /// Runs `f` inside one exclusive transaction on the connected card.
    fn step<R>(
        &mut self,
        f: impl FnOnce(
            &mut JpkiAp<Metered<&mut crate::card::transport::PcscTransaction<'_>>>,
        ) -> Result<R, CardError>,
    ) -> Result<R, CardError> {
        let conn = self
            .conn
            .as_mut()
            .ok_or(CardError::Transport(TransportError::NoCard))?;
        let mut tx = conn.transaction().map_err(CardError::Transport)?;
        let mut ap = JpkiAp::new(Metered::new(&mut tx));
        let result = f(&mut ap);
        self.stats.merge(ap.transport().stats());
        result
    }

    fn connect(&mut self) -> Result<(), CardError> {
        if self.conn.is_none() {
            self.conn = Some(PcscTransport::wait_and_connect(
                &self.ctx,
                &self.reader,
                self.detect_timeout,
            )?);
        }
        Ok(())
    }

    fn detect(&mut self) -> Option<Event> {
        match self.connect() {
            Ok(()) => {}
            Err(CardError::Transport(TransportError::Timeout | TransportError::NoCard)) => {
                return None
            }
            Err(e) => return Some(self.failure(None, e)),
        }
        let found = self.step(|ap| {
            let kind = match ap.detect() {
                Ok(()) => CardKind::MyNumber,
                Err(CardError::JukiCard) => CardKind::Juki,
                Err(e @ CardError::Transport(_)) => return Err(e),
                Err(_) => CardKind::Other,
            };
            let serial = match kind {
                CardKind::MyNumber => hex::encode(Personalizer::new(ap).serial()?),
                _ => String::new(),
            };
            Ok((serial, kind))
        });
        match found {
            Ok((serial, kind)) => Some(Event::CardDetected {
                serial: CardSerial(serial),
                kind,
            }),
            // Pulled while being detected: nothing to report yet, wait for the next card.
            Err(e) if e.is_card_gone() => {
                self.conn = None;
                None
            }
            Err(e) => Some(self.failure(None, e)),
        }
    }

    /// The event for a failed command; a card that left drops the connection.
    fn failure(&mut self, slot: Option<Slot>, e: CardError) -> Event {
        if e.is_card_gone() {
            self.conn = None;
            return Event::CardRemoved;
        }
        let slot = slot.unwrap_or(Slot::Auth);
        let failure = match e {
            CardError::WrongPin { tries_left } => CardFailure::WrongPin { slot, tries_left },
            CardError::Blocked => CardFailure::PinBlocked { slot },
            CardError::AdminKeyBlocked => CardFailure::AdminKeyBlocked,
            CardError::AdminAuthFailed { tries_left } => {
                CardFailure::AdminAuthFailed { tries_left }
            }
            CardError::Transport(_) => CardFailure::Transport,
            other => CardFailure::Unexpected {
                sw: other.status_word().unwrap_or(StatusWord(0x6F00)).0,
            },
        };
        tracing::warn!(?failure, "card command failed");
        Event::CardFailed { failure }
    }

    fn run_one(
        &mut self,
        command: &CardCommand,
        pad: &mut ResidentPad,
    ) -> Result<Event, (Option<Slot>, CardError)> {
        let master = self.master_key.clone();
        match command {
            CardCommand::Detect => unreachable!("handled by run"),
            CardCommand::Authenticate => {
                self.step(|ap| Personalizer::new(ap).authenticate(&master))
                    .map_err(|e| (None, e))?;
                Ok(Event::CardAuthenticated)
            }
            CardCommand::GenerateKey { slot } => {
                let slot = *slot;
                let key = self
                    .step(|ap| Personalizer::new(ap).generate_key_pair(slot.key_slot()))
                    .map_err(|e| (Some(slot), e))?;
                let spki = key
                    .to_public_key_der()
                    .map_err(|_| (Some(slot), CardError::Malformed("public key")))?;
                Ok(Event::KeyGenerated {
                    slot,
                    spki: spki.as_bytes().to_vec(),
                })
            }
            CardCommand::SetPinFromPad { slot } | CardCommand::ResetPin { slot, .. } => {
                let slot = *slot;
                if let CardCommand::ResetPin { card, .. } = command {
                    self.same_card(card).map_err(|e| (Some(slot), e))?;
                }
                let Some(pin) = pad.new_pin(slot) else {
                    // The pad lost its entry (restart): the visit asks again.
                    return Err((Some(slot), CardError::PinNotSet));
                };
                self.step(|ap| match pin {
                    PadPin::Auth(p) => Personalizer::new(ap).set_pin(p),
                    PadPin::Sign(p) => Personalizer::new(ap).set_pin(p),
                })
                .map_err(|e| (Some(slot), e))?;
                pad.forget_new(slot);
                Ok(Event::PinSet { slot })
            }
            CardCommand::ReleaseLock { slot, card } => {
                let slot = *slot;
                self.same_card(card).map_err(|e| (Some(slot), e))?;
                self.step(|ap| Personalizer::new(ap).release_lock(slot.key_slot()))
                    .map_err(|e| (Some(slot), e))?;
                Ok(Event::LockReleased { slot })
            }
            CardCommand::WriteCert { slot, der } => {
                let slot = *slot;
                self.step(|ap| write_cert(ap, slot.key_slot().cert_fid(), &der.0))
                    .map_err(|e| (Some(slot), e))?;
                Ok(Event::CertWritten { slot })
            }
            CardCommand::ReadCert { slot } => {
                let slot = *slot;
                let der = self
                    .step(|ap| ap.read_certificate(slot.key_slot().cert_fid()))
                    .or_else(|e| match e {
                        // An empty EF reads back as nothing: the visit compares and rewrites.
                        CardError::EmptyFile { .. } => Ok(Vec::new()),
                        e => Err(e),
                    })
                    .map_err(|e| (Some(slot), e))?;
                Ok(Event::CertRead {
                    slot,
                    der: der.into(),
                })
            }
            CardCommand::TestSign { slot, digest_info } => {
                let slot = *slot;
                let Some(pin) = pad.confirmation(slot) else {
                    return Err((Some(slot), CardError::PinNotSet));
                };
                let signed = self.step(|ap| {
                    match pin {
                        PadPin::Auth(p) => ap.verify(p)?,
                        PadPin::Sign(p) => ap.verify(p)?,
                    }
                    ap.sign_digest_info(slot.key_slot(), digest_info)
                });
                // A wrong entry is dropped (the visit asks again). A right one stays until
                // the pad is cleared: a card pulled before the read-back repeats the test
                // without asking the resident.
                if matches!(
                    &signed,
                    Err(CardError::WrongPin { .. } | CardError::Blocked)
                ) {
                    pad.forget_confirmation(slot);
                }
                let signature = signed.map_err(|e| (Some(slot), e))?;
                Ok(Event::TestSigned { slot, signature })
            }
            CardCommand::EraseSlot { slot } => {
                let slot = *slot;
                self.step(|ap| {
                    let mut p = Personalizer::new(ap);
                    p.erase(slot.key_slot().cert_fid())?;
                    p.erase(slot.key_slot().key_fid())
                })
                .map_err(|e| (Some(slot), e))?;
                Ok(Event::SlotErased { slot })
            }
            CardCommand::ReadCurrentCerts => self
                .read_current()
                .map(|certs| Event::CurrentCerts { certs }),
        }
    }

    /// The certificates on the card: the auth certificate read as anyone can (no PIN);
    /// the signing certificate, which the card shows only after the signing password, is
    /// the CA's live signing certificate for this card whose key is the key on the card
    /// (read as issuer). Without a directory only the auth certificate is reported.
    fn read_current(&mut self) -> Result<Vec<CurrentCert>, (Option<Slot>, CardError)> {
        let master = self.master_key.clone();
        let (auth, serial, sign_key) = self
            .step(|ap| {
                let auth = match ap.read_certificate(Slot::Auth.key_slot().cert_fid()) {
                    Ok(der) => Some(der),
                    Err(CardError::EmptyFile { .. }) => None,
                    Err(e) => return Err(e),
                };
                let mut p = Personalizer::new(ap);
                let serial = p.authenticate(&master)?;
                let key = match p.read_public_key(Slot::Sign.key_slot()) {
                    Ok(key) => Some(key),
                    Err(CardError::Transport(t)) => return Err(CardError::Transport(t)),
                    Err(_) => None,
                };
                Ok((auth, serial, key))
            })
            .map_err(|e| (None, e))?;
        let mut certs = Vec::new();
        if let Some(der) = auth {
            let cert = <x509_cert::Certificate as der::Decode>::from_der(&der)
                .map_err(|_| (Some(Slot::Auth), CardError::Malformed("certificate")))?;
            certs.extend(current_cert(&cert).filter(|c| c.slot == Slot::Auth));
        }
        if let (Some(key), Some(directory)) = (sign_key, self.directory.as_mut()) {
            let spki = key
                .to_public_key_der()
                .map_err(|_| (Some(Slot::Sign), CardError::Malformed("public key")))?;
            let card = CardSerial(hex::encode(serial));
            match directory.certs_of_card(&card) {
                Ok(found) => certs.extend(
                    found
                        .into_iter()
                        .filter(|(c, key)| c.slot == Slot::Sign && key == spki.as_bytes())
                        .map(|(c, _)| c),
                ),
                Err(e) => {
                    // Without the CA the signing certificate cannot be named: report the
                    // card as unreadable rather than half of it.
                    tracing::warn!(error = %e, "the CA's directory did not answer");
                    return Err((
                        Some(Slot::Sign),
                        CardError::unexpected("directory", StatusWord(0x6F00)),
                    ));
                }
            }
        }
        Ok(certs)
    }

    fn same_card(&mut self, card: &CardSerial) -> Result<(), CardError> {
        let serial = self.step(|ap| Personalizer::new(ap).serial())?;
        if hex::encode(serial) == card.0 {
            Ok(())
        } else {
            Err(CardError::SecurityNotSatisfied)
        }
    }
}

/// SELECT, ERASE BINARY, UPDATE BINARY in chunks; the visit reads it back in its test.
fn write_cert<T: CardTransport>(ap: &mut JpkiAp<T>, ef: u16, der: &[u8]) -> Result<(), CardError> {
    ap.select(ef)?;
    let ok = |sw: StatusWord, what: &'static str| {
        if sw == StatusWord::OK {
            Ok(())
        } else {
            Err(CardError::unexpected(what, sw))
        }
    };
    ok(ap.send(&personalize::erase_binary())?.sw, "ERASE BINARY")?;
    for (i, chunk) in der.chunks(WRITE_CHUNK).enumerate() {
        // The EF holds at most 4096 bytes: the offset fits u16.
        let offset = (i * WRITE_CHUNK) as u16;
        ok(
            ap.send(&personalize::update_binary(offset, chunk))?.sw,
            "UPDATE BINARY",
        )?;
    }
    Ok(())
}

impl CardPort for PcscCard {
    fn run(&mut self, command: &CardCommand, pad: &mut ResidentPad) -> Option<Event> {
        if matches!(command, CardCommand::Detect) {
            return self.detect();
        }
        if self.conn.is_none() {
            return Some(Event::CardRemoved);
        }
        Some(match self.run_one(command, pad) {
            Ok(event) => event,
            Err((slot, e)) => self.failure(slot, e),
        })
    }
}
