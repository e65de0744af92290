//! A small blocking QUIC peer for tests: quinn-proto on a std UDP socket, pumped by
//! whoever holds it (behind a mutex so a [`FakeControl`](super::FakeControl) thread and
//! the test can share one connection). Plays Go's quic-go client or server from the
//! byte facts of POOL_TYPES.md §1 (ALPN `np-quic`, TLS 1.3).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{
    ClientConfig, ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig, Event, ReadError,
    ServerConfig, StreamEvent, StreamId, TransportConfig, VarInt,
};

/// One endpoint and its connections.
pub struct Peer {
    sock: UdpSocket,
    ep: Endpoint,
    conns: HashMap<ConnectionHandle, quinn_proto::Connection>,
    /// Why a connection ended (quinn-proto's words, plus the peer's reason).
    pub lost: HashMap<ConnectionHandle, String>,
    /// Server: connections accepted, in order.
    pub accepted: VecDeque<ConnectionHandle>,
    /// Bidirectional streams the peer opened.
    pub streams: VecDeque<(ConnectionHandle, StreamId)>,
    connected: std::collections::HashSet<ConnectionHandle>,
    tx: Vec<u8>,
}

/// A shared peer.
pub type Shared = Arc<Mutex<Peer>>;

fn transport() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(5)))
        .max_concurrent_bidi_streams(VarInt::from_u32(64));
    Arc::new(t)
}

/// Go's client TLS: no verification, TLS 1.3, the given ALPN.
pub fn client_config(alpn: &[u8]) -> ClientConfig {
    let tls = nodepass::tls::client_config_insecure().unwrap().config();
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let mut c = ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    c.transport_config(transport());
    c
}

impl Peer {
    fn new(server: Option<Arc<ServerConfig>>, bind: &str) -> Peer {
        let sock = UdpSocket::bind(bind).unwrap();
        Peer {
            sock,
            ep: Endpoint::new(Arc::new(EndpointConfig::default()), server, false, None),
            conns: HashMap::new(),
            lost: HashMap::new(),
            accepted: VecDeque::new(),
            streams: VecDeque::new(),
            connected: Default::default(),
            tx: Vec::new(),
        }
    }

    /// A client endpoint on `bind` (e.g. `127.0.0.1:0`).
    pub fn client(bind: &str) -> Peer {
        Peer::new(None, bind)
    }

