//! Pool type 2 against Go's side played from POOL_TYPES.md §2's byte facts: a fake Go
//! client (Go's handshake, Go's exact upgrade request, `101` + `82 04 00 00 00 00`, then
//! the first ping as one binary message) against our server, and a fake Go server (the
//! handshake answered with type 2, our upgrade request checked byte for byte, `101` and
//! the id message) against our client; each relays TCP and UDP sessions over messages.
//! A Go client at tls=1 (`wss://`: TLS 1.3, no ALPN, no SNI) gets its ids and a session.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::ws::{go_switching, go_upgrade_request, read_head, WsStream, WS_ACCEPT, WS_KEY};
use crate::common::*;
use nodepass::config::Driver;
use nodepass::proto::handshake::encode_request;
use nodepass::proto::ws::frame::Role;
use nodepass::proto::{decode_line, Action, Signal};

const KEY: &str = "mykey";

/// Go's relay writes at most 16 KiB per message (DataExchange's buffer).
const GO_CHUNK: usize = 16 * 1024;

fn env_for(driver: Driver) -> Vec<(&'static str, &'static str)> {
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    env
}

/// Go's pool dial: the upgrade, the `101` checked, then the 6-byte id message.
fn go_dial(tunnel: SocketAddr) -> (TcpStream, [u8; 4]) {
    let mut s = connect(tunnel);
    s.set_read_timeout(Some(STEP)).unwrap();
    s.write_all(&go_upgrade_request("127.0.0.1", WS_KEY))
        .unwrap();
    let head = read_head(&mut s);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Sec-Websocket-Accept: {WS_ACCEPT}\r\n")),
        "{head}"
    );
    let mut msg = [0u8; 6];
    s.read_exact(&mut msg).unwrap();
    assert_eq!(
        msg[..2],
        [0x82, 0x04],
        "the id is one 4-byte binary message"
    );
    (s, [msg[2], msg[3], msg[4], msg[5]])
}

