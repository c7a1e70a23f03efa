//! The kiosk's screens: the Slint views compiled from `ui/*.slint` and the Rust adapters
//! that feed them.
//!
//! The views hold layout, words (`@tr`, with bundled translations) and accessible
//! labels only. Each screen has an adapter global of properties and callbacks; the
//! modules here wire those callbacks to plain Rust controllers and push back only what a
//! screen may show:
//! - [`pinpad`]: the resident's PIN pad; the entry stays in a zeroizing buffer here and
//!   the view learns only its length and a message;
//! - [`form`]: the application form's live checks (furigana, 和暦/西暦, 代替文字);
//! - [`staff`]: staff sign-in and the visit type;
//! - [`theme`]: the theme's colours read back from the views, and their WCAG contrast;
//! - [`language`]: the language switch over the bundled translations;
//! - [`render`]: screenshots of every screen with the software renderer, no display.
//!
//! This module is not the visit's workflow: the workflow decides which screen shows
//! what, and drives these adapters.

pub mod form;
pub mod language;
pub mod pinpad;
pub mod render;
pub mod staff;
pub mod theme;

/// The code generated from `ui/app.slint` (windows, adapter globals, enums, structs).
#[allow(missing_docs, unsafe_code, clippy::all)]
mod generated {
    slint::include_modules!();
}

pub use generated::{
    ApprovalAdapter, ApprovalMessage, CardPrompt, CaseRow, CasesAdapter, CheckRow, CheckState,
    DateCheck, DocKind, FeeAdapter, FormAdapter, FuriganaCheck, IdentityAdapter, KeyRow,
    NoticeAction, Payment, PinKind, PinMessage, PinPadAdapter, PinStep, Presenter,
    ProgressAdapter, ResidentAdapter, ResidentProblem, ResidentScreen, ResidentWindow,
    ResultAdapter, ResultKind, SettingsAdapter, Sex, SignInAdapter, SignInMessage, StaffAdapter,
    StaffScreen, StaffWindow, StepKind, StepRow, StepState, SubstituteRow, Theme, VisitAdapter,
    VisitType,
};
