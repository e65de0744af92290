//! Admission limits shared by every worker: the process-wide rate limiter, the exact slot
//! limit, and `block=` protocol detection.

mod block;
mod rate;
mod slots;

pub use block::{classify_first_bytes, Verdict};
pub use rate::{Clock, MonotonicClock, RateLimiter};
pub use slots::{SlotGuard, SlotLimit};
