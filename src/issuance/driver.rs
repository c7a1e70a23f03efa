//! The driver: runs one visit with the real adapters. It feeds an event to
//! [`Issuance::handle`], journals each command before it runs and each answer after it
//! arrives, runs the commands through the adapters ([`super::adapters`]), and feeds the
//! answers back, until the visit needs a person (or a card) or ends. On start it resumes
//! the visit the journal left open.
//!
//! What it is not: a decision maker (every decision is the state machine's), a PIN holder
//! beyond owning the [`ResidentPad`] it lends to the card adapter, or a UI.

use std::time::{Duration, Instant};

use time::Date;

use super::adapters::cases::InquiryLetter;
use super::adapters::{
    AuditPort, CaPort, CardPort, Clock, Counter, JournalPort, PrinterPort, RegistryPort,
    ResidentPad, Stage, StoreError,
};
use super::command::{Command, Outcome, PadCommand, Screen};
use super::event::{Event, Opening, PrintFailure};
use super::journal::{Journal, JournalRecord};
use super::model::{Form, Timestamp};
use super::notice::notice_for;
use super::state::Issuance;

/// Why the driver stopped the visit. The journal holds everything up to the failure; the
/// visit resumes from it on the next start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The journal or audit log could not be written: no command may run unjournaled.
    #[error("record: {0}")]
    Store(#[from] StoreError),
    /// The opening event was refused (a visit was already open in this driver).
    #[error("the visit could not be opened: {0}")]
    Refused(super::IssuanceError),
    /// The state machine kept asking without settling (a bug): stopped to protect the card.
    #[error("the visit did not settle after {0} rounds")]
    NoProgress(usize),
}

/// Where the visit stands after the driver ran what it could.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Waiting for a person, a card or the CA; call [`Driver::wake`] or [`Driver::feed`].
    Waiting,
    /// The visit ended.
    Ended(Outcome),
}

/// The adapters the driver runs on.
pub struct Ports<'a> {
    /// The card reader.
    pub card: Box<dyn CardPort + 'a>,
    /// The CA.
    pub ca: Box<dyn CaPort + 'a>,
    /// The resident registry.
    pub registry: Box<dyn RegistryPort + 'a>,
    /// The receipt printer.
    pub printer: Box<dyn PrinterPort + 'a>,
    /// Staff and resident.
    pub counter: Box<dyn Counter + 'a>,
    /// The visit journal.
    pub journal: Box<dyn JournalPort + 'a>,
    /// The audit log.
    pub audit: Box<dyn AuditPort + 'a>,
    /// The clock.
    pub clock: Box<dyn Clock + 'a>,
}

/// Time spent in each kind of adapter (software time of a visit, for the bench).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timing {
    /// Card commands (PC/SC round trips and the card's own work).
    pub card: Duration,
    /// Of `card`, the key generation commands (the card's own work, not software time).
    pub keygen: Duration,
    /// CA commands (TLS, CMP, the CA's work).
    pub ca: Duration,
    /// Journal and audit writes, registry reads.
    pub database: Duration,
    /// Everything the driver ran, including the state machine and people (scripted).
    pub total: Duration,
    /// Journal records written.
    pub records: u64,
}

/// One visit, driven.
pub struct Driver<'a> {
    ports: Ports<'a>,
    id: String,
    visit: Issuance,
    journal: Journal,
    pad: ResidentPad,
    waiting: Vec<Command>,
    timing: Timing,
    crash_after: Option<u64>,
    /// The form as last submitted (recorded with a proxy case as its request).
    form: Option<Form>,
    /// The visit date (the 照会書's request date).
    date: Option<Date>,
    /// The last CA answer was "unreachable": ticks are fed until it answers.
    ca_down: bool,
}

/// Answers after which the rest of a batch is dropped: the state machine re-issues what is
/// still needed once the failure is dealt with.
fn is_failure(event: &Event) -> bool {
    matches!(
        event,
        Event::CardRemoved
            | Event::CardFailed { .. }
            | Event::CaUnreachable { .. }
            | Event::CaRejected { .. }
            | Event::PrintFailed { .. }
    )
}

/// Commands that wait for an answer when nobody gives one yet (re-run by [`Driver::wake`]).
fn awaits_answer(command: &Command) -> bool {
    matches!(
        command,
        Command::Card {
            card: super::CardCommand::Detect
        } | Command::Show {
            screen: Screen::Form | Screen::IdentityCheck | Screen::CollectFee { .. }
        } | Command::Pad {
            pad: PadCommand::AskNew { .. } | PadCommand::AskConfirm { .. }
        }
    )
}

/// Upper bound on rounds of one run: a visit has well under a hundred steps.
const MAX_ROUNDS: usize = 1000;

