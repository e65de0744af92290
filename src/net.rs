//! Socket creation and socket calls in one place: listeners shared across workers with
//! SO_REUSEPORT (after a probe that keeps "port in use" a clear error), non-blocking
//! connects from a chosen source IP (`dial=`), and [`SocketExt`], the options and
//! one-shot syscalls every socket type of ours has (`stream.tune_stream(keepalive)`,
//! `dst.shutdown_write()`, `s.recv_now(buf)`…).
//!
//! `SocketExt` is implemented for the types that [`crate::sys::OwnsFd`] lists (monoio's and
//! std's sockets), so no safe code ever turns a bare number into a descriptor; how a
//! socket enters a monoio runtime (its `O_NONBLOCK` mode per driver) is `runtime::adopt_*`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::config::HostPort;
use crate::sys::{self, OwnsFd};

/// Listen backlog of every TCP listener.
const BACKLOG: i32 = 1024;

/// Resolve an address to bind: an empty host means every address (dual-stack `[::]`,
/// falling back to `0.0.0.0` on hosts without IPv6). Names are resolved here, so call it
/// only off the worker threads.
pub fn resolve_bind_addr(hp: &HostPort) -> io::Result<SocketAddr> {
    if hp.host.is_empty() {
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), hp.port);
        return Ok(if ipv6_available() {
            v6
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), hp.port)
        });
    }
    resolve(hp)
}

/// Resolve `host:port` (IP literals need no lookup), preferring an IPv4 address as Go's
/// `ResolveTCPAddr` does.
pub fn resolve(hp: &HostPort) -> io::Result<SocketAddr> {
    if let Some(ip) = hp.ip() {
        return Ok(SocketAddr::new(ip, hp.port));
    }
    let addrs: Vec<SocketAddr> = (hp.host.as_str(), hp.port).to_socket_addrs()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{hp}: no address")))
}

fn ipv6_available() -> bool {
    Socket::new(Domain::IPV6, Type::STREAM, None).is_ok()
}

fn new_socket(addr: &SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(*addr), ty, Some(protocol))?;
    if addr.is_ipv6() {
        // `[::]` serves IPv4 too, as Go's ":port" does.
        socket.set_only_v6(false)?;
    }
    // socket2 opens every socket with SOCK_CLOEXEC on Linux.
    Ok(socket)
}

/// Fail with `AddrInUse` if anyone holds `addr`, even another SO_REUSEPORT socket of the
/// same user (which would otherwise silently share our traffic). Returns the bound
/// address, so port 0 picks a real port for the sockets that follow.
fn probe_exclusive(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<SocketAddr> {
    let probe = new_socket(&addr, ty, protocol)?;
    if ty == Type::STREAM {
        probe.set_reuse_address(true)?;
    }
    probe.bind(&addr.into())?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
}

/// Bind `count` TCP listeners on one address with SO_REUSEPORT, one per worker, so the
/// kernel spreads new connections across cores. Errors are the bind's own (`AddrInUse`…).
pub fn bind_tcp_listeners(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let sockets = bind_shared(addr, count, Type::STREAM, Protocol::TCP, |s| {
        s.set_reuse_address(true)
    })?;
    sockets
        .into_iter()
        .map(|s| {
            s.listen(BACKLOG)?;
            Ok(s.into())
        })
        .collect()
}

/// Bind `count` UDP sockets on one address with SO_REUSEPORT (the kernel keeps one
/// client's datagrams on one socket, so a UDP session stays on one worker).
pub fn bind_udp_sockets(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    let sockets = bind_shared(addr, count, Type::DGRAM, Protocol::UDP, |_| Ok(()))?;
    Ok(sockets.into_iter().map(Into::into).collect())
}

/// `count` SO_REUSEPORT sockets bound to one address. A given port is first checked free
/// by an exclusive probe (see [`probe_exclusive`]); for port 0 the first socket takes the
/// port the kernel picks and the others join it, so no other socket can take that port
/// in between (a probe closed and bound again could lose it under load).
fn bind_shared(
    addr: SocketAddr,
    count: usize,
    ty: Type,
    protocol: Protocol,
    tune: impl Fn(&Socket) -> io::Result<()>,
) -> io::Result<Vec<Socket>> {
    let mut addr = if addr.port() == 0 {
        addr
    } else {
        probe_exclusive(addr, ty, protocol)?
    };
    let mut sockets = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        let s = new_socket(&addr, ty, protocol)?;
        tune(&s)?;
        s.set_reuse_port(true)?;
        s.bind(&addr.into())?;
        if addr.port() == 0 {
            addr = s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))?;
        }
        sockets.push(s);
    }
    Ok(sockets)
}

