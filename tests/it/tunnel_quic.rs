//! Pool type 1 (QUIC) between two of our binaries: every flow (+/−) × tls (0 served as 1,
//! 1, 2) carries 16 MiB of TCP byte-exact and 500 UDP datagrams on io_uring (1 MiB and 50
//! on epoll); a killed server or client started again heals the tunnel; hostile datagrams
//! on the UDP tunnel port (garbage, a burst of random bytes, QUIC with a wrong ALPN) get
//! their logged reason, leak nothing, and the tunnel keeps working.

use std::time::Duration;

use std::net::{SocketAddr, UdpSocket};

use crate::common::quic;
use crate::common::*;
use nodepass::config::Driver;

use crate::common::pool_matrix::{carry as carry_type, pool_opts as opts};

fn carry(reverse: bool, tls: u8, driver: &str, mib: usize, datagrams: usize) {
    carry_type(1, "TYPE=1", (reverse, tls, driver), mib, datagrams);
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

fn kill(p: &mut NodepassProcess) {
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(p.pid().to_string())
        .status();
    assert!(p.wait_exit(STEP).is_some(), "not killed");
}

/// SIGKILL the server, start it again: the client's run ends (its control stream goes
/// silent) and the tunnel heals; then the same with the client.
fn a_killed_end_started_again_heals_the_tunnel(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(true, "type=1&tls=1", vec![("NP_DRIVER", np_driver(driver))]);
    let mut pair = tunnel_pair(&o, target);
    let data = payload(256 * 1024, 3);
    assert!(
        echo_through_ok(pair.user, &data),
        "no echo before the kills"
    );
    let mut env: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    kill(&mut pair.server);
    pair.server = NodepassProcess::start(&pair.server_url, &env);
    pair.server
        .wait_for_line(
            "Marking tunnel handshake as complete",
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| {
            panic!(
                "no handshake after the server restart: {:?}",
                pair.server.seen
            )
        });
    assert!(
        eventually(Duration::from_secs(15), || echo_through_ok(
            pair.user, &data
        )),
        "no echo after the server restart; server: {:?}",
        pair.server.seen
    );
    kill(&mut pair.client);
    pair.client = NodepassProcess::start(&pair.client_url, &env);
    pair.client
        .wait_for_line(
            "Marking tunnel handshake as complete",
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| {
            panic!(
                "no handshake after the client restart: {:?}",
                pair.client.seen
            )
        });
    assert!(
        eventually(Duration::from_secs(15), || echo_through_ok(
            pair.user, &data
        )),
        "no echo after the client restart; server: {:?}",
        pair.server.seen
    );
}

on_both_drivers!(a_killed_end_started_again_heals_the_tunnel);

/// A QUIC client of ours (quinn-proto, blocking) from `bind` to the tunnel port with
/// `alpn`: why its connection ended, if it did within `limit`.
fn quic_attempt(tunnel: SocketAddr, bind: &str, alpn: &[u8], limit: Duration) -> Option<String> {
    let mut p = quic::Peer::client(bind);
    let ch = p.connect(tunnel, quic::client_config(alpn), "127.0.0.1");
    p.pump_until(limit, |p| p.lost.contains_key(&ch));
    p.lost.get(&ch).cloned()
}

/// Garbage and random datagrams on the UDP tunnel port, a burst of Initials from new
/// ports, a wrong ALPN and a connection from another IP: each logged with its reason,
/// fds and RSS bounded, the tunnel still echoing.
fn hostile_datagrams_get_their_reason_and_the_tunnel_keeps_working(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(true, "type=1&tls=1", vec![("NP_DRIVER", np_driver(driver))]);
    let mut pair = tunnel_pair(&o, target);
    let tunnel = SocketAddr::from(([127, 0, 0, 1], pair.tunnel_port));
    let data = payload(64 * 1024, 5);
    assert!(echo_through_ok(pair.user, &data), "no echo before");
    let pid = pair.server.pid();
    let (fds0, rss0) = (open_fds(pid), rss_kib(pid));
    // Garbage: short datagrams, and datagrams without QUIC's fixed bit.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..2000u32 {
        let mut d = vec![(i as u8) & 0x3f; 1 + (i as usize % 1400)];
        d[0] &= 0xbf;
        let _ = s.send_to(&d, tunnel);
    }
    pair.server
        .wait_for_line("datagram(s) dropped", STEP)
        .unwrap_or_else(|| panic!("no drop line: {:?}", pair.server.seen));
    // Random bytes (some with the fixed bit, so quinn-proto sees them) from 50 ports.
    let mut x = 0x1234_5678u32;
    for _ in 0..50 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..40 {
            let d: Vec<u8> = (0..1200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = s.send_to(&d, tunnel);
        }
    }
    // A wrong ALPN: the handshake fails, with its reason on the server.
    let why = quic_attempt(tunnel, "127.0.0.1:0", b"h3", STEP).expect("refused");
    assert!(
        why.contains("120") || why.to_lowercase().contains("protocol"),
        "{why}"
    );
    pair.server
        .wait_for_line("QUIC handshake from", STEP)
        .unwrap_or_else(|| panic!("no handshake failure line: {:?}", pair.server.seen));
    // Another IP than the handshake's (127.0.0.2 is loopback too): Go's close.
    if UdpSocket::bind("127.0.0.2:0").is_ok() {
        let why = quic_attempt(tunnel, "127.0.0.2:0", b"np-quic", STEP).expect("closed");
        assert!(why.contains("unauthorized IP"), "{why}");
        pair.server
            .wait_for_line("closed: unauthorized IP", STEP)
            .unwrap_or_else(|| panic!("no unauthorized line: {:?}", pair.server.seen));
    }
    // Initials from 100 new ports, never finished (the server holds at most 32 per worker,
    // 8 from other addresses): the tunnel carries on.
    let burst: Vec<_> = (0..100)
        .map(|_| {
            let mut p = quic::Peer::client("127.0.0.1:0");
            p.connect(tunnel, quic::client_config(b"np-quic"), "127.0.0.1");
            p
        })
        .collect();
    drop(burst);
    assert!(
        echo_through_ok(pair.user, &data),
        "no echo after the attacks"
    );
    let (fds1, rss1) = (open_fds(pid), rss_kib(pid));
    assert!(fds1 <= fds0 + 16, "server fds {fds0} -> {fds1}");
    assert!(
        rss1 <= rss0 + 32 * 1024,
        "server RSS {rss0} KiB -> {rss1} KiB"
    );
    let crashed = pair.server.wait_exit(Duration::ZERO);
    assert!(crashed.is_none(), "server exited: {:?}", pair.server.seen);
}

