//! The server's tunnel port against real and hostile peers: Go's exact request bytes get
//! the exact JSON reply; wrong key, bad path, garbage and a stalled handshake are refused
//! (and logged) without stopping a real client; after the handshake only the client's IP
//! may open pool connections, the first of which gets id `00000000`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::*;

const GO_REQUEST: &str = "GET / HTTP/1.1\r\nHost: none\r\nUser-Agent: Go-http-client/1.1\r\n\
    Authorization: Bearer e1b24265bf2e0b20c81837993b4f1415f7b68c503114d100a40601eca6a2745f\r\n\
    Accept-Encoding: gzip\r\n\r\n";

fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    String::from_utf8_lossy(&http_exchange(addr, request, STEP)).into_owned()
}

fn start_server(key: &str, port: u16, target: SocketAddr) -> NodepassProcess {
    let url = format!("server://{key}@127.0.0.1:{port}/{target}?mode=2&max=8");
    let mut p = NodepassProcess::start(&url, &TUNNEL_ENV);
    p.wait_for_line("Pending tunnel handshake", STEP)
        .expect("server started");
    p
}

#[test]
fn go_request_bytes_get_the_exact_json_reply_and_the_first_pool_id_is_zero() {
    let port = free_port();
    let _server = start_server("mykey", port, echo_tcp());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let reply = exchange(addr, GO_REQUEST.as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.ends_with("\r\n\r\n{\"flow\":\"+\",\"max\":8,\"tls\":\"0\",\"type\":\"0\"}\n"),
        "{reply}"
    );
    // Another source IP is refused: closed without an id.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stranger: TcpStream = socket.into();
    stranger.set_read_timeout(Some(STEP)).unwrap();
    let mut got = Vec::new();
    let _ = stranger.read_to_end(&mut got);
    assert!(got.is_empty(), "a stranger got {got:?}");
    // The client's IP gets pool connections; the first id is the control channel's.
    let mut pool = connect(addr);
    let mut id = [0xffu8; 4];
    pool.read_exact(&mut id).unwrap();
    assert_eq!(id, [0, 0, 0, 0]);
    let mut second = connect(addr);
    second.read_exact(&mut id).unwrap();
    assert_ne!(id, [0, 0, 0, 0]);
}

/// One of our clients adds its extension marker; our server answers with the features both
/// speak as one more JSON field (a Go client ignores it; a Go server never sends it).
#[test]
fn our_marker_gets_the_agreed_features_back_and_unknown_ones_are_ignored() {
    let port = free_port();
    let _server = start_server("mykey", port, echo_tcp());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let request = GO_REQUEST.replace(
        "\r\nAccept-Encoding",
        "\r\nX-Np-Ext: some-future-thing,udp16\r\nAccept-Encoding",
    );
    let reply = exchange(addr, request.as_bytes());
    assert!(
        reply.ends_with(
            "\r\n\r\n{\"ext\":\"udp16\",\"flow\":\"+\",\"max\":8,\"tls\":\"0\",\"type\":\"0\"}\n"
        ),
        "{reply}"
    );
}

#[test]
fn hostile_handshakes_are_refused_and_a_real_client_still_connects() {
    let port = free_port();
    let target = echo_tcp();
    let mut server = start_server("secret", port, target);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // A stalled handshake stays open the whole time (slowloris).
    let mut stalled = connect(addr);
    stalled.write_all(b"GET / HT").unwrap();
    let wrong = exchange(addr, GO_REQUEST.as_bytes());
    assert!(wrong.starts_with("HTTP/1.1 401 Unauthorized"), "{wrong}");
    server
        .wait_for_line("401 Unauthorized", STEP)
        .expect("401 logged");
    let bad_path = exchange(addr, b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(bad_path.starts_with("HTTP/1.1 404 Not Found"), "{bad_path}");
    let garbage = exchange(addr, b"\x16\x03\x01garbage\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let user_port = free_port();
    let url = format!("client://secret@127.0.0.1:{port}/127.0.0.1:{user_port}?mode=2&min=4");
    let mut client = NodepassProcess::start(&url, &TUNNEL_ENV);
    client
        .wait_for_line("Marking tunnel handshake as complete", STEP)
        .expect("client connected");
    let user = SocketAddr::from(([127, 0, 0, 1], user_port));
    let data = payload(256 * 1024, 3);
    assert!(eventually(STEP, || echo_through(user, &data) == data));
    drop(stalled);
}

#[test]
fn pair_recovers_after_the_client_is_killed_and_after_the_server_restarts() {
    let target = echo_tcp();
    let opts = TunnelOpts {
        reverse: false,
        server_query: "",
        client_query: "",
        env: vec![],
    };
    let pair = tunnel_pair(&opts, target);
    let TunnelPair {
        mut server,
        client,
        user,
        server_url,
        client_url,
        ..
    } = pair;
    let data = payload(64 * 1024, 9);
    assert_eq!(echo_through(user, &data), data);
    // Kill the client mid-transfer, start a new one: the server restarts and accepts it.
    let mut busy = connect(user);
    busy.write_all(&data).unwrap();
    drop(client);
    server
        .wait_for_line("Server restart", STEP)
        .expect("server restarted");
    let mut client = NodepassProcess::start(&client_url, &TUNNEL_ENV);
    assert!(eventually(Duration::from_secs(20), || echo_through_ok(
        user, &data
    )));
    // Restart the server: the client reconnects and traffic resumes.
    drop(server);
    client
        .wait_for_line("Client error", STEP)
        .expect("client noticed");
    let _server = NodepassProcess::start(&server_url, &TUNNEL_ENV);
    client
        .wait_for_line("Client restart", STEP)
        .expect("client restarted");
    assert!(eventually(Duration::from_secs(20), || echo_through_ok(
        user, &data
    )));
}
