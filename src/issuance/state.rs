//! The new-issuance visit as a state machine that does no I/O.
//!
//! [`Issuance::handle`] takes the visit by value with one [`Event`] and returns the next
//! visit and the [`Command`]s to run, or, for an event that does not belong to the current
//! step, a [`Refused`] holding the unchanged visit and a typed error. Time (`Tick`) and
//! randomness (the [`Seed`](super::model::Seed) in `VisitOpened`) come in as events, so
//! replaying the journaled events rebuilds the same visit (see [`super::journal`]).
//!
//! The steps, in order: form → registry → identity → eligibility → card → PINs on the pad
//! → key generation → PINs set → CA request → certificates written → per slot: read back
//! and self-test signature → certConf → fee → receipt. Each step that needs a checked fact
//! holds the [`proof`](super::proof) token for it.
//!
//! Rules the transitions keep (jpki-facts §8):
//! - the card is bound to the visit from key generation on: another card is refused;
//! - nothing local changes while the CA is down: the same transaction is re-sent;
//! - the CA is confirmed only after every certificate was read back and signed with;
//! - a visit that stops after keys exist erases them, and after certificates exist
//!   rejects them at the CA (certConf) first, so card, record and CA end agreeing.
//!
//! Not here: PINs (the resident pad keeps them), talking to anything, and the mapping of
//! errors to people (`super::notice`).

use std::collections::{BTreeMap, BTreeSet};

use super::command::{
    CaCommand, CardCommand, Command, Holder, KeyToCertify, Outcome, PadCommand, Receipt,
    RequestKind, RevocationReason, Screen,
};
use super::error::{FormField, IdShortfall, IssuanceError, SigningWithheld};
use super::event::{CardFailure, Event, Opening, PrintFailure, Visit};
use super::model::{
    CardKind, CardSerial, CurrentCert, Form, IdDocument, InquiryCase, PresenterKind,
    RegisteredResident, ResidentRef, Slot, Standing, Timestamp, TransactionId,
};
use super::proof::{
    self, CaConfirmed, CardVerified, CertsMatchKeys, CertsWritten, KeysOnCard, PinsSet,
    SignatureValid,
};
use crate::registry::{self, Field};
use crate::rules::age::{self, CertDecision, Ineligible, RenewalStatus, Requested};
use crate::rules::fee::{self, Yen};
use crate::rules::identity::{self, Presenter};

/// How long the visit waits after "CA unreachable" before re-sending by itself, in
/// seconds of `Tick` time. Staff may retry sooner.
pub const CA_RETRY_AFTER_SECS: i64 = 30;
/// How many days after the first visit a proxy's answer sheet is accepted. J-LIS sets no
/// public figure; a municipality setting later (see `docs/workflow.md`).
pub const INQUIRY_VALID_DAYS: i64 = 30;
/// How often a certificate is re-written after a read-back mismatch before giving up.
pub const MAX_WRITE_ATTEMPTS: u8 = 3;

/// One visit at the counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuance {
    // Boxed: the context is large and visits move by value on every event.
    ctx: Option<Box<Context>>,
    stage: Stage,
}

/// An event the visit did not accept: the visit as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The visit, unchanged.
    pub state: Issuance,
    /// Why the event was refused.
    pub error: IssuanceError,
}

/// What a visit knows once opened.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Context {
    opening: Opening,
    form: Option<Form>,
    record: Option<RegisteredResident>,
    identity: Option<(PresenterKind, Vec<IdDocument>)>,
    wanted: BTreeSet<Slot>,
    /// The certificates being renewed or revoked.
    old: Vec<CurrentCert>,
    /// The card in the reader, as far as the visit knows.
    card: Option<CardSerial>,
    /// The card the visit is bound to, from key generation on.
    bound: Option<CardSerial>,
    now: Option<Timestamp>,
    /// Receipts sent to the printer so far (reprints count up).
    receipts: u32,
}

/// Waiting on the CA: whether it was unreachable, and when to re-send by itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct CaWait {
    down: bool,
    retry_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Idle,
    AwaitForm,
    AwaitRegistry,
    AwaitIdentity,
    /// Re-issue after loss: asking the CA for the resident's live certificates.
    FindingOld {
        ca: CaWait,
    },
    /// Revoking old certificates: before a re-issue (keyCompromise), as a revocation
    /// visit, or (`then` set) to end a failed renewal whose old keys are gone.
    Revoking {
        ca: CaWait,
        then: Option<Outcome>,
    },
    AwaitCard,
    /// Renewal: reading the certificates on the card for the renewal window.
    ReadingCard,
    /// Proxy, second visit: looking the case number up.
    CheckingCase,
    /// Proxy, first visit: recording the case, then printing the 照会書.
    RecordingCase,
    PrintingInquiry {
        failed: Option<PrintFailure>,
    },
    /// PIN services: lock release, or reset once the pad holds the new PIN.
    PinService {
        pad: bool,
    },
    AwaitPins {
        pad: BTreeSet<Slot>,
    },
    Generating {
        pad: BTreeSet<Slot>,
        generated: BTreeMap<Slot, Vec<u8>>,
    },
    SettingPins {
        pad: BTreeSet<Slot>,
        keys: KeysOnCard,
        set: BTreeSet<Slot>,
    },
    AwaitCerts {
        keys: KeysOnCard,
        pins: PinsSet,
        ca: CaWait,
        cancel: bool,
    },
    Writing {
        certs: CertsMatchKeys,
        written: BTreeSet<Slot>,
        attempts: u8,
    },
    Testing(Box<Testing>),
    Confirming {
        verified: CardVerified,
        ca: CaWait,
    },
    AwaitFee {
        verified: CardVerified,
        confirmed: CaConfirmed,
        fee: Yen,
    },
    Printing {
        verified: CardVerified,
        confirmed: CaConfirmed,
        paid: Yen,
        failed: Option<PrintFailure>,
    },
    /// Rejecting issued certificates at the CA (certConf with rejection), then erasing.
    Withdrawing {
        ca: CaWait,
        erase: bool,
        outcome: Outcome,
    },
    Erasing {
        remaining: BTreeSet<Slot>,
        outcome: Outcome,
    },
    Ended {
        outcome: Outcome,
    },
}

/// The self-test of each slot: read back, sign with the resident's confirmation entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Testing {
    certs: CertsMatchKeys,
    written: CertsWritten,
    attempts: u8,
    valid: BTreeMap<Slot, SignatureValid>,
    read: BTreeMap<Slot, Vec<u8>>,
    signed: BTreeMap<Slot, Vec<u8>>,
    /// The slot whose confirmation entry the pad holds.
    confirmed: Option<Slot>,
    /// A slot whose PIN got blocked, and whether the pad holds its new PIN.
    blocked: Option<(Slot, bool)>,
}

impl Testing {
    fn next(&self) -> Option<Slot> {
        self.written
            .slots()
            .into_iter()
            .find(|s| !self.valid.contains_key(s))
    }
}

type Step = Result<Vec<Command>, IssuanceError>;

impl Default for Issuance {
    fn default() -> Self {
        Issuance::new()
    }
}

impl Issuance {
    /// A counter with no visit open; the first event must be `VisitOpened`.
    pub fn new() -> Issuance {
        Issuance {
            ctx: None,
            stage: Stage::Idle,
        }
    }

