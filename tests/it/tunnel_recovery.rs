//! Faults a tunnel must heal from by itself, against the real binary, ours↔ours: the
//! reverse tunnel `server://…?mode=1&max=32` with `client://…?mode=2&min=8`, tls=0 and
//! tls=1, every echo random bytes compared byte for byte. Each scenario also checks that
//! the processes leak nothing once settled (fds, threads, CLOSE-WAIT sockets).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{echo_tcp_udp, free_port, NodepassProcess, STEP};

/// Fast ticks and restarts, two workers (as the other tunnel tests).
const ENV: [(&str, &str); 3] = [
    ("NP_REPORT_INTERVAL", "1s"),
    ("NP_SERVICE_COOLDOWN", "1s"),
    ("NP_WORKERS", "2"),
];

/// Random bytes (a user's data must never be mistaken for anything else).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut f = std::fs::File::open("/dev/urandom").expect("urandom");
    f.read_exact(&mut out).expect("random");
    out
}

struct Tunnel {
    env: Vec<(&'static str, &'static str)>,
    server: NodepassProcess,
    client: NodepassProcess,
    server_url: String,
    client_url: String,
    user: SocketAddr,
    tunnel: SocketAddr,
}

impl Tunnel {
    /// Start the reverse tunnel to `target` and wait for both handshakes.
    fn start(tls: u8, target: SocketAddr) -> Tunnel {
        Tunnel::start_on("auto", tls, target)
    }

    /// As [`Tunnel::start`] with `NP_DRIVER=driver` for both processes.
    fn start_on(driver: &'static str, tls: u8, target: SocketAddr) -> Tunnel {
        let mut env = ENV.to_vec();
        env.push(("NP_DRIVER", driver));
        let (tun, user) = (free_port(), free_port());
        let server_url = format!(
            "server://k3y@127.0.0.1:{tun}/127.0.0.1:{user}?mode=1&max=32&tls={tls}&log=info"
        );
        let client_url = format!("client://k3y@127.0.0.1:{tun}/{target}?mode=2&min=8&log=info");
        let mut server = NodepassProcess::start(&server_url, &env);
        server
            .wait_for_line("Pending tunnel handshake", STEP)
            .unwrap_or_else(|| panic!("server did not start: {:?}", server.seen));
        let client = NodepassProcess::start(&client_url, &env);
        let mut t = Tunnel {
            env,
            server,
            client,
            server_url,
            client_url,
            user: SocketAddr::from(([127, 0, 0, 1], user)),
            tunnel: SocketAddr::from(([127, 0, 0, 1], tun)),
        };
        for p in [&mut t.server, &mut t.client] {
            p.wait_for_line("Marking tunnel handshake as complete", STEP)
                .unwrap_or_else(|| panic!("no handshake: {:?}", p.seen));
        }
        assert!(
            first_good_echo(t.user, STEP).is_some(),
            "no echo through a fresh tunnel"
        );
        t
    }

    fn restart_client(&mut self) -> Instant {
        let started = Instant::now();
        self.client = NodepassProcess::start(&self.client_url, &self.env);
        started
    }
}

/// One echo of `data` through `addr`: true when exactly `data` came back before EOF.
fn echo(addr: SocketAddr, data: &[u8], limit: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, limit) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(limit));
    let _ = s.set_write_timeout(Some(limit));
    let Ok(mut reader) = s.try_clone() else {
        return false;
    };
    let receiver = std::thread::spawn(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out).ok()
    });
    let sent = s.write_all(data).is_ok() && s.shutdown(Shutdown::Write).is_ok();
    let got = receiver.join().ok().flatten();
    sent && got.as_deref() == Some(data)
}

