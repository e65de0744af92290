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

use crate::proto::PoolId;

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
    /// Tunnel: take pool connection `id` from this worker's shard and carry the user TCP
    /// connection `remote` of the peer to a target.
    TunnelTcp {
        /// The pool connection named by the `tcp` signal.
        id: PoolId,
        /// The user's address as the peer saw it.
        remote: String,
    },
    /// Tunnel: as [`Command::TunnelTcp`] for a UDP flow.
    TunnelUdp {
        /// The pool connection named by the `udp` signal.
        id: PoolId,
        /// The user's address as the peer saw it.
        remote: String,
    },
    /// Tunnel: close every idle pool connection of this worker (`flush`).
    PoolFlush,
    /// Tunnel: serve this user TCP connection, accepted by a worker whose pool shard was
    /// empty while this worker's was not.
    AdoptUser {
        /// The accepted socket.
        fd: std::os::fd::OwnedFd,
        /// The user's address.
        peer: SocketAddr,
    },
    /// Tunnel: a datagram of the UDP user `client`, received by worker `origin` whose pool
    /// shard was empty: this worker carries the flow over its own pool connection and
    /// answers from its own UDP socket (same local address, SO_REUSEPORT). When this
    /// worker is `origin` itself, the adopter gave the flow back (its shard ran dry while
    /// the origin's filled).
    AdoptUdp {
        /// The user's address.
        client: SocketAddr,
        /// One whole datagram.
        datagram: Vec<u8>,
        /// The worker the kernel delivers this user's datagrams to.
        origin: usize,
    },
    /// Tunnel (tls 1/2): take the oldest idle pool connection, send `verify` for it with
    /// `fp` (or, on a client, the fingerprint seen on that connection), then close it.
    SendVerify {
        /// The server's own fingerprint; `None` on a client.
        fp: Option<String>,
    },
    /// Tunnel (tls 1/2): take pool connection `id` and compare fingerprints.
    CheckVerify {
        /// The pool connection named by the peer's `verify`.
        id: PoolId,
        /// The fingerprint the peer sent.
        fp: String,
        /// The server's own fingerprint; `None` on a client (it compares with what it saw).
        own: Option<String>,
    },
}

/// Events a worker reports to the control thread.
#[derive(Debug)]
pub enum Event {
    /// The worker's runtime has ended; the number is its index.
    WorkerExited(usize),
    /// Tunnel server: a handshake succeeded from this address.
    HandshakeDone(SocketAddr),
    /// Tunnel: the control channel (pool id `00000000`) is up on this worker.
    ControlUp(usize),
    /// Tunnel: the control channel ended (read error, EOF, idle timeout); fatal.
    ControlLost(String),
    /// Tunnel: a decoded signal from the peer.
    Signal(crate::proto::Signal),
    /// Tunnel client: worker `worker` holds pool connection `id`.
    PoolConn {
        /// The id the server wrote.
        id: PoolId,
        /// The owning worker.
        worker: usize,
    },
    /// Tunnel: a signal named a pool connection that never showed up (Go's error count).
    PoolMiss,
    /// Tunnel: the fingerprint check failed (fatal) with this reason.
    VerifyFailed(String),
    /// Tunnel: a `SendVerify` found no idle connection on this worker.
    VerifyNoConn(usize),
}

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

/// State of one tunnel run shared by the control thread and every worker (rebuilt on
/// restart): who the client is, whether the control channel is taken, idle counts.
#[derive(Debug)]
pub struct TunnelShared {
    /// Server: the handshake peer's IP (first success wins).
    pub client_ip: std::sync::OnceLock<std::net::IpAddr>,
    /// Set once the pool connection `00000000` has been given out / received.
    pub control_taken: std::sync::atomic::AtomicBool,
    /// Idle pool connections per worker (the POOL field is their sum).
    pub idle: Box<[std::sync::atomic::AtomicUsize]>,
    /// Events to the control thread.
    pub events: QueueTx<Event>,
    /// Encoded signal lines to the control-channel writer.
    pub signals: QueueTx<Vec<u8>>,
    /// The writer's end, taken by the worker that owns the control channel.
    pub signal_rx: Mutex<Option<QueueRx<Vec<u8>>>>,
    /// Every worker's mailbox (set once the plane runs), for user hand-off between shards.
    pub workers: std::sync::OnceLock<Vec<WorkerHandle>>,
    /// Both ends are ours and agreed on length-framed UDP (`udp16`) in this run's handshake.
    pub framed_udp: std::sync::atomic::AtomicBool,
}

/// Depth of the signal-line queue (Go: NP_SEMAPHORE_LIMIT).
pub const SIGNAL_QUEUE_DEPTH: usize = 65536;

impl TunnelShared {
    /// Fresh state for `workers` workers; also returns the control thread's event inbox.
    pub fn new(workers: usize) -> (Arc<TunnelShared>, QueueRx<Event>) {
        let (events, inbox) = queue(SIGNAL_QUEUE_DEPTH);
        let (signals, signal_rx) = queue(SIGNAL_QUEUE_DEPTH);
        let shared = TunnelShared {
            client_ip: std::sync::OnceLock::new(),
            control_taken: std::sync::atomic::AtomicBool::new(false),
            idle: (0..workers)
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect(),
            events,
            signals,
            signal_rx: Mutex::new(Some(signal_rx)),
            workers: std::sync::OnceLock::new(),
            framed_udp: std::sync::atomic::AtomicBool::new(false),
        };
        (Arc::new(shared), inbox)
    }

    /// Whether UDP over this run's pool connections is length-framed (see `framed_udp`).
    pub fn udp_framed(&self) -> bool {
        self.framed_udp.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Idle pool connections over all workers.
    pub fn idle_total(&self) -> usize {
        self.idle
            .iter()
            .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Report an event; a full queue is logged, never waited on. Once the control loop
    /// has ended (the run is being torn down) events have no reader and are dropped quietly.
    pub fn report(&self, ev: Event) {
        match self.events.try_post(ev) {
            Ok(()) => {}
            Err(Rejected::Full(ev)) => log::warn!("control event queue full, dropped {ev:?}"),
            Err(Rejected::Closed(ev)) => log::debug!("run ended, event dropped: {ev:?}"),
        }
    }

    /// Queue a signal line for the control channel; a full queue drops it (logged), as Go.
    pub fn send_signal(&self, line: Vec<u8>) {
        if self.signals.post(line).is_err() {
            log::warn!("signal queue full: signal dropped");
        }
    }
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
pub type WorkerHandle = QueueTx<Command>;

/// The worker's end of its mailbox.
pub type Mailbox = QueueRx<Command>;

/// A connected pair of handle and mailbox (a [`queue`] of `MAILBOX_DEPTH` commands).
pub fn mailbox() -> (WorkerHandle, Mailbox) {
    queue(MAILBOX_DEPTH)
}
