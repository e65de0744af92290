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
pub(super) mod server;
mod stream;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

use quinn_proto::{
    ConnectionError, ConnectionHandle, Dir, Endpoint, Event, StreamEvent, StreamId, VarInt,
};

use crate::dataplane::end::StreamEnd;
use crate::wake::LocalFlag;

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

/// Go's words for a connection's end (quic-go's error strings).
fn describe(e: &ConnectionError, local_reason: Option<&str>) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => format!(
            "Application error {:#x} (remote): {}",
            c.error_code.into_inner(),
            String::from_utf8_lossy(&c.reason)
        ),
        ConnectionError::LocallyClosed => format!(
            "Application error 0x0 (local): {}",
            local_reason.unwrap_or("pool closed")
        ),
        ConnectionError::TimedOut => "timeout: no recent network activity".to_owned(),
        other => other.to_string(),
    }
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
            let mut c = conns.remove(&ch).expect("present");
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

/// One application event of connection `c`; `true` when a stream or the connection
/// ended under us.
fn on_event(
    c: &mut Conn,
    ch: ConnectionHandle,
    ev: Event,
    arrivals: &mut VecDeque<Arrival>,
) -> bool {
    match ev {
        Event::Connected => {
            c.connected = true;
            if c.q.side().is_server() {
                arrivals.push_back(Arrival::Connected(ch, c.q.remote_address()));
            }
            c.wake_all();
            false
        }
        Event::ConnectionLost { reason } => {
            if c.lost.is_none() {
                c.lost = Some(describe(&reason, None));
            }
            log::debug!(
                "QUIC connection {} lost: {}",
                c.q.remote_address(),
                c.lost.as_deref().unwrap_or("")
            );
            for s in c.streams.values_mut() {
                s.gone();
            }
            c.wake_all();
            true
        }
        Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
            while let Some(id) = c.q.streams().accept(Dir::Bi) {
                c.streams.insert(id, Slot::default());
                arrivals.push_back(Arrival::Stream(ch, id));
            }
            false
        }
        Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
            // Nothing uses them (and the limit is 0): drop whatever arrives.
            while let Some(id) = c.q.streams().accept(Dir::Uni) {
                let _ = c.q.recv_stream(id).stop(VarInt::from_u32(0));
            }
            false
        }
        Event::Stream(StreamEvent::Readable { id }) => {
            let reset = matches!(c.q.recv_stream(id).received_reset(), Ok(Some(_)));
            if let Some(s) = c.streams.get_mut(&id) {
                if reset {
                    s.gone();
                } else if let Some(w) = s.reader.take() {
                    w.wake();
                }
            }
            reset
        }
        Event::Stream(StreamEvent::Stopped { id, .. }) => {
            if let Some(s) = c.streams.get_mut(&id) {
                s.gone();
            }
            true
        }
        Event::Stream(StreamEvent::Writable { id } | StreamEvent::Finished { id }) => {
            if let Some(w) = c.streams.get_mut(&id).and_then(|s| s.writer.take()) {
                w.wake();
            }
            false
        }
        Event::Stream(StreamEvent::Available { .. }) => {
            for w in c.waiters.drain(..) {
                w.wake();
            }
            false
        }
        Event::HandshakeDataReady | Event::DatagramReceived | Event::DatagramsUnblocked => false,
    }
}

/// A tunnel worker's QUIC state: the server's endpoint or the client's connection.
#[derive(Default)]
pub struct QuicSlot {
    ep: RefCell<Option<Rc<Ep>>>,
    client: RefCell<Option<Rc<client::QuicClient>>>,
}

impl QuicSlot {
    /// Server: this worker's endpoint.
    pub fn set_server(&self, ep: Rc<Ep>) {
        *self.ep.borrow_mut() = Some(ep);
    }

    /// Client: this worker's QUIC client, started at its first use.
    pub fn client(
        &self,
        ctx: &Rc<crate::dataplane::host::WorkerCtx>,
        t: &Rc<super::TunnelCtx>,
        start: impl FnOnce() -> io::Result<(SocketAddr, String, crate::tls::ClientTls, u32)>,
    ) -> io::Result<Rc<client::QuicClient>> {
        if let Some(c) = &*self.client.borrow() {
            return Ok(Rc::clone(c));
        }
        let (server, name, tls, max) = start()?;
        let c = client::QuicClient::start(ctx, server, name, tls, max)?;
        spawn_sweeper(c.endpoint(), ctx, t);
        *self.ep.borrow_mut() = Some(Rc::clone(c.endpoint()));
        *self.client.borrow_mut() = Some(Rc::clone(&c));
        Ok(c)
    }

    /// The worker closes: every connection is closed (`pool closed`).
    pub fn close(&self) {
        if let Some(ep) = self.ep.borrow_mut().take() {
            ep.close_all();
        }
        self.client.borrow_mut().take();
    }
}

/// Sweep gone idle entries out of the worker's shard whenever `ep` saw a stream or a
/// connection end under it.
pub fn spawn_sweeper(
    ep: &Rc<Ep>,
    ctx: &Rc<crate::dataplane::host::WorkerCtx>,
    t: &Rc<super::TunnelCtx>,
) {
    let (ep, ctx2, t) = (Rc::clone(ep), Rc::clone(ctx), Rc::clone(t));
    ctx.spawn(async move {
        loop {
            monoio::select! {
                _ = ep.gone.wait() => {}
                _ = ctx2.closing.wait() => return,
            }
            ep.gone.lower();
            let n = t.shard.sweep_gone();
            if n > 0 {
                log::debug!("{n} idle QUIC pool entries gone (stream or connection ended)");
            }
        }
    });
}
