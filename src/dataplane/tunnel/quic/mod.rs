//! Pool type 1: QUIC (POOL_TYPES.md §1). quinn-proto's state machine is driven sans-IO
//! from one UDP socket per endpoint on the worker: the receive task feeds datagrams to
//! `Endpoint::handle`, the timer task runs `handle_timeout` and is woken when a
//! connection's next deadline may have moved, and every change (a datagram, a stream
//! read or write) is followed by [`Ep::drive`], which sends what the connection wants
//! sent (`sendto` with `MSG_DONTWAIT`: a full socket buffer is a loss QUIC recovers),
//! passes endpoint events and wakes the stream halves its events concern. One worker
//! owns each endpoint and all its connections and streams: `RefCell`, no locks.
//!
//! A pool entry is one bidirectional stream ([`stream::QuicStream`]); its halves are the
//! `Quic` variants of `PoolRead`/`PoolWrite`, and its `End` is a [`StreamEnd`]: its
//! reads and writes race `wait_shut()` (forced teardown resets and stops the stream), and
//! it is marked gone when the peer resets or stops it or the connection dies, after which
//! the worker's shard sweeps gone idle entries out.

pub(super) mod client;
mod config;
mod driver;
mod events;
pub(super) mod server;
mod slot;
mod stream;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

use quinn_proto::{ConnectionHandle, Dir, Endpoint, Event, StreamId, VarInt};

use crate::dataplane::end::StreamEnd;
use crate::wake::LocalFlag;

use events::{describe, on_event};
pub use slot::{spawn_sweeper, QuicSlot};
pub use stream::{QuicRead, QuicStream, QuicWrite};

/// What a server endpoint does with a new connection from an address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go has no QUIC listener before the handshake: silence.
    Ignore,
    /// The tunnel client's address (or a pending one): handshake.
    Accept,
    /// Another address: handshake (Go closes it once connected: `unauthorized IP`),
    /// within [`config::MAX_STRANGERS`].
    Stranger,
}

/// A server's rule for new connections by source address.
pub type AdmitFn = Box<dyn Fn(IpAddr) -> Admit>;

/// Server: connection and stream arrivals, in order.
pub enum Arrival {
    /// A connection finished its handshake.
    Connected(ConnectionHandle, SocketAddr),
    /// The peer opened a bidirectional stream.
    Stream(ConnectionHandle, StreamId),
}

/// One stream's wakers and state.
#[derive(Default)]
struct Slot {
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Forced teardown: every read and write fails.
    shut: bool,
    /// The pool entry's end, marked gone when the stream or its connection ends.
    end: Option<Rc<StreamEnd>>,
}

impl Slot {
    fn wake(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// The stream ended under us (reset or stopped by the peer, connection lost).
    fn gone(&mut self) {
        if let Some(e) = &self.end {
            e.set_gone();
        }
        self.wake();
    }
}

/// One connection of an endpoint.
struct Conn {
    q: quinn_proto::Connection,
    streams: HashMap<StreamId, Slot>,
    /// Tasks waiting for the handshake or for stream credit.
    waiters: Vec<Waker>,
    connected: bool,
    /// Why it ended (Go's wording), once it did.
    lost: Option<String>,
    /// Client: no new streams; closed once its last stream is released.
    retired: bool,
    /// Server: from another address than the tunnel client's.
    stranger: bool,
}

impl Conn {
    fn wake_all(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
        for s in self.streams.values_mut() {
            s.wake();
        }
    }
}

struct Inner {
    endpoint: Endpoint,
    conns: HashMap<ConnectionHandle, Conn>,
    /// Transmit buffer, reused.
    tx: Vec<u8>,
    /// Server: arrivals not yet taken by the accept task.
    arrivals: VecDeque<Arrival>,
    arrival_waker: Option<Waker>,
}

/// A QUIC endpoint on one worker's UDP socket.
pub struct Ep {
    inner: RefCell<Inner>,
    /// Raised when a connection's timer may have moved (the timer task looks again).
    timer: LocalFlag,
    /// The endpoint's socket for sending (a clone of the receiving one).
    out: std::net::UdpSocket,
    /// Server: what to do with a new connection from an address.
    admit: Option<AdmitFn>,
    /// The worker closed: the tasks end.
    closed: Cell<bool>,
    /// Datagrams dropped before quinn-proto (not QUIC), summed up in the log.
    dropped: crate::crowd::RefusalLog,
    /// WARN lines about failed handshakes, within a budget.
    warns: crate::crowd::WarnBudget,
    /// Raised when a stream or connection ended under us: the shard sweeps gone entries.
    gone: LocalFlag,
}

impl Ep {
    fn send(&self, bytes: &[u8], to: SocketAddr) {
        let r = socket2::SockRef::from(&self.out).send_to_with_flags(
            bytes,
            &to.into(),
            libc::MSG_DONTWAIT,
        );
        if let Err(e) = r {
            log::trace!("QUIC datagram to {to} not sent: {e}");
        }
    }

