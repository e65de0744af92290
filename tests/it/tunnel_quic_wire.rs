//! Pool type 1 against Go's side played from POOL_TYPES.md §1's byte facts with a small
//! blocking quinn-proto peer (`common::quic`): a fake Go client (Go's handshake on TCP,
//! then QUIC to the UDP tunnel port with ALPN `np-quic`; each stream writes `00` and
//! reads 4 id bytes, the first `00000000` followed by the first ping signal line) against
//! our server, and a fake Go server (type 1 in the reply, quic-go's answer on the same
//! port number over UDP: one byte read, 4 id bytes written) against our client; each
//! relays a TCP and a UDP session over streams; an idle entry the Go client resets leaves
//! our server's pool at once (StreamEnd gone, shard swept).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::quic::{client_config, Link, Peer, Shared};
use crate::common::ws::read_head;
use crate::common::*;
use nodepass::config::Driver;
use nodepass::proto::handshake::encode_request;
use nodepass::proto::{decode_line, Action, Signal};
use quinn_proto::{ConnectionHandle, StreamId};

const KEY: &str = "mykey";

fn env_for(driver: Driver) -> Vec<(&'static str, &'static str)> {
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    env
}

/// Go's entry: open a stream, write `00`, read exactly 4 bytes.
fn go_entry(peer: &Shared, ch: ConnectionHandle) -> (Link, [u8; 4]) {
    let id = {
        let mut p = peer.lock().unwrap();
        let mut id = None;
        assert!(
            p.pump_until(STEP, |p| {
                id = p.open_bi(ch);
                id.is_some()
            }),
            "no stream credit"
        );
        id.unwrap()
    };
    let mut link = Link::new(peer, ch, id, STEP);
    link.write_all(&[0]).unwrap();
    let mut got = [0u8; 4];
    link.read_exact(&mut got).unwrap();
    (link, got)
}

fn go_client_against_our_server(driver: Driver) {
    let (tun, user_port) = (free_port(), free_port());
    let url = format!("server://{KEY}@127.0.0.1:{tun}/127.0.0.1:{user_port}?mode=1&type=1&max=64");
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
        reply.ends_with("\r\n\r\n{\"flow\":\"-\",\"max\":64,\"tls\":\"1\",\"type\":\"1\"}\n"),
        "{reply}"
    );
    let peer: Shared = Arc::new(Mutex::new(Peer::client("127.0.0.1:0")));
    let ch = {
        let mut p = peer.lock().unwrap();
        let ch = p.connect(tunnel, client_config(b"np-quic"), "127.0.0.1");
        assert!(
            p.pump_until(STEP, |p| p.is_connected(ch)),
            "no QUIC handshake: {:?}",
            p.lost
        );
        ch
    };
    let (mut control, id) = go_entry(&peer, ch);
    assert_eq!(id, [0; 4], "the first entry is the control channel");
    // The first signal: Go's 25-byte ping line.
    let mut line = [0u8; 25];
    control.read_exact(&mut line).unwrap();
    assert_eq!(decode_line(&line, KEY).unwrap(), Signal::new(Action::Ping));
    control.read_timeout = Duration::from_millis(50);
    let control = FakeControl::start(control, KEY, Duration::from_secs(1));
    control
        .wait_for(STEP, |s| *s == Signal::new(Action::Pong))
        .expect("the server answers our ping");
    let mut idle: Vec<(String, Link)> = (0..4)
        .map(|_| {
            let (l, id) = go_entry(&peer, ch);
            (id_hex(id), l)
        })
        .collect();
    // An idle entry whose stream the peer resets leaves the server's pool at once (the
    // server's verify took one of the 4 already).
    let verify = control
        .wait_for(STEP, |s| s.action == Action::Verify)
        .expect("the server's verify");
    idle.retain(|(id, _)| Some(id) != verify.id.as_ref());
    server
        .wait_for_line("POOL=3", STEP)
        .unwrap_or_else(|| panic!("3 idle entries: {:?}", server.seen));
    let (_, reset) = idle.remove(0);
    peer.lock().unwrap().reset(reset.ch, reset.id);
    server
        .wait_for_line("POOL=2", STEP)
        .unwrap_or_else(|| panic!("the reset entry stays: {:?}", server.seen));
    let mut take = |id: &str| {
        let at = idle.iter().position(|(i, _)| i == id).expect("one of ours");
        idle.remove(at).1
    };
    // tcp: 256 KiB up, 256 KiB down, then Go's close (a FIN).
    let mut user = connect(user_addr);
    user.set_read_timeout(Some(STEP)).unwrap();
    let sig = control
        .wait_for(STEP, |s| s.action == Action::Tcp)
        .expect("a tcp signal");
    let mut link = take(&sig.id.expect("an id"));
    let up = payload(256 * 1024, 1);
    user.write_all(&up).unwrap();
    let mut got = vec![0u8; up.len()];
    link.read_exact(&mut got).unwrap();
    assert!(got == up, "user→pool bytes differ");
    let down = payload(256 * 1024, 2);
    link.write_all(&down).unwrap();
    let mut got = vec![0u8; down.len()];
    user.read_exact(&mut got).unwrap();
    assert!(got == down, "pool→user bytes differ");
    link.finish();
    let mut rest = Vec::new();
    assert_eq!(user.read_to_end(&mut rest).unwrap(), 0, "the user sees EOF");
    drop(user);
    // udp: one datagram = one write each way (Go: no framing).
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(STEP)).unwrap();
    u.send_to(b"first datagram", user_addr).unwrap();
    let sig = control
        .wait_for(STEP, |s| s.action == Action::Udp)
        .expect("a udp signal");
    let mut link = take(&sig.id.expect("an id"));
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

