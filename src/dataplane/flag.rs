//! A one-shot, single-thread flag that tasks can await (a worker's "stop accepting" signal).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Set once; every waiter wakes.
#[derive(Default)]
pub struct LocalFlag {
    set: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl LocalFlag {
    /// Raise the flag and wake every waiter.
    pub fn raise(&self) {
        self.set.set(true);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolve once the flag is raised.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                let mut waiters = self.waiters.borrow_mut();
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}

impl LocalFlag {
    /// Whether the flag is raised now.
    pub fn is_raised(&self) -> bool {
        self.set.get()
    }
}