/// Echo 4 KiB of random bytes until one comes back intact; how long that took.
fn first_good_echo(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let data = random_bytes(4096);
    while start.elapsed() < limit {
        let left = limit
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(50));
        if echo(addr, &data, left.min(Duration::from_secs(6))) {
            return Some(start.elapsed());
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
    None
}

/// What a process holds: open descriptors and threads.
fn resources(pid: u32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    (fds, threads)
}

/// Sockets of `pid` in CLOSE-WAIT (the peer closed, we never did), as
/// `local -> remote` in /proc/net/tcp's hex notation (so a failure names them).
fn close_wait(pid: u32) -> Vec<String> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[")
                        .and_then(|r| r.strip_suffix(']'))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| {
            t.lines()
                .skip(1)
                .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .filter(|f| f.len() > 9 && f[3] == "08" && inodes.contains(&f[9]))
        .map(|f| format!("{} -> {}", f[1], f[2]))
        .collect()
}

/// The process settles back to within `fds`/`threads` of `base` and holds no CLOSE-WAIT;
/// a failure names the CLOSE-WAIT sockets and shows the process's last log lines.
fn assert_settles(name: &str, p: &mut NodepassProcess, base: (usize, usize)) {
    let pid = p.pid();
    let ok = crate::common::eventually(Duration::from_secs(8), || {
        let (fds, threads) = resources(pid);
        fds <= base.0 + 40 && threads <= base.1 + 8 && close_wait(pid).is_empty()
    });
    let now = resources(pid);
    p.take_output();
    assert!(
        ok,
        "{name}: leaked: fds {} -> {}, threads {} -> {}, CLOSE-WAIT {:?}; last log lines: {:#?}",
        base.0,
        now.0,
        base.1,
        now.1,
        close_wait(pid),
        &p.seen[p.seen.len().saturating_sub(30)..]
    );
}

/// SIGKILL a process and reap it.
fn kill9(p: &mut NodepassProcess) {
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(p.pid().to_string())
        .status();
    assert!(
        p.wait_exit(STEP).is_some(),
        "SIGKILL did not end {}",
        p.pid()
    );
}

fn alive(p: &mut NodepassProcess) -> bool {
    p.wait_exit(Duration::ZERO).is_none()
}

fn restarts(p: &NodepassProcess) -> usize {
    p.seen.iter().filter(|l| l.contains(" restart: ")).count()
}

/// SIGKILL the client during a 16 MiB echo: the user's transfer ends (EOF or reset)
/// within 5 s, the server stays up, and the client started again gives its first good
/// echo within 2 s of its start.
fn kill_client(driver: &'static str, tls: u8) {
    let target = echo_tcp_udp();
    let mut t = Tunnel::start_on(driver, tls, target);
    let base = resources(t.server.pid());
    let mut user = TcpStream::connect(t.user).expect("connect user");
    user.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    user.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let data = random_bytes(16 << 20);
    // The first MiB makes the round trip, so the session is live when the client dies.
    user.write_all(&data[..1 << 20]).expect("write");
    let mut back = vec![0u8; 1 << 20];
    user.read_exact(&mut back).expect("first MiB back");
    assert_eq!(back, data[..1 << 20]);
    let killed = Instant::now();
    kill9(&mut t.client);
    let mut ended = false;
    let mut buf = vec![0u8; 1 << 16];
    for chunk in data[1 << 20..].chunks(1 << 16) {
        if user.write_all(chunk).is_err() {
            ended = true;
            break;
        }
        match user.read(&mut buf) {
            Ok(0) | Err(_) => {
                ended = true;
                break;
            }
            Ok(_) => {}
        }
        if killed.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    assert!(
        ended && killed.elapsed() <= Duration::from_secs(5),
        "the user's transfer did not end within 5 s of the client's death"
    );
    assert!(alive(&mut t.server), "server died with its client");
    let started = t.restart_client();
    let took = first_good_echo(t.user, Duration::from_secs(6)).map(|_| started.elapsed());
    assert!(
        took.is_some_and(|d| d <= Duration::from_secs(2)),
        "first good echo {took:?} after the client's restart (want <= 2 s); server: {:?}",
        t.server.seen
    );
    assert_settles("server", &mut t.server, base);
}

/// SIGTERM the server and start it again on the same ports, client untouched: the first
/// good echo within 5 s of the new server's start (tls=1: the fingerprint check passes
/// again on the new certificate).
fn server_restart(driver: &'static str, tls: u8) {
    let target = echo_tcp_udp();
    let mut t = Tunnel::start_on(driver, tls, target);
    if tls != 0 {
        t.client
            .wait_for_line("TLS fingerprint verified", STEP)
            .unwrap_or_else(|| {
                panic!(
                    "first fingerprint check: {:?} {:?}",
                    t.client.seen, t.server.seen
                )
            });
    }
    let base = resources(t.client.pid());
    t.server.terminate();
    assert_eq!(t.server.wait_exit(STEP), Some(0), "server did not stop");
    let started = Instant::now();
    t.server = NodepassProcess::start(&t.server_url, &t.env);
    let took = first_good_echo(t.user, Duration::from_secs(8)).map(|_| started.elapsed());
    assert!(
        took.is_some_and(|d| d <= Duration::from_secs(5)),
        "first good echo {took:?} after the server's restart (want <= 5 s); client: {:?}",
        t.client.seen
    );
    if tls != 0 {
        let verified = |c: &NodepassProcess| {
            c.seen
                .iter()
                .filter(|l| l.contains("TLS fingerprint verified"))
                .count()
        };
        let ok = crate::common::eventually(STEP, || {
            t.client.take_output();
            verified(&t.client) >= 2
        });
        assert!(ok, "no second fingerprint check: {:?}", t.client.seen);
        assert!(
            !t.client.seen.iter().any(|l| l.contains("mismatch")),
            "{:?}",
            t.client.seen
        );
    }
    assert_settles("client", &mut t.client, base);
}

/// Hostile peers on the tunnel port, each re-opened as soon as it is closed, until `stop`.
struct Hostiles {
    stop: Arc<AtomicBool>,
    opened: Arc<std::sync::atomic::AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    /// Everything any hostile connection received, per connection.
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[derive(Clone, Copy)]
enum Hostile {
    /// Random bytes at once.
    Garbage,
    /// One byte of an HTTP request, then one more every 300 ms.
    Slowloris,
    /// A whole HTTP request for a path that is not the handshake's.
    BadPath,
}

impl Hostiles {
    fn start(at: SocketAddr, kinds: &[(Hostile, usize)]) -> Hostiles {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for &(kind, count) in kinds {
            for _ in 0..count {
                let (stop, received) = (Arc::clone(&stop), Arc::clone(&received));
                let opened = Arc::clone(&opened);
                threads.push(std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        opened.fetch_add(1, Ordering::Relaxed);
                        let got = hostile_once(at, kind, &stop);
                        if !got.is_empty() {
                            received.lock().unwrap().push(got);
                        }
                    }
                }));
            }
        }
        Hostiles {
            stop,
            opened,
            threads,
            received,
        }
    }

    /// Hostile connections opened so far.
    fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    fn stop(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        std::mem::take(&mut self.received.lock().unwrap())
    }
}

/// One hostile connection until the server closes it (or `stop`); what it received.
fn hostile_once(at: SocketAddr, kind: Hostile, stop: &AtomicBool) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect_timeout(&at, Duration::from_secs(1)) else {
        std::thread::park_timeout(Duration::from_millis(50));
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let request = b"GET /no-such-path HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut sent = 0;
    match kind {
        Hostile::Garbage => {
            let _ = s.write_all(&random_bytes(64));
        }
        Hostile::BadPath => {
            let _ = s.write_all(request);
        }
        Hostile::Slowloris => {
            let _ = s.write_all(&request[..1]);
            sent = 1;
        }
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let born = Instant::now();
    while !stop.load(Ordering::Relaxed) && born.elapsed() < Duration::from_secs(20) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if matches!(kind, Hostile::Slowloris) && sent < request.len() - 4 {
                    if s.write_all(&request[sent..sent + 1]).is_err() {
                        break;
                    }
                    sent += 1;
                }
            }
            Err(_) => break,
        }
    }
    got
}

