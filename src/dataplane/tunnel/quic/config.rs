//! quinn-proto configurations for pool type 1, as Go's `NodePassProject/quic` sets them
//! (POOL_TYPES.md §1): ALPN `np-quic`, TLS 1.3, keepalive 5 s, idle timeout 15 s, the
//! server's `max` as the peer's bidirectional stream limit, no datagrams, no 0-RTT.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{
    ClientConfig, EndpointConfig, IdleTimeout, ServerConfig, TransportConfig, VarInt,
};

/// The only ALPN both Go ends offer and accept.
pub const ALPN: &[u8] = b"np-quic";
/// Go: `KeepAlivePeriod = reportInterval` (5 s).
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Go: `MaxIdleTimeout = 3 × reportInterval` (15 s).
const MAX_IDLE: u32 = 15_000;
/// Connections a server endpoint (one per worker) holds at once, handshakes included:
/// a flood of Initial packets from new ports is refused past it.
pub const MAX_CONNECTIONS: usize = 32;
/// Of those, connections from other addresses than the tunnel client's (they are closed
/// as soon as connected, but a handshake takes up to the idle timeout).
pub const MAX_STRANGERS: usize = 8;

fn transport(max_streams: u32) -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEPALIVE))
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(MAX_IDLE))))
        .max_concurrent_bidi_streams(VarInt::from_u32(max_streams.max(1)))
        // Go allows 100 uni streams; nothing uses them.
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None)
        // quic-go's windows: 512 KiB per stream growing to 6 MiB, 15 MiB per connection.
        .stream_receive_window(VarInt::from_u32(6 * 1024 * 1024))
        .receive_window(VarInt::from_u32(15 * 1024 * 1024))
        .send_window(15 * 1024 * 1024)
        .enable_segmentation_offload(false);
    Arc::new(t)
}

/// The endpoint configuration (Go's quic-go: version 1, no Retry).
pub fn endpoint() -> Arc<EndpointConfig> {
    let mut c = EndpointConfig::default();
    // quic-go does not grease the fixed bit; not offering it lets the receive path drop
    // datagrams without it before they cost anything.
    c.grease_quic_bit(false);
    Arc::new(c)
}

fn bad_tls(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("QUIC TLS configuration: {e}"),
    )
}

/// The server side: our TLS server configuration with ALPN `np-quic`; `max` streams per
/// connection.
pub fn server(tls: &rustls::ServerConfig, max: u32) -> io::Result<Arc<ServerConfig>> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(tls).map_err(bad_tls)?;
    let mut cfg = ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(transport(max))
        .migration(false)
        .max_incoming(MAX_CONNECTIONS)
        .incoming_buffer_size(64 * 1024)
        .incoming_buffer_size_total(512 * 1024);
    Ok(Arc::new(cfg))
}

/// The client side: one connection's TLS client configuration with ALPN `np-quic`.
pub fn client(tls: &rustls::ClientConfig, max: u32) -> io::Result<ClientConfig> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = false;
    let crypto = QuicClientConfig::try_from(tls).map_err(bad_tls)?;
    let mut cfg = ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(transport(max));
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_build_from_our_tls_configurations_with_go_s_alpn() {
        let server = crate::tls::server_config_self_signed().expect("server tls");
        assert!(self::server(&server.config, 16).is_ok());
        for tls in [
            crate::tls::client_config_insecure().expect("tls 1"),
            crate::tls::client_config_trusting(
                crate::tls::self_signed()
                    .expect("a certificate")
                    .cert
                    .clone(),
            )
            .expect("tls 2"),
        ] {
            assert!(client(&tls.config(), 16).is_ok());
        }
        assert_eq!(ALPN, b"np-quic");
    }
}
