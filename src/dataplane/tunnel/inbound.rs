//! The server's tunnel port on one worker. Until a handshake succeeds every connection is
//! an HTTP handshake attempt (each under its own deadline, so a slow or bad peer costs only
//! itself); afterwards connections from the handshake's IP become pool connections and
//! everyone else is refused. The port stays bound throughout (no close-and-rebind gap).
//! A legacy (Go token) handshake succeeds when answered; an `auth1` one only once its
//! control connection proved the key (`pending`), so a replayed recording cannot take the
//! run.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use super::caps::ControlClaim;
use super::pending::{self, Turn};
use super::pool::{PoolConn, Pooled};
use super::strangers::settle;
use super::{http2, ws};
use super::{link, TunnelCtx, TunnelSide, CONFLICT, PROOF_WAIT};
use crate::bus::Event;
use crate::config::AuthPolicy;
use crate::crowd::Ticket;
use crate::dataplane::accept::accept_until;
use crate::dataplane::end::End;
use crate::dataplane::host::WorkerCtx;
use crate::net::SocketExt;
use crate::proto::auth;
use crate::proto::handshake::{self, Parse};
use crate::proto::PoolId;
use crate::sys::SocketFd;

/// What Go's HTTP server answers to bytes that are not HTTP.
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";

/// Accept on the tunnel port until the worker stops. Connections that have not proved
/// themselves (handshake attempts; pool connections before their proof, or before they
/// enter the pool in a legacy run) wait in the worker's [`crate::crowd::Crowd`], capped per
/// source IP and in total: the oldest is closed when a newcomer is over a cap.
pub async fn accept_loop(listener: TcpListener, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    // Accepted streams are in the driver's mode already (`runtime`).
    accept_until(&listener, &ctx.closing, "tunnel", |stream, peer| {
        let owner = Rc::clone(&ctx);
        let t = Rc::clone(&t);
        match t.spec.shared.client_ip.get() {
            // Answered `auth1` handshakes from this address wait for its pool connections.
            None if pending::is_pending(&t, peer.ip()) => {
                let (ticket, evicted) = t.crowd.admit_with(peer.ip(), t.client_ip_cap());
                ctx.spawn(async move {
                    evicted
                        .guard(pool_conn(stream, peer, owner, t, ticket))
                        .await;
                });
            }
            None => {
                let (ticket, evicted) = t.crowd.admit(peer.ip());
                ctx.spawn(async move {
                    evicted.guard(handshake(stream, peer, &t, ticket)).await;
                });
            }
            Some(ip) if *ip == peer.ip() => {
                let (ticket, evicted) = t.crowd.admit_with(peer.ip(), t.client_ip_cap());
                ctx.spawn(async move {
                    evicted
                        .guard(pool_conn(stream, peer, owner, t, ticket))
                        .await;
                });
            }
            Some(_) => t.refused.note(|n| {
                format!(
                    "tunnel port: {n} connection(s) refused, latest from {peer}: not the \
                     tunnel client's IP"
                )
            }),
        }
    })
    .await;
}

/// Read a request head within the handshake deadline (`head` holds what was read of it).
async fn read_request(
    stream: &mut TcpStream,
    mut head: Vec<u8>,
) -> Result<handshake::ParsedRequest, Option<handshake::HandshakeError>> {
    let mut buf = vec![0u8; 2048];
    // A type 2 pool connection may hand over a whole request head already.
    let mut parse = !head.is_empty();
    loop {
        if parse {
            match handshake::parse_request(&head) {
                Ok(Parse::Complete(req)) => return Ok(req),
                Ok(Parse::Partial) => {}
                Err(e) => return Err(Some(e)),
            }
        }
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        parse = true;
    }
}

/// A handshake attempt; `ticket` is its place in the crowd, left once it succeeded (the
/// reply to the run's client must not be cut by an eviction).
async fn handshake(stream: TcpStream, peer: SocketAddr, t: &TunnelCtx, ticket: Ticket) {
    handshake_from(stream, Vec::with_capacity(512), peer, t, Some(ticket)).await;
}

