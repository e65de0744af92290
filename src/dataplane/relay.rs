//! Move bytes both ways between two TCP streams until both directions end.
//!
//! Three ways, chosen per process ([`RelayKind`]):
//! - `Splice` (default): readiness + non-blocking `splice(2)` through a pooled pipe per
//!   direction, on the worker thread: kernel-to-kernel, no io-wq threads, same code on
//!   io_uring (readiness = a `PollAdd`) and epoll.
//! - `UringSplice`: monoio's `IORING_OP_SPLICE` (always punted to io-wq kernel threads);
//!   kept only so benchmarks can compare (no `read=` support).
//! - `Copy`: owned-buffer read/write, the fallback and the shape TLS streams use.
//!
//! A FIN in one direction becomes a write shutdown on the other socket (half-close is kept);
//! an error in either direction shuts both sockets down so the other direction ends too.
//! `read=` is an idle timeout for the session: it fires when neither direction moved a
//! byte for that long. It is implemented by waiting for readiness (cancel-safe: no bytes
//! are consumed by a wait) or, for `Copy`, by a watchdog that shuts the sockets down
//! instead of dropping a read in flight.

use std::cell::{Cell, RefCell};
use std::io;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::end::End;
pub use super::meter::Meter;
use super::pipes::{Pipe, PipePool, SCRATCH_SIZE};
use crate::net::SocketExt;
use crate::runtime::{self, ActiveDriver};
use crate::sys::{self, OwnsFd, SocketFd};

/// How a worker relays plaintext TCP (see the module doc). Chosen by `NP_RELAY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayKind {
    /// Readiness + non-blocking splice (default).
    Splice,
    /// io_uring splice ops (benchmark comparison only).
    UringSplice,
    /// Buffered copy through user space.
    Copy,
}

impl RelayKind {
    /// From the `NP_RELAY` value: `splice` (default), `uring-splice`, `copy`.
    pub fn from_env_value(v: Option<&str>) -> Self {
        match v {
            Some("copy") => RelayKind::Copy,
            Some("uring-splice") => RelayKind::UringSplice,
            _ => RelayKind::Splice,
        }
    }
}

/// A direction's copy buffer: `initial` bytes, doubled up to `max` each time a read fills
/// it (the peer is streaming), so bulk moves in fewer, larger syscalls (and, over TLS, in
/// several records per send); a session that never streams keeps the small one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyBuf {
    pub initial: usize,
    pub max: usize,
    /// After a short read, wait until the source is readable ([`WaitReadable`]) and take a
    /// copy buffer only then, so a quiet direction holds none (a held session's memory);
    /// otherwise the buffer stays lent to the pending read.
    pub lend_when_readable: bool,
}

impl CopyBuf {
    /// Always `size` bytes, lent to every read.
    pub fn fixed(size: usize) -> Self {
        CopyBuf {
            initial: size,
            max: size,
            lend_when_readable: false,
        }
    }
}

/// A source a copy direction can wait on without lending it a buffer.
pub(super) trait WaitReadable {
    /// Return once a read would find bytes, EOF or an error (a source that cannot tell
    /// returns at once, and its read then waits holding the buffer).
    async fn wait_readable(&mut self) -> io::Result<()>;

    /// After [`Self::wait_readable`]: read into `buf`'s spare capacity at once, without a
    /// round through the runtime (`None`: this source has no such read, or it would block).
    fn read_ready(&mut self, _buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
        None
    }
}

impl WaitReadable for TcpStream {
    async fn wait_readable(&mut self) -> io::Result<()> {
        self.readable(false).await
    }

    fn read_ready(&mut self, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
        match sys::recv_into_spare(self.fd(), buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                None
            }
            other => Some(other),
        }
    }
}

/// Copy buffers a quiet direction gave up ([`CopyBuf::lend_when_readable`]), kept for the
/// worker's next message instead of a malloc and a free per message.
const SPARE_KEEP: usize = 64;