/// What a hostile connection may legitimately receive: nothing, a 4-byte pool id, an
/// HTTP error answer, or an id followed by an HTTP answer. Anything else is user data.
fn only_ids_and_http(got: &[u8]) -> bool {
    let http = |b: &[u8]| b.is_empty() || (b.starts_with(b"HTTP/1.1 ") && b.is_ascii());
    http(got) || got.len() == 4 || (got.len() > 4 && http(&got[4..]))
}

/// A client restart while 20 slowloris connections hold the tunnel port: the first good
/// echo within 4 s of the start and at most 2 s later than the same restart unattacked.
fn client_restart_under_attack(tls: u8) {
    let target = echo_tcp_udp();
    let mut t = Tunnel::start(tls, target);
    let restart = |t: &mut Tunnel| {
        kill9(&mut t.client);
        let started = t.restart_client();
        first_good_echo(t.user, Duration::from_secs(8)).map(|_| started.elapsed())
    };
    let quiet = restart(&mut t).expect("restart without attack");
    let attack = Hostiles::start(t.tunnel, &[(Hostile::Slowloris, 20)]);
    let attacked = restart(&mut t);
    drop(attack.stop());
    if !attacked.is_some_and(|d| d <= Duration::from_secs(4)) {
        for p in [&mut t.server, &mut t.client] {
            // Gather the lines printed around the failure for the message.
            p.watch_output_for(Duration::from_millis(200));
            let odd: Vec<_> = p
                .seen
                .iter()
                .filter(|l| !l.contains("exchange") && !l.contains("CHECK_POINT"))
                .collect();
            eprintln!("{odd:#?}");
        }
    }
    assert!(
        attacked
            .is_some_and(|d| d <= Duration::from_secs(4) && d <= quiet + Duration::from_secs(2)),
        "restart under attack: first echo {attacked:?} (without attack {quiet:?})"
    );
    assert!(alive(&mut t.server));
}