fn go_client_against_our_server(driver: Driver) {
    let (tun, user_port) = (free_port(), free_port());
    let url = format!("server://{KEY}@127.0.0.1:{tun}/127.0.0.1:{user_port}?mode=1&type=2&max=64");
    let mut server = NodepassProcess::start(&url, &env_for(driver));
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .expect("server up");
    let tunnel = SocketAddr::from(([127, 0, 0, 1], tun));
    let user_addr = SocketAddr::from(([127, 0, 0, 1], user_port));
    let mut hs = connect(tunnel);
    hs.write_all(&encode_request("none", KEY, None)).unwrap();
    let mut reply = Vec::new();
    hs.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(
        reply.ends_with("\r\n\r\n{\"flow\":\"-\",\"max\":64,\"tls\":\"0\",\"type\":\"2\"}\n"),
        "{reply}"
    );
    let (mut control, id) = go_dial(tunnel);
    assert_eq!(id, [0; 4], "the first entry is the control channel");
    // The first signal: Go's 25-byte ping line as one binary message.
    let mut head = [0u8; 2];
    control.read_exact(&mut head).unwrap();
    assert_eq!(head, [0x82, 0x19]);
    let mut line = [0u8; 0x19];
    control.read_exact(&mut line).unwrap();
    assert_eq!(decode_line(&line, KEY).unwrap(), Signal::new(Action::Ping));
    control
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let control = FakeControl::start(
        WsStream::new(control, Role::Client, Vec::new()),
        KEY,
        Duration::from_secs(1),
    );
    control
        .wait_for(STEP, |s| *s == Signal::new(Action::Pong))
        .expect("the server answers our ping");
    let mut idle: HashMap<String, TcpStream> = (0..3)
        .map(|_| {
            let (s, id) = go_dial(tunnel);
            (id_hex(id), s)
        })
        .collect();
    // tcp: 256 KiB up, 256 KiB down in Go-sized messages, then Go's close.
    let mut user = connect(user_addr);
    user.set_read_timeout(Some(STEP)).unwrap();
    let sig = control
        .wait_for(STEP, |s| s.action == Action::Tcp)
        .expect("a tcp signal");
    let id = sig.id.expect("an id");
    let mut link = WsStream::new(idle.remove(&id).expect("one of ours"), Role::Client, vec![]);
    let up = payload(256 * 1024, 1);
    user.write_all(&up).unwrap();
    let mut got = vec![0u8; up.len()];
    link.read_exact(&mut got).unwrap();
    assert!(got == up, "user→pool bytes differ");
    assert!(
        link.frame_sizes.iter().all(|n| *n <= GO_CHUNK),
        "{:?}",
        link.frame_sizes
    );
    let down = payload(256 * 1024, 2);
    for chunk in down.chunks(GO_CHUNK) {
        link.write_all(chunk).unwrap();
    }
    let mut got = vec![0u8; down.len()];
    user.read_exact(&mut got).unwrap();
    assert!(got == down, "pool→user bytes differ");
    link.close(1000).unwrap();
    let mut rest = Vec::new();
    assert_eq!(user.read_to_end(&mut rest).unwrap(), 0, "the user sees EOF");
    drop(user);
    // Our close answers Go's (after the user's side ended): `88 02 03 e8`, then EOF.
    let mut tail = Vec::new();
    let _ = link.get_ref().try_clone().unwrap().read_to_end(&mut tail);
    assert_eq!(tail, [0x88, 0x02, 0x03, 0xe8]);
    // udp: one datagram = one message each way.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(STEP)).unwrap();
    u.send_to(b"first datagram", user_addr).unwrap();
    let sig = control
        .wait_for(STEP, |s| s.action == Action::Udp)
        .expect("a udp signal");
    let id = sig.id.expect("an id");
    let mut link = WsStream::new(idle.remove(&id).expect("one of ours"), Role::Client, vec![]);
    let mut buf = [0u8; 64];
    let n = link.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"first datagram");
    link.write_all(b"the reply").unwrap();
    let (n, _) = recv_from_retry(&u, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"the reply");
    let errors: Vec<_> = server
        .seen
        .iter()
        .filter(|l| l.contains("Server error"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

on_both_drivers!(go_client_against_our_server);

/// Go's handshake reply for type 2, tls 0, flow `-`.
fn go_reply() -> Vec<u8> {
    let body = "{\"flow\":\"-\",\"max\":8,\"tls\":\"0\",\"type\":\"2\"}\n";
    format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Date: Sat, 01 Mar 2025 10:00:00 GMT\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accept pool upgrades as Go's npws server: check the request is Go's, answer `101`
/// and the id message (`00000000` first).
fn go_pool(listener: TcpListener) -> mpsc::Receiver<(String, TcpStream)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for n in 0u32.. {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(STEP)).unwrap();
            let head = read_head(&mut s);
            let key = head
                .split("\r\n")
                .find_map(|l| l.strip_prefix("Sec-Websocket-Key: "))
                .unwrap_or_else(|| panic!("no key in {head:?}"))
                .to_owned();
            assert_eq!(
                head.as_bytes(),
                go_upgrade_request("127.0.0.1", &key),
                "Go's request"
            );
            let id = if n == 0 {
                [0; 4]
            } else {
                (n.wrapping_mul(0x9E37_79B9) | 1).to_be_bytes()
            };
            let mut answer = go_switching(&key);
            answer.extend_from_slice(&[0x82, 0x04]);
            answer.extend_from_slice(&id);
            if s.write_all(&answer).is_err() || tx.send((id_hex(id), s)).is_err() {
                return;
            }
        }
    });
    rx
}

