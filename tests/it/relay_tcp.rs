//! TCP relay through the single-end forwarder: bytes intact at every size, concurrency,
//! half-close both ways, target closing first, failover, slots, rate, PROXY headers —
//! each case on io_uring and on the legacy epoll driver.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::{Duration, Instant};

use crate::common::*;
use nodepass::config::Driver;
use nodepass::dataplane::{RelayKind, SessionSpec};

fn spec_to(targets: &[std::net::SocketAddr]) -> SessionSpec {
    SessionSpec::with_targets(targets.iter().copied().map(Some).collect())
}

fn bytes_arrive_intact_at_every_size(driver: Driver) {
    let echo = echo_tcp();
    for kind in [RelayKind::Splice, RelayKind::Copy] {
        let mut spec = spec_to(&[echo]);
        spec.relay = kind;
        let fwd = Forwarder::start(driver, spec);
        for len in [0usize, 1, 64 * 1024, 16 * 1024 * 1024] {
            let data = payload(len, len as u8);
            let back = echo_through(fwd.addr, &data);
            assert_eq!(back.len(), data.len(), "{driver:?} {kind:?} len {len}");
            assert!(
                back == data,
                "{driver:?} {kind:?}: bytes differ at len {len}"
            );
        }
    }
}

on_both_drivers!(bytes_arrive_intact_at_every_size);

fn two_hundred_concurrent_connections_each_arrive_intact(driver: Driver) {
    let echo = echo_tcp();
    let fwd = Forwarder::start(driver, spec_to(&[echo]));
    let addr = fwd.addr;
    let handles: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let data = payload(32 * 1024 + i, i as u8);
                echo_through(addr, &data) == data
            })
        })
        .collect();
    let ok = handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|b| *b)
        .count();
    assert_eq!(ok, 200, "{driver:?}");
}

on_both_drivers!(two_hundred_concurrent_connections_each_arrive_intact);

/// A target that reads everything until EOF, then replies with the byte count and closes.
fn counting_target() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut all = Vec::new();
                if conn.read_to_end(&mut all).is_ok() {
                    let _ = conn.write_all(format!("got {}", all.len()).as_bytes());
                }
            });
        }
    });
    addr
}

fn a_client_that_shuts_its_write_side_still_receives_the_whole_reply(driver: Driver) {
    let target = counting_target();
    let fwd = Forwarder::start(driver, spec_to(&[target]));
    let mut s = connect(fwd.addr);
    s.write_all(&payload(100_000, 7)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "got 100000", "{driver:?}");
}

on_both_drivers!(a_client_that_shuts_its_write_side_still_receives_the_whole_reply);

fn a_target_that_closes_first_ends_the_users_stream_and_the_user_can_still_send(driver: Driver) {
    // The target greets, shuts its write side, then reports what it later receives.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                conn.write_all(b"hello").unwrap();
                conn.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                let _ = conn.read_to_end(&mut rest);
                let _ = tx.send(rest);
            });
        }
    });
    let fwd = Forwarder::start(driver, spec_to(&[target]));
    let mut s = connect(fwd.addr);
    let mut greeting = Vec::new();
    s.read_to_end(&mut greeting).unwrap();
    assert_eq!(greeting, b"hello", "{driver:?}: EOF after the greeting");
    s.write_all(b"late bytes").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let got = rx.recv_timeout(STEP).expect("target saw EOF");
    assert_eq!(got, b"late bytes", "{driver:?}");
}

on_both_drivers!(a_target_that_closes_first_ends_the_users_stream_and_the_user_can_still_send);

fn the_next_target_is_used_when_the_first_is_down(driver: Driver) {
    let echo = echo_tcp();
    let fwd = Forwarder::start(driver, spec_to(&[dead_addr(), echo]));
    for i in 0..4 {
        let data = payload(1000, i);
        assert_eq!(
            echo_through(fwd.addr, &data),
            data,
            "{driver:?} attempt {i}"
        );
    }
}

on_both_drivers!(the_next_target_is_used_when_the_first_is_down);

