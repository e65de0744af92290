//! The server's HTTP/2 pool connection (type 3): TLS with ALPN `h2`, then one HTTP/2
//! server connection whose `POST /stream` requests become pool entries of this worker.
//! The connection's driver and its streams live on the worker that accepted the TCP
//! connection. Each TLS handshake has its own deadline, so a silent peer costs only itself
//! (Go serialises them with none: POOL_TYPES.md §5.6). A finished entry frees its stream,
//! so one connection serves any number of entries over its life (Go's handlers never
//! return: §3).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Method, Request, Response, StatusCode};
use monoio::io::Splitable;
use monoio::net::TcpStream;

use super::compat::Compat;
use super::{H2Conn, Role};
use crate::crowd::Ticket;
use crate::dataplane::end::{End, StreamEnd};
use crate::dataplane::host::WorkerCtx;
use crate::dataplane::tunnel::pool::PoolConn;
use crate::dataplane::tunnel::{inbound, TunnelCtx, TunnelSide};

/// Streams our own client may have open beyond the pool's `max` (sessions; `slot=`'s
/// default).
const SESSION_STREAMS: u32 = 65_536;
/// Go's x/net settings for nph2's server (POOL_TYPES.md §3).
const WINDOW: u32 = 1 << 20;
const MAX_FRAME: u32 = 1 << 20;
const MAX_HEADER_LIST: u32 = 1_048_896;

/// The server's TLS configuration for type 3: ALPN `h2` (TLS 1.3 only, as every server
/// configuration here).
fn h2_config(base: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut config = (**base).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Serve one TCP connection from the tunnel client's address as an HTTP/2 pool
/// connection; `ticket` is its place in the crowd until its HTTP/2 handshake is done.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
    ticket: Ticket,
) {
    let TunnelSide::Server { tls: Some(tls), .. } = &t.spec.side else {
        log::warn!("pool connection from {peer} refused: HTTP/2 pool without TLS");
        return;
    };
    let wait = t.spec.handshake_timeout;
    let handshake = crate::tls::accept(h2_config(&tls.config), stream);
    let tls_stream = match monoio::time::timeout(wait, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let cause = crate::tls::describe_io(&e, crate::tls::Role::Server);
            crate::tls::warn_handshake_failure(
                &format!("pool connection from {peer}: TLS handshake failed"),
                &cause,
            );
            return;
        }
        Err(_) => {
            crate::tls::warn_handshake_failure(
                &format!("pool connection from {peer}"),
                "TLS handshake timed out",
            );
            return;
        }
    };
    if tls_stream.alpn_protocol().as_deref() != Some(b"h2".as_slice()) {
        t.warns.warn(|| {
            format!("pool connection from {peer} refused: TLS without ALPN h2 (pool type 3)")
        });
        return;
    }
    let max = match &t.spec.side {
        TunnelSide::Server { reply, .. } => reply.max,
        TunnelSide::Client { .. } => 0,
    };
    // Go's limit is `max` streams, which idle entries alone can fill: its client (one
    // connection) then waits, ours opens more connections. Our client (an `auth1` run,
    // or one pending) gets room for the pool and the sessions beside it.
    let legacy = t.spec.shared.client_ip.get().is_some() && t.spec.shared.auth.get().is_none();
    let streams = if legacy {
        max.max(1)
    } else {
        max.saturating_add(1).saturating_add(SESSION_STREAMS)
    };
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(streams)
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_header_list_size(MAX_HEADER_LIST);
    let (r, w) = tls_stream.into_split();
    let handshake = builder.handshake::<_, Bytes>(Compat::new(r, w));
    let mut conn = match monoio::time::timeout(wait, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            t.warns.warn(|| {
                format!("pool connection from {peer} refused: HTTP/2 handshake failed: {e}")
            });
            return;
        }
        Err(_) => {
            t.warns.warn(|| {
                format!("pool connection from {peer} refused: no HTTP/2 preface within {wait:?}")
            });
            return;
        }
    };
    drop(ticket);
    log::debug!("HTTP/2 pool connection from {peer} up");
    loop {
        let next = monoio::select! {
            n = conn.accept() => n,
            _ = ctx.stopping.wait() => break,
            _ = monoio::time::sleep(IDLE) => {
                if conn.has_streams() {
                    continue;
                }
                log::debug!("HTTP/2 pool connection from {peer} idle for {IDLE:?}: closed");
                break;
            }
        };
        match next {
            None => {
                log::debug!("HTTP/2 pool connection from {peer} closed");
                break;
            }
            // The peer went away (killed, reset, a TLS error).
            Some(Err(e)) if e.is_io() => {
                log::debug!("HTTP/2 pool connection from {peer} ended: {e}");
                break;
            }
            // Bad frames, a bad preface, flow-control abuse: h2 sent GOAWAY.
            Some(Err(e)) => {
                t.warns
                    .warn(|| format!("HTTP/2 pool connection from {peer} failed: {e}"));
                break;
            }
            Some(Ok((req, respond))) => {
                let (c, t2) = (Rc::clone(&ctx), Rc::clone(&t));
                ctx.spawn(async move { request(req, respond, peer, c, t2).await });
            }
        }
    }
    drop(conn);
    t.shard.sweep_gone();
}

