//! A small line-based PDF writer on top of printpdf: rows of positioned text cells, rules
//! and gaps, flowed top to bottom onto 80 mm roll paper or A4 pages.
//!
//! What it is: the one place that touches printpdf, so receipts and the ledger describe
//! *what* to print and this module decides *where*. The font is subset on save (printpdf's
//! `text_layout` feature), so a receipt is kilobytes, not the 4 MB of the whole font.
//! What it is not: a text shaper. Japanese needs no shaping; a cell that is too wide is
//! the caller's to shorten (see [`Font::fit`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use printpdf::{
    Codepoint, Line, LinePoint, Mm, Op, ParsedFont, PdfDocument, PdfFontHandle, PdfPage,
    PdfSaveOptions, Point, Pt, TextItem, TextMatrix,
};

use super::PrintError;

/// Where Debian's `fonts-ipaexfont-gothic` installs IPAex Gothic.
pub const DEFAULT_FONT_PATH: &str = "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf";

/// A loaded TrueType/OpenType font.
pub struct Font {
    parsed: ParsedFont,
    path: PathBuf,
    units_per_em: f32,
    /// Glyph id and advance (font units) per character: a day's ledger measures and
    /// writes the same few hundred characters hundreds of thousands of times, and the
    /// font's own cmap lookup is a linear scan (it was most of a ledger's render time).
    glyphs: Mutex<HashMap<char, (u16, u16)>>,
}

impl std::fmt::Debug for Font {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Font").field("path", &self.path).finish()
    }
}

impl Font {
    /// Loads face 0 of the font file at `path`.
    pub fn load(path: &Path) -> Result<Font, PrintError> {
        let bytes = std::fs::read(path)
            .map_err(|source| PrintError::FontMissing { path: path.to_owned(), source })?;
        let mut warnings = Vec::new();
        let parsed = ParsedFont::from_bytes(&bytes, 0, &mut warnings)
            .ok_or_else(|| PrintError::FontUnreadable { path: path.to_owned() })?;
        let units_per_em = f32::from(parsed.pdf_font_metrics.units_per_em.max(1));
        Ok(Font { parsed, path: path.to_owned(), units_per_em, glyphs: Mutex::default() })
    }

    /// Loads IPAex Gothic from [`DEFAULT_FONT_PATH`].
    pub fn load_default() -> Result<Font, PrintError> {
        Font::load(Path::new(DEFAULT_FONT_PATH))
    }

    /// The file the font came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether every character of `text` has a glyph (else it would print as a box).
    pub fn covers(&self, text: &str) -> bool {
        text.chars()
            .all(|c| c.is_whitespace() || self.parsed.lookup_glyph_index(c as u32).is_some())
    }

    /// The glyph id and advance of `c` (0, the missing glyph, when the font lacks it).
    fn glyph(&self, c: char) -> (u16, u16) {
        // A poisoned cache only means another thread panicked mid-insert; its map is whole.
        let mut cache = self.glyphs.lock().unwrap_or_else(|e| e.into_inner());
        *cache.entry(c).or_insert_with(|| {
            let gid = self.parsed.lookup_glyph_index(c as u32).unwrap_or(0);
            (gid, self.parsed.get_horizontal_advance(gid))
        })
    }

    /// The advance width of `text` at `size`, in points.
    pub fn width_pt(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text.chars().map(|c| u32::from(self.glyph(c).1)).sum();
        units as f32 / self.units_per_em * size
    }

    /// `text` as glyph ids, each with its character for the PDF's text layer (so printpdf
    /// does no cmap lookups of its own).
    fn codepoints(&self, text: &str) -> Vec<Codepoint> {
        text.chars().map(|c| Codepoint::with_cid(self.glyph(c).0, 0.0, c.to_string())).collect()
    }

    /// `text`, cut to `max_pt` wide with a trailing `…` if it does not fit.
    pub fn fit(&self, text: &str, size: f32, max_pt: f32) -> String {
        if self.width_pt(text, size) <= max_pt {
            return text.to_owned();
        }
        let mut out = String::new();
        for c in text.chars() {
            out.push(c);
            if self.width_pt(&out, size) + self.width_pt("…", size) > max_pt {
                out.pop();
                break;
            }
        }
        out.push('…');
        out
    }
}

/// The paper a document is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paper {
    /// 80 mm thermal roll (72 mm printable); the page is as long as its content.
    Roll80,
    /// A4 portrait, paginated.
    A4,
}

