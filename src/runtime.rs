//! Run a future on a monoio runtime with the driver `NP_DRIVER` chose: io_uring when the
//! kernel allows it, the legacy epoll driver otherwise (or when forced).

use std::future::Future;
use std::io;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::Driver;

/// Submission-queue depth of each io_uring instance.
const URING_ENTRIES: u32 = 4096;

/// The driver a runtime actually uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActiveDriver {
    /// io_uring.
    Uring,
    /// epoll (monoio's legacy driver).
    Legacy,
}

impl ActiveDriver {
    /// `io_uring` or `epoll`, for logs.
    pub fn name(self) -> &'static str {
        match self {
            ActiveDriver::Uring => "io_uring",
            ActiveDriver::Legacy => "epoll",
        }
    }
}

/// Which driver `wanted` resolves to on this kernel (`uring` fails if io_uring is off).
pub fn choose(wanted: Driver) -> io::Result<ActiveDriver> {
    match wanted {
        Driver::Legacy => Ok(ActiveDriver::Legacy),
        Driver::Uring if monoio::utils::detect_uring() => Ok(ActiveDriver::Uring),
        Driver::Uring => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "NP_DRIVER=uring but io_uring is not available on this kernel (try NP_DRIVER=legacy)",
        )),
        Driver::Auto if monoio::utils::detect_uring() => Ok(ActiveDriver::Uring),
        Driver::Auto => Ok(ActiveDriver::Legacy),
    }
}

/// Build a runtime (timer enabled) on `driver` and run the future `make` returns to completion.
pub fn block_on<F, M>(driver: ActiveDriver, make: M) -> io::Result<F::Output>
where
    M: FnOnce() -> F,
    F: Future,
{
    match driver {
        ActiveDriver::Uring => {
            let mut rt = RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()?;
            Ok(rt.block_on(make()))
        }
        ActiveDriver::Legacy => {
            let mut rt = RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .build()?;
            Ok(rt.block_on(make()))
        }
    }
}
