//! Pool type 2 (WebSocket) between two of our binaries: every flow (+/−) × tls (0, 1, 2)
//! carries 16 MiB of TCP byte-exact and 500 UDP datagrams on io_uring (1 MiB and 50 on
//! epoll); a client killed and started again heals the tunnel; hostile input on the
//! tunnel port (bad upgrades, a text frame, a broken length, a silent upgrade) gets its
//! own logged reason, leaks nothing, and the real client's tunnel keeps working.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::ws::{go_upgrade_request, read_head, WS_ACCEPT, WS_KEY};
use crate::common::*;

use crate::common::pool_matrix::{carry as carry_type, pool_opts as opts};

fn carry(reverse: bool, tls: u8, driver: &str, mib: usize, datagrams: usize) {
    carry_type(2, "TYPE=2", (reverse, tls, driver), mib, datagrams);
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

/// The remote ports of the TCP sockets `pid` holds open (by descriptor).
fn held_peer_ports(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && inodes.contains(f[9]))
        .filter_map(|f| u16::from_str_radix(f[2].rsplit(':').next()?, 16).ok())
        .collect()
}

std::thread_local! {
    /// Local ports of this test's hostile connections.
    static HOSTILE: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn hostile(s: &TcpStream) {
    HOSTILE.with(|h| h.borrow_mut().push(s.local_addr().unwrap().port()));
}

/// SIGKILL the client; started again, it heals the tunnel and bytes flow again.
fn a_killed_client_started_again_heals_the_tunnel(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(true, "type=2&tls=1", vec![("NP_DRIVER", np_driver(driver))]);
    let mut pair = tunnel_pair(&o, target);
    let data = payload(256 * 1024, 3);
    assert!(echo_through_ok(pair.user, &data), "no echo before the kill");
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pair.client.pid().to_string())
        .status();
    assert!(pair.client.wait_exit(STEP).is_some(), "client not killed");
    let mut env: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    pair.client = NodepassProcess::start(&pair.client_url, &env);
    pair.client
        .wait_for_line(
            "Marking tunnel handshake as complete",
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| panic!("no new handshake: {:?}", pair.server.seen));
    assert!(
        eventually(Duration::from_secs(15), || echo_through_ok(
            pair.user, &data
        )),
        "no echo after the restart; server: {:?}",
        pair.server.seen
    );
}

on_both_drivers!(a_killed_client_started_again_heals_the_tunnel);

/// Connect to the tunnel port, send `bytes`, and read whatever comes back within `wait`.
fn poke(tunnel: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&tunnel, STEP).expect("connect");
    hostile(&s);
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A valid upgrade followed by `frame`: the connection is closed by the server.
fn upgrade_then(tunnel: SocketAddr, frame: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&tunnel, STEP).expect("connect");
    hostile(&s);
    s.set_read_timeout(Some(STEP)).unwrap();
    s.write_all(&go_upgrade_request("127.0.0.1", WS_KEY))
        .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains(WS_ACCEPT), "{head}");
    s.write_all(frame).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn hostile_input_gets_its_reason_and_the_tunnel_keeps_working(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(
        true,
        "type=2&tls=0",
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
    let bad = |headers: &str| format!("GET /x HTTP/1.1\r\nHost: a\r\n{headers}\r\n").into_bytes();
    let good = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    let key = format!("Sec-WebSocket-Key: {WS_KEY}\r\n");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            bad(&format!("{}{key}", good.replace("13", "8"))),
            "WebSocket version \"8\", not 13",
        ),
        (bad(good), "`Sec-WebSocket-Key` is not 16 bytes of base64"),
        (
            format!("POST / HTTP/1.1\r\nHost: a\r\n{good}{key}\r\n").into_bytes(),
            "upgrade with method \"POST\"",
        ),
        (
            bad(&format!(
                "{}{key}",
                good.replace("Connection: Upgrade", "Connection: close")
            )),
            "`Connection` does not say upgrade",
        ),
        (
            b"\x16\x03\x01garbage\r\n\r\n".to_vec(),
            "bad WebSocket upgrade: not HTTP",
        ),
    ];
    for (bytes, reason) in &cases {
        let answer = String::from_utf8_lossy(&poke(tunnel, bytes, STEP)).into_owned();
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        pair.server
            .wait_for_line(reason, STEP)
            .unwrap_or_else(|| panic!("no line with {reason:?}: {:?}", pair.server.seen));
    }
    // A handshake retry (a wrong key) on a pool connection gets the handshake's answer.
    let retry = poke(
        tunnel,
        &nodepass::proto::handshake::encode_request("none", "wrong", None),
        STEP,
    );
    let retry = String::from_utf8_lossy(&retry).into_owned();
    assert!(
        retry.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{retry}"
    );
    pair.server
        .wait_for_line("refused: 401 Unauthorized", STEP)
        .unwrap_or_else(|| panic!("no 401 line: {:?}", pair.server.seen));
    // After a good upgrade: a text frame, a length with its top bit set, a wrong first
    // message (masked, as a client's must be).
    upgrade_then(tunnel, &[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
    pair.server
        .wait_for_line("a text message on a binary pool connection", STEP)
        .expect("text frame reason");
    upgrade_then(tunnel, &[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    pair.server
        .wait_for_line("bad frame header: length has its top bit set", STEP)
        .expect("length reason");
    upgrade_then(tunnel, &[0x82, 0x84, 0, 0, 0, 0, b'X', b'X', b'X', b'X']);
    pair.server
        .wait_for_line("not a tunnel client (sent \"XXXX\")", STEP)
        .expect("wrong magic reason");
    // Slowloris: half a request head, never finished.
    let slow = poke(
        tunnel,
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n",
        Duration::from_secs(6),
    );
    assert!(slow.is_empty(), "{}", String::from_utf8_lossy(&slow));
    pair.server
        .wait_for_line("no WebSocket upgrade within", STEP)
        .expect("slowloris reason");
    // An upgrade that never sends its first message.
    let silent = upgrade_then(tunnel, &[]);
    assert!(silent.len() <= 4, "{silent:?}");
    pair.server
        .wait_for_line("no proof of the key within", STEP)
        .expect("silent upgrade reason");
    assert!(
        echo_through_ok(pair.user, &data),
        "no echo after the attacks"
    );
    // No descriptor of a hostile connection is left (the pool itself may have grown).
    let ports = HOSTILE.with(|h| h.borrow().clone());
    assert_eq!(ports.len(), 11);
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

use nodepass::config::Driver;

/// With the pool at `max`, one more upgrade is answered as Go's server does: `503` with
/// `pool full`, and nothing is taken from the pool (the tunnel keeps carrying bytes).
fn a_full_pool_answers_an_upgrade_with_503(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(
        true,
        "type=2&tls=0&max=4",
        vec![("NP_DRIVER", np_driver(driver))],
    );
    let mut pair = tunnel_pair(&o, target);
    pair.server
        .wait_for_line("POOL=4", STEP)
        .unwrap_or_else(|| panic!("pool never full: {:?}", pair.server.seen));
    let tunnel = SocketAddr::from(([127, 0, 0, 1], pair.tunnel_port));
    let answer = poke(
        tunnel,
        &go_upgrade_request("127.0.0.1", WS_KEY),
        Duration::from_secs(2),
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(text.contains("pool full"), "{text}");
    let data = payload(64 * 1024, 7);
    assert!(echo_through_ok(pair.user, &data), "no echo after the 503");
}

on_both_drivers!(a_full_pool_answers_an_upgrade_with_503);
