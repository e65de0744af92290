//! Run a future on a monoio runtime with the driver `NP_DRIVER` chose: io_uring when the
//! kernel allows it, the legacy epoll driver otherwise (or when forced); and hand sockets
//! to that runtime in the `O_NONBLOCK` mode its driver needs.
//!
//! The blocking-mode rule lives here and nowhere else: monoio's io_uring ops want
//! **blocking** sockets (`O_NONBLOCK` would turn their waits into `EAGAIN` completions), its
//! epoll driver wants **non-blocking** ones. Where a socket comes from decides whether it
//! needs a change:
//! - monoio's own `accept` already gives the driver's mode (accept4 with `SOCK_NONBLOCK` on
//!   epoll, a plain accept on io_uring): nothing to set.
//! - a listener or UDP socket bound by `net`, or a stream of unknown origin (handed over by
//!   another worker): [`adopt_tcp_listener`], [`adopt_udp_socket`], [`adopt_tcp_stream`]
//!   set the mode once.
//! - a dialled stream is created non-blocking (`net::start_connect`) and enters as it is
//!   ([`adopt_stream_as_is`]): right for epoll, and for the readiness waits and
//!   one-shot syscalls of a connect, a PROXY header and the splice relay on either driver.
//!   Only before monoio's own reads and writes on io_uring (copy relays, TLS, pool ids) does
//!   it need [`fit_dialled`].
//! - the splice relay needs every socket non-blocking while it runs
//!   ([`nonblocking_for_splice`]: a change only on io_uring); it closes them afterwards.

use std::future::Future;
use std::io;

use monoio::net::udp::UdpSocket;
use monoio::net::{TcpListener, TcpStream};
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::Driver;
use crate::net::SocketExt;

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

    /// Whether sockets that monoio reads and writes on this driver are non-blocking.
    pub fn wants_nonblocking(self) -> bool {
        self == ActiveDriver::Legacy
    }
}

/// A bound listener on a runtime of `driver` (mode set for the driver).
pub fn adopt_tcp_listener(
    driver: ActiveDriver,
    l: std::net::TcpListener,
) -> io::Result<TcpListener> {
    l.set_nonblocking(driver.wants_nonblocking())?;
    TcpListener::from_std(l)
}

/// A bound UDP socket on a runtime of `driver` (mode set for the driver).
pub fn adopt_udp_socket(driver: ActiveDriver, u: std::net::UdpSocket) -> io::Result<UdpSocket> {
    u.set_nonblocking(driver.wants_nonblocking())?;
    UdpSocket::from_std(u)
}

/// A connected stream of unknown mode (handed over by another worker, or a pollable
/// descriptor such as an epoll instance) on a runtime of `driver` (mode set for the driver).
pub fn adopt_tcp_stream(driver: ActiveDriver, s: std::net::TcpStream) -> io::Result<TcpStream> {
    s.set_nonblocking(driver.wants_nonblocking())?;
    TcpStream::from_std(s)
}

/// A stream whose mode is already what its use needs, on the current runtime without a
/// change: a dialled one (non-blocking, see the module doc for what it is fit for), or a
/// `dup` of a stream in use (a dup shares its mode).
pub fn adopt_stream_as_is(s: std::net::TcpStream) -> io::Result<TcpStream> {
    TcpStream::from_std(s)
}

/// Make a dialled (non-blocking) stream fit for monoio's own reads and writes: blocking on
/// io_uring; on epoll it already is.
pub fn fit_dialled(driver: ActiveDriver, s: &TcpStream) {
    if !driver.wants_nonblocking() {
        let _ = s.set_nonblocking(false);
    }
}

/// Make a stream in the driver's mode (not a dialled one, which is non-blocking already)
/// non-blocking for the splice relay's own syscalls: a change only on io_uring.
pub fn nonblocking_for_splice(driver: ActiveDriver, s: &TcpStream) -> io::Result<()> {
    if driver.wants_nonblocking() {
        Ok(())
    } else {
        s.set_nonblocking(true)
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

thread_local! {
    /// The driver of the runtime this thread runs (set by [`block_on`]).
    static CURRENT: std::cell::Cell<Option<ActiveDriver>> = const { std::cell::Cell::new(None) };
}

/// The driver of the runtime running on this thread, if [`block_on`] built it (or
/// [`note_fusion_runtime`] named it).
pub fn current() -> Option<ActiveDriver> {
    CURRENT.with(|c| c.get())
}

/// This thread runs a monoio `FusionDriver` runtime (the master's): note which driver it
/// picked, by the same test monoio uses.
pub fn note_fusion_runtime() {
    let driver = if monoio::utils::detect_uring() {
        ActiveDriver::Uring
    } else {
        ActiveDriver::Legacy
    };
    CURRENT.with(|c| c.set(Some(driver)));
}

/// An io_uring runtime for this thread. `tuned`: the ring is set up for one thread that
/// both submits and reaps (`SINGLE_ISSUER`), and a completion does not interrupt the thread
/// to run its task work (`COOP_TASKRUN`): the work runs at the thread's next kernel entry,
/// which thread-per-core makes at every turn of its loop anyway. Without it every
/// completion raised from the network softirq signals the thread.
fn uring_runtime(
    tuned: bool,
) -> io::Result<monoio::Runtime<monoio::time::TimeDriver<IoUringDriver>>> {
    let mut ring = io_uring::IoUring::builder();
    if tuned {
        ring.setup_coop_taskrun().setup_single_issuer();
    }
    RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(URING_ENTRIES)
        .uring_builder(ring)
        .enable_timer()
        .build()
}

/// Build a runtime (timer enabled) on `driver` and run the future `make` returns to completion.
pub fn block_on<F, M>(driver: ActiveDriver, make: M) -> io::Result<F::Output>
where
    M: FnOnce() -> F,
    F: Future,
{
    CURRENT.with(|c| c.set(Some(driver)));
    match driver {
        ActiveDriver::Uring => {
            let mut rt = match uring_runtime(true) {
                Ok(rt) => rt,
                // A kernel before 6.0 refuses the setup flags: the plain ring works there.
                Err(_) => uring_runtime(false)?,
            };
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
