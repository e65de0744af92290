//! One worker's shard of the tunnel pool: idle pool connections by id, handed out FIFO to
//! the accepting side or by id to the side a signal names. Single-threaded (`RefCell`).

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, ServerTlsStream};

use crate::bus::TunnelShared;
use crate::dataplane::end::End;
use crate::proto::PoolId;
use crate::sys::Epoll;
use crate::wake::LocalFlag;

/// How often a taker looks again while the connection it wants has not arrived.
pub const TAKE_POLL: Duration = Duration::from_millis(5);

/// A pool connection's transport.
pub enum PoolConn {
    /// tls=0: the TCP stream itself (spliced).
    Plain(TcpStream),
    /// tls=1/2, server end (copied through user space).
    ServerTls(Box<ServerTlsStream<TcpStream>>),
    /// tls=1/2, client end.
    ClientTls(Box<ClientTlsStream<TcpStream>>),
    /// Pool type 2: WebSocket frames over one of the above (`ws.rs`).
    Ws(Box<super::ws::WsConn>),
    /// Pool type 1: a QUIC stream (`quic/`).
    Quic(Box<super::quic::QuicStream>),
    /// Pool type 3: one HTTP/2 stream (`http2/`).
    H2(Box<super::http2::H2Conn>),
}

/// An idle pool connection.
pub struct Pooled {
    /// The id the server gave it.
    pub id: PoolId,
    /// The stream.
    pub conn: PoolConn,
    /// Client, tls 1/2: the fingerprint of the certificate seen on this connection.
    pub seen_fp: Option<String>,
    /// When it became idle (set by [`Shard::insert`]).
    pub since: Instant,
    /// The socket under the connection, or its stream on a shared connection (for forced
    /// teardown, the idle watch, a peek, log lines).
    pub end: End,
}

/// Which idle entry a caller means: the one on this descriptor (all the idle watch knows)
/// or this end. Checking it means an event or a signal can never remove a different entry
/// that took the same id or descriptor.
#[derive(Clone)]
pub enum Which {
    /// The entry on this socket.
    Fd(std::os::fd::RawFd),
    /// The entry with this end.
    End(End),
}

impl Which {
    fn is(&self, p: &Pooled) -> bool {
        match self {
            Which::Fd(fd) => p.end.socket().map(|s| s.raw()) == Some(*fd),
            Which::End(end) => p.end.same(end),
        }
    }
}

/// The idle pool connections one worker owns.
pub struct Shard {
    index: usize,
    shared: Arc<TunnelShared>,
    order: RefCell<VecDeque<PoolId>>,
    conns: RefCell<HashMap<PoolId, Pooled>>,
    /// Raised whenever a connection leaves the shard (the client refills on demand).
    pub taken: LocalFlag,
    /// Watches every idle connection for a peer that closes it (or, where idle data is
    /// hostile, sends bytes) so it leaves the shard at once (`watch.rs`).
    watch: OnceCell<(Epoll, u32)>,
    /// Retired connections (see [`Shard::retire`]), oldest first.
    retired: RefCell<VecDeque<(Instant, PoolId, Which)>>,
    /// A server where users arrive: a connection with bytes waiting is not the client's
    /// (see `watch.rs`), so each one is looked at once more when a user takes it.
    probe_on_take: Cell<bool>,
}

/// The epoll token of an idle connection: its id and its descriptor (the watcher checks
/// both, so an event can never evict a different connection).
pub fn watch_token(id: PoolId, fd: std::os::fd::RawFd) -> u64 {
    (u64::from(u32::from_be_bytes(id.0)) << 32) | u64::from(fd as u32)
}

impl Shard {
    /// An empty shard for worker `index`.
    pub fn new(index: usize, shared: Arc<TunnelShared>) -> Shard {
        Shard {
            index,
            shared,
            order: RefCell::default(),
            conns: RefCell::default(),
            taken: LocalFlag::default(),
            watch: OnceCell::new(),
            probe_on_take: Cell::new(false),
            retired: RefCell::default(),
        }
    }

    /// Look at every connection a user takes for bytes or EOF waiting on it (one
    /// non-blocking `recv(MSG_PEEK)`): the watcher may not have run since they arrived.
    pub fn probe_on_take(&self) {
        self.probe_on_take.set(true);
    }

    /// Whether a connection about to be handed to a user is unfit: the peer sent bytes
    /// (not a tunnel client) or closed it.
    fn unfit(&self, p: &Pooled) -> bool {
        if p.end.is_gone() {
            return true;
        }
        if !self.probe_on_take.get() {
            return false;
        }
        let Some(fd) = p.end.socket() else {
            return false;
        };
        let mut byte = [0u8; 1];
        match fd.peek_now(&mut byte) {
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            Ok(0) => true,
            Ok(_) => {
                super::strangers::stranger_seen();
                true
            }
        }
    }

