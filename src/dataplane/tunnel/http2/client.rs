//! The client's HTTP/2 pool connections (type 3): each worker dials its own TLS
//! connection (ALPN `h2`) and opens one `POST /stream` request per pool entry on it.
//! A ping every 5 s, and before a refill round's streams when the last answer is older
//! than [`FRESH`] (as Go), finds a dead connection; the next entry then dials a new one.
//!
//! Go's server never frees a stream's handler, so one of its connections gives at most
//! `max` entries (POOL_TYPES.md §3): against a legacy (Go) server a connection is retired
//! once `max` streams were opened on it. Our server frees finished streams (and gives
//! our client room for the pool and its sessions): there a connection is set aside only
//! while as many of its streams are live as the server's MAX_CONCURRENT_STREAMS allows.
//! A connection set aside lives on until its last entry ends.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{Method, Request, StatusCode};
use monoio::io::Splitable;

use super::compat::Compat;
use super::{H2Conn, Role};
use crate::dataplane::dial::{dial, SourcePolicy};
use crate::dataplane::end::StreamEnd;
use crate::dataplane::host::WorkerCtx;
use crate::dataplane::tunnel::{TunnelCtx, TunnelSide};
use crate::net::SocketExt;
use crate::runtime;
use crate::tls::ClientTls;
use crate::wake::LocalFlag;

/// Go's x/net client settings (POOL_TYPES.md §3).
const STREAM_WINDOW: u32 = 4 << 20;
const CONN_WINDOW: u32 = 1 << 30;
const MAX_FRAME: u32 = 1 << 20;
/// How often a connection is pinged, and how long a ping may take.
const PING_EVERY: Duration = Duration::from_secs(5);
/// A connection whose last ping was answered this recently takes streams unchecked.
const FRESH: Duration = Duration::from_secs(1);
/// How long the client waits for a stream's response headers (Go: 1 min).
const RESPONSE_WAIT: Duration = Duration::from_secs(60);

/// How the client dials its HTTP/2 pool connections.
#[derive(Clone, Copy)]
pub struct Dial {
    /// tls=2: verify the certificate for the server name (which is also the SNI);
    /// otherwise no verification and no SNI for the dialled IP (as Go).
    pub verifying: bool,
}

/// One worker's HTTP/2 pool connections.
#[derive(Default)]
pub struct ClientConns {
    current: RefCell<Option<Rc<ClientConn>>>,
    dialing: Cell<bool>,
    dialed: LocalFlag,
}

/// One HTTP/2 connection to the server.
pub struct ClientConn {
    send: SendRequest<Bytes>,
    /// The driver or a ping saw the connection fail.
    dead: Cell<bool>,
    /// The connection's pinger (out while a ping is in flight), and its last answer.
    pings: RefCell<Option<h2::PingPong>>,
    answered: Cell<std::time::Instant>,
    /// Streams opened on it, and those still alive.
    opened: Cell<usize>,
    live: Cell<usize>,
    /// The server's address (log lines), and the certificate the TLS handshake saw.
    peer: String,
    seen_fp: Option<String>,
}

/// A live stream's share of its connection (keeps a retired connection alive).
pub struct Live(Rc<ClientConn>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.set(self.0.live.get().saturating_sub(1));
    }
}

/// Whether `c` may take another stream.
fn usable(c: &ClientConn, t: &TunnelCtx) -> bool {
    let TunnelSide::Client { max, .. } = &t.spec.side else {
        return false;
    };
    // A legacy run is a Go server: its handlers never end, so a connection gives `max`
    // entries. Ours counts live streams against the limit its SETTINGS gave.
    let (used, limit) = match t.spec.shared.auth.get() {
        None => (c.opened.get(), *max as usize),
        Some(_) => (c.live.get(), c.send.current_max_send_streams()),
    };
    !c.dead.get() && used < limit.max(1)
}