thread_local! {
    static SPARE_BUFS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A copy buffer of `capacity` bytes (a read fills `capacity()`: monoio sets `len()` to
/// the bytes read, so it needs no zeroing).
fn take_copy_buf(capacity: usize) -> Vec<u8> {
    SPARE_BUFS.with(|spare| {
        let mut spare = spare.borrow_mut();
        match spare.iter().rposition(|b| b.capacity() == capacity) {
            Some(i) => spare.swap_remove(i),
            None => Vec::with_capacity(capacity),
        }
    })
}

fn give_copy_buf(mut buf: Vec<u8>) {
    buf.clear();
    SPARE_BUFS.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARE_KEEP {
            spare.push(buf);
        }
    });
}

/// Session idle tracking shared by both directions of one relay.
pub struct Idle {
    timeout: Duration,
    last: Cell<Instant>,
}

impl Idle {
    /// `timeout` zero means no idle limit.
    pub fn new(timeout: Duration) -> Self {
        Idle {
            timeout,
            last: Cell::new(Instant::now()),
        }
    }

    pub(super) fn touch(&self) {
        if !self.timeout.is_zero() {
            self.last.set(Instant::now());
        }
    }

    async fn wait_readable(&self, s: &TcpStream) -> io::Result<()> {
        if self.timeout.is_zero() {
            s.readable(false).await
        } else {
            // Boxed for the same reason as in `Meter::pace`.
            Box::pin(self.wait_readable_timed(s)).await
        }
    }

    async fn wait_readable_timed(&self, s: &TcpStream) -> io::Result<()> {
        loop {
            let idle_for = self.last.get().elapsed();
            if idle_for >= self.timeout {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "read timeout"));
            }
            // Dropping a readiness wait consumes no bytes, so this race is safe.
            if let Ok(r) = monoio::time::timeout(self.timeout - idle_for, s.readable(false)).await {
                return r;
            }
        }
    }

    pub(super) async fn watchdog(&self, ends: &[End; 2]) {
        if self.timeout.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let idle_for = self.last.get().elapsed();
            if idle_for >= self.timeout {
                shutdown_ends(ends);
                return;
            }
            monoio::time::sleep(self.timeout - idle_for).await;
        }
    }
}

/// How one session is relayed: the method, its idle limit and the worker's resources.
/// [`Relay::run`] puts both streams in the `O_NONBLOCK` mode its method needs on the
/// driver (see `runtime`), once.
pub struct Relay<'a> {
    /// Splice, io_uring splice or copy.
    pub kind: RelayKind,
    /// `read=` idle timeout (zero = none).
    pub idle: Duration,
    /// The worker's pipe pool (splice).
    pub pipes: &'a PipePool,
    /// Copy buffer size (copy).
    pub copy_buf: usize,
    /// The driver of this worker's runtime.
    pub driver: ActiveDriver,
}

/// Which stream of a session was dialled by us, so is non-blocking already
/// (`net::start_connect`) rather than in the driver's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialled {
    /// Both came from an accept or were fitted for the driver.
    Neither,
    /// The first stream of the pair (`user`, or a tunnel's local target).
    First,
    /// The second stream of the pair (`target`).
    Second,
}

impl Relay<'_> {
    /// Relay `user` ⇄ `target` until both directions end. `up` meters user→target bytes,
    /// `down` target→user. Returns the first error of either direction.
    pub async fn run(
        &self,
        (user, target): (TcpStream, TcpStream),
        dialled: Dialled,
        up: Meter<'_>,
        down: Meter<'_>,
    ) -> io::Result<()> {
        self.set_modes(&user, &target, dialled)?;
        let idle = Idle::new(self.idle);
        match self.kind {
            RelayKind::Splice => {
                let ends = Ends {
                    user: &user,
                    target: &target,
                    dialled,
                };
                splice_both(ends, &up, &down, &idle, self.pipes).await
            }
            // The rarely used methods are boxed so their state does not size every task.
            RelayKind::Copy => {
                Box::pin(copy_both(user, target, &up, &down, &idle, self.copy_buf)).await
            }
            RelayKind::UringSplice => Box::pin(uring_splice_both(user, target, &up, &down)).await,
        }
    }
}

