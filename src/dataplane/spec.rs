//! The session spec: what every user session is admitted and relayed with, in every mode
//! (single-end forwarding and both tunnel roles).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::dial::SourcePolicy;
use super::relay::RelayKind;
use crate::config::{BlockSet, ProxyProtocol};
use crate::limit::{RateLimiter, SlotLimit};

/// How every session is admitted and relayed, whatever the mode: targets, dial policy,
/// timeouts, buffer sizes, limits and relay choice. The same on every core (read-only).
#[derive(Debug)]
pub struct SessionSpec {
    /// Resolved target addresses at start, in configured order (`None` = not resolved yet).
    pub targets: Arc<[Option<SocketAddr>]>,
    /// `dial=` policy, shared so its one-way fall-back holds for the whole process.
    pub source: SourcePolicy,
    /// `NP_TCP_DIAL_TIMEOUT`.
    pub tcp_dial_timeout: Duration,
    /// `read=`: session idle timeout (zero = none).
    pub read_timeout: Duration,
    /// `NP_UDP_READ_TIMEOUT`: UDP session idle expiry.
    pub udp_read_timeout: Duration,
    /// `NP_UDP_DATA_BUF_SIZE`: largest datagram.
    pub udp_buf_size: usize,
    /// `NP_TCP_DATA_BUF_SIZE`: copy buffer for the buffered relay.
    pub tcp_buf_size: usize,
    /// TCP keepalive period (`NP_REPORT_INTERVAL`).
    pub keepalive: Duration,
    /// `proxy=`.
    pub proxy: ProxyProtocol,
    /// `block=`.
    pub block: BlockSet,
    /// `slot=`, process-wide.
    pub slots: Arc<SlotLimit>,
    /// `rate=` on bytes read from users.
    pub rate_rx: Option<RateLimiter>,
    /// `rate=` on bytes written to users.
    pub rate_tx: Option<RateLimiter>,
    /// How plaintext TCP is relayed.
    pub relay: RelayKind,
}

impl SessionSpec {
    /// A spec with NodePass defaults for everything but the targets (tests, benches).
    pub fn with_targets(targets: Vec<Option<SocketAddr>>) -> Self {
        SessionSpec {
            targets: targets.into(),
            source: SourcePolicy::new(None::<IpAddr>),
            tcp_dial_timeout: Duration::from_secs(5),
            read_timeout: Duration::ZERO,
            udp_read_timeout: Duration::from_secs(30),
            udp_buf_size: 16384,
            tcp_buf_size: 16384,
            keepalive: Duration::from_secs(5),
            proxy: ProxyProtocol::Off,
            block: BlockSet::default(),
            slots: SlotLimit::new(0),
            rate_rx: None,
            rate_tx: None,
            relay: RelayKind::Splice,
        }
    }
}
