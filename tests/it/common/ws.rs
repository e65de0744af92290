//! A blocking WebSocket end for tests that play Go's side of pool type 2: Go's upgrade
//! request bytes, and a `Read + Write` stream where each write is one binary message
//! (masked when this end is the client) and reads return message payload, answering
//! pings, as Go's `websocket.NetConn`. Frames are built with the crate's own codec; the
//! byte facts that matter (the request, `82 04 …`) are checked literally by the tests.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use nodepass::proto::ws::frame::{self, Decoder, Event, Role};

/// The RFC 6455 example key, and its accept value.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`WS_KEY`].
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Go's upgrade request (POOL_TYPES.md §2, captured from Go v1.14.0) for `host`, `key`.
pub fn go_upgrade_request(host: &str, key: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n\
         Connection: Upgrade\r\nSec-Websocket-Key: {key}\r\nSec-Websocket-Version: 13\r\n\
         Upgrade: websocket\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    .into_bytes()
}

/// Go's (coder/websocket's) `101` answer to a request with `key`, Date left out.
pub fn go_switching(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: {}\r\n\
         Upgrade: websocket\r\n\r\n",
        nodepass::proto::ws::accept_key(key)
    )
    .into_bytes()
}

/// A WebSocket end over a TCP stream (upgrade done).
pub struct WsStream<S: Read + Write = TcpStream> {
    io: S,
    /// The end this is: a client masks its frames and reads unmasked ones.
    role: Role,
    dec: Decoder,
    buf: Vec<u8>,
    pos: usize,
    closed: bool,
    /// Payload sizes of the data frames read so far.
    pub frame_sizes: Vec<usize>,
}

impl<S: Read + Write> WsStream<S> {
    /// Frames over `io`; `early` are bytes read after the upgrade head.
    pub fn new(io: S, role: Role, early: Vec<u8>) -> WsStream<S> {
        WsStream {
            io,
            role,
            dec: Decoder::new(role),
            buf: early,
            pos: 0,
            closed: false,
            frame_sizes: Vec::new(),
        }
    }

    fn mask(&self) -> Option<[u8; 4]> {
        (self.role == Role::Client).then_some([0x37, 0xfa, 0x21, 0x3d])
    }

    /// Send raw bytes (a hand-made frame).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes)
    }

    /// Send a close frame with `code`.
    pub fn close(&mut self, code: u16) -> io::Result<()> {
        let mut out = Vec::new();
        frame::encode_close(code, self.mask(), &mut out);
        self.io.write_all(&out)
    }

    /// The stream under the frames.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: Read + Write> Read for WsStream<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.closed || out.is_empty() {
            return Ok(0);
        }
        loop {
            let (used, event) = self
                .dec
                .decode(&mut self.buf[self.pos..], out.len())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let start = self.pos;
            self.pos += used;
            match event {
                Some(Event::Data(r)) => {
                    let n = r.len();
                    out[..n].copy_from_slice(&self.buf[start + r.start..start + r.end]);
                    self.frame_sizes.push(n);
                    return Ok(n);
                }
                Some(Event::Ping(p)) => {
                    let mut pong = Vec::new();
                    frame::encode_pong(&p, self.mask(), &mut pong);
                    self.io.write_all(&pong)?;
                }
                Some(Event::Pong) => {}
                Some(Event::Close(code)) => {
                    // As Go: echo the close, then the stream is over.
                    self.closed = true;
                    let _ = self.close(code.unwrap_or(1000));
                    return Ok(0);
                }
                None => {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                    let mut chunk = vec![0u8; 64 * 1024];
                    let n = self.io.read(&mut chunk)?;
                    if n == 0 {
                        return Ok(0);
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

impl<S: Read + Write> Write for WsStream<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(data.len() + 14);
        frame::encode_binary(data, self.mask(), &mut out);
        self.io.write_all(&out)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.io.flush()
    }
}

/// Read an HTTP head byte by byte from `s` (nothing past the blank line).
pub fn read_head(s: &mut impl Read) -> String {
    String::from_utf8_lossy(&super::read_http_head(s)).into_owned()
}
