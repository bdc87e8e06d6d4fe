//! Rate-limited logging of what peers cause. A scanner, or a client stuck
//! retrying a bad handshake, must not flood the logs: each kind of line gets
//! a budget per window, lines past it are counted, and the count is logged
//! once the window is over.

use std::time::{Duration, Instant};

/// Lines of one kind let through per window.
pub const LINES_PER_WINDOW: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// The budget of one kind of line.
#[derive(Debug)]
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self::new(LINES_PER_WINDOW, WINDOW)
    }
}

impl LogBudget {
    /// At most `per_window` lines each `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self { per_window, window, window_start: None, logged: 0, suppressed: 0 }
    }

    /// Whether a line may be logged at `now`; a line past the budget is
    /// counted instead.
    pub fn admit(&mut self, now: Instant) -> bool {
        if self.window_start.is_none_or(|start| now.duration_since(start) >= self.window) {
            self.window_start = Some(now);
            self.logged = 0;
        }
        if self.logged < self.per_window {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Whether lines were suppressed and not yet reported.
    pub fn has_suppressed(&self) -> bool {
        self.suppressed > 0
    }

    /// Once the window in which lines were suppressed is over: how many
    /// (then zero again). Call it regularly, so that the count is logged
    /// even when the flood has stopped.
    pub fn take_suppressed(&mut self, now: Instant) -> Option<u64> {
        let over = self.window_start.is_some_and(|start| now.duration_since(start) >= self.window);
        (over && self.suppressed > 0).then(|| std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_counted_and_the_count_comes_once_the_window_is_over() {
        let start = Instant::now();
        let mut budget = LogBudget::new(3, Duration::from_secs(1));
        let admitted = (0..10).filter(|i| budget.admit(start + Duration::from_millis(i * 10))).count();
        assert_eq!(admitted, 3);
        assert_eq!(budget.take_suppressed(start + Duration::from_millis(500)), None, "the window is not over");
        assert_eq!(budget.take_suppressed(start + Duration::from_millis(1000)), Some(7));
        assert_eq!(budget.take_suppressed(start + Duration::from_millis(1100)), None, "reported once");
    }

    #[test]
    fn a_new_window_has_a_new_budget_and_keeps_an_unreported_count() {
        let start = Instant::now();
        let mut budget = LogBudget::new(2, Duration::from_secs(1));
        assert!(budget.admit(start) && budget.admit(start));
        assert!(!budget.admit(start));
        let later = start + Duration::from_millis(1500);
        assert!(budget.admit(later) && budget.admit(later));
        assert!(!budget.admit(later));
        assert_eq!(budget.take_suppressed(later + Duration::from_secs(1)), Some(2));
    }
}
