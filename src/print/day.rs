//! The day's ledger as a document: every entry, totals by visit kind and by method, the
//! expected cash and the close of day, on A4 for the cashier's and the auditor's files;
//! plus [`export_day`], which the `jpki-kiosk ledger` command runs.
//!
//! What it is not: the sums themselves (the database computes them in `ledger::store`).

use std::path::PathBuf;

use time::Date;

use super::pdf::{self, Align, Block, Cell, Font, Paper};
use super::receipt::{format_date_ja, format_jst, format_yen};
use super::PrintError;
use crate::ledger::store::DB_FILE_NAME;
use crate::ledger::{
    export, kind_label_ja, Approval, CloseRequest, DayClose, DayTotals, Entry, EntryKind, Ledger,
    Sums, JST,
};
use crate::rules::fee::Yen;

/// Who the ledger belongs to, printed in its heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    /// The municipality.
    pub municipality: String,
    /// The counter.
    pub counter: String,
}

const SIZE: f32 = 8.0;

fn cell(x_mm: f32, align: Align, text: impl Into<String>) -> Cell {
    Cell { x_mm, align, text: text.into() }
}

fn column_titles() -> Block {
    Block::Row {
        size: SIZE,
        cells: vec![
            cell(10.0, Align::Right, "番号"),
            cell(12.0, Align::Left, "時刻"),
            cell(22.0, Align::Left, "受付番号"),
            cell(56.0, Align::Left, "手続"),
            cell(88.0, Align::Left, "区分"),
            cell(98.0, Align::Left, "方法"),
            cell(136.0, Align::Right, "手数料"),
            cell(152.0, Align::Right, "金額"),
            cell(155.0, Align::Left, "承認者"),
        ],
    }
}

fn entry_row(e: &Entry, font: &Font) -> Block {
    let t = e.at.to_offset(JST);
    let fit = |text: &str, mm: f32| font.fit(text, SIZE, mm * 72.0 / 25.4);
    let (kind, amount) = match e.kind {
        EntryKind::Payment => ("収納".to_owned(), i64::from(e.amount.0)),
        EntryKind::Refund { of } => (format!("返金#{of}"), -i64::from(e.amount.0)),
    };
    Block::Row {
        size: SIZE,
        cells: vec![
            cell(10.0, Align::Right, e.id.to_string()),
            cell(12.0, Align::Left, format!("{:02}:{:02}", t.hour(), t.minute())),
            cell(22.0, Align::Left, fit(&e.visit_id, 33.0)),
            cell(56.0, Align::Left, fit(kind_label_ja(e.visit_kind), 31.0)),
            cell(88.0, Align::Left, fit(&kind, 10.0)),
            cell(98.0, Align::Left, e.method.label_ja()),
            cell(136.0, Align::Right, format_yen(i64::from(e.fee_due.0))),
            cell(152.0, Align::Right, format_yen(amount)),
            cell(
                155.0,
                Align::Left,
                fit(e.approval.as_ref().map_or("", |a| a.supervisor_id.as_str()), 19.0),
            ),
        ],
    }
}

fn sums_title(first: &str) -> Block {
    Block::Row {
        size: SIZE,
        cells: vec![
            cell(0.0, Align::Left, first),
            cell(80.0, Align::Right, "件数"),
            cell(104.0, Align::Right, "収納額"),
            cell(128.0, Align::Right, "返金額"),
            cell(150.0, Align::Right, "免除額"),
            cell(174.0, Align::Right, "差引"),
        ],
    }
}

fn sums_row(label: &str, s: &Sums) -> Block {
    Block::Row {
        size: SIZE,
        cells: vec![
            cell(0.0, Align::Left, label),
            cell(80.0, Align::Right, format!("{}件", s.payments + s.refunds)),
            cell(104.0, Align::Right, format_yen(s.collected)),
            cell(128.0, Align::Right, format_yen(-s.refunded)),
            cell(150.0, Align::Right, format_yen(s.waived)),
            cell(174.0, Align::Right, format_yen(s.net())),
        ],
    }
}

/// Lays out the day's ledger (A4) and returns the PDF.
pub fn render(
    heading: &Heading,
    entries: &[Entry],
    totals: &DayTotals,
    close: Option<&DayClose>,
    font: &Font,
) -> Result<Vec<u8>, PrintError> {
    render_timed(heading, entries, totals, close, font).map(|(bytes, _)| bytes)
}

