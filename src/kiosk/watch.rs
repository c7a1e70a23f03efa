//! Two timers the counter needs, as pure logic over elapsed time (no clock, no I/O):
//! - [`IdleWatch`]: after a while without a touch, the visit's personal data leaves the
//!   screens (a resident stepping away must not leave their name and address on show);
//! - [`CardLeftWatch`]: after a visit, a card still in the reader raises an alert until it
//!   is taken.
//!
//! Callers pass "time since some fixed start" so tests need no sleeping.

use std::time::Duration;

/// The idle timer of the staff and resident screens.
#[derive(Debug, Clone)]
pub struct IdleWatch {
    timeout: Duration,
    last_touch: Duration,
    cleared: bool,
}

impl IdleWatch {
    /// A timer that fires `timeout` after the last touch.
    pub fn new(timeout: Duration, now: Duration) -> IdleWatch {
        IdleWatch { timeout, last_touch: now, cleared: false }
    }

    /// Someone touched a screen.
    pub fn touch(&mut self, now: Duration) {
        self.last_touch = now;
        self.cleared = false;
    }

    /// `true` once, when the timeout has passed since the last touch: clear the screens.
    pub fn fire(&mut self, now: Duration) -> bool {
        if self.cleared || now.saturating_sub(self.last_touch) < self.timeout {
            return false;
        }
        self.cleared = true;
        true
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The "card left behind" alert after a visit.
#[derive(Debug, Clone)]
pub struct CardLeftWatch {
    grace: Duration,
    alerting: bool,
}

impl CardLeftWatch {
    /// Alerts when a card is still present `grace` after the visit ended.
    pub fn new(grace: Duration) -> CardLeftWatch {
        CardLeftWatch { grace, alerting: false }
    }

    /// Feeds one observation (`since_end`: time since the visit ended). Returns
    /// `Some(true)` when the alert starts, `Some(false)` when it stops, `None` otherwise.
    pub fn observe(&mut self, since_end: Duration, present: bool) -> Option<bool> {
        let alert = present && since_end >= self.grace;
        if alert == self.alerting {
            return None;
        }
        self.alerting = alert;
        Some(alert)
    }

    /// Whether the alert is on.
    pub fn alerting(&self) -> bool {
        self.alerting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn idle_fires_once_after_the_timeout_and_a_touch_rearms_it() {
        let mut idle = IdleWatch::new(120 * S, 0 * S);
        assert!(!idle.fire(119 * S));
        idle.touch(100 * S);
        assert!(!idle.fire(219 * S), "the touch at 100 s moved the deadline");
        assert!(idle.fire(220 * S));
        assert!(!idle.fire(400 * S), "fires once");
        idle.touch(401 * S);
        assert!(idle.fire(521 * S));
    }

    #[test]
    fn card_left_alerts_after_grace_and_clears_when_taken() {
        let mut w = CardLeftWatch::new(10 * S);
        assert_eq!(w.observe(0 * S, true), None);
        assert_eq!(w.observe(9 * S, true), None);
        assert_eq!(w.observe(10 * S, true), Some(true));
        assert!(w.alerting());
        assert_eq!(w.observe(11 * S, true), None);
        assert_eq!(w.observe(12 * S, false), Some(false));
        assert_eq!(w.observe(13 * S, false), None);
    }

    #[test]
    fn a_card_taken_in_time_never_alerts() {
        let mut w = CardLeftWatch::new(10 * S);
        assert_eq!(w.observe(3 * S, true), None);
        assert_eq!(w.observe(4 * S, false), None);
        assert!(!w.alerting());
    }
}
