//! The one place that calls libc directly: signal handlers, splice(2), pipes, socket
//! descriptors, and the parent-death signal of the master's children.
//!
//! Everything `unsafe` in the crate lives here, each block with its `SAFETY:` reason, behind
//! safe functions that take owned or borrowed descriptors.
//!
//! Borrowing a socket's descriptor is sound by construction, not by a comment at the call
//! site: [`OwnsFd`] is sealed and implemented only here, for the socket types that own their
//! descriptor for as long as they live (monoio's and std's), so safe code cannot borrow a
//! number that is not a live socket's. Where a task must reach a socket that another task
//! owns (teardown of a worker's sessions, idle watchdogs, the control channel's shutdown),
//! it holds a [`SocketFd`]: a descriptor number taken from a live socket that can do only
//! what teardown and logging need (shut down, peek, name the peer). Its one contract —
//! it is used only while its socket is open — is written once, on the type.
#![allow(unsafe_code)]

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

mod sealed {
    /// Only `sys` can say which types own a descriptor.
    pub trait Sealed {}
}

/// A socket type that owns an open descriptor for as long as it lives (sealed: implemented
/// here only, for monoio's and std's socket types and the std descriptor types). Its
/// socket calls are [`crate::net::SocketExt`].
pub trait OwnsFd: sealed::Sealed {
    /// Borrow the descriptor, for as long as `self` is borrowed.
    fn fd(&self) -> BorrowedFd<'_>;
}

/// monoio's sockets implement only `AsRawFd`.
macro_rules! owns_fd_as_raw {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl OwnsFd for $t {
            fn fd(&self) -> BorrowedFd<'_> {
                // SAFETY: this monoio socket owns its descriptor and closes it only when it
                // is dropped, which cannot happen while `self` is borrowed; the borrow's
                // lifetime is that of `&self`.
                unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
            }
        }
    )*};
}
owns_fd_as_raw!(
    monoio::net::TcpStream,
    monoio::net::TcpListener,
    monoio::net::udp::UdpSocket
);

/// std's types already lend their descriptor safely.
macro_rules! owns_fd_as_fd {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl OwnsFd for $t {
            fn fd(&self) -> BorrowedFd<'_> {
                self.as_fd()
            }
        }
    )*};
}
owns_fd_as_fd!(
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    OwnedFd
);

impl sealed::Sealed for BorrowedFd<'_> {}
impl OwnsFd for BorrowedFd<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

/// The descriptor number of a socket that another value owns, for the paths that must reach
/// it without borrowing it: a worker's session table (forced teardown), idle watchdogs, a
/// pool connection's bookkeeping, the control channel's teardown.
///
/// It is made only from a live socket ([`SocketFd::of`]), stays on its thread, and can do
/// no more than shut the socket down, peek at it and name its peer. **Contract:** it is
/// used only while its socket is open — its holder lives in the task that owns the socket
/// and is dropped in the same step as the socket, with no await between (a session's table
/// entry, a watchdog, the control link's tasks), or sits beside the socket in one value
/// (a pool entry and its connection). Broken, a call would reach whatever descriptor took
/// that number — never memory unsafety, but another socket's shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketFd {
    fd: RawFd,
    _not_send: PhantomData<*const ()>,
}

impl SocketFd {
    /// The descriptor of `socket`.
    pub fn of<S: OwnsFd + ?Sized>(socket: &S) -> SocketFd {
        SocketFd {
            fd: socket.fd().as_raw_fd(),
            _not_send: PhantomData,
        }
    }

    /// The number, for epoll registrations and tokens (never turned back into a borrow).
    pub fn raw(self) -> RawFd {
        self.fd
    }

    fn borrow(&self) -> BorrowedFd<'_> {
        // SAFETY: the type's contract (see its doc): the socket this number was taken from
        // is still open while its holder uses it, on this thread.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// Shut the socket down both ways, so pending io_uring operations on it complete
    /// (errors ignored: the session ends anyway).
    pub fn shutdown_both(self) {
        let _ = socket2::SockRef::from(&self.borrow()).shutdown(std::net::Shutdown::Both);
    }

    /// [`crate::net::SocketExt::peek_now`].
    pub fn peek_now(self, buf: &mut [u8]) -> io::Result<usize> {
        peek(self.borrow(), buf)
    }

    /// Read and drop whatever is queued on the socket now (at most 64 KiB), so closing it
    /// does not answer the peer with a reset for bytes nobody will read.
    pub fn drain_now(self) {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match recv_now(self.borrow(), &mut buf) {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        }
    }

    /// The peer's address as text for log lines (`?` if unknown), as
    /// [`crate::net::SocketExt::peer_text`].
    pub fn peer_text(self) -> String {
        socket2::SockRef::from(&self.borrow())
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or_else(|| "?".to_owned(), |a| a.to_string())
    }
}

