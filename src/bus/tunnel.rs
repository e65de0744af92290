//! What crosses threads in a dual-end tunnel run: the commands a tunnel worker takes
//! beside the host's, the events workers report to the control thread, and the state of
//! one run that every thread shares.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::WorkerHandle;
use crate::proto::PoolId;
use crate::wake::{queue, QueueRx, QueueTx, Rejected};

/// Commands only a tunnel worker understands (inside [`super::Command::Mode`]).
#[derive(Debug)]
pub enum TunnelCommand {
    /// Take pool connection `id` from this worker's shard and carry the user TCP
    /// connection `remote` of the peer to a target.
    Tcp {
        /// The pool connection named by the `tcp` signal.
        id: PoolId,
        /// The user's address as the peer saw it.
        remote: String,
    },
    /// As [`TunnelCommand::Tcp`] for a UDP flow.
    Udp {
        /// The pool connection named by the `udp` signal.
        id: PoolId,
        /// The user's address as the peer saw it.
        remote: String,
    },
    /// Close every idle pool connection of this worker (`flush`).
    PoolFlush,
    /// Serve this user TCP connection, accepted by a worker whose pool shard was
    /// empty while this worker's was not.
    AdoptUser {
        /// The accepted socket.
        fd: std::os::fd::OwnedFd,
        /// The user's address.
        peer: SocketAddr,
    },
    /// A datagram of the UDP user `client`, received by worker `origin` whose pool
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
    /// (tls 1/2) Take the oldest idle pool connection, send `verify` for it with
    /// `fp` (or, on a client, the fingerprint seen on that connection), then close it.
    SendVerify {
        /// The server's own fingerprint; `None` on a client.
        fp: Option<String>,
    },
    /// (tls 1/2) Take pool connection `id` and compare fingerprints.
    CheckVerify {
        /// The pool connection named by the peer's `verify`.
        id: PoolId,
        /// The fingerprint the peer sent.
        fp: String,
        /// The server's own fingerprint; `None` on a client (it compares with what it saw).
        own: Option<String>,
    },
}

/// Events a tunnel worker reports to the control thread.
#[derive(Debug)]
pub enum Event {
    /// Tunnel server: a handshake succeeded from this address.
    HandshakeDone(SocketAddr),
    /// The control channel (pool id `00000000`) is up on this worker.
    ControlUp(usize),
    /// The control channel ended (read error, EOF, idle timeout); fatal.
    ControlLost(String),
    /// A decoded signal from the peer.
    Signal(crate::proto::Signal),
    /// A signal named a pool connection that never showed up (Go's error count).
    PoolMiss,
    /// The fingerprint check failed (fatal) with this reason.
    VerifyFailed(String),
    /// A `SendVerify` found no idle connection on this worker.
    VerifyNoConn(usize),
}

/// The `auth1` profile of one run, once agreed (`proto::auth`): the nonces every pool
/// connection's proof is bound to, and the certificate fingerprint every TLS pool
/// connection shows ("" for tls=0).
#[derive(Debug, Clone)]
pub struct RunAuth {
    /// Both handshake nonces.
    pub session: crate::proto::auth::Session,
    /// The server certificate's fingerprint the server proved ("" for tls=0).
    pub fp: String,
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
    pub workers: std::sync::OnceLock<Vec<WorkerHandle<TunnelCommand>>>,
    /// Both ends are ours and agreed on length-framed UDP (`udp16`) in this run's handshake.
    pub framed_udp: std::sync::atomic::AtomicBool,
    /// Both ends are ours and agreed on the `auth1` profile: every pool connection proves
    /// the key.
    pub auth: std::sync::OnceLock<RunAuth>,
    /// Server: `auth1` handshakes answered while no run is committed (`client_ip` unset).
    pub pending: Mutex<super::pending::Pending>,
    /// Client: which worker holds each idle pool connection (see [`super::route`]).
    pub owners: super::owners::ClientOwners,
    /// Events and signal lines dropped on a full queue (a flood): counted, summarised.
    pub dropped: Mutex<crate::logging::Flood>,
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
            auth: std::sync::OnceLock::new(),
            pending: Mutex::new(super::pending::Pending::default()),
            owners: super::owners::ClientOwners::default(),
            dropped: Mutex::new(crate::logging::Flood::new(
                crate::logging::FLOOD_REPORT_EVERY,
            )),
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
            // The event is not printed: a signal in it holds the peer's text.
            Err(Rejected::Full(_)) => self.count_drop(format_args!("control event")),
            Err(Rejected::Closed(_)) => log::debug!("run ended, event dropped"),
        }
    }

    /// Queue a signal line for the control channel; a full queue drops it (logged), as Go.
    pub fn send_signal(&self, line: Vec<u8>) {
        if self.signals.post(line).is_err() {
            self.count_drop(format_args!("outgoing signal"));
        }
    }

    /// A full queue dropped `what`: the first of a spell is logged, the rest counted and
    /// summarised once per interval (a flooding peer must not flood the log too).
    fn count_drop(&self, what: std::fmt::Arguments<'_>) {
        let Ok(mut dropped) = self.dropped.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        let secs = dropped.every_secs();
        if dropped.hit(now) == crate::logging::Hit::Log {
            log::warn!("queue full: {what} dropped (more are counted)");
        } else if let Some(n) = dropped.summary_due(now) {
            log::warn!("queue full: {n} events or signals dropped in the last {secs} s");
        }
    }
}
