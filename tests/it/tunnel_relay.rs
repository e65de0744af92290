//! Dual-end tunnel relays with the real binary: every flow (+/−) × tls (0, 1, 2) carries
//! 16 MiB of TCP byte-exact and 500 UDP datagrams, on io_uring and on epoll; and 200
//! concurrent TCP sessions go through one tunnel.

use std::io::{Read, Write};

use crate::common::*;
use nodepass::config::Driver;

/// A CA and a leaf for `tunnel.test` signed by it, as PEM files in a fresh directory.
pub(crate) struct Pki {
    dir: TempDir,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = TempDir::new("pki");
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["tunnel.test".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.path("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path("crt.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path("key.pem"), leaf_key.serialize_pem()).unwrap();
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.dir.path(name)
    }
}

fn carry(reverse: bool, tls: u8, driver: &str) {
    let target = echo_tcp_udp();
    let pki = Pki::new();
    let server_query = match tls {
        2 => format!(
            "tls=2&crt={}&key={}",
            pki.path("crt.pem"),
            pki.path("key.pem")
        ),
        n => format!("tls={n}"),
    };
    let ca = pki.path("ca.pem");
    let opts = TunnelOpts {
        reverse,
        server_query: &server_query,
        client_query: "sni=tunnel.test",
        env: vec![("NP_DRIVER", driver), ("SSL_CERT_FILE", &ca)],
    };
    let pair = tunnel_pair(&opts, target);
    let data = payload(16 * 1024 * 1024, 7);
    let back = echo_through(pair.user, &data);
    assert!(
        back == data,
        "TCP bytes differ ({} of {} back)",
        back.len(),
        data.len()
    );
    let ok = udp_round_trips(pair.user, 500);
    assert_eq!(ok, 500, "UDP datagrams lost");
}

macro_rules! carries {
    ($($name:ident: $reverse:expr, $tls:expr, $driver:expr;)*) => {$(
        #[test]
        fn $name() {
            carry($reverse, $tls, $driver);
        }
    )*};
}

carries! {
    flow_minus_tls0_carries_tcp_and_udp_on_uring: true, 0, "uring";
    flow_minus_tls0_carries_tcp_and_udp_on_epoll: true, 0, "legacy";
    flow_plus_tls0_carries_tcp_and_udp_on_uring: false, 0, "uring";
    flow_plus_tls0_carries_tcp_and_udp_on_epoll: false, 0, "legacy";
    flow_minus_tls1_carries_tcp_and_udp_on_uring: true, 1, "uring";
    flow_minus_tls1_carries_tcp_and_udp_on_epoll: true, 1, "legacy";
    flow_plus_tls1_carries_tcp_and_udp_on_uring: false, 1, "uring";
    flow_plus_tls1_carries_tcp_and_udp_on_epoll: false, 1, "legacy";
    flow_minus_tls2_carries_tcp_and_udp_on_uring: true, 2, "uring";
    flow_minus_tls2_carries_tcp_and_udp_on_epoll: true, 2, "legacy";
    flow_plus_tls2_carries_tcp_and_udp_on_uring: false, 2, "uring";
    flow_plus_tls2_carries_tcp_and_udp_on_epoll: false, 2, "legacy";
}

fn two_hundred_concurrent_tcp_sessions_pass_through_one_tunnel(driver: Driver) {
    let target = echo_tcp_udp();
    let opts = TunnelOpts {
        reverse: true,
        server_query: "tls=0",
        client_query: "",
        env: vec![("NP_DRIVER", np_driver(driver))],
    };
    let mut pair = tunnel_pair(&opts, target);
    let user = pair.user;
    let threads: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let data = payload(32 * 1024, i as u8);
                echo_through(user, &data) == data
            })
        })
        .collect();
    let ok = threads
        .into_iter()
        .map(|t| t.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    if ok != 200 {
        for p in [&mut pair.server, &mut pair.client] {
            // Gather the lines printed around the failure for the message.
            p.watch_output_for(std::time::Duration::from_millis(300));
            let warns: Vec<_> = p
                .seen
                .iter()
                .filter(|l| !l.contains("CHECK_POINT"))
                .collect();
            eprintln!("{warns:#?}");
        }
    }
    assert_eq!(ok, 200);
}

on_both_drivers!(two_hundred_concurrent_tcp_sessions_pass_through_one_tunnel);

