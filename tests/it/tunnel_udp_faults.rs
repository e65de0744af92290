//! UDP faults with the real binary: datagram boundaries through every flow × tls on both
//! drivers (never merged, never split), `rate=` on the signalled side, SIGTERM with an idle
//! UDP session (no wait for the shutdown timeout), and no memory growth over rounds of
//! many short-lived UDP sessions.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::*;
use nodepass::config::Driver;

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn datagram(&mut self, max: usize) -> Vec<u8> {
        let len = 1 + (self.next() as usize) % max;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// What came back from a burst of datagrams.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    intact: usize,
    /// Datagrams that match nothing in flight: merged, split or corrupted.
    foreign: Vec<usize>,
}

/// Send `count` random datagrams of 1..=`max` bytes to the echo behind `addr` in bursts,
/// with up to `window` in flight, and check each reply is exactly a datagram in flight.
fn bursts(addr: SocketAddr, count: usize, max: usize, window: usize, seed: u64) -> Tally {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut rng = Rng(seed | 1);
    let mut in_flight: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut outstanding = 0usize;
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 65536];
    while tally.sent < count || outstanding > 0 {
        while tally.sent < count && outstanding < window {
            let d = rng.datagram(max);
            socket.send_to(&d, addr).expect("send");
            *in_flight.entry(d).or_default() += 1;
            outstanding += 1;
            tally.sent += 1;
        }
        let n = match recv_from_retry(&socket, &mut buf) {
            Ok((n, _)) => n,
            // Whatever is still in flight is lost: start the next burst.
            Err(_) => {
                outstanding = 0;
                continue;
            }
        };
        match in_flight.get_mut(&buf[..n]) {
            Some(c) if *c > 0 => {
                *c -= 1;
                tally.intact += 1;
                outstanding = outstanding.saturating_sub(1);
            }
            _ => tally.foreign.push(n),
        }
    }
    tally
}

fn boundaries(reverse: bool, tls: u8, driver: &str) {
    let target = echo_tcp_udp();
    let server_query = format!("tls={tls}");
    let opts = TunnelOpts {
        reverse,
        server_query: &server_query,
        client_query: "",
        env: vec![("NP_DRIVER", driver)],
    };
    let pair = tunnel_pair(&opts, target);
    // Let the session's pool connection settle first (not part of what is measured).
    assert_eq!(
        udp_round_trips(pair.user, 1),
        1,
        "no UDP through the tunnel"
    );
    let tally = bursts(pair.user, 1000, 1472, 32, 0x5eed ^ u64::from(tls));
    assert!(
        tally.foreign.is_empty(),
        "{} datagram(s) arrived merged or split, sizes {:?} ({tally:?})",
        tally.foreign.len(),
        &tally.foreign[..tally.foreign.len().min(20)],
    );
    assert!(
        tally.intact >= tally.sent * 9 / 10,
        "too many datagrams lost: {tally:?}"
    );
}

