//! The kiosk's two windows, bound to the visit: [`Kiosk::present`] turns each [`ToUi`]
//! message of the worker into what the staff and resident windows show, and the views'
//! callbacks turn what people do into [`FromUi`] answers.
//!
//! Everything here runs on the UI thread. The resident's PIN goes from the pad's
//! zeroizing buffer ([`PinPadBinding`]) into a [`FromUi::Pin`] message for the worker —
//! never into a property of the staff window, a log or a file.
//!
//! What it is not: the visit's logic. Which screen comes next is the state machine's
//! decision; this module only shows it.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use slint::{ComponentHandle, ModelRc, SharedString, VecModel};
use time::Date;
use zeroize::Zeroizing;

use super::session::{FromUi, Summary, ToUi};
use super::watch::IdleWatch;
use crate::issuance::adapters::Stage;
use crate::issuance::command::{CaCommand, CardCommand, Command, Outcome, PadCommand, Screen};
use crate::issuance::event::{Event, Opening, Visit};
use crate::issuance::model::{IdDocument, PresenterKind, Seed, Slot, VisitId};
use crate::issuance::notice::{japanese, notice_for, Audience, Recovery};
use crate::rules::fee::FeeTable;
use crate::rules::identity::DocumentGroup;
use crate::rules::repertoire::SubstituteTable;
use crate::rules::wareki;
use crate::staff::{OperatorId, Passphrase, StaffDirectory};
use crate::ui::form::{application, FormBinding};
use crate::ui::pinpad::{key_rows, EnteredSecret, KeyOrder, PinPadBinding, PinPadController, Secret};
use crate::ui::staff::{self as staff_ui, SignInResult};
use crate::ui::{
    CardPrompt, DocKind, FeeAdapter, FormAdapter, IdentityAdapter, NoticeAction, Payment, Presenter,
    ProgressAdapter, ResidentAdapter, ResidentProblem, ResidentScreen, ResidentWindow, ResultAdapter,
    ResultKind, Sex, SignInAdapter, StaffAdapter, StaffScreen, StaffWindow, StepKind, StepRow, StepState,
    VisitType,
};

/// How the kiosk is set up.
#[derive(Debug, Clone)]
pub struct KioskOptions {
    /// The data directory (`staff.db`, `doctor-last.json`).
    pub data: PathBuf,
    /// The resident pad's key layout.
    pub key_order: KeyOrder,
    /// No touch for this long clears the visit's personal data from the screens.
    pub idle_timeout: Duration,
    /// The municipality's fee table.
    pub fees: FeeTable,
}

/// The kiosk's windows and the state behind them.
pub struct Kiosk {
    /// The staff window.
    pub staff: StaffWindow,
    /// The resident window.
    pub resident: ResidentWindow,
    state: Rc<RefCell<State>>,
    _form: FormBinding,
}

struct State {
    reply: Sender<FromUi>,
    options: KioskOptions,
    operator: Option<OperatorId>,
    pad: Option<PinPadBinding>,
    steps: Vec<Step>,
    started: Option<Instant>,
    /// The last screen that waits for a person, shown again after an idle clear.
    waiting: Option<Command>,
    idle: IdleWatch,
    epoch: Instant,
    visit_open: bool,
    /// Tries left after a wrong PIN, shown with the next pad prompt.
    wrong_pin: Option<i32>,
}

struct Step {
    kind: StepKind,
    state: StepState,
    spent: Duration,
    since: Option<Instant>,
}

impl State {
    fn touch(&mut self) {
        self.idle.touch(self.epoch.elapsed());
    }

    fn send(&mut self, message: FromUi) {
        self.touch();
        if self.reply.send(message).is_err() {
            tracing::warn!("the visit worker is gone");
        }
    }
}

