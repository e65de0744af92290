//! A pool entry on QUIC: one bidirectional stream, and its read and write halves.
//!
//! Reads and writes poll the stream in the endpoint's state (no buffer is held by the
//! kernel, so dropping one half way loses nothing). Closing the write half is a FIN
//! (Go's `Close`); a stream dropped while its receive side is still open stops it, so the
//! peer's sends end and the stream stops counting against the limit. A shut stream
//! (its `StreamEnd` shut: forced teardown) resets and stops both directions at once.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::BufResult;
use quinn_proto::{ConnectionHandle, ReadError, ReadableError, StreamId, VarInt, WriteError};

use super::Ep;
use crate::dataplane::end::{End, StreamEnd};

/// The largest read from a stream at once (a relay buffer).
const MAX_READ: usize = 64 * 1024;

/// What both halves share; releasing it releases the stream.
struct Handle {
    ep: Rc<Ep>,
    ch: ConnectionHandle,
    id: StreamId,
    end: Rc<StreamEnd>,
    /// The receive side was read to its end (nothing to stop).
    read_done: Cell<bool>,
    /// The send side was finished (nothing to finish).
    write_done: Cell<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let (id, read_done, write_done) = (self.id, self.read_done.get(), self.write_done.get());
        if self.end.is_shut() {
            self.ep.shut_stream(self.ch, id);
        }
        self.ep.with_conn(self.ch, |c| {
            if !write_done {
                let _ = c.q.send_stream(id).finish();
            }
            if !read_done {
                let _ = c.q.recv_stream(id).stop(VarInt::from_u32(0));
            }
            c.streams.remove(&id);
        });
    }
}

/// One pool entry: a bidirectional stream of a QUIC connection.
pub struct QuicStream {
    h: Rc<Handle>,
}

/// The reading half of a QUIC pool entry.
pub struct QuicRead {
    h: Rc<Handle>,
}

/// The writing half of a QUIC pool entry.
pub struct QuicWrite {
    h: Rc<Handle>,
}

impl QuicStream {
    /// Stream `id` of connection `ch` (known to the endpoint already).
    pub fn new(ep: &Rc<Ep>, ch: ConnectionHandle, id: StreamId) -> io::Result<QuicStream> {
        let peer = ep
            .remote(ch)
            .ok_or_else(|| super::lost_error("connection closed"))?;
        let end = StreamEnd::new(peer.to_string());
        let attached = ep
            .with_conn(ch, |c| {
                c.streams
                    .get_mut(&id)
                    .map(|s| s.end = Some(Rc::clone(&end)))
                    .is_some()
            })
            .unwrap_or(false);
        if !attached {
            return Err(super::lost_error("stream closed"));
        }
        Ok(QuicStream {
            h: Rc::new(Handle {
                ep: Rc::clone(ep),
                ch,
                id,
                end,
                read_done: Cell::new(false),
                write_done: Cell::new(false),
            }),
        })
    }

    /// The entry's end (forced teardown, gone, the peer's name).
    pub fn end(&self) -> End {
        End::Stream(Rc::clone(&self.h.end))
    }

    /// The connection this stream is on.
    pub fn connection(&self) -> ConnectionHandle {
        self.h.ch
    }

    /// Split into halves for two tasks.
    pub fn into_split(self) -> (QuicRead, QuicWrite) {
        (
            QuicRead {
                h: Rc::clone(&self.h),
            },
            QuicWrite { h: self.h },
        )
    }

    /// Write all of `bytes`.
    pub async fn send_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            done += write_some(&self.h, &bytes[done..]).await?;
        }
        Ok(())
    }

    /// Read exactly `N` bytes.
    pub async fn recv_exact<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut out = [0u8; N];
        let mut got = 0;
        while got < N {
            let Some(bytes) = read_some(&self.h, N - got).await? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "QUIC stream ended before the expected bytes",
                ));
            };
            out[got..got + bytes.len()].copy_from_slice(&bytes);
            got += bytes.len();
        }
        Ok(out)
    }
}

fn shut_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "QUIC stream shut down")
}

/// Run `io` unless the entry is shut first (then the stream is reset and stopped).
async fn unless_shut<R>(
    h: &Handle,
    io: impl std::future::Future<Output = io::Result<R>>,
) -> io::Result<R> {
    if !h.end.is_shut() {
        monoio::select! {
            r = io => return r,
            _ = h.end.wait_shut() => {}
        }
    }
    h.ep.shut_stream(h.ch, h.id);
    Err(shut_error())
}

/// Read what is there (at most `max` bytes); `None` at the peer's FIN.
async fn read_some(h: &Handle, max: usize) -> io::Result<Option<bytes::Bytes>> {
    if max == 0 || h.read_done.get() {
        return Ok(None);
    }
    unless_shut(h, read_now(h, max)).await
}

