//! The accept loop every listener of a worker runs: accept until a flag is raised, hand
//! each connection (with its canonical peer address) to a callback, and pause briefly on
//! accept errors such as EMFILE so a full fd table does not spin the core.
//!
//! Stopping never drops an accept in flight: monoio 0.2.4 leaks the descriptor of an
//! accept that the kernel completes after the runtime cancelled it (fixed upstream after
//! 0.2.4, MONOIO.md §4.1), and that user's connection then hangs, accepted by nobody. So
//! the flag shuts the listening socket down instead, which makes the pending accept fail
//! at once, and the loop ends on that.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};

use crate::net::SocketExt;
use crate::wake::LocalFlag;

/// Pause after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accepts in a row that completed without waiting, after which the loop pauses for
/// [`STREAK_PAUSE`]: on epoll a full backlog is accepted without ever returning to the
/// runtime, so the spawned tasks (a real client's handshake among a flood) would not run
/// until the backlog is empty. A sleep, not a yield: monoio 0.2.4 polls a self-woken task
/// again first (MONOIO.md §4.5).
const ACCEPT_STREAK: u32 = 64;
/// See [`ACCEPT_STREAK`].
const STREAK_PAUSE: Duration = Duration::from_millis(1);

/// Accept on `listener` until `stop` is raised, calling `on_accept` for every connection.
pub async fn accept_until(
    listener: &TcpListener,
    stop: &LocalFlag,
    what: &str,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    let closer = async {
        stop.wait().await;
        listener.shutdown_listener();
    };
    let acceptor = async {
        let mut streak = 0u32;
        loop {
            let mut accept = std::pin::pin!(listener.accept());
            let mut waited = false;
            let accepted = std::future::poll_fn(|cx| {
                let polled = accept.as_mut().poll(cx);
                waited |= polled.is_pending();
                polled
            })
            .await;
            streak = if waited { 0 } else { streak + 1 };
            if streak >= ACCEPT_STREAK {
                streak = 0;
                monoio::time::sleep(STREAK_PAUSE).await;
            }
            if stop.is_raised() {
                // A connection accepted in the same instant is closed here, visibly.
                break;
            }
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
    };
    monoio::join!(closer, acceptor);
}
