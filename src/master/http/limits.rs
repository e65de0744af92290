//! The server's limits: request head and body sizes, deadlines, the connection cap, and the
//! caps on connections that have not sent a request yet.

use std::time::Duration;

/// Largest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// Connection limits and deadlines.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Time allowed for a whole request (head and body) once its first byte arrived.
    pub request_timeout: Duration,
    /// Time an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Open connections beyond which new ones get 503.
    pub max_connections: usize,
    /// Time a new connection has to send its first whole request head (a keep-alive
    /// connection that completed one waits `idle_timeout` between requests).
    pub first_request_wait: Duration,
    /// Connections of one source IP that have not sent a whole request yet; over it the
    /// oldest of them is closed.
    pub silent_per_ip: usize,
    /// Such connections of all sources; over it the oldest is closed. Below
    /// `max_connections`, so the rest stays free for callers that send requests.
    pub silent_total: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            first_request_wait: Duration::from_secs(5),
            silent_per_ip: 64,
            silent_total: 512,
        }
    }
}