macro_rules! keeps_boundaries {
    ($($(#[$attr:meta])* $name:ident: $reverse:expr, $tls:expr, $driver:expr;)*) => {$(
        #[test]
        $(#[$attr])*
        fn $name() {
            boundaries($reverse, $tls, $driver);
        }
    )*};
}

keeps_boundaries! {
    flow_minus_tls1_keeps_datagram_boundaries_on_uring: true, 1, "uring";
    flow_minus_tls1_keeps_datagram_boundaries_on_epoll: true, 1, "legacy";
    flow_plus_tls1_keeps_datagram_boundaries_on_uring: false, 1, "uring";
    flow_plus_tls1_keeps_datagram_boundaries_on_epoll: false, 1, "legacy";
    flow_minus_tls0_keeps_datagram_boundaries_on_uring: true, 0, "uring";
    flow_minus_tls0_keeps_datagram_boundaries_on_epoll: true, 0, "legacy";
    flow_plus_tls0_keeps_datagram_boundaries_on_uring: false, 0, "uring";
    flow_plus_tls0_keeps_datagram_boundaries_on_epoll: false, 0, "legacy";
}

/// `rate=1` (125000 B/s, a 1 s burst) on the signalled side only (the client in flow `-`):
/// 375 kB each way through it cannot take much less than 2 s.
#[test]
fn the_signalled_side_paces_udp_by_its_rate() {
    let target = echo_tcp_udp();
    let opts = TunnelOpts {
        reverse: true,
        server_query: "tls=0",
        client_query: "rate=1",
        env: vec![],
    };
    let pair = tunnel_pair(&opts, target);
    assert_eq!(
        udp_round_trips(pair.user, 1),
        1,
        "no UDP through the tunnel"
    );
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_read_timeout(Some(STEP)).unwrap();
    let datagram = vec![0x5a; 1000];
    let mut buf = vec![0u8; 2048];
    let started = Instant::now();
    for _ in 0..375 {
        socket.send_to(&datagram, pair.user).expect("send");
        let (n, _) = recv_from_retry(&socket, &mut buf).expect("echo within STEP");
        assert_eq!(&buf[..n], &datagram[..]);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "375 kB crossed a 125 kB/s limit in {took:?}"
    );
}

/// An idle UDP session must not hold a graceful shutdown until `NP_SHUTDOWN_TIMEOUT`.
fn exits_promptly(np: &mut NodepassProcess, what: &str) {
    np.terminate();
    let started = Instant::now();
    let code = np.wait_exit(Duration::from_secs(8));
    assert!(
        code.is_some() && started.elapsed() < Duration::from_secs(3),
        "{what} took {:?} to exit (code {code:?}): {:?}",
        started.elapsed(),
        np.seen
    );
}

fn sigterm_does_not_wait_for_an_idle_udp_session_single_end(driver: Driver) {
    let driver = np_driver(driver);
    let target = echo_tcp_udp();
    let port = free_port();
    let url = format!("client://127.0.0.1:{port}/{target}?mode=1");
    let env = [("NP_DRIVER", driver), ("NP_SHUTDOWN_TIMEOUT", "20s")];
    let mut np = NodepassProcess::start(&url, &env);
    np.wait_for_line("Listening on", STEP).expect("listens");
    let user = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(udp_round_trips(user, 3), 3);
    exits_promptly(&mut np, driver);
}

on_both_drivers!(sigterm_does_not_wait_for_an_idle_udp_session_single_end);

fn sigterm_does_not_wait_for_an_idle_udp_session_in_a_tunnel(driver: Driver) {
    let driver = np_driver(driver);
    let target = echo_tcp_udp();
    let opts = TunnelOpts {
        reverse: true,
        server_query: "tls=1",
        client_query: "",
        env: vec![("NP_DRIVER", driver), ("NP_SHUTDOWN_TIMEOUT", "20s")],
    };
    let mut pair = tunnel_pair(&opts, target);
    assert_eq!(udp_round_trips(pair.user, 3), 3);
    exits_promptly(&mut pair.server, "server");
    exits_promptly(&mut pair.client, "client");
}

on_both_drivers!(sigterm_does_not_wait_for_an_idle_udp_session_in_a_tunnel);

/// The fd count once it stops changing (two readings 500 ms apart agree; the probe
/// session expires after 300 ms idle).
fn settled_fds(pid: u32) -> usize {
    let mut last = open_fds(pid);
    for _ in 0..20 {
        std::thread::park_timeout(Duration::from_millis(500));
        let now = open_fds(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// One datagram (and its echo) from each of `count` fresh client addresses.
fn many_clients(addr: SocketAddr, count: usize) -> usize {
    let mut answered = 0;
    let mut buf = [0u8; 64];
    for chunk in 0..count.div_ceil(250) {
        let sockets: Vec<UdpSocket> = (0..250.min(count - chunk * 250))
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
                s.send_to(b"hello", addr).expect("send");
                s
            })
            .collect();
        for s in &sockets {
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            if matches!(recv_from_retry(s, &mut buf), Ok((5, _))) {
                answered += 1;
            }
        }
    }
    answered
}

/// Rounds of 2000 short-lived sessions: memory after the last round stays where it was
/// after the first (each leaked ~1.6 kB, 5 → 159 MB over ten rounds of 5000).
#[test]
fn udp_sessions_that_expire_leave_no_memory_behind() {
    let target = echo_tcp_udp();
    let port = free_port();
    let url = format!("client://127.0.0.1:{port}/{target}?mode=1");
    let env = [("NP_UDP_READ_TIMEOUT", "300ms"), ("NP_WORKERS", "2")];
    let mut np = NodepassProcess::start(&url, &env);
    np.wait_for_line("Listening on", STEP).expect("listens");
    let pid = np.pid();
    let user = SocketAddr::from(([127, 0, 0, 1], port));
    // The fds of an idle process: after a probe session has come and gone.
    assert_eq!(udp_round_trips(user, 1), 1);
    let idle_fds = settled_fds(pid);
    let mut after = Vec::new();
    for _ in 0..5 {
        let answered = many_clients(user, 2000);
        assert!(answered >= 1900, "only {answered} of 2000 answered");
        assert!(
            eventually(STEP, || open_fds(pid) <= idle_fds),
            "sessions did not expire"
        );
        after.push(rss_kib(pid));
    }
    let growth = after[4].saturating_sub(after[0]);
    assert!(
        growth < 2048,
        "RSS grew {growth} kB over four rounds of 2000 sessions: {after:?} kB"
    );
}

/// When the far end of a UDP session closes its pool connection (here: its own, shorter
/// NP_UDP_READ_TIMEOUT), the near end's session ends at once, not when its own 60 s idle
/// timeout would look again: the server's CHECK_POINT shows UDPS back at 0 within seconds,
/// and so does the client's, whose session idled out.
fn a_udp_session_ends_when_its_pool_connection_closes(driver: Driver) {
    let target = echo_tcp_udp();
    let opts = TunnelOpts {
        reverse: true,
        server_query: "tls=0",
        client_query: "",
        env: vec![],
    };
    let (tunnel_port, user_port) = (free_port(), free_port());
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    let server_env = [env.as_slice(), &[("NP_UDP_READ_TIMEOUT", "60s")]].concat();
    // 3 s, not 1: the session must outlive a whole CHECK_POINT period (1 s) so that a tick
    // shows it live; with 1 s it could start and end between two ticks on a loaded machine.
    let client_env = [env.as_slice(), &[("NP_UDP_READ_TIMEOUT", "3s")]].concat();
    let mut server = NodepassProcess::start(
        &tunnel_server_url(&opts, tunnel_port, user_port, target),
        &server_env,
    );
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap();
    let mut client = NodepassProcess::start(
        &tunnel_client_url(&opts, tunnel_port, user_port, target),
        &client_env,
    );
    for p in [&mut server, &mut client] {
        p.wait_for_line("Marking tunnel handshake as complete", STEP)
            .unwrap_or_else(|| panic!("no handshake: {:?}", p.seen));
    }
    let user = SocketAddr::from(([127, 0, 0, 1], user_port));
    assert_eq!(udp_round_trips(user, 3), 3);
    server
        .wait_for_line("UDPS=1", STEP)
        .unwrap_or_else(|| panic!("no live UDP session: {:?}", server.seen));
    let from = server.take_output();
    // The client's session idles out after 3 s and closes its pool connection.
    let ended = poll(Duration::from_secs(8), || {
        server.take_output();
        server.seen[from..]
            .iter()
            .any(|l| l.contains("CHECK_POINT") && l.contains("UDPS=0"))
            .then_some(())
    });
    assert!(
        ended.is_some(),
        "the server kept the UDP session: {:?}",
        &server.seen[from..]
    );
    // And the client's own session is gone too: its target socket's pending read ended
    // when the session idled out (on epoll that read used to wait for good).
    let from = client.take_output().saturating_sub(1);
    let ended = poll(Duration::from_secs(4), || {
        client.take_output();
        client.seen[from..]
            .iter()
            .any(|l| l.contains("CHECK_POINT") && l.contains("UDPS=0"))
            .then_some(())
    });
    assert!(
        ended.is_some(),
        "the client kept its idle UDP session: {:?}",
        &client.seen[from..]
    );
}

on_both_drivers!(a_udp_session_ends_when_its_pool_connection_closes);
