//! The resident's PIN pad: the controller that keeps the entry, and its binding to the
//! resident window.
//!
//! Each key of the view calls `PinPadAdapter.key(k)`; [`PinPadController`] appends it to
//! a zeroizing buffer and the view gets back only the entered length and a
//! [`PinMessage`]. On OK the entry is checked with the card layer's own format rules
//! ([`AuthPin::new`], [`SigningPassword::new`]); a new secret is asked twice and the two
//! entries compared. The finished secret goes to the caller as an [`EnteredSecret`],
//! never to the view, a log or a file.
//!
//! Not here: weak-PIN policy, the card's tries counter (the workflow sets
//! `tries-left` from the card's answer), and the order of screens.

use std::cell::RefCell;
use std::rc::Rc;

use rand_core::RngCore;
use slint::{ComponentHandle, ModelRc, SharedString, VecModel};
use zeroize::Zeroizing;

use super::{KeyRow, PinKind, PinMessage, PinPadAdapter, PinStep, ResidentWindow};
use crate::card::pin::{AuthPin, PinFormatError, SigningPassword};

/// The digits, in pad order.
const DIGITS: &str = "1234567890";
/// The signing password's letters.
const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Which secret the pad takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// The 4-digit user-authentication PIN.
    AuthPin,
    /// The 6–16 character signing password.
    SigningPassword,
}

impl Secret {
    /// Most characters the pad accepts; further keys are ignored.
    pub fn max_length(self) -> usize {
        match self {
            Secret::AuthPin => 4,
            Secret::SigningPassword => 16,
        }
    }

    fn accepts(self, ch: char) -> bool {
        match self {
            Secret::AuthPin => ch.is_ascii_digit(),
            Secret::SigningPassword => ch.is_ascii_digit() || ch.is_ascii_uppercase(),
        }
    }

    fn view_kind(self) -> PinKind {
        match self {
            Secret::AuthPin => PinKind::AuthPin,
            Secret::SigningPassword => PinKind::SigningPassword,
        }
    }
}

/// The order of the keys on the pad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// Telephone order, the same every time (easier for people who know it by heart).
    Fixed,
    /// A fresh random order for each entry (harder to read from finger movements).
    Shuffled,
}

/// The pad's keys for `secret`, in rows; `None` is a gap.
///
/// The PIN has digits in rows of three, the last key alone in the middle of its row as
/// on a telephone. The password has a row of ten digits above rows of ten letters, the
/// short last row centred. Shuffling keeps digits and letters apart (each group is
/// shuffled on its own), so 0 and O are never told apart by shape alone. Shuffled
/// orders draw from `rng`, a parameter so tests can fix it.
pub fn key_rows(
    secret: Secret,
    order: KeyOrder,
    rng: &mut impl RngCore,
) -> Vec<Vec<Option<char>>> {
    let mut digits: Vec<char> = DIGITS.chars().collect();
    let mut letters: Vec<char> = LETTERS.chars().collect();
    if order == KeyOrder::Shuffled {
        shuffle(&mut digits, rng);
        shuffle(&mut letters, rng);
    }
    let (groups, width) = match secret {
        Secret::AuthPin => (vec![digits], 3),
        Secret::SigningPassword => (vec![digits, letters], 10),
    };
    let mut rows = Vec::new();
    for group in groups {
        for chunk in group.chunks(width) {
            // Centre a short row between gaps, so its keys keep the others' width.
            let gap = width - chunk.len();
            let mut row = vec![None; gap / 2];
            row.extend(chunk.iter().copied().map(Some));
            row.resize(width, None);
            rows.push(row);
        }
    }
    rows
}

/// Fisher–Yates with unbiased draws.
fn shuffle(keys: &mut [char], rng: &mut impl RngCore) {
    for i in (1..keys.len()).rev() {
        let j = uniform_below(rng, i + 1);
        keys.swap(i, j);
    }
}

/// A uniform draw from `0..n` (rejection sampling, no modulo bias).
fn uniform_below(rng: &mut impl RngCore, n: usize) -> usize {
    let n = n as u32;
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let v = rng.next_u32();
        if v < zone {
            return (v % n) as usize;
        }
    }
}

/// A secret the resident entered (twice, for a new one) and the card's format accepts.
#[derive(Debug)]
pub enum EnteredSecret {
    /// The user-authentication PIN.
    AuthPin(AuthPin),
    /// The signing password.
    SigningPassword(SigningPassword),
}

