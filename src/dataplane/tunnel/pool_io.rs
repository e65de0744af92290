//! Read and write halves of a pool connection, plain or TLS, behind one type each so the
//! copy relay, the UDP pumps and the control channel are written once for both, and for
//! pool type 2, whose frames live in `ws.rs`.

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::{ClientTlsStream, ServerTlsStream};

use super::http2::{H2Read, H2Write};
use super::pool::PoolConn;
use super::quic::{QuicRead, QuicWrite};
use super::ws::{WsRead, WsWrite};
use crate::dataplane::relay::WaitReadable;

/// The reading half of a pool connection.
pub enum PoolRead {
    /// Plain TCP.
    Plain(OwnedReadHalf<TcpStream>),
    /// TLS, server end.
    ServerTls(OwnedReadHalf<ServerTlsStream<TcpStream>>),
    /// TLS, client end.
    ClientTls(OwnedReadHalf<ClientTlsStream<TcpStream>>),
    /// WebSocket frames over one of the above.
    Ws(Box<WsRead>),
    /// A QUIC stream's receive side.
    Quic(QuicRead),
    /// An HTTP/2 stream's DATA frames.
    H2(Box<H2Read>),
}

/// The writing half of a pool connection.
pub enum PoolWrite {
    /// Plain TCP.
    Plain(OwnedWriteHalf<TcpStream>),
    /// TLS, server end.
    ServerTls(OwnedWriteHalf<ServerTlsStream<TcpStream>>),
    /// TLS, client end.
    ClientTls(OwnedWriteHalf<ClientTlsStream<TcpStream>>),
    /// WebSocket frames over one of the above.
    Ws(Box<WsWrite>),
    /// A QUIC stream's send side.
    Quic(QuicWrite),
    /// An HTTP/2 stream's DATA frames.
    H2(Box<H2Write>),
}

impl PoolConn {
    /// Split into halves that can be driven by two tasks.
    pub fn into_split(self) -> (PoolRead, PoolWrite) {
        match self {
            PoolConn::Plain(s) => {
                let (r, w) = Splitable::into_split(s);
                (PoolRead::Plain(r), PoolWrite::Plain(w))
            }
            PoolConn::ServerTls(t) => {
                let (r, w) = Splitable::into_split(*t);
                (PoolRead::ServerTls(r), PoolWrite::ServerTls(w))
            }
            PoolConn::ClientTls(t) => {
                let (r, w) = Splitable::into_split(*t);
                (PoolRead::ClientTls(r), PoolWrite::ClientTls(w))
            }
            PoolConn::Ws(ws) => ws.into_split(),
            PoolConn::Quic(q) => {
                let (r, w) = q.into_split();
                (PoolRead::Quic(r), PoolWrite::Quic(w))
            }
            PoolConn::H2(h) => h.into_split(),
        }
    }

    /// Split for relaying a TCP session's byte stream: a TLS read then returns every
    /// record already received, up to the buffer, not one record's plaintext (which only
    /// datagrams need), so bulk leaves in fewer, larger writes.
    pub fn into_stream_split(mut self) -> (PoolRead, PoolWrite) {
        match &mut self {
            PoolConn::ServerTls(t) => t.set_fill_reads(true),
            PoolConn::ClientTls(t) => t.set_fill_reads(true),
            _ => {}
        }
        self.into_split()
    }

    /// Write all of `bytes` (the 4-byte id) and flush; on type 2, as one message.
    pub async fn send_all(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        use monoio::io::AsyncWriteRentExt;
        match self {
            PoolConn::Plain(s) => s.write_all(bytes).await.0.map(|_| ()),
            PoolConn::ServerTls(t) => {
                t.write_all(bytes).await.0?;
                t.flush().await
            }
            PoolConn::ClientTls(t) => {
                t.write_all(bytes).await.0?;
                t.flush().await
            }
            PoolConn::Ws(ws) => ws.send_message(&bytes).await,
            PoolConn::Quic(q) => q.send_all(&bytes).await,
            PoolConn::H2(h) => h.send_all(&bytes).await,
        }
    }

