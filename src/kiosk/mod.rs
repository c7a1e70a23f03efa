//! The kiosk application: the staff and resident windows driven by a visit.
//!
//! - [`session`]: the visit worker, a thread that runs the driver with the real adapters
//!   and talks to the screens through messages;
//! - [`screens`]: the two windows bound to the visit (what each message shows, what each
//!   tap answers);
//! - [`watch`]: the idle timeout and the card-left-behind alert, as pure logic;
//! - [`walker`]: a scripted person for the headless demo and the UI tests;
//! - [`walk`]: one visit walked headless against the real peers (the demo's engine).
//! - [`demo`]: `jpki-kiosk demo`, on a display or headless;
//! - [`windows`]: the two windows on a display with the worker behind them;
//! - [`appliance`]: `jpki-kiosk ui`, the counter appliance on its site configuration.
//!
//! What it is not: the visit's logic (that is [`crate::issuance`]) or the views' layout
//! (that is `ui/*.slint`).

pub mod appliance;
pub mod demo;
pub mod screens;
pub mod session;
pub mod walk;
pub mod walker;
pub mod watch;
pub mod windows;
