//! A bounded cross-thread queue whose receiver is awaited on a monoio runtime.
//!
//! The sender uses `try_send` and then wakes the receiving task (monoio's `sync` feature
//! makes wakers cross-thread); the receiver drains the queue with `try_recv`. Nothing here
//! blocks either side.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

/// A bounded cross-thread queue whose receiver is awaited on a monoio runtime: `try_send`
/// never blocks and wakes the receiving task.
pub struct QueueTx<T> {
    tx: Sender<T>,
    slot: Arc<WakerSlot>,
}

impl<T> Clone for QueueTx<T> {
    fn clone(&self) -> Self {
        QueueTx {
            tx: self.tx.clone(),
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<T> std::fmt::Debug for QueueTx<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueTx")
    }
}

/// The receiving end of [`queue`].
pub struct QueueRx<T> {
    rx: Receiver<T>,
    slot: Arc<WakerSlot>,
}

impl<T> std::fmt::Debug for QueueRx<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueRx")
    }
}

/// A queue of `depth` items (events to the control thread, signal lines to the one
/// control-channel writer).
pub fn queue<T>(depth: usize) -> (QueueTx<T>, QueueRx<T>) {
    let (tx, rx) = crossbeam_channel::bounded(depth);
    let slot = Arc::new(WakerSlot::default());
    (
        QueueTx {
            tx,
            slot: Arc::clone(&slot),
        },
        QueueRx { rx, slot },
    )
}

/// Why [`QueueTx::try_post`] gave an item back.
#[derive(Debug)]
pub enum Rejected<T> {
    /// The queue is full (the receiver is behind).
    Full(T),
    /// The receiver is gone (for a run's event queue: the run has ended).
    Closed(T),
}

impl<T> QueueTx<T> {
    /// Queue an item and wake the receiver; a full or closed queue gives the item back.
    pub fn post(&self, item: T) -> Result<(), T> {
        self.try_post(item).map_err(|r| match r {
            Rejected::Full(c) | Rejected::Closed(c) => c,
        })
    }

    /// Queue an item from a plain OS thread (never from a runtime), waiting while the
    /// queue is full: a producer that floods (a child's output) is slowed down instead of
    /// growing memory. False once the receiver is gone.
    // The one blocking send in the crate: its callers are helper threads, never a runtime.
    #[allow(clippy::disallowed_methods)]
    pub fn post_blocking(&self, item: T) -> bool {
        if self.tx.send(item).is_err() {
            return false;
        }
        self.slot.wake();
        true
    }

    /// As [`QueueTx::post`], saying why an item was given back.
    pub fn try_post(&self, item: T) -> Result<(), Rejected<T>> {
        match self.tx.try_send(item) {
            Ok(()) => {
                self.slot.wake();
                Ok(())
            }
            Err(TrySendError::Full(c)) => Err(Rejected::Full(c)),
            Err(TrySendError::Disconnected(c)) => Err(Rejected::Closed(c)),
        }
    }
}

impl<T> QueueRx<T> {
    /// The next item; `None` when every sender is gone.
    pub async fn recv(&self) -> Option<T> {
        poll_fn(|cx| match self.rx.try_recv() {
            Ok(c) => Poll::Ready(Some(c)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                self.slot.register(cx.waker());
                // An item may have landed between the first look and the registration.
                match self.rx.try_recv() {
                    Ok(c) => Poll::Ready(Some(c)),
                    Err(TryRecvError::Disconnected) => Poll::Ready(None),
                    Err(TryRecvError::Empty) => Poll::Pending,
                }
            }
        })
        .await
    }

    /// An item if one is queued now.
    pub fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

#[derive(Debug, Default)]
struct WakerSlot {
    waker: Mutex<Option<Waker>>,
}

impl WakerSlot {
    fn wake(&self) {
        let waker = self.waker.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn register(&self, waker: &Waker) {
        if let Ok(mut slot) = self.waker.lock() {
            match slot.as_ref() {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }
}
