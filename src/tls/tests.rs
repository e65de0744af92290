//! Handshakes between our client and server configurations: in memory (rustls connections
//! pumping bytes into each other) and over monoio TCP on 127.0.0.1 with both drivers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConnection};

use super::*;
use crate::config::TlsMode;
use crate::sys::OwnsFd;

/// A directory under the system temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("np-tls-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub(super) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Moves every pending TLS record from one side to the other.
pub(super) fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// Runs a full handshake in memory; returns the server fingerprint the client saw.
pub(super) fn handshake(
    client_config: Arc<ClientConfig>,
    server: &ServerTls,
    name: &'static str,
) -> Result<String, rustls::Error> {
    let name = ServerName::try_from(name).unwrap();
    let mut client = Connection::from(ClientConnection::new(client_config, name)?);
    let mut server = Connection::from(ServerConnection::new(server.config.clone())?);
    for _ in 0..10 {
        transfer(&mut client, &mut server)?;
        transfer(&mut server, &mut client)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            assert_eq!(
                client.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_3)
            );
            let certs = client.peer_certificates().unwrap();
            return Ok(fingerprint(&certs[0]));
        }
    }
    panic!("handshake did not finish");
}

/// A CA and a leaf for `tunnel.test` signed by it, written as PEM files.
pub(super) struct Pki {
    pub(super) dir: TempDir,
    pub(super) ca_der: rustls::pki_types::CertificateDer<'static>,
    pub(super) crt: PathBuf,
    pub(super) key: PathBuf,
}

pub(super) fn make_pki(tag: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["tunnel.test".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let dir = TempDir::new(tag);
    let crt = dir.write("crt.pem", leaf.pem().as_bytes());
    let key = dir.write("key.pem", leaf_key.serialize_pem().as_bytes());
    Pki {
        ca_der: ca.der().clone(),
        dir,
        crt,
        key,
    }
}

#[test]
fn insecure_client_completes_tls13_with_a_self_signed_server_and_sees_its_fingerprint() {
    let server = server_config_self_signed().unwrap();
    assert_eq!(server.mode, TlsMode::SelfSigned);
    let client = client_config_insecure().unwrap();
    let (config, seen) = client.config_capturing();
    let seen_fp = handshake(config, &server, "none").unwrap();
    assert_eq!(seen_fp, server.fingerprint());
    assert_eq!(seen.fingerprint(), Some(server.fingerprint()));
    // The shared configuration works too, without capture.
    assert_eq!(
        handshake(client.config(), &server, "none").unwrap(),
        seen_fp
    );
}

#[test]
fn verifying_client_accepts_a_server_certificate_signed_by_its_ca() {
    let pki = make_pki("verify");
    let server = server_config_from_files(&pki.crt, &pki.key, Duration::from_secs(3600)).unwrap();
    assert_eq!(server.mode, TlsMode::Files);
    let client = client_config_trusting(vec![pki.ca_der.clone()]).unwrap();
    let (config, seen) = client.config_capturing();
    assert_eq!(
        handshake(config, &server, "tunnel.test").unwrap(),
        server.fingerprint()
    );
    assert_eq!(seen.fingerprint(), Some(server.fingerprint()));
}

#[test]
fn verifying_client_rejects_a_wrong_name_or_an_unknown_ca() {
    let pki = make_pki("reject");
    let server = server_config_from_files(&pki.crt, &pki.key, Duration::from_secs(3600)).unwrap();
    let client = client_config_trusting(vec![pki.ca_der.clone()]).unwrap();
    let (config, seen) = client.config_capturing();
    assert!(handshake(config, &server, "other.test").is_err());
    assert_eq!(seen.fingerprint(), None);
    let stranger = make_pki("stranger");
    let client = client_config_trusting(vec![stranger.ca_der.clone()]).unwrap();
    assert!(handshake(client.config(), &server, "tunnel.test").is_err());
    let self_signed = server_config_self_signed().unwrap();
    assert!(handshake(client.config(), &self_signed, "localhost").is_err());
}

#[test]
fn verifying_client_takes_an_extra_ca_file_and_needs_some_root() {
    let pki = make_pki("extra");
    let ca_pem = pki.dir.write("ca.pem", pem_of(&pki.ca_der).as_bytes());
    let server = server_config_from_files(&pki.crt, &pki.key, Duration::from_secs(3600)).unwrap();
    let client = client_config_verifying(Some(&ca_pem)).unwrap();
    assert!(handshake(client.config(), &server, "tunnel.test").is_ok());
    let none = client_config_trusting(Vec::new());
    assert!(matches!(none, Err(TlsError::Roots(_))));
}

fn pem_of(der: &[u8]) -> String {
    let mut b64 = Vec::new();
    crate::proto::base64::encode_into(der, &mut b64);
    let body: Vec<String> = b64
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        body.join("\n")
    )
}

