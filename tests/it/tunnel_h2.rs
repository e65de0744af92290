//! Pool type 3 (HTTP/2) between two of our binaries: every flow (+/−) × tls (0 served as
//! 1, 1, 2) carries 16 MiB of TCP byte-exact and 500 UDP datagrams on io_uring (1 MiB and
//! 50 on epoll); a server, then a client, killed and started again heal the tunnel;
//! hostile input on the tunnel port (garbage for TLS, TLS without ALPN h2, a bad preface,
//! a wrong path, bad frames) gets its own logged reason, leaks nothing, and the real
//! client's tunnel keeps working.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nodepass::config::Driver;

use crate::common::h2::*;
use crate::common::*;

use crate::common::pool_matrix::{carry as carry_type, pool_opts as opts};

fn carry(reverse: bool, tls: u8, driver: &str, mib: usize, datagrams: usize) {
    carry_type(
        3,
        &format!("TLS={}|TYPE=3", tls.max(1)),
        (reverse, tls, driver),
        mib,
        datagrams,
    );
}

macro_rules! carries {
    ($($name:ident: $reverse:expr, $tls:expr, $driver:expr, $mib:expr, $udp:expr;)*) => {$(
        #[test]
        fn $name() {
            carry($reverse, $tls, $driver, $mib, $udp);
        }
    )*};
}

carries! {
    flow_minus_tls0_carries_tcp_and_udp_on_uring: true, 0, "uring", 16, 500;
    flow_plus_tls0_carries_tcp_and_udp_on_uring: false, 0, "uring", 16, 500;
    flow_minus_tls1_carries_tcp_and_udp_on_uring: true, 1, "uring", 16, 500;
    flow_plus_tls1_carries_tcp_and_udp_on_uring: false, 1, "uring", 16, 500;
    flow_minus_tls2_carries_tcp_and_udp_on_uring: true, 2, "uring", 16, 500;
    flow_plus_tls2_carries_tcp_and_udp_on_uring: false, 2, "uring", 16, 500;
    flow_minus_tls0_carries_tcp_and_udp_on_epoll: true, 0, "legacy", 1, 50;
    flow_plus_tls1_carries_tcp_and_udp_on_epoll: false, 1, "legacy", 1, 50;
    flow_minus_tls2_carries_tcp_and_udp_on_epoll: true, 2, "legacy", 1, 50;
}

/// Kill the server and start it again (the client finds its tunnel gone and handshakes
/// anew), then the same with the client: each time the tunnel heals.
fn a_killed_server_then_client_started_again_heal_the_tunnel(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(true, "type=3&tls=1", vec![("NP_DRIVER", np_driver(driver))]);
    let mut pair = tunnel_pair(&o, target);
    let data = payload(256 * 1024, 3);
    assert!(
        echo_through_ok(pair.user, &data),
        "no echo before the kills"
    );
    let mut env: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    for server in [true, false] {
        let p = if server {
            &mut pair.server
        } else {
            &mut pair.client
        };
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(p.pid().to_string())
            .status();
        assert!(p.wait_exit(STEP).is_some(), "not killed");
        if server {
            pair.server = NodepassProcess::start(&pair.server_url, &env);
        } else {
            pair.client = NodepassProcess::start(&pair.client_url, &env);
        }
        pair.client
            .wait_for_line(
                "Marking tunnel handshake as complete",
                Duration::from_secs(30),
            )
            .unwrap_or_else(|| panic!("no new handshake: {:?}", pair.client.seen));
        assert!(
            eventually(Duration::from_secs(20), || echo_through_ok(
                pair.user, &data
            )),
            "no echo after the restart; server: {:?}; client: {:?}",
            pair.server.seen,
            pair.client.seen
        );
    }
}

on_both_drivers!(a_killed_server_then_client_started_again_heal_the_tunnel);

