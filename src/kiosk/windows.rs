//! The kiosk's two windows on a real display, with the visit worker behind them: the
//! event loop shared by `jpki-kiosk ui` (the appliance) and the demo with a display.
//!
//! The worker runs on a thread of its own; what it has to show is handed to the event
//! loop with `slint::invoke_from_event_loop`, so the windows are only touched from the
//! thread that owns them.

use std::cell::RefCell;
use std::sync::mpsc::channel;
use std::time::Duration;

use slint::ComponentHandle;

use super::screens::{Kiosk, KioskOptions};
use super::session::{self, FromUi, ToUi, WorkerConfig};
use crate::staff::OperatorId;

thread_local! {
    static KIOSK: RefCell<Option<Kiosk>> = const { RefCell::new(None) };
}

/// Opens both windows and runs until the display closes them. `operator` is the id the
/// audit log uses for a visit resumed from the journal before anyone signed in.
pub fn run(cfg: WorkerConfig, operator: OperatorId, options: KioskOptions) -> Result<(), slint::PlatformError> {
    let (to_worker, worker_rx) = channel::<FromUi>();
    let kiosk = Kiosk::new(to_worker.clone(), options)?;
    let worker = std::thread::Builder::new()
        .name("visit".into())
        .spawn(move || {
            let send = |m: ToUi| {
                let _ = slint::invoke_from_event_loop(move || {
                    KIOSK.with(|k| {
                        if let Some(k) = k.borrow().as_ref() {
                            k.present(m);
                        }
                    });
                });
            };
            session::run(&cfg, &operator, &worker_rx, &send);
        })
        .map_err(|e| slint::PlatformError::Other(format!("visit worker: {e}")))?;
    kiosk.staff.show()?;
    kiosk.resident.show()?;
    KIOSK.with(|k| *k.borrow_mut() = Some(kiosk));
    // The idle timeout and the step clock run on the event loop's timer.
    let clock = slint::Timer::default();
    clock.start(slint::TimerMode::Repeated, Duration::from_secs(1), || {
        KIOSK.with(|k| {
            if let Some(k) = k.borrow().as_ref() {
                k.tick();
            }
        });
    });
    let ran = slint::run_event_loop();
    KIOSK.with(|k| k.borrow_mut().take());
    let _ = to_worker.send(FromUi::Quit);
    drop(to_worker);
    let _ = worker.join();
    ran
}