#[test]
fn files_are_reloaded_only_when_due_and_new_handshakes_get_the_new_certificate() {
    let first = make_pki("reload");
    let interval = Duration::from_secs(60);
    let start = Instant::now();
    let reloading = ReloadingCert::load(&first.crt, &first.key, interval, start).unwrap();
    let old_fp = fingerprint(&reloading.current().cert[0]);
    let second = make_pki("reload2");
    std::fs::copy(&second.crt, &first.crt).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    assert!(!reloading.reload_if_due(start + interval / 2).unwrap());
    assert_eq!(fingerprint(&reloading.current().cert[0]), old_fp);
    assert!(reloading.reload_if_due(start + interval).unwrap());
    let new_fp = fingerprint(&reloading.current().cert[0]);
    assert_ne!(new_fp, old_fp);
    // A broken file keeps the current certificate, and the next try waits an interval.
    std::fs::write(&first.crt, b"garbage").unwrap();
    assert!(reloading.reload_if_due(start + interval * 2).is_err());
    assert!(!reloading.reload_if_due(start + interval * 2).unwrap());
    assert_eq!(fingerprint(&reloading.current().cert[0]), new_fp);
}

#[test]
fn server_with_files_serves_the_reloaded_certificate() {
    let pki1 = make_pki("serve");
    let server = server_config_from_files(&pki1.crt, &pki1.key, Duration::ZERO).unwrap();
    let client = client_config_insecure().unwrap();
    let before = handshake(client.config(), &server, "x.test").unwrap();
    let pki2 = make_pki("serve2");
    std::fs::copy(&pki2.crt, &pki1.crt).unwrap();
    std::fs::copy(&pki2.key, &pki1.key).unwrap();
    // Interval zero: the resolver reloads on this very handshake.
    let after = handshake(client.config(), &server, "x.test").unwrap();
    assert_ne!(before, after);
    assert_eq!(after, server.fingerprint());
}

#[test]
fn unreadable_files_fall_back_to_self_signed_and_tls_off_has_no_config() {
    let tls = server_config_for(
        TlsMode::Files,
        "/nonexistent/crt",
        "/nonexistent/key",
        Duration::from_secs(1),
    )
    .unwrap()
    .unwrap();
    assert_eq!(tls.mode, TlsMode::SelfSigned);
    assert!(tls.reloader().is_none());
    assert!(server_config_for(TlsMode::Off, "", "", Duration::ZERO)
        .unwrap()
        .is_none());
    let pki = make_pki("for");
    let files = server_config_for(
        TlsMode::Files,
        pki.crt.to_str().unwrap(),
        pki.key.to_str().unwrap(),
        Duration::from_secs(1),
    )
    .unwrap()
    .unwrap();
    assert_eq!(files.mode, TlsMode::Files);
    assert!(files.reloader().is_some());
}

/// A TLS connection over 127.0.0.1:0 between our two configs (tls=1): `serve` runs the
/// accepted end in its own task; the connected client end comes back with the task, the
/// certificate the client saw and the server's own.
async fn tls_pair<F, Fut>(
    serve: F,
) -> (
    monoio_rustls::ClientTlsStream<monoio::net::TcpStream>,
    monoio::task::JoinHandle<()>,
    SeenCert,
    ServerTls,
)
where
    F: FnOnce(monoio_rustls::ServerTlsStream<monoio::net::TcpStream>) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let server = server_config_self_signed().unwrap();
    let config = server.config.clone();
    let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = monoio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        serve(accept(config, tcp).await.unwrap()).await;
    });
    let (config, seen) = client_config_insecure().unwrap().config_capturing();
    let tcp = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
    let tls = connect(config, ServerName::try_from("none").unwrap(), tcp)
        .await
        .unwrap();
    (tls, served, seen, server)
}