/// The worker's current connection, dialling a new one if there is none fit for another
/// stream (one dial at a time per worker).
pub async fn ensure_conn(ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) -> io::Result<Rc<ClientConn>> {
    let conns = &t.h2;
    loop {
        let current = conns.current.borrow().as_ref().map(Rc::clone);
        if let Some(c) = current {
            if usable(&c, t) && (c.answered.get().elapsed() < FRESH || ping(&c).await) {
                return Ok(c);
            }
        }
        if conns.dialing.get() {
            conns.dialed.wait().await;
            continue;
        }
        conns.dialing.set(true);
        conns.dialed.lower();
        let dialled = connect(ctx, t).await;
        conns.dialing.set(false);
        conns.dialed.raise();
        let c = dialled?;
        *conns.current.borrow_mut() = Some(Rc::clone(&c));
        return Ok(c);
    }
}

async fn connect(ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) -> io::Result<Rc<ClientConn>> {
    let TunnelSide::Client {
        server,
        tls,
        sni,
        http2,
        ..
    } = &t.spec.side
    else {
        return Err(io::Error::other("not a client"));
    };
    let (Some(tls), Some(how)) = (tls, http2) else {
        return Err(io::Error::other("HTTP/2 pool without TLS"));
    };
    let stream = dial(*server, &SourcePolicy::new(None), ctx.spec.tcp_dial_timeout).await?;
    runtime::fit_dialled(ctx.driver, &stream);
    let _ = stream.tune_stream(ctx.spec.keepalive);
    let wait = t.spec.handshake_timeout;
    let handshake = tls_connect(tls, *server, sni, *how, stream);
    let (tls_stream, seen_fp) = monoio::time::timeout(wait, handshake).await.map_err(|_| {
        let e = "TLS handshake timed out";
        crate::tls::warn_handshake_failure(&format!("pool connection to {server}"), e);
        io::Error::new(io::ErrorKind::TimedOut, e)
    })??;
    if tls_stream.alpn_protocol().as_deref() != Some(b"h2".as_slice()) {
        let e = format!("pool connection to {server}: the server did not agree to ALPN h2");
        log::warn!("{e}");
        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
    }
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME);
    let (r, w) = tls_stream.into_split();
    let handshake = builder.handshake::<_, Bytes>(Compat::new(r, w));
    let (send, mut conn) = monoio::time::timeout(wait, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "HTTP/2 handshake timed out"))?
        .map_err(|e| io::Error::other(format!("HTTP/2 handshake with {server} failed: {e}")))?;
    let c = Rc::new(ClientConn {
        send,
        dead: Cell::new(false),
        pings: RefCell::new(conn.ping_pong()),
        answered: Cell::new(std::time::Instant::now()),
        opened: Cell::new(0),
        live: Cell::new(0),
        peer: server.to_string(),
        seen_fp,
    });
    log::debug!("HTTP/2 pool connection to {server} up");
    let weak = Rc::downgrade(&c);
    let t2 = Rc::clone(t);
    ctx.spawn(async move {
        let why = match conn.await {
            Ok(()) => "closed".to_owned(),
            Err(e) => e.to_string(),
        };
        if let Some(c) = weak.upgrade() {
            c.dead.set(true);
            log::debug!("HTTP/2 pool connection to {} ended: {why}", c.peer);
        }
        t2.shard.sweep_gone();
    });
    ctx.spawn(ping_loop(Rc::downgrade(&c), Rc::clone(ctx)));
    Ok(c)
}

/// Ping `c` (unless a ping is in flight already): whether it answered within
/// [`PING_EVERY`]. A connection that did not is dead.
async fn ping(c: &ClientConn) -> bool {
    let Some(mut pings) = c.pings.borrow_mut().take() else {
        return !c.dead.get();
    };
    let answered = matches!(
        monoio::time::timeout(PING_EVERY, pings.ping(h2::Ping::opaque())).await,
        Ok(Ok(_))
    );
    *c.pings.borrow_mut() = Some(pings);
    if answered {
        c.answered.set(std::time::Instant::now());
    } else if !c.dead.replace(true) {
        log::debug!("HTTP/2 pool connection to {}: ping failed", c.peer);
    }
    answered
}