impl Kiosk {
    /// Builds both windows and wires their callbacks. Answers go to `reply`.
    pub fn new(reply: Sender<FromUi>, options: KioskOptions) -> Result<Kiosk, slint::PlatformError> {
        let staff = StaffWindow::new()?;
        let resident = ResidentWindow::new()?;
        crate::ui::language::bind(&resident);
        let epoch = Instant::now();
        let state = Rc::new(RefCell::new(State {
            reply,
            idle: IdleWatch::new(options.idle_timeout, Duration::ZERO),
            options,
            operator: None,
            pad: None,
            steps: Vec::new(),
            started: None,
            waiting: None,
            epoch,
            visit_open: false,
            wrong_pin: None,
        }));
        show_self_test(&staff, &state.borrow().options.data);

        // Sign-in against the staff directory; the visit type opens a visit.
        let st = state.clone();
        let staff_db = state.borrow().options.data.join("staff.db");
        let st_visit = state.clone();
        let weak = staff.as_weak();
        let st_out = state.clone();
        staff_ui::bind(
            &staff,
            move |id, pass| {
                let result = check_sign_in(&staff_db, id, pass);
                if matches!(result, SignInResult::SignedIn(_)) {
                    let mut s = st.borrow_mut();
                    s.operator = OperatorId::new(id);
                    s.touch();
                }
                result
            },
            move |kind| {
                let Some(w) = weak.upgrade() else { return };
                open_visit(&w, &st_visit, kind);
            },
            move || st_out.borrow_mut().operator = None,
        );

        // The form: a complete application goes to the worker.
        let st = state.clone();
        let form = FormBinding::bind(&staff, SubstituteTable::shipped(), move |input, checks| {
            if let Some(form) = application(&input, &checks) {
                st.borrow_mut().send(FromUi::Answer(Box::new(Event::FormSubmitted { form })));
            }
        });
        let st = state.clone();
        staff.global::<FormAdapter>().on_cancel(move || {
            st.borrow_mut().send(FromUi::Answer(Box::new(Event::StaffCancel)));
        });

        // Identity documents.
        let weak = staff.as_weak();
        staff.global::<IdentityAdapter>().on_edited(move || {
            if let Some(w) = weak.upgrade() {
                refresh_identity(&w);
            }
        });
        let weak = staff.as_weak();
        let st = state.clone();
        staff.global::<IdentityAdapter>().on_record(move || {
            let Some(w) = weak.upgrade() else { return };
            if let Some((presenter, documents)) = refresh_identity(&w) {
                st.borrow_mut().send(FromUi::Answer(Box::new(Event::IdentityRecorded { presenter, documents })));
            }
        });
        let st = state.clone();
        staff.global::<IdentityAdapter>().on_cancel(move || {
            st.borrow_mut().send(FromUi::Answer(Box::new(Event::StaffCancel)));
        });

        // The fee.
        let weak = staff.as_weak();
        let st = state.clone();
        staff.global::<FeeAdapter>().on_paid(move || {
            let Some(w) = weak.upgrade() else { return };
            let amount = crate::rules::fee::Yen(w.global::<FeeAdapter>().get_amount().parse().unwrap_or(0));
            st.borrow_mut().send(FromUi::Answer(Box::new(Event::FeePaid { amount })));
        });

        let st = state.clone();
        staff.global::<ProgressAdapter>().on_retry_now(move || {
            st.borrow_mut().send(FromUi::Answer(Box::new(Event::StaffRetry)));
        });

        // The end of a visit: back to the visit type, personal data cleared.
        let (weak_s, weak_r) = (staff.as_weak(), resident.as_weak());
        let st = state.clone();
        staff.global::<ResultAdapter>().on_next(move || {
            let (Some(s), Some(r)) = (weak_s.upgrade(), weak_r.upgrade()) else { return };
            st.borrow_mut().touch();
            clear_personal_data(&s, &r);
            s.global::<StaffAdapter>().set_screen(StaffScreen::VisitType);
            r.global::<ResidentAdapter>().set_screen(ResidentScreen::Welcome);
            r.global::<crate::ui::PinPadAdapter>().set_card_prompt(CardPrompt::None);
        });
        let weak = staff.as_weak();
        staff.global::<StaffAdapter>().on_dismiss_notice(move || {
            if let Some(w) = weak.upgrade() {
                w.global::<StaffAdapter>().set_notice(SharedString::new());
            }
        });

        Ok(Kiosk { staff, resident, state, _form: form })
    }

