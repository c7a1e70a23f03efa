//! ESC/POS for 80 mm thermal receipt printers: the receipt as a 1-bit raster (the same
//! layout as the PDF, rendered by poppler's `pdftoppm` at the printer's 203 dpi), the
//! `GS v 0` command stream that prints it, and the `DLE EOT` status bytes that tell staff
//! about paper out and an open cover.
//!
//! What it is: pure encoding and decoding plus the one call to `pdftoppm`. What it is not:
//! the USB link: `print::usb` writes these bytes to the printer's bulk OUT endpoint and
//! reads the status bytes from bulk IN.
//!
//! Commands used (Epson ESC/POS reference): `ESC @` initialise; `GS v 0 m xL xH yL yH d…`
//! print raster bit image; `ESC d n` feed n lines; `GS V 66 n` feed and partial cut;
//! `DLE EOT n` real-time status (n = 1 printer, n = 2 offline cause, n = 4 roll paper
//! sensor).

use std::path::Path;
use std::process::Command;

use super::PrintError;

/// Dots per inch of common 80 mm thermal heads.
pub const DPI: u32 = 203;
/// Printable width in dots of an 80 mm head (72 mm at 203 dpi).
pub const HEAD_DOTS: u32 = 576;
/// Rows per `GS v 0` command: printers buffer a band at a time, and 255 fits them all.
pub const BAND_ROWS: u32 = 255;

/// A 1-bit image: rows of `ceil(width / 8)` bytes, most significant bit first, 1 = black.
#[derive(Clone, PartialEq, Eq)]
pub struct Raster {
    /// Width in dots.
    pub width: u32,
    /// Height in dots.
    pub height: u32,
    /// The packed rows.
    pub bits: Vec<u8>,
}

impl std::fmt::Debug for Raster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raster({}x{})", self.width, self.height)
    }
}

impl Raster {
    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width.div_ceil(8) as usize
    }

    /// Whether the dot at (x, y) is black.
    pub fn get(&self, x: u32, y: u32) -> bool {
        let byte = self.bits[y as usize * self.stride() + (x / 8) as usize];
        byte & (0x80 >> (x % 8)) != 0
    }

    /// Number of black dots.
    pub fn ink(&self) -> u64 {
        self.bits.iter().map(|b| u64::from(b.count_ones())).sum()
    }

    /// Parses a binary PBM (`P4`), as `pdftoppm -mono` writes it.
    pub fn from_pbm(data: &[u8]) -> Result<Raster, PrintError> {
        let bad = || PrintError::Raster("not a binary PBM image".into());
        let mut fields = Vec::new();
        let mut pos = 0;
        while fields.len() < 3 {
            while pos < data.len() && (data[pos].is_ascii_whitespace() || data[pos] == b'#') {
                if data[pos] == b'#' {
                    while pos < data.len() && data[pos] != b'\n' {
                        pos += 1;
                    }
                }
                pos += 1;
            }
            let start = pos;
            while pos < data.len() && !data[pos].is_ascii_whitespace() {
                pos += 1;
            }
            fields.push(std::str::from_utf8(&data[start..pos]).map_err(|_| bad())?);
        }
        pos += 1; // the single whitespace before the pixels
        if fields[0] != "P4" {
            return Err(bad());
        }
        let width: u32 = fields[1].parse().map_err(|_| bad())?;
        let height: u32 = fields[2].parse().map_err(|_| bad())?;
        let len = width.div_ceil(8) as usize * height as usize;
        let bits = data.get(pos..pos + len).ok_or_else(bad)?.to_vec();
        Ok(Raster { width, height, bits })
    }

    /// The columns `x0 .. x0 + width` (beyond the image counts as white).
    pub fn crop_columns(&self, x0: u32, width: u32) -> Raster {
        let mut out = Raster { width, height: self.height, bits: vec![0; 0] };
        let stride = out.stride();
        out.bits = vec![0; stride * self.height as usize];
        for y in 0..self.height {
            for x in 0..width {
                if x0 + x < self.width && self.get(x0 + x, y) {
                    out.bits[y as usize * stride + (x / 8) as usize] |= 0x80 >> (x % 8);
                }
            }
        }
        out
    }
}

