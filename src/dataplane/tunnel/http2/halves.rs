//! The IO of an HTTP/2 pool entry: reads of the peer's DATA frames (the receive window
//! given back as bytes are consumed), writes that wait for send capacity, the closes, and
//! the `PoolRead`/`PoolWrite` halves.

use std::future::poll_fn;
use std::io;

use bytes::{Buf, Bytes};
use h2::Reason;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::BufResult;

use super::{Role, Rx, TxHandle, WRITE_CHUNK};

impl Rx {
    /// Bytes into `out`; `Ok(0)` at END_STREAM, a forced teardown, or the peer's CANCEL.
    pub(super) async fn read<T: IoBufMut>(&mut self, mut out: T) -> BufResult<usize, T> {
        loop {
            if self.end.is_shut() {
                return (Ok(0), out);
            }
            if !self.leftover.is_empty() {
                let n = crate::sys::fill_buf(&mut out, &self.leftover);
                self.leftover.advance(n);
                let _ = self.recv.flow_control().release_capacity(n);
                return (Ok(n), out);
            }
            if self.eof || out.bytes_total() == 0 {
                return (Ok(0), out);
            }
            let next = monoio::select! {
                d = self.recv.data() => d,
                _ = self.end.wait_shut() => return (Ok(0), out),
            };
            match next {
                None => self.eof = true,
                Some(Ok(bytes)) => self.leftover = bytes,
                Some(Err(e)) => {
                    self.eof = true;
                    self.end.set_gone();
                    return match closed_by_peer(&e) {
                        true => (Ok(0), out),
                        false => (Err(to_io(e)), out),
                    };
                }
            }
        }
    }
}

/// The peer ended the stream the way a close does (CANCEL, NO_ERROR).
fn closed_by_peer(e: &h2::Error) -> bool {
    e.is_remote() && matches!(e.reason(), Some(Reason::CANCEL | Reason::NO_ERROR))
}

fn to_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e
            .into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"));
    }
    io::Error::new(io::ErrorKind::ConnectionReset, e)
}

fn shut_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "HTTP/2 stream closed")
}

impl TxHandle {
    /// Send all of `bytes`, each chunk once the peer's window has room for it.
    pub(super) async fn write(&mut self, mut bytes: Bytes) -> io::Result<()> {
        let tx = &self.tx;
        while !bytes.is_empty() {
            if self.end.is_shut() || tx.ended.get() {
                return Err(shut_error());
            }
            let want = bytes.len().min(WRITE_CHUNK);
            tx.send.borrow_mut().reserve_capacity(want);
            let cap = poll_fn(|cx| tx.send.borrow_mut().poll_capacity(cx));
            let got = monoio::select! {
                c = cap => c,
                _ = self.end.wait_shut() => return Err(shut_error()),
            };
            let n = match got {
                None => return Err(shut_error()),
                Some(Err(e)) => return Err(to_io(e)),
                Some(Ok(n)) => n.min(bytes.len()),
            };
            if n == 0 {
                continue;
            }
            let chunk = bytes.split_to(n);
            tx.send
                .borrow_mut()
                .send_data(chunk, false)
                .map_err(to_io)?;
        }
        Ok(())
    }

    /// END_STREAM: this direction is done (the other may go on).
    fn finish(&mut self) -> io::Result<()> {
        if self.tx.ended.replace(true) {
            return Ok(());
        }
        self.tx
            .send
            .borrow_mut()
            .send_data(Bytes::new(), true)
            .map_err(to_io)
    }
}

impl Drop for TxHandle {
    fn drop(&mut self) {
        self.tx.taken.raise();
        if self.tx.ended.replace(true) {
            return;
        }
        let mut send = self.tx.send.borrow_mut();
        match self.role {
            // Go's client closes an entry with RST_STREAM(CANCEL).
            Role::Client => send.send_reset(Reason::CANCEL),
            Role::Server => {
                let _ = send.send_data(Bytes::new(), true);
            }
        }
    }
}

/// The reading half of an HTTP/2 pool entry.
pub struct H2Read {
    pub(super) rx: Rx,
}

impl H2Read {
    /// Bytes into `buf` (see [`Rx::read`]).
    pub async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.rx.read(buf).await
    }
}

/// The writing half of an HTTP/2 pool entry.
pub struct H2Write {
    pub(super) tx: TxHandle,
}

impl H2Write {
    /// All of `buf` (DATA frames of at most the peer's frame size).
    pub async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let bytes = Bytes::copy_from_slice(crate::sys::buf_bytes(&buf));
        let n = bytes.len();
        let res = self.tx.write(bytes).await;
        (res.map(|()| n), buf)
    }

    /// The connection's driver writes frames out as they are queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// END_STREAM.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.tx.finish()
    }
}
