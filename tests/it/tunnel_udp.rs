//! UDP through a real server/client pair with two workers and a small pool: many flows at
//! once, spread by the kernel over both workers, all relayed whichever worker holds the
//! idle pool connections.

use std::net::SocketAddr;

use crate::common::*;

/// Flow `-` pair whose client keeps a pool of `min=2` (one idle connection per worker at
/// first), so the server's shards run dry and refill unevenly.
fn small_pool_pair(
    target: SocketAddr,
    driver: &str,
) -> (NodepassProcess, NodepassProcess, SocketAddr) {
    let o = TunnelOpts {
        reverse: true,
        server_query: "log=debug",
        client_query: "",
        env: vec![],
    };
    let tunnel_port = free_port();
    let user_port = free_port();
    let server_url = tunnel_server_url(&o, tunnel_port, user_port, target);
    let client_url =
        format!("client://secret@127.0.0.1:{tunnel_port}/{target}?mode=2&min=2&log=debug");
    let mut env: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", driver));
    let mut server = NodepassProcess::start(&server_url, &env);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap_or_else(|| panic!("server did not start: {:?}", server.seen));
    let mut client = NodepassProcess::start(&client_url, &env);
    for p in [&mut server, &mut client] {
        p.wait_for_line("Marking tunnel handshake as complete", STEP)
            .unwrap_or_else(|| panic!("no handshake: {:?}", p.seen));
    }
    (
        server,
        client,
        SocketAddr::from(([127, 0, 0, 1], user_port)),
    )
}

fn sixteen_flows_of_twenty_round_trips(driver: &str) {
    let target = echo_tcp_udp();
    let (mut server, mut client, user) = small_pool_pair(target, driver);
    // All first datagrams at once: sixteen flows want a pool connection while only a few
    // are idle, spread over the two workers as the kernel chose.
    let start = std::sync::Arc::new(std::sync::Barrier::new(16));
    let flows: Vec<_> = (0..16)
        .map(|_| {
            let start = std::sync::Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                udp_round_trips(user, 20)
            })
        })
        .collect();
    let done: Vec<usize> = flows.into_iter().map(|f| f.join().unwrap()).collect();
    if done != vec![20; 16] {
        // Gather the lines printed around the failure for the message.
        let late = std::time::Duration::from_millis(300);
        server.watch_output_for(late);
        client.watch_output_for(late);
        panic!(
            "round trips per flow: {done:?}\nserver: {:#?}\nclient: {:#?}",
            server.seen, client.seen
        );
    }
    let timeout = server.wait_for_line("request timeout", std::time::Duration::from_millis(200));
    assert_eq!(timeout, None, "a flow found no pool connection");
}

#[test]
fn sixteen_udp_flows_all_pass_a_two_worker_tunnel_with_a_small_pool_on_uring() {
    sixteen_flows_of_twenty_round_trips("uring");
}

#[test]
fn sixteen_udp_flows_all_pass_a_two_worker_tunnel_with_a_small_pool_on_epoll() {
    sixteen_flows_of_twenty_round_trips("legacy");
}