impl<'a> Driver<'a> {
    fn with(ports: Ports<'a>, id: String, visit: Issuance, journal: Journal) -> Driver<'a> {
        Driver {
            ports,
            id,
            visit,
            journal,
            pad: ResidentPad::default(),
            waiting: Vec::new(),
            timing: Timing::default(),
            crash_after: None,
            form: None,
            date: None,
            ca_down: false,
        }
    }

    /// Remembers what the driver needs from an event beyond the state machine.
    fn observe(&mut self, event: &Event) {
        match event {
            Event::FormSubmitted { form } => self.form = Some(form.clone()),
            Event::VisitOpened(o) => self.date = Some(o.date),
            Event::CaUnreachable { .. } => self.ca_down = true,
            Event::CaIssued { .. }
            | Event::CaRejected { .. }
            | Event::CaConfirmed { .. }
            | Event::CaRevoked { .. }
            | Event::CurrentCerts { .. } => self.ca_down = false,
            _ => {}
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.ports.clock.now().unix_timestamp())
    }

    /// Feeds the clock while the visit waits for the CA: the same request is re-sent once
    /// `CA_RETRY_AFTER_SECS` have passed since it failed. Call it every few seconds while
    /// the screen shows `WaitingForCa`; at other times it does nothing (and journals
    /// nothing).
    pub fn tick(&mut self) -> Result<Status, DriverError> {
        if !self.ca_down {
            return Ok(match self.visit.outcome() {
                Some(outcome) => Status::Ended(outcome.clone()),
                None => Status::Waiting,
            });
        }
        let now = self.now();
        self.feed(Event::Tick { now })
    }

    /// Opens a new visit and runs it as far as it goes.
    pub fn open(ports: Ports<'a>, opening: Opening) -> Result<(Driver<'a>, Status), DriverError> {
        Driver::open_with(ports, opening, None)
    }

    /// [`Driver::open`], aborting the process right after the `crash_after`-th journal
    /// write (crash injection for the resume tests; never set at the counter).
    pub fn open_with(
        ports: Ports<'a>,
        opening: Opening,
        crash_after: Option<u64>,
    ) -> Result<(Driver<'a>, Status), DriverError> {
        let id = opening.visit.0.clone();
        let mut d = Driver::with(ports, id, Issuance::new(), Journal::default());
        d.crash_after = crash_after;
        let status = d.feed(Event::VisitOpened(opening))?;
        Ok((d, status))
    }

    /// Resumes the visit the journal left open, if any, and runs it as far as it goes.
    pub fn resume(mut ports: Ports<'a>) -> Result<Option<(Driver<'a>, Status)>, DriverError> {
        let Some((id, records)) = ports.journal.unfinished()? else {
            return Ok(None);
        };
        ports.ca.recall(&records);
        Ok(Some(Driver::resume_records(ports, id, &records)?))
    }

    fn resume_records(
        ports: Ports<'a>,
        id: String,
        records: &[JournalRecord],
    ) -> Result<(Driver<'a>, Status), DriverError> {
        let started = Instant::now();
        let (visit, commands) = Issuance::resume(records);
        let mut d = Driver::with(ports, id, visit, Journal::after(records));
        for record in records {
            if let JournalRecord::Event { event, .. } = record {
                d.observe(event);
            }
        }
        // A restart forgets any CA back-off: the visit re-sends at once.
        d.ca_down = false;
        let at = d.ports.clock.now();
        d.ports.audit.resumed(&d.id, at)?;
        tracing::info!(
            step = d.visit.step_name(),
            records = records.len(),
            "visit resumed"
        );
        let status = d.run(commands);
        d.timing.total += started.elapsed();
        Ok((d, status?))
    }

    /// The visit's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The visit as it stands.
    pub fn visit(&self) -> &Issuance {
        &self.visit
    }

    /// Time spent so far, by adapter.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Feeds an event from outside (staff cancel or retry, a tick) and runs what follows.
    pub fn feed(&mut self, event: Event) -> Result<Status, DriverError> {
        let started = Instant::now();
        let opening = matches!(event, Event::VisitOpened(_));
        let record = self.journal.event(&event);
        self.record(record)?;
        self.observe(&event);
        let commands = match self.visit.clone().handle(event) {
            Ok((visit, commands)) => {
                self.visit = visit;
                commands
            }
            Err(refused) if opening => return Err(DriverError::Refused(refused.error)),
            Err(refused) => {
                self.visit = refused.state;
                tracing::info!(notice = ?notice_for(&refused.error), "event refused");
                Vec::new()
            }
        };
        let status = self.run(commands);
        self.timing.total += started.elapsed();
        status
    }

    /// Runs again the commands nobody could answer before (a card was inserted, a person
    /// is ready).
    pub fn wake(&mut self) -> Result<Status, DriverError> {
        let started = Instant::now();
        let batch = std::mem::take(&mut self.waiting);
        let status = self.run(batch);
        self.timing.total += started.elapsed();
        status
    }

    /// Appends to the journal (and the audit log) before anything else happens.
    fn record(&mut self, record: JournalRecord) -> Result<(), DriverError> {
        let t = Instant::now();
        self.ports.journal.append(&self.id, &record)?;
        let at = self.ports.clock.now();
        self.ports.audit.note(&self.id, &record, at)?;
        self.timing.database += t.elapsed();
        self.timing.records += 1;
        if self.crash_after == Some(self.timing.records) {
            tracing::warn!(records = self.timing.records, "crash injected");
            std::process::abort();
        }
        Ok(())
    }

    /// Runs `command`, telling the counter when a device or peer command starts and ends.
    fn dispatch(&mut self, command: &Command) -> Option<Event> {
        let watched = matches!(
            command,
            Command::Card { .. }
                | Command::Ca { .. }
                | Command::RegistryFetch { .. }
                | Command::PrintReceipt { .. }
        );
        if !watched {
            return self.dispatch_inner(command);
        }
        self.ports.counter.progress(command, Stage::Started);
        let event = self.dispatch_inner(command);
        if let Some(e) = &event {
            let failed = is_failure(e);
            self.ports.counter.progress(command, Stage::Finished { failed });
        }
        event
    }

    fn dispatch_inner(&mut self, command: &Command) -> Option<Event> {
        let t = Instant::now();
        match command {
            Command::Card { card } => {
                let e = self.ports.card.run(card, &mut self.pad);
                self.timing.card += t.elapsed();
                if matches!(card, super::CardCommand::GenerateKey { .. }) {
                    self.timing.keygen += t.elapsed();
                }
                e
            }
            Command::Ca { ca } => {
                let e = self.ports.ca.run(ca);
                self.timing.ca += t.elapsed();
                Some(e)
            }
            Command::RegistryFetch { resident_id } => {
                let e = self.ports.registry.fetch(resident_id);
                self.timing.database += t.elapsed();
                Some(e)
            }
            Command::PrintReceipt { receipt } => Some(self.ports.printer.print(receipt)),
            Command::CaseLookup { case } => {
                let e = self.ports.registry.case_lookup(case);
                self.timing.database += t.elapsed();
                e.or_else(|| self.ports.counter.answer(command, &mut self.pad.entry()))
            }
            Command::CaseStore { case } => {
                let e = self.ports.registry.case_store(case, self.form.as_ref());
                self.timing.database += t.elapsed();
                e.or_else(|| self.ports.counter.answer(command, &mut self.pad.entry()))
            }
            Command::PrintInquiry { case } => {
                // The letter goes to the registered address: the registry's, never the form's.
                let holder = match self.ports.registry.fetch(&case.resident_id) {
                    Event::RegistryAnswered { record: Some(r) } => r,
                    _ => {
                        return Some(Event::PrintFailed {
                            failure: PrintFailure::Offline,
                        })
                    }
                };
                let letter = InquiryLetter {
                    case: case.clone(),
                    holder,
                    requested: self.date.unwrap_or_else(|| self.ports.clock.now().date()),
                };
                self.ports
                    .printer
                    .print_inquiry(&letter)
                    .or_else(|| self.ports.counter.answer(command, &mut self.pad.entry()))
            }
            Command::Pad {
                pad: PadCommand::Clear,
            } => {
                self.pad.clear();
                None
            }
            Command::Notify { problem } => {
                tracing::info!(notice = ?notice_for(problem), "notice");
                self.ports.counter.answer(command, &mut self.pad.entry())
            }
            // Screens and pad prompts: the counter answers them or nobody does.
            _ => self.ports.counter.answer(command, &mut self.pad.entry()),
        }
    }

    fn run(&mut self, mut batch: Vec<Command>) -> Result<Status, DriverError> {
        for _ in 0..MAX_ROUNDS {
            if batch.is_empty() {
                return Ok(match self.visit.outcome() {
                    Some(outcome) => {
                        self.ports.journal.close(&self.id)?;
                        self.pad.clear();
                        Status::Ended(outcome.clone())
                    }
                    None => Status::Waiting,
                });
            }
            let mut next = Vec::new();
            for command in batch {
                let record = self.journal.command(&command);
                self.record(record)?;
                let Some(event) = self.dispatch(&command) else {
                    if awaits_answer(&command) && !self.waiting.contains(&command) {
                        self.waiting.push(command);
                    }
                    continue;
                };
                self.waiting.retain(|c| c != &command);
                if matches!(event, Event::CaUnreachable { .. }) {
                    // The machine times its retry from the clock it last heard: tell it now.
                    let tick = Event::Tick { now: self.now() };
                    let record = self.journal.event(&tick);
                    self.record(record)?;
                    if let Ok((visit, commands)) = self.visit.clone().handle(tick) {
                        self.visit = visit;
                        next.extend(commands);
                    }
                }
                let record = self.journal.event(&event);
                self.record(record)?;
                self.observe(&event);
                let failed = is_failure(&event);
                tracing::debug!(event = event.name(), "answer");
                match self.visit.clone().handle(event) {
                    Ok((visit, commands)) => {
                        self.visit = visit;
                        next.extend(commands);
                    }
                    Err(refused) => {
                        tracing::info!(notice = ?notice_for(&refused.error), "answer refused");
                        self.visit = refused.state;
                    }
                }
                if failed {
                    break;
                }
            }
            batch = next;
        }
        Err(DriverError::NoProgress(MAX_ROUNDS))
    }
}