    /// Shows what the worker reports.
    pub fn present(&self, message: ToUi) {
        match message {
            ToUi::Show(command) => self.show(&command),
            ToUi::Progress { command, stage } => self.progress(&command, stage),
            ToUi::Ended(summary) => self.ended(&summary),
            ToUi::CardLeft(on) => {
                self.staff.global::<StaffAdapter>().set_card_left(on);
                if on {
                    self.resident.global::<crate::ui::PinPadAdapter>().set_card_prompt(CardPrompt::TakeCard);
                }
            }
            ToUi::Stopped(message) => {
                let s = self.staff.global::<StaffAdapter>();
                s.set_notice(format!("処理を中断しました（記録は保存されています）: {message}").into());
                s.set_notice_action(NoticeAction::CallSupervisor);
            }
        }
    }

    /// Clears the visit's personal data from both windows when nobody touched them for
    /// the idle timeout. Returns `true` when it cleared. Call about once a second.
    pub fn tick(&self) -> bool {
        let fire = {
            let mut s = self.state.borrow_mut();
            let now = s.epoch.elapsed();
            s.idle.fire(now)
        };
        if fire {
            clear_personal_data(&self.staff, &self.resident);
            let staff = self.staff.global::<StaffAdapter>();
            staff.set_operator(SharedString::new());
            staff.set_screen(StaffScreen::SignIn);
            self.resident.global::<ResidentAdapter>().set_screen(ResidentScreen::Welcome);
            self.state.borrow_mut().operator = None;
            tracing::info!("idle: personal data cleared from the screens, staff signed out");
        }
        fire
    }

    /// Marks a touch (for input that does not pass through a callback of this module).
    pub fn touch(&self) {
        self.state.borrow_mut().touch();
    }

    /// Whether a visit is open (between the visit type and its end).
    pub fn visit_open(&self) -> bool {
        self.state.borrow().visit_open
    }

