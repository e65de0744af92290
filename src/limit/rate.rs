//! `rate=`: one process-wide byte-rate limit that holds however the work is spread over cores.
//!
//! The limiter is a GCRA ("virtual scheduling") bucket: one atomic holds the theoretical
//! arrival time (TAT) of the next byte, in nanoseconds of a shared clock. Reserving `n` bytes
//! advances the TAT by `n` × (1 s / rate) with a compare-and-swap, and the caller sleeps for
//! however far the TAT runs ahead of `now + burst`. No lock, one atomic per chunk, exact
//! across threads. Go's bucket allows ≈1 s of burst; so do we, but a fresh limiter starts
//! empty so a transfer right after start is paced from its first byte.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds since an arbitrary origin shared by all users of one limiter.
pub trait Clock: Send + Sync {
    /// The current time in nanoseconds.
    fn now_ns(&self) -> u64;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A byte-rate limiter shared by every worker (see the module doc).
#[derive(Debug)]
pub struct RateLimiter<C: Clock = MonotonicClock> {
    bytes_per_sec: u64,
    burst_ns: u64,
    tat_ns: AtomicU64,
    clock: C,
}

impl RateLimiter<MonotonicClock> {
    /// A limiter of `bytes_per_sec` with a one-second burst, on the real clock.
    pub fn new(bytes_per_sec: u64) -> Self {
        Self::with_clock(
            bytes_per_sec,
            Duration::from_secs(1),
            MonotonicClock::default(),
        )
    }
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter with an explicit burst and clock (tests use a fake clock).
    pub fn with_clock(bytes_per_sec: u64, burst: Duration, clock: C) -> Self {
        let burst_ns = u64::try_from(burst.as_nanos()).unwrap_or(u64::MAX);
        let start = clock.now_ns().saturating_add(burst_ns);
        RateLimiter {
            bytes_per_sec: bytes_per_sec.max(1),
            burst_ns,
            tat_ns: AtomicU64::new(start),
            clock,
        }
    }

    /// The configured rate.
    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// Account for `bytes` and return how long the caller must wait before going on
    /// (zero when within the rate).
    pub fn reserve(&self, bytes: usize) -> Duration {
        let cost = u64::try_from(bytes as u128 * 1_000_000_000 / u128::from(self.bytes_per_sec))
            .unwrap_or(u64::MAX);
        let now = self.clock.now_ns();
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(cost);
            match self
                .tat_ns
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    let allowed = now.saturating_add(self.burst_ns);
                    return Duration::from_nanos(next.saturating_sub(allowed));
                }
                Err(current) => tat = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct FakeClock(Arc<AtomicU64>);

    impl Clock for FakeClock {
        fn now_ns(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl FakeClock {
        fn advance(&self, d: Duration) {
            self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_fresh_limiter_paces_from_the_first_byte() {
        let clock = FakeClock::default();
        let rl = RateLimiter::with_clock(1_000_000, Duration::from_secs(1), clock.clone());
        assert_eq!(rl.reserve(500_000), Duration::from_millis(500));
        assert_eq!(rl.reserve(500_000), Duration::from_millis(1000));
    }

    #[test]
    fn idle_time_earns_at_most_one_burst() {
        let clock = FakeClock::default();
        let rl = RateLimiter::with_clock(1_000_000, Duration::from_secs(1), clock.clone());
        clock.advance(Duration::from_secs(10));
        // One second of credit, not ten.
        assert_eq!(rl.reserve(1_000_000), Duration::ZERO);
        assert_eq!(rl.reserve(250_000), Duration::from_millis(250));
    }

    #[test]
    fn a_sustained_stream_gets_the_configured_rate() {
        let clock = FakeClock::default();
        let rl = RateLimiter::with_clock(125_000, Duration::from_secs(1), clock.clone());
        // Send 16 KiB chunks, sleeping as told; 1 MB must take ≈ 8 s.
        let mut sent = 0usize;
        while sent < 1_000_000 {
            let wait = rl.reserve(16_384);
            clock.advance(wait);
            sent += 16_384;
        }
        let elapsed = clock.now_ns() as f64 / 1e9;
        assert!((elapsed - 8.0).abs() < 0.2, "took {elapsed} s");
    }

    #[test]
    fn threads_share_one_budget() {
        let clock = FakeClock::default();
        let rl = Arc::new(RateLimiter::with_clock(
            1_000_000,
            Duration::ZERO,
            clock.clone(),
        ));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let rl = Arc::clone(&rl);
                s.spawn(move || {
                    for _ in 0..100 {
                        rl.reserve(1000);
                    }
                });
            }
        });
        // 400 kB at 1 MB/s: the last reservation ends 0.4 s ahead of a clock that never moved.
        assert_eq!(rl.reserve(0), Duration::from_millis(400));
    }
}