fn the_slot_limit_refuses_one_more_and_admits_again_after_a_close(driver: Driver) {
    let echo = echo_tcp();
    let mut spec = spec_to(&[echo]);
    spec.slots = nodepass::limit::SlotLimit::new(2);
    let fwd = Forwarder::start(driver, spec);
    let mut a = connect(fwd.addr);
    let mut b = connect(fwd.addr);
    for s in [&mut a, &mut b] {
        s.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).unwrap();
    }
    // The third is accepted by the kernel and closed by us without a byte.
    let mut c = connect(fwd.addr);
    let _ = c.write_all(b"x");
    let mut buf = [0u8; 1];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "{driver:?}: connection over the limit must be closed");
    drop(a);
    assert!(
        eventually(STEP, || fwd.live_tcp() < 2),
        "{driver:?}: slot returned"
    );
    let data = payload(10, 1);
    assert_eq!(
        echo_through(fwd.addr, &data),
        data,
        "{driver:?}: admitted again"
    );
}

on_both_drivers!(the_slot_limit_refuses_one_more_and_admits_again_after_a_close);

fn rate_8_holds_a_4_mib_transfer_near_4_seconds(driver: Driver) {
    let target = counting_target();
    let mut spec = spec_to(&[target]);
    let bytes_per_sec = 8 * 125_000;
    spec.rate_rx = Some(nodepass::limit::RateLimiter::new(bytes_per_sec));
    spec.rate_tx = Some(nodepass::limit::RateLimiter::new(bytes_per_sec));
    let fwd = Forwarder::start(driver, spec);
    let mut s = connect(fwd.addr);
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    s.write_all(&payload(4 * 1024 * 1024, 3)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(reply, "got 4194304");
    assert!(
        (3.2..=4.8).contains(&secs),
        "4 MiB at 8 Mbit/s took {secs:.2} s"
    );
}

on_both_drivers!(rate_8_holds_a_4_mib_transfer_near_4_seconds);

fn proxy_v1_and_v2_headers_reach_the_target_before_the_data(driver: Driver) {
    for mode in [1, 2] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let mut spec = spec_to(&[target]);
        spec.proxy = if mode == 1 {
            nodepass::config::ProxyProtocol::V1
        } else {
            nodepass::config::ProxyProtocol::V2
        };
        let fwd = Forwarder::start(driver, spec);
        let mut user = connect(fwd.addr);
        let user_addr = user.local_addr().unwrap();
        user.write_all(b"payload").unwrap();
        user.shutdown(Shutdown::Write).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(STEP)).unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        if mode == 1 {
            let want = format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\npayload",
                user_addr.port(),
                target.port()
            );
            assert_eq!(String::from_utf8_lossy(&got), want);
        } else {
            let header = ppp::v2::Header::try_from(&got[..]).expect("valid PROXY v2 header");
            assert_eq!(header.command, ppp::v2::Command::Proxy);
            assert_eq!(header.protocol, ppp::v2::Protocol::Stream);
            match header.addresses {
                ppp::v2::Addresses::IPv4(a) => {
                    assert_eq!(a.source_port, user_addr.port());
                    assert_eq!(a.destination_port, target.port());
                    assert_eq!(a.source_address.to_string(), "127.0.0.1");
                }
                other => panic!("unexpected addresses {other:?}"),
            }
            let len = header.len();
            assert_eq!(&got[len..], b"payload");
        }
    }
}

on_both_drivers!(proxy_v1_and_v2_headers_reach_the_target_before_the_data);

fn an_idle_session_is_closed_after_the_read_timeout_and_a_busy_one_is_not(driver: Driver) {
    let echo = echo_tcp();
    for kind in [RelayKind::Splice, RelayKind::Copy] {
        let mut spec = spec_to(&[echo]);
        spec.read_timeout = Duration::from_millis(300);
        spec.relay = kind;
        let fwd = Forwarder::start(driver, spec);
        // Busy: a byte every 100 ms for 0.6 s keeps the session open past the timeout.
        let mut busy = connect(fwd.addr);
        let mut one = [0u8; 1];
        for _ in 0..6 {
            busy.write_all(b"b").unwrap();
            busy.read_exact(&mut one).unwrap();
            std::thread::park_timeout(Duration::from_millis(100));
        }
        // Idle: nothing for longer than the timeout → EOF from nodepass.
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = busy.read_to_end(&mut rest);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
            "{driver:?} {kind:?}: closed after {waited:?}"
        );
    }
}

