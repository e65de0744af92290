//! The `--help` text: every mode, query parameter and `NP_*` variable with its default.

/// `(name, modes, default, meaning)` of each query parameter.
const PARAMS: &[(&str, &str, &str, &str)] = &[
    (
        "log",
        "all",
        "info",
        "none, debug, info, warn, error or event",
    ),
    (
        "tls",
        "server, master",
        "0",
        "0 plain, 1 self-signed certificate, 2 crt/key files",
    ),
    (
        "crt",
        "server, master",
        "",
        "PEM certificate file for tls=2",
    ),
    (
        "key",
        "server, master",
        "",
        "PEM private key file for tls=2",
    ),
    (
        "dns",
        "server, client",
        "5m0s",
        "DNS cache TTL (Go duration, e.g. 30s, 1h)",
    ),
    (
        "sni",
        "client",
        "host or none",
        "TLS server name and HTTP Host of the handshake",
    ),
    ("min", "client", "64", "minimum pool capacity"),
    (
        "max",
        "server",
        "1024",
        "maximum pool capacity, sent to the client",
    ),
    (
        "mode",
        "server, client",
        "0",
        "0 auto, 1 server reverse / client single-end, 2 server forward / client dual-end",
    ),
    (
        "type",
        "server",
        "0",
        "pool transport: 0 TCP (1 QUIC, 2 WebSocket, 3 HTTP/2 not supported yet)",
    ),
    (
        "dial",
        "server, client",
        "auto",
        "source IP for target dials",
    ),
    (
        "read",
        "server, client",
        "0s",
        "idle read timeout of a session, 0 = none",
    ),
    (
        "rate",
        "server, client",
        "0",
        "bandwidth limit in Mbit/s, 0 = unlimited",
    ),
    (
        "slot",
        "server, client",
        "65536",
        "maximum concurrent TCP+UDP sessions, 0 = unlimited",
    ),
    (
        "proxy",
        "server, client",
        "0",
        "PROXY protocol header to the target: 0 off, 1 v1, 2 v2",
    ),
    (
        "block",
        "server, client",
        "0",
        "refuse protocols, any of: 1 SOCKS, 2 HTTP, 3 TLS",
    ),
    ("notcp", "server, client", "0", "1 turns the TCP side off"),
    ("noudp", "server, client", "0", "1 turns the UDP side off"),
];

/// `(name, default, meaning)` of each environment variable.
const VARS: &[(&str, &str, &str)] = &[
    (
        "NP_SEMAPHORE_LIMIT",
        "65536",
        "signal queue and master event queue capacity",
    ),
    (
        "NP_TCP_DATA_BUF_SIZE",
        "16384",
        "TCP copy buffer per direction, bytes",
    ),
    (
        "NP_UDP_DATA_BUF_SIZE",
        "16384",
        "largest UDP datagram, bytes",
    ),
    (
        "NP_HANDSHAKE_TIMEOUT",
        "5s",
        "wait for the first pool connection after the handshake",
    ),
    ("NP_TCP_DIAL_TIMEOUT", "5s", "TCP dial timeout"),
    ("NP_UDP_DIAL_TIMEOUT", "5s", "UDP dial timeout"),
    ("NP_UDP_READ_TIMEOUT", "30s", "idle expiry of a UDP session"),
    (
        "NP_POOL_GET_TIMEOUT",
        "5s",
        "wait for an idle pool connection",
    ),
    (
        "NP_MIN_POOL_INTERVAL",
        "100ms",
        "shortest pool refill interval",
    ),
    ("NP_MAX_POOL_INTERVAL", "1s", "longest pool refill interval"),
    (
        "NP_REPORT_INTERVAL",
        "5s",
        "ping, CHECK_POINT and keepalive period",
    ),
    (
        "NP_SERVICE_COOLDOWN",
        "3s",
        "longest wait between restarts (they start at ~100 ms and double)",
    ),
    ("NP_SHUTDOWN_TIMEOUT", "5s", "graceful drain limit"),
    (
        "NP_RELOAD_INTERVAL",
        "1h",
        "certificate reload and master periodic tasks",
    ),
    ("NP_WORKERS", "CPUs available", "data-plane worker threads"),
    (
        "NP_DRIVER",
        "auto",
        "auto, uring (io_uring only) or legacy (epoll)",
    ),
];

/// The full usage text printed by `nodepass --help` (and, on misuse, to stderr).
pub fn usage() -> String {
    let mut text = format!(
        "nodepass {} - TCP/UDP tunnel, wire-compatible with NodePass v1.14.0\n\n\
         Usage: nodepass <URL>\n       nodepass --help | --version\n\n\
         Modes:\n\
         \x20 server://[key@]<tunnel_host:port>/<target_host:port>[,…][?query]\n\
         \x20     public end: accepts the client's tunnel, serves or dials the targets\n\
         \x20 client://[key@]<tunnel_host:port>/<target_host:port>[,…][?query]\n\
         \x20     private end: dials the server's tunnel, or forwards alone (single-end)\n\
         \x20 master://[<host>]:<port>[/<prefix>][?log=&tls=&crt=&key=]\n\
         \x20     REST API under <prefix>/v1 (default /api) that runs server and client instances\n\n\
         The key is the URL username; without one it is derived from the port string.\n\
         Hosts may be names, IPv4, or [IPv6]; an empty tunnel host means all addresses.\n\
         Durations use Go syntax: 300ms, 1.5s, 5m, 1h30m.\n\n\
         Query parameters (name  modes  default  meaning):\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, modes, default, meaning) in PARAMS {
        let default = if default.is_empty() { "-" } else { default };
        text.push_str(&format!(
            "  {name:<6} {modes:<15} {default:<13} {meaning}\n"
        ));
    }
    text.push_str("\nEnvironment (invalid, zero or negative values mean the default):\n");
    for (name, default, meaning) in VARS {
        text.push_str(&format!("  {name:<21} {default:<15} {meaning}\n"));
    }
    text.push_str(
        "\nExamples:\n\
         \x20 nodepass \"server://:10101/127.0.0.1:8080?tls=1\"\n\
         \x20 nodepass \"client://server.example:10101/127.0.0.1:8080\"\n\
         \x20 nodepass \"master://:9090/api?tls=1\"\n\n\
         Exit code 64 means a bad URL or bad usage; nothing was started.\n",
    );
    text
}