    fn show(&self, command: &Command) {
        let staff = self.staff.global::<StaffAdapter>();
        let resident = self.resident.global::<ResidentAdapter>();
        let prompt = self.resident.global::<crate::ui::PinPadAdapter>();
        match command {
            Command::Show { screen } => {
                match screen {
                    Screen::Form => {
                        staff.set_screen(StaffScreen::Form);
                        self.state.borrow_mut().waiting = Some(command.clone());
                    }
                    Screen::CheckingRegistry => staff.set_screen(StaffScreen::Progress),
                    Screen::IdentityCheck => {
                        let id = self.staff.global::<IdentityAdapter>();
                        id.set_registry_line("○ 住民記録と照合しました（氏名・生年月日・性別・住所が一致）".into());
                        refresh_identity(&self.staff);
                        staff.set_screen(StaffScreen::Identity);
                        self.state.borrow_mut().waiting = Some(command.clone());
                    }
                    Screen::Plan { slots } => {
                        let p = self.staff.global::<ProgressAdapter>();
                        p.set_plan_sign(slots.contains(&Slot::Sign));
                        p.set_plan_auth(slots.contains(&Slot::Auth));
                        staff.set_screen(StaffScreen::Progress);
                    }
                    Screen::InsertCard => {
                        resident.set_screen(ResidentScreen::Card);
                        prompt.set_card_prompt(CardPrompt::Insert);
                    }
                    Screen::ReinsertCard { .. } => {
                        resident.set_problem(ResidentProblem::ReinsertCard);
                        resident.set_screen(ResidentScreen::Problem);
                        prompt.set_card_prompt(CardPrompt::Insert);
                    }
                    Screen::PinPad => resident.set_screen(ResidentScreen::Pin),
                    Screen::Working => {
                        staff.set_screen(StaffScreen::Progress);
                        if resident.get_screen() != ResidentScreen::Pin {
                            resident.set_screen(ResidentScreen::Card);
                        }
                        prompt.set_card_prompt(CardPrompt::DoNotRemove);
                    }
                    Screen::WaitingForCa => {
                        self.staff.global::<ProgressAdapter>().set_waiting_for_ca(true);
                        staff.set_screen(StaffScreen::Progress);
                        resident.set_problem(ResidentProblem::Wait);
                        resident.set_screen(ResidentScreen::Problem);
                    }
                    Screen::CollectFee { amount } => {
                        let fee = self.staff.global::<FeeAdapter>();
                        fee.set_amount(amount.0.to_string().into());
                        fee.set_free(amount.is_free());
                        fee.set_method(Payment::Cash);
                        staff.set_screen(StaffScreen::Fee);
                        resident.set_screen(ResidentScreen::Card);
                        prompt.set_card_prompt(CardPrompt::TakeCard);
                        self.state.borrow_mut().waiting = Some(command.clone());
                    }
                    Screen::Printing => staff.set_screen(StaffScreen::Progress),
                    Screen::Ended { outcome } => self.ended_screen(outcome),
                }
                if !matches!(screen, Screen::WaitingForCa) {
                    self.staff.global::<ProgressAdapter>().set_waiting_for_ca(false);
                }
            }
            Command::Notify { problem } => {
                let notice = notice_for(problem);
                let text = japanese(notice.what).unwrap_or(notice.what);
                staff.set_notice(text.into());
                staff.set_notice_action(action_for(notice.recovery));
                if notice.audience == Audience::Resident {
                    let (problem, tries) = match notice.recovery {
                        Recovery::ReinsertCard => (ResidentProblem::ReinsertCard, -1),
                        Recovery::ReenterPin { tries_left } => (ResidentProblem::ReenterPin, i32::from(tries_left)),
                        Recovery::RetryCaLater => (ResidentProblem::Wait, -1),
                        _ => (ResidentProblem::AskStaff, -1),
                    };
                    resident.set_problem(problem);
                    resident.set_tries_left(tries);
                    if problem == ResidentProblem::ReenterPin {
                        self.state.borrow_mut().wrong_pin = Some(tries);
                    }
                    if resident.get_screen() != ResidentScreen::Pin {
                        resident.set_screen(ResidentScreen::Problem);
                    }
                }
            }
            Command::Pad { pad } => match pad {
                PadCommand::AskNew { slot } => self.ask_pin(*slot, false, command),
                PadCommand::AskConfirm { slot } => self.ask_pin(*slot, true, command),
                PadCommand::Clear => {
                    self.state.borrow_mut().pad = None;
                }
            },
            _ => {}
        }
    }

    fn ask_pin(&self, slot: Slot, confirm: bool, command: &Command) {
        let secret = match slot {
            Slot::Auth => Secret::AuthPin,
            Slot::Sign => Secret::SigningPassword,
        };
        let controller = if confirm { PinPadController::verify(secret) } else { PinPadController::new_secret(secret) };
        let order = self.state.borrow().options.key_order;
        let rows = key_rows(secret, order, &mut OsRng);
        let st = Rc::downgrade(&self.state);
        let binding = PinPadBinding::bind(&self.resident, controller, &rows, move |entered| {
            let Some(st) = st.upgrade() else { return };
            let typed = match &entered {
                EnteredSecret::AuthPin(p) => text_of(p.expose()),
                EnteredSecret::SigningPassword(p) => text_of(p.expose()),
            };
            st.borrow_mut().send(FromUi::Pin { slot, confirm, typed });
        });
        let mut s = self.state.borrow_mut();
        s.pad = Some(binding);
        s.waiting = Some(command.clone());
        let wrong = s.wrong_pin.take();
        drop(s);
        let pad = self.resident.global::<crate::ui::PinPadAdapter>();
        match wrong {
            Some(tries) => {
                pad.set_message(crate::ui::PinMessage::WrongPin);
                pad.set_tries_left(tries);
            }
            None => pad.set_tries_left(-1),
        }
        self.resident.global::<ResidentAdapter>().set_screen(ResidentScreen::Pin);
        self.resident.global::<crate::ui::PinPadAdapter>().set_card_prompt(CardPrompt::DoNotRemove);
    }