    /// Go's server: a RAM certificate, ALPN `np-quic`, TLS 1.3, on `bind`.
    pub fn server(bind: &str) -> Peer {
        let tls = nodepass::tls::server_config_self_signed().unwrap().config;
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"np-quic".to_vec()];
        tls.max_early_data_size = 0;
        let mut cfg = ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
        cfg.transport_config(transport());
        Peer::new(Some(Arc::new(cfg)), bind)
    }

    /// The local address.
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Start a connection to `to` with `cfg`, naming `name` (an IP: no SNI).
    pub fn connect(&mut self, to: SocketAddr, cfg: ClientConfig, name: &str) -> ConnectionHandle {
        let (ch, c) = self.ep.connect(Instant::now(), cfg, to, name).unwrap();
        self.conns.insert(ch, c);
        self.flush();
        ch
    }

    fn flush(&mut self) {
        let now = Instant::now();
        let handles: Vec<_> = self.conns.keys().copied().collect();
        for ch in handles {
            let Some(c) = self.conns.get_mut(&ch) else {
                continue;
            };
            loop {
                self.tx.clear();
                match c.poll_transmit(now, 1, &mut self.tx) {
                    Some(t) => {
                        let _ = self.sock.send_to(&self.tx[..t.size], t.destination);
                    }
                    None => break,
                }
            }
            while let Some(ev) = c.poll_endpoint_events() {
                if let Some(back) = self.ep.handle_event(ch, ev) {
                    c.handle_event(back);
                }
            }
            while let Some(ev) = c.poll() {
                match ev {
                    Event::Connected => {
                        self.connected.insert(ch);
                    }
                    Event::ConnectionLost { reason } => {
                        self.lost.insert(ch, reason.to_string());
                    }
                    Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                        while let Some(id) = c.streams().accept(Dir::Bi) {
                            self.streams.push_back((ch, id));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Send what is due, wait up to `wait` for one datagram, handle it and the timers.
    pub fn pump(&mut self, wait: Duration) {
        self.flush();
        let now = Instant::now();
        let next = self
            .conns
            .values_mut()
            .filter_map(|c| c.poll_timeout())
            .min();
        let mut w = wait;
        if let Some(t) = next {
            w = w.min(t.saturating_duration_since(now));
        }
        self.sock
            .set_read_timeout(Some(w.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            let data = bytes::BytesMut::from(&buf[..n]);
            self.tx.clear();
            match self
                .ep
                .handle(Instant::now(), from, None, None, data, &mut self.tx)
            {
                Some(DatagramEvent::ConnectionEvent(ch, ev)) => {
                    if let Some(c) = self.conns.get_mut(&ch) {
                        c.handle_event(ev);
                    }
                }
                Some(DatagramEvent::NewConnection(inc)) => {
                    self.tx.clear();
                    if let Ok((ch, c)) = self.ep.accept(inc, Instant::now(), &mut self.tx, None) {
                        self.conns.insert(ch, c);
                        self.accepted.push_back(ch);
                    }
                }
                Some(DatagramEvent::Response(t)) => {
                    let _ = self.sock.send_to(&self.tx[..t.size], t.destination);
                }
                None => {}
            }
        }
        let now = Instant::now();
        for c in self.conns.values_mut() {
            if c.poll_timeout().is_some_and(|t| t <= now) {
                c.handle_timeout(now);
            }
        }
        self.flush();
    }

    /// Pump until `done` or `limit` passes.
    pub fn pump_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Peer) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done(self) {
                return true;
            }
            self.pump(Duration::from_millis(10));
        }
        done(self)
    }

    /// Whether `ch` finished its handshake.
    pub fn is_connected(&self, ch: ConnectionHandle) -> bool {
        self.connected.contains(&ch)
    }

    /// The remote address of `ch`.
    pub fn remote(&self, ch: ConnectionHandle) -> SocketAddr {
        self.conns[&ch].remote_address()
    }

    /// Open a bidirectional stream.
    pub fn open_bi(&mut self, ch: ConnectionHandle) -> Option<StreamId> {
        self.conns.get_mut(&ch)?.streams().open(Dir::Bi)
    }

    /// Write what the stream takes now.
    pub fn write(&mut self, ch: ConnectionHandle, id: StreamId, data: &[u8]) -> io::Result<usize> {
        let c = self.conns.get_mut(&ch).ok_or(io::ErrorKind::NotConnected)?;
        let r = match c.send_stream(id).write(data) {
            Ok(n) => Ok(n),
            Err(quinn_proto::WriteError::Blocked) => Ok(0),
            Err(e) => Err(io::Error::other(e.to_string())),
        };
        self.flush();
        r
    }

    /// FIN.
    pub fn finish(&mut self, ch: ConnectionHandle, id: StreamId) {
        if let Some(c) = self.conns.get_mut(&ch) {
            let _ = c.send_stream(id).finish();
        }
        self.flush();
    }

    /// `Some(bytes)`: data (empty = FIN); `None`: nothing yet; `Err`: reset.
    pub fn read(&mut self, ch: ConnectionHandle, id: StreamId) -> io::Result<Option<Vec<u8>>> {
        let c = self.conns.get_mut(&ch).ok_or(io::ErrorKind::NotConnected)?;
        let mut rs = c.recv_stream(id);
        let mut chunks = match rs.read(true) {
            Ok(c) => c,
            Err(_) => return Ok(Some(Vec::new())),
        };
        let r = match chunks.next(usize::MAX) {
            Ok(Some(chunk)) => Ok(Some(chunk.bytes.to_vec())),
            Ok(None) => Ok(Some(Vec::new())),
            Err(ReadError::Blocked) => Ok(None),
            Err(ReadError::Reset(code)) => Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("reset {code}"),
            )),
        };
        let _ = chunks.finalize();
        self.flush();
        r
    }

    /// Reset our sending side and stop the peer's (quic-go's `CancelWrite`/`CancelRead`).
    pub fn reset(&mut self, ch: ConnectionHandle, id: StreamId) {
        if let Some(c) = self.conns.get_mut(&ch) {
            let _ = c.send_stream(id).reset(VarInt::from_u32(0));
            let _ = c.recv_stream(id).stop(VarInt::from_u32(0));
        }
        self.flush();
    }

    /// Close `ch` with application error `code` and `reason`.
    pub fn close(&mut self, ch: ConnectionHandle, code: u32, reason: &str) {
        if let Some(c) = self.conns.get_mut(&ch) {
            c.close(
                Instant::now(),
                VarInt::from_u32(code),
                reason.as_bytes().to_vec().into(),
            );
        }
        self.flush();
    }
}

/// One stream of a shared peer as a blocking byte stream (reads time out after
/// `read_timeout` with `WouldBlock`, as [`FakeControl`](super::FakeControl) wants).
pub struct Link {
    pub peer: Shared,
    pub ch: ConnectionHandle,
    pub id: StreamId,
    pub read_timeout: Duration,
    pending: Vec<u8>,
}

impl Link {
    pub fn new(peer: &Shared, ch: ConnectionHandle, id: StreamId, read_timeout: Duration) -> Link {
        Link {
            peer: Arc::clone(peer),
            ch,
            id,
            read_timeout,
            pending: Vec::new(),
        }
    }

    /// FIN our side.
    pub fn finish(&mut self) {
        self.peer.lock().unwrap().finish(self.ch, self.id);
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = Instant::now() + self.read_timeout;
        loop {
            if !self.pending.is_empty() {
                let n = buf.len().min(self.pending.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                return Ok(n);
            }
            let mut p = self.peer.lock().unwrap();
            match p.read(self.ch, self.id)? {
                Some(bytes) if bytes.is_empty() => return Ok(0),
                Some(bytes) => self.pending = bytes,
                None => {
                    if let Some(why) = p.lost.get(&self.ch) {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            why.clone(),
                        ));
                    }
                    if Instant::now() >= deadline {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    p.pump(Duration::from_millis(5));
                }
            }
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut p = self.peer.lock().unwrap();
            let n = p.write(self.ch, self.id, buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if Instant::now() >= deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
            p.pump(Duration::from_millis(5));
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.peer.lock().unwrap().pump(Duration::ZERO);
        Ok(())
    }
}

/// Keep a shared peer's connections alive (acks, keepalives) on a thread until dropped.
pub struct Pumper {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Pumper {
    pub fn start(peer: &Shared) -> Pumper {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, p) = (Arc::clone(&stop), Arc::clone(peer));
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                p.lock().unwrap().pump(Duration::from_millis(2));
                std::thread::yield_now();
            }
        });
        Pumper { stop }
    }
}

impl Drop for Pumper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
