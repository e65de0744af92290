//! Restart backoff: the first retry comes fast (about 100 ms, jittered), each further one
//! doubles while failures go on, capped at `NP_SERVICE_COOLDOWN`, and a run that became
//! healthy (its control channel came up) starts the sequence again. Go waits a fixed 3 s.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The first retry's delay before jitter.
pub const FIRST: Duration = Duration::from_millis(100);

/// The restart delay sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from [`FIRST`] up to `cap` (zero: restart at once, every time).
    pub fn new(cap: Duration) -> Backoff {
        Backoff {
            cap,
            next: FIRST.min(cap),
        }
    }

    /// The wait before the next restart; `became_healthy` says whether the failed run got
    /// as far as a working control channel (then the sequence starts over).
    pub fn next_delay(&mut self, became_healthy: bool) -> Duration {
        if became_healthy {
            self.next = FIRST.min(self.cap);
        }
        let now = self.next;
        self.next = (now * 2).min(self.cap);
        jitter(now)
    }
}

/// A delay between half of `d` and `d`, so that both ends of a tunnel (or many clients of
/// one server) do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = d / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(if nanos == 0 { 0 } else { random % (nanos + 1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, full_ms: u64) -> bool {
        let full = Duration::from_millis(full_ms);
        d >= full / 2 && d <= full
    }

    #[test]
    fn fast_first_then_doubling_to_the_cap_and_reset_after_a_healthy_run() {
        let mut b = Backoff::new(Duration::from_secs(3));
        let expected = [100, 200, 400, 800, 1600, 3000, 3000];
        for full in expected {
            let d = b.next_delay(false);
            assert!(within(d, full), "{d:?} not within [{full}/2, {full}] ms");
        }
        assert!(within(b.next_delay(true), 100));
        assert!(within(b.next_delay(false), 200));
    }

    #[test]
    fn zero_cooldown_restarts_at_once() {
        let mut b = Backoff::new(Duration::ZERO);
        assert_eq!(b.next_delay(false), Duration::ZERO);
        assert_eq!(b.next_delay(false), Duration::ZERO);
    }

    #[test]
    fn a_cap_below_the_first_step_is_respected() {
        let mut b = Backoff::new(Duration::from_millis(40));
        for _ in 0..4 {
            assert!(b.next_delay(false) <= Duration::from_millis(40));
        }
    }
}