/// Accepts one TLS connection on 127.0.0.1:0, sends a pool id, echoes one message.
async fn tls_echo_over_loopback() {
    use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};

    let (mut tls, served, seen, server) = tls_pair(|mut tls| async move {
        let (res, _) = tls.write_all(vec![0xcb, 0x5b, 0xaf, 0x6b]).await;
        res.unwrap();
        let (res, buf) = tls.read_exact(vec![0u8; 5]).await;
        res.unwrap();
        let (res, _) = tls.write_all(buf).await;
        res.unwrap();
    })
    .await;
    let (res, id) = tls.read_exact(vec![0u8; 4]).await;
    res.unwrap();
    assert_eq!(id, [0xcb, 0x5b, 0xaf, 0x6b]);
    let (res, _) = tls.write_all(b"hello".to_vec()).await;
    res.unwrap();
    let (res, echo) = tls.read_exact(vec![0u8; 5]).await;
    res.unwrap();
    assert_eq!(echo, b"hello");
    assert_eq!(seen.fingerprint(), Some(server.fingerprint()));
    served.await;
}

async fn within_10s(fut: impl std::future::Future<Output = ()>) {
    monoio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("TLS over loopback took longer than 10 s");
}

/// Run `fut` on an io_uring runtime (skipped, with a note, where io_uring is off: the
/// legacy-driver twin of each test covers the path).
pub(super) fn on_io_uring(fut: impl std::future::Future<Output = ()>) {
    if !monoio::utils::detect_uring() {
        eprintln!("io_uring unavailable here; the legacy-driver test covers the path");
        return;
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    rt.block_on(fut);
}

#[test]
fn two_of_our_peers_agree_on_aes_128_gcm_as_go_does() {
    let server = server_config_self_signed().unwrap();
    let client = client_config_insecure().unwrap();
    let name = ServerName::try_from("none").unwrap();
    let mut c = Connection::from(ClientConnection::new(client.config(), name).unwrap());
    let mut s = Connection::from(ServerConnection::new(server.config.clone()).unwrap());
    for _ in 0..10 {
        transfer(&mut c, &mut s).unwrap();
        transfer(&mut s, &mut c).unwrap();
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    for end in [&c, &s] {
        assert_eq!(
            end.negotiated_cipher_suite().map(|cs| cs.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
    }
}

/// Three messages written as three records: a default read returns one record's plaintext
/// (datagrams over TLS keep their boundaries, as Go's `tls.Conn.Read`); once the stream
/// fills reads (a relayed byte stream), one read returns every record already received.
async fn reads_take_one_record_or_all_received() {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

    let (mut tls, served, _, _) = tls_pair(|mut tls| async move {
        for msg in [b"one..", b"two..", b"three"] {
            let (res, _) = tls.write_all(msg.to_vec()).await;
            res.unwrap();
        }
        // Held open until the client is done, so no close_notify ends a read early.
        let (res, _) = tls.read(vec![0u8; 1]).await;
        res.unwrap();
    })
    .await;
    // All three records are in the socket before the first read.
    monoio::time::sleep(Duration::from_millis(200)).await;
    let (res, buf) = tls.read(Vec::with_capacity(64)).await;
    assert_eq!(res.unwrap(), 5);
    assert_eq!(buf, b"one..");
    tls.set_fill_reads(true);
    let (res, buf) = tls.read(Vec::with_capacity(64)).await;
    assert_eq!(res.unwrap(), 10);
    assert_eq!(buf, b"two..three");
    let (res, _) = tls.write_all(b"x".to_vec()).await;
    res.unwrap();
    served.await;
}

/// A relay waits for a filling stream's data with an empty read, so a quiet session lends
/// no copy buffer: the empty read returns only once plaintext has arrived, and the next
/// read takes it; after the peer's close the empty read returns at once and the read
/// reports the end.
async fn an_empty_read_waits_for_data() {
    use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

    let (mut tls, served, _, _) = tls_pair(|mut tls| async move {
        monoio::time::sleep(Duration::from_millis(200)).await;
        let (res, _) = tls.write_all(b"late".to_vec()).await;
        res.unwrap();
        tls.shutdown().await.unwrap();
    })
    .await;
    tls.set_fill_reads(true);
    let started = Instant::now();
    let (res, _) = tls.read(Vec::new()).await;
    assert_eq!(res.unwrap(), 0);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "returned before the data"
    );
    let (res, buf) = tls.read(Vec::with_capacity(64)).await;
    assert_eq!(res.unwrap(), 4);
    assert_eq!(buf, b"late");
    let (res, _) = tls.read(Vec::new()).await;
    assert_eq!(res.unwrap(), 0);
    let (res, _) = tls.read(Vec::with_capacity(64)).await;
    assert_eq!(res.unwrap(), 0, "the close_notify ends the stream");
    served.await;
}

/// Serves `count` TLS connections on 127.0.0.1:0 with `server`, writing a 4-byte id on
/// each (that write carries the server's session ticket, as a pool id does).
fn serve_ids(
    server: &ServerTls,
    count: usize,
) -> (std::net::SocketAddr, monoio::task::JoinHandle<()>) {
    use monoio::io::AsyncWriteRentExt;
    let config = server.config.clone();
    let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = monoio::spawn(async move {
        for _ in 0..count {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = accept(config.clone(), tcp).await.unwrap();
            let (res, _) = tls.write_all(vec![0xcb, 0x5b, 0xaf, 0x6b]).await;
            res.unwrap();
        }
    });
    (addr, served)
}

/// One client connection: handshake, read the id; what it saw of the server.
async fn dial_seeing(config: Arc<ClientConfig>, addr: std::net::SocketAddr) -> ServerSeen {
    use monoio::io::AsyncReadRentExt;
    let tcp = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
    let (mut tls, seen) = connect_seeing(config, ServerName::try_from("none").unwrap(), tcp)
        .await
        .unwrap();
    let (res, id) = tls.read_exact(vec![0u8; 4]).await;
    res.unwrap();
    assert_eq!(id, [0xcb, 0x5b, 0xaf, 0x6b]);
    seen
}

/// Between our peers a pool connection after the first resumes the session: no
/// certificate on the wire, yet the fingerprint reported is still the server's.
async fn resuming_client_resumes_and_still_reports_the_fingerprint() {
    let server = server_config_self_signed().unwrap();
    let (addr, served) = serve_ids(&server, 3);
    let client = client_config_insecure().unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(dial_seeing(client.config_resuming(), addr).await);
    }
    served.await;
    let fp = Some(server.fingerprint());
    assert_eq!(
        seen[0],
        ServerSeen {
            fingerprint: fp.clone(),
            resumed: false
        }
    );
    assert_eq!(
        seen[1],
        ServerSeen {
            fingerprint: fp.clone(),
            resumed: true
        }
    );
    assert_eq!(
        seen[2],
        ServerSeen {
            fingerprint: fp,
            resumed: true
        }
    );
}

/// The configuration for a peer that may be Go never resumes (Go's client does not).
#[monoio::test(driver = "legacy", timer_enabled = true)]
async fn the_plain_client_config_never_resumes() {
    within_10s(async {
        let server = server_config_self_signed().unwrap();
        let (addr, served) = serve_ids(&server, 2);
        let client = client_config_insecure().unwrap();
        for _ in 0..2 {
            let seen = dial_seeing(client.config(), addr).await;
            assert!(!seen.resumed);
            assert_eq!(seen.fingerprint, Some(server.fingerprint()));
        }
        served.await;
    })
    .await;
}

/// A ticket from one server is worthless at another under the same name (a restarted
/// server, or one in between): the handshake is a full one and the fingerprint reported
/// is the certificate this server showed, never the one remembered with the ticket.
#[monoio::test(driver = "legacy", timer_enabled = true)]
async fn a_ticket_from_another_server_gives_a_full_handshake_and_that_servers_fingerprint() {
    within_10s(async {
        let (first, second) = (
            server_config_self_signed().unwrap(),
            server_config_self_signed().unwrap(),
        );
        let client = client_config_insecure().unwrap();
        let (addr, served) = serve_ids(&first, 1);
        let seen = dial_seeing(client.config_resuming(), addr).await;
        served.await;
        assert_eq!(seen.fingerprint, Some(first.fingerprint()));
        let (addr, served) = serve_ids(&second, 2);
        let seen = dial_seeing(client.config_resuming(), addr).await;
        assert_eq!(
            seen,
            ServerSeen {
                fingerprint: Some(second.fingerprint()),
                resumed: false
            }
        );
        let seen = dial_seeing(client.config_resuming(), addr).await;
        assert!(seen.resumed, "the second server's own ticket resumes");
        assert_eq!(seen.fingerprint, Some(second.fingerprint()));
        served.await;
    })
    .await;
}

/// The bytes of the stream the full-socket test sends: not periodic at any record or
/// buffer size, so a record sent twice, lost or reordered shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
}

/// TLS records leave by a direct non-blocking send while the socket takes them; once it
/// is full, the rest waits in the stream's write buffer for the runtime. Here the reader
/// holds off for 300 ms while 4 MiB are written through a small send buffer, so both ways
/// carry records: every byte must arrive once and in order, and the writer waits instead
/// of failing.
async fn writes_to_a_full_socket_wait_and_lose_nothing() {
    use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};
    const LEN: usize = 4 << 20;

    let server = server_config_self_signed().unwrap();
    let config = server.config.clone();
    let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = monoio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = accept(config, tcp).await.unwrap();
        monoio::time::sleep(Duration::from_millis(300)).await;
        let (res, got) = tls.read_exact(vec![0u8; LEN]).await;
        res.unwrap();
        assert!(got == pattern(LEN), "the bytes arrived changed");
        let (res, _) = tls.write_all(b"ok".to_vec()).await;
        res.unwrap();
    });
    let tcp = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
    socket2::SockRef::from(&tcp.fd())
        .set_send_buffer_size(4096)
        .unwrap();
    let client = client_config_insecure().unwrap();
    let mut tls = connect(client.config(), ServerName::try_from("none").unwrap(), tcp)
        .await
        .unwrap();
    let started = Instant::now();
    let data = pattern(LEN);
    for chunk in data.chunks(64 * 1024) {
        let (res, _) = tls.write_all(chunk.to_vec()).await;
        res.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the socket never filled, so the waiting path was not taken"
    );
    let (res, ok) = tls.read_exact(vec![0u8; 2]).await;
    res.unwrap();
    assert_eq!(ok, b"ok");
    served.await;
}

