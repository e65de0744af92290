//! The v1.14.0 tunnel handshake: one plain HTTP/1.1 `GET /` with a bearer token, answered
//! by a JSON tunnel configuration (PROTOCOL.md §3.A.1).
//!
//! Socket-free: callers feed the bytes they have read and get [`Parse::Partial`] until a
//! whole request or reply is there. Our own peers may add an extension marker (a request
//! header, a JSON field) that a Go peer ignores.

mod reply;
mod request;

use std::fmt;

use hmac::{Mac, SimpleHmac};
use sha2::Sha256;

#[cfg(test)]
mod feature_tests {
    use super::*;

    #[test]
    fn features_are_agreed_only_when_both_ends_list_them() {
        assert_eq!(common_features(None), None);
        assert_eq!(common_features(Some("")), None);
        assert_eq!(
            common_features(Some("nonce, udp16")).as_deref(),
            Some("udp16")
        );
        assert_eq!(common_features(Some("future-thing")), None);
        assert!(has_feature(Some("a,udp16"), FEATURE_UDP16));
        assert!(!has_feature(Some("udp1"), FEATURE_UDP16));
        assert!(!has_feature(None, FEATURE_UDP16));
    }
}

pub use reply::{encode_reply, parse_reply, parse_reply_at_eof, AuthFields, Reply};
pub use request::{
    check_request, encode_rejection, encode_request, encode_request_ours, parse_request,
    ParsedRequest, Proved, Rejection,
};

/// Largest request or reply head we buffer before giving up.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest reply body we accept (the real one is about 45 bytes).
pub const MAX_BODY: usize = 8 * 1024;
/// Request header carrying our extension marker; Go servers ignore it.
pub const EXT_HEADER: &str = "X-Np-Ext";
/// Reply JSON field carrying our extension marker; Go clients ignore it.
pub const EXT_FIELD: &str = "ext";

/// Extension feature: UDP datagrams on pool connections carry a 2-byte big-endian length.
pub const FEATURE_UDP16: &str = "udp16";
/// Every extension feature this build speaks, as our marker carries them (comma-separated):
/// length-framed UDP, and the `auth1` profile (`proto::auth`).
pub const OUR_FEATURES: &str = "udp16,auth1";

/// The features both ends speak: ours that the peer's marker also lists, comma-separated
/// (`None` when the peer sent no marker or shares none: a Go peer).
pub fn common_features(offered: Option<&str>) -> Option<String> {
    let offered = offered?;
    let common: Vec<&str> = OUR_FEATURES
        .split(',')
        .filter(|ours| offered.split(',').any(|f| f.trim() == *ours))
        .collect();
    (!common.is_empty()).then(|| common.join(","))
}

/// Whether a marker lists `feature`.
pub fn has_feature(marker: Option<&str>, feature: &str) -> bool {
    marker.is_some_and(|m| m.split(',').any(|f| f.trim() == feature))
}

/// Whether UDP over this run's pool connections is length-framed: both ends agreed on
/// `udp16` (`agreed`, the features both sides list), and the pool type does not keep
/// datagram boundaries itself (type 2: one WebSocket message per datagram).
pub fn frames_udp(agreed: Option<&str>, pool_type: u8) -> bool {
    has_feature(agreed, FEATURE_UDP16) && pool_type != 2
}

/// The result of feeding bytes to a parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// More bytes are needed.
    Partial,
    /// The message is complete.
    Complete(T),
}

/// Why a handshake message could not be used.
#[derive(Debug)]
pub enum HandshakeError {
    /// The head grew past [`MAX_HEAD`] without ending.
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The bytes are not HTTP/1.x.
    BadHttp(httparse::Error),
    /// The server answered with this status instead of 200.
    Status(u16),
    /// `Content-Length` is not a number, or the body is larger than [`MAX_BODY`].
    BadContentLength,
    /// A chunked body is malformed.
    BadChunk,
    /// The connection ended before the message was complete.
    Truncated,
    /// The reply body is not a JSON object.
    BadJson(serde_json::Error),
    /// A reply field has a value no NodePass would send (the name of the field).
    BadField(&'static str),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::HeadTooLarge { limit } => {
                write!(f, "handshake head larger than {limit} bytes")
            }
            HandshakeError::BadHttp(e) => write!(f, "handshake is not HTTP: {e}"),
            HandshakeError::Status(code) => write!(f, "handshake refused with status {code}"),
            HandshakeError::BadContentLength => f.write_str("handshake reply length is invalid"),
            HandshakeError::BadChunk => f.write_str("handshake reply chunking is invalid"),
            HandshakeError::Truncated => f.write_str("connection closed mid-handshake"),
            HandshakeError::BadJson(e) => write!(f, "handshake reply is not JSON: {e}"),
            HandshakeError::BadField(name) => {
                write!(f, "handshake reply field `{name}` is invalid")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Direction of user traffic, as the server announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `+`: the client accepts users and the server dials targets (server mode 2).
    Plus,
    /// `-`: the server accepts users and the client dials targets (server mode 1).
    Minus,
}

impl Flow {
    /// The wire character.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Plus => "+",
            Flow::Minus => "-",
        }
    }
}

/// What the server tells the client in the handshake reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelConfig {
    /// Direction of user traffic.
    pub flow: Flow,
    /// The server's maximum pool capacity.
    pub max: u32,
    /// TLS mode of pool connections: 0, 1 or 2.
    pub tls: u8,
    /// Pool transport: 0 = TCP (the only one we implement), 1 QUIC, 2 WebSocket, 3 HTTP/2.
    pub pool_type: u8,
}

/// The bearer token: lowercase hex of HMAC-SHA256 keyed by the tunnel key over an empty
/// message. It is a fixed string for a given key (a Go weakness, §9.2).
pub fn auth_token(key: &str) -> String {
    let digest = token_digest(key);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn token_digest(key: &str) -> [u8; 32] {
    // SimpleHmac accepts keys of any length, so this cannot fail.
    let mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(key.as_bytes());
    match mac {
        Ok(mac) => mac.finalize().into_bytes().into(),
        Err(_) => [0; 32],
    }
}

/// Whether a presented token is the key's (compared with the crate's one constant-time
/// comparison of secrets).
fn token_matches(presented: &str, key: &str) -> bool {
    super::auth::same_secret(presented.as_bytes(), auth_token(key).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_token_is_hex_hmac_sha256_of_the_empty_message() {
        // Reference values from Python's hmac module.
        assert_eq!(
            auth_token("mykey"),
            "e1b24265bf2e0b20c81837993b4f1415f7b68c503114d100a40601eca6a2745f"
        );
        assert_eq!(
            auth_token("e68be2b4"),
            "8940572756af096447802f92b4c843ac61de93b80af9d37a85ed994508656d7e"
        );
    }

    #[test]
    fn token_comparison_accepts_only_the_exact_token() {
        let good = auth_token("k");
        assert!(token_matches(&good, "k"));
        assert!(!token_matches(&good.to_uppercase(), "k"));
        assert!(!token_matches(&good[..63], "k"));
        assert!(!token_matches("", "k"));
        assert!(!token_matches(&auth_token("other"), "k"));
    }
}