/// The handshake, `head` being the bytes of it already read.
async fn handshake_from(
    mut stream: TcpStream,
    head: Vec<u8>,
    peer: SocketAddr,
    t: &TunnelCtx,
    ticket: Option<Ticket>,
) {
    let TunnelSide::Server { reply, tls } = &t.spec.side else {
        return;
    };
    let read = read_request(&mut stream, head);
    let req = match monoio::time::timeout(head_wait(t), read).await {
        Err(_) => {
            t.warns
                .warn(|| format!("tunnel handshake from {peer} timed out"));
            return;
        }
        Ok(Err(None)) => return,
        Ok(Err(Some(e))) => {
            t.warns
                .warn(|| format!("tunnel handshake from {peer} refused: {e}"));
            let _ = stream.write_all(BAD_REQUEST.to_vec()).await;
            return;
        }
        Ok(Ok(req)) => req,
    };
    let proved = handshake::check_request(&req, &t.spec.key).and_then(|proved| {
        admit_profile(proved, peer, t)?;
        Ok(proved)
    });
    let answer = match proved {
        Err(r) => {
            t.warns
                .warn(|| format!("tunnel handshake from {peer} refused: {r}"));
            handshake::encode_rejection(r)
        }
        Ok(handshake::Proved::Auth1(client)) => {
            // Answered, not committed: the run waits for a control connection's proof.
            drop(ticket);
            pending::answer(client, req.extension.as_deref(), peer, reply, tls, t)
        }
        Ok(handshake::Proved::Token) => {
            if t.spec.shared.client_ip.set(peer.ip()).is_err() {
                log::warn!("tunnel handshake from {peer} refused: a tunnel is already running");
                CONFLICT.to_vec()
            } else {
                drop(ticket);
                pending::drop_all(t, peer);
                // A Go client sends no marker and gets none back: plain v1.14.0. Without a
                // proof of the client's nonce there is no profile to agree on.
                let ext = without_feature(
                    handshake::common_features(req.extension.as_deref()),
                    auth::FEATURE_AUTH1,
                );
                let framed = handshake::frames_udp(ext.as_deref(), reply.pool_type);
                t.spec.shared.framed_udp.store(framed, Ordering::Release);
                log::debug!(
                    "tunnel client {peer} extensions: {}",
                    ext.as_deref().unwrap_or("none (Go)")
                );
                super::log_sending_config(reply);
                t.spec.shared.report(Event::HandshakeDone(peer));
                handshake::encode_reply(reply, ext.as_deref(), &Default::default())
            }
        }
    };
    // The whole answer goes out before the close (Go can lose it: §9.12).
    let _ = stream.write_all(answer).await;
    let _ = stream.flush().await;
    stream.shutdown_write();
}

/// How long a handshake attempt may take to send its whole request head: a real client
/// (ours or Go's) sends it at once, so a slow one is a slowloris holding a place.
fn head_wait(t: &TunnelCtx) -> std::time::Duration {
    HEAD_WAIT.min(t.spec.handshake_timeout)
}

/// The longest [`head_wait`] (`NP_HANDSHAKE_TIMEOUT` when shorter).
const HEAD_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The `auth1` rules a proved request must pass before it may start a run: a strict
/// server takes no client without the profile, and no client nonce is taken twice (a
/// recorded handshake replayed later is refused).
fn admit_profile(
    proved: handshake::Proved,
    peer: SocketAddr,
    t: &TunnelCtx,
) -> Result<(), handshake::Rejection> {
    match proved {
        handshake::Proved::Token if t.spec.auth == AuthPolicy::Strict => {
            log::warn!(
                "tunnel handshake from {peer}: a legacy client (no auth1 profile, e.g. Go \
                 NodePass) and this server has auth=strict"
            );
            Err(handshake::Rejection::Unauthorized)
        }
        handshake::Proved::Token => Ok(()),
        handshake::Proved::Auth1(client) => {
            let first = SEEN_NONCES
                .lock()
                .map(|mut seen| seen.first_time(&client))
                .unwrap_or(false);
            if first {
                Ok(())
            } else {
                log::warn!(
                    "tunnel handshake from {peer}: a replayed handshake (nonce seen before)"
                );
                Err(handshake::Rejection::Unauthorized)
            }
        }
    }
}

/// Client nonces this process has accepted (across runs).
static SEEN_NONCES: std::sync::Mutex<auth::SeenNonces> =
    std::sync::Mutex::new(auth::SeenNonces::new());