/// What pressing OK did.
#[derive(Debug)]
pub enum OkOutcome {
    /// The entry broke a rule, or the confirmation differed; the message says which.
    Rejected(PinMessage),
    /// The first entry of a new secret is fine; the pad now asks for it again.
    ConfirmNext,
    /// The secret is complete.
    Done(EnteredSecret),
}

/// What the view may know of the pad: no character of the entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PadView {
    /// Which secret.
    pub secret: Secret,
    /// First entry, confirmation, or checking an existing secret.
    pub step: PinStep,
    /// How many characters are entered.
    pub entered_length: usize,
    /// The message to show.
    pub message: PinMessage,
}

/// The PIN pad's state: the entry in a zeroizing buffer and, while confirming, the
/// first entry. Holds no Slint types, so it is tested without a window.
pub struct PinPadController {
    secret: Secret,
    step: PinStep,
    entry: Zeroizing<String>,
    first: Option<Zeroizing<String>>,
    message: PinMessage,
}

impl std::fmt::Debug for PinPadController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinPadController")
            .field("secret", &self.secret)
            .field("step", &self.step)
            .field("entered_length", &self.entry.chars().count())
            .finish_non_exhaustive()
    }
}

impl PinPadController {
    /// A pad for a new secret, asked twice (first entry, then confirmation).
    pub fn new_secret(secret: Secret) -> PinPadController {
        PinPadController::with_step(secret, PinStep::First)
    }

    /// A pad that checks an existing secret: asked once.
    pub fn verify(secret: Secret) -> PinPadController {
        PinPadController::with_step(secret, PinStep::Verify)
    }

    fn with_step(secret: Secret, step: PinStep) -> PinPadController {
        PinPadController {
            secret,
            step,
            entry: Zeroizing::new(String::with_capacity(secret.max_length())),
            first: None,
            message: PinMessage::None,
        }
    }

    /// Which secret the pad takes.
    pub fn secret(&self) -> Secret {
        self.secret
    }

    /// What the view may show.
    pub fn view(&self) -> PadView {
        PadView {
            secret: self.secret,
            step: self.step,
            entered_length: self.entry.chars().count(),
            message: self.message,
        }
    }

    /// A key of the pad. Keys the secret cannot hold, and keys past its maximum length,
    /// are ignored (the pad never shows them for that secret).
    pub fn key(&mut self, key: &str) {
        let mut chars = key.chars();
        let (Some(ch), None) = (chars.next(), chars.next()) else {
            return;
        };
        if !self.secret.accepts(ch) || self.entry.chars().count() >= self.secret.max_length() {
            return;
        }
        self.entry.push(ch);
        self.message = PinMessage::None;
    }

    /// Deletes the last character.
    pub fn back(&mut self) {
        self.entry.pop();
        self.message = PinMessage::None;
    }

    /// Deletes the whole entry (not the confirmed first entry).
    pub fn clear(&mut self) {
        self.entry.clear();
        self.message = PinMessage::None;
    }

    /// OK: checks the entry, then moves on to the confirmation or finishes.
    pub fn ok(&mut self) -> OkOutcome {
        // Take the entry out; whatever happens next, the pad starts empty.
        let entry = std::mem::replace(
            &mut self.entry,
            Zeroizing::new(String::with_capacity(self.secret.max_length())),
        );
        let checked = match self.secret {
            Secret::AuthPin => AuthPin::new(&entry).map(EnteredSecret::AuthPin),
            Secret::SigningPassword => {
                SigningPassword::new(&entry).map(EnteredSecret::SigningPassword)
            }
        };
        let outcome = match (checked, self.step) {
            (Err(e), _) => OkOutcome::Rejected(message_for(e)),
            (Ok(_), PinStep::First) => {
                self.first = Some(entry);
                self.step = PinStep::Confirm;
                OkOutcome::ConfirmNext
            }
            (Ok(secret), PinStep::Confirm) => {
                let first = self.first.take();
                if first.as_deref() == Some(&*entry) {
                    OkOutcome::Done(secret)
                } else {
                    // Start over: the resident cannot know which entry was mistyped.
                    self.step = PinStep::First;
                    OkOutcome::Rejected(PinMessage::Mismatch)
                }
            }
            (Ok(secret), _) => OkOutcome::Done(secret),
        };
        self.message = match &outcome {
            OkOutcome::Rejected(m) => *m,
            OkOutcome::ConfirmNext => PinMessage::None,
            OkOutcome::Done(_) => PinMessage::Accepted,
        };
        outcome
    }
}

