//! The USB link to an 80 mm ESC/POS receipt printer, for counters without CUPS: find the
//! printer, claim its interface, write the raster stream of [`super::escpos`] to the bulk
//! OUT endpoint and read the `DLE EOT` status bytes back from bulk IN.
//!
//! What it is: [`EscPosLink`], the two things a receipt needs from a printer (send bytes,
//! ask one status byte); [`UsbPrinter`], that link over libusb (`rusb`); and
//! [`print_stream`], which checks the printer before and after a receipt and turns what it
//! says into a [`UsbError`] with the message staff see.
//!
//! What it is not: the raster (that is `escpos`), nor the receipt job's bookkeeping (that is
//! `jobs`). It does not retry: a printer that is out of paper stays so until staff act.

use std::time::Duration;

use super::escpos::{PrinterStatus, QUERY_OFFLINE_CAUSE, QUERY_PAPER, QUERY_PRINTER};

/// USB interface class of printers (USB Printer Class 1.1).
pub const PRINTER_CLASS: u8 = 0x07;
/// Vendor-specific interface class: Epson and Star receipt printers often use it.
const VENDOR_CLASS: u8 = 0xFF;

/// Vendors whose receipt printers speak ESC/POS on a vendor-specific interface:
/// Seiko Epson (TM series) and Star Micronics (TSP/mC-Print in ESC/POS mode).
pub const ESC_POS_VENDORS: [u16; 2] = [0x04B8, 0x0519];

/// Bytes per bulk write: well under what any printer's buffer takes, so a status query
/// between receipts is never queued behind megabytes.
const CHUNK: usize = 16 * 1024;
/// How long one bulk transfer may take before the printer counts as not answering.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a receipt did not reach a USB printer. Each variant says what staff see
/// ([`UsbError::notice_ja`]) and what they do ([`UsbError::action_ja`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsbError {
    /// No ESC/POS printer is attached (or the configured vendor:product is absent).
    #[error("no ESC/POS receipt printer found on USB")]
    NotFound,
    /// The printer is there but the kiosk may not open it (device permissions).
    #[error("the USB printer cannot be opened: permission denied")]
    Access,
    /// Another driver or program holds the printer's interface.
    #[error("the USB printer is in use by another driver or program")]
    Busy,
    /// The cover is open: the printer stopped.
    #[error("printer cover open")]
    CoverOpen,
    /// The roll is empty: the printer stopped.
    #[error("printer out of paper")]
    PaperOut,
    /// The printer says it is offline for another reason (error, feed button held).
    #[error("printer offline")]
    Offline,
    /// The printer did not answer in time.
    #[error("the USB printer did not answer")]
    Timeout,
    /// The printer answered a status query with a byte that is not a status.
    #[error("printer status byte {0:#04x} is not an ESC/POS status")]
    BadStatus(u8),
    /// libusb failed otherwise (unplugged mid-job, a broken cable, no USB at all).
    #[error("USB: {0}")]
    Link(rusb::Error),
}

impl From<rusb::Error> for UsbError {
    fn from(e: rusb::Error) -> UsbError {
        match e {
            rusb::Error::Access => UsbError::Access,
            rusb::Error::Busy => UsbError::Busy,
            rusb::Error::Timeout => UsbError::Timeout,
            rusb::Error::NoDevice | rusb::Error::NotFound => UsbError::NotFound,
            other => UsbError::Link(other),
        }
    }
}

impl UsbError {
    /// What staff are shown.
    pub fn notice_ja(&self) -> &'static str {
        match self {
            UsbError::NotFound => "レシートプリンタが見つかりません。",
            UsbError::Access | UsbError::Busy => "レシートプリンタを使用できません。",
            UsbError::CoverOpen => "プリンタのカバーが開いています。",
            UsbError::PaperOut => "レシート用紙がありません。",
            UsbError::Offline => "プリンタがオフラインです。",
            UsbError::Timeout | UsbError::BadStatus(_) | UsbError::Link(_) => {
                "レシートプリンタが応答しません。"
            }
        }
    }

    /// What staff do about it.
    pub fn action_ja(&self) -> &'static str {
        match self {
            UsbError::NotFound | UsbError::Timeout | UsbError::BadStatus(_) | UsbError::Link(_) => {
                "電源とUSBケーブルを確認し、再印刷してください。"
            }
            UsbError::Access | UsbError::Busy => "システム管理者に連絡してください。",
            UsbError::CoverOpen => "カバーを閉じてから再印刷してください。",
            UsbError::PaperOut => "用紙を補充してから再印刷してください。",
            UsbError::Offline => "プリンタのエラーを解除してから再印刷してください。",
        }
    }

    /// Whether the printer stopped for something staff fix at the printer (paper, cover),
    /// as opposed to a link or setup problem.
    pub fn is_paper_out(&self) -> bool {
        matches!(self, UsbError::PaperOut)
    }
}

