//! Dialling targets from a worker: round-robin over the target list with failover,
//! `dial=` source IP with NodePass's fall-back rule, and a connect timeout.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use monoio::net::TcpStream;

use crate::net::{self, SocketExt};
use crate::runtime;

/// Why no target could be reached.
#[derive(Debug)]
pub enum DialError {
    /// No target has a resolved address yet.
    NoAddress,
    /// Every target refused or timed out; carries the count and the last error.
    AllFailed(usize, io::Error),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::NoAddress => f.write_str("no target address is resolved yet"),
            DialError::AllFailed(1, e) => write!(f, "dial target failed: {e}"),
            DialError::AllFailed(n, e) => write!(f, "all {n} targets failed (last: {e})"),
        }
    }
}

/// Source-address policy shared by every worker (`dial=`).
#[derive(Debug)]
pub struct SourcePolicy {
    source: Option<IpAddr>,
    /// Set once, on the first failure with the source bound: from then on the system
    /// chooses (NodePass's one-way switch).
    disabled: AtomicBool,
}

impl SourcePolicy {
    /// Bind outgoing connections to `source` (None = the system chooses).
    pub fn new(source: Option<IpAddr>) -> Self {
        SourcePolicy {
            source,
            disabled: AtomicBool::new(false),
        }
    }

    /// The source to bind now, if any.
    pub fn current(&self) -> Option<IpAddr> {
        self.source
            .filter(|_| !self.disabled.load(Ordering::Relaxed))
    }

    /// Turn the binding off after a failure; logs once.
    pub fn give_up(&self, err: &io::Error) {
        if !self.disabled.swap(true, Ordering::Relaxed) {
            if let Some(ip) = self.source {
                log::warn!(
                    "dial: cannot use source IP {ip} ({err}); the system chooses from now on"
                );
            }
        }
    }
}

/// Connect to `addr` within `timeout`, from `policy`'s source IP when it works.
pub async fn dial(
    addr: SocketAddr,
    policy: &SourcePolicy,
    timeout: Duration,
) -> io::Result<TcpStream> {
    if let Some(ip) = policy.current() {
        match connect(addr, Some(ip), timeout).await {
            Ok(s) => return Ok(s),
            Err(e) => policy.give_up(&e),
        }
    }
    connect(addr, None, timeout).await
}

async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    // Non-blocking from its creation, which is what the connect needs; `runtime` says
    // what else it is fit for.
    let stream = runtime::adopt_stream_as_is(net::start_connect(addr, source)?)?;
    match monoio::time::timeout(timeout, stream.writable(false)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {addr} timed out after {timeout:?}"),
            ))
        }
    }
    stream.connect_result()?;
    Ok(stream)
}

/// Try the targets from position `start` on, each once, until one connects.
pub async fn dial_rotating(
    targets: &[Option<SocketAddr>],
    start: usize,
    policy: &SourcePolicy,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), DialError> {
    let n = targets.len();
    let mut last = None;
    for i in 0..n {
        let Some(addr) = targets[(start + i) % n] else {
            continue;
        };
        match dial(addr, policy, timeout).await {
            Ok(s) => return Ok((s, addr)),
            Err(e) => {
                log::debug!("dial {addr} failed: {e}");
                last = Some(e);
            }
        }
    }
    match last {
        Some(e) => Err(DialError::AllFailed(n, e)),
        None => Err(DialError::NoAddress),
    }
}

/// Write `bytes` fully to a non-blocking socket, waiting for writability as needed
/// (used for the PROXY header before the relay starts).
pub async fn send_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.send_now(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable(false).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
