//! A single-thread flag that tasks can await: raised once for good (a worker's "stop
//! accepting", "closing"), or lowered again by the task it wakes (a pool refill loop's
//! "a connection was taken").
//!
//! A waiter is registered in a slot only while its `wait()` future is alive: a wait that
//! loses a `select!` is dropped and frees its slot at once. The flag lives as long as its
//! worker, so a waker left behind would keep its (finished) task's memory alive for good —
//! one per UDP session before this was so.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Raised, every waiter wakes; stays raised until lowered.
#[derive(Default)]
pub struct LocalFlag {
    set: Cell<bool>,
    /// Counts raises, so that a wait registered before a raise knows it happened even if
    /// the flag was lowered again before the wait was polled.
    raises: Cell<u64>,
    waiters: RefCell<Waiters>,
}

/// Slots of the live waiters; freed slots are reused, so the table stays at the peak
/// number of concurrent waiters.
#[derive(Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl LocalFlag {
    /// Raise the flag and wake every waiter.
    pub fn raise(&self) {
        self.set.set(true);
        self.raises.set(self.raises.get().wrapping_add(1));
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters.slots.into_iter().flatten() {
            w.wake();
        }
    }

    /// Resolve once the flag is raised.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            flag: self,
            slot: None,
        }
    }

    /// Lower the flag again (the waker consumed the event); later waits wait for the next
    /// raise.
    pub fn lower(&self) {
        self.set.set(false);
    }

    /// Whether the flag is raised now.
    pub fn is_raised(&self) -> bool {
        self.set.get()
    }

    /// Number of registered waiters.
    #[cfg(test)]
    fn waiters(&self) -> usize {
        let w = self.waiters.borrow();
        w.slots.len() - w.free.len()
    }
}

/// The future of [`LocalFlag::wait`]; unregisters its waker when dropped.
pub struct Wait<'a> {
    flag: &'a LocalFlag,
    /// The waiter's slot and the raise count when it registered.
    slot: Option<(usize, u64)>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let flag = self.flag;
        let raised_since = self.slot.is_some_and(|(_, r)| r != flag.raises.get());
        if flag.set.get() || raised_since {
            // `raise` already emptied the table: the slot is gone.
            self.slot = None;
            return Poll::Ready(());
        }
        let mut waiters = flag.waiters.borrow_mut();
        match self.slot {
            Some((i, _)) => match &mut waiters.slots[i] {
                Some(w) if w.will_wake(cx.waker()) => {}
                entry => *entry = Some(cx.waker().clone()),
            },
            None => {
                let waker = Some(cx.waker().clone());
                let i = match waiters.free.pop() {
                    Some(i) => {
                        waiters.slots[i] = waker;
                        i
                    }
                    None => {
                        waiters.slots.push(waker);
                        waiters.slots.len() - 1
                    }
                };
                drop(waiters);
                self.slot = Some((i, flag.raises.get()));
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        // After `raise` the table was replaced: a stale slot number must not be freed.
        let Some((i, raises)) = self.slot.take() else {
            return;
        };
        if raises != self.flag.raises.get() {
            return;
        }
        let mut waiters = self.flag.waiters.borrow_mut();
        if let Some(entry) = waiters.slots.get_mut(i) {
            *entry = None;
            waiters.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll_once(w: &mut Wait<'_>, waker: &Waker) -> Poll<()> {
        Pin::new(w).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_dropped_wait_leaves_no_waiter_behind() {
        let flag = LocalFlag::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        for _ in 0..1000 {
            let mut w = flag.wait();
            assert!(poll_once(&mut w, &waker).is_pending());
            assert!(poll_once(&mut w, &waker).is_pending());
        }
        assert_eq!(flag.waiters(), 0);
        assert_eq!(flag.waiters.borrow().slots.len(), 1, "the slot is reused");
    }

    #[test]
    fn raise_wakes_every_live_waiter_once() {
        let flag = LocalFlag::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut a = flag.wait();
        let mut b = flag.wait();
        let mut gone = flag.wait();
        for w in [&mut a, &mut b, &mut gone] {
            assert!(poll_once(w, &waker).is_pending());
        }
        drop(gone);
        flag.raise();
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        assert!(poll_once(&mut a, &waker).is_ready());
        drop(b);
        assert!(poll_once(&mut flag.wait(), &waker).is_ready());
        assert_eq!(flag.waiters(), 0);
    }

    #[test]
    fn a_lowered_flag_waits_for_the_next_raise_and_stale_waits_free_nothing() {
        let flag = LocalFlag::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut early = flag.wait();
        assert!(poll_once(&mut early, &waker).is_pending());
        flag.raise();
        flag.lower();
        // Raised while it waited: ready, though the flag is down again.
        assert!(poll_once(&mut early, &waker).is_ready());
        let mut late = flag.wait();
        assert!(poll_once(&mut late, &waker).is_pending(), "lowered: waits");
        let mut stale = flag.wait();
        assert!(poll_once(&mut stale, &waker).is_pending());
        flag.raise();
        flag.lower();
        let mut fresh = flag.wait();
        assert!(poll_once(&mut fresh, &waker).is_pending());
        // Dropping a wait from before the raise must not free the fresh wait's slot.
        drop(stale);
        assert_eq!(flag.waiters(), 1);
        flag.raise();
        assert!(poll_once(&mut fresh, &waker).is_ready());
        assert!(poll_once(&mut late, &waker).is_ready());
    }
}
