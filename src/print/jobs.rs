//! Receipt jobs: the table that makes a paid visit end with its receipt, whatever happens
//! between the payment and the paper.
//!
//! What it is: a `receipt_jobs` table in the kiosk database beside the ledger, one row per
//! printed copy (`copy` 0 is the original, 1… are reprints), with a state:
//! `pending` → `printing` → `printed` (sent to a CUPS queue) or `saved` (written as a PDF
//! for staff), or `failed` (spooler error, paper out) which can be retried. A job found in
//! `printing` after a restart may or may not have reached the paper, so its next attempt is
//! marked 再発行: a second paper must never look like a second payment. [`ensure_jobs`]
//! enqueues the receipt of any payment that lacks one (a kill between payment and
//! enqueue). The ledger entry itself is never touched: the payment stays recorded once.
//!
//! What it is not: the slip's content. The caller rebuilds the [`Slip`] from its visit
//! record (the table holds no names), and this module prints it.

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::{params, OptionalExtension};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::day::write_atomically;
use super::escpos::{self, PrinterStatus};
use super::pdf::{Font, Paper};
use super::receipt::{self, Slip, SlipKind};
use super::usb::{self, EscPosLink, UsbPrinter, UsbSelector};
use super::PrintError;
use crate::ledger::{EntryId, Ledger, LedgerError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS receipt_jobs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id   INTEGER NOT NULL REFERENCES ledger_entries(id),
    slip       TEXT    NOT NULL CHECK (slip IN ('receipt', 'issuance_record')),
    copy       INTEGER NOT NULL CHECK (copy >= 0),
    state      TEXT    NOT NULL
               CHECK (state IN ('pending', 'printing', 'printed', 'saved', 'failed')),
    maybe_printed INTEGER NOT NULL DEFAULT 0,
    output     TEXT,
    detail     TEXT,
    updated_at TEXT    NOT NULL,
    UNIQUE (entry_id, slip, copy)
);
";

/// A receipt job's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub i64);

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Not tried yet.
    Pending,
    /// Handed to the printer; if the kiosk restarts in this state, the outcome is unknown.
    Printing,
    /// Accepted by the CUPS queue.
    Printed,
    /// Saved as a PDF file for staff.
    Saved,
    /// The last try failed; retry with [`run`].
    Failed,
}

impl JobState {
    fn code(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Printing => "printing",
            JobState::Printed => "printed",
            JobState::Saved => "saved",
            JobState::Failed => "failed",
        }
    }

    fn from_code(s: &str) -> Option<JobState> {
        [
            JobState::Pending,
            JobState::Printing,
            JobState::Printed,
            JobState::Saved,
            JobState::Failed,
        ]
        .into_iter()
        .find(|j| j.code() == s)
    }

    /// Whether the job still needs printing.
    pub fn is_open(self) -> bool {
        matches!(self, JobState::Pending | JobState::Printing | JobState::Failed)
    }
}

/// One job, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Row id.
    pub id: JobId,
    /// The ledger entry the slip belongs to.
    pub entry_id: EntryId,
    /// Which slip.
    pub slip: SlipKind,
    /// 0 for the original, then each reprint.
    pub copy: u32,
    /// Where it is.
    pub state: JobState,
    /// Tries whose outcome is unknown (the kiosk stopped while the job was `printing`):
    /// any of them may have reached the paper.
    pub maybe_printed: u32,
    /// The queue or file of the last try.
    pub output: Option<String>,
    /// The error of the last failed try, for staff.
    pub detail: Option<String>,
}

