//! tokio's `AsyncRead`/`AsyncWrite` (what the h2 crate drives) over the two halves of a
//! monoio TLS stream. Each half is moved into the one operation it runs and comes back
//! when the operation ends, so no borrow outlives a poll and nothing is `unsafe`.
//!
//! monoio-compat's `StreamWrapper` is not used: it runs a flush and a later write on the
//! same stream at once, and monoio-rustls has one write buffer per stream, which panics
//! ("buffer mut expected") when two writes use it. Here writes, flushes and the shutdown
//! go through one slot, one at a time; the read half of a split TLS stream never writes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use tokio::io::ReadBuf;

type Op<H, T> = Pin<Box<dyn Future<Output = (H, T)>>>;
/// A read's result and its buffer.
type Read = (io::Result<usize>, Vec<u8>);

/// How much one read takes from the stream.
const READ_CHUNK: usize = 64 * 1024;

/// What the write slot is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Flush,
    Shutdown,
}

/// A read half and a write half as one tokio stream.
pub struct Compat<R, W> {
    r: Option<R>,
    buf: Vec<u8>,
    pos: usize,
    reading: Option<Op<R, Read>>,
    w: Option<W>,
    writing: Option<(Kind, Op<W, io::Result<()>>)>,
}

impl<R, W> Compat<R, W>
where
    R: AsyncReadRent + 'static,
    W: AsyncWriteRent + 'static,
{
    /// The halves of one stream.
    pub fn new(r: R, w: W) -> Self {
        Compat {
            r: Some(r),
            buf: Vec::new(),
            pos: 0,
            reading: None,
            w: Some(w),
            writing: None,
        }
    }

    /// Run the write slot's operation to its end; its kind and result.
    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Kind, io::Result<()>)>> {
        let Some((kind, op)) = self.writing.as_mut() else {
            return Poll::Ready(None);
        };
        let (w, res) = ready!(op.as_mut().poll(cx));
        let kind = *kind;
        self.writing = None;
        self.w = Some(w);
        Poll::Ready(Some((kind, res)))
    }

    /// Start `kind` on the write half (the slot is free) and poll it once.
    fn start(&mut self, cx: &mut Context<'_>, kind: Kind, data: Vec<u8>) -> Poll<io::Result<()>> {
        let Some(mut w) = self.w.take() else {
            return Poll::Ready(Err(io::Error::other("HTTP/2 stream write half lost")));
        };
        let mut op: Op<W, io::Result<()>> = match kind {
            Kind::Write => Box::pin(async move {
                let (res, _) = w.write_all(data).await;
                (w, res.map(|_| ()))
            }),
            Kind::Flush => Box::pin(async move {
                let res = w.flush().await;
                (w, res)
            }),
            Kind::Shutdown => Box::pin(async move {
                let res = w.shutdown().await;
                (w, res)
            }),
        };
        match op.as_mut().poll(cx) {
            Poll::Ready((w, res)) => {
                self.w = Some(w);
                Poll::Ready(res)
            }
            Poll::Pending => {
                self.writing = Some((kind, op));
                Poll::Pending
            }
        }
    }

    /// Finish a pending `kind` or start one (a pending other operation ends first).
    fn poll_op(&mut self, cx: &mut Context<'_>, kind: Kind) -> Poll<io::Result<()>> {
        if let Some((done, res)) = ready!(self.poll_slot(cx)) {
            res?;
            if done == kind {
                return Poll::Ready(Ok(()));
            }
        }
        self.start(cx, kind, Vec::new())
    }
}

impl<R, W> tokio::io::AsyncRead for Compat<R, W>
where
    R: AsyncReadRent + Unpin + 'static,
    W: AsyncWriteRent + Unpin + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.buf.len() {
                let n = out.remaining().min(this.buf.len() - this.pos);
                out.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.reading.is_none() {
                let Some(mut r) = this.r.take() else {
                    return Poll::Ready(Err(io::Error::other("HTTP/2 stream read half lost")));
                };
                let mut buf = std::mem::take(&mut this.buf);
                buf.clear();
                buf.reserve(READ_CHUNK);
                this.reading = Some(Box::pin(async move {
                    let (res, buf) = r.read(buf).await;
                    (r, (res, buf))
                }));
            }
            let Some(op) = this.reading.as_mut() else {
                continue;
            };
            let (r, (res, buf)) = ready!(op.as_mut().poll(cx));
            this.reading = None;
            this.r = Some(r);
            this.buf = buf;
            this.pos = 0;
            match res {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(_) => {}
            }
        }
    }
}

impl<R, W> tokio::io::AsyncWrite for Compat<R, W>
where
    R: AsyncReadRent + Unpin + 'static,
    W: AsyncWriteRent + Unpin + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some((_, res)) = ready!(this.poll_slot(cx)) {
            res?;
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Taken at once: the write runs on (a pending one ends before the next op).
        match this.start(cx, Kind::Write, data.to_vec()) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(data.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_op(cx, Kind::Flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_op(cx, Kind::Shutdown)
    }
}
