//! HTTP/2 by hand for the type 3 tests: a blocking TLS client (ALPN `h2` or none), frames
//! as bytes (RFC 9113 §4.1), and the few HPACK header blocks Go's nph2 sends and answers
//! (static-table indices and literals without indexing, RFC 7541), so a test plays Go's
//! side from POOL_TYPES.md §3's byte facts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const END_STREAM: u8 = 1;
pub const END_HEADERS: u8 = 4;
pub const ACK: u8 = 1;

/// A TLS client stream as Go's nph2 client opens it (TLS 1.3, no verification).
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Go's nph2 client TLS: TLS 1.3, no verification, ALPN `alpn` (Go: `["h2"]`).
pub fn tls_connect(addr: SocketAddr, alpn: &[&[u8]]) -> std::io::Result<Tls> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect_timeout(&addr, super::STEP)?;
    sock.set_read_timeout(Some(super::STEP))?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// One frame's bytes.
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// One frame read: type, flags, stream, payload.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((head[3], head[4], stream, payload))
}

/// A header literal without indexing, its name by static index `name`.
fn literal(out: &mut Vec<u8>, name: u8, value: &str) {
    out.push(name); // 0000 xxxx, index < 15
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

/// The header block of Go's request `method https://authority/path`.
pub fn request_block(method: &str, path: &str, authority: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match method {
        "POST" => out.push(0x83),
        "GET" => out.push(0x82),
        other => literal(&mut out, 2, other),
    }
    out.push(0x87); // :scheme https
    match path {
        "/" => out.push(0x84),
        p => literal(&mut out, 4, p),
    }
    literal(&mut out, 1, authority);
    out
}

/// A response header block with `:status` (200 and 404 are static entries).
pub fn status_block(status: u16) -> Vec<u8> {
    match status {
        200 => vec![0x88],
        404 => vec![0x8d],
        s => {
            let mut out = Vec::new();
            literal(&mut out, 8, &s.to_string());
            out
        }
    }
}

/// The `:status` of a response header block as our server (h2 crate) encodes it: a
/// static-table index for the common codes.
pub fn status_of(block: &[u8]) -> Option<u16> {
    match block.first()? {
        0x88 => Some(200),
        0x89 => Some(204),
        0x8d => Some(404),
        _ => None,
    }
}

/// Go's client opening of a pool connection: preface, SETTINGS (push off, 4 MiB stream
/// window, 1 MiB frames), the 1 GiB connection window.
pub fn go_client_start(s: &mut impl Write) -> std::io::Result<()> {
    let mut settings = Vec::new();
    for (id, value) in [(2u16, 0u32), (4, 4 << 20), (5, 1 << 20)] {
        settings.extend_from_slice(&id.to_be_bytes());
        settings.extend_from_slice(&value.to_be_bytes());
    }
    s.write_all(PREFACE)?;
    s.write_all(&frame(SETTINGS, 0, 0, &settings))?;
    s.write_all(&frame(
        WINDOW_UPDATE,
        0,
        0,
        &((1u32 << 30) - 65535).to_be_bytes(),
    ))?;
    s.flush()
}

/// The remote ports of the TCP sockets `pid` holds open (by descriptor).
pub fn held_peer_ports(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && inodes.contains(f[9]))
        .filter_map(|f| u16::from_str_radix(f[2].rsplit(':').next()?, 16).ok())
        .collect()
}

/// One end of an HTTP/2 connection played by hand: frames in, filed per stream; SETTINGS
/// and PING acknowledged; every DATA byte given back with WINDOW_UPDATEs (as Go does once
/// its reader consumed them). The stream's socket needs a short read timeout.
pub struct Peer<S: Read + Write> {
    pub s: S,
    buf: Vec<u8>,
    /// Header blocks, DATA bytes, END_STREAM seen, RST_STREAM codes, per stream.
    pub headers: std::collections::HashMap<u32, Vec<u8>>,
    pub data: std::collections::HashMap<u32, Vec<u8>>,
    pub ended: std::collections::HashSet<u32>,
    pub resets: std::collections::HashMap<u32, u32>,
    /// Streams in the order their HEADERS arrived.
    pub opened: Vec<u32>,
    /// The peer's SETTINGS, in order.
    pub settings: Vec<(u16, u32)>,
    pub goaway: Option<u32>,
}