/// What a receipt needs from a printer link.
pub trait EscPosLink {
    /// Writes `bytes` to the printer, in order, all of them.
    fn send(&mut self, bytes: &[u8]) -> Result<(), UsbError>;
    /// Sends a real-time status request (`DLE EOT n`) and returns the one byte answered.
    fn query(&mut self, request: [u8; 3]) -> Result<u8, UsbError>;
}

impl<T: EscPosLink + ?Sized> EscPosLink for &mut T {
    fn send(&mut self, bytes: &[u8]) -> Result<(), UsbError> {
        (**self).send(bytes)
    }
    fn query(&mut self, request: [u8; 3]) -> Result<u8, UsbError> {
        (**self).query(request)
    }
}

/// Asks the printer's three status bytes and decodes them.
pub fn read_status(link: &mut dyn EscPosLink) -> Result<PrinterStatus, UsbError> {
    let printer = link.query(QUERY_PRINTER)?;
    let cause = link.query(QUERY_OFFLINE_CAUSE)?;
    let paper = link.query(QUERY_PAPER)?;
    PrinterStatus::from_status_bytes(printer, cause, paper).map_err(|_| {
        // Name the first byte that is not a status.
        let bad = [printer, cause, paper].into_iter().find(|b| b & 0x93 != 0x12).unwrap_or(0);
        UsbError::BadStatus(bad)
    })
}

fn stopped(status: &PrinterStatus) -> Option<UsbError> {
    if status.cover_open {
        Some(UsbError::CoverOpen)
    } else if status.paper_out {
        Some(UsbError::PaperOut)
    } else if status.offline {
        Some(UsbError::Offline)
    } else {
        None
    }
}

/// How far a receipt got before it failed.
#[derive(Debug)]
pub struct StreamFailure {
    /// Whether any of the receipt's bytes reached the printer (paper may exist).
    pub sent: bool,
    /// Why.
    pub error: UsbError,
}

/// Prints one receipt stream: checks the printer can print, sends the stream, and asks the
/// status again (a roll that ran out mid-receipt is reported). Returns the final status
/// (e.g. paper near end, for staff).
pub fn print_stream(
    link: &mut dyn EscPosLink,
    stream: &[u8],
) -> Result<PrinterStatus, StreamFailure> {
    let before = read_status(link).map_err(|error| StreamFailure { sent: false, error })?;
    if let Some(error) = stopped(&before) {
        return Err(StreamFailure { sent: false, error });
    }
    for chunk in stream.chunks(CHUNK) {
        link.send(chunk).map_err(|error| StreamFailure { sent: true, error })?;
    }
    let after = read_status(link).map_err(|error| StreamFailure { sent: true, error })?;
    match stopped(&after) {
        Some(error) => Err(StreamFailure { sent: true, error }),
        None => Ok(after),
    }
}

/// Which USB printer to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsbSelector {
    /// A `vendor:product` pair; `None` takes the first printer found.
    pub id: Option<(u16, u16)>,
}

/// A USB receipt printer, its interface claimed for as long as this lives.
pub struct UsbPrinter {
    handle: rusb::DeviceHandle<rusb::Context>,
    interface: u8,
    out_ep: u8,
    in_ep: Option<u8>,
}

impl std::fmt::Debug for UsbPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsbPrinter")
            .field("interface", &self.interface)
            .field("out_ep", &self.out_ep)
            .field("in_ep", &self.in_ep)
            .finish()
    }
}

/// An interface that can take a receipt: its number and its bulk endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    interface: u8,
    setting: u8,
    out_ep: u8,
    in_ep: Option<u8>,
}

fn candidate(
    vendor: u16,
    config: &rusb::ConfigDescriptor,
    wanted: Option<(u16, u16)>,
    product: u16,
) -> Option<Candidate> {
    let named = wanted == Some((vendor, product));
    for iface in config.interfaces() {
        for d in iface.descriptors() {
            let fits = d.class_code() == PRINTER_CLASS
                || named
                || (d.class_code() == VENDOR_CLASS && ESC_POS_VENDORS.contains(&vendor));
            if !fits {
                continue;
            }
            let bulk = |dir: rusb::Direction| {
                d.endpoint_descriptors()
                    .find(|e| e.transfer_type() == rusb::TransferType::Bulk && e.direction() == dir)
                    .map(|e| e.address())
            };
            if let Some(out_ep) = bulk(rusb::Direction::Out) {
                return Some(Candidate {
                    interface: d.interface_number(),
                    setting: d.setting_number(),
                    out_ep,
                    in_ep: bulk(rusb::Direction::In),
                });
            }
        }
    }
    None
}

