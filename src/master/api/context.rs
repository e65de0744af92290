//! What every API handler reaches: the instance state and the API's own settings.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use crate::master::instances::core::Master;

/// The API: the [`Handler`](crate::master::http::message::Handler) the HTTP server serves.
pub struct Api {
    /// The instances and everything that changes them.
    pub m: Rc<Master>,
    /// API base path, e.g. `/api/v1`.
    pub base: String,
    /// Host name shown as `name` in `/info`.
    pub name: String,
    /// When the master started (`uptime` in `/info` and `/metrics`).
    pub started: Instant,
    /// Refuse instance URLs that `config::parse_url` rejects (400) instead of letting the
    /// child fail at start.
    pub validate_urls: bool,
    /// TCPing dials in flight.
    pub tcping_busy: Cell<usize>,
}
