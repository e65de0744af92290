//! Instance management: the instances, their child processes and their saved state. Knows
//! nothing of HTTP; the API calls into it.
//!
//! - `core`: [`core::Master`], the shared state on the runtime thread.
//! - `model`: the instance record and its counter rules; `urls`: instance URLs as Go
//!   builds them.
//! - `supervisor`: start, stop, restart, child output, silence; `process`: the child
//!   processes; `watch`: the one thread that reads every child's output and reaps it;
//!   `lines`: bounded line splitting; `output`: what a child's line means (CHECK_POINT is
//!   `stats::CheckPoint`).
//! - `hub`: the event hub the API's `/events` streams read.
//! - `state` (format, load with backup fallback), `saver` (when to write) and
//!   `atomic_file` (how to write): the state file.
//! - `off_thread`: blocking work on a helper thread, awaited on the runtime.

pub mod atomic_file;
pub mod core;
pub mod hub;
pub mod lines;
pub mod model;
pub mod off_thread;
pub mod output;
pub mod process;
pub mod saver;
pub mod state;
pub mod supervisor;
pub mod urls;
pub mod watch;
