//! Shared fixtures for black-box tests: echo servers on 127.0.0.1:0, a library-level
//! forwarder on either driver, the real binary as a child process (killed on drop), and
//! deadline helpers. Nothing here sleeps a fixed time: everything polls with a deadline.
#![allow(dead_code)]

pub mod cli;
pub mod h2;
pub mod isolation;
pub mod master;
pub mod pool_matrix;
pub mod quic;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodepass::config::Driver;
use nodepass::dataplane::{self, DataPlane, SessionSpec, WorkerSockets};
use nodepass::runtime::{self, ActiveDriver};

use isolation::Room;

/// `on_both_drivers!(case)` after `fn case(driver: Driver)`: the tests `case::on_uring`
/// and `case::on_epoll`, so a failure on one driver never hides the other's result.
macro_rules! on_both_drivers {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn on_uring() {
                super::$case(nodepass::config::Driver::Uring);
            }

            #[test]
            fn on_epoll() {
                super::$case(nodepass::config::Driver::Legacy);
            }
        }
    )*};
}
pub(crate) use on_both_drivers;

/// The `NP_DRIVER` value that makes a child process run on `driver`.
pub fn np_driver(driver: Driver) -> &'static str {
    match driver {
        Driver::Uring => "uring",
        Driver::Legacy => "legacy",
        Driver::Auto => "auto",
    }
}

/// A generous bound for any single step of a test.
pub const STEP: Duration = Duration::from_secs(10);

/// A TCP echo server: each connection echoes until EOF, then shuts its write side.
pub fn echo_tcp() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// A UDP echo server: every datagram goes back to its sender unchanged.
pub fn echo_udp() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp echo");
    let addr = socket.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

/// A TCP address where nothing listens (bound, then closed).
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A forwarder started through the library on a chosen driver (2 workers).
pub struct Forwarder {
    /// Where users connect (TCP and UDP).
    pub addr: SocketAddr,
    plane: Option<DataPlane<std::convert::Infallible>>,
    /// Dropped after the plane has stopped (fields drop after `Drop::drop`).
    _room: isolation::Guard,
}

impl Forwarder {
    /// Start with `spec` on `driver`.
    pub fn start(driver: Driver, spec: SessionSpec) -> Forwarder {
        let room = isolation::enter(Room::InProcessRelay);
        let active = runtime::choose(driver).expect("driver available");
        let tcp =
            nodepass::net::bind_tcp_listeners("127.0.0.1:0".parse().unwrap(), 2).expect("bind");
        let addr = tcp[0].local_addr().unwrap();
        let udp = nodepass::net::bind_udp_sockets(addr, 2).expect("bind udp");
        let sockets = tcp
            .into_iter()
            .zip(udp)
            .map(|(t, u)| WorkerSockets {
                tcp: Some(t),
                udp: Some(u),
            })
            .collect();
        let plane = dataplane::start_forwarder(Arc::new(spec), sockets, active).expect("start");
        Forwarder {
            addr,
            plane: Some(plane),
            _room: room,
        }
    }

    /// The driver the workers run on.
    pub fn driver(&self) -> ActiveDriver {
        self.plane
            .as_ref()
            .map_or(ActiveDriver::Legacy, |p| p.driver)
    }

    /// Sum of live TCP sessions over the workers.
    pub fn live_tcp(&self) -> i64 {
        let plane = self.plane.as_ref().expect("running");
        nodepass::stats::snapshot(plane.stats.iter().map(|s| s.as_ref())).tcps
    }

    /// The summed counters.
    pub fn snapshot(&self) -> nodepass::stats::Snapshot {
        let plane = self.plane.as_ref().expect("running");
        nodepass::stats::snapshot(plane.stats.iter().map(|s| s.as_ref()))
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(plane) = self.plane.take() {
            nodepass::bus::post_all(&plane.handles, || nodepass::bus::Command::CloseAll);
            plane.join();
        }
    }
}

/// Poll `f` every 10 ms until it yields a value or `limit` passes (it is asked once more
/// at the deadline). The one deadline poller of the tests.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return f();
        }
        // Polling a condition on the test thread (no runtime here).
        std::thread::park_timeout(left.min(Duration::from_millis(10)));
    }
}

/// Poll `cond` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll(limit, || cond().then_some(())).is_some()
}

/// A directory under the temp dir, unique to this process and call, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("np-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// The path of `name` in this directory, as a string (for URLs and environment values).
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Connect with read/write timeouts so a broken relay fails the test instead of hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, STEP).expect("connect");
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s
}

/// Deterministic test payload of `len` bytes.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Send `data` through `addr` to an echo server and return what came back after EOF.
pub fn echo_through(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    let mut reader = s.try_clone().expect("clone");
    let receiver = std::thread::spawn(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    });
    s.write_all(data).expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown write");
    receiver.join().expect("join").expect("read")
}

/// The real binary as a child process; killed (and reaped) on drop.
pub struct NodepassProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
    /// Dropped after the child is reaped (fields drop after `Drop::drop`).
    _room: isolation::Guard,
}