/// 50 garbage senders, 20 slowloris and 20 bad-path requesters, each re-opened when
/// closed, while 20 concurrent 256 KiB echoes run: 20/20 byte-exact, no hostile
/// connection receives user data, no restart, both processes alive.
fn hostile_flood(tls: u8) {
    let target = echo_tcp_udp();
    let mut t = Tunnel::start(tls, target);
    let base = resources(t.server.pid());
    let attack = Hostiles::start(
        t.tunnel,
        &[
            (Hostile::Garbage, 50),
            (Hostile::Slowloris, 20),
            (Hostile::BadPath, 20),
        ],
    );
    // Every hostile connection is open (and the first ones re-opened) before users come.
    assert!(
        crate::common::eventually(STEP, || attack.opened() >= 120),
        "the attack did not get going"
    );
    let user = t.user;
    let echoes: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let data = random_bytes(256 << 10);
                echo(user, &data, Duration::from_secs(20))
            })
        })
        .collect();
    let good = echoes
        .into_iter()
        .map(|h| h.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    let received = attack.stop();
    assert_eq!(good, 20, "echoes byte-exact under the flood");
    if tls == 0 {
        let leaked: Vec<_> = received.iter().filter(|g| !only_ids_and_http(g)).collect();
        assert!(
            leaked.is_empty(),
            "{} hostile connections received user data",
            leaked.len()
        );
    }
    for p in [&mut t.server, &mut t.client] {
        // A restart logged just after the last echo counts too: watch 100 ms more.
        p.watch_output_for(Duration::from_millis(100));
        assert!(alive(p), "a process died under the flood");
        assert_eq!(restarts(p), 0, "restart under the flood: {:?}", p.seen);
    }
    assert_settles("server", &mut t.server, base);
}

/// While the target is down a user's connection ends within 1 s; once it is back the
/// first good echo comes within 1 s, and the tunnel never restarts.
fn target_down(tls: u8) {
    let target_port = free_port();
    let target = SocketAddr::from(([127, 0, 0, 1], target_port));
    let echo_server = StoppableEcho::start(target);
    let mut t = Tunnel::start(tls, target);
    echo_server.stop();
    for _ in 0..5 {
        let start = Instant::now();
        let mut s = TcpStream::connect(t.user).expect("user connects");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(b"hello");
        let mut buf = [0u8; 16];
        let r = s.read(&mut buf);
        assert!(
            matches!(r, Ok(0) | Err(_)) && start.elapsed() <= Duration::from_secs(1),
            "user connection with the target down: {r:?} after {:?}",
            start.elapsed()
        );
    }
    let _back = StoppableEcho::start(target);
    let took = first_good_echo(t.user, Duration::from_secs(3));
    assert!(
        took.is_some_and(|d| d <= Duration::from_secs(1)),
        "first echo {took:?} after the target came back"
    );
    for p in [&mut t.server, &mut t.client] {
        // A restart logged just after the last echo counts too: watch 100 ms more.
        p.watch_output_for(Duration::from_millis(100));
        assert_eq!(
            restarts(p),
            0,
            "restart while the target was down: {:?}",
            p.seen
        );
    }
}