/// Where slips go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A CUPS queue, through `lp -d QUEUE`; `server` is `lp -h` (`host:port` or a socket).
    Cups {
        /// The queue name.
        queue: String,
        /// The CUPS server, when not the default one.
        server: Option<String>,
        /// Put before the job title (cups-pdf and the queue list show it), e.g. the
        /// counter's name.
        title_prefix: Option<String>,
    },
    /// A USB ESC/POS receipt printer, driven directly (the 80 mm layout as a raster).
    Usb(UsbSelector),
    /// No printer configured: the PDF stays in the spool directory and staff are told where.
    SaveOnly,
}

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Printed {
    /// The queue accepted the job.
    Queued {
        /// The queue.
        queue: String,
        /// The PDF that was sent (kept for reprints).
        pdf: PathBuf,
    },
    /// The USB printer printed it.
    Usb {
        /// The PDF the raster came from (kept for reprints).
        pdf: PathBuf,
        /// The printer's status afterwards (e.g. paper near end, to tell staff).
        status: PrinterStatus,
    },
    /// The PDF was saved; tell staff the path.
    Saved {
        /// The file.
        pdf: PathBuf,
    },
}

fn slip_code(kind: SlipKind) -> &'static str {
    match kind {
        SlipKind::Receipt => "receipt",
        SlipKind::IssuanceRecord => "issuance_record",
    }
}

fn now_text() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// Creates the table if needed.
pub fn init(ledger: &Ledger) -> Result<(), LedgerError> {
    ledger.conn().execute_batch(SCHEMA)?;
    Ok(())
}

/// Enqueues the original slip of an entry; enqueuing it again returns the same job.
pub fn enqueue(ledger: &Ledger, entry: EntryId, slip: SlipKind) -> Result<JobId, LedgerError> {
    init(ledger)?;
    ledger.conn().execute(
        "INSERT OR IGNORE INTO receipt_jobs (entry_id, slip, copy, state, updated_at)
         VALUES (?1, ?2, 0, 'pending', ?3)",
        params![entry.0, slip_code(slip), now_text()],
    )?;
    let id = ledger.conn().query_row(
        "SELECT id FROM receipt_jobs WHERE entry_id = ?1 AND slip = ?2 AND copy = 0",
        params![entry.0, slip_code(slip)],
        |r| r.get(0),
    )?;
    Ok(JobId(id))
}

/// Enqueues a reprint (再発行) of an entry's slip: a new copy number.
pub fn reprint(ledger: &Ledger, entry: EntryId, slip: SlipKind) -> Result<JobId, LedgerError> {
    init(ledger)?;
    ledger.conn().execute(
        "INSERT INTO receipt_jobs (entry_id, slip, copy, state, updated_at)
         SELECT ?1, ?2, COALESCE(MAX(copy) + 1, 0), 'pending', ?3 FROM receipt_jobs
         WHERE entry_id = ?1 AND slip = ?2",
        params![entry.0, slip_code(slip), now_text()],
    )?;
    Ok(JobId(ledger.conn().last_insert_rowid()))
}

/// Enqueues the receipt of every paid entry (cash or cashless, `amount > 0`) that has no
/// receipt job, e.g. after the kiosk was killed between payment and enqueue. Returns the
/// jobs created.
pub fn ensure_jobs(ledger: &Ledger) -> Result<Vec<JobId>, LedgerError> {
    init(ledger)?;
    let mut stmt = ledger.conn().prepare(
        "SELECT e.id FROM ledger_entries e
         WHERE e.entry_kind = 'payment' AND e.amount > 0
           AND NOT EXISTS (SELECT 1 FROM receipt_jobs j
                           WHERE j.entry_id = e.id AND j.slip = 'receipt')
         ORDER BY e.id",
    )?;
    let ids: Vec<i64> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    ids.into_iter().map(|id| enqueue(ledger, EntryId(id), SlipKind::Receipt)).collect()
}

/// One job.
pub fn job(ledger: &Ledger, id: JobId) -> Result<Option<Job>, LedgerError> {
    init(ledger)?;
    ledger
        .conn()
        .query_row(
            "SELECT id, entry_id, slip, copy, state, maybe_printed, output, detail
             FROM receipt_jobs WHERE id = ?1",
            [id.0],
            read_job,
        )
        .optional()?
        .transpose()
}