async fn read_now(h: &Handle, max: usize) -> io::Result<Option<bytes::Bytes>> {
    let max = max.min(MAX_READ);
    std::future::poll_fn(|cx| {
        let mut inner = h.ep.inner.borrow_mut();
        let Some(c) = inner.conns.get_mut(&h.ch) else {
            return Poll::Ready(Err(super::lost_error("connection closed")));
        };
        let lost = c.lost.clone();
        let Some(slot) = c.streams.get(&h.id) else {
            return Poll::Ready(Err(shut_error()));
        };
        if slot.shut {
            return Poll::Ready(Err(shut_error()));
        }
        let mut rs = c.q.recv_stream(h.id);
        let mut chunks = match rs.read(true) {
            Ok(chunks) => chunks,
            Err(ReadableError::ClosedStream) => {
                h.read_done.set(true);
                return Poll::Ready(Ok(None));
            }
            Err(e) => return Poll::Ready(Err(io::Error::other(e.to_string()))),
        };
        let got = chunks.next(max);
        let transmit = chunks.finalize().should_transmit();
        let result = match got {
            Ok(Some(chunk)) => Poll::Ready(Ok(Some(chunk.bytes))),
            Ok(None) => {
                h.read_done.set(true);
                Poll::Ready(Ok(None))
            }
            Err(ReadError::Reset(code)) => {
                h.read_done.set(true);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!(
                        "stream {} canceled by remote with error code {code}",
                        h.id.index()
                    ),
                )))
            }
            Err(ReadError::Blocked) => match lost {
                Some(why) => Poll::Ready(Err(super::lost_error(&why))),
                None => {
                    if let Some(s) = c.streams.get_mut(&h.id) {
                        s.reader = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            },
        };
        if transmit || result.is_ready() {
            h.ep.drive(&mut inner, h.ch, Instant::now());
        }
        result
    })
    .await
}

/// Write what the stream takes now (at least one byte, waiting for credit).
async fn write_some(h: &Handle, bytes: &[u8]) -> io::Result<usize> {
    if h.write_done.get() {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "QUIC stream finished",
        ));
    }
    std::future::poll_fn(|cx| {
        let mut inner = h.ep.inner.borrow_mut();
        let Some(c) = inner.conns.get_mut(&h.ch) else {
            return Poll::Ready(Err(super::lost_error("connection closed")));
        };
        if let Some(why) = &c.lost {
            return Poll::Ready(Err(super::lost_error(why)));
        }
        match c.streams.get(&h.id) {
            Some(s) if !s.shut => {}
            _ => return Poll::Ready(Err(shut_error())),
        }
        let result = match c.q.send_stream(h.id).write(bytes) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(WriteError::Blocked) => {
                if let Some(s) = c.streams.get_mut(&h.id) {
                    s.writer = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            Err(WriteError::Stopped(code)) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!(
                    "stream {} canceled by remote with error code {code}",
                    h.id.index()
                ),
            ))),
            Err(WriteError::ClosedStream) => Poll::Ready(Err(shut_error())),
        };
        h.ep.drive(&mut inner, h.ch, Instant::now());
        result
    })
    .await
}

impl Ep {
    /// Forced teardown of stream `id`: reset our sends, stop the peer's, fail every read
    /// and write now and later.
    pub(super) fn shut_stream(&self, ch: ConnectionHandle, id: StreamId) {
        self.with_conn(ch, |c| {
            let _ = c.q.send_stream(id).reset(VarInt::from_u32(0));
            let _ = c.q.recv_stream(id).stop(VarInt::from_u32(0));
            if let Some(s) = c.streams.get_mut(&id) {
                s.shut = true;
                s.wake();
            }
        });
    }
}

impl QuicRead {
    /// Bytes into `buf`: `Ok(0)` at the peer's FIN.
    pub async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        match read_some(&self.h, buf.bytes_total()).await {
            Ok(Some(bytes)) => {
                let n = crate::sys::fill_buf(&mut buf, &bytes);
                (Ok(n), buf)
            }
            Ok(None) => (Ok(0), buf),
            Err(e) => (Err(e), buf),
        }
    }
}

impl QuicWrite {
    /// Write some of `buf` (all of it unless the stream is short of credit).
    pub async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = write_some(&self.h, crate::sys::buf_bytes(&buf)).await;
        (res, buf)
    }

    /// Nothing is buffered here.
    pub async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// FIN (Go's `Close` on a stream).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        if self.h.write_done.replace(true) {
            return Ok(());
        }
        let id = self.h.id;
        self.h
            .ep
            .with_conn(self.h.ch, |c| c.q.send_stream(id).finish())
            .map_or(Ok(()), |r| r.map_err(|e| io::Error::other(e.to_string())))
    }
}
