//! One worker's shard of the tunnel pool: idle pool connections by id, handed out FIFO to
//! the accepting side or by id to the side a signal names. Single-threaded (`RefCell`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, ServerTlsStream};

use crate::bus::TunnelShared;
use crate::proto::PoolId;

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
}

/// An idle pool connection.
pub struct Pooled {
    /// The id the server gave it.
    pub id: PoolId,
    /// The stream.
    pub conn: PoolConn,
    /// Client, tls 1/2: the fingerprint of the certificate seen on this connection.
    pub seen_fp: Option<String>,
    /// The TCP socket under the stream (for forced teardown).
    pub fd: std::os::fd::RawFd,
}

/// A wake-up flag for one waiting task (the client's refill loop).
#[derive(Default)]
pub struct Notify {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    /// Wake the waiter (or let its next wait return at once).
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolve once notified; clears the flag.
    pub async fn notified(&self) {
        poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// The idle pool connections one worker owns.
pub struct Shard {
    index: usize,
    shared: Arc<TunnelShared>,
    order: RefCell<VecDeque<PoolId>>,
    conns: RefCell<HashMap<PoolId, Pooled>>,
    /// Raised whenever a connection leaves the shard (the client refills on demand).
    pub taken: Notify,
}

impl Shard {
    /// An empty shard for worker `index`.
    pub fn new(index: usize, shared: Arc<TunnelShared>) -> Shard {
        Shard {
            index,
            shared,
            order: RefCell::default(),
            conns: RefCell::default(),
            taken: Notify::default(),
        }
    }

    fn publish(&self) {
        let n = self.conns.borrow().len();
        if let Some(a) = self.shared.idle.get(self.index) {
            a.store(n, Ordering::Relaxed);
        }
    }

    /// Idle connections held now.
    pub fn len(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Add an idle connection; a duplicate id is refused (and the connection dropped).
    pub fn insert(&self, p: Pooled) -> bool {
        let id = p.id;
        {
            let mut conns = self.conns.borrow_mut();
            if conns.contains_key(&id) {
                return false;
            }
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
        while let Some(id) = order.pop_front() {
            if let Some(p) = conns.remove(&id) {
                drop((order, conns));
                self.publish();
                self.taken.notify();
                return Some(p);
            }
        }
        None
    }

    /// The connection with this id.
    pub fn take_id(&self, id: PoolId) -> Option<Pooled> {
        let p = self.conns.borrow_mut().remove(&id)?;
        self.order.borrow_mut().retain(|i| *i != id);
        self.publish();
        self.taken.notify();
        Some(p)
    }

    /// Ask this worker's refill loop (client side) to top the shard up now.
    pub fn wake_refill(&self) {
        self.taken.notify();
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
        self.order.borrow_mut().clear();
        self.publish();
        drop(drained);
        self.taken.notify();
    }
}
