//! Restart backoff: the first wait is `NP_SERVICE_COOLDOWN`, each following one doubles up
//! to a cap, and a run that stayed healthy long enough resets it (Go waits a fixed 3 s).

use std::time::Duration;

/// Longest wait between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run healthy for this long counts as a fresh start.
pub const HEALTHY_RESET: Duration = Duration::from_secs(60);

/// The restart delay sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
}

impl Backoff {
    /// Start at `first` (zero means restart at once, still doubling from 100 ms).
    pub fn new(first: Duration) -> Backoff {
        Backoff { first, next: first }
    }

    /// The wait before the next restart, given how long the failed run was healthy.
    pub fn next_delay(&mut self, healthy_for: Duration) -> Duration {
        if healthy_for >= HEALTHY_RESET {
            self.next = self.first;
        }
        let now = self.next;
        let doubled = if now.is_zero() {
            Duration::from_millis(100)
        } else {
            now * 2
        };
        self.next = doubled.min(MAX_BACKOFF);
        now.min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_healthy_run() {
        let mut b = Backoff::new(Duration::from_secs(3));
        let secs: Vec<u64> = (0..6)
            .map(|_| b.next_delay(Duration::ZERO).as_secs())
            .collect();
        assert_eq!(secs, [3, 6, 12, 24, 48, 60]);
        assert_eq!(b.next_delay(HEALTHY_RESET).as_secs(), 3);
        assert_eq!(b.next_delay(Duration::ZERO).as_secs(), 6);
    }
}
