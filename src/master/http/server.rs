//! The accept loop: one monoio task per connection, TLS first when configured, a cap on
//! open connections (503 beyond it), and caps on connections that have not sent a request
//! yet (per source IP and in total, the oldest closed; see [`Crowd`]). The server knows nothing of what it serves: every
//! request goes to the [`Handler`].

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpListener;

use super::conn;
use super::limits::HttpLimits;
use super::message::{encode, write, Body, Handler, Response};
use crate::crowd::Crowd;

/// The accept loop's pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Releases a connection's place under the cap when its task ends.
struct ConnGuard(Rc<Cell<usize>>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Accept connections on `listener` for ever, serving each on its own task.
pub async fn run<H: Handler>(
    listener: TcpListener,
    acceptor: Option<monoio_rustls::TlsAcceptor>,
    limits: HttpLimits,
    handler: Rc<H>,
) {
    let open = Rc::new(Cell::new(0usize));
    let silent = Crowd::new("master API", limits.silent_per_ip, limits.silent_total);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::debug!("accept failed: {e}");
                monoio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let limits = limits.clone();
        if open.get() >= limits.max_connections {
            monoio::spawn(refuse(stream));
            continue;
        }
        open.set(open.get() + 1);
        let guard = ConnGuard(open.clone());
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        // Until its first whole request the connection is one of the silent crowd: the
        // oldest silent ones make room for newcomers, so idle connections cannot lock
        // callers out.
        let (ticket, evicted) = silent.admit(peer.ip());
        monoio::spawn(async move {
            let _guard = guard;
            let work = async move {
                match acceptor {
                    None => conn::serve(stream, handler, limits, ticket).await,
                    Some(acc) => {
                        let tls = acc.accept(stream);
                        match monoio::time::timeout(limits.first_request_wait, tls).await {
                            Ok(Ok(tls)) => conn::serve(tls, handler, limits, ticket).await,
                            Ok(Err(e)) => log::debug!("HTTP: TLS handshake error: {e}"),
                            Err(_) => log::debug!("HTTP: TLS handshake timeout"),
                        }
                    }
                }
            };
            evicted.guard(work).await;
        });
    }
}

/// Answer an over-limit connection with 503 and close it.
pub async fn refuse<S: AsyncWriteRent>(mut s: S) {
    let resp = Response::error(503, "Too many connections");
    if let Body::Full(b) = &resp.body {
        let _ = write(&mut s, encode(&resp, b, false)).await;
    }
    let _ = s.shutdown().await;
}
