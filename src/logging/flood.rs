//! Bounded warnings for things a peer can repeat at will (malformed signals, signals beyond
//! the wait budget): the first of each quiet spell is logged in full, the rest are counted
//! and reported in one summary line per interval, never one line each.

use std::time::{Duration, Instant};

/// How often a [`Flood`] prints its summary while the flood lasts.
pub const FLOOD_REPORT_EVERY: Duration = Duration::from_secs(10);

/// What to print for one occurrence, from [`Flood::hit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// The first in a quiet interval: log it in full.
    Log,
    /// Counted for the next summary: print nothing now.
    Counted,
}

/// A counter of one kind of repeated event; the clock comes in as `now`.
#[derive(Debug)]
pub struct Flood {
    every: Duration,
    /// Counted since the last line (full or summary) was printed.
    pending: u64,
    /// Every occurrence since start.
    total: u64,
    /// When the last line was printed (`None`: never).
    last_line: Option<Instant>,
}

impl Flood {
    /// A counter that prints at most one summary per `every`.
    pub fn new(every: Duration) -> Flood {
        Flood {
            every,
            pending: 0,
            total: 0,
            last_line: None,
        }
    }

    /// Count one occurrence at `now`: [`Hit::Log`] when nothing was printed for the last
    /// interval and nothing is waiting to be summarised, else [`Hit::Counted`].
    pub fn hit(&mut self, now: Instant) -> Hit {
        self.total += 1;
        if self.interval_passed(now) && self.pending == 0 {
            self.last_line = Some(now);
            Hit::Log
        } else {
            self.pending += 1;
            Hit::Counted
        }
    }

    /// The number to print in a summary line now, once the interval since the last line
    /// has passed and something was counted; resets the count.
    pub fn summary_due(&mut self, now: Instant) -> Option<u64> {
        if !self.interval_passed(now) || self.pending == 0 {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.pending))
    }

    fn interval_passed(&self, now: Instant) -> bool {
        match self.last_line {
            None => true,
            Some(t) => now.saturating_duration_since(t) >= self.every,
        }
    }

    /// Every occurrence counted since this counter was made.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The summary interval in whole seconds, for the summary line.
    pub fn every_secs(&self) -> u64 {
        self.every.as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_logged_then_counted_and_summarised_once_per_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut f = Flood::new(10 * s);
        assert_eq!(f.hit(t0), Hit::Log);
        for i in 0..50_000u32 {
            assert_eq!(
                f.hit(t0 + Duration::from_micros(u64::from(i))),
                Hit::Counted
            );
        }
        assert_eq!(f.summary_due(t0 + 9 * s), None);
        assert_eq!(f.summary_due(t0 + 10 * s), Some(50_000));
        assert_eq!(f.summary_due(t0 + 30 * s), None, "nothing new counted");
        assert_eq!(f.total(), 50_001);
    }

    #[test]
    fn a_hit_after_a_quiet_interval_is_logged_in_full_again() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut f = Flood::new(10 * s);
        assert_eq!(f.hit(t0), Hit::Log);
        assert_eq!(f.hit(t0 + s), Hit::Counted);
        // Still one waiting for its summary: counted, not printed.
        assert_eq!(f.hit(t0 + 20 * s), Hit::Counted);
        assert_eq!(f.summary_due(t0 + 20 * s), Some(2));
        assert_eq!(f.hit(t0 + 31 * s), Hit::Log);
    }
}