/// [`render`], also returning where the time went (for `benches/ledger.rs`).
pub fn render_timed(
    heading: &Heading,
    entries: &[Entry],
    totals: &DayTotals,
    close: Option<&DayClose>,
    font: &Font,
) -> Result<(Vec<u8>, pdf::RenderTimes), PrintError> {
    let w = Paper::A4.width_mm() - 2.0 * Paper::A4.margin_mm();
    let mut b = Vec::with_capacity(entries.len() + 40);
    b.push(Block::centered(16.0, w, "手数料収納日計表"));
    b.push(Block::centered(11.0, w, format!("業務日 {}", format_date_ja(totals.day))));
    b.push(Block::pair(9.0, w, heading.municipality.clone(), heading.counter.clone()));
    b.push(Block::Rule);
    b.push(column_titles());
    b.push(Block::Rule);
    for e in entries {
        b.push(entry_row(e, font));
    }
    if entries.is_empty() {
        b.push(Block::left(SIZE, "（この業務日の記録はありません）"));
    }
    b.push(Block::Rule);
    b.push(Block::Gap(3.0));
    b.push(sums_title("手続別"));
    for (kind, s) in &totals.by_kind {
        b.push(sums_row(kind_label_ja(*kind), s));
    }
    b.push(Block::Gap(2.0));
    b.push(sums_title("支払方法別"));
    for (method, s) in &totals.by_method {
        b.push(sums_row(method.label_ja(), s));
    }
    b.push(Block::Rule);
    b.push(sums_row("合計", &totals.all));
    b.push(Block::Gap(3.0));
    b.push(Block::pair(10.0, w, "現金在高（予定）", format_yen(totals.expected_cash)));
    match close {
        Some(c) => {
            b.push(Block::pair(10.0, w, "現金在高（実査）", format_yen(c.counted_cash)));
            b.push(Block::pair(10.0, w, "過不足", format_yen(c.variance)));
            if let Some(a) = &c.variance_approval {
                let fit = font.fit(&a.reason, 9.0, (w - 40.0) * 72.0 / 25.4);
                b.push(Block::pair(9.0, w, "過不足の理由", fit));
                b.push(Block::pair(9.0, w, "承認者", a.supervisor_id.clone()));
            }
            b.push(Block::pair(
                9.0,
                w,
                "締め",
                format!("{}（{}）", format_jst(c.at), c.operator_id),
            ));
        }
        None => b.push(Block::pair(10.0, w, "締め", "未締め")),
    }
    b.push(Block::Gap(8.0));
    b.push(Block::pair(9.0, w, "出納員 ＿＿＿＿＿＿＿＿", "監督者 ＿＿＿＿＿＿＿＿"));
    let repeat = [column_titles(), Block::Rule];
    pdf::render_timed("手数料収納日計表", font, Paper::A4, &b, &repeat)
}

/// A close of day asked for on the command line (the time is the clock's).
#[derive(Debug, Clone)]
pub struct DayCloseArgs {
    /// Cash counted in the drawer.
    pub counted_cash: Yen,
    /// The cashier.
    pub operator_id: String,
    /// The supervisor's explanation of a variance.
    pub variance_approval: Option<Approval>,
}

/// What `jpki-kiosk ledger` was asked to do.
#[derive(Debug, Clone)]
pub struct DayExport {
    /// Close the day before reporting it.
    pub close: Option<DayCloseArgs>,
    /// The kiosk's data directory.
    pub data_dir: PathBuf,
    /// The database file, if not `DATA/kiosk.db`.
    pub db: Option<PathBuf>,
    /// The business day.
    pub day: Date,
    /// Where to write the PDF.
    pub pdf: Option<PathBuf>,
    /// Where to write the CSV.
    pub csv: Option<PathBuf>,
    /// The font for the PDF.
    pub font: PathBuf,
    /// Printed in the heading.
    pub heading: Heading,
}

/// What [`export_day`] found.
#[derive(Debug, Clone)]
pub struct DaySummary {
    /// Number of entries.
    pub entries: usize,
    /// The totals.
    pub totals: DayTotals,
    /// The close, if the day is closed.
    pub close: Option<DayClose>,
}

/// Reads a day from the ledger and writes the PDF and/or CSV asked for.
pub fn export_day(opts: &DayExport) -> Result<DaySummary, PrintError> {
    let db = opts.db.clone().unwrap_or_else(|| opts.data_dir.join(DB_FILE_NAME));
    if !db.exists() {
        return Err(PrintError::NoLedger { path: db });
    }
    let mut ledger = Ledger::open(&db)?;
    if let Some(c) = &opts.close {
        ledger.close_day(&CloseRequest {
            day: opts.day,
            counted_cash: c.counted_cash,
            operator_id: c.operator_id.clone(),
            variance_approval: c.variance_approval.clone(),
            at: time::OffsetDateTime::now_utc(),
        })?;
    }
    let entries = ledger.entries(opts.day)?;
    let totals = ledger.totals(opts.day)?;
    let close = ledger.day_close(opts.day)?;
    if let Some(path) = &opts.pdf {
        let font = Font::load(&opts.font)?;
        let bytes = render(&opts.heading, &entries, &totals, close.as_ref(), &font)?;
        write_atomically(path, &bytes)?;
    }
    if let Some(path) = &opts.csv {
        let mut buf = Vec::new();
        export::write_csv(&entries, &mut buf)?;
        write_atomically(path, &buf)?;
    }
    Ok(DaySummary { entries: entries.len(), totals, close })
}

/// Writes through a temporary file and a rename, so a power cut leaves the old file or
/// the new one, never half of one.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), PrintError> {
    use std::io::Write;
    let io = |source| PrintError::Write { path: path.to_owned(), source };
    let tmp = path.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

impl DaySummary {
    /// The summary `jpki-kiosk ledger` prints: one `key: value` line per figure.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let t = &self.totals;
        let mut s = String::new();
        let _ = writeln!(s, "business_day: {}", crate::ledger::store::format_day(t.day));
        let _ = writeln!(s, "entries: {}", self.entries);
        let _ = writeln!(s, "collected_yen: {}", t.all.collected);
        let _ = writeln!(s, "refunded_yen: {}", t.all.refunded);
        let _ = writeln!(s, "waived_yen: {}", t.all.waived);
        let _ = writeln!(s, "net_yen: {}", t.all.net());
        let _ = writeln!(s, "expected_cash_yen: {}", t.expected_cash);
        match &self.close {
            Some(c) => {
                let _ = writeln!(s, "closed: yes");
                let _ = writeln!(s, "counted_cash_yen: {}", c.counted_cash);
                let _ = writeln!(s, "variance_yen: {}", c.variance);
            }
            None => {
                let _ = writeln!(s, "closed: no");
            }
        }
        s
    }
}