/// Ping every [`PING_EVERY`] until the connection is dead or dropped.
async fn ping_loop(conn: Weak<ClientConn>, ctx: Rc<WorkerCtx>) {
    loop {
        monoio::select! {
            _ = monoio::time::sleep(PING_EVERY) => {}
            _ = ctx.stopping.wait() => return,
        }
        let Some(c) = conn.upgrade() else { return };
        if c.dead.get() || !ping(&c).await {
            return;
        }
    }
}

async fn tls_connect(
    tls: &ClientTls,
    server: SocketAddr,
    sni: &str,
    how: Dial,
    stream: monoio::net::TcpStream,
) -> io::Result<(
    monoio_rustls::ClientTlsStream<monoio::net::TcpStream>,
    Option<String>,
)> {
    let mut config = (*tls.config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = if how.verifying {
        rustls::pki_types::ServerName::try_from(sni.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("sni {sni}: {e}")))?
    } else {
        rustls::pki_types::ServerName::IpAddress(server.ip().into())
    };
    match crate::tls::connect_seeing(std::sync::Arc::new(config), name, stream).await {
        Ok((s, seen)) => Ok((s, seen.fingerprint)),
        Err(e) => {
            let cause = crate::tls::describe_io(&e, crate::tls::Role::Client);
            let context = format!("pool connection to {server}: TLS handshake failed");
            crate::tls::warn_handshake_failure(&context, &cause);
            Err(io::Error::other(format!("{context}: {cause}")))
        }
    }
}

/// Open one entry on `c`: `POST https://<sni>/stream`, the byte 0x00, then the response
/// headers, which must say 200 (Go's client takes any body as the id: §3). Returns the
/// entry (its id not read yet) and the certificate fingerprint of its connection.
pub async fn open_stream(
    c: &Rc<ClientConn>,
    t: &Rc<TunnelCtx>,
) -> io::Result<(H2Conn, Option<String>)> {
    let TunnelSide::Client { sni, .. } = &t.spec.side else {
        return Err(io::Error::other("not a client"));
    };
    let fail = |e: h2::Error| {
        c.dead.set(c.dead.get() || e.is_go_away() || e.is_io());
        io::Error::other(format!("HTTP/2 stream to {}: {e}", c.peer))
    };
    // The server's MAX_CONCURRENT_STREAMS can hold a request back: not past Go's minute.
    let mut send = monoio::time::timeout(RESPONSE_WAIT, c.send.clone().ready())
        .await
        .map_err(|_| {
            c.dead.set(true);
            io::Error::new(
                io::ErrorKind::TimedOut,
                "no free HTTP/2 stream within 1 min",
            )
        })?
        .map_err(fail)?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("https://{sni}/stream"))
        .header("user-agent", "Go-http-client/2.0")
        .body(())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let (response, mut body) = send.send_request(req, false).map_err(fail)?;
    c.opened.set(c.opened.get() + 1);
    c.live.set(c.live.get() + 1);
    let live = Live(Rc::clone(c));
    body.send_data(Bytes::from_static(&[0]), false)
        .map_err(fail)?;
    let resp = match monoio::time::timeout(RESPONSE_WAIT, response).await {
        Ok(r) => r.map_err(fail)?,
        Err(_) => {
            body.send_reset(h2::Reason::CANCEL);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no response to a pool stream",
            ));
        }
    };
    let status = resp.status();
    let mut recv = resp.into_body();
    if status != StatusCode::OK {
        let said = monoio::time::timeout(Duration::from_secs(1), recv.data())
            .await
            .ok()
            .flatten()
            .and_then(Result::ok)
            .map(|b| {
                String::from_utf8_lossy(&b[..b.len().min(64)])
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default();
        body.send_reset(h2::Reason::CANCEL);
        let e = format!(
            "pool stream to {} refused: status {} ({said}), not taken as an id",
            c.peer,
            status.as_u16()
        );
        log::warn!("{e}");
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, e));
    }
    let end = StreamEnd::new(c.peer.clone());
    let conn = H2Conn::new(body, recv, end, Role::Client, Some(live), t);
    Ok((conn, c.seen_fp.clone()))
}
