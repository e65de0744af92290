//! Our server against a fake Go v1.14.0 client played byte for byte over raw sockets: Go's
//! handshake request, pool connections that send nothing and read exactly 4 bytes of id,
//! the `00000000` connection as the control channel (ping/pong, CHECK_POINT), then a user
//! at the server's listener (flow `-`) arrives as a `tcp`/`udp` signal naming one of the
//! fake client's idle connections, over which the bytes travel unchanged, on both drivers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::common::*;
use nodepass::proto::handshake::encode_request;
use nodepass::proto::{Action, Signal};

const KEY: &str = "mykey";

/// What the fake Go client holds after connecting: the control channel and idle pool
/// connections by id.
struct GoClient {
    control: FakeControl,
    idle: HashMap<String, TcpStream>,
}

/// Handshake as Go does, then dial `pool` connections at once and read their ids.
fn go_client_connects(tunnel: SocketAddr, pool: usize) -> GoClient {
    let mut hs = connect(tunnel);
    hs.write_all(&encode_request("none", KEY, None)).unwrap();
    let mut reply = Vec::new();
    hs.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.ends_with("\r\n\r\n{\"flow\":\"-\",\"max\":64,\"tls\":\"0\",\"type\":\"0\"}\n"),
        "{reply}"
    );
    // Go dials a refill round in parallel: all connections are open before any id is read.
    let conns: Vec<TcpStream> = (0..pool).map(|_| connect(tunnel)).collect();
    let mut control = None;
    let mut idle = HashMap::new();
    for mut c in conns {
        let mut id = [0u8; 4];
        c.read_exact(&mut id).unwrap();
        if id == [0; 4] {
            assert!(control.is_none(), "two connections got 00000000");
            control = Some(c);
        } else {
            assert!(idle.insert(id_hex(id), c).is_none(), "duplicate id");
        }
    }
    let control = control.expect("one pool connection got 00000000");
    control
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    GoClient {
        control: FakeControl::start(control, KEY, Duration::from_secs(1)),
        idle,
    }
}

impl GoClient {
    /// Go's refill: dial one more pool connection and read its id.
    fn dial_one(&mut self, tunnel: SocketAddr) {
        let mut c = connect(tunnel);
        let mut id = [0u8; 4];
        c.read_exact(&mut id).unwrap();
        assert!(self.idle.insert(id_hex(id), c).is_none(), "duplicate id");
    }
}

fn start_reverse_server(driver: &str, workers: &str) -> (NodepassProcess, SocketAddr, SocketAddr) {
    let tunnel_port = free_port();
    let user_port = free_port();
    let url = format!("server://{KEY}@127.0.0.1:{tunnel_port}/127.0.0.1:{user_port}?mode=1&max=64");
    let mut env: Vec<(&str, &str)> = TUNNEL_ENV
        .iter()
        .copied()
        .filter(|(k, _)| *k != "NP_WORKERS")
        .collect();
    env.push(("NP_WORKERS", workers));
    env.push(("NP_DRIVER", driver));
    let mut server = NodepassProcess::start(&url, &env);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap_or_else(|| panic!("server did not start: {:?}", server.seen));
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
    (server, at(tunnel_port), at(user_port))
}

/// The user's TCP session: a `tcp` signal names an idle connection, then 1 MiB each way
/// with both half-closes passed on.
fn tcp_user_crosses(go: &mut GoClient, user_addr: SocketAddr) {
    let mut user = connect(user_addr);
    // The signal comes before the user sends anything (server-speaks-first protocols).
    let sig = go
        .control
        .wait_for(STEP, |s| s.action == Action::Tcp)
        .expect("a tcp signal");
    assert_eq!(sig.remote, Some(user.local_addr().unwrap().to_string()));
    assert_eq!(sig.fp, None);
    let id = sig.id.expect("tcp signal has an id");
    let mut link = go
        .idle
        .remove(&id)
        .expect("the id of one of our idle connections");
    let up = payload(1024 * 1024, 11);
    let down = payload(1024 * 1024, 12);
    let (up2, down2) = (up.clone(), down.clone());
    let user_side = std::thread::spawn(move || {
        user.write_all(&up2).unwrap();
        user.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        user.read_to_end(&mut got).unwrap();
        got == down2
    });
    let mut got = Vec::new();
    link.read_to_end(&mut got).unwrap();
    assert!(
        got == up,
        "user→pool bytes differ ({} of {})",
        got.len(),
        up.len()
    );
    link.write_all(&down).unwrap();
    link.shutdown(Shutdown::Write).unwrap();
    assert!(user_side.join().unwrap(), "pool→user bytes differ");
}

fn udp_user() -> UdpSocket {
    let user = UdpSocket::bind("127.0.0.1:0").unwrap();
    user.set_read_timeout(Some(STEP)).unwrap();
    user
}

