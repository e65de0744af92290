//! The real binary in single-end mode (`client://…?mode=1`): what a user runs and sees —
//! bytes intact on both drivers, the log lines, a clear error for a port in use, and a
//! clean exit on SIGTERM with live connections.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::*;
use nodepass::config::Driver;

fn start_forwarder(
    target_tcp: u16,
    target_udp: u16,
    driver: &str,
    extra: &[(&str, &str)],
) -> (NodepassProcess, u16) {
    assert_eq!(target_tcp, target_udp, "one target port for both");
    let port = free_port();
    let url = format!("client://127.0.0.1:{port}/127.0.0.1:{target_tcp}?mode=1");
    let mut envs = vec![("NP_DRIVER", driver), ("NP_REPORT_INTERVAL", "1s")];
    envs.extend_from_slice(extra);
    let mut np = NodepassProcess::start(&url, &envs);
    np.wait_for_line("Listening on", STEP)
        .expect("nodepass listens");
    (np, port)
}

fn sixteen_mib_and_a_thousand_datagrams_cross_the_binary(driver: Driver) {
    let driver = np_driver(driver);
    let target = echo_tcp_udp().port();
    let (mut np, port) = start_forwarder(target, target, driver, &[]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let data = payload(16 * 1024 * 1024, 9);
    assert!(echo_through(addr, &data) == data, "{driver}: 16 MiB differ");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.connect(addr).unwrap();
    let mut buf = vec![0u8; 2048];
    for i in 0..1000usize {
        let d = payload(1 + i * 1471 / 999, i as u8);
        client.send(&d).unwrap();
        let (n, _) = recv_from_retry(&client, &mut buf)
            .unwrap_or_else(|e| panic!("{driver}: datagram {i}: {e}"));
        assert_eq!(&buf[..n], &d[..], "{driver}: datagram {i}");
    }
    let line = np
        .wait_for_line("UDPTX=", STEP)
        .expect("a CHECK_POINT line");
    assert!(line.contains("CHECK_POINT|MODE=1|PING="), "{line}");
    assert!(line.contains("|POOL=0|"), "{line}");
    let started = np
        .seen
        .iter()
        .find(|l| l.contains("Client started: client://"))
        .cloned();
    let started = started.expect("Client started line");
    assert!(
        started.contains("mode=1") && started.contains("slot=65536"),
        "{started}"
    );
}

on_both_drivers!(sixteen_mib_and_a_thousand_datagrams_cross_the_binary);

#[test]
fn a_port_already_in_use_is_a_clear_startup_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let url = format!("client://127.0.0.1:{port}/127.0.0.1:9?mode=1");
    let mut np = NodepassProcess::start(&url, &[]);
    let code = np.wait_exit(STEP).expect("exits");
    assert_eq!(code, 1);
    let line = np.wait_for_line("Client error", STEP).expect("error line");
    assert!(
        line.contains("cannot listen on") && line.to_lowercase().contains("in use"),
        "{line}"
    );
}

#[test]
fn sigterm_lets_a_live_transfer_finish_then_exits_cleanly() {
    // A slow target: replies 1 s after the request ends, so the session is live at SIGTERM.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let _ = conn.read_to_end(&mut req);
                std::thread::park_timeout(Duration::from_millis(1000));
                let _ = conn.write_all(&req);
            });
        }
    });
    let port = free_port();
    let url = format!("client://127.0.0.1:{port}/127.0.0.1:{target}?mode=1");
    let envs = [
        ("NP_SHUTDOWN_TIMEOUT", "5s"),
        ("NP_REPORT_INTERVAL", "100ms"),
    ];
    let mut np = NodepassProcess::start(&url, &envs);
    np.wait_for_line("Listening on", STEP).expect("listening");
    let mut s = connect(format!("127.0.0.1:{port}").parse().unwrap());
    s.write_all(b"in flight").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let t0 = Instant::now();
    // Wait until the session is counted, then ask nodepass to stop.
    np.wait_for_line("TCPS=1", STEP)
        .expect("the session is live");
    np.terminate();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"in flight", "the live session finished");
    let code = np.wait_exit(STEP).expect("exits after the drain");
    assert_eq!(code, 0);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "exited within the shutdown timeout"
    );
    assert!(np.wait_for_line("shutdown complete", STEP).is_some());
    // New connections are refused once it is gone.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn sigterm_closes_sessions_that_outlive_the_shutdown_timeout() {
    let target = echo_tcp();
    let port = free_port();
    let url = format!("client://127.0.0.1:{port}/{target}?mode=1");
    let mut np = NodepassProcess::start(&url, &[("NP_SHUTDOWN_TIMEOUT", "300ms")]);
    np.wait_for_line("Listening on", STEP).expect("listening");
    let mut idle = connect(format!("127.0.0.1:{port}").parse().unwrap());
    idle.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    idle.read_exact(&mut one).unwrap();
    let t0 = Instant::now();
    np.terminate();
    assert_eq!(np.wait_exit(STEP), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    let mut rest = Vec::new();
    assert_eq!(
        idle.read_to_end(&mut rest).unwrap_or(0),
        0,
        "the idle session was closed"
    );
}

#[test]
fn notcp_and_noudp_turn_off_their_side() {
    let target = echo_tcp_udp().port();
    let port = free_port();
    let url = format!("client://127.0.0.1:{port}/127.0.0.1:{target}?mode=1&notcp=1");
    let mut np = NodepassProcess::start(&url, &[]);
    np.wait_for_line("Listening on", STEP).expect("listening");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no TCP listener with notcp=1"
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"udp still works", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = recv_from_retry(&c, &mut buf).expect("udp echo");
    assert_eq!(&buf[..n], b"udp still works");
    drop(np);

    let port = free_port();
    let url = format!("client://127.0.0.1:{port}/127.0.0.1:{target}?mode=1&noudp=1");
    let mut np = NodepassProcess::start(&url, &[]);
    np.wait_for_line("Listening on", STEP).expect("listening");
    assert!(
        np.seen.iter().all(|l| !l.contains("(udp)")),
        "no UDP socket with noudp=1"
    );
    let data = payload(1000, 1);
    assert_eq!(
        echo_through(format!("127.0.0.1:{port}").parse().unwrap(), &data),
        data
    );
}

#[test]
fn a_target_given_by_host_name_is_resolved_and_reached() {
    let target = echo_tcp();
    let port = free_port();
    let url = format!(
        "client://127.0.0.1:{port}/localhost:{}?mode=1&dns=1s",
        target.port()
    );
    let mut np = NodepassProcess::start(&url, &[]);
    np.wait_for_line("Listening on", STEP).expect("listening");
    let data = payload(4096, 5);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(echo_through(addr, &data), data);
}

#[test]
fn the_last_check_point_on_shutdown_carries_every_byte() {
    let target = echo_tcp();
    let port = free_port();
    let url = format!("client://127.0.0.1:{port}/{target}?mode=1");
    // The report interval is far away: only the final CHECK_POINT can carry the bytes.
    let mut np = NodepassProcess::start(&url, &[("NP_REPORT_INTERVAL", "1h")]);
    np.wait_for_line("Listening on", STEP).expect("listening");
    let data = payload(300_000, 2);
    assert_eq!(
        echo_through(format!("127.0.0.1:{port}").parse().unwrap(), &data),
        data
    );
    np.terminate();
    assert_eq!(np.wait_exit(STEP), Some(0));
    let line = np
        .wait_for_line("CHECK_POINT", STEP)
        .expect("a final CHECK_POINT");
    assert!(line.contains("|TCPRX=300000|TCPTX=300000|"), "{line}");
}