impl NodepassProcess {
    /// Start `nodepass <url>` with extra environment variables.
    pub fn start(url: &str, envs: &[(&str, &str)]) -> NodepassProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nodepass"));
        cmd.arg(url);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Start `cmd` (a nodepass command line, perhaps behind `setpriv`) with piped output.
    pub fn spawn(mut cmd: Command) -> NodepassProcess {
        let room = isolation::enter(Room::Children);
        // A socket this process holds without close-on-exec (io_uring accepts set none; an
        // in-process forwarder's may outlive its test) must not show up in the child's fd
        // and CLOSE-WAIT checks.
        nodepass::sys::inherit_only_stdio(&mut cmd);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn nodepass");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        });
        NodepassProcess {
            child,
            lines,
            seen: Vec::new(),
            _room: room,
        }
    }

    /// Wait for an output line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Move every line printed so far into `seen`, without waiting; how many there are.
    pub fn take_output(&mut self) -> usize {
        self.seen.extend(self.lines.try_iter());
        self.seen.len()
    }

    /// A fixed wait: collect every line printed within `period` into `seen`. For showing
    /// that something is *not* printed within a window, and for gathering late lines for a
    /// failure message; to wait for something that is printed, use [`Self::wait_for_line`].
    pub fn watch_output_for(&mut self, period: Duration) -> usize {
        let deadline = Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => return self.seen.len(),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Both pipes closed: nothing more will come; the window still lasts.
                    std::thread::park_timeout(left);
                    if Instant::now() >= deadline {
                        return self.seen.len();
                    }
                }
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
    }

    /// Wait for exit within `limit`; the exit code, or None if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = &mut self.child;
        poll(limit, || {
            let status = child.try_wait().ok().flatten()?;
            Some(status.code().unwrap_or(-1))
        })
    }
}

impl Drop for NodepassProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP+UDP port on 127.0.0.1 (bound, checked, released) for a URL we hand to the
/// binary. Taken from below the kernel's ephemeral range, so a socket another test binds to
/// port 0 cannot be given the same port between our check and nodepass's bind; a
/// per-process counter never hands the same port out twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u32, ephemeral_low.max(10_001));
    let span = high - low;
    let seed = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let port = (low + (seed + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

/// `recv_from` that retries on EINTR (std does not; io_uring task work can interrupt it).
pub fn recv_from_retry(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        match socket.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A server and client pair of the real binary with a tunnel between them.
pub struct TunnelPair {
    /// The server process.
    pub server: NodepassProcess,
    /// The client process.
    pub client: NodepassProcess,
    /// Where users connect (server's target in flow `-`, client's in flow `+`).
    pub user: SocketAddr,
    /// The tunnel port.
    pub tunnel_port: u16,
    /// The server's URL (to start it again).
    pub server_url: String,
    /// The client's URL (to start it again).
    pub client_url: String,
}

/// How to start a [`TunnelPair`].
pub struct TunnelOpts<'a> {
    /// `true` = flow `-` (server mode 1), `false` = flow `+` (server mode 2).
    pub reverse: bool,
    /// Extra server query, e.g. `tls=1`.
    pub server_query: &'a str,
    /// Extra client query.
    pub client_query: &'a str,
    /// Environment for both processes (NP_REPORT_INTERVAL=1s etc. are added).
    pub env: Vec<(&'a str, &'a str)>,
}

/// Base environment of tunnel tests: fast health ticks and restarts, two workers.
pub const TUNNEL_ENV: [(&str, &str); 3] = [
    ("NP_REPORT_INTERVAL", "1s"),
    ("NP_SERVICE_COOLDOWN", "200ms"),
    ("NP_WORKERS", "2"),
];

/// The server URL for a pair.
pub fn tunnel_server_url(
    o: &TunnelOpts<'_>,
    tunnel_port: u16,
    user_port: u16,
    target: SocketAddr,
) -> String {
    if o.reverse {
        format!(
            "server://secret@127.0.0.1:{tunnel_port}/127.0.0.1:{user_port}?mode=1&{}",
            o.server_query
        )
    } else {
        format!(
            "server://secret@127.0.0.1:{tunnel_port}/{target}?mode=2&{}",
            o.server_query
        )
    }
}

/// The client URL for a pair.
pub fn tunnel_client_url(
    o: &TunnelOpts<'_>,
    tunnel_port: u16,
    user_port: u16,
    target: SocketAddr,
) -> String {
    if o.reverse {
        format!(
            "client://secret@127.0.0.1:{tunnel_port}/{target}?mode=2&min=8&{}",
            o.client_query
        )
    } else {
        format!(
            "client://secret@127.0.0.1:{tunnel_port}/127.0.0.1:{user_port}?mode=2&min=8&{}",
            o.client_query
        )
    }
}

/// Start a server and a client and wait until both have their control channel up.
pub fn tunnel_pair(o: &TunnelOpts<'_>, target: SocketAddr) -> TunnelPair {
    let tunnel_port = free_port();
    let user_port = free_port();
    let mut env: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    env.extend(o.env.iter().copied());
    let server_url = tunnel_server_url(o, tunnel_port, user_port, target);
    let client_url = tunnel_client_url(o, tunnel_port, user_port, target);
    let mut server = NodepassProcess::start(&server_url, &env);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap_or_else(|| panic!("server did not start: {:?}", server.seen));
    let mut client = NodepassProcess::start(&client_url, &env);
    for p in [&mut server, &mut client] {
        p.wait_for_line("Marking tunnel handshake as complete", STEP)
            .unwrap_or_else(|| panic!("no handshake: {:?}", p.seen));
    }
    TunnelPair {
        server,
        client,
        user: SocketAddr::from(([127, 0, 0, 1], user_port)),
        tunnel_port,
        server_url,
        client_url,
    }
}

/// Send `count` datagrams through `addr` to a UDP echo, one outstanding at a time;
/// returns how many came back intact.
pub fn udp_round_trips(addr: SocketAddr, count: usize) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut ok = 0;
    let mut buf = vec![0u8; 65536];
    for i in 0..count {
        let msg = payload(64 + i % 512, i as u8);
        for _attempt in 0..6 {
            socket.send_to(&msg, addr).expect("send");
            match recv_from_retry(&socket, &mut buf) {
                Ok((n, _)) if buf[..n] == msg[..] => {
                    ok += 1;
                    break;
                }
                _ => {}
            }
        }
    }
    ok
}

/// Like [`echo_through`] but false (instead of a panic) on any connection error.
pub fn echo_through_ok(addr: SocketAddr, data: &[u8]) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, STEP) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(STEP));
    if s.write_all(data).is_err() || s.shutdown(Shutdown::Write).is_err() {
        return false;
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).is_ok() && out == data
}