/// The user's UDP flow: a `udp` signal, then raw datagram bytes on the pool connection,
/// and the reply arrives from the address the user sent to (whichever worker relays).
fn udp_user_crosses(go: &mut GoClient, user_addr: SocketAddr, server: &mut NodepassProcess) {
    let user = udp_user();
    let me = user.local_addr().unwrap().to_string();
    user.send_to(b"first datagram", user_addr).unwrap();
    let sig = go
        .control
        .wait_for(STEP, |s| {
            s.action == Action::Udp && s.remote.as_ref() == Some(&me)
        })
        .unwrap_or_else(|| {
            // Gather the lines printed around the failure for the message.
            server.watch_output_for(Duration::from_millis(200));
            panic!("no udp signal; server said {:#?}", server.seen)
        });
    assert_eq!(sig.remote, Some(user.local_addr().unwrap().to_string()));
    let id = sig.id.expect("udp signal has an id");
    let mut link = go
        .idle
        .remove(&id)
        .expect("the id of one of our idle connections");
    let mut got = [0u8; 14];
    link.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"first datagram");
    link.write_all(b"the reply").unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = recv_from_retry(&user, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"the reply");
    assert_eq!(from, user_addr);
    // The same flow keeps its connection: no second signal, the bytes follow directly.
    user.send_to(b"second", user_addr).unwrap();
    let mut got = [0u8; 6];
    link.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"second");
}

fn go_client_against_our_server(driver: &str) {
    let (mut server, tunnel, user_addr) = start_reverse_server(driver, "2");
    // Only two idle connections, wherever the kernel put them: a worker whose shard is
    // empty hands its users to the other one.
    let mut go = go_client_connects(tunnel, 3);
    assert_eq!(go.idle.len(), 2);
    go.control
        .wait_for(STEP, |s| *s == Signal::new(Action::Ping))
        .expect("the server pings at once");
    go.control
        .wait_for(STEP, |s| *s == Signal::new(Action::Pong))
        .expect("the server answers our ping");
    server
        .wait_for_line("CHECK_POINT|MODE=1|PING=", STEP)
        .expect("CHECK_POINT on our pong");
    tcp_user_crosses(&mut go, user_addr);
    go.dial_one(tunnel);
    // Eight flows from eight ports: the kernel spreads their datagrams over both workers.
    for _ in 0..8 {
        udp_user_crosses(&mut go, user_addr, &mut server);
        go.dial_one(tunnel);
    }
    // Still the same run: the control channel answers, nothing restarted.
    go.control
        .wait_for(STEP, |s| s.action == Action::Ping)
        .expect("still pinging");
    let restarts: Vec<_> = server
        .seen
        .iter()
        .filter(|l| l.contains("Server error") || l.contains("Server restart"))
        .collect();
    assert!(restarts.is_empty(), "{restarts:?}");
}

#[test]
fn a_go_client_gets_tcp_and_udp_users_over_its_own_pool_connections_on_uring() {
    go_client_against_our_server("uring");
}

#[test]
fn a_go_client_gets_tcp_and_udp_users_over_its_own_pool_connections_on_epoll() {
    go_client_against_our_server("legacy");
}

/// One worker, no idle connection left: a new flow waits for one while the existing
/// flow's datagrams pass at once; the waiting flow's datagrams then arrive in order.
fn a_waiting_flow_does_not_hold_up_a_live_one(driver: &str) {
    let (_server, tunnel, user_addr) = start_reverse_server(driver, "1");
    let mut go = go_client_connects(tunnel, 2);
    assert_eq!(go.idle.len(), 1);
    let live = udp_user();
    live.send_to(b"a1", user_addr).unwrap();
    let sig = go
        .control
        .wait_for(STEP, |s| s.action == Action::Udp)
        .expect("a udp signal for the live flow");
    let mut live_link = go.idle.remove(&sig.id.unwrap()).unwrap();
    let mut got = [0u8; 2];
    live_link.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"a1");

    let waiting = udp_user();
    waiting.send_to(b"b1", user_addr).unwrap();
    let started = std::time::Instant::now();
    live.send_to(b"a2", user_addr).unwrap();
    live_link.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"a2");
    live_link.write_all(b"r2").unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = recv_from_retry(&live, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"r2");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the live flow waited {took:?}"
    );

    waiting.send_to(b"b2", user_addr).unwrap();
    waiting.send_to(b"b3", user_addr).unwrap();
    go.dial_one(tunnel);
    let sig = go
        .control
        .wait_for(STEP, |s| s.action == Action::Udp)
        .expect("a udp signal once a pool connection arrived");
    assert_eq!(sig.remote, Some(waiting.local_addr().unwrap().to_string()));
    let mut link = go.idle.remove(&sig.id.unwrap()).unwrap();
    let mut got = [0u8; 6];
    link.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"b1b2b3");
    link.write_all(b"late reply").unwrap();
    let (n, from) = recv_from_retry(&waiting, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"late reply"[..], user_addr));
}

#[test]
fn a_udp_flow_waiting_for_the_pool_does_not_hold_up_a_live_flow_on_uring() {
    a_waiting_flow_does_not_hold_up_a_live_one("uring");
}

#[test]
fn a_udp_flow_waiting_for_the_pool_does_not_hold_up_a_live_flow_on_epoll() {
    a_waiting_flow_does_not_hold_up_a_live_one("legacy");
}
