//! `slot=`: the exact cap on concurrent TCP+UDP sessions of the whole process.
//!
//! Go checks, then increments, so it can overshoot; we take a slot with one
//! compare-and-swap, so the count never exceeds the limit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A counter of live sessions with an upper bound (0 = unlimited).
#[derive(Debug)]
pub struct SlotLimit {
    max: u32,
    used: AtomicU32,
}

impl SlotLimit {
    /// A limit of `max` concurrent sessions; `0` means unlimited.
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(SlotLimit {
            max,
            used: AtomicU32::new(0),
        })
    }

    /// Take a slot, or `None` when all are in use. The slot is returned when the guard drops.
    pub fn try_acquire(self: &Arc<Self>) -> Option<SlotGuard> {
        let max = if self.max == 0 { u32::MAX } else { self.max };
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SlotGuard {
                limit: Arc::clone(self),
            })
    }

    /// Sessions holding a slot now.
    pub fn in_use(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }
}

/// One taken slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct SlotGuard {
    limit: Arc<SlotLimit>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.limit.used.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_after_the_last_is_refused_until_one_is_returned() {
        let limit = SlotLimit::new(2);
        let a = limit.try_acquire().expect("first slot");
        let _b = limit.try_acquire().expect("second slot");
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert!(limit.try_acquire().is_some());
    }

    #[test]
    fn zero_means_unlimited() {
        let limit = SlotLimit::new(0);
        let guards: Vec<_> = (0..1000).filter_map(|_| limit.try_acquire()).collect();
        assert_eq!(guards.len(), 1000);
        assert_eq!(limit.in_use(), 1000);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let limit = SlotLimit::new(8);
        let taken: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let limit = Arc::clone(&limit);
                    s.spawn(move || {
                        (0..100)
                            .filter_map(|_| limit.try_acquire())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        assert_eq!(taken.len(), 8);
    }
}