/// tls=1 between our peers: the pool connections dialled after the first handshakes
/// resume the TLS session with the server's ticket (no certificate, no signature), carry
/// bytes intact, and pass the `auth1` check that every pool connection shows the
/// certificate the server proved (a mismatch would end the run with a log line).
fn tls1_pool_connections_between_our_peers_resume_their_sessions(driver: Driver) {
    let target = echo_tcp_udp();
    let opts = TunnelOpts {
        reverse: true,
        server_query: "tls=1",
        client_query: "log=debug",
        env: vec![("NP_DRIVER", np_driver(driver))],
    };
    let mut pair = tunnel_pair(&opts, target);
    // Each session uses up a pool connection; the client dials a new one for each.
    for i in 0..24u8 {
        let data = payload(4096, i);
        assert!(
            echo_through(pair.user, &data) == data,
            "session {i} corrupted"
        );
    }
    let resumed = pair
        .client
        .wait_for_line("TLS session resumed", STEP)
        .is_some();
    pair.client.take_output();
    assert!(
        resumed,
        "no pool connection resumed: {:#?}",
        pair.client.seen
    );
    let refused: Vec<_> = (pair.client.seen.iter())
        .filter(|l| l.contains("the server proved") || l.contains("Client restart"))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}

on_both_drivers!(tls1_pool_connections_between_our_peers_resume_their_sessions);

/// A user that resets its connection (SO_LINGER 0) instead of closing must end its session
/// on both ends, over plain and TLS pool connections alike (found by perf: with tls=1 the
/// other direction used to wait forever on the pool connection).
fn a_user_reset_ends_the_session_on_both_ends(driver: Driver) {
    let target = echo_tcp_udp();
    for tls in ["tls=0", "tls=1"] {
        for reverse in [true, false] {
            let opts = TunnelOpts {
                reverse,
                server_query: tls,
                client_query: "",
                env: vec![("NP_DRIVER", np_driver(driver))],
            };
            let mut pair = tunnel_pair(&opts, target);
            let mut s = connect(pair.user);
            s.write_all(&payload(64, 1)).unwrap();
            let mut echo = [0u8; 64];
            s.read_exact(&mut echo).unwrap();
            for p in [&mut pair.server, &mut pair.client] {
                assert!(
                    p.wait_for_line("TCPS=1|", STEP).is_some(),
                    "{tls}: session live"
                );
            }
            s.write_all(&payload(64, 2)).unwrap();
            socket2::SockRef::from(&s)
                .set_linger(Some(std::time::Duration::ZERO))
                .unwrap();
            drop(s);
            for (name, p) in [("server", &mut pair.server), ("client", &mut pair.client)] {
                let mark = p.take_output();
                let ended = eventually(STEP, || {
                    p.take_output();
                    p.seen[mark..]
                        .iter()
                        .rev()
                        .find(|l| l.contains("CHECK_POINT"))
                        .is_some_and(|l| l.contains("|TCPS=0|"))
                });
                assert!(
                    ended,
                    "{tls} reverse={reverse}: {name} still counts the reset session"
                );
            }
        }
    }
}

on_both_drivers!(a_user_reset_ends_the_session_on_both_ends);

/// The sockets the tunnel server accepts (a user on its target port, the client's pool
/// connections on the tunnel port) carry TCP keepalive, as dialled ones do: the listeners
/// set it once and accepted sockets inherit it (seen by `ss -o` as a keepalive timer).
fn accepted_user_and_pool_sockets_have_keepalive(driver: Driver) {
    if std::process::Command::new("ss").arg("-V").output().is_err() {
        eprintln!("skipped: no `ss` (iproute2) on this machine");
        return;
    }
    let target = echo_tcp_udp();
    let opts = TunnelOpts {
        reverse: true,
        server_query: "tls=0",
        client_query: "",
        env: vec![("NP_DRIVER", np_driver(driver))],
    };
    let pair = tunnel_pair(&opts, target);
    let mut user = connect(pair.user);
    user.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    user.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    // Established sockets whose local port is `port`, one line each, with their timers.
    let accepted_on = |port: u16| -> Vec<String> {
        let out = std::process::Command::new("ss")
            .args([
                "-tnoH",
                "state",
                "established",
                "sport",
                "=",
                &format!(":{port}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let user_side = accepted_on(pair.user.port());
    assert_eq!(user_side.len(), 1, "{user_side:?}");
    assert!(user_side[0].contains("timer:(keepalive"), "{user_side:?}");
    // A socket with bytes in flight (Send-Q > 0) shows its retransmit timer instead.
    let pool_side: Vec<String> = accepted_on(pair.tunnel_port)
        .into_iter()
        .filter(|l| l.split_whitespace().nth(1) == Some("0"))
        .collect();
    assert!(!pool_side.is_empty());
    assert!(
        pool_side.iter().all(|l| l.contains("timer:(keepalive")),
        "{pool_side:?}"
    );
}

on_both_drivers!(accepted_user_and_pool_sockets_have_keepalive);
