//! The client's QUIC connection on one worker: its own UDP socket (`0.0.0.0:0` or `[::]:0`
//! as the server's family), one connection at a time to the server's UDP tunnel port,
//! streams opened within the server's `max`. A connection on which a pool entry could not
//! be made is retired (no new streams; closed once its last stream is released) and the
//! next entry dials a new one (Go leaks it instead).

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use quinn_proto::ConnectionHandle;

use super::{config, Ep, QuicStream};
use crate::dataplane::host::WorkerCtx;
use crate::tls::{ClientTls, SeenCert};

/// One worker's QUIC client.
pub struct QuicClient {
    ep: Rc<Ep>,
    server: SocketAddr,
    /// TLS server name (an IP text sends no SNI).
    name: String,
    tls: ClientTls,
    max: u32,
    current: Cell<Option<ConnectionHandle>>,
    seen: RefCell<Option<SeenCert>>,
}

impl QuicClient {
    /// A client on a new UDP socket of this worker.
    pub fn start(
        ctx: &Rc<WorkerCtx>,
        server: SocketAddr,
        name: String,
        tls: ClientTls,
        max: u32,
    ) -> io::Result<Rc<QuicClient>> {
        let any = match server {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
        let ep = Ep::start(socket, None, ctx)?;
        Ok(Rc::new(QuicClient {
            ep,
            server,
            name,
            tls,
            max,
            current: Cell::new(None),
            seen: RefCell::new(None),
        }))
    }

    /// The endpoint (closed with the worker).
    pub fn endpoint(&self) -> &Rc<Ep> {
        &self.ep
    }

    fn connection(&self) -> io::Result<ConnectionHandle> {
        if let Some(ch) = self.current.get() {
            if self.ep.usable(ch) {
                return Ok(ch);
            }
            self.ep.retire(ch);
        }
        let (tls, seen) = self.tls.config_capturing();
        let cfg = config::client(&tls, self.max)?;
        let ch = self.ep.connect(cfg, self.server, &self.name)?;
        self.current.set(Some(ch));
        *self.seen.borrow_mut() = Some(seen);
        Ok(ch)
    }

    /// A new stream and the fingerprint of the certificate its connection saw.
    pub async fn open(&self, limit: Duration) -> io::Result<(QuicStream, Option<String>)> {
        let ch = self.connection()?;
        match monoio::time::timeout(limit, self.ep.connected(ch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.fail(ch);
                return Err(e);
            }
            Err(_) => {
                self.fail(ch);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "QUIC handshake timed out",
                ));
            }
        }
        let fp = self.seen.borrow().as_ref().and_then(SeenCert::fingerprint);
        // Waits for stream credit: we never hold more streams than the server allows.
        let id = monoio::time::timeout(limit, self.ep.open_bi(ch))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no QUIC stream credit"))??;
        Ok((QuicStream::new(&self.ep, ch, id)?, fp))
    }

    /// An entry could not be made on `ch`: the next one dials a new connection.
    pub fn fail(&self, ch: ConnectionHandle) {
        if self.current.get() == Some(ch) {
            self.current.set(None);
        }
        self.ep.retire(ch);
    }
}
