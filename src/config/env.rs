//! The `NP_*` environment variables (PROTOCOL.md §1.2) plus our `NP_WORKERS` and `NP_DRIVER`.
//!
//! Read once at startup. An invalid, zero or negative value means the default, as in Go.

use std::time::Duration;

/// Which monoio driver the workers run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, the legacy epoll driver otherwise.
    Auto,
    /// io_uring only (start fails if it is unavailable).
    Uring,
    /// The legacy epoll driver.
    Legacy,
}

/// Process-wide tunables from the environment, with NodePass v1.14.0 defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Env {
    /// `NP_SEMAPHORE_LIMIT`: capacity of signal queues and the master's event queue.
    pub semaphore_limit: usize,
    /// `NP_TCP_DATA_BUF_SIZE`: per-direction copy buffer (also the splice chunk floor).
    pub tcp_data_buf_size: usize,
    /// `NP_UDP_DATA_BUF_SIZE`: largest datagram; longer ones are truncated.
    pub udp_data_buf_size: usize,
    /// `NP_HANDSHAKE_TIMEOUT`.
    pub handshake_timeout: Duration,
    /// `NP_TCP_DIAL_TIMEOUT`.
    pub tcp_dial_timeout: Duration,
    /// `NP_UDP_DIAL_TIMEOUT`.
    pub udp_dial_timeout: Duration,
    /// `NP_UDP_READ_TIMEOUT`: idle expiry of a UDP session.
    pub udp_read_timeout: Duration,
    /// `NP_POOL_GET_TIMEOUT`.
    pub pool_get_timeout: Duration,
    /// `NP_MIN_POOL_INTERVAL`.
    pub min_pool_interval: Duration,
    /// `NP_MAX_POOL_INTERVAL`.
    pub max_pool_interval: Duration,
    /// `NP_REPORT_INTERVAL`: ping, CHECK_POINT and keepalive period.
    pub report_interval: Duration,
    /// `NP_SERVICE_COOLDOWN`: first wait before a restart.
    pub service_cooldown: Duration,
    /// `NP_SHUTDOWN_TIMEOUT`: graceful drain limit.
    pub shutdown_timeout: Duration,
    /// `NP_RELOAD_INTERVAL`: certificate reload and master periodic tasks.
    pub reload_interval: Duration,
    /// `NP_WORKERS`: data-plane worker threads; `None` = the CPUs this process may use.
    pub workers: Option<usize>,
    /// `NP_DRIVER`: `auto`, `uring` or `legacy`.
    pub driver: Driver,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            semaphore_limit: 65536,
            tcp_data_buf_size: 16384,
            udp_data_buf_size: 16384,
            handshake_timeout: Duration::from_secs(5),
            tcp_dial_timeout: Duration::from_secs(5),
            udp_dial_timeout: Duration::from_secs(5),
            udp_read_timeout: Duration::from_secs(30),
            pool_get_timeout: Duration::from_secs(5),
            min_pool_interval: Duration::from_millis(100),
            max_pool_interval: Duration::from_secs(1),
            report_interval: Duration::from_secs(5),
            service_cooldown: Duration::from_secs(3),
            shutdown_timeout: Duration::from_secs(5),
            reload_interval: Duration::from_secs(3600),
            workers: None,
            driver: Driver::Auto,
        }
    }
}