    /// Watch idle connections from now on with `epoll` for `events`; connections already
    /// held are added too.
    pub fn set_watch(&self, epoll: Epoll, events: u32) {
        for p in self.conns.borrow().values() {
            if let Some(fd) = p.end.socket() {
                let _ = epoll.add(fd.raw(), events, watch_token(p.id, fd.raw()));
            }
        }
        let _ = self.watch.set((epoll, events));
    }

    /// Watch the idle connection `id` on `fd` only for hang-ups and errors from now on.
    pub fn watch_quiet(&self, id: PoolId, fd: std::os::fd::RawFd) {
        if let Some((epoll, _)) = self.watch.get() {
            let _ = epoll.modify(fd, 0, watch_token(id, fd));
        }
    }

    /// The watch events ready now (see `watch.rs`).
    pub fn ready_now(&self, out: &mut Vec<(u64, u32)>) -> std::io::Result<()> {
        match self.watch.get() {
            Some((epoll, _)) => epoll.ready_now(out),
            None => Ok(()),
        }
    }

    fn watch_add(&self, p: &Pooled) {
        let (Some((epoll, events)), Some(fd)) = (self.watch.get(), p.end.socket()) else {
            return;
        };
        if let Err(e) = epoll.add(fd.raw(), *events, watch_token(p.id, fd.raw())) {
            log::debug!("pool connection {}: cannot watch it while idle: {e}", p.id);
        }
    }

    fn watch_remove(&self, p: &Pooled) {
        if let (Some((epoll, _)), Some(fd)) = (self.watch.get(), p.end.socket()) {
            let _ = epoll.delete(fd.raw());
        }
    }

    /// Remove the idle connection `id` if it is `which` (the watcher saw it die); it is
    /// closed when the returned value drops.
    pub fn evict(&self, id: PoolId, which: &Which) -> Option<Pooled> {
        let mut conns = self.conns.borrow_mut();
        if !conns.get(&id).is_some_and(|p| which.is(p)) {
            return None;
        }
        let p = conns.remove(&id)?;
        drop(conns);
        self.order.borrow_mut().retain(|i| *i != id);
        self.watch_remove(&p);
        self.shared.owners.forget(id);
        self.publish();
        self.taken.raise();
        Some(p)
    }

    fn publish(&self) {
        let n = self.order.borrow().len();
        if let Some(a) = self.shared.idle.get(self.index) {
            a.store(n, Ordering::Relaxed);
        }
    }

    /// Idle connections held now that a user may take (retired ones not counted).
    pub fn len(&self) -> usize {
        self.order.borrow().len()
    }

    /// The peer sent FIN on idle connection `id`: no user may take it any more, but a
    /// signal that names it still finds it until [`Shard::evict`] (its peer may have
    /// started a session on it, or sent `verify` for it and closed it, as Go does).
    /// It leaves the shard at `until` unless taken by id first ([`Shard::expire_retired`]).
    pub fn retire(&self, id: PoolId, which: Which, until: Instant) -> bool {
        let fd = {
            let conns = self.conns.borrow();
            match conns.get(&id) {
                Some(p) if which.is(p) => p.end.socket(),
                _ => return false,
            }
        };
        self.order.borrow_mut().retain(|i| *i != id);
        if let Some(fd) = fd {
            self.watch_quiet(id, fd.raw());
        }
        self.retired.borrow_mut().push_back((until, id, which));
        self.publish();
        self.taken.raise();
        true
    }

    /// Close the retired connections whose time is up; returns how many.
    pub fn expire_retired(&self, now: Instant) -> usize {
        let mut closed = 0;
        loop {
            let due = {
                let mut retired = self.retired.borrow_mut();
                match retired.front() {
                    Some((until, _, _)) if *until <= now => {
                        retired.pop_front().map(|(_, id, which)| (id, which))
                    }
                    _ => None,
                }
            };
            let Some((id, which)) = due else { break };
            if self.evict(id, &which).is_some() {
                closed += 1;
            }
        }
        closed
    }

    /// Add an idle connection; a duplicate id is refused (and the connection dropped).
    pub fn insert(&self, mut p: Pooled) -> bool {
        p.since = Instant::now();
        let id = p.id;
        {
            let mut conns = self.conns.borrow_mut();
            if conns.contains_key(&id) {
                return false;
            }
            self.watch_add(&p);
            conns.insert(id, p);
        }
        self.order.borrow_mut().push_back(id);
        self.publish();
        true
    }

    /// The oldest idle connection.
    pub fn take_any(&self) -> Option<Pooled> {
        let mut order = self.order.borrow_mut();
        let mut conns = self.conns.borrow_mut();
        let careful = self.probe_on_take.get() && super::strangers::careful();
        let young = if careful {
            super::strangers::settle()
        } else {
            Duration::ZERO
        };
        while let Some(&id) = order.front() {
            if careful && conns.get(&id).is_some_and(|p| p.since.elapsed() < young) {
                // The oldest is too young, so are all the others: the user waits.
                break;
            }
            order.pop_front();
            if let Some(p) = conns.remove(&id) {
                self.watch_remove(&p);
                // Used here (or closed): no signal will route to it.
                self.shared.owners.forget(id);
                if self.unfit(&p) {
                    log::debug!("idle pool connection {id} unfit at take (bytes or EOF): closed");
                    continue;
                }
                drop((order, conns));
                self.publish();
                self.taken.raise();
                return Some(p);
            }
        }
        drop((order, conns));
        self.publish();
        None
    }