impl Relay<'_> {
    /// The splice relay's own syscalls need both streams non-blocking; monoio's reads and
    /// writes (copy, io_uring splice) need the driver's mode. Only the streams not yet in
    /// that mode change.
    fn set_modes(&self, user: &TcpStream, target: &TcpStream, dialled: Dialled) -> io::Result<()> {
        let streams = [
            (user, dialled == Dialled::First),
            (target, dialled == Dialled::Second),
        ];
        for (s, was_dialled) in streams {
            match (self.kind, was_dialled) {
                (RelayKind::Splice, false) => runtime::nonblocking_for_splice(self.driver, s)?,
                (RelayKind::Splice, true) => {}
                (_, true) => runtime::fit_dialled(self.driver, s),
                (_, false) => {}
            }
        }
        Ok(())
    }
}

fn shutdown_ends(ends: &[End; 2]) {
    for end in ends {
        end.shutdown_both();
    }
}

fn shutdown_both(a: &TcpStream, b: &TcpStream) {
    a.shutdown_both();
    b.shutdown_both();
}

/// End of one direction: EOF becomes a FIN on the destination; an error ends the session.
/// `other_done`: the opposite direction has already ended cleanly, so both sockets close
/// right after this (the close sends the FIN: no shutdown call needed).
fn finish(r: io::Result<()>, src: &TcpStream, dst: &TcpStream, other_done: bool) -> io::Result<()> {
    match r {
        Ok(()) => {
            if !other_done {
                dst.shutdown_write();
            }
            Ok(())
        }
        Err(e) => {
            shutdown_both(src, dst);
            Err(e)
        }
    }
}

/// The two streams of a spliced session and which of them was just dialled.
struct Ends<'a> {
    user: &'a TcpStream,
    target: &'a TcpStream,
    dialled: Dialled,
}

async fn splice_both(
    ends: Ends<'_>,
    up: &Meter<'_>,
    down: &Meter<'_>,
    idle: &Idle,
    pipes: &PipePool,
) -> io::Result<()> {
    let Ends {
        user,
        target,
        dialled,
    } = ends;
    // Both streams are non-blocking here (`Relay::set_modes`): our syscalls below must
    // never block the worker.
    let mut up_pipe = pipes.take()?;
    let mut down_pipe = pipes.take()?;
    // A stream we just dialled has nothing to read yet (its peer answers what we send), so
    // the direction reading it waits for readiness first instead of paying an EAGAIN.
    let up_start = start_for(dialled == Dialled::First);
    let down_start = start_for(dialled == Dialled::Second);
    let clean_ends = Cell::new(0u8);
    let forward = async {
        let r = splice_one_way(user, target, &mut up_pipe, pipes, up, idle, up_start).await;
        let other_done = clean_ends.get() > 0;
        clean_ends.set(clean_ends.get() + u8::from(r.is_ok()));
        finish(r, user, target, other_done)
    };
    let backward = async {
        let r = splice_one_way(target, user, &mut down_pipe, pipes, down, idle, down_start).await;
        let other_done = clean_ends.get() > 0;
        clean_ends.set(clean_ends.get() + u8::from(r.is_ok()));
        finish(r, target, user, other_done)
    };
    let (r1, r2) = monoio::join!(forward, backward);
    pipes.give_back(up_pipe);
    pipes.give_back(down_pipe);
    r1.and(r2)
}

/// How a direction begins: read at once, or wait until its source is readable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    Read,
    WaitFirst,
}

fn start_for(source_just_dialled: bool) -> Start {
    if source_just_dialled {
        Start::WaitFirst
    } else {
        Start::Read
    }
}

