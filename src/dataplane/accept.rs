//! The accept loop every listener of a worker runs: accept until a flag is raised, hand
//! each connection (with its canonical peer address) to a callback, and pause briefly on
//! accept errors such as EMFILE so a full fd table does not spin the core.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};

use super::flag::LocalFlag;

/// Pause after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accept on `listener` until `stop` is raised, calling `on_accept` for every connection.
pub async fn accept_until(
    listener: &TcpListener,
    stop: &LocalFlag,
    what: &str,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = stop.wait() => break,
        };
        match accepted {
            // IPv4 users of a dual-stack `[::]` listener arrive as ::ffff:a.b.c.d.
            Ok((stream, peer)) => on_accept(
                stream,
                SocketAddr::new(peer.ip().to_canonical(), peer.port()),
            ),
            Err(e) => {
                log::warn!("{what} accept failed: {e}");
                monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}