std::thread_local! {
    /// Local ports of this test's hostile connections.
    static HOSTILE: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn hostile(s: &TcpStream) {
    HOSTILE.with(|h| h.borrow_mut().push(s.local_addr().unwrap().port()));
}

/// Connect, send `bytes`, read whatever comes back within `wait`.
fn poke(tunnel: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&tunnel, STEP).expect("connect");
    hostile(&s);
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A TLS connection with ALPN `alpn` that sends `bytes`; every frame the server sends
/// back until it closes (or a read times out).
fn tls_then(tunnel: SocketAddr, alpn: &[&[u8]], bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut tls = tls_connect(tunnel, alpn).expect("TLS handshake");
    hostile(&tls.sock);
    tls.write_all(bytes).unwrap();
    tls.flush().unwrap();
    let mut frames = Vec::new();
    while let Ok(f) = read_frame(&mut tls) {
        frames.push(f);
    }
    frames
}

fn hostile_input_gets_its_reason_and_the_tunnel_keeps_working(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(
        true,
        "type=3&tls=1",
        vec![
            ("NP_DRIVER", np_driver(driver)),
            ("NP_HANDSHAKE_TIMEOUT", "2s"),
        ],
    );
    let mut pair = tunnel_pair(&o, target);
    let tunnel = SocketAddr::from(([127, 0, 0, 1], pair.tunnel_port));
    let data = payload(64 * 1024, 5);
    assert!(echo_through_ok(pair.user, &data), "no echo before");
    let pid = pair.server.pid();
    let before = open_fds(pid);
    // An HTTP/2 connection that never opens a stream is closed after 10 s (Go's
    // IdleTimeout); watched at the end.
    let mut lazy = tls_connect(tunnel, &[b"h2"]).expect("TLS");
    hostile(&lazy.sock);
    go_client_start(&mut lazy).unwrap();
    let lazy_since = std::time::Instant::now();
    // A silent peer holds no one up (Go: every later pool connection waits on it).
    let silent = TcpStream::connect_timeout(&tunnel, STEP).expect("connect");
    hostile(&silent);
    // Garbage where the ClientHello belongs.
    let garbage = poke(tunnel, b"\x00\x01\x02garbage\r\n\r\n", STEP);
    assert!(garbage.len() < 64, "{garbage:?}");
    pair.server
        .wait_for_line("TLS handshake failed", STEP)
        .unwrap_or_else(|| panic!("no TLS failure line: {:?}", pair.server.seen));
    // TLS without ALPN h2.
    let frames = tls_then(tunnel, &[], PREFACE);
    assert!(frames.is_empty(), "{frames:?}");
    pair.server
        .wait_for_line("TLS without ALPN h2", STEP)
        .expect("ALPN reason");
    // A bad preface (HTTP/1.1 over the h2 connection).
    tls_then(tunnel, &[b"h2"], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    pair.server
        .wait_for_line("HTTP/2 handshake failed", STEP)
        .expect("preface reason");
    // A wrong path: 404 `not found`, and the connection lives on.
    let mut wrong = Vec::new();
    go_client_start(&mut wrong).unwrap();
    let block = request_block("POST", "/x", "none");
    wrong.extend(frame(HEADERS, END_HEADERS, 1, &block));
    wrong.extend(frame(DATA, 0, 1, &[0]));
    let mut tls = tls_connect(tunnel, &[b"h2"]).expect("TLS");
    hostile(&tls.sock);
    tls.write_all(&wrong).unwrap();
    tls.flush().unwrap();
    let mut status = None;
    let mut body = Vec::new();
    while let Ok((ty, flags, stream, payload)) = read_frame(&mut tls) {
        match ty {
            HEADERS if stream == 1 => status = status_of(&payload),
            DATA if stream == 1 => {
                body.extend(payload);
                if flags & END_STREAM != 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    assert_eq!(status, Some(404));
    assert_eq!(body, b"not found\n");
    pair.server
        .wait_for_line("POST /x is not POST /stream (404)", STEP)
        .expect("404 reason");
    drop(tls);
    // Bad frames: DATA on stream 0 is a connection error (GOAWAY PROTOCOL_ERROR).
    let mut bad = Vec::new();
    go_client_start(&mut bad).unwrap();
    bad.extend(frame(DATA, 0, 0, b"oops"));
    let frames = tls_then(tunnel, &[b"h2"], &bad);
    let goaway = frames.iter().find(|f| f.0 == GOAWAY).expect("a GOAWAY");
    assert_eq!(goaway.3[4..8], [0, 0, 0, 1], "PROTOCOL_ERROR");
    let line = pair
        .server
        .wait_for_line("HTTP/2 pool connection from", STEP)
        .expect("bad frame reason");
    assert!(line.contains("failed: "), "{line}");
    eprintln!("{line}");
    // A frame longer than the 1 MiB MAX_FRAME_SIZE: FRAME_SIZE_ERROR.
    let mut big = Vec::new();
    go_client_start(&mut big).unwrap();
    big.extend_from_slice(&[0x20, 0, 0, 0, 0, 0, 0, 0, 1]);
    let frames = tls_then(tunnel, &[b"h2"], &big);
    let goaway = frames.iter().find(|f| f.0 == GOAWAY).expect("a GOAWAY");
    assert_eq!(goaway.3[4..8], [0, 0, 0, 6], "FRAME_SIZE_ERROR");
    // The silent one timed out on its own.
    pair.server
        .wait_for_line("TLS handshake timed out", STEP)
        .expect("silent peer reason");
    drop(silent);
    assert!(
        echo_through_ok(pair.user, &data),
        "no echo after the attacks"
    );
    lazy.sock
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    while read_frame(&mut lazy).is_ok() {}
    let idle = lazy_since.elapsed();
    assert!(
        idle > Duration::from_secs(9) && idle < Duration::from_secs(14),
        "a connection without streams closed after {idle:?}"
    );
    drop(lazy);
    let ports = HOSTILE.with(|h| h.borrow().clone());
    let settled = eventually(Duration::from_secs(8), || {
        !held_peer_ports(pid).iter().any(|p| ports.contains(p))
    });
    assert!(
        settled,
        "server fds {before} -> {}, still holds a hostile peer",
        open_fds(pid)
    );
    let crashed = pair.server.wait_exit(Duration::ZERO);
    assert!(crashed.is_none(), "server exited: {:?}", pair.server.seen);
}

on_both_drivers!(hostile_input_gets_its_reason_and_the_tunnel_keeps_working);

/// Go's server never frees a stream, so one Go connection runs dry after about `max`
/// entries (POOL_TYPES.md §3: 10 sessions at max=16). Ours frees each finished entry's
/// stream: with `max=4` and one worker, 40 sessions one after another all pass.
fn finished_entries_free_their_streams(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(
        true,
        "type=3&tls=1&max=4&log=debug",
        vec![("NP_DRIVER", np_driver(driver)), ("NP_WORKERS", "1")],
    );
    let mut pair = tunnel_pair(&o, target);
    let data = payload(4 * 1024, 9);
    for n in 0..40 {
        assert!(
            eventually(Duration::from_secs(5), || echo_through_ok(pair.user, &data)),
            "session {n} failed; server: {:?}",
            pair.server.seen
        );
    }
    // All of it over the client's one connection.
    pair.server.watch_output_for(Duration::from_millis(200));
    let conns = pair
        .server
        .seen
        .iter()
        .filter(|l| l.contains("HTTP/2 pool connection from") && l.ends_with(" up"))
        .count();
    assert_eq!(conns, 1, "{:?}", pair.server.seen);
}

on_both_drivers!(finished_entries_free_their_streams);

/// A target that stops reading: what a user pushes waits in the HTTP/2 windows and the
/// socket buffers, not in memory (h2's `send_data` alone would queue all of it).
fn a_stalled_target_back_pressures_the_user(driver: Driver) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = stalled.local_addr().unwrap();
    let held = std::thread::spawn(move || stalled.accept().map(|(s, _)| s));
    let o = opts(true, "type=3&tls=1", vec![("NP_DRIVER", np_driver(driver))]);
    let pair = tunnel_pair(&o, target);
    let rss = |p: &NodepassProcess| rss_kib(p.pid());
    let (server_before, client_before) = (rss(&pair.server), rss(&pair.client));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut user = TcpStream::connect_timeout(&pair.user, STEP).expect("user");
    user.set_write_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let counter = Arc::clone(&sent);
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..128 {
            if user.write_all(&chunk).is_err() {
                break;
            }
            counter.fetch_add(chunk.len(), Ordering::Relaxed);
        }
        user
    });
    // Whatever got through in 4 s is all that will: the target reads nothing.
    eventually(Duration::from_secs(4), || false);
    let accepted = sent.load(Ordering::Relaxed);
    assert!(
        accepted < 32 << 20,
        "{} MiB accepted while the target reads nothing",
        accepted >> 20
    );
    for (name, p, before) in [
        ("server", &pair.server, server_before),
        ("client", &pair.client, client_before),
    ] {
        let grown = rss(p).saturating_sub(before);
        eprintln!("{name}: +{grown} KiB, {} MiB accepted", accepted >> 20);
        assert!(grown < 16 * 1024, "{name} grew by {grown} KiB");
    }
    drop(held.join());
    let _ = writer.join();
}

on_both_drivers!(a_stalled_target_back_pressures_the_user);