impl Paper {
    /// Page width in mm.
    pub fn width_mm(self) -> f32 {
        match self {
            Paper::Roll80 => 80.0,
            Paper::A4 => 210.0,
        }
    }

    /// Left and right margin in mm (80 mm printers cannot print the outer 4 mm).
    pub fn margin_mm(self) -> f32 {
        match self {
            Paper::Roll80 => 4.0,
            Paper::A4 => 18.0,
        }
    }

    fn page_height_mm(self) -> Option<f32> {
        match self {
            Paper::Roll80 => None,
            Paper::A4 => Some(297.0),
        }
    }
}

/// How a cell sits on its x position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// x is the left edge.
    Left,
    /// x is the right edge.
    Right,
    /// x is the centre.
    Center,
}

/// One piece of text on a row; `x_mm` counts from the left margin.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Position from the left margin.
    pub x_mm: f32,
    /// Alignment on `x_mm`.
    pub align: Align,
    /// The text.
    pub text: String,
}

/// A vertical piece of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A row of cells at one font size (points).
    Row {
        /// Font size in points.
        size: f32,
        /// The cells.
        cells: Vec<Cell>,
    },
    /// A horizontal line across the printable width.
    Rule,
    /// Empty space in mm.
    Gap(f32),
}

impl Block {
    /// A row with one left-aligned cell.
    pub fn left(size: f32, text: impl Into<String>) -> Block {
        Block::Row { size, cells: vec![Cell { x_mm: 0.0, align: Align::Left, text: text.into() }] }
    }

    /// A row with one centred cell across `width_mm`.
    pub fn centered(size: f32, width_mm: f32, text: impl Into<String>) -> Block {
        Block::Row {
            size,
            cells: vec![Cell { x_mm: width_mm / 2.0, align: Align::Center, text: text.into() }],
        }
    }

    /// A label on the left and a value flush right at `width_mm`.
    pub fn pair(
        size: f32,
        width_mm: f32,
        label: impl Into<String>,
        value: impl Into<String>,
    ) -> Block {
        Block::Row {
            size,
            cells: vec![
                Cell { x_mm: 0.0, align: Align::Left, text: label.into() },
                Cell { x_mm: width_mm, align: Align::Right, text: value.into() },
            ],
        }
    }

    fn height_mm(&self) -> f32 {
        match self {
            // 1.45 × the font size: room for the CJK ascent and descent plus leading.
            Block::Row { size, .. } => Pt(size * 1.45).into_mm(),
            Block::Rule => 2.0,
            Block::Gap(mm) => *mm,
        }
    }
}

trait IntoMm {
    fn into_mm(self) -> f32;
}

impl IntoMm for Pt {
    fn into_mm(self) -> f32 {
        self.0 * 25.4 / 72.0
    }
}

const TOP_MM: f32 = 6.0;
const BOTTOM_MM: f32 = 8.0;

/// Lays `blocks` out on `paper` and returns the PDF. `repeat` blocks head every page after
/// the first (the ledger's column titles).
pub fn render(
    title: &str,
    font: &Font,
    paper: Paper,
    blocks: &[Block],
    repeat: &[Block],
) -> Result<Vec<u8>, PrintError> {
    render_timed(title, font, paper, blocks, repeat).map(|(bytes, _)| bytes)
}

/// Where [`render_timed`] spent its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderTimes {
    /// Pagination and placing every cell (our code).
    pub layout: Duration,
    /// printpdf's serialisation: font subsetting, content streams, compression.
    pub save: Duration,
}

