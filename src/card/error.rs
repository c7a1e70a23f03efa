//! Errors of the card layer, in two classes.
//!
//! [`TransportError`] is the reader side: pcscd missing, no reader, no card, the card
//! pulled or reset. [`CardError`] is what the card said, with the status word kept as
//! data so callers can match on tries left or show the raw SW to staff.
//!
//! These types never carry PIN bytes or APDU data fields; their `Display` is for logs.

use super::apdu::StatusWord;

/// The reader side failed: the APDU may or may not have reached the card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// pcscd is not running or its socket is unreachable.
    #[error("the smart card service (pcscd) is not running")]
    NoService,
    /// pcscd answered but lists no reader (or not the one asked for).
    #[error("no card reader found")]
    NoReader,
    /// The reader is empty.
    #[error("no card in the reader")]
    NoCard,
    /// The card left the reader during the operation (pulled, or the virtual card died).
    #[error("the card was removed")]
    CardRemoved,
    /// Someone reset the card: its security state is gone; reconnect and start over.
    #[error("the card was reset")]
    CardReset,
    /// The card stopped answering in the middle of an exchange but is still reported
    /// present (a mute or broken card).
    #[error("the card stopped answering")]
    CommunicationFailed,
    /// A wait for a card event ran out of time.
    #[error("timed out waiting for the card")]
    Timeout,
    /// The card answered with fewer than two bytes (no status word).
    #[error("the card answered without a status word")]
    NoStatusWord,
    /// The card kept answering `61 xx` beyond any sane response size.
    #[error("GET RESPONSE chain too long")]
    ResponseTooLong,
    /// Any other PC/SC failure, kept for diagnosis.
    #[error("PC/SC error: {0}")]
    Pcsc(pcsc::Error),
}

impl From<pcsc::Error> for TransportError {
    fn from(e: pcsc::Error) -> Self {
        match e {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::NoDir => {
                TransportError::NoService
            }
            pcsc::Error::NoReadersAvailable
            | pcsc::Error::UnknownReader
            | pcsc::Error::ReaderUnavailable => TransportError::NoReader,
            pcsc::Error::NoSmartcard => TransportError::NoCard,
            pcsc::Error::RemovedCard | pcsc::Error::UnpoweredCard => TransportError::CardRemoved,
            pcsc::Error::ResetCard => TransportError::CardReset,
            pcsc::Error::Timeout => TransportError::Timeout,
            other => TransportError::Pcsc(other),
        }
    }
}

/// What the card (or its content) said, after the transport delivered the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// The reader side failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// SELECT of the JPKI AID or of the token EF failed: not a JPKI card.
    #[error("not a JPKI card (SELECT answered {0})")]
    NotJpki(StatusWord),
    /// The token EF says `JPKIAPICCTOKEN`: a Juki-net card, which the kiosk does not issue to.
    #[error("this is a Juki-net (住基) card, not a My Number card")]
    JukiCard,
    /// The token EF holds something else (a smartphone token, or garbage).
    #[error("unknown JPKI token")]
    UnknownToken,
    /// VERIFY with a wrong PIN. `tries_left == 0` means this attempt blocked it.
    #[error("wrong PIN, {tries_left} tries left")]
    WrongPin {
        /// Tries left after this attempt.
        tries_left: u8,
    },
    /// The PIN is blocked (`69 84`): only a lock release by the issuer helps.
    #[error("PIN blocked")]
    Blocked,
    /// The PIN was never set (`69 85` to VERIFY).
    #[error("PIN not set")]
    PinNotSet,
    /// Security status not satisfied (`69 82`): PIN not verified or not administratively
    /// authenticated.
    #[error("security status not satisfied")]
    SecurityNotSatisfied,
    /// EXTERNAL AUTHENTICATE rejected the cryptogram (wrong master key).
    #[error("administrative authentication failed, {tries_left} tries left")]
    AdminAuthFailed {
        /// Tries the administration key has left in the card's life.
        tries_left: u8,
    },
    /// The administration key is blocked (`69 83`): the card can never be issued to again.
    #[error("administration key blocked")]
    AdminKeyBlocked,
    /// No key in the key IEF (`6A 88`).
    #[error("no key on the card in that slot")]
    NoKey,
    /// The file is empty (READ BINARY at offset 0 answered `6B 00`).
    #[error("file {fid:04X} is empty")]
    EmptyFile {
        /// The EF.
        fid: u16,
    },
    /// The PIN format was refused by the card (`6A 80`).
    #[error("the card refused the PIN format")]
    BadPinFormat,
    /// A certificate read back differs from what was written (torn or failed write).
    #[error("certificate in EF {fid:04X} does not read back as written")]
    ReadBackMismatch {
        /// The EF.
        fid: u16,
    },
    /// Data from the card is malformed (bad DER header, bad public key object, ...).
    #[error("malformed card data: {0}")]
    Malformed(&'static str),
    /// Data for the card is too large for its file.
    #[error("{len} bytes do not fit a {capacity}-byte file")]
    TooLarge {
        /// Bytes offered.
        len: usize,
        /// File capacity.
        capacity: usize,
    },
    /// Any other status word, with the command that got it.
    #[error("{command} answered {sw}")]
    Unexpected {
        /// Name of the command, e.g. "READ BINARY".
        command: &'static str,
        /// The status word.
        sw: StatusWord,
    },
}