fn go_server_against_our_client(driver: Driver) {
    let target = echo_tcp_udp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("client://{KEY}@127.0.0.1:{port}/{target}?mode=2&min=4");
    let mut client = NodepassProcess::start(&url, &env_for(driver));
    let (mut hs, _) = listener.accept().unwrap();
    hs.set_read_timeout(Some(STEP)).unwrap();
    read_head(&mut hs);
    hs.write_all(&go_reply()).unwrap();
    drop(hs);
    client.wait_for_line("TYPE=2", STEP).expect("type 2 taken");
    let pool = go_pool(listener);
    let next = || pool.recv_timeout(STEP).expect("a pool connection");
    let (id, control) = next();
    assert_eq!(id, "00000000");
    control
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let control = FakeControl::start(
        WsStream::new(control, Role::Server, Vec::new()),
        KEY,
        Duration::from_secs(1),
    );
    control
        .wait_for(STEP, |s| *s == Signal::new(Action::Pong))
        .expect("our client answers Go's ping");
    // tcp: 1 MiB in Go-sized messages through the echo target and back.
    let (id, s) = next();
    let mut sig = Signal::new(Action::Tcp);
    sig.remote = Some("127.0.0.1:40000".into());
    sig.id = Some(id);
    control.send(sig);
    let mut link = WsStream::new(s, Role::Server, vec![]);
    let data = payload(1024 * 1024, 9);
    let mut writer = WsStream::new(link.get_ref().try_clone().unwrap(), Role::Server, vec![]);
    let sent = data.clone();
    let w = std::thread::spawn(move || {
        for chunk in sent.chunks(GO_CHUNK) {
            writer.write_all(chunk).unwrap();
        }
    });
    let mut back = vec![0u8; data.len()];
    link.read_exact(&mut back).unwrap();
    w.join().unwrap();
    assert!(back == data, "echo differs");
    link.close(1000).unwrap();
    let mut rest = Vec::new();
    link.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // udp: datagram messages to the target and back.
    let (id, s) = next();
    let mut sig = Signal::new(Action::Udp);
    sig.remote = Some("127.0.0.1:40001".into());
    sig.id = Some(id);
    control.send(sig);
    let mut link = WsStream::new(s, Role::Server, vec![]);
    for msg in [&b"one datagram"[..], b"and another"] {
        link.write_all(msg).unwrap();
        let mut got = [0u8; 64];
        let n = link.read(&mut got).unwrap();
        assert_eq!(&got[..n], msg);
    }
    client.watch_output_for(Duration::from_millis(100));
    let errors: Vec<_> = client
        .seen
        .iter()
        .filter(|l| l.contains("Client error"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

on_both_drivers!(go_server_against_our_client);

type GoTls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Go's type 2 dial at tls=1: TLS 1.3 only, no ALPN, no verification, no SNI for an IP
/// host (POOL_TYPES.md §2), then the upgrade and the id message.
fn go_dial_wss(tunnel: SocketAddr) -> (GoTls, [u8; 4]) {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::master_http::insecure::AcceptAll))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let tcp = connect(tunnel);
    tcp.set_read_timeout(Some(STEP)).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(&go_upgrade_request("127.0.0.1", WS_KEY))
        .unwrap();
    let head = read_head(&mut s);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Sec-Websocket-Accept: {WS_ACCEPT}\r\n")),
        "{head}"
    );
    let mut msg = [0u8; 6];
    s.read_exact(&mut msg).unwrap();
    assert_eq!(msg[..2], [0x82, 0x04]);
    assert_eq!(s.conn.alpn_protocol(), None, "no ALPN, as Go's server");
    (s, [msg[2], msg[3], msg[4], msg[5]])
}

/// A Go client at tls=1 over `wss://`: the id messages, the control channel, a session.
fn go_wss_client_against_our_server(driver: Driver) {
    let (tun, user_port) = (free_port(), free_port());
    let url =
        format!("server://{KEY}@127.0.0.1:{tun}/127.0.0.1:{user_port}?mode=1&type=2&tls=1&max=64");
    let mut server = NodepassProcess::start(&url, &env_for(driver));
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .expect("server up");
    let tunnel = SocketAddr::from(([127, 0, 0, 1], tun));
    let mut hs = connect(tunnel);
    hs.write_all(&encode_request("none", KEY, None)).unwrap();
    let mut reply = Vec::new();
    hs.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8(reply).unwrap();
    assert!(
        reply.ends_with("{\"flow\":\"-\",\"max\":64,\"tls\":\"1\",\"type\":\"2\"}\n"),
        "{reply}"
    );
    let (control, id) = go_dial_wss(tunnel);
    assert_eq!(id, [0; 4]);
    control
        .sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let control = FakeControl::start(
        WsStream::new(control, Role::Client, Vec::new()),
        KEY,
        Duration::from_secs(1),
    );
    control
        .wait_for(STEP, |s| *s == Signal::new(Action::Pong))
        .expect("the server answers our ping");
    let mut idle: HashMap<String, GoTls> = (0..3)
        .map(|_| {
            let (s, id) = go_dial_wss(tunnel);
            (id_hex(id), s)
        })
        .collect();
    let mut user = connect(SocketAddr::from(([127, 0, 0, 1], user_port)));
    user.set_read_timeout(Some(STEP)).unwrap();
    let sig = control
        .wait_for(STEP, |s| s.action == Action::Tcp)
        .expect("a tcp signal");
    let id = sig.id.expect("an id");
    let mut link = WsStream::new(idle.remove(&id).expect("one of ours"), Role::Client, vec![]);
    let up = payload(64 * 1024, 4);
    user.write_all(&up).unwrap();
    let mut got = vec![0u8; up.len()];
    link.read_exact(&mut got).unwrap();
    assert!(got == up, "user→pool bytes differ");
    let down = payload(64 * 1024, 5);
    for chunk in down.chunks(GO_CHUNK) {
        link.write_all(chunk).unwrap();
    }
    let mut got = vec![0u8; down.len()];
    user.read_exact(&mut got).unwrap();
    assert!(got == down, "pool→user bytes differ");
    let errors: Vec<_> = server
        .seen
        .iter()
        .filter(|l| l.contains("Server error"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

on_both_drivers!(go_wss_client_against_our_server);
