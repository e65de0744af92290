//! The one metering point of the data plane: every TCP and UDP pump counts its bytes and
//! is paced by `rate=` through a [`Meter`] that `admit` builds (`tcp_meters`,
//! `udp_meters`). Counters read as NodePass's: RX = bytes read from the local user or
//! target socket, TX = bytes written to it.

use std::sync::atomic::AtomicU64;

use crate::limit::RateLimiter;
use crate::stats::WorkerStats;

/// What one direction counts and how it is limited.
pub struct Meter<'a> {
    /// Byte counter this direction adds to.
    pub counter: &'a AtomicU64,
    /// Rate limiter charged per chunk, if `rate=` is set.
    pub limiter: Option<&'a RateLimiter>,
}

/// Largest chunk moved at once when a rate limit applies, so pacing stays smooth.
const LIMITED_CHUNK: usize = 16 * 1024;

impl Meter<'_> {
    /// The largest chunk to move at once, given a buffer of `max` bytes.
    pub(super) fn chunk(&self, max: usize) -> usize {
        if self.limiter.is_some() {
            max.min(LIMITED_CHUNK)
        } else {
            max
        }
    }

    /// Whether `rate=` applies to this direction.
    pub(super) fn is_limited(&self) -> bool {
        self.limiter.is_some()
    }

    /// Count `n` bytes, then wait as long as the rate limit says.
    pub(super) async fn account(&self, n: usize) {
        self.count(n);
        self.pace(n).await;
    }

    /// Count `n` bytes (no pacing: for bytes already paced, or a direction that paces
    /// before it knows what was written).
    pub(super) fn count(&self, n: usize) {
        WorkerStats::add(self.counter, n);
    }

    /// Charge `n` bytes to the rate limit and wait as long as it says (no counting).
    pub(super) async fn pace(&self, n: usize) {
        if let Some(l) = self.limiter {
            let wait = l.reserve(n);
            if !wait.is_zero() {
                // Boxed: a timer in the relay future would grow every connection's task,
                // rate-limited or not (idle memory per connection).
                Box::pin(monoio::time::sleep(wait)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    #[monoio::test(driver = "legacy", timer_enabled = true)]
    async fn a_meter_counts_what_it_is_told_and_paces_only_what_is_charged() {
        let counter = AtomicU64::new(0);
        let limiter = RateLimiter::new(1_000_000);
        let meter = Meter {
            counter: &counter,
            limiter: Some(&limiter),
        };
        // The limiter starts empty: 50 kB at 1 MB/s waits about 50 ms.
        let start = Instant::now();
        meter.account(50_000).await;
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert_eq!(counter.load(Ordering::Relaxed), 50_000);
        meter.count(7);
        assert_eq!(counter.load(Ordering::Relaxed), 50_007);
        meter.pace(1).await;
        assert_eq!(counter.load(Ordering::Relaxed), 50_007);
        assert_eq!(meter.chunk(1 << 20), LIMITED_CHUNK);
        let free = Meter {
            counter: &counter,
            limiter: None,
        };
        assert_eq!(free.chunk(1 << 20), 1 << 20);
        assert!(!free.is_limited());
    }
}
