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
