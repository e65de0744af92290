//! Pool type 3: a pool entry that is one HTTP/2 stream (POOL_TYPES.md §3).
//!
//! The client's request body carries client→server bytes, the server's response body the
//! other way. [`H2Conn`]'s halves are the `H2` variants of `PoolRead`/`PoolWrite`, so
//! sessions, signals and UDP run on it unchanged. Every read and write races the entry's
//! [`StreamEnd`]: a forced teardown ends it at once. Writes wait for send capacity (the
//! peer's flow-control window), so a slow reader back-pressures the writer; reads give
//! the window back as the relay consumes bytes.
//!
//! Closing: a write half's shutdown sends END_STREAM (a half-close, as a TCP FIN). A
//! half dropped without it: the client resets the stream with CANCEL (as Go's client
//! `Close`), the server ends it with END_STREAM (Go's server sends nothing, which leaves
//! a Go client's half hanging; an END_STREAM ends it).

mod client;
mod compat;
mod halves;
mod server;

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;
use h2::{RecvStream, SendStream};

use super::pool_io::{PoolRead, PoolWrite};
use super::TunnelCtx;
use crate::dataplane::end::StreamEnd;
use crate::wake::LocalFlag;

pub use client::Dial;
pub(super) use client::{ensure_conn, open_stream, ClientConns};
pub use halves::{H2Read, H2Write};
pub(super) use server::serve;

/// Largest chunk a write asks send capacity for at once.
const WRITE_CHUNK: usize = 256 * 1024;

/// Which end of the stream this is (decides how an unfinished stream is closed).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// The send side, shared with the idle watcher while the entry waits in the pool.
struct Tx {
    send: RefCell<SendStream<Bytes>>,
    /// END_STREAM (or a reset) was sent.
    ended: Cell<bool>,
    /// The entry was taken or dropped: the idle watcher stops polling the stream.
    taken: LocalFlag,
    /// Counts this stream while it lives (the client's per-connection stream count).
    _live: Option<client::Live>,
}

/// One pool entry over an HTTP/2 stream.
pub struct H2Conn {
    rx: Rx,
    tx: TxHandle,
}

/// The read side: the peer's DATA frames.
struct Rx {
    recv: RecvStream,
    leftover: Bytes,
    eof: bool,
    end: Rc<StreamEnd>,
}

/// Owns the send side for a half or a whole entry; closes the stream when dropped.
struct TxHandle {
    tx: Rc<Tx>,
    end: Rc<StreamEnd>,
    role: Role,
}

impl H2Conn {
    /// An entry over a stream: `send`/`recv` are its halves, `end` its teardown state.
    fn new(
        send: SendStream<Bytes>,
        recv: RecvStream,
        end: Rc<StreamEnd>,
        role: Role,
        live: Option<client::Live>,
        t: &Rc<TunnelCtx>,
    ) -> H2Conn {
        let tx = Rc::new(Tx {
            send: RefCell::new(send),
            ended: Cell::new(false),
            taken: LocalFlag::default(),
            _live: live,
        });
        monoio::spawn(watch_idle(Rc::clone(&tx), Rc::clone(&end), Rc::clone(t)));
        H2Conn {
            rx: Rx {
                recv,
                leftover: Bytes::new(),
                eof: false,
                end: Rc::clone(&end),
            },
            tx: TxHandle { tx, end, role },
        }
    }

    /// The entry's teardown state.
    pub fn end(&self) -> Rc<StreamEnd> {
        Rc::clone(&self.rx.end)
    }

    /// Write all of `bytes`.
    pub async fn send_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tx.write(Bytes::copy_from_slice(bytes)).await
    }

    /// Read exactly `N` bytes.
    pub async fn recv_exact<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut out = [0u8; N];
        let mut got = 0;
        while got < N {
            let buf = vec![0u8; N - got];
            let (res, buf) = self.rx.read(buf).await;
            match res? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "HTTP/2 stream ended before the expected bytes",
                    ))
                }
                n => {
                    out[got..got + n].copy_from_slice(&buf[..n]);
                    got += n;
                }
            }
        }
        Ok(out)
    }

    /// Split into halves for two tasks.
    pub fn into_split(self) -> (PoolRead, PoolWrite) {
        self.tx.tx.taken.raise();
        (
            PoolRead::H2(Box::new(H2Read { rx: self.rx })),
            PoolWrite::H2(Box::new(H2Write { tx: self.tx })),
        )
    }
}

/// While the entry is idle, notice the peer resetting the stream or the connection
/// dying, so the pool drops it. Stops once the entry is taken: the send side has one
/// waker slot, which then belongs to the writer.
async fn watch_idle(tx: Rc<Tx>, end: Rc<StreamEnd>, t: Rc<TunnelCtx>) {
    let reset = poll_fn(|cx| {
        if tx.taken.is_raised() {
            return Poll::Ready(false);
        }
        match tx.send.borrow_mut().poll_reset(cx) {
            Poll::Ready(_) => Poll::Ready(true),
            Poll::Pending => Poll::Pending,
        }
    });
    let gone = monoio::select! {
        gone = reset => gone,
        _ = tx.taken.wait() => false,
        _ = end.wait_shut() => false,
    };
    if gone {
        end.set_gone();
        t.shard.sweep_gone();
    }
}
