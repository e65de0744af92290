//! Wake-up primitive for the master's single runtime: a cross-thread inbox.
//!
//! Helper OS threads (child output readers, DNS, file writes) hand results to the runtime
//! through an [`Inbox`]: the sender pushes under a mutex and wakes the waiting task (monoio's
//! `sync` feature makes that wake-up cross-thread). Nothing here blocks the runtime.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

struct Shared<T> {
    queue: VecDeque<T>,
    waker: Option<Waker>,
    closed: bool,
}

struct Channel<T> {
    state: Mutex<Shared<T>>,
    space: Condvar,
    cap: usize,
}

/// The sending side, used from plain OS threads (never from the runtime).
pub struct InboxSender<T> {
    chan: Arc<Channel<T>>,
}

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        InboxSender {
            chan: self.chan.clone(),
        }
    }
}

/// The receiving side, awaited on the master runtime.
pub struct Inbox<T> {
    chan: Arc<Channel<T>>,
}

/// A bounded cross-thread queue whose receiver is a future.
pub fn inbox<T>(cap: usize) -> (InboxSender<T>, Inbox<T>) {
    let chan = Arc::new(Channel {
        state: Mutex::new(Shared {
            queue: VecDeque::new(),
            waker: None,
            closed: false,
        }),
        space: Condvar::new(),
        cap: cap.max(1),
    });
    (InboxSender { chan: chan.clone() }, Inbox { chan })
}

impl<T> InboxSender<T> {
    /// Queue `item`, waiting (on this OS thread) while the queue is full: a child that
    /// floods its output is slowed down instead of growing memory. Returns false once the
    /// receiver is gone.
    pub fn push_blocking(&self, item: T) -> bool {
        let Ok(mut st) = self.chan.state.lock() else {
            return false;
        };
        while st.queue.len() >= self.chan.cap && !st.closed {
            st = match self.chan.space.wait_timeout(st, Duration::from_millis(200)) {
                Ok((guard, _)) => guard,
                Err(_) => return false,
            };
        }
        if st.closed {
            return false;
        }
        st.queue.push_back(item);
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        true
    }
}

impl<T> Inbox<T> {
    /// The next item, waiting for one.
    pub fn recv(&self) -> impl Future<Output = T> + '_ {
        std::future::poll_fn(move |cx| {
            let Ok(mut st) = self.chan.state.lock() else {
                return Poll::Pending;
            };
            if let Some(item) = st.queue.pop_front() {
                self.chan.space.notify_one();
                return Poll::Ready(item);
            }
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.chan.state.lock() {
            st.closed = true;
            st.queue.clear();
        }
        self.chan.space.notify_all();
    }
}

/// Run `f` on a fresh OS thread and await its result without blocking the runtime
/// (DNS lookups and fsync'd file writes). `None` if the thread panicked.
pub async fn off_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = inbox::<Option<R>>(1);
    let spawned = std::thread::Builder::new()
        .name("np-master-io".into())
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
            tx.push_blocking(out);
        });
    if spawned.is_err() {
        return None;
    }
    rx.recv().await
}
