//! The WebSocket upgrade of a pool connection: the server takes `GET <any path>` with
//! `Upgrade: websocket` and answers `101` (or `503 pool full`, or `400` with the reason);
//! the client sends Go's request and checks the `101` and its accept value.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use super::{Raw, WsConn};
use crate::dataplane::tunnel::pool::PoolConn;
use crate::dataplane::tunnel::{TunnelCtx, TunnelSide};
use crate::proto::handshake::Parse;
use crate::proto::ws::{self, frame::Role, UpgradeError};
use crate::sys::SocketFd;

/// What the server made of a pool connection's first request.
pub enum Accepted {
    /// Upgraded: the connection now carries frames.
    Ws(PoolConn),
    /// A plain HTTP request that is no upgrade (a client retrying its handshake): the
    /// caller answers it as a handshake; the bytes read so far come along.
    Handshake(TcpStream, Vec<u8>),
    /// Refused (answered and logged where useful).
    Refused,
}

/// Read a request or answer head from `conn` until `parse` completes; the head's value
/// and every byte read (the head and what followed it).
async fn read_head<T>(
    conn: &mut PoolConn,
    parse: impl Fn(&[u8]) -> Result<Parse<T>, UpgradeError>,
) -> Result<(T, Vec<u8>), (Option<UpgradeError>, Vec<u8>)> {
    let mut got: Vec<u8> = Vec::with_capacity(1024);
    loop {
        if got.capacity() - got.len() < 512 {
            got.reserve(1024);
        }
        let len = got.len();
        let spare = monoio::buf::IoBufMut::slice_mut(got, len..);
        let (res, spare) = conn.read_raw(spare).await;
        got = spare.into_inner();
        match res {
            Ok(0) | Err(_) => return Err((None, got)),
            Ok(_) => {}
        }
        match parse(&got) {
            Ok(Parse::Complete(v)) => return Ok((v, got)),
            Ok(Parse::Partial) => {}
            Err(e) => return Err((Some(e), got)),
        }
    }
}

/// Server: take the upgrade on a (plain or TLS) pool connection from `peer` within `wait`.
pub async fn accept(
    mut conn: PoolConn,
    fd: SocketFd,
    peer: SocketAddr,
    wait: Duration,
    t: &TunnelCtx,
) -> Accepted {
    let TunnelSide::Server { reply, .. } = &t.spec.side else {
        return Accepted::Refused;
    };
    let head = match monoio::time::timeout(wait, read_head(&mut conn, ws::parse_upgrade)).await {
        Err(_) => {
            t.warns.warn(|| {
                format!("pool connection from {peer} refused: no WebSocket upgrade within {wait:?}")
            });
            return Accepted::Refused;
        }
        Ok(head) => head,
    };
    let (upgrade, got) = match head {
        Ok(v) => v,
        Err((None, _)) => return Accepted::Refused,
        Err((Some(UpgradeError::NotUpgrade), got)) => {
            return match conn {
                PoolConn::Plain(stream) => Accepted::Handshake(stream, got),
                _ => refuse(conn, peer, t, &UpgradeError::NotUpgrade).await,
            };
        }
        Err((Some(e), _)) => return refuse(conn, peer, t, &e).await,
    };
    if t.spec.shared.idle_total() >= reply.max as usize {
        log::debug!("pool connection from {peer} refused: pool is full");
        let _ = conn.write_raw(ws::encode_refusal(503, "pool full")).await;
        return Accepted::Refused;
    }
    if let Err(e) = conn.write_raw(ws::encode_switching(&upgrade.key)).await.0 {
        log::debug!("pool connection from {peer}: writing the upgrade answer failed: {e}");
        return Accepted::Refused;
    }
    let early = got[upgrade.head_len..].to_vec();
    Accepted::Ws(PoolConn::Ws(Box::new(WsConn::new(
        conn,
        fd,
        Role::Server,
        early,
        [0; 16],
    ))))
}

/// A bad upgrade: logged (within the warn budget) and answered `400` with the reason.
async fn refuse(mut conn: PoolConn, peer: SocketAddr, t: &TunnelCtx, e: &UpgradeError) -> Accepted {
    super::super::strangers::stranger_seen();
    t.warns
        .warn(|| format!("pool connection from {peer} refused: bad WebSocket upgrade: {e}"));
    let body = format!("WebSocket upgrade refused: {e}");
    let _ = conn.write_raw(ws::encode_refusal(400, &body)).await;
    Accepted::Refused
}

/// Client: upgrade a fresh (plain or TLS) pool connection; `host` is the tunnel host
/// without port, as Go's `Host` header has it.
pub async fn connect(mut conn: PoolConn, fd: SocketFd, host: &str) -> io::Result<PoolConn> {
    let mut random = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut random)
        .map_err(|_| io::Error::other("no randomness for the WebSocket key"))?;
    let (key_bytes, seed) = random.split_at(16);
    let key = ws::key_from(key_bytes.try_into().unwrap_or([0; 16]));
    conn.write_raw(ws::encode_upgrade(host, &key)).await.0?;
    let (head_len, got) = read_head(&mut conn, |b| ws::parse_switching(b, &key))
        .await
        .map_err(|(e, _)| match e {
            Some(e) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("WebSocket upgrade: {e}"),
            ),
            None => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "WebSocket upgrade: connection closed before the answer",
            ),
        })?;
    let early = got[head_len..].to_vec();
    Ok(PoolConn::Ws(Box::new(WsConn::new(
        conn,
        fd,
        Role::Client,
        early,
        seed.try_into().unwrap_or([1; 16]),
    ))))
}