/// [`render`], also returning where the time went (for the bench).
pub fn render_timed(
    title: &str,
    font: &Font,
    paper: Paper,
    blocks: &[Block],
    repeat: &[Block],
) -> Result<(Vec<u8>, RenderTimes), PrintError> {
    let started = Instant::now();
    let mut doc = PdfDocument::new(title);
    let font_id = doc.add_font(&font.parsed);
    let handle = PdfFontHandle::External(font_id);
    let margin = paper.margin_mm();
    let printable = paper.width_mm() - 2.0 * margin;

    // Split into pages (a roll is one page as long as its content).
    let mut pages: Vec<Vec<&Block>> = vec![Vec::new()];
    let mut used = 0.0;
    for b in blocks {
        let h = b.height_mm();
        if let Some(page_h) = paper.page_height_mm() {
            if used + h > page_h - TOP_MM - BOTTOM_MM - 10.0
                && !pages.last().is_some_and(Vec::is_empty)
            {
                pages.push(repeat.iter().collect());
                used = repeat.iter().map(Block::height_mm).sum();
            }
        }
        used += h;
        if let Some(last) = pages.last_mut() {
            last.push(b);
        }
    }

    let total = pages.len();
    let mut out_pages = Vec::with_capacity(total);
    for (n, page_blocks) in pages.into_iter().enumerate() {
        let content: f32 = page_blocks.iter().map(|b| b.height_mm()).sum();
        let height = paper.page_height_mm().unwrap_or(TOP_MM + content + BOTTOM_MM);
        // Text goes in one section per page, each cell placed with an absolute text matrix
        // (`Tm`); `Td` would be relative to the previous line. Rules go after the section.
        let mut text_ops = Vec::with_capacity(page_blocks.len() * 8 + 2);
        let mut rule_ops = Vec::new();
        text_ops.push(Op::StartTextSection);
        let mut current_size = 0.0f32;
        let mut place = |ops: &mut Vec<Op>, size: f32, x_mm: f32, baseline: f32, text: &str| {
            if size != current_size {
                ops.push(Op::SetFont { font: handle.clone(), size: Pt(size) });
                current_size = size;
            }
            ops.push(Op::SetTextMatrix {
                matrix: TextMatrix::Translate(Mm(x_mm).into(), Mm(baseline).into()),
            });
            ops.push(Op::ShowText { items: vec![TextItem::GlyphIds(font.codepoints(text))] });
        };
        let mut y = height - TOP_MM;
        for b in page_blocks {
            let h = b.height_mm();
            match b {
                Block::Row { size, cells } => {
                    let baseline = y - Pt(*size).into_mm() * 1.1;
                    for c in cells {
                        let x = margin
                            + match c.align {
                                Align::Left => c.x_mm,
                                Align::Right => {
                                    c.x_mm - Pt(font.width_pt(&c.text, *size)).into_mm()
                                }
                                Align::Center => {
                                    c.x_mm - Pt(font.width_pt(&c.text, *size)).into_mm() / 2.0
                                }
                            };
                        place(&mut text_ops, *size, x, baseline, &c.text);
                    }
                }
                Block::Rule => {
                    let ly = y - 1.0;
                    let point = |x: f32| LinePoint {
                        p: Point { x: Mm(x).into(), y: Mm(ly).into() },
                        bezier: false,
                    };
                    rule_ops.push(Op::DrawLine {
                        line: Line {
                            points: vec![point(margin), point(margin + printable)],
                            is_closed: false,
                        },
                    });
                }
                Block::Gap(_) => {}
            }
            y -= h;
        }
        if total > 1 {
            let text = format!("{} / {}", n + 1, total);
            let w = Pt(font.width_pt(&text, 8.0)).into_mm();
            place(&mut text_ops, 8.0, margin + printable / 2.0 - w / 2.0, BOTTOM_MM, &text);
        }
        text_ops.push(Op::EndTextSection);
        let mut ops = text_ops;
        if !rule_ops.is_empty() {
            ops.push(Op::SetOutlineThickness { pt: Pt(0.5) });
            ops.extend(rule_ops);
        }
        out_pages.push(PdfPage::new(Mm(paper.width_mm()), Mm(height), ops));
    }
    let layout = started.elapsed();
    let saving = Instant::now();
    let mut warnings = Vec::new();
    let bytes = doc
        .with_pages(out_pages)
        .save(&PdfSaveOptions { subset_fonts: true, ..Default::default() }, &mut warnings);
    if bytes.is_empty() {
        return Err(PrintError::Render);
    }
    Ok((bytes, RenderTimes { layout, save: saving.elapsed() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_font_names_the_path() {
        let err = Font::load(Path::new("/nonexistent/font.ttf")).unwrap_err();
        assert!(matches!(&err, PrintError::FontMissing { .. }));
        assert!(err.to_string().contains("/nonexistent/font.ttf"), "{err}");
        assert!(err.to_string().contains("fonts-ipaexfont-gothic"), "{err}");
    }

    #[test]
    fn width_and_fit() {
        let f = Font::load_default().unwrap();
        // IPAex: full-width kana are 1 em.
        assert!((f.width_pt("あい", 10.0) - 20.0).abs() < 0.01);
        let cut = f.fit("領収書領収書領収書", 10.0, 35.0);
        assert!(cut.ends_with('…') && f.width_pt(&cut, 10.0) <= 35.0, "{cut}");
        assert!(f.covers("領収書 200円"));
        assert!(!f.covers("\u{F8F0}"), "a private-use 外字 has no glyph");
    }
}