/// Start a non-blocking TCP connect to `target`, bound to `source` first when given.
/// The connect completes later: wait for writability, then call
/// [`SocketExt::connect_result`].
pub fn start_connect(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<std::net::TcpStream> {
    // SOCK_NONBLOCK at creation saves the two fcntl calls per dial.
    let s = new_socket(&target, Type::STREAM.nonblocking(), Protocol::TCP)?;
    if let Some(ip) = source {
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match s.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(s.into())
}

/// A UDP socket for one session towards `target`, bound to `source` when given.
pub fn udp_socket_for(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<std::net::UdpSocket> {
    let s = new_socket(&target, Type::DGRAM, Protocol::UDP)?;
    let local = match (source, target) {
        (Some(ip), _) => SocketAddr::new(ip, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        (None, SocketAddr::V6(_)) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    s.bind(&local.into())?;
    s.connect(&target.into())?;
    Ok(s.into())
}

/// How Go words the end of a relay in "Exchange complete: …": `EOF` for a clean end.
pub fn exchange_result(r: &io::Result<()>) -> String {
    match r {
        Ok(()) => "EOF".to_owned(),
        Err(e) => e.to_string(),
    }
}

/// The options and one-shot syscalls of every socket type of ours (see the module doc).
/// Shutdowns ignore errors: they only speed up an end that comes anyway.
pub trait SocketExt: OwnsFd {
    /// Options for every relayed TCP stream: no Nagle delay, keepalive every `keepalive`.
    fn tune_stream(&self, keepalive: Duration) -> io::Result<()> {
        let fd = self.fd();
        let s = SockRef::from(&fd);
        s.set_nodelay(true)?;
        let ka = TcpKeepalive::new()
            .with_time(keepalive)
            .with_interval(keepalive);
        s.set_tcp_keepalive(&ka)
    }

    /// Give a listener the options of [`SocketExt::tune_stream`]: Linux copies TCP_NODELAY
    /// and the keepalive settings to every accepted socket, which saves four `setsockopt`
    /// calls per connection.
    fn tune_listener(&self, keepalive: Duration) -> io::Result<()> {
        self.tune_stream(keepalive)
    }

    /// Set or clear `O_NONBLOCK` (one `ioctl`). Which mode a socket needs on which driver
    /// is decided in one place, `runtime::adopt_*`; the splice relay sets it for its own
    /// syscalls.
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        sys::set_nonblocking(self.fd(), on)
    }

    /// The outcome of a connect started by [`start_connect`], once the socket is writable.
    fn connect_result(&self) -> io::Result<()> {
        // Writability with no pending error means the handshake completed; a refused or
        // reset connect leaves its errno in SO_ERROR.
        match SockRef::from(&self.fd()).take_error()? {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Send as much of `buf` as the socket takes now (non-blocking sockets only).
    fn send_now(&self, buf: &[u8]) -> io::Result<usize> {
        SockRef::from(&self.fd()).send(buf)
    }

    /// Receive one datagram (or stream bytes) now, whatever the socket's `O_NONBLOCK`
    /// mode (`MSG_DONTWAIT`).
    fn recv_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv_now(self.fd(), buf)
    }

    /// Copy bytes waiting on the socket without consuming them and without blocking
    /// (`MSG_PEEK | MSG_DONTWAIT`).
    fn peek_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::peek(self.fd(), buf)
    }

    /// Shut down the write side (propagate a FIN).
    fn shutdown_write(&self) {
        let _ = SockRef::from(&self.fd()).shutdown(std::net::Shutdown::Write);
    }

    /// Shut the socket down both ways so pending io_uring operations on it complete
    /// (closing the fd alone does not cancel them).
    fn shutdown_both(&self) {
        let _ = SockRef::from(&self.fd()).shutdown(std::net::Shutdown::Both);
    }

    /// Stop a listening socket: a pending `accept` fails at once (no connection is taken
    /// from the queue), and connections still queued are reset.
    fn shutdown_listener(&self) {
        let _ = SockRef::from(&self.fd()).shutdown(std::net::Shutdown::Read);
    }

    /// The address of a connected socket's peer, as text for log lines (`?` if unknown).
    fn peer_text(&self) -> String {
        SockRef::from(&self.fd())
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or_else(|| "?".to_owned(), |a| a.to_string())
    }
}

impl<T: OwnsFd + ?Sized> SocketExt for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_another_reuseport_socket_is_reported_in_use() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let first = bind_tcp_listeners(addr, 2).expect("first bind");
        let taken = first[0].local_addr().unwrap();
        let err = bind_tcp_listeners(taken, 2).expect_err("second bind must fail");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn workers_share_one_port_when_binding_port_zero() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let ls = bind_tcp_listeners(addr, 3).expect("bind");
        let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0), "{ports:?}");
        let us = bind_udp_sockets(addr, 2).expect("udp bind");
        assert_eq!(
            us[0].local_addr().unwrap().port(),
            us[1].local_addr().unwrap().port()
        );
    }
}