/// A TCP echo on a fixed address that can be taken down (its listener closed, so new
/// connections are refused) and started again on the same port.
struct StoppableEcho {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StoppableEcho {
    fn start(at: SocketAddr) -> StoppableEcho {
        let listener = TcpListener::bind(at).expect("bind target");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        std::thread::spawn(move || {
                            let mut buf = vec![0u8; 65536];
                            while let Ok(n) = c.read(&mut buf) {
                                if n == 0 || c.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = c.shutdown(Shutdown::Write);
                        });
                    }
                    Err(_) => std::thread::park_timeout(Duration::from_millis(5)),
                }
            }
        });
        StoppableEcho {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StoppableEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// 2000 connections, 64 at a time, 4 KiB echo each: no failure.
fn churn(tls: u8) {
    let target = echo_tcp_udp();
    let mut t = Tunnel::start(tls, target);
    let base_server = resources(t.server.pid());
    let base_client = resources(t.client.pid());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let user = t.user;
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                let mut failed = 0;
                let data = random_bytes(4096);
                while next.fetch_add(1, Ordering::Relaxed) < 2000 {
                    if !echo(user, &data, Duration::from_secs(10)) {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let failed: usize = workers.into_iter().map(|w| w.join().unwrap_or(1)).sum();
    if failed > 0 {
        for p in [&mut t.server, &mut t.client] {
            // Gather the lines printed around the failure for the message.
            p.watch_output_for(Duration::from_millis(300));
            let odd: Vec<_> = p
                .seen
                .iter()
                .filter(|l| !l.contains("INFO") || (l.contains("complete:") && !l.contains("EOF")))
                .collect();
            eprintln!("{odd:#?}");
        }
    }
    assert_eq!(failed, 0, "failed echoes out of 2000");
    for p in [&mut t.server, &mut t.client] {
        // A restart logged just after the last echo counts too: watch 100 ms more.
        p.watch_output_for(Duration::from_millis(100));
        assert_eq!(restarts(p), 0, "{:?}", p.seen);
    }
    assert_settles("server", &mut t.server, base_server);
    assert_settles("client", &mut t.client, base_client);
}

#[test]
fn kill_client_tls0() {
    kill_client("uring", 0);
}

#[test]
fn kill_client_tls1() {
    kill_client("uring", 1);
}

#[test]
fn kill_client_tls0_on_epoll() {
    kill_client("legacy", 0);
}

#[test]
fn kill_client_tls1_on_epoll() {
    kill_client("legacy", 1);
}

#[test]
fn server_restart_tls0() {
    server_restart("uring", 0);
}

#[test]
fn server_restart_tls1() {
    server_restart("uring", 1);
}

#[test]
fn server_restart_tls0_on_epoll() {
    server_restart("legacy", 0);
}

#[test]
fn server_restart_tls1_on_epoll() {
    server_restart("legacy", 1);
}

#[test]
fn client_restart_under_attack_tls0() {
    client_restart_under_attack(0);
}

#[test]
fn client_restart_under_attack_tls1() {
    client_restart_under_attack(1);
}

#[test]
fn hostile_flood_tls0() {
    hostile_flood(0);
}

#[test]
fn hostile_flood_tls1() {
    hostile_flood(1);
}

#[test]
fn target_down_tls0() {
    target_down(0);
}

#[test]
fn target_down_tls1() {
    target_down(1);
}

#[test]
fn churn_tls0() {
    churn(0);
}

#[test]
fn churn_tls1() {
    churn(1);
}