/// Install `handler` for `signum` with SA_RESTART. The handler must be async-signal-safe.
pub fn set_signal_handler(
    signum: libc::c_int,
    handler: extern "C" fn(libc::c_int),
) -> io::Result<()> {
    // SAFETY: a zeroed `sigaction` is a valid value; we set a handler that the caller
    // guarantees is async-signal-safe, an empty mask, and pass no old-action pointer.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signum, &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ignore SIGPIPE so writing to a vanished peer is an `EPIPE` error, not a process kill.
pub fn ignore_sigpipe() {
    // SAFETY: setting SIGPIPE to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// A close-on-exec eventfd, counter 0.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: eventfd succeeded, so the descriptor is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add 1 to the counter of the eventfd `fd` (async-signal-safe: one `write(2)`; a raw
/// number because a signal handler cannot borrow). Errors are ignored: the only one
/// possible on a live eventfd is an overflow, which leaves it readable anyway.
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: `one` is 8 readable bytes for the duration of the call; a stale or invalid
    // `fd` only makes write fail (the caller passes the eventfd it keeps open for good).
    let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Ask the kernel for a pipe of `bytes` capacity; returns the capacity it granted.
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ on a borrowed, open pipe descriptor with an int argument.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// One non-blocking `splice(2)` of at most `len` bytes from `from` to `to` (one of them a
/// pipe). `Ok(0)` means end of file on `from`; `WouldBlock` means wait for readiness.
pub fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: plain syscall on two borrowed (so open) descriptors; null offsets because
    // neither side is seekable.
    let n = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Copy up to `buf.len()` bytes that are waiting on a socket without consuming them and
/// without blocking (`MSG_PEEK | MSG_DONTWAIT`).
pub fn peek(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes for recv to fill.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `recv(2)` with `MSG_DONTWAIT` into `len` bytes at `ptr`.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes (they need not be initialised).
unsafe fn recv_dontwait(fd: BorrowedFd<'_>, ptr: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: the caller guarantees the region; `fd` is borrowed, so open for the call.
    let n = unsafe { libc::recv(fd.as_raw_fd(), ptr.cast(), len, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Receive one datagram (or stream bytes) now, without blocking (`MSG_DONTWAIT`),
/// whatever the socket's `O_NONBLOCK` mode.
pub fn recv_now(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes.
    unsafe { recv_dontwait(fd, buf.as_mut_ptr(), buf.len()) }
}

/// [`recv_now`] into the spare capacity of `buf`, which grows by the bytes received.
pub fn recv_into_spare(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is a valid, writable region of `spare.len()` bytes.
    let n = unsafe { recv_dontwait(fd, spare.as_mut_ptr().cast(), spare.len())? };
    // SAFETY: recv initialised the first `n` spare bytes (n <= spare.len()).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// One non-blocking `write(2)` of `buf` to `fd` (used to park bytes in a splice pipe).
pub fn write_now(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable region of `buf.len()` bytes; `fd` is borrowed, so
    // open for the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// An epoll instance of our own (level-triggered), for watching many idle sockets with one
/// runtime wait: the tunnel's idle pool connections.
pub struct Epoll(OwnedFd);

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; a non-negative result is a new descriptor we now own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives for the call; a stale or closed `fd` only yields an error
        // (EBADF/ENOENT), never memory unsafety.
        let rc = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Watch `fd` for `events` (`EPOLL*` bits), reported with `token`.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Watch `fd` for `events` from now on (0: only hang-ups and errors).
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Stop watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// The events ready now, without waiting: `(token, events)` pairs into `out`.
    pub fn ready_now(&self, out: &mut Vec<(u64, u32)>) -> io::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: `events` is a writable array of 64 entries and we pass its length.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), 64, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for ev in events.iter().take(n as usize) {
            out.push((ev.u64, ev.events));
        }
        Ok(())
    }

    /// A second descriptor for the same instance (to wait on its readiness in a runtime).
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.0.try_clone()
    }
}

/// `secs` since the epoch broken down in the process's time zone (`localtime_r`).
pub fn localtime(secs: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).ok()?;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `t` and `tm` are valid for the call; localtime_r is the thread-safe variant
    // that writes only into the `tm` we pass, and returns NULL without touching it on error.
    // The zeroed `tm` is a valid value of this plain C struct either way.
    unsafe {
        if libc::localtime_r(&t, tm.as_mut_ptr()).is_null() {
            return None;
        }
        Some(tm.assume_init())
    }
}

/// Set or clear `O_NONBLOCK` with one `ioctl(FIONBIO)` (fcntl needs a get and a set).
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut value: libc::c_int = on.into();
    // SAFETY: FIONBIO takes a pointer to an int that lives for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &mut value) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Send signal `sig` to process `pid` (errors such as ESRCH are ignored: the caller only
/// signals its own children and checks their state itself).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: `kill` has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Highest descriptor the fall-back loop of [`prepare_child`] marks close-on-exec
/// on kernels without `close_range` (before 5.11).
const CLOEXEC_SWEEP_LIMIT: libc::c_int = 65536;

/// Prepare the child that `cmd` starts:
/// - it receives SIGTERM when its parent dies, even by SIGKILL (`PR_SET_PDEATHSIG`), so
///   instances never outlive their master. The kernel sends the signal when the *thread*
///   that forked exits, so spawn from a thread that lives as long as the children (the
///   master's runtime thread). If the parent is already gone when the child sets this up,
///   the spawn fails instead of leaving an orphan;
/// - it inherits no descriptor but its stdio: monoio's io_uring accept sets no
///   `SOCK_CLOEXEC`, so without this a child would hold copies of the master's API
///   connections (their FIN then waits for the child to exit).
pub fn prepare_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    let hook = move || -> io::Result<()> {
        // SAFETY: runs in the forked child before exec; prctl, getppid, close_range and
        // fcntl are async-signal-safe syscalls, and nothing here allocates or takes a lock
        // (io::Error from an OS code is a plain value).
        unsafe {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            close_above_stdio_at_exec();
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe calls (see above), as `pre_exec`
    // requires of code running between fork and exec.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Mark every descriptor above stdio close-on-exec (std's own exec-error pipe already is).
///
/// # Safety
/// Meant for a forked child before exec: it makes only async-signal-safe syscalls and
/// neither allocates nor locks.
unsafe fn close_above_stdio_at_exec() {
    // SAFETY: plain syscalls on descriptor numbers; an fd that is not open makes fcntl fail
    // with EBADF, which is ignored.
    unsafe {
        let marked = libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        );
        if marked != 0 {
            for fd in 3..CLOEXEC_SWEEP_LIMIT {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}

/// Let the child that `cmd` starts inherit no descriptor but its stdio (the part of
/// [`prepare_child`] a process that spawns from short-lived threads can use: tests, whose
/// in-process forwarders hold sockets io_uring accepted without `SOCK_CLOEXEC`).
pub fn inherit_only_stdio(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook only makes async-signal-safe calls, as `pre_exec` requires of code
    // running between fork and exec.
    unsafe {
        // In the forked child, before exec (see `close_above_stdio_at_exec`'s contract).
        cmd.pre_exec(|| {
            close_above_stdio_at_exec();
            Ok(())
        });
    }
}

impl Epoll {
    /// Wait for events, up to `timeout` (`None`: without limit): `(token, events)` pairs
    /// into `out`. An interrupted wait returns with nothing.
    pub fn wait(
        &self,
        out: &mut Vec<(u64, u32)>,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<()> {
        let ms = timeout.map_or(-1, |t| {
            libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
        });
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: `events` is a writable array of 64 entries and we pass its length.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), 64, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        for ev in events.iter().take(n as usize) {
            out.push((ev.u64, ev.events));
        }
        Ok(())
    }
}

/// A pidfd for our child `pid` (`pidfd_open`, Linux ≥ 5.3; close-on-exec): readable once
/// the child has exited, so its exit can be watched with epoll instead of a waiting thread.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments; a non-negative result is a new
    // descriptor that nothing else owns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send `sig` to the process a pidfd refers to (`pidfd_send_signal`, Linux ≥ 5.1): unlike
/// `kill(pid)`, it can never reach another process that reused the pid; once the process
/// has been reaped it fails with `ESRCH`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a plain syscall on a borrowed open descriptor; a null siginfo is allowed
    // (the kernel then fills it in as `kill` would), and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Copy as much of `src` as fits to the start of `dst` (an owned IO buffer, as a read
/// fills it) and mark that many bytes initialised; the count. For readers that deliver
/// bytes they decoded themselves (WebSocket payloads) into a caller's generic buffer.
pub fn fill_buf<T: monoio::buf::IoBufMut>(dst: &mut T, src: &[u8]) -> usize {
    let n = src.len().min(dst.bytes_total());
    // SAFETY: `IoBufMut` promises `write_ptr()` is valid for `bytes_total()` bytes, and
    // `n` is at most that; `src` is a live slice that cannot overlap `dst`, which we hold
    // by `&mut`; the `n` bytes are written before `set_init(n)` declares them initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.write_ptr(), n);
        dst.set_init(n);
    }
    n
}

/// The initialised bytes of an owned IO buffer, as a write sends them (monoio keeps its
/// own such view crate-private).
pub fn buf_bytes<T: monoio::buf::IoBuf>(buf: &T) -> &[u8] {
    // SAFETY: `IoBuf` (an unsafe trait) promises `read_ptr()` is valid for `bytes_init()`
    // initialised bytes while the buffer lives and is not mutated; the returned slice
    // borrows `buf`, so it cannot outlive it or see it mutated.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}

/// Hand the allocator's free memory back to the kernel. glibc keeps freed chunks in its
/// per-thread arenas, so a burst (a pool filling, a wave of TLS handshakes) would leave its
/// peak resident for the life of the process. A no-op where the allocator is not glibc's.
/// Called from the control thread's report tick (every `NP_REPORT_INTERVAL`), never per
/// connection.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks the allocator's own free chunks and returns their
    // whole pages to the kernel; it takes each arena's lock, so other threads may allocate
    // and free meanwhile. No pointer we hold is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}
