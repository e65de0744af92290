//! The plain or TLS stream under a WebSocket pool connection: whole-buffer writes (flushed
//! on TLS) and raw reads, for a connection and for each half. Kept apart from the
//! `AsyncReadRent`/`AsyncWriteRent` impls of `PoolRead`/`PoolWrite`, whose `Ws` arms call
//! into these: a WebSocket never nests, so this never recurses.

use std::io;

use monoio::buf::SliceMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::BufResult;

use crate::dataplane::tunnel::pool::PoolConn;
use crate::dataplane::tunnel::pool_io::{PoolRead, PoolWrite};

/// The raw reads and writes under the frames (a plain or TLS pool connection or half).
pub(super) trait Raw {
    async fn read_raw(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>>;
    async fn write_raw(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>);
}

impl Raw for PoolConn {
    async fn read_raw(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>> {
        match self {
            PoolConn::Plain(s) => s.read(buf).await,
            PoolConn::ServerTls(t) => t.read(buf).await,
            PoolConn::ClientTls(t) => t.read(buf).await,
            PoolConn::Ws(_) | PoolConn::Quic(_) | PoolConn::H2(_) => (Err(nested()), buf),
        }
    }

    async fn write_raw(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (res, buf) = match self {
            PoolConn::Plain(s) => s.write_all(buf).await,
            PoolConn::ServerTls(t) => t.write_all(buf).await,
            PoolConn::ClientTls(t) => t.write_all(buf).await,
            PoolConn::Ws(_) | PoolConn::Quic(_) | PoolConn::H2(_) => return (Err(nested()), buf),
        };
        if let Err(e) = res {
            return (Err(e), buf);
        }
        let flushed = match self {
            PoolConn::ServerTls(t) => t.flush().await,
            PoolConn::ClientTls(t) => t.flush().await,
            _ => Ok(()),
        };
        (flushed, buf)
    }
}

impl Raw for PoolRead {
    async fn read_raw(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>> {
        match self {
            PoolRead::Plain(r) => r.read(buf).await,
            PoolRead::ServerTls(r) => r.read(buf).await,
            PoolRead::ClientTls(r) => r.read(buf).await,
            PoolRead::Ws(_) | PoolRead::Quic(_) | PoolRead::H2(_) => (Err(nested()), buf),
        }
    }

    async fn write_raw(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        (Err(nested()), buf)
    }
}

impl Raw for PoolWrite {
    async fn read_raw(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>> {
        (Err(nested()), buf)
    }

    async fn write_raw(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (res, buf) = match self {
            PoolWrite::Plain(w) => w.write_all(buf).await,
            PoolWrite::ServerTls(w) => w.write_all(buf).await,
            PoolWrite::ClientTls(w) => w.write_all(buf).await,
            PoolWrite::Ws(_) | PoolWrite::Quic(_) | PoolWrite::H2(_) => {
                return (Err(nested()), buf)
            }
        };
        if let Err(e) = res {
            return (Err(e), buf);
        }
        (self.raw_flush().await, buf)
    }
}

impl PoolWrite {
    pub(super) async fn raw_shutdown(&mut self) -> io::Result<()> {
        match self {
            PoolWrite::Plain(w) => w.shutdown().await,
            PoolWrite::ServerTls(w) => w.shutdown().await,
            PoolWrite::ClientTls(w) => w.shutdown().await,
            PoolWrite::Ws(_) | PoolWrite::Quic(_) | PoolWrite::H2(_) => Err(nested()),
        }
    }

    pub(super) async fn raw_flush(&mut self) -> io::Result<()> {
        match self {
            PoolWrite::ServerTls(w) => w.flush().await,
            PoolWrite::ClientTls(w) => w.flush().await,
            _ => Ok(()),
        }
    }
}

fn nested() -> io::Error {
    io::Error::other("WebSocket inside WebSocket")
}
