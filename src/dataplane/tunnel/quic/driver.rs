//! The two tasks of an endpoint: datagrams in, timers. Both end when the endpoint is
//! closed ([`Ep::close_all`]) or the worker cancels them.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use quinn_proto::{DatagramEvent, Endpoint, ServerConfig};

use super::{config, Admit, AdmitFn, Conn, Ep, Inner};
use crate::dataplane::host::WorkerCtx;
use crate::wake::LocalFlag;

/// Receive buffer: room for a few datagrams before it is renewed (quinn-proto keeps
/// stream data as slices of it, so the memory is reused once they are read).
const RECV_BUF: usize = 64 * 1024;
/// The largest datagram we read (QUIC's largest UDP payload).
const MAX_DATAGRAM: usize = 1500;
/// Socket buffers of an endpoint (the kernel caps them at its `*mem_max`).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

impl Ep {
    /// An endpoint on `socket` (bound already) on this worker, a server when `server` is
    /// given; its tasks run on `ctx`.
    pub fn start(
        socket: std::net::UdpSocket,
        server: Option<(Arc<ServerConfig>, AdmitFn)>,
        ctx: &Rc<WorkerCtx>,
    ) -> io::Result<Rc<Ep>> {
        let s = socket2::SockRef::from(&socket);
        let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = s.set_send_buffer_size(SOCKET_BUFFER);
        let out = socket.try_clone()?;
        let (server_config, admit) = match server {
            Some((c, a)) => (Some(c), Some(a)),
            None => (None, None),
        };
        let ep = Rc::new(Ep {
            inner: RefCell::new(Inner {
                endpoint: Endpoint::new(config::endpoint(), server_config, false, None),
                conns: HashMap::new(),
                tx: Vec::with_capacity(MAX_DATAGRAM),
                arrivals: VecDeque::new(),
                arrival_waker: None,
            }),
            timer: LocalFlag::default(),
            out,
            admit,
            closed: Cell::new(false),
            dropped: crate::crowd::RefusalLog::default(),
            warns: crate::crowd::WarnBudget::default(),
            gone: LocalFlag::default(),
        });
        let rx = ctx.adopt_udp(socket)?;
        ctx.spawn(receive(Rc::clone(&ep), rx, Rc::clone(ctx)));
        ctx.spawn(timers(Rc::clone(&ep), Rc::clone(ctx)));
        Ok(ep)
    }

