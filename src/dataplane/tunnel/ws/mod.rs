//! Pool type 2: a pool connection that carries WebSocket frames (POOL_TYPES.md §2).
//!
//! [`WsConn`] wraps a plain or TLS pool connection after its upgrade; its halves are the
//! `Ws` variants of `PoolRead`/`PoolWrite`, so sessions, signals and UDP run on it
//! unchanged. As Go's `websocket.NetConn`: every write is one binary message in one final
//! frame (a client's masked); a read returns payload of one frame at most, so one
//! datagram = one message keeps its boundary. Pings are answered, pongs ignored; a close
//! 1000/1001 reads as EOF, and the close is echoed by the write half when it closes (a
//! write half that closes first sends close 1000). Between two of our peers a close
//! frame is therefore a half-close: each direction ends with its own close frame, and
//! a Go peer (which closes the whole connection on either) sees Go's behaviour.
//! Control answers (pong, close) are queued by the read half and sent by the write half
//! before its next frame or its close: Go never pings, so this costs nothing there.

mod raw;
mod upgrade;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::BufResult;

use super::pool::PoolConn;
use super::pool_io::{PoolRead, PoolWrite};
use crate::proto::ws::frame::{self, Decoder, Event, Masks, Role, CLOSE_AWAY, CLOSE_NORMAL};
use crate::sys::SocketFd;

use raw::Raw;
pub(super) use upgrade::{accept, connect, Accepted};

/// State both halves see: control frames the read half wants sent, the peer's close.
#[derive(Default)]
struct Shared {
    /// Whole frames (pongs, a close) for the write half to send first.
    outbox: RefCell<Vec<u8>>,
    /// A close frame is queued or sent: nothing may follow it.
    close_sent: Cell<bool>,
    /// The code of the peer's close frame, to echo.
    peer_close: Cell<Option<u16>>,
}

/// The reading side: frames in, payload out.
struct Rx {
    dec: Decoder,
    /// Received bytes; `buf[pos..]` are not decoded yet.
    buf: Vec<u8>,
    pos: usize,
    /// The peer's close was read (or the stream failed): reads return EOF.
    done: bool,
    masks: Option<Masks>,
    shared: Rc<Shared>,
}

/// The writing side: payload in, frames out.
struct Tx {
    masks: Option<Masks>,
    scratch: Vec<u8>,
    shared: Rc<Shared>,
}

/// Room kept for a frame header and a control frame beside a read's payload.
const SLACK: usize = frame::MAX_HEADER + 125 + 16;
/// Smallest read into the receive buffer.
const MIN_READ: usize = 4096;
/// Receive buffer of a connection that relays (allocated at its first large read, so an
/// idle pool connection holds none).
const RELAY_READ: usize = 64 * 1024;

impl Rx {
    /// Read payload into `out`: `Ok(0)` at the peer's close or a clean end of stream.
    /// Like every read on a pool connection, it must not be dropped half way and the
    /// stream read again (the receive buffer is in the raw read while it waits): the
    /// tunnel ends such reads by shutting the socket down, never by dropping them.
    async fn read<R: Raw, T: IoBufMut>(&mut self, raw: &mut R, mut out: T) -> BufResult<usize, T> {
        let max = out.bytes_total();
        if self.done || max == 0 {
            return (Ok(0), out);
        }
        loop {
            let decoded = self.dec.decode(&mut self.buf[self.pos..], max);
            let start = self.pos;
            let event = match decoded {
                Ok((used, event)) => {
                    self.pos += used;
                    event
                }
                Err(e) => {
                    self.done = true;
                    self.queue_close(e.close_code());
                    return (Err(io::Error::new(io::ErrorKind::InvalidData, e)), out);
                }
            };
            match event {
                Some(Event::Data(r)) => {
                    let n =
                        crate::sys::fill_buf(&mut out, &self.buf[start + r.start..start + r.end]);
                    return (Ok(n), out);
                }
                Some(Event::Ping(payload)) => {
                    let mask = self.masks.as_mut().map(Masks::next_mask);
                    frame::encode_pong(&payload, mask, &mut self.shared.outbox.borrow_mut());
                }
                Some(Event::Pong) => {}
                Some(Event::Close(code)) => return (self.closed_by_peer(code), out),
                None => {
                    if let Err(e) = self.fill(raw, max).await {
                        self.done = true;
                        return (e, out);
                    }
                }
            }
        }
    }