impl<S: Read + Write> Peer<S> {
    pub fn new(s: S, early: Vec<u8>) -> Peer<S> {
        Peer {
            s,
            buf: early,
            headers: Default::default(),
            data: Default::default(),
            ended: Default::default(),
            resets: Default::default(),
            opened: Vec::new(),
            settings: Vec::new(),
            goaway: None,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write");
        self.s.flush().expect("flush");
    }

    /// Read what is there (one socket read) and file every whole frame.
    pub fn pump(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
        while self.buf.len() >= 9 {
            let len = (usize::from(self.buf[0]) << 16)
                | (usize::from(self.buf[1]) << 8)
                | usize::from(self.buf[2]);
            if self.buf.len() < 9 + len {
                break;
            }
            let f: Vec<u8> = self.buf.drain(..9 + len).collect();
            let stream = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
            self.file(f[3], f[4], stream, f[9..].to_vec());
        }
        true
    }

    fn file(&mut self, ty: u8, flags: u8, stream: u32, payload: Vec<u8>) {
        match ty {
            HEADERS => {
                if !self.headers.contains_key(&stream) {
                    self.opened.push(stream);
                }
                self.headers.insert(stream, payload);
                if flags & END_STREAM != 0 {
                    self.ended.insert(stream);
                }
            }
            DATA => {
                if !payload.is_empty() {
                    let n = (payload.len() as u32).to_be_bytes();
                    let mut out = frame(WINDOW_UPDATE, 0, 0, &n);
                    if flags & END_STREAM == 0 {
                        out.extend(frame(WINDOW_UPDATE, 0, stream, &n));
                    }
                    self.send(&out);
                }
                self.data.entry(stream).or_default().extend(payload);
                if flags & END_STREAM != 0 {
                    self.ended.insert(stream);
                }
            }
            SETTINGS if flags & ACK == 0 => {
                for s in payload.chunks(6) {
                    if s.len() == 6 {
                        let id = u16::from_be_bytes([s[0], s[1]]);
                        let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                        self.settings.push((id, v));
                    }
                }
                self.send(&frame(SETTINGS, ACK, 0, &[]));
            }
            PING if flags & ACK == 0 => self.send(&frame(PING, ACK, 0, &payload)),
            RST_STREAM if payload.len() == 4 => {
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                self.resets.insert(stream, code);
            }
            GOAWAY if payload.len() >= 8 => {
                self.goaway = Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
            _ => {}
        }
    }

    /// Pump until `cond` holds (or `limit` passes, or the connection ends).
    pub fn until(
        &mut self,
        limit: std::time::Duration,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> bool {
        let start = std::time::Instant::now();
        loop {
            if cond(self) {
                return true;
            }
            if start.elapsed() > limit || !self.pump() {
                return cond(self);
            }
        }
    }

    /// Take the first `n` DATA bytes of `stream` once they are there.
    pub fn take(&mut self, stream: u32, n: usize) -> Vec<u8> {
        let ok = self.until(super::STEP, |p| {
            p.data.get(&stream).is_some_and(|d| d.len() >= n)
        });
        assert!(
            ok,
            "no {n} bytes on stream {stream}: {:?}",
            self.data.get(&stream)
        );
        self.data
            .get_mut(&stream)
            .map(|d| d.drain(..n).collect())
            .unwrap_or_default()
    }

    /// Take one signal line (up to its `\n`) from `stream`.
    pub fn take_line(&mut self, stream: u32) -> Vec<u8> {
        let ok = self.until(super::STEP, |p| {
            p.data.get(&stream).is_some_and(|d| d.contains(&b'\n'))
        });
        assert!(
            ok,
            "no line on stream {stream}: {:?}",
            self.data.get(&stream)
        );
        let d = self.data.get_mut(&stream).expect("data");
        let end = d.iter().position(|b| *b == b'\n').unwrap_or(0);
        d.drain(..=end).collect()
    }
}
