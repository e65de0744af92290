//! The one source of the parameter and variable reference: `--help` (`help.rs`) and
//! README's two tables are both rendered from these lists, and tests check that every
//! variable `env.rs` reads is listed here and that README holds the rendered tables.
//!
//! Texts are Markdown-lite: backticks mark code in README and are dropped in `--help`.

/// One query parameter.
#[derive(Clone, Copy, Debug)]
pub struct ParamDoc {
    /// The query name.
    pub name: &'static str,
    /// The modes that read it.
    pub modes: &'static str,
    /// Its default, as `--help` and README show it.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

/// One environment variable.
#[derive(Clone, Copy, Debug)]
pub struct VarDoc {
    /// The variable's name.
    pub name: &'static str,
    /// Its default, as `--help` and README show it.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

const fn p(
    name: &'static str,
    modes: &'static str,
    default: &'static str,
    meaning: &'static str,
) -> ParamDoc {
    ParamDoc {
        name,
        modes,
        default,
        meaning,
    }
}

const fn v(name: &'static str, default: &'static str, meaning: &'static str) -> VarDoc {
    VarDoc {
        name,
        default,
        meaning,
    }
}

const SC: &str = "server, client";

/// Every query parameter, in the order `--help` and README list them.
#[rustfmt::skip]
pub const PARAMS: &[ParamDoc] = &[
    p("log", "all", "`info`", "`none`, `debug`, `info`, `warn`, `error` or `event`"),
    p("tls", "server, master", "`0`", "`0` plain, `1` in-memory self-signed certificate (TLS 1.3), `2` `crt`/`key` files, reloaded every `NP_RELOAD_INTERVAL`"),
    p("crt", "server, master", "–", "PEM certificate file for `tls=2`"),
    p("key", "server, master", "–", "PEM private key file for `tls=2`"),
    p("dns", SC, "`5m0s`", "TTL of resolved target names (Go duration, e.g. `30s`, `1h`)"),
    p("sni", "client", "host or `none`", "TLS server name and HTTP `Host` of the handshake"),
    p("min", "client", "`64`", "minimum pool capacity"),
    p("max", "server", "`1024`", "maximum pool capacity, sent to the client"),
    p("mode", SC, "`0`", "`0` auto, `1` server reverse / client single-end, `2` server forward / client dual-end (give clients of a tunnel `mode=2`: in auto mode a client whose tunnel address can be bound forwards locally instead)"),
    p("type", "server", "`0`", "pool transport: `0` TCP, `1` QUIC (UDP on the tunnel port number, always TLS 1.3), `2` WebSocket (`ws://` at `tls=0`, `wss://` at `tls=1`/`2`), `3` HTTP/2 (always TLS 1.3); the client learns it in the handshake. Against Go, `tls=2` fails for every type (Go's own bug)"),
    p("dial", SC, "`auto`", "source IP for target dials; on the first failure the system chooses from then on"),
    p("read", SC, "`0s`", "session idle timeout (no byte either way for that long), `0` = none"),
    p("rate", SC, "`0`", "bandwidth limit in Mbit/s for the whole process, `0` = unlimited"),
    p("slot", SC, "`65536`", "maximum concurrent TCP+UDP sessions, exact; `0` = unlimited"),
    p("proxy", SC, "`0`", "PROXY header to the target: `1` v1 (NodePass), `2` v2 (our extension)"),
    p("block", SC, "`0`", "refuse protocols, any of `1` SOCKS, `2` HTTP, `3` TLS (e.g. `block=123`)"),
    p("notcp", SC, "`0`", "`1` turns the TCP side off"),
    p("noudp", SC, "`0`", "`1` turns the UDP side off"),
    p("auth", SC, "`auto`", "ours: `auto` uses the auth1 profile when the peer is ours (replay-proof handshake, every pool connection proves the key) and Go's protocol otherwise; `strict` refuses a peer without it (a Go peer, or a downgrade)"),
];

/// Every environment variable nodepass reads, in the order `--help` and README list them.
#[rustfmt::skip]
pub const VARS: &[VarDoc] = &[
    v("NP_SEMAPHORE_LIMIT", "`65536`", "signal queue and master event queue capacity"),
    v("NP_TCP_DATA_BUF_SIZE", "`16384`", "copy buffer per direction in bytes (copy relay, TLS; over TLS it doubles while reads fill it, up to 64 KiB)"),
    v("NP_UDP_DATA_BUF_SIZE", "`16384`", "largest UDP datagram in bytes; longer ones are truncated"),
    v("NP_HANDSHAKE_TIMEOUT", "`5s`", "limit for the tunnel handshake (HTTP exchange), each pool connection's TLS handshake, and the client's wait for the control channel after the handshake"),
    v("NP_TCP_DIAL_TIMEOUT", "`5s`", "TCP dials to targets and the tunnel"),
    v("NP_UDP_DIAL_TIMEOUT", "`5s`", "UDP dials"),
    v("NP_UDP_READ_TIMEOUT", "`30s`", "idle expiry of a UDP session"),
    v("NP_POOL_GET_TIMEOUT", "`5s`", "wait for an idle pool connection"),
    v("NP_MIN_POOL_INTERVAL", "`100ms`", "shortest pool refill interval"),
    v("NP_MAX_POOL_INTERVAL", "`1s`", "longest pool refill interval"),
    v("NP_REPORT_INTERVAL", "`5s`", "ping, CHECK_POINT and TCP keepalive period"),
    v("NP_SERVICE_COOLDOWN", "`3s`", "longest wait between restarts (they start at ~100 ms and double)"),
    v("NP_SHUTDOWN_TIMEOUT", "`5s`", "graceful drain on SIGINT/SIGTERM"),
    v("NP_RELOAD_INTERVAL", "`1h`", "certificate reload and master periodic tasks"),
    v("NP_WORKERS", "CPUs available", "data-plane worker threads (one runtime per core)"),
    v("NP_DRIVER", "`auto`", "`auto` (io_uring if the kernel allows, else epoll), `uring`, `legacy` (epoll)"),
    v("NP_RELAY", "`splice`", "relay method for plaintext TCP: `splice`, `copy`, `uring-splice` (for benchmarks)"),
    v("NP_MASTER_STATE_DIR", "`$STATE_DIRECTORY`, else `<dir of the binary>/state`", "the master's state directory (`nodepass.json`: API key, instances); the image sets `/data`; the master exits at start when it cannot write there"),
    v("STATE_DIRECTORY", "–", "set by systemd's `StateDirectory=`: the master's state directory when `NP_MASTER_STATE_DIR` is unset (first entry)"),
    v("SSL_CERT_FILE", "–", "CA bundle added to the system roots for `tls=2` verification"),
    v("NO_COLOR", "–", "non-empty: log level words without ANSI colour (they are plain anyway when stdout is not a terminal)"),
];

/// `text` without Markdown backticks (the `--help` form).
pub fn plain(text: &str) -> String {
    text.replace('`', "")
}

/// README's "Query parameters" table.
pub fn params_markdown() -> String {
    let mut out = String::from("| name | modes | default | meaning |\n|---|---|---|---|\n");
    for d in PARAMS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            d.name, d.modes, d.default, d.meaning
        ));
    }
    out
}

