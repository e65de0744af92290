//! The only types that cross threads: commands to a worker, events back, and the mailbox
//! that lets the control thread wake a worker's runtime without ever blocking it.
//!
//! Each worker has one bounded queue. The sender uses `try_send` and then wakes the
//! worker's mailbox task (monoio's `sync` feature makes wakers cross-thread); the worker
//! drains the queue with `try_recv`. Nothing here blocks either side.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

/// Commands the control thread sends to one worker.
#[derive(Debug)]
pub enum Command {
    /// Stop accepting new connections and UDP sessions; live ones go on.
    StopAccepting,
    /// Close every live session now (the drain deadline passed).
    CloseAll,
    /// Fresh DNS results for the target list (same order as the configured targets;
    /// `None` = not resolvable yet).
    Targets(Arc<[Option<SocketAddr>]>),
}

/// Events a worker reports to the control thread.
#[derive(Debug)]
pub enum Event {
    /// The worker's runtime has ended; the number is its index.
    WorkerExited(usize),
}

/// Queue depth of one worker's mailbox: commands are rare (control, not data).
const MAILBOX_DEPTH: usize = 1024;

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

/// The control thread's end of a worker's mailbox.
#[derive(Clone, Debug)]
pub struct WorkerHandle {
    tx: Sender<Command>,
    slot: Arc<WakerSlot>,
}

/// The worker's end of its mailbox.
#[derive(Debug)]
pub struct Mailbox {
    rx: Receiver<Command>,
    slot: Arc<WakerSlot>,
}

/// A connected pair of handle and mailbox.
pub fn mailbox() -> (WorkerHandle, Mailbox) {
    let (tx, rx) = crossbeam_channel::bounded(MAILBOX_DEPTH);
    let slot = Arc::new(WakerSlot::default());
    (
        WorkerHandle {
            tx,
            slot: Arc::clone(&slot),
        },
        Mailbox { rx, slot },
    )
}

impl WorkerHandle {
    /// Queue a command and wake the worker. A full queue gives the command back instead
    /// of blocking: the caller decides (log, retry on the next tick).
    pub fn post(&self, cmd: Command) -> Result<(), Command> {
        match self.tx.try_send(cmd) {
            Ok(()) => {
                self.slot.wake();
                Ok(())
            }
            Err(TrySendError::Full(c)) | Err(TrySendError::Disconnected(c)) => Err(c),
        }
    }
}

impl Mailbox {
    /// The next command; `None` when every handle is gone.
    pub async fn recv(&self) -> Option<Command> {
        poll_fn(|cx| match self.rx.try_recv() {
            Ok(c) => Poll::Ready(Some(c)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                self.slot.register(cx.waker());
                // A command may have landed between the first look and the registration.
                match self.rx.try_recv() {
                    Ok(c) => Poll::Ready(Some(c)),
                    Err(TryRecvError::Disconnected) => Poll::Ready(None),
                    Err(TryRecvError::Empty) => Poll::Pending,
                }
            }
        })
        .await
    }
}
