//! One end of a session as the data plane sees it from outside the tasks that move its
//! bytes: something it can shut (forced teardown: drain deadline, `read=` idle, a failed
//! direction, a lost control channel) and whose peer it can name in a log line.
//!
//! An end is a socket ([`SocketFd`]) or a stream multiplexed on a shared connection (a
//! QUIC or HTTP/2 pool entry): such a stream has no descriptor of its own, so its
//! transport watches a [`StreamEnd`] instead and ends the stream's reads and writes when it
//! is shut, and marks it gone when the peer ended the stream or the connection died.

use std::cell::Cell;
use std::rc::Rc;

use crate::sys::SocketFd;
use crate::wake::LocalFlag;

/// A session end: a socket, or a multiplexed stream.
#[derive(Clone)]
pub enum End {
    /// A socket the end owns alone (shut down with `shutdown(2)`).
    Socket(SocketFd),
    /// A stream on a shared connection.
    #[allow(dead_code)] // Made by the stream transports (pool types 1 and 3).
    Stream(Rc<StreamEnd>),
}

impl End {
    /// Shut the end both ways, so every pending and later read and write on it ends.
    pub fn shutdown_both(&self) {
        match self {
            End::Socket(fd) => fd.shutdown_both(),
            End::Stream(s) => s.shut(),
        }
    }

    /// The peer's address as text for log lines (`?` if unknown); a stream names its
    /// connection's peer.
    pub fn peer_text(&self) -> String {
        match self {
            End::Socket(fd) => fd.peer_text(),
            End::Stream(s) => s.peer.clone(),
        }
    }

    /// The socket, for what only a socket can do (epoll watch, peek, drain).
    pub fn socket(&self) -> Option<SocketFd> {
        match self {
            End::Socket(fd) => Some(*fd),
            End::Stream(_) => None,
        }
    }

    /// Whether the transport saw this end's peer go (always `false` for a socket: the
    /// idle watch finds those).
    pub fn is_gone(&self) -> bool {
        match self {
            End::Socket(_) => false,
            End::Stream(s) => s.is_gone(),
        }
    }

    /// Whether `self` and `other` are the same end (same descriptor or same stream).
    pub fn same(&self, other: &End) -> bool {
        match (self, other) {
            (End::Socket(a), End::Socket(b)) => a == b,
            (End::Stream(a), End::Stream(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl From<SocketFd> for End {
    fn from(fd: SocketFd) -> End {
        End::Socket(fd)
    }
}

/// The teardown state of one multiplexed stream, shared by its transport and the data
/// plane (single-threaded).
#[allow(dead_code)] // Made by the stream transports (pool types 1 and 3).
pub struct StreamEnd {
    peer: String,
    shut: LocalFlag,
    gone: Cell<bool>,
}

#[allow(dead_code)] // Used by the stream transports (pool types 1 and 3).
impl StreamEnd {
    /// A live stream on a connection whose peer is `peer` (text for log lines).
    pub fn new(peer: String) -> Rc<StreamEnd> {
        Rc::new(StreamEnd {
            peer,
            shut: LocalFlag::default(),
            gone: Cell::new(false),
        })
    }

    /// Forced teardown: the transport ends every pending and later read and write.
    pub fn shut(&self) {
        self.shut.raise();
    }

    /// Whether [`StreamEnd::shut`] was called.
    pub fn is_shut(&self) -> bool {
        self.shut.is_raised()
    }

    /// Resolves once [`StreamEnd::shut`] was called (at once if it was already).
    pub async fn wait_shut(&self) {
        if !self.shut.is_raised() {
            self.shut.wait().await;
        }
    }

    /// The transport saw the peer end the stream, or the connection die: an idle entry on
    /// it is no longer fit for a session (`Shard::sweep_gone`).
    pub fn set_gone(&self) {
        self.gone.set(true);
    }

    /// Whether [`StreamEnd::set_gone`] was called.
    pub fn is_gone(&self) -> bool {
        self.gone.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_end_names_its_connection_peer_and_remembers_shut_and_gone() {
        let s = StreamEnd::new("127.0.0.1:9".to_owned());
        let end = End::Stream(Rc::clone(&s));
        assert_eq!(end.peer_text(), "127.0.0.1:9");
        assert!(end.socket().is_none());
        assert!(!s.is_shut() && !end.is_gone());
        end.shutdown_both();
        assert!(s.is_shut());
        s.set_gone();
        assert!(end.is_gone());
        assert!(end.same(&End::Stream(Rc::clone(&s))));
        assert!(!end.same(&End::Stream(StreamEnd::new(String::new()))));
    }

    #[test]
    fn wait_shut_resolves_when_shut_and_at_once_after() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let s = StreamEnd::new(String::new());
            let waiter = {
                let s = Rc::clone(&s);
                monoio::spawn(async move { s.wait_shut().await })
            };
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            s.shut();
            waiter.await;
            s.wait_shut().await;
        });
    }
}