    fn progress(&self, command: &Command, stage: Stage) {
        let Some(kind) = step_kind(command) else { return };
        let now = Instant::now();
        let mut s = self.state.borrow_mut();
        s.started.get_or_insert(now);
        let i = match s.steps.iter().position(|st| st.kind == kind) {
            Some(i) => i,
            None => {
                s.steps.push(Step { kind, state: StepState::Pending, spent: Duration::ZERO, since: None });
                s.steps.len() - 1
            }
        };
        let step = &mut s.steps[i];
        match stage {
            Stage::Started => {
                step.state = StepState::Running;
                step.since = Some(now);
            }
            Stage::Finished { failed } => {
                step.state = if failed { StepState::Failed } else { StepState::Done };
                if let Some(since) = step.since.take() {
                    step.spent += now - since;
                }
            }
        }
        let rows: Vec<StepRow> = s
            .steps
            .iter()
            .map(|st| StepRow {
                kind: st.kind,
                state: st.state,
                seconds: if st.spent.is_zero() { SharedString::new() } else { format!("{:.1} 秒", st.spent.as_secs_f64()).into() },
            })
            .collect();
        let elapsed = s.started.map(|t| t.elapsed()).unwrap_or_default();
        drop(s);
        let p = self.staff.global::<ProgressAdapter>();
        p.set_steps(ModelRc::new(VecModel::from(rows)));
        p.set_elapsed(format!("{:.1} 秒", elapsed.as_secs_f64()).into());
    }

    fn ended_screen(&self, outcome: &Outcome) {
        let r = self.staff.global::<ResultAdapter>();
        let (kind, reason) = match outcome {
            Outcome::Issued => (ResultKind::Issued, String::new()),
            Outcome::Revoked => (ResultKind::Revoked, String::new()),
            Outcome::PinServiced => (ResultKind::PinServiced, String::new()),
            Outcome::InquiryIssued { case } => {
                r.set_case_number(format!("{case:?}").into());
                (ResultKind::Inquiry, String::new())
            }
            Outcome::Cancelled => (ResultKind::Cancelled, String::new()),
            Outcome::Refused { reason } => (ResultKind::Refused, notice_text(reason)),
            Outcome::Failed { reason } => (ResultKind::Failed, notice_text(reason)),
        };
        r.set_kind(kind);
        r.set_reason(reason.into());
        self.staff.global::<StaffAdapter>().set_screen(StaffScreen::Result);
        let resident = self.resident.global::<ResidentAdapter>();
        resident.set_done_ok(matches!(outcome, Outcome::Issued | Outcome::Revoked | Outcome::PinServiced | Outcome::InquiryIssued { .. }));
        resident.set_screen(ResidentScreen::Done);
        self.resident.global::<crate::ui::PinPadAdapter>().set_card_prompt(CardPrompt::TakeCard);
        let mut s = self.state.borrow_mut();
        s.waiting = None;
        s.pad = None;
        s.visit_open = false;
    }

    fn ended(&self, summary: &Summary) {
        self.ended_screen(&summary.outcome);
        let r = self.staff.global::<ResultAdapter>();
        let until = |slot: Slot| {
            summary.issued.iter().find(|(s, _)| *s == slot).map(|(_, d)| both_calendars(*d)).unwrap_or_default()
        };
        r.set_sign_until(until(Slot::Sign).into());
        r.set_auth_until(until(Slot::Auth).into());
        r.set_receipt(summary.receipt.clone().unwrap_or_default().into());
        let resident = self.resident.global::<ResidentAdapter>();
        resident.set_issued_sign(summary.issued.iter().any(|(s, _)| *s == Slot::Sign));
        resident.set_issued_auth(summary.issued.iter().any(|(s, _)| *s == Slot::Auth));
    }
}