    /// The current step's name (as in errors and `docs/workflow.md`).
    pub fn step_name(&self) -> &'static str {
        match &self.stage {
            Stage::Idle => "idle",
            Stage::AwaitForm => "await_form",
            Stage::AwaitRegistry => "await_registry",
            Stage::AwaitIdentity => "await_identity",
            Stage::FindingOld { .. } => "finding_old",
            Stage::Revoking { .. } => "revoking",
            Stage::AwaitCard => "await_card",
            Stage::ReadingCard => "reading_card",
            Stage::PinService { .. } => "pin_service",
            Stage::CheckingCase => "checking_case",
            Stage::RecordingCase => "recording_case",
            Stage::PrintingInquiry { .. } => "printing_inquiry",
            Stage::AwaitPins { .. } => "await_pins",
            Stage::Generating { .. } => "generating",
            Stage::SettingPins { .. } => "setting_pins",
            Stage::AwaitCerts { .. } => "await_certs",
            Stage::Writing { .. } => "writing",
            Stage::Testing(_) => "testing",
            Stage::Confirming { .. } => "confirming",
            Stage::AwaitFee { .. } => "await_fee",
            Stage::Printing { .. } => "printing",
            Stage::Withdrawing { .. } => "withdrawing",
            Stage::Erasing { .. } => "erasing",
            Stage::Ended { .. } => "ended",
        }
    }

    /// How the visit ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.stage {
            Stage::Ended { outcome } => Some(outcome),
            _ => None,
        }
    }

    /// The card the visit is bound to (from key generation on).
    pub fn bound_card(&self) -> Option<&CardSerial> {
        self.ctx.as_ref()?.bound.as_ref()
    }

    /// The certificates this visit put on the card and confirmed at the CA: present once
    /// the visit is past certConf (fee, receipt, or ended issued).
    pub fn issued_slots(&self) -> Option<&[Slot]> {
        match &self.stage {
            Stage::AwaitFee { verified, .. } | Stage::Printing { verified, .. } => {
                Some(verified.slots())
            }
            _ => None,
        }
    }

    /// The slots the visit issues (empty before eligibility is decided).
    pub fn wanted(&self) -> Vec<Slot> {
        self.ctx
            .as_ref()
            .map(|c| c.wanted.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The visit's CMP transaction id, once opened.
    pub fn transaction(&self) -> Option<TransactionId> {
        self.ctx.as_ref().map(|c| c.opening.seed.transaction)
    }

    /// The visit's CMP transaction id for finding and revoking old certificates.
    pub fn revocation_tx(&self) -> Option<TransactionId> {
        self.ctx.as_ref().map(|c| c.opening.seed.revocation)
    }

    /// The certificate the visit holds for `slot` (issued by the CA and checked against
    /// the card's key), while it is being written and tested.
    pub fn pending_cert(&self, slot: Slot) -> Option<&[u8]> {
        match &self.stage {
            Stage::Writing { certs, .. } => certs.cert(slot),
            Stage::Testing(t) => t.certs.cert(slot),
            _ => None,
        }
    }

    /// Handles one event.
    // The refusal carries the visit back by value, like the success does.
    #[allow(clippy::result_large_err)]
    pub fn handle(self, event: Event) -> Result<(Issuance, Vec<Command>), Refused> {
        // Work on a copy so a refused event leaves the visit exactly as it was.
        let mut next = self.clone();
        match next.transition(event) {
            Ok(commands) => Ok((next, commands)),
            Err(error) => Err(Refused { state: self, error }),
        }
    }

    /// After a restart: the card session, the pad's entries and any CA back-off are gone.
    /// Returns the commands that continue the current step.
    pub(crate) fn restart(mut self) -> (Issuance, Vec<Command>) {
        if let Some(ctx) = self.ctx.as_mut() {
            ctx.card = None;
        }
        match &mut self.stage {
            Stage::AwaitPins { pad }
            | Stage::Generating { pad, .. }
            | Stage::SettingPins { pad, .. } => pad.clear(),
            Stage::PinService { pad } => *pad = false,
            Stage::Testing(t) => {
                t.confirmed = None;
                t.read.clear();
                t.signed.clear();
                if let Some((_, pad)) = t.blocked.as_mut() {
                    *pad = false;
                }
            }
            _ => {}
        }
        if let Some(ca) = self.ca_wait_mut() {
            *ca = CaWait::default();
        }
        let commands = self.step().unwrap_or_else(|e| vec![Command::notify(e)]);
        (self, commands)
    }

    fn ctx(&self) -> Result<&Context, IssuanceError> {
        self.ctx
            .as_deref()
            .ok_or_else(|| IssuanceError::Unreachable("no visit open".into()))
    }

    fn ctx_mut(&mut self) -> Result<&mut Context, IssuanceError> {
        self.ctx
            .as_deref_mut()
            .ok_or_else(|| IssuanceError::Unreachable("no visit open".into()))
    }

    fn unexpected(&self, event: &Event) -> IssuanceError {
        IssuanceError::UnexpectedEvent {
            step: self.step_name().to_owned(),
            event: event.name().to_owned(),
        }
    }

    fn ca_wait_mut(&mut self) -> Option<&mut CaWait> {
        match &mut self.stage {
            Stage::AwaitCerts { ca, .. }
            | Stage::Confirming { ca, .. }
            | Stage::Withdrawing { ca, .. }
            | Stage::FindingOld { ca }
            | Stage::Revoking { ca, .. } => Some(ca),
            _ => None,
        }
    }

    /// Steps that talk to the card and cannot go on without it.
    fn needs_card(&self) -> bool {
        matches!(
            self.stage,
            Stage::AwaitCard
                | Stage::ReadingCard
                | Stage::PinService { .. }
                | Stage::AwaitPins { .. }
                | Stage::Generating { .. }
                | Stage::SettingPins { .. }
                | Stage::Writing { .. }
                | Stage::Testing(_)
                | Stage::Erasing { .. }
        )
    }

    fn check_transaction(&self, got: TransactionId) -> Result<(), IssuanceError> {
        if Some(got) == self.transaction() {
            Ok(())
        } else {
            Err(IssuanceError::StaleTransaction)
        }
    }

    fn transition(&mut self, event: Event) -> Step {
        // Events every step treats alike.
        match &event {
            Event::Tick { now } if self.ctx.is_some() => return self.on_tick(*now),
            Event::CardRemoved if self.ctx.is_some() => return self.on_card_removed(),
            Event::CardDetected { serial, kind } if self.ctx.is_some() => {
                return self.on_card_detected(serial.clone(), *kind)
            }
            Event::StaffCancel if self.ctx.is_some() => return self.on_cancel(&event),
            Event::StaffRetry => {
                return match self.stage {
                    Stage::Idle | Stage::Ended { .. } => Err(self.unexpected(&event)),
                    _ => {
                        if let Some(ca) = self.ca_wait_mut() {
                            *ca = CaWait::default();
                        }
                        if let Stage::Printing { failed, .. } | Stage::PrintingInquiry { failed } =
                            &mut self.stage
                        {
                            *failed = None;
                        }
                        self.step()
                    }
                };
            }
            _ => {}
        }
        // A card answer with no card in the reader is stale (its session is gone).
        if is_card_answer(&event) && self.ctx.as_ref().is_some_and(|c| c.card.is_none()) {
            return Err(self.unexpected(&event));
        }
        let stage = std::mem::replace(&mut self.stage, Stage::Idle);
        self.on_event(stage, event)
    }

    /// The per-step part of the transition; `stage` has been taken out of `self` and
    /// must be put back (or replaced) on every path.
    fn on_event(&mut self, stage: Stage, event: Event) -> Step {
        match (stage, event) {
            (Stage::Idle, Event::VisitOpened(opening)) => {
                self.ctx = Some(Box::new(Context {
                    opening,
                    form: None,
                    record: None,
                    identity: None,
                    wanted: BTreeSet::new(),
                    old: Vec::new(),
                    card: None,
                    bound: None,
                    now: None,
                    receipts: 0,
                }));
                self.go(Stage::AwaitForm)
            }
            (Stage::AwaitForm, Event::FormSubmitted { form }) => {
                self.ctx_mut()?.form = Some(form);
                self.go(Stage::AwaitRegistry)
            }
            (Stage::AwaitRegistry, Event::RegistryAnswered { record }) => self.on_registry(record),
            (stage @ Stage::AwaitRegistry, Event::RegistryFailed) => {
                self.stage = stage;
                Ok(vec![Command::notify(IssuanceError::RegistryUnavailable)])
            }
            (
                Stage::AwaitIdentity,
                Event::IdentityRecorded {
                    presenter,
                    documents,
                },
            ) => self.on_identity(presenter, documents),
            (Stage::AwaitPins { mut pad }, Event::PadReady { slot }) if self.wants(slot) => {
                pad.insert(slot);
                self.stage = Stage::AwaitPins { pad };
                self.maybe_generate()
            }
            (Stage::Generating { pad, generated }, Event::CardAuthenticated) => {
                self.stage = Stage::Generating { pad, generated };
                Ok(vec![])
            }
            (Stage::Generating { pad, mut generated }, Event::KeyGenerated { slot, spki })
                if self.wants(slot) =>
            {
                generated.insert(slot, spki);
                self.on_generated(pad, generated)
            }
            (Stage::Generating { mut pad, generated }, Event::PadReady { slot })
                if self.wants(slot) =>
            {
                pad.insert(slot);
                self.stage = Stage::Generating { pad, generated };
                Ok(vec![])
            }
            (Stage::SettingPins { mut pad, keys, set }, Event::PadReady { slot })
                if self.wants(slot) && !set.contains(&slot) =>
            {
                let first = pad.is_empty();
                pad.insert(slot);
                self.stage = Stage::SettingPins { pad, keys, set };
                // Pad entries arrive one by one after a restart; start the card as soon
                // as one is there, the rest follow.
                let mut cmds = Vec::new();
                if first {
                    cmds.push(Command::card(CardCommand::Authenticate));
                }
                cmds.push(Command::card(CardCommand::SetPinFromPad { slot }));
                Ok(cmds)
            }
            (stage @ Stage::SettingPins { .. }, Event::CardAuthenticated) => {
                self.stage = stage;
                Ok(vec![])
            }
            (Stage::SettingPins { pad, keys, mut set }, Event::PinSet { slot })
                if self.wants(slot) =>
            {
                set.insert(slot);
                match proof::check_pins(&keys, &set) {
                    Some(pins) => self.go(Stage::AwaitCerts {
                        keys,
                        pins,
                        ca: CaWait::default(),
                        cancel: false,
                    }),
                    None => {
                        self.stage = Stage::SettingPins { pad, keys, set };
                        Ok(vec![])
                    }
                }
            }
            (
                Stage::AwaitCerts {
                    keys,
                    pins,
                    cancel,
                    ca,
                },
                Event::CaIssued { transaction, certs },
            ) => {
                if let Err(e) = self.check_transaction(transaction) {
                    self.stage = Stage::AwaitCerts {
                        keys,
                        pins,
                        ca,
                        cancel,
                    };
                    return Err(e);
                }
                if cancel {
                    return self.go(withdraw(true, Outcome::Cancelled));
                }
                match proof::check_certs(&keys, &pins, &certs) {
                    Ok(certs) => self.go(Stage::Writing {
                        certs,
                        written: BTreeSet::new(),
                        attempts: 0,
                    }),
                    Err(e) => self.fail_withdrawing(e),
                }
            }
            (
                Stage::AwaitCerts {
                    keys,
                    pins,
                    cancel,
                    ca,
                },
                Event::CaRejected {
                    transaction,
                    rejection,
                },
            ) => {
                if let Err(e) = self.check_transaction(transaction) {
                    self.stage = Stage::AwaitCerts {
                        keys,
                        pins,
                        ca,
                        cancel,
                    };
                    return Err(e);
                }
                let reason = IssuanceError::CaRejected {
                    fail_info: rejection.fail_info,
                };
                let outcome = if cancel {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed {
                        reason: reason.clone(),
                    }
                };
                let mut cmds = vec![Command::notify(reason)];
                cmds.extend(self.go(Stage::Erasing {
                    remaining: self.ctx()?.wanted.clone(),
                    outcome,
                })?);
                Ok(cmds)
            }
            (
                stage @ (Stage::AwaitCerts { .. }
                | Stage::Confirming { .. }
                | Stage::Withdrawing { .. }
                | Stage::FindingOld { .. }
                | Stage::Revoking { .. }),
                Event::CaUnreachable { transaction },
            ) => {
                let expected = match stage {
                    Stage::FindingOld { .. } | Stage::Revoking { .. } => self.revocation_tx(),
                    _ => self.transaction(),
                };
                if Some(transaction) != expected {
                    return Err(IssuanceError::StaleTransaction);
                }
                self.stage = stage;
                let now = self.ctx()?.now;
                if let Some(ca) = self.ca_wait_mut() {
                    ca.down = true;
                    ca.retry_at = now.map(|t| Timestamp(t.0 + CA_RETRY_AFTER_SECS));
                }
                Ok(vec![
                    Command::notify(IssuanceError::CaUnreachable),
                    Command::show(Screen::WaitingForCa),
                ])
            }
            (Stage::ReadingCard, Event::CurrentCerts { certs }) => self.on_renewal_certs(certs),
            (Stage::CheckingCase, Event::CaseAnswered { case }) => self.on_case(case),
            (Stage::RecordingCase, Event::CaseStored) => {
                self.go(Stage::PrintingInquiry { failed: None })
            }
            (Stage::PrintingInquiry { .. }, Event::Printed) => {
                let case = self.inquiry_case()?;
                self.end(Outcome::InquiryIssued { case })
            }
            (Stage::PrintingInquiry { .. }, Event::PrintFailed { failure }) => {
                self.stage = Stage::PrintingInquiry {
                    failed: Some(failure),
                };
                Ok(vec![Command::notify(print_problem(failure))])
            }
            (Stage::PinService { pad: false }, Event::PadReady { slot }) if matches!(self.ctx()?.opening.kind, Visit::PinReset { slot: s } if s == slot) => {
                self.go(Stage::PinService { pad: true })
            }
            (stage @ Stage::PinService { .. }, Event::CardAuthenticated) => {
                self.stage = stage;
                Ok(vec![])
            }
            (Stage::PinService { pad: true }, Event::PinSet { slot }) if matches!(self.ctx()?.opening.kind, Visit::PinReset { slot: s } if s == slot) => {
                self.end(Outcome::PinServiced)
            }
            (Stage::PinService { .. }, Event::LockReleased { slot }) if matches!(self.ctx()?.opening.kind, Visit::PinLockRelease { slot: s } if s == slot) => {
                self.end(Outcome::PinServiced)
            }
            (Stage::FindingOld { .. }, Event::CurrentCerts { certs }) => {
                if certs.is_empty() && !self.ctx()?.opening.kind.is_revocation() {
                    return self.enter_card_step();
                }
                self.revoke(certs)
            }
            (Stage::Revoking { then, .. }, Event::CaRevoked { transaction }) => {
                if Some(transaction) != self.revocation_tx() {
                    return Err(IssuanceError::StaleTransaction);
                }
                if let Some(outcome) = then {
                    return self.end(outcome);
                }
                match self.ctx()?.opening.kind {
                    Visit::RevocationLost => self.end(Outcome::Revoked),
                    // The card is bound and holds the revoked keys: erase them.
                    Visit::RevocationOwnRequest => {
                        let remaining = self.ctx()?.wanted.clone();
                        self.go(Stage::Erasing {
                            remaining,
                            outcome: Outcome::Revoked,
                        })
                    }
                    _ => self.enter_card_step(),
                }
            }
            (stage @ Stage::Writing { .. }, Event::CardAuthenticated) => {
                self.stage = stage;
                Ok(vec![])
            }
            (
                Stage::Writing {
                    certs,
                    mut written,
                    attempts,
                },
                Event::CertWritten { slot },
            ) if certs.cert(slot).is_some() => {
                written.insert(slot);
                if written.len() < certs.slots().len() {
                    self.stage = Stage::Writing {
                        certs,
                        written,
                        attempts,
                    };
                    return Ok(vec![]);
                }
                let Some(all) = proof::check_written(&certs, &written) else {
                    return Err(IssuanceError::Unreachable("written set incomplete".into()));
                };
                self.go(Stage::Testing(Box::new(Testing {
                    certs,
                    written: all,
                    attempts,
                    valid: BTreeMap::new(),
                    read: BTreeMap::new(),
                    signed: BTreeMap::new(),
                    confirmed: None,
                    blocked: None,
                })))
            }
            (Stage::Testing(t), event) => self.on_testing(*t, event),
            (Stage::Confirming { verified, ca }, Event::CaConfirmed { transaction }) => {
                let Some(confirmed) = self
                    .transaction()
                    .and_then(|t| proof::check_confirmed(t, transaction))
                else {
                    self.stage = Stage::Confirming { verified, ca };
                    return Err(IssuanceError::StaleTransaction);
                };
                let fee = fee::fee_for(
                    self.ctx()?.opening.kind.fee_kind(),
                    &self.ctx()?.opening.fees,
                );
                if fee.is_free() {
                    self.go(Stage::Printing {
                        verified,
                        confirmed,
                        paid: fee,
                        failed: None,
                    })
                } else {
                    self.go(Stage::AwaitFee {
                        verified,
                        confirmed,
                        fee,
                    })
                }
            }
            (
                Stage::AwaitFee {
                    verified,
                    confirmed,
                    fee,
                },
                Event::FeePaid { amount },
            ) => {
                if amount != fee {
                    self.stage = Stage::AwaitFee {
                        verified,
                        confirmed,
                        fee,
                    };
                    return Ok(vec![Command::notify(IssuanceError::FeeMismatch {
                        fee,
                        paid: amount,
                    })]);
                }
                self.go(Stage::Printing {
                    verified,
                    confirmed,
                    paid: amount,
                    failed: None,
                })
            }
            (Stage::Printing { .. }, Event::Printed) => self.end(Outcome::Issued),
            (
                Stage::Printing {
                    verified,
                    confirmed,
                    paid,
                    ..
                },
                Event::PrintFailed { failure },
            ) => {
                self.stage = Stage::Printing {
                    verified,
                    confirmed,
                    paid,
                    failed: Some(failure),
                };
                Ok(vec![Command::notify(print_problem(failure))])
            }
            (Stage::Withdrawing { erase, outcome, ca }, Event::CaConfirmed { transaction }) => {
                if Some(transaction) != self.transaction() {
                    self.stage = Stage::Withdrawing { erase, outcome, ca };
                    return Err(IssuanceError::StaleTransaction);
                }
                if erase {
                    let remaining = self.ctx()?.wanted.clone();
                    self.go(Stage::Erasing { remaining, outcome })
                } else {
                    self.end(outcome)
                }
            }
            (stage @ Stage::Erasing { .. }, Event::CardAuthenticated) => {
                self.stage = stage;
                Ok(vec![])
            }
            (
                Stage::Erasing {
                    mut remaining,
                    outcome,
                },
                Event::SlotErased { slot },
            ) => {
                remaining.remove(&slot);
                if remaining.is_empty() {
                    let ctx = self.ctx()?;
                    if ctx.opening.kind == Visit::Renewal && !ctx.old.is_empty() {
                        // Generating (and erasing) destroyed the old keys: their certificates
                        // are dead, so the CA must not keep them live.
                        return self.go(Stage::Revoking {
                            ca: CaWait::default(),
                            then: Some(outcome),
                        });
                    }
                    self.end(outcome)
                } else {
                    self.stage = Stage::Erasing { remaining, outcome };
                    Ok(vec![])
                }
            }
            (stage, Event::CardFailed { failure }) if stage_talks_to_card(&stage) => {
                self.stage = stage;
                self.on_card_failure(failure)
            }
            (stage, event) => {
                self.stage = stage;
                Err(self.unexpected(&event))
            }
        }
    }

    fn wants(&self, slot: Slot) -> bool {
        self.ctx.as_ref().is_some_and(|c| c.wanted.contains(&slot))
    }

    /// Tells people why, and ends the visit refused.
    fn refuse(&mut self, reason: IssuanceError) -> Step {
        let mut cmds = vec![Command::notify(reason.clone())];
        cmds.extend(self.end(Outcome::Refused { reason })?);
        Ok(cmds)
    }

    /// Tells people why, then rejects the issued certificates at the CA and erases the card.
    fn fail_withdrawing(&mut self, reason: IssuanceError) -> Step {
        let mut cmds = vec![Command::notify(reason.clone())];
        cmds.extend(self.go(withdraw(true, Outcome::Failed { reason }))?);
        Ok(cmds)
    }

    /// Enters a step and returns its commands.
    fn go(&mut self, stage: Stage) -> Step {
        self.stage = stage;
        self.step()
    }

    fn end(&mut self, outcome: Outcome) -> Step {
        self.stage = Stage::Ended {
            outcome: outcome.clone(),
        };
        Ok(vec![
            Command::pad(PadCommand::Clear),
            Command::show(Screen::Ended { outcome }),
        ])
    }

    /// The commands that (re)start the current step. Running them twice is harmless:
    /// every card step re-authenticates and is idempotent, every CA request re-sends the
    /// same transaction.
    fn step(&mut self) -> Step {
        if self.needs_card() && self.ctx()?.card.is_none() {
            let screen = match &self.ctx()?.bound {
                Some(serial) => Screen::ReinsertCard {
                    serial_tail: serial.tail().to_owned(),
                },
                None => Screen::InsertCard,
            };
            return Ok(vec![
                Command::show(screen),
                Command::card(CardCommand::Detect),
            ]);
        }
        let ctx = self.ctx.as_ref();
        let wanted: Vec<Slot> = ctx
            .map(|c| c.wanted.iter().copied().collect())
            .unwrap_or_default();
        let card = |c| Command::card(c);
        Ok(match &self.stage {
            Stage::Idle => vec![],
            Stage::AwaitForm => vec![Command::show(Screen::Form)],
            Stage::AwaitRegistry => {
                let resident_id = self
                    .ctx()?
                    .form
                    .as_ref()
                    .map(|f| f.resident_id.clone())
                    .unwrap_or_default();
                vec![
                    Command::show(Screen::CheckingRegistry),
                    Command::RegistryFetch {
                        resident_id: ResidentRef(resident_id),
                    },
                ]
            }
            Stage::AwaitIdentity => vec![Command::show(Screen::IdentityCheck)],
            Stage::AwaitCard => vec![],
            Stage::ReadingCard => vec![
                Command::show(Screen::Working),
                card(CardCommand::ReadCurrentCerts),
            ],
            Stage::FindingOld { .. } => {
                let ctx = self.ctx()?;
                let resident_id = ctx
                    .form
                    .as_ref()
                    .map(|f| f.resident_id.clone())
                    .unwrap_or_default();
                vec![
                    Command::show(Screen::Working),
                    Command::ca(CaCommand::FindLive {
                        transaction: ctx.opening.seed.revocation,
                        resident_id: ResidentRef(resident_id),
                    }),
                ]
            }
            Stage::Revoking { .. } => {
                let ctx = self.ctx()?;
                vec![
                    Command::show(Screen::Working),
                    Command::ca(CaCommand::Revoke {
                        transaction: ctx.opening.seed.revocation,
                        serials: ctx.old.iter().map(|c| c.serial.clone()).collect(),
                        reason: match ctx.opening.kind {
                            Visit::RevocationOwnRequest | Visit::Renewal => {
                                RevocationReason::CessationOfOperation
                            }
                            _ => RevocationReason::KeyCompromise,
                        },
                    }),
                ]
            }
            Stage::AwaitPins { pad } => {
                let mut cmds = vec![Command::show(Screen::PinPad)];
                cmds.extend(
                    wanted
                        .iter()
                        .filter(|s| !pad.contains(s))
                        .map(|&slot| Command::pad(PadCommand::AskNew { slot })),
                );
                cmds
            }
            Stage::Generating { generated, .. } => {
                let mut cmds = vec![
                    Command::show(Screen::Working),
                    card(CardCommand::Authenticate),
                ];
                cmds.extend(
                    wanted
                        .iter()
                        .filter(|s| !generated.contains_key(s))
                        .map(|&slot| card(CardCommand::GenerateKey { slot })),
                );
                cmds
            }
            Stage::SettingPins { pad, set, .. } => {
                let todo: Vec<Slot> = wanted
                    .iter()
                    .copied()
                    .filter(|s| !set.contains(s))
                    .collect();
                let mut cmds = Vec::new();
                if todo.iter().any(|s| !pad.contains(s)) {
                    cmds.push(Command::show(Screen::PinPad));
                    cmds.extend(
                        todo.iter()
                            .filter(|s| !pad.contains(s))
                            .map(|&slot| Command::pad(PadCommand::AskNew { slot })),
                    );
                }
                if todo.iter().any(|s| pad.contains(s)) {
                    cmds.push(Command::show(Screen::Working));
                    cmds.push(card(CardCommand::Authenticate));
                    cmds.extend(
                        todo.iter()
                            .filter(|s| pad.contains(s))
                            .map(|&slot| card(CardCommand::SetPinFromPad { slot })),
                    );
                }
                cmds
            }
            Stage::AwaitCerts { keys, .. } => {
                let ctx = self.ctx()?;
                let keys_out = keys
                    .slots()
                    .into_iter()
                    .map(|slot| KeyToCertify {
                        slot,
                        spki: keys.spki(slot).map(<[u8]>::to_vec).unwrap_or_default(),
                    })
                    .collect();
                let holder = match (ctx.wanted.contains(&Slot::Sign), &ctx.record, &ctx.form) {
                    (true, Some(record), Some(form)) => Some(Holder {
                        name: record.name.clone(),
                        birth_date: record.birth_date,
                        sex: record.sex,
                        address: record.address.clone(),
                        substitutes: form.substitutes.clone(),
                    }),
                    _ => None,
                };
                vec![
                    Command::show(Screen::Working),
                    Command::ca(CaCommand::Submit {
                        kind: match ctx.opening.kind {
                            Visit::Renewal => RequestKind::KeyUpdate {
                                old_serials: ctx.old.iter().map(|c| c.serial.clone()).collect(),
                            },
                            _ => RequestKind::Initial,
                        },
                        transaction: ctx.opening.seed.transaction,
                        sender_nonce: ctx.opening.seed.sender_nonce,
                        card: keys.serial().clone(),
                        keys: keys_out,
                        holder,
                        resident: ctx.record.as_ref().map(|r| ResidentRef(r.id.clone())),
                    }),
                ]
            }
            Stage::Writing { certs, written, .. } => {
                let mut cmds = vec![
                    Command::show(Screen::Working),
                    card(CardCommand::Authenticate),
                ];
                for slot in certs.slots().into_iter().filter(|s| !written.contains(s)) {
                    let der = certs.cert(slot).map(<[u8]>::to_vec).unwrap_or_default();
                    cmds.push(card(CardCommand::WriteCert {
                        slot,
                        der: der.into(),
                    }));
                }
                cmds
            }
            Stage::Testing(t) => self.testing_step(t)?,
            Stage::Confirming { .. } => vec![
                Command::show(Screen::Working),
                Command::ca(CaCommand::Confirm {
                    transaction: self.ctx()?.opening.seed.transaction,
                    accept: true,
                }),
            ],
            Stage::AwaitFee { fee, .. } => vec![Command::show(Screen::CollectFee { amount: *fee })],
            Stage::Printing { paid, verified, .. } => {
                let (paid, slots) = (*paid, verified.slots().to_vec());
                let ctx = self.ctx_mut()?;
                ctx.receipts += 1;
                let receipt = Receipt {
                    visit: ctx.opening.visit.clone(),
                    date: ctx.opening.date,
                    slots,
                    fee: paid,
                    copy: ctx.receipts,
                };
                vec![
                    Command::show(Screen::Printing),
                    Command::PrintReceipt { receipt },
                ]
            }
            Stage::Withdrawing { .. } => vec![
                Command::show(Screen::Working),
                Command::ca(CaCommand::Confirm {
                    transaction: self.ctx()?.opening.seed.transaction,
                    accept: false,
                }),
            ],
            Stage::CheckingCase => {
                let case = self
                    .ctx()?
                    .form
                    .as_ref()
                    .and_then(|f| f.case.clone())
                    .unwrap_or_default();
                vec![
                    Command::show(Screen::CheckingRegistry),
                    Command::CaseLookup { case },
                ]
            }
            Stage::RecordingCase => vec![
                Command::show(Screen::Working),
                Command::CaseStore {
                    case: self.inquiry_case()?,
                },
            ],
            Stage::PrintingInquiry { .. } => {
                vec![
                    Command::show(Screen::Printing),
                    Command::PrintInquiry {
                        case: self.inquiry_case()?,
                    },
                ]
            }
            Stage::PinService { pad } => {
                let ctx = self.ctx()?;
                let (Some(slot), Some(serial)) =
                    (ctx.opening.kind.pin_service(), ctx.bound.clone())
                else {
                    return Err(IssuanceError::Unreachable(
                        "PIN service without a slot or card".into(),
                    ));
                };
                match ctx.opening.kind {
                    Visit::PinReset { .. } if !pad => {
                        vec![
                            Command::show(Screen::PinPad),
                            Command::pad(PadCommand::AskNew { slot }),
                        ]
                    }
                    Visit::PinReset { .. } => vec![
                        Command::show(Screen::Working),
                        card(CardCommand::Authenticate),
                        card(CardCommand::ResetPin { slot, card: serial }),
                    ],
                    _ => vec![
                        Command::show(Screen::Working),
                        card(CardCommand::Authenticate),
                        card(CardCommand::ReleaseLock { slot, card: serial }),
                    ],
                }
            }
            Stage::Erasing { remaining, .. } => {
                let mut cmds = vec![
                    Command::show(Screen::Working),
                    card(CardCommand::Authenticate),
                ];
                cmds.extend(
                    remaining
                        .iter()
                        .map(|&slot| card(CardCommand::EraseSlot { slot })),
                );
                cmds
            }
            Stage::Ended { outcome } => vec![Command::show(Screen::Ended {
                outcome: outcome.clone(),
            })],
        })
    }

    fn testing_step(&self, t: &Testing) -> Step {
        let card = |c| Command::card(c);
        if let Some((slot, pad)) = t.blocked {
            return Ok(if pad {
                vec![
                    card(CardCommand::Authenticate),
                    card(CardCommand::SetPinFromPad { slot }),
                ]
            } else {
                vec![
                    Command::show(Screen::PinPad),
                    Command::pad(PadCommand::AskNew { slot }),
                ]
            });
        }
        let Some(slot) = t.next() else {
            return Err(IssuanceError::Unreachable(
                "testing with every slot verified".into(),
            ));
        };
        if t.confirmed == Some(slot) {
            let ctx = self.ctx()?;
            let digest_info = proof::self_test_digest_info(
                &ctx.opening.visit,
                slot,
                &ctx.opening.seed.test_nonce,
            );
            // TestSign first: its VERIFY also opens the signing certificate for reading.
            Ok(vec![
                Command::show(Screen::Working),
                card(CardCommand::TestSign { slot, digest_info }),
                card(CardCommand::ReadCert { slot }),
            ])
        } else {
            Ok(vec![
                Command::show(Screen::PinPad),
                Command::pad(PadCommand::AskConfirm { slot }),
            ])
        }
    }

    fn on_registry(&mut self, record: Option<RegisteredResident>) -> Step {
        let ctx = self.ctx()?;
        let Some(form) = ctx.form.clone() else {
            return Err(IssuanceError::Unreachable(
                "registry answer without a form".into(),
            ));
        };
        let back_to_form = |me: &mut Issuance, problem| {
            let mut cmds = vec![Command::notify(problem)];
            cmds.extend(me.go(Stage::AwaitForm)?);
            Ok(cmds)
        };
        let Some(record) = record.filter(|r| r.id == form.resident_id) else {
            return back_to_form(self, IssuanceError::NotRegistered);
        };
        let (Some(registered), Some(application)) = (record.record(), form.application()) else {
            return back_to_form(self, IssuanceError::FormUnreadable);
        };
        if let Err(mismatch) = registry::match_application(&registered, &application) {
            return back_to_form(
                self,
                IssuanceError::Mismatch {
                    field: form_field(mismatch.field),
                },
            );
        }
        if record.standing != Standing::Resident {
            let reason = IssuanceError::NotServable {
                standing: record.standing,
            };
            return self.refuse(reason);
        }
        self.ctx_mut()?.record = Some(record);
        if self.ctx()?.opening.kind == Visit::ProxyCompletion {
            if form.case.is_none() {
                return back_to_form(self, IssuanceError::CaseUnknown);
            }
            return self.go(Stage::CheckingCase);
        }
        self.go(Stage::AwaitIdentity)
    }

    fn on_identity(&mut self, presenter: PresenterKind, documents: Vec<IdDocument>) -> Step {
        let ctx = self.ctx()?;
        let groups: Vec<_> = documents.iter().map(|d| d.group).collect();
        let who = match presenter {
            PresenterKind::Holder => Presenter::Holder,
            PresenterKind::LegalRepresentative => Presenter::LegalRepresentative,
            PresenterKind::VoluntaryProxy => Presenter::VoluntaryProxy,
        };
        if let Err(shortfall) = identity::check_identity(
            &groups,
            who,
            ctx.opening.kind.fee_kind(),
            ctx.opening.kind == Visit::ProxyCompletion,
            &ctx.opening.identity,
        ) {
            self.stage = Stage::AwaitIdentity;
            let shortfall = match shortfall {
                identity::IdentityShortfall::NotEnough { required, found } => {
                    IdShortfall::NotEnough { required, found }
                }
                identity::IdentityShortfall::PhotoRequired => IdShortfall::PhotoRequired,
                _ => IdShortfall::ProxyNeedsInquiry,
            };
            return Ok(vec![Command::notify(IssuanceError::IdentityShortfall {
                shortfall,
            })]);
        }
        if ctx.opening.kind == Visit::ProxyInquiry {
            self.ctx_mut()?.identity = Some((presenter, documents));
            return self.go(Stage::RecordingCase);
        }
        if ctx.opening.kind.is_revocation() || ctx.opening.kind.pin_service().is_some() {
            // No eligibility: these visits issue nothing.
            let lost = ctx.opening.kind == Visit::RevocationLost;
            self.ctx_mut()?.identity = Some((presenter, documents));
            return if lost {
                self.go(Stage::FindingOld {
                    ca: CaWait::default(),
                })
            } else {
                self.enter_card_step()
            };
        }
        let (Some(record), Some(form)) = (&ctx.record, &ctx.form) else {
            return Err(IssuanceError::Unreachable(
                "identity before registry".into(),
            ));
        };
        let requested = Requested {
            sign: form.want_sign,
            auth: form.want_auth,
        };
        let Ok(decision) = age::eligibility(
            record.birth_date,
            record.adult_ward,
            ctx.opening.date,
            requested,
        ) else {
            let mut cmds = vec![Command::notify(IssuanceError::FormUnreadable)];
            cmds.extend(self.go(Stage::AwaitForm)?);
            return Ok(cmds);
        };
        let mut cmds = Vec::new();
        if let (CertDecision::NotEligible(why), true) = (decision.sign, form.want_sign) {
            let reason = match why {
                Ineligible::UnderFifteen => SigningWithheld::UnderFifteen,
                Ineligible::AdultWard => SigningWithheld::AdultWard,
            };
            cmds.push(Command::notify(IssuanceError::SigningWithheld { reason }));
        }
        let mut wanted = BTreeSet::new();
        if decision.auth == CertDecision::Issue {
            wanted.insert(Slot::Auth);
        }
        if decision.sign == CertDecision::Issue {
            wanted.insert(Slot::Sign);
        }
        let ctx = self.ctx_mut()?;
        ctx.identity = Some((presenter, documents));
        if wanted.is_empty() {
            cmds.push(Command::notify(IssuanceError::NothingToIssue));
            cmds.extend(self.end(Outcome::Refused {
                reason: IssuanceError::NothingToIssue,
            })?);
            return Ok(cmds);
        }
        ctx.wanted = wanted.clone();
        cmds.push(Command::show(Screen::Plan {
            slots: wanted.into_iter().collect(),
        }));
        if ctx.opening.kind == Visit::ReissueAfterLoss {
            cmds.extend(self.go(Stage::FindingOld {
                ca: CaWait::default(),
            })?);
        } else {
            cmds.extend(self.enter_card_step()?);
        }
        Ok(cmds)
    }

    /// Moves on to the card: reads its certificates first for a renewal.
    fn enter_card_step(&mut self) -> Step {
        let ctx = self.ctx()?;
        let stage = match (ctx.card.is_some(), ctx.opening.kind) {
            (false, _) => Stage::AwaitCard,
            (true, Visit::Renewal | Visit::RevocationOwnRequest) => Stage::ReadingCard,
            (true, Visit::PinLockRelease { .. } | Visit::PinReset { .. }) => {
                // Bound from here: the service is done on this card and no other.
                self.ctx_mut()?.bound = self.ctx()?.card.clone();
                Stage::PinService { pad: false }
            }
            (true, _) => Stage::AwaitPins {
                pad: BTreeSet::new(),
            },
        };
        self.go(stage)
    }

    /// The case a proxy's first visit opens: numbered by the visit id, valid for
    /// [`INQUIRY_VALID_DAYS`] from the visit date.
    fn inquiry_case(&self) -> Result<InquiryCase, IssuanceError> {
        let ctx = self.ctx()?;
        let resident_id = ctx
            .record
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_default();
        let expires = ctx
            .opening
            .date
            .checked_add(time::Duration::days(INQUIRY_VALID_DAYS))
            .ok_or_else(|| IssuanceError::Unreachable("inquiry expiry out of range".into()))?;
        Ok(InquiryCase {
            case: ctx.opening.visit.0.clone(),
            resident_id: ResidentRef(resident_id),
            expires,
        })
    }

    /// A proxy's second visit: the case must exist, be this resident's and not be expired.
    fn on_case(&mut self, case: Option<InquiryCase>) -> Step {
        let ctx = self.ctx()?;
        let problem = match &case {
            None => Some(IssuanceError::CaseUnknown),
            Some(c) if ctx.record.as_ref().map(|r| &r.id) != Some(&c.resident_id.0) => {
                Some(IssuanceError::CaseMismatch)
            }
            Some(c) if ctx.opening.date > c.expires => Some(IssuanceError::CaseExpired {
                expired: c.expires.to_string(),
            }),
            Some(_) => None,
        };
        match problem {
            None => self.go(Stage::AwaitIdentity),
            Some(reason) => self.refuse(reason),
        }
    }

    /// Revokes `certs` (refused when there are none and the visit is a revocation).
    fn revoke(&mut self, certs: Vec<CurrentCert>) -> Step {
        if certs.is_empty() {
            let reason = IssuanceError::NothingToRevoke;
            return self.refuse(reason);
        }
        let ctx = self.ctx_mut()?;
        if ctx.opening.kind.is_revocation() {
            ctx.wanted = certs.iter().map(|c| c.slot).collect();
        }
        ctx.old = certs;
        self.go(Stage::Revoking {
            ca: CaWait::default(),
            then: None,
        })
    }

    /// Renewal: the window is worked out from the earliest expiry on the card; the card
    /// is bound from here, so the certificates renewed are the ones read.
    fn on_renewal_certs(&mut self, certs: Vec<CurrentCert>) -> Step {
        let ctx = self.ctx()?;
        if ctx.opening.kind == Visit::RevocationOwnRequest {
            // The certificates to revoke are the ones on this card: bind it.
            let ctx = self.ctx_mut()?;
            ctx.bound = ctx.card.clone();
            return self.revoke(certs);
        }
        let Some(expiry) = certs.iter().map(|c| c.not_after).min() else {
            return self.refuse(IssuanceError::NoCertsToRenew);
        };
        match age::renewal_status(expiry, ctx.opening.date) {
            Ok(RenewalStatus::Open { .. }) => {}
            Ok(RenewalStatus::TooEarly { opens }) => {
                return self.refuse(IssuanceError::RenewalTooEarly {
                    opens: opens.to_string(),
                })
            }
            Ok(RenewalStatus::Expired) | Err(_) => {
                return self.refuse(IssuanceError::RenewalExpired)
            }
        }
        let ctx = self.ctx_mut()?;
        ctx.old = certs;
        ctx.bound = ctx.card.clone();
        self.go(Stage::AwaitPins {
            pad: BTreeSet::new(),
        })
    }

    /// Starts key generation once the pad holds every PIN and a card is in the reader;
    /// from here on the visit is bound to that card.
    fn maybe_generate(&mut self) -> Step {
        let ctx = self.ctx()?;
        let Stage::AwaitPins { pad } = &self.stage else {
            return Ok(vec![]);
        };
        if !ctx.wanted.iter().all(|s| pad.contains(s)) {
            return Ok(vec![]);
        }
        let Some(card) = ctx.card.clone() else {
            return self.step();
        };
        let pad = pad.clone();
        self.ctx_mut()?.bound = Some(card);
        self.go(Stage::Generating {
            pad,
            generated: BTreeMap::new(),
        })
    }

    fn on_generated(&mut self, pad: BTreeSet<Slot>, generated: BTreeMap<Slot, Vec<u8>>) -> Step {
        let ctx = self.ctx()?;
        if !ctx.wanted.iter().all(|s| generated.contains_key(s)) {
            self.stage = Stage::Generating { pad, generated };
            return Ok(vec![]);
        }
        let Some(serial) = ctx.bound.clone() else {
            return Err(IssuanceError::Unreachable("keys on an unbound card".into()));
        };
        match proof::check_keys(&serial, &ctx.wanted, &generated) {
            Ok(keys) => self.go(Stage::SettingPins {
                pad,
                keys,
                set: BTreeSet::new(),
            }),
            Err(e) => {
                let remaining = ctx.wanted.clone();
                let mut cmds = vec![Command::notify(e.clone())];
                cmds.extend(self.go(Stage::Erasing {
                    remaining,
                    outcome: Outcome::Failed { reason: e },
                })?);
                Ok(cmds)
            }
        }
    }

    fn on_testing(&mut self, mut t: Testing, event: Event) -> Step {
        let next = t.next();
        match event {
            Event::PadConfirmed { slot } if t.blocked.is_none() && Some(slot) == next => {
                t.confirmed = Some(slot);
                self.go(Stage::Testing(Box::new(t)))
            }
            Event::PadReady { slot } if t.blocked == Some((slot, false)) => {
                t.blocked = Some((slot, true));
                self.go(Stage::Testing(Box::new(t)))
            }
            Event::CardAuthenticated if t.blocked.is_some() => {
                self.stage = Stage::Testing(Box::new(t));
                Ok(vec![])
            }
            Event::PinSet { slot } if t.blocked == Some((slot, true)) => {
                t.blocked = None;
                self.go(Stage::Testing(Box::new(t)))
            }
            Event::TestSigned { slot, signature } if t.confirmed == Some(slot) => {
                t.signed.insert(slot, signature);
                self.after_test_answer(t, slot)
            }
            Event::CertRead { slot, der } if t.confirmed == Some(slot) => {
                t.read.insert(slot, der.0);
                self.after_test_answer(t, slot)
            }
            Event::CardFailed { failure } => {
                self.stage = Stage::Testing(Box::new(t));
                self.on_card_failure(failure)
            }
            event => {
                self.stage = Stage::Testing(Box::new(t));
                Err(self.unexpected(&event))
            }
        }
    }

    /// Once both the read-back and the signature of a slot are in, checks them.
    fn after_test_answer(&mut self, mut t: Testing, slot: Slot) -> Step {
        let (Some(der), Some(signature)) =
            (t.read.get(&slot).cloned(), t.signed.get(&slot).cloned())
        else {
            self.stage = Stage::Testing(Box::new(t));
            return Ok(vec![]);
        };
        t.confirmed = None;
        t.read.remove(&slot);
        t.signed.remove(&slot);
        let ctx = self.ctx()?;
        let (visit, nonce) = (&ctx.opening.visit, &ctx.opening.seed.test_nonce);
        match proof::check_slot(&t.written, visit, nonce, slot, &der, &signature) {
            Ok(valid) => {
                t.valid.insert(slot, valid);
            }
            Err(problem @ IssuanceError::ReadBackMismatch { .. }) => {
                // A torn write: write the certificate again, then test it again.
                let attempts = t.attempts + 1;
                if attempts >= MAX_WRITE_ATTEMPTS {
                    return self.fail_withdrawing(problem);
                }
                let mut written: BTreeSet<Slot> = t.written.slots().into_iter().collect();
                written.remove(&slot);
                let mut cmds = vec![Command::notify(problem)];
                cmds.extend(self.go(Stage::Writing {
                    certs: t.certs,
                    written,
                    attempts,
                })?);
                return Ok(cmds);
            }
            Err(e) => {
                return self.fail_withdrawing(e);
            }
        }
        match proof::card_verified(&t.written, &t.valid) {
            Some(verified) => self.go(Stage::Confirming {
                verified,
                ca: CaWait::default(),
            }),
            None => self.go(Stage::Testing(Box::new(t))),
        }
    }

    fn on_card_failure(&mut self, failure: CardFailure) -> Step {
        let problem = match failure {
            CardFailure::WrongPin { slot, tries_left } => {
                let Stage::Testing(t) = &mut self.stage else {
                    return Err(IssuanceError::UnexpectedEvent {
                        step: self.step_name().into(),
                        event: "card_failed".into(),
                    });
                };
                t.confirmed = None;
                if tries_left == 0 {
                    t.blocked = Some((slot, false));
                    IssuanceError::PinBlocked { slot }
                } else {
                    IssuanceError::WrongPin { slot, tries_left }
                }
            }
            CardFailure::PinBlocked { slot } => {
                let Stage::Testing(t) = &mut self.stage else {
                    return Err(IssuanceError::UnexpectedEvent {
                        step: self.step_name().into(),
                        event: "card_failed".into(),
                    });
                };
                t.confirmed = None;
                t.blocked = Some((slot, false));
                IssuanceError::PinBlocked { slot }
            }
            CardFailure::AdminAuthFailed { tries_left } => {
                return Ok(vec![Command::notify(IssuanceError::AdminAuthFailed {
                    tries_left,
                })])
            }
            CardFailure::AdminKeyBlocked => {
                // The card can no longer be written or erased: reject whatever the CA
                // issued and end; staff hand the resident over for a card replacement.
                let reason = IssuanceError::AdminKeyBlocked;
                let mut cmds = vec![Command::notify(reason.clone())];
                let outcome = Outcome::Failed { reason };
                let issued = matches!(self.stage, Stage::Writing { .. } | Stage::Testing(_));
                cmds.extend(if issued {
                    self.go(withdraw(false, outcome))?
                } else {
                    self.end(outcome)?
                });
                return Ok(cmds);
            }
            CardFailure::Unexpected { sw } => {
                return Ok(vec![Command::notify(IssuanceError::CardUnexpected { sw })])
            }
            CardFailure::Transport => {
                return Ok(vec![Command::notify(IssuanceError::ReaderFailed)])
            }
        };
        let mut cmds = vec![Command::notify(problem)];
        cmds.extend(self.step()?);
        Ok(cmds)
    }

    fn on_tick(&mut self, now: Timestamp) -> Step {
        self.ctx_mut()?.now = Some(now);
        let due = self
            .ca_wait_mut()
            .is_some_and(|ca| ca.down && ca.retry_at.is_some_and(|t| t <= now));
        if !due {
            return Ok(vec![]);
        }
        if let Some(ca) = self.ca_wait_mut() {
            *ca = CaWait::default();
        }
        self.step()
    }

    fn on_card_removed(&mut self) -> Step {
        if matches!(self.stage, Stage::Ended { .. }) {
            // The resident takes the card at the end: nothing to say.
            return Ok(vec![]);
        }
        let ctx = self.ctx_mut()?;
        let was_present = ctx.card.take().is_some();
        if !self.needs_card() || !was_present {
            return Ok(vec![]);
        }
        let mut cmds = vec![Command::notify(IssuanceError::CardRemoved)];
        cmds.extend(self.step()?);
        Ok(cmds)
    }

    fn on_card_detected(&mut self, serial: CardSerial, kind: CardKind) -> Step {
        if matches!(self.stage, Stage::Ended { .. }) {
            return Ok(vec![]);
        }
        if kind != CardKind::MyNumber {
            return Ok(vec![Command::notify(IssuanceError::NotJpkiCard { kind })]);
        }
        let ctx = self.ctx_mut()?;
        if ctx.bound.as_ref().is_some_and(|b| *b != serial) {
            // Keys of this visit live on the bound card: never continue on another.
            let tail = ctx
                .bound
                .as_ref()
                .map(|b| b.tail().to_owned())
                .unwrap_or_default();
            return Ok(vec![
                Command::notify(IssuanceError::WrongCard),
                Command::show(Screen::ReinsertCard { serial_tail: tail }),
            ]);
        }
        if ctx.card.as_ref() == Some(&serial) {
            return Ok(vec![]);
        }
        ctx.card = Some(serial);
        match &self.stage {
            Stage::AwaitCard => self.enter_card_step(),
            Stage::AwaitPins { pad } if self.ctx()?.wanted.iter().all(|s| pad.contains(s)) => {
                self.maybe_generate()
            }
            _ if self.needs_card() => self.step(),
            _ => Ok(vec![]),
        }
    }

    fn on_cancel(&mut self, event: &Event) -> Step {
        let stage = std::mem::replace(&mut self.stage, Stage::Idle);
        match stage {
            Stage::AwaitForm
            | Stage::AwaitRegistry
            | Stage::AwaitIdentity
            | Stage::FindingOld { .. }
            | Stage::AwaitCard
            | Stage::ReadingCard
            | Stage::PinService { .. }
            | Stage::CheckingCase
            | Stage::RecordingCase
            | Stage::PrintingInquiry { .. }
            | Stage::AwaitPins { .. } => self.end(Outcome::Cancelled),
            // Keys may be on the card (a generate may have run unanswered): erase them.
            Stage::Generating { .. } | Stage::SettingPins { .. } => {
                let remaining = self.ctx()?.wanted.clone();
                self.go(Stage::Erasing {
                    remaining,
                    outcome: Outcome::Cancelled,
                })
            }
            // The CA may already have issued: keep waiting for its answer, then reject.
            Stage::AwaitCerts { keys, pins, ca, .. } => {
                self.stage = Stage::AwaitCerts {
                    keys,
                    pins,
                    ca,
                    cancel: true,
                };
                Ok(vec![Command::show(Screen::Working)])
            }
            Stage::Writing { .. } | Stage::Testing(_) => {
                self.go(withdraw(true, Outcome::Cancelled))
            }
            stage
            @ (Stage::Confirming { .. } | Stage::AwaitFee { .. } | Stage::Printing { .. }) => {
                self.stage = stage;
                Err(IssuanceError::TooLateToCancel)
            }
            stage => {
                self.stage = stage;
                Err(self.unexpected(event))
            }
        }
    }
}

fn print_problem(failure: PrintFailure) -> IssuanceError {
    match failure {
        PrintFailure::OutOfPaper => IssuanceError::PrinterOutOfPaper,
        PrintFailure::Offline => IssuanceError::PrinterOffline,
    }
}

fn withdraw(erase: bool, outcome: Outcome) -> Stage {
    Stage::Withdrawing {
        ca: CaWait::default(),
        erase,
        outcome,
    }
}

fn stage_talks_to_card(stage: &Stage) -> bool {
    matches!(
        stage,
        Stage::ReadingCard
            | Stage::PinService { .. }
            | Stage::Generating { .. }
            | Stage::SettingPins { .. }
            | Stage::Writing { .. }
            | Stage::Erasing { .. }
    )
}

fn is_card_answer(event: &Event) -> bool {
    matches!(
        event,
        Event::CardAuthenticated
            | Event::KeyGenerated { .. }
            | Event::PinSet { .. }
            | Event::CertWritten { .. }
            | Event::CertRead { .. }
            | Event::TestSigned { .. }
            | Event::SlotErased { .. }
            | Event::LockReleased { .. }
            | Event::CardFailed { .. }
    )
}

fn form_field(field: Field) -> FormField {
    match field {
        Field::Name => FormField::Name,
        Field::Furigana => FormField::Furigana,
        Field::BirthDate => FormField::BirthDate,
        Field::Sex => FormField::Sex,
        Field::Address => FormField::Address,
    }
}
