//! UDP through the single-end forwarder: datagrams keep their boundaries, none are lost
//! or merged, on io_uring and on the legacy epoll driver.

use std::net::UdpSocket;
use std::time::Duration;

use crate::common::*;
use nodepass::config::Driver;
use nodepass::dataplane::SessionSpec;

fn a_thousand_datagrams_of_every_size_come_back_intact_and_unmerged(driver: Driver) {
    let echo = echo_udp();
    let fwd = Forwarder::start(driver, SessionSpec::with_targets(vec![Some(echo)]));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.connect(fwd.addr).unwrap();
    let mut buf = vec![0u8; 65536];
    // One outstanding datagram at a time: loopback does not drop, and a lost one fails.
    for i in 0..1000usize {
        let len = 1 + (i * 1471 / 999);
        let data = payload(len, i as u8);
        client.send(&data).unwrap();
        let n = recv_from_retry(&client, &mut buf)
            .map(|(n, _)| n)
            .unwrap_or_else(|e| panic!("{driver:?}: datagram {i} lost: {e}"));
        assert_eq!(&buf[..n], &data[..], "{driver:?}: datagram {i} (len {len})");
    }
    let s = fwd.snapshot();
    assert!(
        s.udp_rx >= 1000 && s.udp_tx >= 1000,
        "{driver:?}: counters {s:?}"
    );
}

on_both_drivers!(a_thousand_datagrams_of_every_size_come_back_intact_and_unmerged);

fn each_client_address_gets_its_own_session(driver: Driver) {
    let echo = echo_udp();
    let fwd = Forwarder::start(driver, SessionSpec::with_targets(vec![Some(echo)]));
    let clients: Vec<UdpSocket> = (0..8)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(format!("client {i}").as_bytes(), fwd.addr)
            .unwrap();
    }
    let mut buf = [0u8; 64];
    for (i, c) in clients.iter().enumerate() {
        let (n, _) = recv_from_retry(c, &mut buf).expect("reply");
        assert_eq!(&buf[..n], format!("client {i}").as_bytes(), "{driver:?}");
    }
    assert!(
        eventually(STEP, || fwd.snapshot().udps == 8),
        "{driver:?}: {:?}",
        fwd.snapshot()
    );
    let t = std::time::Instant::now();
    drop(fwd);
    eprintln!("{driver:?} drop took {:?}", t.elapsed());
}

on_both_drivers!(each_client_address_gets_its_own_session);

fn an_idle_udp_session_expires_after_the_udp_read_timeout(driver: Driver) {
    let echo = echo_udp();
    let mut spec = SessionSpec::with_targets(vec![Some(echo)]);
    spec.udp_read_timeout = Duration::from_millis(300);
    let fwd = Forwarder::start(driver, spec);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"ping", fwd.addr).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(recv_from_retry(&c, &mut buf).unwrap().0, 4);
    assert!(
        eventually(STEP, || fwd.snapshot().udps == 0),
        "session expired"
    );
    // A new datagram opens a fresh session.
    c.send_to(b"again", fwd.addr).unwrap();
    assert_eq!(recv_from_retry(&c, &mut buf).unwrap().0, 5);
}

on_both_drivers!(an_idle_udp_session_expires_after_the_udp_read_timeout);