/// Answer `status` with Go's `http.Error` body and end the stream.
fn refuse(mut respond: SendResponse<Bytes>, status: StatusCode, body: &'static str) {
    let resp = Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
        .body(());
    let Ok(resp) = resp else { return };
    if let Ok(mut send) = respond.send_response(resp, false) {
        let _ = send.send_data(Bytes::from_static(body.as_bytes()), true);
    }
}

/// One request on a pool connection: `POST /stream` becomes a pool entry.
async fn request(
    req: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    peer: SocketAddr,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
) {
    let TunnelSide::Server { reply, .. } = &t.spec.side else {
        return;
    };
    if req.method() != Method::POST || req.uri().path() != "/stream" {
        t.warns.warn(|| {
            format!(
                "pool stream from {peer} refused: {} {} is not POST /stream (404)",
                req.method(),
                req.uri().path()
            )
        });
        return refuse(respond, StatusCode::NOT_FOUND, "not found\n");
    }
    if t.spec.shared.idle_total() >= reply.max as usize {
        log::debug!("pool stream from {peer} refused: pool is full (404)");
        return refuse(respond, StatusCode::NOT_FOUND, "not found\n");
    }
    if t.spec
        .shared
        .client_ip
        .get()
        .is_some_and(|ip| *ip != peer.ip())
    {
        t.warns
            .warn(|| format!("pool stream from {peer} refused: not the client's IP (403)"));
        return refuse(respond, StatusCode::FORBIDDEN, "unauthorized\n");
    }
    let mut body = req.into_body();
    // The client's first byte (0x00): the request is real once it arrives.
    let first = match monoio::time::timeout(FIRST_BYTE_WAIT.min(t.spec.handshake_timeout), async {
        loop {
            match body.data().await {
                Some(Ok(b)) if b.is_empty() => continue,
                other => return other,
            }
        }
    })
    .await
    {
        Ok(Some(Ok(b))) => b,
        Ok(_) => {
            log::debug!("pool stream from {peer} ended before its first byte");
            return;
        }
        Err(_) => {
            t.warns
                .warn(|| format!("pool stream from {peer} refused: no first byte"));
            return;
        }
    };
    // The first byte is consumed here; the rest is given back as the entry reads it.
    let _ = body.flow_control().release_capacity(1);
    let mut rest = first;
    rest.advance(1);
    let mut respond = respond;
    let resp = match Response::builder().status(StatusCode::OK).body(()) {
        Ok(r) => r,
        Err(_) => return,
    };
    let send = match respond.send_response(resp, false) {
        Ok(s) => s,
        Err(e) => {
            log::debug!("pool stream from {peer}: answering failed: {e}");
            return;
        }
    };
    let end = StreamEnd::new(peer.to_string());
    let mut conn = H2Conn::new(send, body, Rc::clone(&end), Role::Server, None, &t);
    conn.rx.leftover = rest;
    let (ticket, evicted) = t.crowd.admit_with(peer.ip(), t.client_ip_cap());
    let entry = inbound::pool_entry(
        PoolConn::H2(Box::new(conn)),
        End::Stream(end),
        peer,
        ctx,
        Rc::clone(&t),
        ticket,
    );
    evicted.guard(entry).await;
}

/// A connection without streams for this long is closed (Go's `IdleTimeout`).
const IDLE: Duration = Duration::from_secs(10);

/// How long a new stream may take to send its first byte.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(10);