/// A write to a peer that has gone fails with the socket's reason (the direct send uses
/// MSG_NOSIGNAL: no SIGPIPE) within a bounded number of writes.
async fn a_write_to_a_vanished_peer_fails_with_the_reason() {
    use monoio::io::AsyncWriteRentExt;

    let (mut tls, served, _, _) = tls_pair(|tls| async move { drop(tls) }).await;
    served.await;
    let mut last = None;
    for _ in 0..64 {
        let (res, _) = tls.write_all(vec![0x5a; 16 * 1024]).await;
        if let Err(e) = res {
            last = Some(e);
            break;
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = last.expect("64 writes to a closed peer all succeeded");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "unexpected error {err:?}"
    );
}

/// A TLS stream waiting for a quiet peer holds no raw read block (it waits for its socket to
/// be readable before taking one), and the read still returns what arrives later.
async fn a_quiet_stream_holds_no_read_block() {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

    let (mut tls, served, _, _) = tls_pair(|mut tls| async move {
        monoio::time::sleep(Duration::from_millis(300)).await;
        let (res, _) = tls.write_all(b"late".to_vec()).await;
        res.unwrap();
        let (res, _) = tls.read(vec![0u8; 1]).await;
        res.unwrap();
    })
    .await;
    let reader = monoio::spawn(async move {
        let (res, buf) = tls.read(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(buf, b"late");
        tls
    });
    monoio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        monoio_rustls::blocks_in_use(),
        0,
        "a read waiting on a quiet peer holds a block"
    );
    let mut tls = reader.await;
    let (res, _) = tls.write_all(b"x".to_vec()).await;
    res.unwrap();
    served.await;
    drop(tls);
    assert_eq!(
        monoio_rustls::blocks_in_use(),
        0,
        "a block was not given back"
    );
}

/// For each async test body: a module named after it with a `legacy` and an `io_uring`
/// test, each running the body within 10 s.
macro_rules! on_both_drivers {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[monoio::test(driver = "legacy", timer_enabled = true)]
            async fn legacy() {
                super::within_10s(super::$body()).await;
            }

            #[test]
            fn io_uring() {
                super::on_io_uring(super::within_10s(super::$body()));
            }
        }
    )*};
}

on_both_drivers!(
    tls_echo_over_loopback,
    reads_take_one_record_or_all_received,
    an_empty_read_waits_for_data,
    resuming_client_resumes_and_still_reports_the_fingerprint,
    writes_to_a_full_socket_wait_and_lose_nothing,
    a_write_to_a_vanished_peer_fails_with_the_reason,
    a_quiet_stream_holds_no_read_block,
);
