//! The wake-up primitives, one of each kind, for every runtime of the process (workers,
//! control thread, master):
//!
//! - [`LocalFlag`]: a same-thread flag any number of tasks can await (stop, close, "a pool
//!   connection was taken", "an instance ended").
//! - [`queue`]: the cross-thread queue whose receiver is awaited on a monoio runtime
//!   (commands to workers, events and signal lines to the control thread, results of
//!   helper threads to the master).

mod flag;
mod queue;

pub use flag::{LocalFlag, Wait};
pub use queue::{queue, QueueRx, QueueTx, Rejected};
