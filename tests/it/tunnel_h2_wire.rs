//! Pool type 3 against Go's side played from POOL_TYPES.md §3's byte facts, with frames
//! written by hand: a fake Go client (Go's handshake, TLS 1.3 with ALPN h2, Go's client
//! SETTINGS, `POST /stream` + DATA `00`, then `200` + the 4 id bytes, the first entry
//! `00000000` the control channel with Go's ping line; a TCP session over a stream,
//! ended by Go's RST_STREAM(CANCEL)) against our server, and a fake Go server (Go's
//! handshake reply, TLS with ALPN h2 and no SNI, Go's SETTINGS, a `404 not found` our
//! client must refuse, then `200` + `00000000` and a ping our client answers) against our
//! client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::common::h2::*;
use crate::common::*;
use nodepass::config::Driver;
use nodepass::proto::handshake::encode_request;
use nodepass::proto::{decode_line, encode_line, Action, Signal};

const KEY: &str = "mykey";

fn env_for(driver: Driver) -> Vec<(&'static str, &'static str)> {
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    env
}

/// Go's client opens an entry: `POST https://none/stream`, then the byte 0x00.
fn go_open(p: &mut Peer<Tls>, stream: u32) {
    let mut out = frame(
        HEADERS,
        END_HEADERS,
        stream,
        &request_block("POST", "/stream", "none"),
    );
    out.extend(frame(DATA, 0, stream, &[0]));
    p.send(&out);
}

/// The response to `stream`: `200` and the 4 id bytes.
fn go_id(p: &mut Peer<Tls>, stream: u32) -> [u8; 4] {
    let ok = p.until(STEP, |p| p.headers.contains_key(&stream));
    assert!(ok, "no response on stream {stream}");
    assert_eq!(status_of(&p.headers[&stream]), Some(200));
    let id = p.take(stream, 4);
    assert!(
        !p.ended.contains(&stream),
        "the id comes without END_STREAM"
    );
    [id[0], id[1], id[2], id[3]]
}