fn text_of(bytes: &[u8]) -> Zeroizing<String> {
    // PINs are ASCII by construction; one allocation, wrapped at once.
    Zeroizing::new(std::str::from_utf8(bytes).unwrap_or_default().to_owned())
}

fn notice_text(error: &crate::issuance::IssuanceError) -> String {
    let n = notice_for(error);
    japanese(n.what).unwrap_or(n.what).to_string()
}

/// A date as 和暦 and 西暦: 「令和13年4月12日（2031年4月12日）」.
pub fn both_calendars(d: Date) -> String {
    let g = format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day());
    match wareki::to_wareki(d) {
        Ok(w) => format!("{w}（{g}）"),
        Err(_) => g,
    }
}

fn action_for(recovery: Recovery) -> NoticeAction {
    match recovery {
        Recovery::RetryStep => NoticeAction::Retry,
        Recovery::ReinsertCard => NoticeAction::ReinsertCard,
        Recovery::ReenterPin { .. } => NoticeAction::ReenterPin,
        Recovery::CallStaff => NoticeAction::CallSupervisor,
        Recovery::RetryCaLater => NoticeAction::WaitForCa,
        Recovery::ReprintReceipt => NoticeAction::Reprint,
        Recovery::VoidAndRefund => NoticeAction::Refund,
        Recovery::EndVisit => NoticeAction::EndVisit,
        Recovery::FixApplication => NoticeAction::FixForm,
    }
}

/// The progress row a command belongs to.
fn step_kind(command: &Command) -> Option<StepKind> {
    let per_slot = |slot: &Slot, sign: StepKind, auth: StepKind| if *slot == Slot::Sign { sign } else { auth };
    Some(match command {
        Command::RegistryFetch { .. } => StepKind::Registry,
        Command::Card { card } => match card {
            CardCommand::Detect | CardCommand::ReadCurrentCerts => StepKind::CardDetect,
            CardCommand::Authenticate => StepKind::CardAuth,
            CardCommand::GenerateKey { slot } => per_slot(slot, StepKind::KeygenSign, StepKind::KeygenAuth),
            CardCommand::SetPinFromPad { slot } => per_slot(slot, StepKind::PinSign, StepKind::PinAuth),
            CardCommand::WriteCert { slot, .. } => per_slot(slot, StepKind::WriteSign, StepKind::WriteAuth),
            CardCommand::ReadCert { slot } | CardCommand::TestSign { slot, .. } => {
                per_slot(slot, StepKind::VerifySign, StepKind::VerifyAuth)
            }
            CardCommand::ReleaseLock { .. } | CardCommand::ResetPin { .. } => StepKind::PinService,
            CardCommand::EraseSlot { .. } => StepKind::Erase,
            #[allow(unreachable_patterns)]
            _ => return None,
        },
        Command::Ca { ca } => match ca {
            CaCommand::Submit { .. } => StepKind::CaSubmit,
            CaCommand::Confirm { .. } => StepKind::CaConfirm,
            CaCommand::Revoke { .. } | CaCommand::FindLive { .. } => StepKind::CaRevoke,
            #[allow(unreachable_patterns)]
            _ => return None,
        },
        Command::PrintReceipt { .. } => StepKind::Receipt,
        _ => return None,
    })
}

fn visit_of(kind: VisitType) -> Visit {
    match kind {
        VisitType::NewIssuance => Visit::NewIssuance,
        VisitType::Renewal => Visit::Renewal,
        VisitType::ReissueAfterLoss => Visit::ReissueAfterLoss,
        VisitType::RevocationOwn => Visit::RevocationOwnRequest,
        VisitType::RevocationLost => Visit::RevocationLost,
        VisitType::UnlockAuth => Visit::PinLockRelease { slot: Slot::Auth },
        VisitType::UnlockSign => Visit::PinLockRelease { slot: Slot::Sign },
        VisitType::ResetAuth => Visit::PinReset { slot: Slot::Auth },
        VisitType::ResetSign => Visit::PinReset { slot: Slot::Sign },
        VisitType::ProxyInquiry => Visit::ProxyInquiry,
        VisitType::ProxyCompletion => Visit::ProxyCompletion,
    }
}