/// Go's handshake reply for type 1 (always tls 1), flow `-`.
fn go_reply() -> Vec<u8> {
    let body = "{\"flow\":\"-\",\"max\":8,\"tls\":\"1\",\"type\":\"1\"}\n";
    format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Date: Sat, 01 Mar 2025 10:00:00 GMT\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Go's server handler for the next stream: one byte read (must be our `00`), 4 id bytes
/// written (`00000000` first).
fn go_accept(peer: &Shared, n: u32) -> (String, Link) {
    let (ch, id): (ConnectionHandle, StreamId) = {
        let mut p = peer.lock().unwrap();
        assert!(
            p.pump_until(STEP, |p| !p.streams.is_empty()),
            "no stream from our client"
        );
        p.streams.pop_front().unwrap()
    };
    let mut link = Link::new(peer, ch, id, STEP);
    let mut first = [0u8; 1];
    link.read_exact(&mut first).unwrap();
    assert_eq!(first, [0], "Go's client writes one 00 byte first");
    let id = if n == 0 {
        [0; 4]
    } else {
        (n.wrapping_mul(0x9E37_79B9) | 1).to_be_bytes()
    };
    link.write_all(&id).unwrap();
    (id_hex(id), link)
}

fn go_server_against_our_client(driver: Driver) {
    let target = echo_tcp_udp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer: Shared = Arc::new(Mutex::new(Peer::server(&format!("127.0.0.1:{port}"))));
    let url = format!("client://{KEY}@127.0.0.1:{port}/{target}?mode=2&min=4");
    let mut client = NodepassProcess::start(&url, &env_for(driver));
    let (mut hs, _) = listener.accept().unwrap();
    hs.set_read_timeout(Some(STEP)).unwrap();
    read_head(&mut hs);
    hs.write_all(&go_reply()).unwrap();
    drop(hs);
    client.wait_for_line("TYPE=1", STEP).expect("type 1 taken");
    let (id, mut control) = go_accept(&peer, 0);
    assert_eq!(id, "00000000");
    {
        let p = peer.lock().unwrap();
        let ch = *p.accepted.front().expect("a connection");
        assert!(p.remote(ch).ip().is_loopback());
    }
    control.read_timeout = Duration::from_millis(50);
    let control = FakeControl::start(control, KEY, Duration::from_secs(1));
    control
        .wait_for(STEP, |s| *s == Signal::new(Action::Pong))
        .expect("our client answers Go's ping");
    // tcp: 1 MiB through the echo target and back.
    let (id, mut link) = go_accept(&peer, 1);
    let mut sig = Signal::new(Action::Tcp);
    sig.remote = Some("127.0.0.1:40000".into());
    sig.id = Some(id);
    control.send(sig);
    let data = payload(1024 * 1024, 9);
    let mut back = Vec::with_capacity(data.len());
    let mut sent = 0;
    let mut buf = vec![0u8; 65536];
    while back.len() < data.len() {
        if sent < data.len() {
            let end = (sent + 16 * 1024).min(data.len());
            sent += link.write(&data[sent..end]).unwrap();
        }
        link.read_timeout = Duration::from_millis(5);
        match link.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => back.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(
        back == data,
        "echo differs ({} of {})",
        back.len(),
        data.len()
    );
    link.finish();
    // udp: one write = one datagram to the target and back.
    let (id, mut link) = go_accept(&peer, 2);
    let mut sig = Signal::new(Action::Udp);
    sig.remote = Some("127.0.0.1:40001".into());
    sig.id = Some(id);
    control.send(sig);
    for msg in [&b"one datagram"[..], b"and another"] {
        link.write_all(msg).unwrap();
        let mut got = [0u8; 64];
        link.read_timeout = STEP;
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
