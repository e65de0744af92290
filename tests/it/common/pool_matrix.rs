//! The tunnel matrix every pool type runs (flow ± × tls 0/1/2, TCP byte-exact and UDP
//! datagrams between two of our binaries), written once for types 1, 2 and 3.

use std::time::Duration;

use super::*;
use crate::tunnel_relay::Pki;

/// A tunnel of two of our binaries whose client names the test CA's host.
pub fn pool_opts<'a>(
    reverse: bool,
    server_query: &'a str,
    env: Vec<(&'a str, &'a str)>,
) -> TunnelOpts<'a> {
    TunnelOpts {
        reverse,
        server_query,
        client_query: "sni=tunnel.test",
        env,
    }
}

/// One matrix case for pool type `pool_type`: start the pair (tls=2 with a CA-signed
/// certificate), wait until the client's CHECK_POINT shows `learned`, echo `mib` MiB of TCP
/// byte-exact and `datagrams` UDP datagrams.
pub fn carry(
    pool_type: u8,
    learned: &str,
    (reverse, tls, driver): (bool, u8, &str),
    mib: usize,
    datagrams: usize,
) {
    let target = echo_tcp_udp();
    let pki = Pki::new();
    let server_query = match tls {
        2 => format!(
            "type={pool_type}&tls=2&crt={}&key={}",
            pki.path("crt.pem"),
            pki.path("key.pem")
        ),
        n => format!("type={pool_type}&tls={n}"),
    };
    let ca = pki.path("ca.pem");
    let o = pool_opts(
        reverse,
        &server_query,
        vec![("NP_DRIVER", driver), ("SSL_CERT_FILE", &ca)],
    );
    let mut pair = tunnel_pair(&o, target);
    pair.client
        .wait_for_line(learned, STEP)
        .unwrap_or_else(|| panic!("the client learns {learned}: {:?}", pair.client.seen));
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
