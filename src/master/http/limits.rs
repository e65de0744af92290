//! The server's limits: request head and body sizes, deadlines, the connection cap.

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
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}