/// A new visit id: the date and 48 random bits (`V20261122-3f9a0c1d2e4b`).
fn new_visit_id(date: Date) -> String {
    let mut r = [0u8; 6];
    OsRng.fill_bytes(&mut r);
    format!("V{:04}{:02}{:02}-{}", date.year(), u8::from(date.month()), date.day(), hex::encode(r))
}

fn open_visit(staff: &StaffWindow, state: &Rc<RefCell<State>>, kind: VisitType) {
    let (operator, fees) = {
        let s = state.borrow();
        let Some(op) = s.operator.clone() else { return };
        (op, s.options.fees.clone())
    };
    let date = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc()).date();
    let opening = Opening {
        visit: VisitId(new_visit_id(date)),
        kind: visit_of(kind),
        date,
        operator: operator.as_str().to_owned(),
        seed: Seed::from_rng(&mut OsRng),
        fees,
        identity: Default::default(),
    };
    tracing::info!(visit = %opening.visit.0, kind = ?opening.kind, "visit opened");
    clear_personal_data(staff, &None::<ResidentWindow>);
    {
        let mut s = state.borrow_mut();
        s.steps.clear();
        s.started = None;
        s.visit_open = true;
    }
    staff.global::<ProgressAdapter>().set_steps(ModelRc::default());
    staff.global::<ProgressAdapter>().set_elapsed("0.0 秒".into());
    staff.global::<StaffAdapter>().set_screen(StaffScreen::Progress);
    state.borrow_mut().send(FromUi::Open(Box::new(opening)));
}

/// Empties every field that holds personal data on the screens.
fn clear_personal_data(staff: &StaffWindow, resident: &impl ResidentLike) {
    let f = staff.global::<FormAdapter>();
    for set in [
        FormAdapter::set_resident_id,
        FormAdapter::set_name,
        FormAdapter::set_furigana,
        FormAdapter::set_address,
        FormAdapter::set_year,
        FormAdapter::set_month,
        FormAdapter::set_day,
    ] {
        set(&f, SharedString::new());
    }
    f.set_sex(Sex::Unset);
    f.set_want_sign(true);
    f.set_want_auth(true);
    f.invoke_edited();
    let id = staff.global::<IdentityAdapter>();
    id.set_first(DocKind::None);
    id.set_second(DocKind::None);
    id.set_first_number(SharedString::new());
    id.set_second_number(SharedString::new());
    id.set_presenter(Presenter::Holder);
    id.set_registry_line(SharedString::new());
    let r = staff.global::<ResultAdapter>();
    for set in [ResultAdapter::set_sign_until, ResultAdapter::set_auth_until, ResultAdapter::set_case_number, ResultAdapter::set_reason, ResultAdapter::set_receipt] {
        set(&r, SharedString::new());
    }
    staff.global::<StaffAdapter>().set_notice(SharedString::new());
    resident.clear();
}

/// The resident window, or none (for clearing only the staff side).
trait ResidentLike {
    fn clear(&self);
}

impl ResidentLike for ResidentWindow {
    fn clear(&self) {
        let r = self.global::<ResidentAdapter>();
        r.set_issued_sign(false);
        r.set_issued_auth(false);
        r.set_problem(ResidentProblem::None);
    }
}

impl ResidentLike for Option<ResidentWindow> {
    fn clear(&self) {
        if let Some(w) = self {
            w.clear();
        }
    }
}