    /// The newest idle connection's id, end and seen fingerprint, left in place (for
    /// `verify` on the signalled end, which then retires it: see `link::send_verify`).
    pub fn newest(&self) -> Option<(PoolId, End, Option<String>)> {
        let id = *self.order.borrow().back()?;
        let conns = self.conns.borrow();
        let p = conns.get(&id)?;
        Some((p.id, p.end.clone(), p.seen_fp.clone()))
    }

    /// Remove the idle entries whose stream its transport saw end (a peer's reset, a lost
    /// connection); returns how many. Transports call it when that happens, so the pool
    /// count and the client's refill see the loss at once.
    #[allow(dead_code)] // Called by the stream transports (pool types 1 and 3).
    pub fn sweep_gone(&self) -> usize {
        let gone: Vec<(PoolId, End)> = self
            .conns
            .borrow()
            .values()
            .filter(|p| p.end.is_gone())
            .map(|p| (p.id, p.end.clone()))
            .collect();
        gone.into_iter()
            .filter(|(id, end)| self.evict(*id, &Which::End(end.clone())).is_some())
            .count()
    }

    /// The connection with this id.
    pub fn take_id(&self, id: PoolId) -> Option<Pooled> {
        let p = self.conns.borrow_mut().remove(&id)?;
        self.order.borrow_mut().retain(|i| *i != id);
        self.watch_remove(&p);
        self.publish();
        self.taken.raise();
        Some(p)
    }

    /// Ask this worker's refill loop (client side) to top the shard up now.
    pub fn wake_refill(&self) {
        self.taken.raise();
    }

    /// The connection `id`, waiting up to `limit` for it to arrive (Go polls the same way).
    pub async fn wait_id(&self, id: PoolId, limit: Duration) -> Option<Pooled> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(p) = self.take_id(id) {
                return Some(p);
            }
            if Instant::now() >= deadline {
                return None;
            }
            monoio::time::sleep(TAKE_POLL).await;
        }
    }

    /// Close every idle connection (`flush`, shutdown).
    pub fn flush(&self) {
        let drained: Vec<Pooled> = self.conns.borrow_mut().drain().map(|(_, p)| p).collect();
        for p in &drained {
            self.watch_remove(p);
            self.shared.owners.forget(p.id);
        }
        self.order.borrow_mut().clear();
        self.retired.borrow_mut().clear();
        self.publish();
        drop(drained);
        self.taken.raise();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::end::StreamEnd;
    use std::rc::Rc;

    /// An idle entry on a stream end (the connection under it is a plain TCP pair).
    fn entry(id: u8, end: &Rc<StreamEnd>) -> Pooled {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let std_stream = std::net::TcpStream::connect(addr).expect("connect");
        Pooled {
            id: PoolId([0, 0, 0, id]),
            conn: PoolConn::Plain(TcpStream::from_std(std_stream).expect("adopt")),
            seen_fp: None,
            since: Instant::now(),
            end: End::Stream(Rc::clone(end)),
        }
    }

    #[test]
    fn gone_streams_leave_the_shard_and_are_never_handed_out() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (shared, _events) = TunnelShared::new(1);
            let shard = Shard::new(0, shared);
            let ends: Vec<Rc<StreamEnd>> = (0..3)
                .map(|_| StreamEnd::new("127.0.0.1:1".into()))
                .collect();
            for (i, end) in ends.iter().enumerate() {
                assert!(shard.insert(entry(i as u8 + 1, end)));
            }
            ends[0].set_gone();
            ends[2].set_gone();
            assert_eq!(shard.sweep_gone(), 2);
            assert_eq!(shard.len(), 1);
            assert_eq!(shard.take_any().map(|p| p.id), Some(PoolId([0, 0, 0, 2])));
            // One gone before a sweep is skipped at take, not handed to a user.
            let late = StreamEnd::new(String::new());
            assert!(shard.insert(entry(9, &late)));
            late.set_gone();
            assert!(shard.take_any().is_none());
        });
    }

    #[test]
    fn a_retired_stream_is_evicted_only_as_that_stream() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (shared, _events) = TunnelShared::new(1);
            let shard = Shard::new(0, shared);
            let end = StreamEnd::new(String::new());
            assert!(shard.insert(entry(1, &end)));
            let other = End::Stream(StreamEnd::new(String::new()));
            let id = PoolId([0, 0, 0, 1]);
            assert!(!shard.retire(id, Which::End(other), Instant::now()));
            assert!(shard.retire(id, Which::End(End::Stream(Rc::clone(&end))), Instant::now()));
            assert_eq!(shard.len(), 0);
            assert_eq!(shard.expire_retired(Instant::now()), 1);
            assert!(shard.take_id(id).is_none());
        });
    }
}
