//! Printed documents: the receipt (領収書) and issuance record (交付記録) of a visit, the
//! day's ledger, and the receipt jobs that make sure a paid visit always gets its receipt.
//!
//! What it is:
//! - [`pdf`]: the one module that drives printpdf (a line layout on 80 mm roll or A4,
//!   Japanese font subset into the file);
//! - [`receipt`]: the two slips of a visit;
//! - [`day`]: the day's ledger PDF and the `jpki-kiosk ledger` export;
//! - [`escpos`]: the receipt as an ESC/POS raster stream, and the printer's status bytes;
//! - [`usb`]: the USB link to an ESC/POS printer (`rusb`), with its status read back;
//! - [`jobs`]: the receipt-job table and the printer outputs (CUPS `lp`, a USB ESC/POS
//!   printer, or a PDF saved for staff).
//!
//! What it is not: the ledger's arithmetic (`ledger`), nor the audit trail.

use std::path::PathBuf;

pub mod day;
pub mod escpos;
pub mod jobs;
pub mod pdf;
pub mod receipt;
pub mod usb;

pub use pdf::{Font, Paper, DEFAULT_FONT_PATH};

/// Why a document could not be produced or printed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrintError {
    /// The font file is not there: install the Debian package or configure the path.
    #[error(
        "font {path} not found ({source}); install the Debian package fonts-ipaexfont-gothic \
         or configure another Japanese font"
    )]
    FontMissing {
        /// The path tried.
        path: PathBuf,
        /// The error from the file system.
        source: std::io::Error,
    },
    /// The file is there but is not a TrueType/OpenType font.
    #[error("font {path} could not be parsed")]
    FontUnreadable {
        /// The path tried.
        path: PathBuf,
    },
    /// printpdf produced nothing (a bug on our side or in printpdf).
    #[error("PDF rendering produced no output")]
    Render,
    /// There is no ledger database where it was looked for.
    #[error("no ledger database at {path}")]
    NoLedger {
        /// The path tried.
        path: PathBuf,
    },
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// Writing the CSV failed.
    #[error(transparent)]
    Export(#[from] crate::ledger::export::ExportError),
    /// A file could not be written (disk full, permissions).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error from the file system.
        source: std::io::Error,
    },
    /// The PDF could not be turned into a printer raster (poppler-utils missing or failed).
    #[error("receipt raster: {0}")]
    Raster(String),
    /// The printer answered a status query with a byte that is not a status (wrong device
    /// or a garbled link).
    #[error("printer status byte {0:#04x} is not an ESC/POS status")]
    BadStatus(u8),
    /// The USB receipt printer could not take the receipt (absent, paper out, cover open…).
    #[error("USB receipt printer: {0}")]
    Usb(#[from] usb::UsbError),
    /// The print spooler refused or failed the job (queue missing, cupsd down, paper out
    /// on a printer that reports it).
    #[error("printing to queue {queue} failed: {detail}")]
    Spooler {
        /// The CUPS queue.
        queue: String,
        /// What `lp` said.
        detail: String,
    },
}