fn group_of(kind: DocKind) -> Option<(DocumentGroup, &'static str)> {
    Some(match kind {
        DocKind::None => return None,
        DocKind::MynumberCard => (DocumentGroup::Photo, "mynumber_card"),
        DocKind::DrivingLicence => (DocumentGroup::Photo, "driving_licence"),
        DocKind::Passport => (DocumentGroup::Photo, "passport"),
        DocKind::ResidenceCard => (DocumentGroup::Photo, "residence_card"),
        DocKind::DisabilityCard => (DocumentGroup::Photo, "disability_card"),
        DocKind::HealthInsurance => (DocumentGroup::NonPhoto, "health_insurance"),
        DocKind::PensionBook => (DocumentGroup::NonPhoto, "pension_book"),
        DocKind::StudentId => (DocumentGroup::NonPhoto, "student_id"),
        DocKind::BankCard => (DocumentGroup::NonPhoto, "bank_book"),
    })
}

/// Re-checks the identity screen; returns what to record when it is complete.
fn refresh_identity(staff: &StaffWindow) -> Option<(PresenterKind, Vec<IdDocument>)> {
    let a = staff.global::<IdentityAdapter>();
    let doc = |kind: DocKind, number: SharedString| -> Option<IdDocument> {
        let (group, name) = group_of(kind)?;
        let number = number.trim().to_string();
        (!number.is_empty()).then(|| IdDocument { kind: name.to_string(), group, number })
    };
    let first = doc(a.get_first(), a.get_first_number());
    let needs_second = matches!(group_of(a.get_first()), Some((DocumentGroup::NonPhoto, _)));
    a.set_needs_second(needs_second);
    let mut documents: Vec<IdDocument> = first.into_iter().collect();
    if needs_second {
        // The second must be another non-photo document.
        let second = doc(a.get_second(), a.get_second_number())
            .filter(|d| d.group == DocumentGroup::NonPhoto && a.get_second() != a.get_first());
        documents.extend(second);
    }
    let complete = documents.len() == if needs_second { 2 } else { 1 };
    a.set_can_record(complete);
    let presenter = match a.get_presenter() {
        Presenter::Holder => PresenterKind::Holder,
        Presenter::LegalRepresentative => PresenterKind::LegalRepresentative,
        Presenter::VoluntaryProxy => PresenterKind::VoluntaryProxy,
    };
    complete.then_some((presenter, documents))
}

fn check_sign_in(staff_db: &std::path::Path, id: &str, pass: &Zeroizing<String>) -> SignInResult {
    let Some(operator) = OperatorId::new(id) else { return SignInResult::Rejected };
    let Ok(passphrase) = Passphrase::new(String::from(pass.as_str())) else { return SignInResult::Rejected };
    let mut dir = match StaffDirectory::open(staff_db) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "staff directory unavailable");
            return SignInResult::Rejected;
        }
    };
    match dir.sign_in(&operator, &passphrase, time::OffsetDateTime::now_utc()) {
        Ok(_) => match dir.operator(&operator) {
            Ok(Some(info)) => SignInResult::SignedIn(info.display_name),
            _ => SignInResult::SignedIn(operator.to_string()),
        },
        Err(crate::staff::SignInError::Locked) | Err(crate::staff::SignInError::Disabled) => SignInResult::Locked,
        Err(_) => SignInResult::Rejected,
    }
}

/// Shows the last self-test (`DATA/doctor-last.json`, written by `jpki-kiosk doctor`) on
/// the sign-in screen.
fn show_self_test(staff: &StaffWindow, data: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(data.join("doctor-last.json")) else { return };
    let Ok(report) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    let checks = report.get("checks").and_then(|c| c.as_array()).cloned().unwrap_or_default();
    let failed = checks
        .iter()
        .filter(|c| c.get("status").and_then(|s| s.as_str()).is_some_and(|s| s.eq_ignore_ascii_case("fail")))
        .count();
    let at = report.get("generated_at").and_then(|a| a.as_str()).unwrap_or("");
    let line = if failed == 0 {
        format!("{at} 全{}項目 正常", checks.len())
    } else {
        format!("{at} {failed}項目に異常があります。設定・自己診断の画面を確認してください。")
    };
    let a = staff.global::<SignInAdapter>();
    a.set_self_test(line.into());
    a.set_self_test_ok(failed == 0);
}