    /// One datagram from `from`.
    fn on_datagram(&self, from: std::net::SocketAddr, data: BytesMut) {
        if !looks_like_quic(&data) {
            self.dropped.note(|n| {
                format!("QUIC tunnel port: {n} datagram(s) dropped, latest from {from}: not QUIC")
            });
            return;
        }
        let now = Instant::now();
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        inner.tx.clear();
        let event = inner
            .endpoint
            .handle(now, from, None, None, data, &mut inner.tx);
        match event {
            None => {}
            Some(DatagramEvent::Response(t)) => {
                let size = t.size;
                self.send(&inner.tx[..size], t.destination);
            }
            Some(DatagramEvent::ConnectionEvent(ch, ev)) => {
                if let Some(c) = inner.conns.get_mut(&ch) {
                    c.q.handle_event(ev);
                    self.drive(inner, ch, now);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let ip = incoming.remote_address().ip();
                let admit = self.admit.as_ref().map_or(Admit::Ignore, |a| a(ip));
                if admit == Admit::Ignore || self.closed.get() {
                    log::debug!("QUIC connection from {from} ignored: no tunnel handshake from it");
                    inner.endpoint.ignore(incoming);
                    return;
                }
                let strangers = inner.conns.values().filter(|c| c.stranger).count();
                let stranger = admit == Admit::Stranger;
                if inner.endpoint.open_connections() >= config::MAX_CONNECTIONS
                    || (stranger && strangers >= config::MAX_STRANGERS)
                {
                    log::debug!(
                        "QUIC connection from {from} refused: {} connections open",
                        config::MAX_CONNECTIONS
                    );
                    inner.tx.clear();
                    let t = inner.endpoint.refuse(incoming, &mut inner.tx);
                    self.send(&inner.tx[..t.size], t.destination);
                    return;
                }
                inner.tx.clear();
                match inner.endpoint.accept(incoming, now, &mut inner.tx, None) {
                    Ok((ch, q)) => {
                        inner.conns.insert(
                            ch,
                            Conn {
                                q,
                                streams: HashMap::new(),
                                waiters: Vec::new(),
                                connected: false,
                                lost: None,
                                retired: false,
                                stranger,
                            },
                        );
                        self.drive(inner, ch, now);
                    }
                    Err(e) => {
                        self.warns.warn(|| {
                            format!(
                                "QUIC handshake from {from} failed: {}",
                                super::describe(&e.cause, None)
                            )
                        });
                        if let Some(t) = e.response {
                            self.send(&inner.tx[..t.size], t.destination);
                        }
                    }
                }
            }
        }
    }

    /// Client: start a connection to `server` named `name` (an IP text: no SNI).
    pub fn connect(
        &self,
        cfg: quinn_proto::ClientConfig,
        server: std::net::SocketAddr,
        name: &str,
    ) -> io::Result<quinn_proto::ConnectionHandle> {
        let now = Instant::now();
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        let (ch, q) = inner
            .endpoint
            .connect(now, cfg, server, name)
            .map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("QUIC connect: {e}"))
            })?;
        inner.conns.insert(
            ch,
            Conn {
                q,
                streams: HashMap::new(),
                waiters: Vec::new(),
                connected: false,
                lost: None,
                retired: false,
                stranger: false,
            },
        );
        self.drive(inner, ch, now);
        Ok(ch)
    }

    /// Timers due by `now`, and the next deadline.
    fn on_timers(&self, now: Instant) -> Option<Instant> {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        let due: Vec<_> = inner
            .conns
            .iter_mut()
            .filter_map(|(ch, c)| c.q.poll_timeout().is_some_and(|t| t <= now).then_some(*ch))
            .collect();
        for ch in due {
            if let Some(c) = inner.conns.get_mut(&ch) {
                c.q.handle_timeout(now);
                self.drive(inner, ch, now);
            }
        }
        inner
            .conns
            .values_mut()
            .filter_map(|c| c.q.poll_timeout())
            .min()
    }
}

/// A QUIC v1 packet has its fixed bit set (we never let peers grease it:
/// `config::endpoint`) and a header plus a 16-byte tag at least: anything else is
/// dropped without reaching quinn-proto.
fn looks_like_quic(d: &[u8]) -> bool {
    d.len() >= 21 && d[0] & 0x40 != 0
}

/// Datagrams in, until the endpoint closes.
async fn receive(ep: Rc<Ep>, socket: monoio::net::udp::UdpSocket, ctx: Rc<WorkerCtx>) {
    let mut buf = BytesMut::with_capacity(RECV_BUF);
    loop {
        if ep.closed.get() {
            return;
        }
        if buf.capacity() < MAX_DATAGRAM {
            buf = BytesMut::with_capacity(RECV_BUF);
        }
        let spare = buf.split_off(0);
        let (res, mut got) = monoio::select! {
            r = socket.recv_from(spare) => r,
            _ = ctx.closing.wait() => return,
        };
        match res {
            Ok((n, from)) => {
                let data = got.split_to(n.min(got.len()));
                buf = got;
                ep.on_datagram(from, data);
            }
            Err(e) => {
                buf = got;
                buf.clear();
                log::debug!("QUIC endpoint receive: {e}");
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Connection timers.
async fn timers(ep: Rc<Ep>, ctx: Rc<WorkerCtx>) {
    loop {
        ep.timer.lower();
        let now = Instant::now();
        let next = ep.on_timers(now);
        if ep.closed.get() && ep.inner.borrow().conns.is_empty() {
            return;
        }
        let wait = next.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(now)
        });
        monoio::select! {
            _ = monoio::time::sleep(wait) => {}
            _ = ep.timer.wait() => {}
            _ = ctx.closing.wait() => return,
        }
    }
}