/// Jobs still to print (pending, interrupted or failed), oldest first.
pub fn open_jobs(ledger: &Ledger) -> Result<Vec<Job>, LedgerError> {
    init(ledger)?;
    let mut stmt = ledger.conn().prepare(
        "SELECT id, entry_id, slip, copy, state, maybe_printed, output, detail FROM receipt_jobs
         WHERE state IN ('pending', 'printing', 'failed') ORDER BY id",
    )?;
    let rows = stmt.query_map([], read_job)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

fn read_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Job, LedgerError>> {
    let slip: String = r.get(2)?;
    let state: String = r.get(4)?;
    let slip = match slip.as_str() {
        "receipt" => SlipKind::Receipt,
        "issuance_record" => SlipKind::IssuanceRecord,
        _ => return Ok(Err(LedgerError::Corrupt("receipt_jobs.slip"))),
    };
    let Some(state) = JobState::from_code(&state) else {
        return Ok(Err(LedgerError::Corrupt("receipt_jobs.state")));
    };
    Ok(Ok(Job {
        id: JobId(r.get(0)?),
        entry_id: EntryId(r.get(1)?),
        slip,
        copy: r.get(3)?,
        state,
        maybe_printed: r.get(5)?,
        output: r.get(6)?,
        detail: r.get(7)?,
    }))
}

fn set_state(
    ledger: &Ledger,
    id: JobId,
    state: JobState,
    output: Option<&str>,
    detail: Option<&str>,
) -> Result<(), LedgerError> {
    // Counted up when the PDF leaves for the printer, down again when the spooler refused
    // it: what remains counts the tries that ended in the dark.
    let bump: i64 = match state {
        JobState::Printing => 1,
        JobState::Failed | JobState::Printed => -1,
        JobState::Pending | JobState::Saved => 0,
    };
    set_state_counting(ledger, id, state, output, detail, bump)
}

/// [`set_state`] with the change to `maybe_printed` given: a USB receipt that failed after
/// its bytes left keeps counting as possibly on paper.
fn set_state_counting(
    ledger: &Ledger,
    id: JobId,
    state: JobState,
    output: Option<&str>,
    detail: Option<&str>,
    bump: i64,
) -> Result<(), LedgerError> {
    ledger.conn().execute(
        "UPDATE receipt_jobs SET state = ?2, maybe_printed = maybe_printed + ?3,
                output = COALESCE(?4, output), detail = ?5, updated_at = ?6
         WHERE id = ?1",
        params![id.0, state.code(), bump, output, detail, now_text()],
    )?;
    Ok(())
}

/// Prints a job: renders `slip` (marked 再発行 when it is a reprint or an earlier try may
/// have reached the paper), keeps the PDF in `spool_dir`, and sends it to `output`.
///
/// The state is `printing` from before the PDF leaves the kiosk until the spooler (or the
/// USB printer) answers, so a power cut in between is seen at the next start.
pub fn run(
    ledger: &Ledger,
    id: JobId,
    slip: &Slip,
    paper: Paper,
    font: &Font,
    output: &Output,
    spool_dir: &Path,
) -> Result<Printed, PrintError> {
    // A USB printer takes the roll layout, whatever the counter's PDF paper is.
    let paper = if matches!(output, Output::Usb(_)) { Paper::Roll80 } else { paper };
    let pdf = prepare(ledger, id, slip, paper, font, spool_dir)?;
    send(ledger, id, &pdf, output)
}

/// [`run`] on an ESC/POS printer link the caller opened (the 80 mm layout as a raster).
pub fn run_on_link(
    ledger: &Ledger,
    id: JobId,
    slip: &Slip,
    font: &Font,
    link: &mut dyn EscPosLink,
    spool_dir: &Path,
) -> Result<Printed, PrintError> {
    let pdf = prepare(ledger, id, slip, Paper::Roll80, font, spool_dir)?;
    send_escpos(ledger, id, &pdf, link)
}

/// Renders the job's slip into the spool directory and returns the PDF's path.
fn prepare(
    ledger: &Ledger,
    id: JobId,
    slip: &Slip,
    paper: Paper,
    font: &Font,
    spool_dir: &Path,
) -> Result<PathBuf, PrintError> {
    let job = job(ledger, id)?.ok_or(LedgerError::Corrupt("receipt job not found"))?;
    let mut slip = slip.clone();
    slip.kind = job.slip;
    slip.reprint = slip.reprint || job.copy > 0 || job.maybe_printed > 0;
    let bytes = receipt::render(&slip, paper, font)?;
    std::fs::create_dir_all(spool_dir)
        .map_err(|source| PrintError::Write { path: spool_dir.to_owned(), source })?;
    let pdf = spool_dir.join(format!("{}-{}-{}.pdf", slip_code(job.slip), job.entry_id, job.copy));
    write_atomically(&pdf, &bytes)?;
    Ok(pdf)
}

fn send(ledger: &Ledger, id: JobId, pdf: &Path, output: &Output) -> Result<Printed, PrintError> {
    let pdf = pdf.to_owned();
    let pdf_text = pdf.display().to_string();
    match output {
        Output::SaveOnly => {
            set_state(ledger, id, JobState::Saved, Some(&pdf_text), None)?;
            Ok(Printed::Saved { pdf })
        }
        Output::Cups { queue, server, title_prefix } => {
            set_state(ledger, id, JobState::Printing, Some(queue), None)?;
            let stem =
                pdf.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let title = format!("{}{stem}", title_prefix.as_deref().unwrap_or(""));
            match send_to_cups(queue, server.as_deref(), &pdf, &title) {
                Ok(()) => {
                    set_state(ledger, id, JobState::Printed, Some(queue), None)?;
                    Ok(Printed::Queued { queue: queue.clone(), pdf })
                }
                Err(e) => {
                    set_state(ledger, id, JobState::Failed, None, Some(&e.to_string()))?;
                    Err(e)
                }
            }
        }
        // Opening the printer is part of the try: an absent printer fails the job (nothing
        // reached paper), and staff retry once it is plugged in.
        Output::Usb(selector) => match UsbPrinter::open(selector) {
            Ok(mut printer) => send_escpos(ledger, id, &pdf, &mut printer),
            Err(e) => {
                set_state_counting(ledger, id, JobState::Failed, None, Some(&e.to_string()), 0)?;
                Err(e.into())
            }
        },
    }
}

/// Rasterises the roll PDF and prints it on `link`.
fn send_escpos(
    ledger: &Ledger,
    id: JobId,
    pdf: &Path,
    link: &mut dyn EscPosLink,
) -> Result<Printed, PrintError> {
    let raster = escpos::rasterize_roll_pdf(pdf)?;
    let stream = escpos::encode(&raster);
    set_state(ledger, id, JobState::Printing, Some("usb"), None)?;
    match usb::print_stream(link, &stream) {
        Ok(status) => {
            set_state(ledger, id, JobState::Printed, Some("usb"), None)?;
            Ok(Printed::Usb { pdf: pdf.to_owned(), status })
        }
        Err(f) => {
            // Refused before any byte left: known not printed. Failed after: part of the
            // receipt may be on paper, so the retry is marked 再発行.
            let bump = if f.sent { 0 } else { -1 };
            set_state_counting(
                ledger,
                id,
                JobState::Failed,
                None,
                Some(&f.error.to_string()),
                bump,
            )?;
            Err(f.error.into())
        }
    }
}

/// Runs `lp -d QUEUE [-h SERVER] -t TITLE FILE`.
fn send_to_cups(
    queue: &str,
    server: Option<&str>,
    pdf: &Path,
    title: &str,
) -> Result<(), PrintError> {
    let mut cmd = Command::new("lp");
    if let Some(s) = server {
        cmd.arg("-h").arg(s);
    }
    cmd.arg("-d").arg(queue).arg("-t").arg(title).arg("--").arg(pdf);
    let spooler = |detail: String| PrintError::Spooler { queue: queue.to_owned(), detail };
    let out = cmd.output().map_err(|e| spooler(format!("cannot run lp: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(spooler(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }
}