    /// The peer's close frame: echo it (queued), EOF for 1000/1001 and none, an error
    /// naming the code otherwise (as Go's `NetConn`).
    fn closed_by_peer(&mut self, code: Option<u16>) -> io::Result<usize> {
        self.done = true;
        let code = code.unwrap_or(CLOSE_NORMAL);
        self.shared.peer_close.set(Some(code));
        match code {
            CLOSE_NORMAL | CLOSE_AWAY => Ok(0),
            other => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("WebSocket closed by peer with code {other}"),
            )),
        }
    }

    /// Queue a close frame with `code` unless one is queued or sent.
    fn queue_close(&mut self, code: u16) {
        if !self.shared.close_sent.replace(true) {
            let mask = self.masks.as_mut().map(Masks::next_mask);
            frame::encode_close(code, mask, &mut self.shared.outbox.borrow_mut());
        }
    }

    /// Read more bytes for a frame needing up to `max` payload bytes. `Err(Ok(0))`: the
    /// stream ended cleanly between frames.
    async fn fill<R: Raw>(&mut self, raw: &mut R, max: usize) -> Result<(), io::Result<usize>> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        let mut want = self.buf.len() + max.saturating_add(SLACK);
        if max >= RELAY_READ / 4 {
            // A relay's read: room for a few frames per system call.
            want = want.max(RELAY_READ);
        }
        if self.buf.capacity() < want || self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf
                .reserve(want.max(self.buf.len() + MIN_READ) - self.buf.len());
        }
        let len = self.buf.len();
        let spare = std::mem::take(&mut self.buf).slice_mut(len..);
        let (res, spare) = raw.read_raw(spare).await;
        self.buf = spare.into_inner();
        match res {
            Ok(0) if self.buf.is_empty() && self.dec.between_frames() => Err(Ok(0)),
            Ok(0) => Err(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "WebSocket stream ended inside a frame",
            ))),
            Ok(_) => Ok(()),
            Err(e) => Err(Err(e)),
        }
    }
}

impl Tx {
    /// Send `payload` as one binary message (after any queued control frames).
    async fn write<W: Raw>(&mut self, raw: &mut W, payload: &[u8]) -> io::Result<()> {
        if self.shared.close_sent.get() {
            // A close the read half queued (after a protocol error) still goes out.
            let out = self.take_outbox();
            if !out.is_empty() {
                let _ = self.send(raw, out).await;
            }
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "WebSocket already closed",
            ));
        }
        let mut out = self.take_outbox();
        let mask = self.masks.as_mut().map(Masks::next_mask);
        frame::encode_binary(payload, mask, &mut out);
        self.send(raw, out).await
    }

    /// Send queued control frames and our close (echoing the peer's code).
    async fn close<W: Raw>(&mut self, raw: &mut W) -> io::Result<()> {
        let mut out = self.take_outbox();
        if !self.shared.close_sent.replace(true) {
            let code = self.shared.peer_close.get().unwrap_or(CLOSE_NORMAL);
            let mask = self.masks.as_mut().map(Masks::next_mask);
            frame::encode_close(code, mask, &mut out);
        }
        if out.is_empty() {
            return Ok(());
        }
        self.send(raw, out).await
    }

    fn take_outbox(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        out.append(&mut self.shared.outbox.borrow_mut());
        out
    }

    async fn send<W: Raw>(&mut self, raw: &mut W, out: Vec<u8>) -> io::Result<()> {
        let (res, out) = raw.write_raw(out).await;
        // Keep a relay-sized scratch, not a huge one.
        if out.capacity() <= 64 * 1024 {
            self.scratch = out;
        }
        res
    }
}