/// README's "Environment" table.
pub fn vars_markdown() -> String {
    let mut out = String::from("| variable | default | use |\n|---|---|---|\n");
    for d in VARS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            d.name, d.default, d.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{positive_go_duration, Env};
    use std::time::Duration;

    fn default_of(name: &str) -> String {
        let d = VARS.iter().find(|d| d.name == name).expect(name);
        plain(d.default)
    }

    #[test]
    fn every_variable_env_rs_reads_is_documented_and_no_other() {
        // The names env.rs matches on, taken from its source text.
        let source = include_str!("env.rs");
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        let mut read: Vec<&str> = code
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| s.len() > 3 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            .collect();
        read.sort_unstable();
        read.dedup();
        let mut documented: Vec<&str> = VARS.iter().map(|d| d.name).collect();
        documented.sort_unstable();
        assert_eq!(read, documented);
    }

    #[test]
    fn documented_defaults_are_the_defaults_in_use() {
        let env = Env::default();
        let time = |name: &str| positive_go_duration(&default_of(name)).expect(name);
        let size = |name: &str| default_of(name).parse::<usize>().expect(name);
        assert_eq!(size("NP_SEMAPHORE_LIMIT"), env.semaphore_limit);
        assert_eq!(size("NP_TCP_DATA_BUF_SIZE"), env.tcp_data_buf_size);
        assert_eq!(size("NP_UDP_DATA_BUF_SIZE"), env.udp_data_buf_size);
        let durations: [(&str, Duration); 11] = [
            ("NP_HANDSHAKE_TIMEOUT", env.handshake_timeout),
            ("NP_TCP_DIAL_TIMEOUT", env.tcp_dial_timeout),
            ("NP_UDP_DIAL_TIMEOUT", env.udp_dial_timeout),
            ("NP_UDP_READ_TIMEOUT", env.udp_read_timeout),
            ("NP_POOL_GET_TIMEOUT", env.pool_get_timeout),
            ("NP_MIN_POOL_INTERVAL", env.min_pool_interval),
            ("NP_MAX_POOL_INTERVAL", env.max_pool_interval),
            ("NP_REPORT_INTERVAL", env.report_interval),
            ("NP_SERVICE_COOLDOWN", env.service_cooldown),
            ("NP_SHUTDOWN_TIMEOUT", env.shutdown_timeout),
            ("NP_RELOAD_INTERVAL", env.reload_interval),
        ];
        for (name, value) in durations {
            assert_eq!(time(name), value, "{name}");
        }
        assert_eq!(default_of("NP_DRIVER"), env.driver.as_str());
    }

    #[test]
    fn documented_parameter_defaults_are_the_defaults_in_use() {
        use crate::config::{format_go_duration, DEFAULT_DNS_TTL, DEFAULT_MAX_POOL};
        use crate::config::{DEFAULT_MIN_POOL, DEFAULT_SLOT};
        let of = |name: &str| plain(PARAMS.iter().find(|d| d.name == name).expect(name).default);
        assert_eq!(of("dns"), format_go_duration(DEFAULT_DNS_TTL));
        assert_eq!(of("min"), DEFAULT_MIN_POOL.to_string());
        assert_eq!(of("max"), DEFAULT_MAX_POOL.to_string());
        assert_eq!(of("slot"), DEFAULT_SLOT.to_string());
        assert_eq!(of("auth"), crate::config::AuthPolicy::Auto.as_str());
    }
}