    /// Read exactly `N` bytes (the id); on type 2, of message payload.
    pub async fn recv_exact<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        use monoio::io::AsyncReadRentExt;
        let buf = vec![0u8; N];
        let (res, buf) = match self {
            PoolConn::Plain(s) => s.read_exact(buf).await,
            PoolConn::ServerTls(t) => t.read_exact(buf).await,
            PoolConn::ClientTls(t) => t.read_exact(buf).await,
            PoolConn::Ws(ws) => return ws.recv_exact::<N>().await,
            PoolConn::Quic(q) => return q.recv_exact::<N>().await,
            PoolConn::H2(h) => return h.recv_exact::<N>().await,
        };
        res?;
        let mut out = [0u8; N];
        out.copy_from_slice(&buf);
        Ok(out)
    }
}

impl AsyncReadRent for PoolRead {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            PoolRead::Plain(r) => r.read(buf).await,
            PoolRead::ServerTls(r) => r.read(buf).await,
            PoolRead::ClientTls(r) => r.read(buf).await,
            PoolRead::Ws(r) => r.read(buf).await,
            PoolRead::Quic(r) => r.read(buf).await,
            PoolRead::H2(r) => r.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            PoolRead::Plain(r) => r.readv(buf).await,
            PoolRead::ServerTls(r) => r.readv(buf).await,
            PoolRead::ClientTls(r) => r.readv(buf).await,
            PoolRead::Ws(_) | PoolRead::Quic(_) | PoolRead::H2(_) => (Err(no_vectored()), buf),
        }
    }
}

/// A TLS stream that fills reads answers an empty read once plaintext, a close or an
/// error is buffered (waiting for its socket's readiness without a buffer); the other
/// transports cannot wait without a buffer and return at once.
impl WaitReadable for PoolRead {
    async fn wait_readable(&mut self) -> io::Result<()> {
        match self {
            PoolRead::ServerTls(r) => r.read(Vec::new()).await.0.map(drop),
            PoolRead::ClientTls(r) => r.read(Vec::new()).await.0.map(drop),
            PoolRead::Plain(_) | PoolRead::Ws(_) | PoolRead::Quic(_) | PoolRead::H2(_) => Ok(()),
        }
    }
}

impl AsyncWriteRent for PoolWrite {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            PoolWrite::Plain(w) => w.write(buf).await,
            PoolWrite::ServerTls(w) => w.write(buf).await,
            PoolWrite::ClientTls(w) => w.write(buf).await,
            PoolWrite::Ws(w) => w.write(buf).await,
            PoolWrite::Quic(w) => w.write(buf).await,
            PoolWrite::H2(w) => w.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            PoolWrite::Plain(w) => w.writev(buf).await,
            PoolWrite::ServerTls(w) => w.writev(buf).await,
            PoolWrite::ClientTls(w) => w.writev(buf).await,
            PoolWrite::Ws(_) | PoolWrite::Quic(_) | PoolWrite::H2(_) => (Err(no_vectored()), buf),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            PoolWrite::Plain(w) => w.flush().await,
            PoolWrite::ServerTls(w) => w.flush().await,
            PoolWrite::ClientTls(w) => w.flush().await,
            PoolWrite::Ws(w) => w.flush().await,
            PoolWrite::Quic(w) => w.flush().await,
            PoolWrite::H2(w) => w.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            PoolWrite::Plain(w) => w.shutdown().await,
            PoolWrite::ServerTls(w) => w.shutdown().await,
            PoolWrite::ClientTls(w) => w.shutdown().await,
            PoolWrite::Ws(w) => w.shutdown().await,
            PoolWrite::Quic(w) => w.shutdown().await,
            PoolWrite::H2(w) => w.shutdown().await,
        }
    }
}

/// Vectored IO on a WebSocket connection: nothing in the tunnel uses it (a message per
/// write is the contract).
fn no_vectored() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "vectored IO on a WebSocket or HTTP/2 pool connection",
    )
}
