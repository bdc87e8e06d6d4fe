//! Supervision's policy: what happens when an instance fails (it trapped, or
//! the watchdog stopped it). Its sockets outlive it: every WebSocket gets a
//! 1012 Service Restart close frame ([`service_restart_frame`], within
//! [`FAREWELL_GRACE`]), the listeners pass to a fresh instance (the port
//! stays open, its backlog waits), and restarts back off only when they come
//! often ([`Restarts`]). The server never gives up: whatever made the guest
//! fail may be the peers' doing. `serve/worker.rs` carries it out.

use std::time::{Duration, Instant};

/// Restarts within this window count towards the back-off.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long a failed instance's connections get to take their close frame.
pub const FAREWELL_GRACE: Duration = Duration::from_secs(5);
/// Restarts within [`RESTART_WINDOW`] that come without a pause: a fault
/// costs a restart, not an outage.
const FREE_RESTARTS: usize = 5;

/// The restarts of one instance slot, and the pause before the next.
#[derive(Debug, Default)]
pub struct Restarts {
    recent: Vec<Instant>,
}

impl Restarts {
    /// Counts a restart at `now`; returns how many fell within
    /// [`RESTART_WINDOW`] (this one included) and the pause to take first.
    pub fn record(&mut self, now: Instant) -> (usize, Duration) {
        self.recent.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        self.recent.push(now);
        (self.recent.len(), restart_pause(self.recent.len()))
    }
}

/// The pause before the `n`th restart within [`RESTART_WINDOW`]: none for
/// the first [`FREE_RESTARTS`], then doubling from 100 ms up to 30 s, so a
/// guest that fails at once does not spin.
pub fn restart_pause(n: usize) -> Duration {
    if n <= FREE_RESTARTS {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(n - FREE_RESTARTS - 1).unwrap_or(u32::MAX).min(9);
    Duration::from_millis(100 << doublings).min(Duration::from_secs(30))
}

/// The close frame a failed instance's WebSockets get: 1012 Service Restart.
pub fn service_restart_frame() -> Vec<u8> {
    let reason = b"instance restarted";
    let mut frame = vec![0x88, 2 + reason.len() as u8];
    frame.extend_from_slice(&1012u16.to_be_bytes());
    frame.extend_from_slice(reason);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_restarts_are_free_then_pauses_double_up_to_30_s() {
        let pauses: Vec<u128> = (1..=20).map(|n| restart_pause(n).as_millis()).collect();
        assert_eq!(&pauses[..5], &[0; 5]);
        assert_eq!(&pauses[5..9], &[100, 200, 400, 800]);
        assert_eq!(*pauses.last().unwrap(), 30_000);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn restarts_outside_the_window_no_longer_count() {
        let mut restarts = Restarts::default();
        let start = Instant::now();
        for i in 0..7 {
            restarts.record(start + Duration::from_secs(i));
        }
        assert_eq!(restarts.record(start + Duration::from_secs(7)), (8, restart_pause(8)));
        // A minute after the first seven, only the eighth still counts.
        assert_eq!(restarts.record(start + Duration::from_secs(66)), (2, Duration::ZERO));
    }

    #[test]
    fn the_restart_frame_is_a_1012_close() {
        let frame = service_restart_frame();
        assert_eq!(frame[0], 0x88, "FIN + close");
        assert_eq!(usize::from(frame[1]), frame.len() - 2);
        assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1012);
    }
}