/// A feature list without `feature` (`None` when nothing is left).
fn without_feature(list: Option<String>, feature: &str) -> Option<String> {
    let kept: Vec<&str> = list
        .as_deref()?
        .split(',')
        .filter(|f| f.trim() != feature)
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// Whether the first bytes waiting on a TLS pool connection are an HTTP request line
/// rather than a ClientHello (peeked, so the TLS handshake still reads them all).
async fn sends_http(stream: &TcpStream, limit: std::time::Duration) -> bool {
    if monoio::time::timeout(limit, stream.readable(false))
        .await
        .is_err()
    {
        return false;
    }
    let mut first = [0u8; 4];
    matches!(stream.peek_now(&mut first), Ok(4) if is_http_method(&first))
}

/// `GET `, `POST`, …: the start of an HTTP request line.
fn is_http_method(first: &[u8; 4]) -> bool {
    first.iter().all(|b| b.is_ascii_uppercase() || *b == b' ')
}

/// `auth1`, first step: our client writes [`auth::POOL_MAGIC`] before anything else. A
/// wrong-key client retrying its handshake gets its refusal (as an HTTP answer); anyone
/// else is closed, with what it sent in the log.
async fn expect_magic(conn: PoolConn, peer: SocketAddr, t: &TunnelCtx) -> Option<PoolConn> {
    let mut conn = conn;
    let wait = PROOF_WAIT.min(t.spec.handshake_timeout);
    let first = match monoio::time::timeout(wait, conn.recv_exact::<4>()).await {
        Ok(Ok(bytes)) => bytes,
        // Only type 2 reads can be invalid (a frame that breaks the rules).
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            t.warns
                .warn(|| format!("pool connection from {peer} refused: {e}"));
            return None;
        }
        Ok(Err(_)) => return None,
        Err(_) => {
            t.warns.warn(|| {
                format!("pool connection from {peer} refused: no proof of the key within {wait:?}")
            });
            return None;
        }
    };
    if first == auth::POOL_MAGIC {
        return Some(conn);
    }
    match conn {
        PoolConn::Plain(stream) if is_http_method(&first) => {
            // An HTTP method: a client retrying its handshake (wrong key, or a second one).
            handshake_from(stream, first.to_vec(), peer, t, None).await;
        }
        _ => t.warns.warn(|| {
            format!(
                "pool connection from {peer} refused: not a tunnel client (sent {:?})",
                String::from_utf8_lossy(&first)
            )
        }),
    }
    None
}

/// `auth1`, last step: the client's proof for the id it was given.
async fn check_proof(conn: &mut PoolConn, id: PoolId, peer: SocketAddr, t: &TunnelCtx) -> bool {
    let Some(run) = t.spec.shared.auth.get() else {
        return true;
    };
    let wait = PROOF_WAIT.min(t.spec.handshake_timeout);
    let proof = match monoio::time::timeout(wait, conn.recv_exact::<{ auth::LEN }>()).await {
        Ok(Ok(proof)) => proof,
        Ok(Err(_)) | Err(_) => {
            t.warns.warn(|| {
                format!("pool connection from {peer} refused: no proof of the key for {id}")
            });
            return false;
        }
    };
    let expected = run.session.pool_proof(&t.spec.key, id, &run.fp);
    if auth::same_secret(&proof, &expected) {
        true
    } else {
        t.warns.warn(|| {
            format!("pool connection from {peer} refused: wrong proof of the key for {id}")
        });
        false
    }
}

/// The first pool connection of a run becomes the control channel. Whoever else on the
/// client's host connects right after the handshake could take it (NodePass's protocol
/// has no proof of the key there), so a candidate must stay silent for [`settle`]: a real
/// client (ours or Go's) sends nothing before it has read its id; a garbage sender, an
/// HTTP probe or a slowloris does. Plain TCP only: over TLS a stranger without the
/// handshake's certificate exchange never gets this far.
async fn quiet_for_control(conn: &PoolConn, peer: SocketAddr, t: &TunnelCtx) -> bool {
    let stream = match conn {
        PoolConn::Plain(stream) => stream,
        PoolConn::Ws(ws) => match ws.plain_stream() {
            Some(_) if ws.has_early_bytes() => return early_bytes(peer, t),
            Some(stream) => stream,
            None => return true,
        },
        _ => return true,
    };
    monoio::time::sleep(settle()).await;
    let mut byte = [0u8; 1];
    match stream.peek_now(&mut byte) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
        Ok(0) | Err(_) => false,
        Ok(_) => early_bytes(peer, t),
    }
}

/// A control candidate sent bytes before its id: a stranger.
fn early_bytes(peer: SocketAddr, t: &TunnelCtx) -> bool {
    super::strangers::stranger_seen();
    t.warns.warn(|| {
        format!("pool connection from {peer} sent bytes before its id: not a tunnel client, closed")
    });
    false
}

