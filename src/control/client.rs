//! The client's tunnel handshake on the control thread: one `GET /` exactly as Go sends
//! it, the JSON reply parsed, and the announced pool type checked.

use std::fmt;
use std::net::SocketAddr;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::Config;
use crate::proto::handshake::{self, HandshakeError, Parse};
use crate::proto::TunnelConfig;

/// Why the client's handshake failed (each is fatal for the run; the client restarts).
#[derive(Debug)]
pub enum ClientHandshakeError {
    /// Could not connect to the server.
    Connect(std::io::Error),
    /// Reading or writing the handshake failed.
    Io(std::io::Error),
    /// No complete reply within `NP_HANDSHAKE_TIMEOUT`.
    Timeout,
    /// The reply was refused or malformed.
    Reply(HandshakeError),
    /// The server wants a pool transport we do not implement.
    PoolType(u8),
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHandshakeError::Connect(e) => write!(f, "tunnel connect failed: {e}"),
            ClientHandshakeError::Io(e) => write!(f, "tunnel handshake failed: {e}"),
            ClientHandshakeError::Timeout => f.write_str("tunnel handshake timed out"),
            ClientHandshakeError::Reply(e) => write!(f, "tunnel handshake failed: {e}"),
            ClientHandshakeError::PoolType(t) => write!(f, "pool type {t} is not supported"),
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

/// What the handshake agreed on.
#[derive(Debug, Clone)]
pub struct Agreed {
    /// The server's tunnel configuration.
    pub config: TunnelConfig,
    /// The server is ours and agreed on length-framed UDP (`udp16`).
    pub framed_udp: bool,
}

/// Run the handshake against `server`; logs "Loading tunnel config: …" on success.
pub async fn handshake(cfg: &Config, server: SocketAddr) -> Result<Agreed, ClientHandshakeError> {
    let limit = cfg.env.handshake_timeout;
    let reply = monoio::time::timeout(limit, exchange(cfg, server))
        .await
        .map_err(|_| ClientHandshakeError::Timeout)??;
    let framed_udp = handshake::has_feature(reply.extension.as_deref(), handshake::FEATURE_UDP16);
    log::debug!(
        "tunnel server extensions: {}",
        reply.extension.as_deref().unwrap_or("none (Go)")
    );
    let c = reply.config;
    log::info!(
        "Loading tunnel config: FLOW={}|MAX={}|TLS={}|TYPE={}",
        c.flow.as_str(),
        c.max,
        c.tls,
        c.pool_type
    );
    if c.pool_type != 0 {
        return Err(ClientHandshakeError::PoolType(c.pool_type));
    }
    Ok(Agreed {
        config: c,
        framed_udp,
    })
}

async fn exchange(
    cfg: &Config,
    server: SocketAddr,
) -> Result<handshake::Reply, ClientHandshakeError> {
    let mut stream = TcpStream::connect_addr(server)
        .await
        .map_err(ClientHandshakeError::Connect)?;
    // Our marker: a Go server ignores the header; one of ours answers with the features
    // both speak.
    let request =
        handshake::encode_request(&cfg.sni_name(), &cfg.key, Some(handshake::OUR_FEATURES));
    stream
        .write_all(request)
        .await
        .0
        .map_err(ClientHandshakeError::Io)?;
    let mut got: Vec<u8> = Vec::with_capacity(512);
    let mut buf = vec![0u8; 2048];
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        let n = res.map_err(ClientHandshakeError::Io)?;
        if n == 0 {
            return handshake::parse_reply_at_eof(&got).map_err(ClientHandshakeError::Reply);
        }
        got.extend_from_slice(&buf[..n]);
        match handshake::parse_reply(&got).map_err(ClientHandshakeError::Reply)? {
            Parse::Complete(reply) => return Ok(reply),
            Parse::Partial => {}
        }
    }
}