    /// Send, pass events and wake whoever the connection `ch`'s changes concern.
    fn drive(&self, inner: &mut Inner, ch: ConnectionHandle, now: Instant) {
        let Inner {
            endpoint,
            conns,
            tx,
            arrivals,
            arrival_waker,
        } = inner;
        let Some(c) = conns.get_mut(&ch) else { return };
        loop {
            loop {
                tx.clear();
                match c.q.poll_transmit(now, 1, tx) {
                    Some(t) => self.send(&tx[..t.size], t.destination),
                    None => break,
                }
            }
            let mut more = false;
            while let Some(ev) = c.q.poll_endpoint_events() {
                more = true;
                if let Some(back) = endpoint.handle_event(ch, ev) {
                    c.q.handle_event(back);
                }
            }
            while let Some(ev) = c.q.poll() {
                more = true;
                if let Event::ConnectionLost { reason } = &ev {
                    if !c.connected && c.q.side().is_server() {
                        let peer = c.q.remote_address();
                        self.warns.warn(|| {
                            format!(
                                "QUIC handshake from {peer} failed: {}",
                                describe(reason, None)
                            )
                        });
                    }
                }
                let before = arrivals.len();
                if on_event(c, ch, ev, arrivals) {
                    self.gone.raise();
                }
                if arrivals.len() != before {
                    if let Some(w) = arrival_waker.take() {
                        w.wake();
                    }
                }
            }
            if !more {
                break;
            }
        }
        if c.q.is_drained() {
            let Some(mut c) = conns.remove(&ch) else {
                return;
            };
            if c.lost.is_none() {
                c.lost = Some("connection closed".to_owned());
            }
            for s in c.streams.values_mut() {
                s.gone();
            }
            c.wake_all();
            self.gone.raise();
        } else if c.retired && c.streams.is_empty() && !c.q.is_closed() {
            c.q.close(now, VarInt::from_u32(0), bytes::Bytes::new());
            self.timer.raise();
            return self.drive(inner, ch, now);
        }
        self.timer.raise();
    }

    /// Run `f` on connection `ch` (if it lives), then drive it.
    fn with_conn<R>(&self, ch: ConnectionHandle, f: impl FnOnce(&mut Conn) -> R) -> Option<R> {
        let mut inner = self.inner.borrow_mut();
        let r = f(inner.conns.get_mut(&ch)?);
        self.drive(&mut inner, ch, Instant::now());
        Some(r)
    }

    /// Close connection `ch` with application error 0 and `reason` (the local end reads
    /// Go's `Application error 0x0 (local): <reason>`).
    pub fn close(&self, ch: ConnectionHandle, reason: &str) {
        let now = Instant::now();
        self.with_conn(ch, |c| {
            if c.lost.is_none() {
                c.lost = Some(format!("Application error 0x0 (local): {reason}"));
            }
            c.q.close(
                now,
                VarInt::from_u32(0),
                bytes::Bytes::copy_from_slice(reason.as_bytes()),
            );
            for s in c.streams.values_mut() {
                s.gone();
            }
            c.wake_all();
        });
        self.gone.raise();
    }

    /// Close every connection (`pool closed`, as Go's pool `Close`) and stop the tasks.
    pub fn close_all(&self) {
        let handles: Vec<ConnectionHandle> = self.inner.borrow().conns.keys().copied().collect();
        for ch in handles {
            self.close(ch, "pool closed");
        }
        self.closed.set(true);
        self.timer.raise();
    }

    /// Whether connection `ch` lives and takes new streams.
    pub fn usable(&self, ch: ConnectionHandle) -> bool {
        self.inner
            .borrow()
            .conns
            .get(&ch)
            .is_some_and(|c| c.lost.is_none() && !c.retired && !c.q.is_closed())
    }

    /// Client: no new streams on `ch`; it is closed once its last stream is released.
    pub fn retire(&self, ch: ConnectionHandle) {
        self.with_conn(ch, |c| c.retired = true);
    }

    /// The remote address of `ch`.
    pub fn remote(&self, ch: ConnectionHandle) -> Option<SocketAddr> {
        self.inner
            .borrow()
            .conns
            .get(&ch)
            .map(|c| c.q.remote_address())
    }

    /// Wait until `ch` finished its handshake.
    pub async fn connected(&self, ch: ConnectionHandle) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            let Some(c) = inner.conns.get_mut(&ch) else {
                return std::task::Poll::Ready(Err(lost_error("connection closed")));
            };
            if let Some(why) = &c.lost {
                return std::task::Poll::Ready(Err(lost_error(why)));
            }
            if c.connected {
                return std::task::Poll::Ready(Ok(()));
            }
            c.waiters.push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Client: open a bidirectional stream on `ch`, waiting for stream credit (the server's
    /// `max`: we never hold more streams than it allows).
    pub async fn open_bi(&self, ch: ConnectionHandle) -> io::Result<StreamId> {
        std::future::poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            let Some(c) = inner.conns.get_mut(&ch) else {
                return std::task::Poll::Ready(Err(lost_error("connection closed")));
            };
            if let Some(why) = &c.lost {
                return std::task::Poll::Ready(Err(lost_error(why)));
            }
            if c.connected {
                if let Some(id) = c.q.streams().open(Dir::Bi) {
                    c.streams.insert(id, Slot::default());
                    return std::task::Poll::Ready(Ok(id));
                }
            }
            c.waiters.push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Server: the next connection or stream arrival.
    pub async fn arrival(&self) -> Arrival {
        std::future::poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            match inner.arrivals.pop_front() {
                Some(a) => std::task::Poll::Ready(a),
                None => {
                    inner.arrival_waker = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }
        })
        .await
    }
}

fn lost_error(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_owned())
}