impl CardError {
    /// The catch-all for a status word no rule above covers.
    pub fn unexpected(command: &'static str, sw: StatusWord) -> Self {
        CardError::Unexpected { command, sw }
    }

    /// The status word behind this error, when the card gave one.
    pub fn status_word(&self) -> Option<StatusWord> {
        match self {
            CardError::NotJpki(sw) | CardError::Unexpected { sw, .. } => Some(*sw),
            CardError::WrongPin { tries_left } | CardError::AdminAuthFailed { tries_left } => {
                Some(StatusWord::with_tries(*tries_left))
            }
            CardError::Blocked => Some(StatusWord::PIN_BLOCKED),
            CardError::SecurityNotSatisfied => Some(StatusWord::SECURITY_NOT_SATISFIED),
            CardError::AdminKeyBlocked => Some(StatusWord::AUTH_METHOD_BLOCKED),
            CardError::NoKey => Some(StatusWord::DATA_NOT_FOUND),
            CardError::BadPinFormat => Some(StatusWord::WRONG_DATA),
            _ => None,
        }
    }

    /// True when the card left or was reset: the step can be redone after reconnecting.
    pub fn is_card_gone(&self) -> bool {
        matches!(
            self,
            CardError::Transport(
                TransportError::CardRemoved
                    | TransportError::CardReset
                    | TransportError::NoCard
                    | TransportError::CommunicationFailed
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcsc_errors_map_to_typed_variants() {
        assert_eq!(TransportError::from(pcsc::Error::NoService), TransportError::NoService);
        assert_eq!(TransportError::from(pcsc::Error::RemovedCard), TransportError::CardRemoved);
        assert_eq!(TransportError::from(pcsc::Error::ResetCard), TransportError::CardReset);
        assert_eq!(TransportError::from(pcsc::Error::NoSmartcard), TransportError::NoCard);
        assert_eq!(TransportError::from(pcsc::Error::NoReadersAvailable), TransportError::NoReader);
        assert_eq!(
            TransportError::from(pcsc::Error::SharingViolation),
            TransportError::Pcsc(pcsc::Error::SharingViolation)
        );
    }

    #[test]
    fn status_word_is_kept() {
        assert_eq!(CardError::WrongPin { tries_left: 2 }.status_word(), Some(StatusWord(0x63C2)));
        assert_eq!(
            CardError::unexpected("READ BINARY", StatusWord(0x6F00)).status_word(),
            Some(StatusWord(0x6F00))
        );
        assert!(CardError::from(TransportError::CardRemoved).is_card_gone());
        assert!(!CardError::Blocked.is_card_gone());
    }
}