/// A TCP echo and a UDP echo on the same port (a tunnel target is one address for both).
pub fn echo_tcp_udp() -> SocketAddr {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let Ok(udp) = UdpSocket::bind(addr) else {
            continue;
        };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&buf[..n], from);
            }
        });
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = conn.shutdown(Shutdown::Write);
                });
            }
        });
        return addr;
    }
}

/// Send `bytes` to `addr` and read the answer until the peer closes (or `limit` passes
/// without a byte): a raw HTTP exchange.
pub fn http_exchange(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, STEP).expect("connect");
    s.set_read_timeout(Some(limit)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Read an HTTP head (up to and including the blank line) and nothing more.
pub fn read_http_head(s: &mut impl Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// Plays a Go peer's side of a control channel on its own thread: decodes every signal
/// line, answers `ping` with `pong`, pings every `ping_every` (the first at once), and
/// writes what the test queues. The stream must have a short read timeout (≈50 ms) so
/// the thread can interleave writes; it is closed when this value is dropped.
pub struct FakeControl {
    got: mpsc::Receiver<nodepass::proto::Signal>,
    out: mpsc::Sender<nodepass::proto::Signal>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeControl {
    /// Start on `stream` with the tunnel `key`.
    pub fn start<S: Read + Write + Send + 'static>(
        mut stream: S,
        key: &str,
        ping_every: Duration,
    ) -> FakeControl {
        use nodepass::proto::{decode_line, encode_line, Action, Signal};
        let (got_tx, got) = mpsc::channel();
        let (out, out_rx) = mpsc::channel::<Signal>();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let key = key.to_owned();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 4096];
            let mut next_ping = Instant::now();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let mut lines: Vec<Vec<u8>> =
                    out_rx.try_iter().map(|s| encode_line(&s, &key)).collect();
                if Instant::now() >= next_ping {
                    next_ping = Instant::now() + ping_every;
                    lines.push(encode_line(&Signal::new(Action::Ping), &key));
                }
                for line in lines {
                    if stream
                        .write_all(&line)
                        .and_then(|()| stream.flush())
                        .is_err()
                    {
                        return;
                    }
                }
                let n = match stream.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(_) => return,
                };
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let sig = decode_line(&line, &key).expect("a well-formed signal line");
                    if sig.action == Action::Ping {
                        let pong = encode_line(&Signal::new(Action::Pong), &key);
                        if stream.write_all(&pong).is_err() {
                            return;
                        }
                    }
                    if got_tx.send(sig).is_err() {
                        return;
                    }
                }
            }
        });
        FakeControl { got, out, stop }
    }

    /// Queue a signal for the peer.
    pub fn send(&self, sig: nodepass::proto::Signal) {
        self.out.send(sig).expect("control thread alive");
    }

    /// The next received signal matching `pred` within `limit` (others are skipped).
    pub fn wait_for(
        &self,
        limit: Duration,
        pred: impl Fn(&nodepass::proto::Signal) -> bool,
    ) -> Option<nodepass::proto::Signal> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.got.recv_timeout(left) {
                Ok(sig) if pred(&sig) => return Some(sig),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for FakeControl {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Lowercase hex of a 4-byte pool id, as it appears in signals.
pub fn id_hex(id: [u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Open descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Resident memory of process `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}
