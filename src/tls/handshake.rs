//! TLS handshakes over monoio streams, driven here; the finished connection is handed to
//! monoio-rustls's stream type for the data phase.
//!
//! monoio-rustls 0.4's own handshake makes one `write_tls` call after an error, and rustls
//! writes one queued chunk per call to a writer without vectored writes. A TLS 1.3 client
//! queues its compatibility ChangeCipherSpec before the alert, so the alert saying why we
//! refused the server's certificate never left: the server saw only an EOF. Here every
//! queued record is flushed, the alert included, before the error is returned.

use std::io;
use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio_rustls::{ClientTlsStream, ServerTlsStream};
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, ServerConfig,
    ServerConnection, SideData,
};

/// How much one socket read takes during a handshake.
const READ_CHUNK: usize = 16 * 1024;

/// Runs a client handshake on `io`. Errors are `io::Error`s for [`super::describe_io`]: a
/// rustls error wrapped as `InvalidData`, `UnexpectedEof` for an EOF or a close_notify in
/// the middle of the handshake, or the socket's own error.
pub async fn connect<IO>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    io: IO,
) -> io::Result<ClientTlsStream<IO>>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    connect_seeing(config, name, io)
        .await
        .map(|(stream, _)| stream)
}

/// What a finished client handshake saw of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSeen {
    /// `sha256:AB:…` of the server's leaf certificate; on a resumed session, the one the
    /// session's first handshake accepted (rustls keeps it with the ticket).
    pub fingerprint: Option<String>,
    /// The handshake resumed a session (no certificate was sent).
    pub resumed: bool,
}

/// [`connect`], also telling what the handshake saw of the server.
pub async fn connect_seeing<IO>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    mut io: IO,
) -> io::Result<(ClientTlsStream<IO>, ServerSeen)>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut conn = ClientConnection::new(config, name).map_err(invalid_data)?;
    drive(&mut io, &mut conn).await?;
    let seen = ServerSeen {
        fingerprint: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| super::fingerprint(leaf.as_ref())),
        resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
    };
    Ok((ClientTlsStream::new(io, conn), seen))
}

/// Runs a server handshake on `io`; errors as for [`connect`].
pub async fn accept<IO>(config: Arc<ServerConfig>, mut io: IO) -> io::Result<ServerTlsStream<IO>>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut conn = ServerConnection::new(config).map_err(invalid_data)?;
    drive(&mut io, &mut conn).await?;
    Ok(ServerTlsStream::new(io, conn))
}

fn invalid_data(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

async fn drive<IO, SD>(io: &mut IO, conn: &mut ConnectionCommon<SD>) -> io::Result<()>
where
    IO: AsyncReadRent + AsyncWriteRent,
    SD: SideData,
{
    let mut buf = Vec::with_capacity(READ_CHUNK);
    loop {
        flush(io, conn).await?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        buf.clear();
        let (res, b) = io.read(buf).await;
        buf = b;
        if res? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tls handshake eof",
            ));
        }
        // Bytes past the handshake (the peer's first application data) stay in `conn`
        // and are read through the stream later.
        let mut rest = &buf[..];
        while !rest.is_empty() {
            if conn.read_tls(&mut rest)? == 0 {
                break;
            }
            match conn.process_new_packets() {
                Ok(state) if state.peer_has_closed() && conn.is_handshaking() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "tls handshake alert (close_notify)",
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    // Tell the peer why: the alert rustls queued for this error.
                    let _ = flush(io, conn).await;
                    return Err(invalid_data(e));
                }
            }
        }
    }
}

/// Writes every queued TLS record.
async fn flush<IO, SD>(io: &mut IO, conn: &mut ConnectionCommon<SD>) -> io::Result<()>
where
    IO: AsyncWriteRent,
    SD: SideData,
{
    while conn.wants_write() {
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        let (res, _) = io.write_all(out).await;
        res?;
    }
    Ok(())
}