on_both_drivers!(an_idle_session_is_closed_after_the_read_timeout_and_a_busy_one_is_not);

fn blocked_protocols_are_refused_and_others_pass(driver: Driver) {
    let echo = echo_tcp();
    let mut spec = spec_to(&[echo]);
    spec.block = nodepass::config::BlockSet {
        socks: true,
        http: true,
        tls: true,
    };
    let fwd = Forwarder::start(driver, spec);
    for blocked in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"\x05\x01\x00",
        b"\x16\x03\x01\x00\x05hello",
    ] {
        let mut s = connect(fwd.addr);
        s.write_all(blocked).unwrap();
        let mut back = Vec::new();
        let _ = s.read_to_end(&mut back);
        assert!(back.is_empty(), "{blocked:?} must be blocked");
    }
    let ssh = b"SSH-2.0-test\r\n".to_vec();
    assert_eq!(echo_through(fwd.addr, &ssh), ssh);
    // A protocol where the server speaks first is not held forever: the target's greeting arrives.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let greeter = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            let _ = c.write_all(b"220 ready\r\n");
        }
    });
    let mut spec = spec_to(&[greeter]);
    spec.block = nodepass::config::BlockSet {
        socks: true,
        http: true,
        tls: true,
    };
    let fwd2 = Forwarder::start(driver, spec);
    let mut s = connect(fwd2.addr);
    let mut greeting = [0u8; 11];
    s.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"220 ready\r\n");
}

on_both_drivers!(blocked_protocols_are_refused_and_others_pass);

fn dial_binds_the_source_ip_and_falls_back_when_it_cannot(driver: Driver) {
    // The target reports the peer address it sees.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let peer = c
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = c.write_all(peer.as_bytes());
        }
    });
    let read_peer = |addr| {
        let mut s = connect(addr);
        let mut ip = String::new();
        s.read_to_string(&mut ip).unwrap();
        ip
    };
    let mut spec = spec_to(&[target]);
    spec.source = nodepass::dataplane::SourcePolicy::new(Some("127.0.0.2".parse().unwrap()));
    let fwd = Forwarder::start(driver, spec);
    assert_eq!(read_peer(fwd.addr), "127.0.0.2");
    // 192.0.2.1 (TEST-NET-1) is not an address of this host: the bind fails at once
    // (no packet is sent) and nodepass falls back to a system-chosen source.
    let mut spec = spec_to(&[target]);
    spec.source = nodepass::dataplane::SourcePolicy::new(Some("192.0.2.1".parse().unwrap()));
    let fwd = Forwarder::start(driver, spec);
    assert_eq!(read_peer(fwd.addr), "127.0.0.1");
    assert_eq!(read_peer(fwd.addr), "127.0.0.1");
}

on_both_drivers!(dial_binds_the_source_ip_and_falls_back_when_it_cannot);

fn the_rate_limit_holds_for_the_whole_process_across_connections_and_workers(driver: Driver) {
    let target = counting_target();
    let mut spec = spec_to(&[target]);
    let bytes_per_sec = 8 * 125_000;
    spec.rate_rx = Some(nodepass::limit::RateLimiter::new(bytes_per_sec));
    spec.rate_tx = Some(nodepass::limit::RateLimiter::new(bytes_per_sec));
    let fwd = Forwarder::start(driver, spec);
    let addr = fwd.addr;
    let started = Instant::now();
    // Four connections of 1 MiB each: together 4 MiB, so ≈ 4 s at 8 Mbit/s, not 1 s.
    let senders: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.write_all(&payload(1024 * 1024, i)).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let mut reply = String::new();
                s.read_to_string(&mut reply).unwrap();
                reply
            })
        })
        .collect();
    for h in senders {
        assert_eq!(h.join().unwrap(), "got 1048576");
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(
        (3.2..=4.8).contains(&secs),
        "4 × 1 MiB at 8 Mbit/s took {secs:.2} s"
    );
}

on_both_drivers!(the_rate_limit_holds_for_the_whole_process_across_connections_and_workers);