/// The resident's words for a format error (the card layer's own rules).
pub fn message_for(error: PinFormatError) -> PinMessage {
    match error {
        PinFormatError::AuthLength(n) if n < 4 => PinMessage::TooShort,
        PinFormatError::AuthLength(_) => PinMessage::TooLong,
        PinFormatError::AuthNotDigits => PinMessage::DigitsOnly,
        PinFormatError::SignLength(n) if n < 6 => PinMessage::TooShort,
        PinFormatError::SignLength(_) => PinMessage::TooLong,
        PinFormatError::SignCharacters => PinMessage::LettersDigitsOnly,
        PinFormatError::SignNoLetter => PinMessage::NeedLetter,
        PinFormatError::SignNoDigit => PinMessage::NeedDigit,
    }
}

/// Wires a resident window's PIN pad to a [`PinPadController`]. The window's pad shows
/// only what [`PinPadController::view`] returns; a finished secret goes to `on_done`.
pub struct PinPadBinding {
    controller: Rc<RefCell<PinPadController>>,
}

impl PinPadBinding {
    /// Binds `window`'s pad to a new controller for `controller`'s secret, with keys in
    /// `rows` (from [`key_rows`]; `None` is a gap).
    pub fn bind(
        window: &ResidentWindow,
        controller: PinPadController,
        rows: &[Vec<Option<char>>],
        on_done: impl Fn(EnteredSecret) + 'static,
    ) -> PinPadBinding {
        let adapter = window.global::<PinPadAdapter>();
        let model: Vec<KeyRow> = rows
            .iter()
            .map(|row| KeyRow {
                keys: ModelRc::new(VecModel::from(
                    row.iter()
                        .map(|c| c.map(|c| SharedString::from(c.to_string())).unwrap_or_default())
                        .collect::<Vec<_>>(),
                )),
            })
            .collect();
        adapter.set_key_rows(ModelRc::new(VecModel::from(model)));
        adapter.set_max_length(controller.secret.max_length() as i32);

        let controller = Rc::new(RefCell::new(controller));
        push(window, &controller.borrow().view());

        let weak = window.as_weak();
        let c = controller.clone();
        adapter.on_key(move |k| update(&weak, &c, |pad| pad.key(&k)));
        let weak = window.as_weak();
        let c = controller.clone();
        adapter.on_back(move || update(&weak, &c, PinPadController::back));
        let weak = window.as_weak();
        let c = controller.clone();
        adapter.on_clear(move || update(&weak, &c, PinPadController::clear));
        let weak = window.as_weak();
        let c = controller.clone();
        adapter.on_ok(move || {
            let outcome = c.borrow_mut().ok();
            if let Some(w) = weak.upgrade() {
                push(&w, &c.borrow().view());
            }
            if let OkOutcome::Done(secret) = outcome {
                on_done(secret);
            }
        });
        PinPadBinding { controller }
    }

    /// What the pad shows now.
    pub fn view(&self) -> PadView {
        self.controller.borrow().view()
    }
}

fn update(
    weak: &slint::Weak<ResidentWindow>,
    controller: &Rc<RefCell<PinPadController>>,
    action: impl FnOnce(&mut PinPadController),
) {
    action(&mut controller.borrow_mut());
    if let Some(w) = weak.upgrade() {
        push(&w, &controller.borrow().view());
    }
}