/// A pool connection from the client's IP; `ticket` is its place among the connections
/// that have not proved themselves, left once it did.
async fn pool_conn(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
    ticket: Ticket,
) {
    let TunnelSide::Server { reply, tls } = &t.spec.side else {
        return;
    };
    let websocket = reply.pool_type == 2;
    let http2 = reply.pool_type == 3;
    // Type 2 answers a full pool after the upgrade request, with Go's 503; type 3 per
    // stream, with Go's 404.
    if !websocket && !http2 && t.spec.shared.idle_total() >= reply.max as usize {
        log::debug!("pool connection from {peer} refused: pool is full");
        return;
    }
    let fd = SocketFd::of(&stream);
    let mut conn = match tls {
        None => PoolConn::Plain(stream),
        Some(_) if sends_http(&stream, t.spec.handshake_timeout).await => {
            // A client retrying its handshake in plain HTTP (a wrong key, or a second
            // client) gets its answer, not a failed TLS handshake.
            handshake_from(stream, Vec::new(), peer, &t, None).await;
            return;
        }
        Some(_) if http2 => return http2::serve(stream, peer, ctx, t, ticket).await,
        Some(tls) => {
            let handshake = crate::tls::accept(tls.config.clone(), stream);
            match monoio::time::timeout(t.spec.handshake_timeout, handshake).await {
                Ok(Ok(s)) => PoolConn::ServerTls(Box::new(s)),
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
            }
        }
    };
    if websocket {
        conn = match ws::accept(conn, fd, peer, head_wait(&t), &t).await {
            ws::Accepted::Ws(conn) => conn,
            ws::Accepted::Handshake(stream, head) => {
                return handshake_from(stream, head, peer, &t, None).await;
            }
            ws::Accepted::Refused => return,
        };
    }
    pool_entry(conn, End::Socket(fd), peer, ctx, t, ticket).await;
}

/// A pool connection (or QUIC stream) from the client's IP after its transport setup:
/// the `auth1` proof or the control-channel quiet rule, the id, then the pool.
pub(super) async fn pool_entry(
    mut conn: PoolConn,
    end: End,
    peer: SocketAddr,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
    ticket: Ticket,
) {
    // Not committed yet: this address holds answered `auth1` handshakes (`pending`).
    let committed = t.spec.shared.client_ip.get().is_some();
    let profile = !committed || t.spec.shared.auth.get().is_some();
    if profile {
        conn = match expect_magic(conn, peer, &t).await {
            Some(c) => c,
            None => return,
        };
    } else if !t.spec.shared.control_taken.load(Ordering::Acquire)
        && !quiet_for_control(&conn, peer, &t).await
    {
        return;
    }
    if !committed {
        match pending::wait_turn(peer, &t).await {
            Turn::Control(candidate) => {
                pending::prove_control(conn, end, peer, &ctx, &t, ticket, candidate).await;
                return;
            }
            Turn::Committed if pending::joins_run(peer, &t) => {}
            Turn::Committed | Turn::Gone => {
                log::debug!(
                    "pool connection from {peer} closed: no pending handshake of its address"
                );
                return;
            }
        }
    }
    let taken = &t.spec.shared.control_taken;
    let control = taken
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    let claim = ControlClaim {
        taken: control.then_some(taken),
    };
    let id = if control {
        PoolId::CONTROL
    } else {
        let workers = u8::try_from(t.spec.workers).unwrap_or(u8::MAX);
        let index = u8::try_from(ctx.index).unwrap_or(0);
        match PoolId::random_for_worker(index, workers) {
            Ok(id) => id,
            Err(e) => {
                log::warn!("pool connection from {peer}: {e}");
                return;
            }
        }
    };
    if let Err(e) = conn.send_all(id.0.to_vec()).await {
        log::debug!("pool connection from {peer}: writing id failed: {e}");
        return;
    }
    // Whoever fails here does not keep the control channel from the real client (the
    // claim gives it back).
    if profile && !check_proof(&mut conn, id, peer, &t).await {
        return;
    }
    drop(ticket);
    if control {
        claim.keep();
        link::start(conn, end, &ctx, &t);
        return;
    }
    let pooled = Pooled {
        id,
        conn,
        seen_fp: None,
        end,
        since: std::time::Instant::now(),
    };
    if !t.shard.insert(pooled) {
        log::debug!("pool connection {id} duplicated: closed");
    }
}