impl UsbPrinter {
    /// Finds the printer `selector` names (or the first one attached), detaches a kernel
    /// driver (`usblp`) if one holds it, and claims its interface.
    pub fn open(selector: &UsbSelector) -> Result<UsbPrinter, UsbError> {
        use rusb::UsbContext;
        // A machine without any USB host (a VM) has nothing to enumerate: no printer.
        let ctx = rusb::Context::new().map_err(|_| UsbError::NotFound)?;
        let devices = ctx.devices().map_err(|_| UsbError::NotFound)?;
        for device in devices.iter() {
            let Ok(desc) = device.device_descriptor() else { continue };
            let (vendor, product) = (desc.vendor_id(), desc.product_id());
            if selector.id.is_some_and(|id| id != (vendor, product)) {
                continue;
            }
            let Ok(config) = device.active_config_descriptor() else { continue };
            let Some(c) = candidate(vendor, &config, selector.id, product) else { continue };
            let handle = device.open()?;
            // Not every platform can detach; where it cannot, claiming says so.
            let _ = handle.set_auto_detach_kernel_driver(true);
            handle.claim_interface(c.interface)?;
            if c.setting != 0 {
                handle.set_alternate_setting(c.interface, c.setting)?;
            }
            tracing::info!(vendor, product, interface = c.interface, "USB receipt printer opened");
            return Ok(UsbPrinter {
                handle,
                interface: c.interface,
                out_ep: c.out_ep,
                in_ep: c.in_ep,
            });
        }
        Err(UsbError::NotFound)
    }
}

impl EscPosLink for UsbPrinter {
    fn send(&mut self, mut bytes: &[u8]) -> Result<(), UsbError> {
        while !bytes.is_empty() {
            let n = self.handle.write_bulk(self.out_ep, bytes, TRANSFER_TIMEOUT)?;
            if n == 0 {
                return Err(UsbError::Timeout);
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn query(&mut self, request: [u8; 3]) -> Result<u8, UsbError> {
        // A printer without a bulk IN endpoint cannot report: treat as not answering.
        let in_ep = self.in_ep.ok_or(UsbError::Timeout)?;
        self.send(&request)?;
        let mut buf = [0u8; 64];
        let n = self.handle.read_bulk(in_ep, &mut buf, TRANSFER_TIMEOUT)?;
        // Some printers prefix a zero-length or stale byte; the answer is the last one.
        buf[..n].last().copied().ok_or(UsbError::Timeout)
    }
}

impl Drop for UsbPrinter {
    fn drop(&mut self) {
        let _ = self.handle.release_interface(self.interface);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A printer at the other end of the link: keeps what it was sent and answers status
    /// queries from its state, as a TM-T88 does.
    struct Bench {
        got: Vec<u8>,
        printer: u8,
        cause: u8,
        paper: u8,
        run_out_after_send: bool,
    }

    impl Bench {
        fn ready() -> Bench {
            Bench {
                got: Vec::new(),
                printer: 0x12,
                cause: 0x12,
                paper: 0x12,
                run_out_after_send: false,
            }
        }
    }

    impl EscPosLink for Bench {
        fn send(&mut self, bytes: &[u8]) -> Result<(), UsbError> {
            self.got.extend_from_slice(bytes);
            if self.run_out_after_send {
                self.cause |= 0x20;
                self.paper |= 0x60;
            }
            Ok(())
        }
        fn query(&mut self, request: [u8; 3]) -> Result<u8, UsbError> {
            Ok(match request[2] {
                1 => self.printer,
                2 => self.cause,
                4 => self.paper,
                n => panic!("unexpected DLE EOT {n}"),
            })
        }
    }

    #[test]
    fn ready_printer_gets_the_stream() {
        let mut p = Bench::ready();
        let stream = vec![0xAB; 40_000];
        let status = print_stream(&mut p, &stream).unwrap();
        assert!(status.can_print());
        assert_eq!(p.got, stream);
    }

    #[test]
    fn stopped_printers_get_nothing_and_say_why() {
        for (printer, cause, paper, want) in [
            (0x12, 0x16, 0x12, "カバー"),
            (0x12, 0x32, 0x72, "用紙"),
            (0x1A, 0x12, 0x12, "オフライン"),
        ] {
            let mut p = Bench { printer, cause, paper, ..Bench::ready() };
            let f = print_stream(&mut p, b"\x1b@").unwrap_err();
            assert!(!f.sent && p.got.is_empty());
            assert!(f.error.notice_ja().contains(want), "{}", f.error.notice_ja());
            assert!(f.error.action_ja().contains("再印刷"));
        }
    }

    #[test]
    fn paper_running_out_mid_receipt_counts_as_sent() {
        let mut p = Bench { run_out_after_send: true, ..Bench::ready() };
        let f = print_stream(&mut p, b"\x1b@").unwrap_err();
        assert!(f.sent && f.error.is_paper_out());
    }

    #[test]
    fn garbage_status_is_named() {
        let mut p = Bench { paper: 0xFF, ..Bench::ready() };
        assert!(matches!(read_status(&mut p), Err(UsbError::BadStatus(0xFF))));
    }

    #[test]
    fn libusb_errors_map_to_staff_errors() {
        assert!(matches!(UsbError::from(rusb::Error::Access), UsbError::Access));
        assert!(matches!(UsbError::from(rusb::Error::NoDevice), UsbError::NotFound));
        assert!(matches!(UsbError::from(rusb::Error::Pipe), UsbError::Link(_)));
    }
}
