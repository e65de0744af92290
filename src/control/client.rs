//! The client's tunnel handshake on the control thread: one `GET /` exactly as Go sends
//! it, the JSON reply parsed, and the announced pool type checked.

use std::fmt;
use std::net::SocketAddr;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::bus::RunAuth;
use crate::config::{AuthPolicy, Config};
use crate::proto::auth::{self, Nonce};
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
    /// `auth=strict`, and the server does not speak the `auth1` profile (a Go server, or
    /// someone in between who removed it).
    NoProfile,
    /// The server's `auth1` proof is missing or wrong: it does not hold the key, or
    /// someone in between changed its reply.
    ServerProof,
    /// The system random source failed (no nonce).
    Random,
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHandshakeError::Connect(e) => write!(f, "tunnel connect failed: {e}"),
            ClientHandshakeError::Io(e) => write!(f, "tunnel handshake failed: {e}"),
            ClientHandshakeError::Timeout => f.write_str("tunnel handshake timed out"),
            ClientHandshakeError::Reply(e) => write!(f, "tunnel handshake failed: {e}"),
            ClientHandshakeError::PoolType(t) => write!(f, "pool type {t} is not supported"),
            ClientHandshakeError::NoProfile => f.write_str(
                "the server does not speak the auth1 profile (a Go NodePass server, or a \
                 downgrade by someone in between) and this client has auth=strict",
            ),
            ClientHandshakeError::ServerProof => f.write_str(
                "the server did not prove the tunnel key (wrong key, or its reply was altered)",
            ),
            ClientHandshakeError::Random => f.write_str("system random source failed"),
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
    /// The server is ours and proved the key: the `auth1` profile of this run.
    pub auth: Option<RunAuth>,
}

/// Run the handshake against `server`; logs "Loading tunnel config: …" on success.
pub async fn handshake(cfg: &Config, server: SocketAddr) -> Result<Agreed, ClientHandshakeError> {
    let limit = cfg.env.handshake_timeout;
    let nonce = Nonce::fresh().ok_or(ClientHandshakeError::Random)?;
    let reply = monoio::time::timeout(limit, exchange(cfg, server, &nonce))
        .await
        .map_err(|_| ClientHandshakeError::Timeout)??;
    log::debug!(
        "tunnel server extensions: {}",
        crate::logging::peer(reply.extension.as_deref().unwrap_or("none (Go)"))
    );
    let c = reply.config;
    log::info!(
        "Loading tunnel config: FLOW={}|MAX={}|TLS={}|TYPE={}",
        c.flow.as_str(),
        c.max,
        c.tls,
        c.pool_type
    );
    if !matches!(c.pool_type, 0..=3) {
        return Err(ClientHandshakeError::PoolType(c.pool_type));
    }
    let auth = if handshake::has_feature(reply.extension.as_deref(), auth::FEATURE_AUTH1) {
        Some(check_server(cfg, &reply, nonce)?)
    } else if cfg.params.auth == AuthPolicy::Strict {
        return Err(ClientHandshakeError::NoProfile);
    } else {
        None
    };
    Ok(Agreed {
        config: c,
        framed_udp: handshake::frames_udp(reply.extension.as_deref(), c.pool_type),
        auth,
    })
}

/// The server's `auth1` proof: its nonce, the configuration it announced and the
/// certificate fingerprint it will show, keyed by the tunnel key.
fn check_server(
    cfg: &Config,
    reply: &handshake::Reply,
    client: Nonce,
) -> Result<RunAuth, ClientHandshakeError> {
    let fields = &reply.auth;
    let server = fields
        .nonce
        .as_deref()
        .and_then(Nonce::from_hex)
        .ok_or(ClientHandshakeError::ServerProof)?;
    let proof = fields
        .proof
        .as_deref()
        .and_then(auth::from_hex)
        .ok_or(ClientHandshakeError::ServerProof)?;
    let session = auth::Session { client, server };
    let fp = fields.fp.clone().unwrap_or_default();
    let c = &reply.config;
    let announced = auth::Announced {
        flow: c.flow.as_str(),
        max: c.max,
        tls: c.tls,
        pool_type: c.pool_type,
    };
    if !auth::same_secret(&proof, &session.server_proof(&cfg.key, announced, &fp)) {
        return Err(ClientHandshakeError::ServerProof);
    }
    Ok(RunAuth { session, fp })
}

async fn exchange(
    cfg: &Config,
    server: SocketAddr,
    nonce: &Nonce,
) -> Result<handshake::Reply, ClientHandshakeError> {
    let mut stream = TcpStream::connect_addr(server)
        .await
        .map_err(ClientHandshakeError::Connect)?;
    // Our marker: a Go server ignores the headers; one of ours answers with the features
    // both speak. Go's static token only where a Go server may answer.
    let bearer = cfg.params.auth != AuthPolicy::Strict;
    let request = handshake::encode_request_ours(
        &cfg.sni_name(),
        &cfg.key,
        bearer,
        Some(handshake::OUR_FEATURES),
        Some(nonce),
    );
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
