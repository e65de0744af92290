//! Datagrams on a pool connection, in the run's format.
//!
//! - Against a Go peer (NodePass v1.14.0): no framing. Each datagram is one write and each
//!   read is taken as one datagram. Over TLS that holds (one record each way); over plain
//!   TCP a burst can merge or split datagrams, as it does between two Go peers.
//! - Between two of our peers (both advertised `udp16` in the handshake, PROTOCOL.md "Beyond
//!   Go"): each datagram is a 2-byte big-endian length and the payload, written at once, so
//!   boundaries hold on every transport.
//!
//! Neither allocates per datagram: the writer frames into a scratch buffer it keeps, the
//! reader keeps the bytes of a partial frame for the next read.

use std::io;

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::super::pool_io::{PoolRead, PoolWrite};

/// The length prefix of a framed datagram.
const HEADER: usize = 2;

/// Writes whole datagrams to a pool connection.
pub struct DatagramWriter {
    w: PoolWrite,
    framed: bool,
    scratch: Vec<u8>,
}

impl DatagramWriter {
    /// `framed`: both ends speak `udp16`.
    pub fn new(w: PoolWrite, framed: bool) -> DatagramWriter {
        DatagramWriter {
            w,
            framed,
            scratch: Vec::new(),
        }
    }

    /// Write `buf[..n]` as one datagram; `buf` comes back.
    pub async fn send(&mut self, buf: Vec<u8>, n: usize) -> (io::Result<()>, Vec<u8>) {
        if !self.framed {
            let (res, slice) = self.w.write_all(buf.slice(0..n)).await;
            return (res.map(drop), slice.into_inner());
        }
        let Ok(len) = u16::try_from(n) else {
            // Larger than any UDP datagram: cannot come from a socket.
            return (Ok(()), buf);
        };
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&buf[..n]);
        let (res, out) = self.w.write_all(out).await;
        self.scratch = out;
        (res.map(drop), buf)
    }

    /// Write a whole owned datagram (a queued one).
    pub async fn send_owned(&mut self, datagram: Vec<u8>) -> io::Result<()> {
        let n = datagram.len();
        self.send(datagram, n).await.0
    }
}

/// Reads whole datagrams from a pool connection.
pub struct DatagramReader {
    r: PoolRead,
    framed: bool,
    /// Framed: bytes read and not yet returned (at most one partial frame after a return).
    pending: Vec<u8>,
    chunk: Vec<u8>,
}

impl DatagramReader {
    /// `framed`: both ends speak `udp16`; `max` is the largest datagram we relay.
    pub fn new(r: PoolRead, framed: bool, max: usize) -> DatagramReader {
        DatagramReader {
            r,
            framed,
            pending: Vec::new(),
            chunk: if framed {
                vec![0u8; max.max(HEADER) + HEADER]
            } else {
                Vec::new()
            },
        }
    }

    /// The next datagram, copied to the front of `buf` (whose length is its capacity):
    /// `Some(n)`, or `None` when the connection ended. `buf` comes back either way. A
    /// framed datagram longer than `buf` is skipped (logged).
    pub async fn next(&mut self, buf: Vec<u8>) -> (Option<usize>, Vec<u8>) {
        if !self.framed {
            let (res, buf) = self.r.read(buf).await;
            return match res {
                Ok(0) | Err(_) => (None, buf),
                Ok(n) => (Some(n), buf),
            };
        }
        let mut buf = buf;
        loop {
            match self.pop_frame(&mut buf) {
                Some(Some(n)) => return (Some(n), buf),
                Some(None) => continue,
                None => {}
            }
            let chunk = std::mem::take(&mut self.chunk);
            let (res, chunk) = self.r.read(chunk).await;
            match res {
                Ok(0) | Err(_) => {
                    self.chunk = chunk;
                    return (None, buf);
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
            }
            self.chunk = chunk;
        }
    }

    /// A whole frame from `pending`: `Some(Some(n))` copied into `buf`, `Some(None)` one
    /// skipped (too long for `buf`), `None` not enough bytes yet.
    fn pop_frame(&mut self, buf: &mut [u8]) -> Option<Option<usize>> {
        let header = self.pending.get(..HEADER)?;
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        let frame = self.pending.get(HEADER..HEADER + len)?;
        let copied = match buf.get_mut(..len) {
            Some(dst) => {
                dst.copy_from_slice(frame);
                Some(len)
            }
            None => {
                log::debug!("udp datagram of {len} bytes over the buffer size: dropped");
                None
            }
        };
        self.pending.drain(..HEADER + len);
        Some(copied)
    }
}
