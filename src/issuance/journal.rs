//! The visit's write-ahead journal records, and resuming a visit from them.
//!
//! The driver keeps one rule: **every command is journaled before it runs, every result
//! event after it arrives.** A command record whose result never came is a step in flight
//! when the kiosk stopped; its outcome is unknown, so the step is redone, which every step
//! allows (card steps re-authenticate and are idempotent; the CA request re-sends the same
//! transaction, which the CA answers with the same certificates).
//!
//! [`resume`] replays the journaled events through [`Issuance::handle`], so every proof
//! token is re-earned by the same checks, then forgets what a restart loses (the card
//! session, the pad's entries, the CA back-off) and returns the commands that continue.
//!
//! Records are stable JSON (`{"record":"event","seq":3,"event":{"event":"pin_set",…}}`);
//! the SQLite adapter stores one row per record. Not here: the storage itself.

use serde::{Deserialize, Serialize};

use super::command::Command;
use super::event::Event;
use super::state::Issuance;

/// The journal format's version, written into every record.
pub const JOURNAL_VERSION: u32 = 1;

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum JournalRecord {
    /// A command, written before it runs.
    Command {
        /// Format version.
        v: u32,
        /// Position in the visit's journal, from 0.
        seq: u64,
        /// The command.
        command: Command,
    },
    /// An event, written after it arrived (refused events included, for the record).
    Event {
        /// Format version.
        v: u32,
        /// Position in the visit's journal, from 0.
        seq: u64,
        /// The event.
        event: Event,
    },
}

impl JournalRecord {
    /// The record as one line of JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a record back.
    pub fn from_json(text: &str) -> Result<JournalRecord, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Numbers records for one visit.
#[derive(Debug, Default)]
pub struct Journal {
    next: u64,
}

impl Journal {
    /// A journal that continues after `records` (for a resumed visit).
    pub fn after(records: &[JournalRecord]) -> Journal {
        Journal {
            next: records.len() as u64,
        }
    }

    /// The record of a command about to run.
    pub fn command(&mut self, command: &Command) -> JournalRecord {
        let seq = self.bump();
        JournalRecord::Command {
            v: JOURNAL_VERSION,
            seq,
            command: command.clone(),
        }
    }

    /// The record of an event that arrived.
    pub fn event(&mut self, event: &Event) -> JournalRecord {
        let seq = self.bump();
        JournalRecord::Event {
            v: JOURNAL_VERSION,
            seq,
            event: event.clone(),
        }
    }

    fn bump(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        seq
    }
}

/// Rebuilds a visit after a crash (or a kiosk restart) and returns the commands that
/// continue it. Refused events are refused again and skipped, exactly as they were.
pub fn resume(records: &[JournalRecord]) -> (Issuance, Vec<Command>) {
    let mut visit = Issuance::new();
    for record in records {
        if let JournalRecord::Event { event, .. } = record {
            visit = match visit.handle(event.clone()) {
                Ok((next, _)) => next,
                Err(refused) => refused.state,
            };
        }
    }
    visit.restart()
}

impl Issuance {
    /// See [`resume`].
    pub fn resume(records: &[JournalRecord]) -> (Issuance, Vec<Command>) {
        resume(records)
    }
}