on_both_drivers!(hostile_datagrams_get_their_reason_and_the_tunnel_keeps_working);

/// The latest CHECK_POINT line `p` printed.
fn last_checkpoint(p: &mut NodepassProcess) -> String {
    p.take_output();
    p.seen
        .iter()
        .rev()
        .find(|l| l.contains("CHECK_POINT"))
        .cloned()
        .unwrap_or_default()
}

/// A UDP session whose client end idles out (`NP_UDP_READ_TIMEOUT=2s` on the client only)
/// ends there: the watchdog shuts the entry's StreamEnd, which ends the read pending on the
/// QUIC stream (the server, idling for 90 s, sends no FIN that could end it instead).
fn an_idle_udp_session_ends_by_shutting_its_stream(driver: Driver) {
    let target = echo_tcp_udp();
    let o = opts(true, "type=1&tls=1", Vec::new());
    let (tunnel_port, user_port) = (free_port(), free_port());
    let mut env: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    let mut server =
        NodepassProcess::start(&tunnel_server_url(&o, tunnel_port, user_port, target), &env);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .expect("server up");
    env.push(("NP_UDP_READ_TIMEOUT", "2s"));
    let mut client =
        NodepassProcess::start(&tunnel_client_url(&o, tunnel_port, user_port, target), &env);
    client
        .wait_for_line("Marking tunnel handshake as complete", STEP)
        .expect("handshake");
    let user = SocketAddr::from(([127, 0, 0, 1], user_port));
    assert_eq!(udp_round_trips(user, 5), 5, "UDP datagrams lost");
    assert!(
        eventually(Duration::from_secs(3), || last_checkpoint(&mut client)
            .contains("UDPS=1")),
        "no live UDP session on the client: {:?}",
        client.seen
    );
    assert!(
        eventually(Duration::from_secs(6), || last_checkpoint(&mut client)
            .contains("UDPS=0")),
        "the idle UDP session did not end: {}",
        last_checkpoint(&mut client)
    );
}

on_both_drivers!(an_idle_udp_session_ends_by_shutting_its_stream);