/// A pool connection after its WebSocket upgrade.
pub struct WsConn {
    raw: PoolConn,
    rx: Rx,
    tx: Tx,
    /// The TCP socket under `raw`.
    fd: SocketFd,
}

impl WsConn {
    /// Frames over `raw` (upgraded already) for `role`; `early` are bytes read after the
    /// upgrade head; `seed` seeds a client's masks (one half each).
    fn new(raw: PoolConn, fd: SocketFd, role: Role, early: Vec<u8>, seed: [u8; 16]) -> WsConn {
        let shared = Rc::new(Shared::default());
        let client = role == Role::Client;
        let (a, b) = seed.split_at(8);
        let masks = |half: &[u8]| {
            let mut s = [0u8; 8];
            s.copy_from_slice(half);
            client.then(|| Masks::new(s))
        };
        WsConn {
            raw,
            rx: Rx {
                dec: Decoder::new(role),
                buf: early,
                pos: 0,
                done: false,
                masks: masks(a),
                shared: Rc::clone(&shared),
            },
            tx: Tx {
                masks: masks(b),
                scratch: Vec::new(),
                shared,
            },
            fd,
        }
    }

    /// Whether bytes after the upgrade head are waiting (a real client sends none).
    pub fn has_early_bytes(&self) -> bool {
        self.rx.pos < self.rx.buf.len()
    }

    /// The TCP stream under a plain (`ws://`) connection.
    pub fn plain_stream(&self) -> Option<&monoio::net::TcpStream> {
        match &self.raw {
            PoolConn::Plain(s) => Some(s),
            _ => None,
        }
    }

    /// Send `bytes` as one binary message.
    pub async fn send_message(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tx.write(&mut self.raw, bytes).await
    }

    /// Read exactly `N` payload bytes.
    pub async fn recv_exact<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut out = [0u8; N];
        let mut got = 0;
        while got < N {
            let buf = vec![0u8; N - got].into_boxed_slice();
            let (res, buf) = self.rx.read(&mut self.raw, buf).await;
            let n = res?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "WebSocket closed before the expected bytes",
                ));
            }
            out[got..got + n].copy_from_slice(&buf[..n]);
            got += n;
        }
        Ok(out)
    }

    /// Split into halves for two tasks.
    pub fn into_split(self) -> (PoolRead, PoolWrite) {
        let (r, w) = self.raw.into_split();
        (
            PoolRead::Ws(Box::new(WsRead {
                raw: r,
                rx: self.rx,
                fd: self.fd,
            })),
            PoolWrite::Ws(Box::new(WsWrite {
                raw: w,
                tx: self.tx,
            })),
        )
    }
}

/// The reading half of a WebSocket pool connection.
pub struct WsRead {
    raw: PoolRead,
    rx: Rx,
    fd: SocketFd,
}

impl Drop for WsRead {
    /// Bytes may follow the peer's close frame that no one reads (a TLS close_notify):
    /// closing over them would reset the connection and could destroy data the peer has
    /// not read yet, so they are drained first. The socket is open here (`raw` drops
    /// after this).
    fn drop(&mut self) {
        self.fd.drain_now();
    }
}

/// The writing half of a WebSocket pool connection.
pub struct WsWrite {
    raw: PoolWrite,
    tx: Tx,
}

impl WsRead {
    /// Payload into `buf` (see the module doc).
    pub async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.rx.read(&mut self.raw, buf).await
    }
}

impl WsWrite {
    /// `buf` as one binary message; all of it is written.
    pub async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let bytes = crate::sys::buf_bytes(&buf);
        let n = bytes.len();
        let res = self.tx.write(&mut self.raw, bytes).await;
        (res.map(|()| n), buf)
    }

    /// Flush the raw stream (each message is flushed already).
    pub async fn flush(&mut self) -> io::Result<()> {
        self.raw.raw_flush().await
    }

    /// Close: our close frame (or the echo of the peer's), then the raw stream's
    /// shutdown (a FIN, or TLS close_notify and FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        let sent = self.tx.close(&mut self.raw).await;
        let shut = self.raw.raw_shutdown().await;
        sent.and(shut)
    }
}
