//! Pool type 2 (WebSocket, RFC 6455) as Go NodePass v1.14.0 speaks it (POOL_TYPES.md §2):
//! the upgrade request and its `101` answer, the accept key, and (in [`frame`]) the frame
//! codec. Socket-free like the rest of `proto`: callers feed the bytes they have read.
//!
//! The frame header codec is `tungstenite`'s (`FrameHeader::{parse, format}`); the
//! HTTP heads use `httparse` like the tunnel handshake; the accept key is SHA-1 + base64.

pub mod frame;

use std::fmt;

use sha1::{Digest, Sha1};

use super::handshake::{Parse, MAX_HEAD};

/// RFC 6455 §1.3: appended to the client's key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID);
    let mut out = Vec::with_capacity(28);
    super::base64::encode_into(&sha.finalize(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes.
pub fn key_from(random: [u8; 16]) -> String {
    let mut out = Vec::with_capacity(24);
    super::base64::encode_into(&random, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Why an upgrade request or answer is not one we take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeError {
    /// The head grew past [`MAX_HEAD`] without ending.
    HeadTooLarge,
    /// The bytes are not HTTP/1.x.
    NotHttp(String),
    /// An HTTP request without `Upgrade: websocket` (e.g. a tunnel handshake).
    NotUpgrade,
    /// Not `GET`.
    Method(String),
    /// Older than HTTP/1.1.
    HttpVersion,
    /// `Connection` does not list `upgrade`.
    Connection,
    /// `Sec-WebSocket-Version` is not 13 (the value, or empty when missing).
    Version(String),
    /// `Sec-WebSocket-Key` is missing or not base64 of 16 bytes.
    Key,
    /// The server answered with this status instead of 101.
    Status(u16),
    /// The server's `Sec-WebSocket-Accept` does not match our key.
    Accept,
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::HeadTooLarge => write!(f, "upgrade head larger than {MAX_HEAD} bytes"),
            UpgradeError::NotHttp(e) => write!(f, "not HTTP: {e}"),
            UpgradeError::NotUpgrade => f.write_str("not a WebSocket upgrade"),
            UpgradeError::Method(m) => write!(f, "upgrade with method {m:?}, not GET"),
            UpgradeError::HttpVersion => f.write_str("upgrade over HTTP/1.0"),
            UpgradeError::Connection => f.write_str("`Connection` does not say upgrade"),
            UpgradeError::Version(v) => write!(f, "WebSocket version {v:?}, not 13"),
            UpgradeError::Key => f.write_str("`Sec-WebSocket-Key` is not 16 bytes of base64"),
            UpgradeError::Status(s) => write!(f, "upgrade answered with status {s}"),
            UpgradeError::Accept => f.write_str("`Sec-WebSocket-Accept` does not match our key"),
        }
    }
}

impl std::error::Error for UpgradeError {}

/// A valid upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The client's `Sec-WebSocket-Key`.
    pub key: String,
    /// Length of the head; bytes after it are frames.
    pub head_len: usize,
}

fn header<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn lists(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|v| {
        v.split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Parse an upgrade request from the bytes read so far, with coder/websocket's checks
/// (ws/accept.go: HTTP/1.1+, GET, `Connection: upgrade`, `Upgrade: websocket`, version 13,
/// a 16-byte base64 key). Any path is taken, as Go's `/` mux pattern does.
pub fn parse_upgrade(buf: &[u8]) -> Result<Parse<Upgrade>, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(Parse::Partial),
        Ok(_) => return Err(UpgradeError::HeadTooLarge),
        Err(e) => return Err(UpgradeError::NotHttp(e.to_string())),
    };
    let h = req.headers;
    if !lists(header(h, "Upgrade"), "websocket") {
        return Err(UpgradeError::NotUpgrade);
    }
    let method = req.method.unwrap_or_default();
    if method != "GET" {
        return Err(UpgradeError::Method(method.to_owned()));
    }
    if req.version != Some(1) {
        return Err(UpgradeError::HttpVersion);
    }
    if !lists(header(h, "Connection"), "upgrade") {
        return Err(UpgradeError::Connection);
    }
    let version = header(h, "Sec-WebSocket-Version").unwrap_or_default();
    if version.trim_ascii() != b"13" {
        return Err(UpgradeError::Version(
            String::from_utf8_lossy(version).into_owned(),
        ));
    }
    let key = header(h, "Sec-WebSocket-Key")
        .unwrap_or_default()
        .trim_ascii();
    let mut raw = Vec::new();
    if super::base64::decode_into(key, &mut raw).is_err() || raw.len() != 16 {
        return Err(UpgradeError::Key);
    }
    Ok(Parse::Complete(Upgrade {
        key: String::from_utf8_lossy(key).into_owned(),
        head_len,
    }))
}

/// The client's upgrade request, byte for byte as Go's `websocket.Dial` sends it
/// (POOL_TYPES.md §2, header names as Go canonicalises them). `host`: the tunnel host
/// without port.
pub fn encode_upgrade(host: &str, key: &str) -> Vec<u8> {
    let host: String = host.chars().filter(|c| !c.is_ascii_control()).collect();
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n\
         Connection: Upgrade\r\nSec-Websocket-Key: {key}\r\nSec-Websocket-Version: 13\r\n\
         Upgrade: websocket\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    .into_bytes()
}

/// The server's `101` for a valid upgrade (coder/websocket's headers, without `Date`).
pub fn encode_switching(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
         Sec-Websocket-Accept: {}\r\nUpgrade: websocket\r\n\r\n",
        accept_key(key)
    )
    .into_bytes()
}

/// A plain-text HTTP error answer (`400 …`, `503 pool full`), as Go's `http.Error` writes.
pub fn encode_refusal(status: u16, body: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body: String = body.chars().filter(|c| !c.is_ascii_control()).collect();
    format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: text/plain; \
         charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\n\r\n{body}\n",
        body.len() + 1
    )
    .into_bytes()
}

/// Parse the server's answer to our upgrade: `101`, `Upgrade: websocket`,
/// `Connection: upgrade` and the accept value for `key`. `Ok(Complete(n))`: the head is
/// `n` bytes long and frames follow.
pub fn parse_switching(buf: &[u8], key: &str) -> Result<Parse<usize>, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(Parse::Partial),
        Ok(_) => return Err(UpgradeError::HeadTooLarge),
        Err(e) => return Err(UpgradeError::NotHttp(e.to_string())),
    };
    let code = res.code.unwrap_or_default();
    if code != 101 {
        return Err(UpgradeError::Status(code));
    }
    let h = res.headers;
    if !lists(header(h, "Upgrade"), "websocket") {
        return Err(UpgradeError::NotUpgrade);
    }
    if !lists(header(h, "Connection"), "upgrade") {
        return Err(UpgradeError::Connection);
    }
    let got = header(h, "Sec-WebSocket-Accept").unwrap_or_default();
    if got.trim_ascii() != accept_key(key).as_bytes() {
        return Err(UpgradeError::Accept);
    }
    Ok(Parse::Complete(head_len))
}

#[cfg(test)]
mod tests;