/// Renders page 1 of a PDF laid out for the 80 mm roll as the head's 576-dot raster.
pub fn rasterize_roll_pdf(pdf: &Path) -> Result<Raster, PrintError> {
    let out = Command::new("pdftoppm")
        .args(["-mono", "-r", &DPI.to_string(), "-f", "1", "-l", "1"])
        .arg(pdf)
        .output()
        .map_err(|e| PrintError::Raster(format!("cannot run pdftoppm (poppler-utils): {e}")))?;
    if !out.status.success() {
        return Err(PrintError::Raster(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    let page = Raster::from_pbm(&out.stdout)?;
    // The page is 80 mm wide; the head prints the middle 72 mm.
    let x0 = page.width.saturating_sub(HEAD_DOTS) / 2;
    Ok(page.crop_columns(x0, HEAD_DOTS))
}

/// The byte stream that prints `raster` and cuts the paper.
pub fn encode(raster: &Raster) -> Vec<u8> {
    let stride = raster.stride();
    let mut out = Vec::with_capacity(raster.bits.len() + 64);
    out.extend_from_slice(&[0x1B, 0x40]); // ESC @
    let mut y = 0;
    while y < raster.height {
        let rows = BAND_ROWS.min(raster.height - y);
        let [xl, xh] = (stride as u16).to_le_bytes();
        let [yl, yh] = (rows as u16).to_le_bytes();
        out.extend_from_slice(&[0x1D, 0x76, 0x30, 0x00, xl, xh, yl, yh]);
        let start = y as usize * stride;
        out.extend_from_slice(&raster.bits[start..start + rows as usize * stride]);
        y += rows;
    }
    out.extend_from_slice(&[0x1B, 0x64, 0x04]); // ESC d 4: feed past the cutter
    out.extend_from_slice(&[0x1D, 0x56, 0x42, 0x00]); // GS V 66 0: partial cut
    out
}

/// `DLE EOT 1`: the printer's status (bit 3: offline).
pub const QUERY_PRINTER: [u8; 3] = [0x10, 0x04, 0x01];
/// `DLE EOT 2`: why the printer is offline.
pub const QUERY_OFFLINE_CAUSE: [u8; 3] = [0x10, 0x04, 0x02];
/// `DLE EOT 4`: the roll paper sensor.
pub const QUERY_PAPER: [u8; 3] = [0x10, 0x04, 0x04];

/// The printer's state as staff need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrinterStatus {
    /// The cover is open.
    pub cover_open: bool,
    /// The roll is empty: printing stopped.
    pub paper_out: bool,
    /// The roll is nearly empty: change it soon.
    pub paper_near_end: bool,
    /// The printer says it is offline (`DLE EOT 1` bit 3): for one of the reasons above,
    /// or an error or the feed button.
    pub offline: bool,
}

impl PrinterStatus {
    /// Decodes the answers to [`QUERY_OFFLINE_CAUSE`] and [`QUERY_PAPER`]. A status byte
    /// always has bits 1 and 4 set and bits 0 and 7 clear; anything else is not a status.
    pub fn from_bytes(offline_cause: u8, paper: u8) -> Result<PrinterStatus, PrintError> {
        for b in [offline_cause, paper] {
            if b & 0x93 != 0x12 {
                return Err(PrintError::BadStatus(b));
            }
        }
        Ok(PrinterStatus {
            cover_open: offline_cause & 0x04 != 0,
            paper_out: offline_cause & 0x20 != 0 || paper & 0x60 != 0,
            paper_near_end: paper & 0x0C != 0,
            offline: false,
        })
    }

    /// Decodes the answers to [`QUERY_PRINTER`], [`QUERY_OFFLINE_CAUSE`] and
    /// [`QUERY_PAPER`].
    pub fn from_status_bytes(
        printer: u8,
        offline_cause: u8,
        paper: u8,
    ) -> Result<PrinterStatus, PrintError> {
        if printer & 0x93 != 0x12 {
            return Err(PrintError::BadStatus(printer));
        }
        let mut s = PrinterStatus::from_bytes(offline_cause, paper)?;
        s.offline = printer & 0x08 != 0;
        Ok(s)
    }

    /// Whether a receipt can be printed now.
    pub fn can_print(&self) -> bool {
        !self.cover_open && !self.paper_out && !self.offline
    }

    /// What staff are shown, if anything.
    pub fn notice_ja(&self) -> Option<&'static str> {
        match (self.cover_open, self.paper_out, self.paper_near_end) {
            (true, _, _) => Some("プリンタのカバーが開いています。閉じてください。"),
            (_, true, _) => Some("レシート用紙がありません。用紙を補充してください。"),
            _ if self.offline => Some("プリンタがオフラインです。エラーを解除してください。"),
            (_, _, true) => Some("レシート用紙が残りわずかです。"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbm_parse_and_crop() {
        let mut pbm = b"P4\n# made by hand\n10 2\n".to_vec();
        pbm.extend_from_slice(&[0b1000_0000, 0b0100_0000, 0b0000_0001, 0]);
        let r = Raster::from_pbm(&pbm).unwrap();
        assert_eq!((r.width, r.height, r.ink()), (10, 2, 3));
        assert!(r.get(0, 0) && r.get(9, 0) && r.get(7, 1) && !r.get(1, 0));
        let c = r.crop_columns(7, 8);
        assert_eq!((c.width, c.bits.clone()), (8, vec![0b0010_0000, 0b1000_0000]));
        assert!(Raster::from_pbm(b"P5\n1 1\n\0").is_err());
        assert!(Raster::from_pbm(b"P4\n16 4\n\0").is_err(), "short pixel data");
    }

    #[test]
    fn status_bytes() {
        assert_eq!(PrinterStatus::from_bytes(0x12, 0x12).unwrap(), PrinterStatus::default());
        let s = PrinterStatus::from_bytes(0x12 | 0x04, 0x12).unwrap();
        assert!(s.cover_open && !s.can_print());
        let s = PrinterStatus::from_bytes(0x12 | 0x20, 0x12 | 0x60).unwrap();
        assert!(s.paper_out && s.notice_ja().unwrap().contains("用紙がありません"));
        let s = PrinterStatus::from_bytes(0x12, 0x12 | 0x0C).unwrap();
        assert!(s.can_print() && s.paper_near_end);
        assert!(matches!(PrinterStatus::from_bytes(0xFF, 0x12), Err(PrintError::BadStatus(0xFF))));
        let s = PrinterStatus::from_status_bytes(0x12 | 0x08, 0x12, 0x12).unwrap();
        assert!(s.offline && !s.can_print() && s.notice_ja().unwrap().contains("オフライン"));
        assert!(PrinterStatus::from_status_bytes(0x00, 0x12, 0x12).is_err());
    }

    #[test]
    fn bands_and_cut() {
        let r = Raster { width: 16, height: 300, bits: vec![0xAA; 600] };
        let s = encode(&r);
        assert_eq!(&s[..2], &[0x1B, 0x40]);
        assert_eq!(&s[2..10], &[0x1D, 0x76, 0x30, 0, 2, 0, 255, 0]);
        let second = 10 + 2 * 255;
        assert_eq!(&s[second..second + 8], &[0x1D, 0x76, 0x30, 0, 2, 0, 45, 0]);
        assert!(s.ends_with(&[0x1B, 0x64, 0x04, 0x1D, 0x56, 0x42, 0x00]));
    }
}