async fn splice_one_way(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &mut Pipe,
    pipes: &PipePool,
    meter: &Meter<'_>,
    idle: &Idle,
    start: Start,
) -> io::Result<()> {
    let chunk = meter.chunk(pipe.capacity);
    if start == Start::WaitFirst {
        idle.wait_readable(src).await?;
    }
    // Small messages go through the worker's scratch buffer (recv + send): for a few KiB,
    // two copies are cheaper in the kernel than pipe bookkeeping plus two splices (HAProxy
    // makes the same call). A read that fills the scratch means bulk: switch to splice
    // until the socket runs dry. Rate-limited directions always splice, because the
    // limiter may sleep and the scratch must never be held across an await.
    let mut bulk = meter.is_limited();
    loop {
        let got = if bulk {
            sys::splice(src.fd(), pipe.write_fd(), chunk)
        } else {
            copy_small(src, dst, pipe, pipes)
        };
        match got {
            Ok(0) => return Ok(()),
            Ok(n) => {
                idle.touch();
                if bulk {
                    pipe.buffered += n;
                    meter.account(n).await;
                } else {
                    meter.count(n);
                }
                drain_pipe(pipe, dst).await?;
                let filled = if bulk { n == chunk } else { n == SCRATCH_SIZE };
                bulk = filled || meter.is_limited();
                if !filled {
                    // The socket had less than a buffer: it is most likely empty now, so
                    // wait for readiness instead of paying a read that returns EAGAIN.
                    idle.wait_readable(src).await?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => idle.wait_readable(src).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Read what is waiting on `src` into the scratch buffer and send it on at once; whatever
/// `dst` does not take now is parked in the (empty) pipe for `drain_pipe`. Returns the
/// bytes read (0 = EOF).
fn copy_small(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &mut Pipe,
    pipes: &PipePool,
) -> io::Result<usize> {
    let mut scratch = pipes.scratch.borrow_mut();
    let n = src.recv_now(&mut scratch)?;
    if n == 0 {
        return Ok(0);
    }
    let sent = match dst.send_now(&scratch[..n]) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    let mut rest = &scratch[sent..n];
    while !rest.is_empty() {
        // The pipe is empty here and holds far more than the scratch, so this never blocks.
        let w = sys::write_now(pipe.write_fd(), rest)?;
        pipe.buffered += w;
        rest = &rest[w..];
    }
    Ok(n)
}

async fn drain_pipe(pipe: &mut Pipe, dst: &TcpStream) -> io::Result<()> {
    while pipe.buffered > 0 {
        match sys::splice(pipe.read_fd(), dst.fd(), pipe.buffered) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => pipe.buffered -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable(false).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A second monoio handle on the same socket (a `dup`, which shares its `O_NONBLOCK`
/// mode), so both directions can own one.
pub(super) fn twin(s: &TcpStream) -> io::Result<TcpStream> {
    let owned = s.fd().try_clone_to_owned()?;
    runtime::adopt_stream_as_is(std::net::TcpStream::from(owned))
}

async fn copy_both(
    user: TcpStream,
    target: TcpStream,
    up: &Meter<'_>,
    down: &Meter<'_>,
    idle: &Idle,
    buf_size: usize,
) -> io::Result<()> {
    let (mut user_w, mut target_w) = (twin(&user)?, twin(&target)?);
    let ends = [
        End::Socket(SocketFd::of(&user)),
        End::Socket(SocketFd::of(&target)),
    ];
    let (mut user_r, mut target_r) = (user, target);
    copy_bidi(
        (&mut user_r, &mut user_w),
        (&mut target_r, &mut target_w),
        &ends,
        (up, down),
        idle,
        [CopyBuf::fixed(buf_size); 2],
    )
    .await
}

/// Copy both ways between end `a` (read half, write half) and end `b` until both
/// directions end: `meters.0` counts a→b, `meters.1` b→a. `ends` are the two sockets
/// (or streams) underneath; an error in either direction shuts both down at once, so the other
/// direction cannot wait forever on a peer that never learns (a reset user, say), and the
/// idle watchdog does the same when `read=` expires.
pub(super) async fn copy_bidi<AR, AW, BR, BW>(
    a: (&mut AR, &mut AW),
    b: (&mut BR, &mut BW),
    ends: &[End; 2],
    meters: (&Meter<'_>, &Meter<'_>),
    idle: &Idle,
    bufs: [CopyBuf; 2],
) -> io::Result<()>
where
    AR: AsyncReadRent + WaitReadable,
    AW: AsyncWriteRent,
    BR: AsyncReadRent + WaitReadable,
    BW: AsyncWriteRent,
{
    let fail_fast = |r: io::Result<()>| {
        if r.is_err() {
            shutdown_ends(ends);
        }
        r
    };
    // Each direction is pinned where it is built and the join holds only references: a
    // join (or async block) that takes futures by value keeps a second copy of each
    // (rust-lang/rust#62958), which made this future 3.5 KiB.
    let forward =
        std::pin::pin!(async { fail_fast(copy_one_way(a.0, b.1, meters.0, idle, bufs[0]).await) });
    let backward =
        std::pin::pin!(async { fail_fast(copy_one_way(b.0, a.1, meters.1, idle, bufs[1]).await) });
    let both = async {
        let (r1, r2) = monoio::join!(forward, backward);
        r1.and(r2)
    };
    let mut both = std::pin::pin!(both);
    if idle.timeout.is_zero() {
        return both.await;
    }
    // Boxed, so a session without `read=` keeps no timer (768 bytes) in its future.
    let watchdog = Box::pin(idle.watchdog(ends));
    monoio::select! {
        r = &mut both => r,
        _ = watchdog => {
            // The watchdog shut both sockets down; let the reads finish instead of dropping them.
            let _ = both.await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "read timeout"))
        }
    }
}

/// Copy one direction until EOF (then shut the destination's write side) or an error.
/// Generic so TLS pool connections use the same loop as plain streams.
async fn copy_one_way<R: AsyncReadRent + WaitReadable, W: AsyncWriteRent>(
    src: &mut R,
    dst: &mut W,
    meter: &Meter<'_>,
    idle: &Idle,
    size: CopyBuf,
) -> io::Result<()> {
    let max = meter.chunk(size.max.max(size.initial).max(1));
    let mut capacity = meter.chunk(size.initial.max(1));
    let mut held: Option<Vec<u8>> = None;
    loop {
        let (res, b) = match held.take() {
            Some(buf) => src.read(buf).await,
            None if size.lend_when_readable => {
                src.wait_readable().await?;
                let mut buf = take_copy_buf(capacity);
                match src.read_ready(&mut buf) {
                    Some(res) => (res, buf),
                    None => src.read(buf).await,
                }
            }
            None => src.read(take_copy_buf(capacity)).await,
        };
        let n = res?;
        if n == 0 {
            let _ = dst.shutdown().await;
            return Ok(());
        }
        idle.touch();
        meter.account(n).await;
        let (res, slice) = dst.write_all(monoio::buf::IoBuf::slice(b, 0..n)).await;
        res?;
        let mut buf = slice.into_inner();
        let streaming = n == buf.capacity();
        if streaming && n < max {
            capacity = (n * 2).min(max);
            give_copy_buf(std::mem::replace(&mut buf, take_copy_buf(capacity)));
        }
        if streaming || !size.lend_when_readable {
            held = Some(buf);
        } else {
            give_copy_buf(buf);
        }
    }
}

async fn uring_splice_both(
    user: TcpStream,
    target: TcpStream,
    up: &Meter<'_>,
    down: &Meter<'_>,
) -> io::Result<()> {
    let (mut user_w, mut target_w) = (twin(&user)?, twin(&target)?);
    let (mut user_r, mut target_r) = (user, target);
    let forward = uring_splice_one_way(&mut user_r, &mut target_w, up);
    let backward = uring_splice_one_way(&mut target_r, &mut user_w, down);
    let (r1, r2) = monoio::join!(forward, backward);
    r1.and(r2)
}

async fn uring_splice_one_way(
    src: &mut TcpStream,
    dst: &mut TcpStream,
    meter: &Meter<'_>,
) -> io::Result<()> {
    use monoio::io::splice::{SpliceDestination, SpliceSource};
    let (mut pipe_r, mut pipe_w) = monoio::net::unix::new_pipe()?;
    let chunk = meter.chunk(super::pipes::PIPE_SIZE) as u32;
    loop {
        let n = src.splice_to_pipe(&mut pipe_w, chunk).await?;
        if n == 0 {
            dst.shutdown_write();
            return Ok(());
        }
        meter.account(n as usize).await;
        let mut left = n;
        while left > 0 {
            left -= dst.splice_from_pipe(&mut pipe_r, left).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Every live connection's task holds this future: its size is most of our user-space
    /// memory per idle connection (BENCHMARKS.md W8), so keep it from creeping back up.
    #[monoio::test(driver = "legacy", timer_enabled = true)]
    async fn the_relay_future_of_a_connection_stays_small() {
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect_addr(l.local_addr().unwrap())
            .await
            .unwrap();
        let (b, _) = l.accept().await.unwrap();
        let counter = AtomicU64::new(0);
        let pipes = PipePool::default();
        let relay = Relay {
            kind: RelayKind::Splice,
            idle: Duration::ZERO,
            pipes: &pipes,
            copy_buf: 16384,
            driver: ActiveDriver::Legacy,
        };
        let meter = || Meter {
            counter: &counter,
            limiter: None,
        };
        let fut = relay.run((a, b), Dialled::Neither, meter(), meter());
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 1536, "relay future is {size} bytes");
    }

    /// The copy relay (sessions over TLS, ws, QUIC, HTTP/2 pool connections) is held by every
    /// such session: two directions' state and no more (it was 3.5 KiB while its join held
    /// a second copy of each direction and a timer for `read=` it did not have).
    #[monoio::test(driver = "legacy", timer_enabled = true)]
    async fn the_copy_relay_future_of_a_session_stays_small() {
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect_addr(l.local_addr().unwrap())
            .await
            .unwrap();
        let (mut b, _) = l.accept().await.unwrap();
        let (mut a_w, mut b_w) = (twin(&a).unwrap(), twin(&b).unwrap());
        let counter = AtomicU64::new(0);
        let meter = Meter {
            counter: &counter,
            limiter: None,
        };
        let idle = Idle::new(Duration::ZERO);
        let ends = [End::Socket(SocketFd::of(&a)), End::Socket(SocketFd::of(&b))];
        let one_way = std::mem::size_of_val(&copy_one_way(
            &mut a,
            &mut b_w,
            &meter,
            &idle,
            CopyBuf::fixed(16384),
        ));
        let fut = copy_bidi(
            (&mut a, &mut a_w),
            (&mut b, &mut b_w),
            &ends,
            (&meter, &meter),
            &idle,
            [CopyBuf::fixed(16384); 2],
        );
        let size = std::mem::size_of_val(&fut);
        assert!(
            size <= 2 * one_way + 512,
            "copy relay future is {size} bytes, one direction {one_way}"
        );
    }

    fn nonblocking(s: &TcpStream) -> bool {
        socket2::SockRef::from(&s.fd()).nonblocking().unwrap()
    }

    /// The modes a relay sets depend only on its method, the driver and which stream was
    /// dialled, so the io_uring rule is checked here on any runtime.
    #[monoio::test(driver = "legacy", timer_enabled = true)]
    async fn a_relay_changes_only_the_streams_not_yet_in_the_mode_it_needs() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pair = || {
            let dialled = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (accepted, _) = l.accept().unwrap();
            // As on io_uring: accepted blocking, dialled non-blocking.
            dialled.set_nonblocking(true).unwrap();
            (
                runtime::adopt_stream_as_is(accepted).unwrap(),
                runtime::adopt_stream_as_is(dialled).unwrap(),
            )
        };
        let pipes = PipePool::default();
        let relay = |kind, driver| Relay {
            kind,
            idle: Duration::ZERO,
            pipes: &pipes,
            copy_buf: 16384,
            driver,
        };
        let (user, target) = pair();
        relay(RelayKind::Splice, ActiveDriver::Uring)
            .set_modes(&user, &target, Dialled::Second)
            .unwrap();
        assert!(nonblocking(&user) && nonblocking(&target));
        let (user, target) = pair();
        relay(RelayKind::Copy, ActiveDriver::Uring)
            .set_modes(&user, &target, Dialled::Second)
            .unwrap();
        assert!(!nonblocking(&user) && !nonblocking(&target));
        let (target, user) = pair();
        relay(RelayKind::Splice, ActiveDriver::Legacy)
            .set_modes(&user, &target, Dialled::First)
            .unwrap();
        // On epoll every stream of ours is non-blocking already: nothing is set.
        assert!(nonblocking(&user) && !nonblocking(&target));
    }
}
