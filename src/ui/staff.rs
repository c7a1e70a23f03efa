//! Staff sign-in and the visit type, bound to the staff window.
//!
//! The sign-in view hands the operator id and passphrase to Rust; the passphrase is
//! moved at once into a zeroizing buffer and given to the caller's check (the staff
//! directory), and the view gets back only the outcome. The visit-type view reports the
//! chosen [`VisitType`]. Which screen follows is the workflow's decision, not this
//! module's.

use std::rc::Rc;

use slint::ComponentHandle;
use zeroize::Zeroizing;

use super::{SignInAdapter, SignInMessage, StaffAdapter, StaffScreen, StaffWindow, VisitAdapter, VisitType};

/// The answer of the sign-in check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInResult {
    /// Signed in; the operator's display name for the title bar.
    SignedIn(String),
    /// Unknown operator or wrong passphrase (not said which).
    Rejected,
    /// The operator is locked or disabled.
    Locked,
}

/// Wires the staff window's sign-in and visit-type screens. `check` decides a sign-in;
/// `on_visit` gets the chosen visit type; `on_sign_out` runs on 「サインアウト」.
pub fn bind(
    window: &StaffWindow,
    check: impl Fn(&str, &Zeroizing<String>) -> SignInResult + 'static,
    on_visit: impl Fn(VisitType) + 'static,
    on_sign_out: impl Fn() + 'static,
) {
    let weak = window.as_weak();
    window.global::<SignInAdapter>().on_sign_in(move |operator, passphrase| {
        let Some(w) = weak.upgrade() else { return };
        let passphrase = Zeroizing::new(String::from(passphrase.as_str()));
        let operator = operator.trim();
        let sign_in = w.global::<SignInAdapter>();
        if operator.is_empty() || passphrase.is_empty() {
            sign_in.set_message(SignInMessage::Empty);
            return;
        }
        match check(operator, &passphrase) {
            SignInResult::SignedIn(name) => {
                sign_in.set_message(SignInMessage::None);
                let staff = w.global::<StaffAdapter>();
                staff.set_operator(name.into());
                staff.set_screen(StaffScreen::VisitType);
            }
            SignInResult::Rejected => sign_in.set_message(SignInMessage::Rejected),
            SignInResult::Locked => sign_in.set_message(SignInMessage::Locked),
        }
    });
    let on_visit = Rc::new(on_visit);
    window.global::<VisitAdapter>().on_choose(move |visit| on_visit(visit));
    let weak = window.as_weak();
    window.global::<StaffAdapter>().on_sign_out(move || {
        if let Some(w) = weak.upgrade() {
            let staff = w.global::<StaffAdapter>();
            staff.set_operator("".into());
            staff.set_screen(StaffScreen::SignIn);
        }
        on_sign_out();
    });
}