fn push(window: &ResidentWindow, view: &PadView) {
    let adapter = window.global::<PinPadAdapter>();
    adapter.set_kind(view.secret.view_kind());
    adapter.set_step(view.step);
    adapter.set_entered_length(view.entered_length as i32);
    adapter.set_message(view.message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_in(pad: &mut PinPadController, s: &str) {
        for c in s.chars() {
            pad.key(&c.to_string());
        }
    }

    #[test]
    fn new_pin_is_asked_twice_and_compared() {
        let mut pad = PinPadController::new_secret(Secret::AuthPin);
        type_in(&mut pad, "1973");
        assert_eq!(pad.view().entered_length, 4);
        assert!(matches!(pad.ok(), OkOutcome::ConfirmNext));
        assert_eq!(pad.view().step, PinStep::Confirm);
        assert_eq!(pad.view().entered_length, 0);
        type_in(&mut pad, "1973");
        match pad.ok() {
            OkOutcome::Done(EnteredSecret::AuthPin(pin)) => assert_eq!(pin.expose(), b"1973"),
            other => panic!("{other:?}"),
        }
        assert_eq!(pad.view().message, PinMessage::Accepted);
    }

    #[test]
    fn mismatch_starts_over() {
        let mut pad = PinPadController::new_secret(Secret::AuthPin);
        type_in(&mut pad, "1973");
        pad.ok();
        type_in(&mut pad, "1974");
        assert!(matches!(pad.ok(), OkOutcome::Rejected(PinMessage::Mismatch)));
        assert_eq!(pad.view().step, PinStep::First);
        assert_eq!(pad.view().message, PinMessage::Mismatch);
    }

    #[test]
    fn format_errors_become_messages() {
        let mut pad = PinPadController::new_secret(Secret::AuthPin);
        type_in(&mut pad, "12");
        assert!(matches!(pad.ok(), OkOutcome::Rejected(PinMessage::TooShort)));
        let mut pad = PinPadController::new_secret(Secret::SigningPassword);
        type_in(&mut pad, "ABCDEFG");
        assert!(matches!(pad.ok(), OkOutcome::Rejected(PinMessage::NeedDigit)));
        type_in(&mut pad, "1234567");
        assert!(matches!(pad.ok(), OkOutcome::Rejected(PinMessage::NeedLetter)));
        type_in(&mut pad, "A1");
        assert!(matches!(pad.ok(), OkOutcome::Rejected(PinMessage::TooShort)));
        assert_eq!(message_for(PinFormatError::SignLength(17)), PinMessage::TooLong);
        assert_eq!(message_for(PinFormatError::AuthNotDigits), PinMessage::DigitsOnly);
        assert_eq!(message_for(PinFormatError::SignCharacters), PinMessage::LettersDigitsOnly);
    }

    #[test]
    fn keys_outside_the_secret_or_past_its_length_are_ignored() {
        let mut pad = PinPadController::new_secret(Secret::AuthPin);
        type_in(&mut pad, "A12345");
        pad.key("12");
        assert_eq!(pad.view().entered_length, 4);
        pad.back();
        assert_eq!(pad.view().entered_length, 3);
        pad.clear();
        assert_eq!(pad.view().entered_length, 0);
        let mut pad = PinPadController::new_secret(Secret::SigningPassword);
        type_in(&mut pad, "AB12a-");
        assert_eq!(pad.view().entered_length, 4);
    }

    #[test]
    fn verify_asks_once() {
        let mut pad = PinPadController::verify(Secret::SigningPassword);
        type_in(&mut pad, "KIOSK2026");
        assert!(matches!(pad.ok(), OkOutcome::Done(EnteredSecret::SigningPassword(_))));
    }

    #[test]
    fn debug_shows_no_entry() {
        let mut pad = PinPadController::new_secret(Secret::AuthPin);
        type_in(&mut pad, "8642");
        let d = format!("{pad:?}");
        assert!(!d.contains("8642") && !d.contains('8'), "{d}");
    }

    #[test]
    fn layouts_hold_every_key_once() {
        let mut rng = rand_core::OsRng;
        for secret in [Secret::AuthPin, Secret::SigningPassword] {
            let fixed = key_rows(secret, KeyOrder::Fixed, &mut rng);
            let mut a: Vec<char> = fixed.concat().into_iter().flatten().collect();
            let mut b: Vec<char> =
                key_rows(secret, KeyOrder::Shuffled, &mut rng).concat().into_iter().flatten().collect();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b);
            assert_eq!(a.len(), if secret == Secret::AuthPin { 10 } else { 36 });
        }
        let fixed = key_rows(Secret::AuthPin, KeyOrder::Fixed, &mut rng);
        assert_eq!(fixed[0], vec![Some('1'), Some('2'), Some('3')]);
        assert_eq!(fixed[3], vec![None, Some('0'), None]);
        // Password: digits on the first row, letters below, even when shuffled.
        for order in [KeyOrder::Fixed, KeyOrder::Shuffled] {
            let rows = key_rows(Secret::SigningPassword, order, &mut rng);
            assert_eq!(rows.len(), 4);
            assert!(rows.iter().all(|r| r.len() == 10));
            assert!(rows[0].iter().all(|k| k.is_some_and(|c| c.is_ascii_digit())));
            assert!(rows[1..].iter().flatten().flatten().all(char::is_ascii_uppercase));
            assert_eq!(rows[3][..2], [None, None]);
        }
        // 20 shuffles of ten digits all equal to the fixed order: odds 1 in (10!)^20.
        let shuffled_differs = (0..20).any(|_| {
            key_rows(Secret::AuthPin, KeyOrder::Shuffled, &mut rng) != fixed
        });
        assert!(shuffled_differs);
    }
}