fn go_client_against_our_server(driver: Driver) {
    let (tun, user_port) = (free_port(), free_port());
    let url = format!("server://{KEY}@127.0.0.1:{tun}/127.0.0.1:{user_port}?mode=1&type=3&max=64");
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
        reply.ends_with("{\"flow\":\"-\",\"max\":64,\"tls\":\"1\",\"type\":\"3\"}\n"),
        "type 3 is served with TLS: {reply}"
    );
    let mut tls = tls_connect(tunnel, &[b"h2"]).expect("TLS with ALPN h2");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    tls.sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    go_client_start(&mut tls).unwrap();
    let mut p = Peer::new(tls, Vec::new());
    go_open(&mut p, 1);
    assert_eq!(
        go_id(&mut p, 1),
        [0; 4],
        "the first entry is the control channel"
    );
    // Go's settings: 1 MiB frames and stream window, max streams = max.
    for want in [(5, 1 << 20), (3, 64), (4, 1 << 20)] {
        assert!(p.settings.contains(&want), "{want:?} in {:?}", p.settings);
    }
    // The first signal on the control channel: a ping line.
    let line = p.take_line(1);
    assert_eq!(decode_line(&line, KEY).unwrap(), Signal::new(Action::Ping));
    p.send(&frame(
        DATA,
        0,
        1,
        &encode_line(&Signal::new(Action::Pong), KEY),
    ));
    // Three more entries on the same connection, each with its own id.
    let mut idle = std::collections::HashMap::new();
    for stream in [3, 5, 7] {
        go_open(&mut p, stream);
        let id = go_id(&mut p, stream);
        assert_ne!(id, [0; 4]);
        idle.insert(id_hex(id), stream);
    }
    // Go resets the two oldest idle entries (as its pool's flush does): they leave ours
    // (the session below must get the third; FIFO would hand out a stale one first).
    idle.retain(|_, s| *s == 7);
    for gone in [3, 5] {
        p.send(&frame(RST_STREAM, 0, gone, &8u32.to_be_bytes()));
    }
    p.until(Duration::from_millis(300), |_| false);
    // A session: the user's bytes arrive on the stream the tcp signal names.
    let mut user = connect(SocketAddr::from(([127, 0, 0, 1], user_port)));
    user.set_read_timeout(Some(STEP)).unwrap();
    user.write_all(b"hello from the user").unwrap();
    let sig = loop {
        let sig = decode_line(&p.take_line(1), KEY).expect("a signal");
        if sig.action == Action::Tcp {
            break sig;
        }
    };
    let stream = idle[&sig.id.expect("an id")];
    assert_eq!(p.take(stream, 19), b"hello from the user");
    let down = payload(256 * 1024, 2);
    for chunk in down.chunks(16 * 1024) {
        p.send(&frame(DATA, 0, stream, chunk));
    }
    let mut got = vec![0u8; down.len()];
    user.read_exact(&mut got).unwrap();
    assert!(got == down, "pool→user bytes differ");
    // Go's client closes its entry with RST_STREAM(CANCEL): the user sees EOF.
    p.send(&frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    let mut rest = Vec::new();
    assert_eq!(user.read_to_end(&mut rest).unwrap(), 0, "the user sees EOF");
    server
        .wait_for_line("Exchange complete", STEP)
        .expect("the session ends");
    let errors: Vec<_> = server
        .seen
        .iter()
        .filter(|l| l.contains("Server error") || l.contains("panicked"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

on_both_drivers!(go_client_against_our_server);

/// Go's handshake reply for type 3 (always tls 1), flow `-`.
fn go_reply(max: u32) -> Vec<u8> {
    let body = format!("{{\"flow\":\"-\",\"max\":{max},\"tls\":\"1\",\"type\":\"3\"}}\n");
    format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Date: Sat, 01 Mar 2025 10:00:00 GMT\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Go's x/net server SETTINGS for nph2 with `max`, in Go's order, and its connection
/// WINDOW_UPDATE to 1 MiB.
fn go_server_settings(max: u32) -> Vec<u8> {
    let mut s = Vec::new();
    for (id, v) in [
        (5u16, 1u32 << 20),
        (3, max),
        (6, 1_048_896),
        (1, 4096),
        (4, 1 << 20),
    ] {
        s.extend_from_slice(&id.to_be_bytes());
        s.extend_from_slice(&v.to_be_bytes());
    }
    let mut out = frame(SETTINGS, 0, 0, &s);
    out.extend(frame(WINDOW_UPDATE, 0, 0, &983_041u32.to_be_bytes()));
    out
}

type ServerTls = rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>;

/// Accept a pool connection as Go's nph2 server: TLS 1.3 with ALPN h2 (and check the
/// client sent no SNI, an IP host at tls=1), the client preface, Go's SETTINGS.
fn go_accept(listener: &TcpListener, max: u32) -> Peer<ServerTls> {
    let (sock, _) = listener.accept().unwrap();
    sock.set_read_timeout(Some(STEP)).unwrap();
    let mut config = (*nodepass::tls::server_config_self_signed().unwrap().config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
    let mut tls: ServerTls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(tls.conn.server_name(), None, "no SNI for an IP host");
    let mut preface = [0u8; 24];
    tls.read_exact(&mut preface).unwrap();
    assert_eq!(&preface[..], PREFACE);
    tls.sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    tls.write_all(&go_server_settings(max)).unwrap();
    Peer::new(tls, Vec::new())
}

/// The next request on `p` with its first byte (not one of `seen`).
fn next_request(p: &mut Peer<ServerTls>, seen: &[u32]) -> Option<u32> {
    let fresh = |p: &Peer<ServerTls>| {
        p.opened
            .iter()
            .copied()
            .find(|s| !seen.contains(s) && p.data.get(s).is_some_and(|d| !d.is_empty()))
    };
    p.until(STEP, |p| fresh(p).is_some());
    let s = fresh(p)?;
    assert_eq!(p.take(s, 1), [0], "Go's first byte");
    Some(s)
}

/// Answer request `stream` as Go's handler: `200` and the id (no END_STREAM).
fn go_answer(p: &mut Peer<ServerTls>, stream: u32, id: [u8; 4]) {
    let mut out = frame(HEADERS, END_HEADERS, stream, &status_block(200));
    out.extend(frame(DATA, 0, stream, &id));
    p.send(&out);
}

fn go_server_against_our_client(driver: Driver) {
    let target = echo_tcp_udp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("client://{KEY}@127.0.0.1:{port}/{target}?mode=2&min=2");
    let mut client = NodepassProcess::start(&url, &env_for(driver));
    let (mut hs, _) = listener.accept().unwrap();
    hs.set_read_timeout(Some(STEP)).unwrap();
    read_http_head(&mut hs);
    hs.write_all(&go_reply(8)).unwrap();
    drop(hs);
    client.wait_for_line("TYPE=3", STEP).expect("type 3 taken");
    let mut p = go_accept(&listener, 8);
    // The first request: a POST with the byte 0x00 and no END_STREAM; Go's server is
    // full here (`404 not found`): our client must not take the body as an id.
    let ok = p.until(STEP, |p| {
        p.opened
            .first()
            .is_some_and(|s| p.data.get(s).is_some_and(|d| !d.is_empty()))
    });
    assert!(ok, "no request with its first byte");
    let first = p.opened[0];
    assert!(!p.ended.contains(&first), "the body stays open");
    assert_eq!(p.take(first, 1), [0]);
    let mut out = frame(HEADERS, END_HEADERS, first, &status_block(404));
    out.extend(frame(DATA, END_STREAM, first, b"not found\n"));
    p.send(&out);
    client
        .wait_for_line("refused: status 404 (not found), not taken as an id", STEP)
        .unwrap_or_else(|| panic!("404 not refused: {:?}", client.seen));
    // The next request gets the control channel's id, then Go's first ping.
    let control = next_request(&mut p, &[first]).expect("a second request");
    go_answer(&mut p, control, [0; 4]);
    p.send(&frame(
        DATA,
        0,
        control,
        &encode_line(&Signal::new(Action::Ping), KEY),
    ));
    // Our client also pings right away when its control channel is up (both sides do, as
    // Go's): its own ping may come before the pong, in either order.
    let mut lines = Vec::new();
    loop {
        let line = decode_line(&p.take_line(control), KEY).unwrap();
        lines.push(line.clone());
        if line == Signal::new(Action::Pong) {
            break;
        }
        assert!(
            line == Signal::new(Action::Ping) && lines.len() < 3,
            "no pong to Go's ping: {lines:?}"
        );
    }
    let fatal: Vec<_> = client
        .seen
        .iter()
        .filter(|l| l.contains("panicked") || l.contains("Client error"))
        .collect();
    assert!(fatal.is_empty(), "{fatal:?}");
}

on_both_drivers!(go_server_against_our_client);

/// Go's server never frees a stream's handler: one of its connections gives `max` entries.
/// Our client, facing it (no `auth1`), dials a fresh connection once `max` streams were
/// opened on one, instead of waiting a minute per stream that Go would never answer.
fn a_go_connection_is_left_after_max_streams(driver: Driver) {
    let target = echo_tcp_udp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("client://{KEY}@127.0.0.1:{port}/{target}?mode=2&min=2");
    let env = [
        ("NP_REPORT_INTERVAL", "1s"),
        ("NP_SERVICE_COOLDOWN", "200ms"),
        ("NP_WORKERS", "1"),
        ("NP_DRIVER", np_driver(driver)),
    ];
    let mut client = NodepassProcess::start(&url, &env);
    let (mut hs, _) = listener.accept().unwrap();
    hs.set_read_timeout(Some(STEP)).unwrap();
    read_http_head(&mut hs);
    hs.write_all(&go_reply(2)).unwrap();
    drop(hs);
    client.wait_for_line("TYPE=3", STEP).expect("type 3 taken");
    let mut first = go_accept(&listener, 2);
    let control = next_request(&mut first, &[]).expect("a first request");
    go_answer(&mut first, control, [0; 4]);
    first.send(&frame(
        DATA,
        0,
        control,
        &encode_line(&Signal::new(Action::Ping), KEY),
    ));
    let second = next_request(&mut first, &[control]).expect("a second request");
    go_answer(&mut first, second, [1, 2, 3, 4]);
    // Two handlers are now blocked for good on Go's side: the next entry needs a new
    // connection.
    let mut fresh = go_accept(&listener, 2);
    let third = next_request(&mut fresh, &[]).expect("a request on the new connection");
    go_answer(&mut fresh, third, [5, 6, 7, 8]);
    assert!(
        !first.opened.iter().any(|s| *s != control && *s != second),
        "a third stream on a used-up connection: {:?}",
        first.opened
    );
    let fatal: Vec<_> = client
        .seen
        .iter()
        .filter(|l| l.contains("panicked") || l.contains("Client error"))
        .collect();
    assert!(fatal.is_empty(), "{fatal:?}");
}

on_both_drivers!(a_go_connection_is_left_after_max_streams);
