//! URL grammar, query parameters, `NP_*` environment and defaults → a typed [`Config`] (pure, no I/O).
//!
//! The grammar follows NodePass v1.14.0 (`../shared/spec/PROTOCOL.md` §1): one URL
//! `scheme://[key@]tunnel_host:port/target[,target…][?query]`. Go's rule for a query
//! parameter that is present but invalid is kept: the field takes its *zero* value, not
//! its default.

mod duration;
mod env;
mod error;
mod go_query;
mod help;
mod params;
mod parse;
pub mod reference;
mod render;
#[cfg(test)]
mod tests;
mod url_parts;

pub use duration::{format_go_duration, parse_go_duration, positive_go_duration};
pub use env::{Driver, Env};
pub use error::ConfigError;
pub use go_query::{parse_query, query_escape, query_unescape};
pub use help::usage;
pub use params::{
    parse_log_level, DEFAULT_DNS_TTL, DEFAULT_MAX_POOL, DEFAULT_MIN_POOL, DEFAULT_SLOT,
};
pub use parse::{derive_key, parse_url, DEFAULT_MASTER_PREFIX};
pub use render::{masked_key, masked_url, MASKED_KEY};

use std::time::Duration;

/// Which program the URL starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `server://`: the public end of a tunnel.
    Server,
    /// `client://`: the private end of a tunnel, or a single-end forwarder.
    Client,
    /// `master://`: the REST API that runs instances.
    Master,
}

impl Scheme {
    /// The URL scheme word.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Server => "server",
            Scheme::Client => "client",
            Scheme::Master => "master",
        }
    }
}

/// A `host:port` as written in the URL. The host is kept as text (a name is resolved
/// later, off the worker threads); an IPv6 literal is stored without brackets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Hostname, IPv4 literal, IPv6 literal (no brackets), or empty for "all addresses".
    pub host: String,
    /// TCP/UDP port.
    pub port: u16,
}

impl HostPort {
    /// `host:port`, with brackets around an IPv6 literal; an empty host stays empty (`:port`).
    pub fn to_addr_string(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host as an IP literal, if it is one (an empty host is `None`).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.host.parse().ok()
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_addr_string())
    }
}

/// Log level names of NodePass, in increasing order of severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// The default.
    Info,
    /// Warnings and above.
    Warn,
    /// Errors and events.
    Error,
    /// Only EVENT lines (CHECK_POINT).
    Event,
    /// Nothing at all.
    None,
}

impl LogLevel {
    /// The word used in URLs (`log=debug`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Event => "event",
            LogLevel::None => "none",
        }
    }
}

/// `tls=`: how the tunnel (or the master API) protects its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// `0`: plaintext.
    Off,
    /// `1`: an in-memory self-signed certificate.
    SelfSigned,
    /// `2`: `crt`/`key` PEM files, reloaded every `NP_RELOAD_INTERVAL`.
    Files,
}

impl TlsMode {
    /// The digit NodePass uses on the wire and in URLs.
    pub fn code(self) -> u8 {
        match self {
            TlsMode::Off => 0,
            TlsMode::SelfSigned => 1,
            TlsMode::Files => 2,
        }
    }
}

/// `mode=`: 0 picks automatically, 1 and 2 force a mode (§2 of PROTOCOL.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// `0`: decide at start by trying to bind.
    Auto,
    /// `1`: server reverse (binds the target) / client single-end forwarder.
    One,
    /// `2`: server forward (dials targets) / client dual-end.
    Two,
}

impl RunMode {
    /// The digit shown in logs and CHECK_POINT lines.
    pub fn code(self) -> u8 {
        match self {
            RunMode::Auto => 0,
            RunMode::One => 1,
            RunMode::Two => 2,
        }
    }
}

/// `block=`: protocols refused on user connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockSet {
    /// `1`: SOCKS4/5.
    pub socks: bool,
    /// `2`: HTTP.
    pub http: bool,
    /// `3`: TLS.
    pub tls: bool,
}

impl BlockSet {
    /// True when no protocol is blocked.
    pub fn is_empty(&self) -> bool {
        !(self.socks || self.http || self.tls)
    }

    /// The digits as written in the URL (`"0"` when empty).
    pub fn to_digits(&self) -> String {
        let mut s = String::new();
        if self.socks {
            s.push('1');
        }
        if self.http {
            s.push('2');
        }
        if self.tls {
            s.push('3');
        }
        if s.is_empty() {
            s.push('0');
        }
        s
    }
}

/// `auth=` (ours, not Go's): whether a tunnel end insists on the `auth1` extension
/// profile (PROTOCOL.md §1: replay-proof handshake, pool connections that prove the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthPolicy {
    /// `auth=auto` (default): the profile when the peer speaks it, Go's v1.14.0 otherwise.
    Auto,
    /// `auth=strict`: refuse a peer that does not speak the profile (a Go peer, or a
    /// downgrade by someone in between).
    Strict,
}

impl AuthPolicy {
    /// The URL word.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthPolicy::Auto => "auto",
            AuthPolicy::Strict => "strict",
        }
    }
}

/// `proxy=`: PROXY protocol header sent to the target before relayed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// `0`: none.
    Off,
    /// `1`: PROXY v1 text header (NodePass).
    V1,
    /// `2`: PROXY v2 binary header (our extension).
    V2,
}

impl ProxyProtocol {
    /// The digit written in URLs and the started line.
    pub fn code(self) -> u8 {
        match self {
            ProxyProtocol::Off => 0,
            ProxyProtocol::V1 => 1,
            ProxyProtocol::V2 => 2,
        }
    }
}

/// Every query parameter of PROTOCOL.md §1.1, with v1.14.0 defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// `log=`.
    pub log: LogLevel,
    /// `tls=` (server and master).
    pub tls: TlsMode,
    /// `crt=` path for tls=2.
    pub crt: String,
    /// `key=` path for tls=2.
    pub key_file: String,
    /// `dns=`: DNS cache TTL; zero disables caching.
    pub dns_ttl: Duration,
    /// `sni=` as given (empty when absent); see [`Config::sni_name`].
    pub sni: String,
    /// `min=`: client minimum pool capacity.
    pub min: u32,
    /// `max=`: server maximum pool capacity.
    pub max: u32,
    /// `mode=`.
    pub mode: RunMode,
    /// `type=`: pool transport (0 = TCP; others are refused later with a clear error).
    pub pool_type: u8,
    /// `dial=`: source IP for target dials; `None` = the system chooses (`auto`).
    pub dial: Option<std::net::IpAddr>,
    /// `read=`: idle read timeout of data sessions; zero = none.
    pub read_timeout: Duration,
    /// `rate=`: Mbit/s, 0 = unlimited.
    pub rate_mbps: u32,
    /// `slot=`: maximum concurrent TCP+UDP sessions, 0 = unlimited.
    pub slot: u32,
    /// `proxy=`.
    pub proxy: ProxyProtocol,
    /// `block=`.
    pub block: BlockSet,
    /// `notcp=1`.
    pub no_tcp: bool,
    /// `noudp=1`.
    pub no_udp: bool,
    /// `auth=`: whether this end insists on the `auth1` extension profile.
    pub auth: AuthPolicy,
}

/// The whole configuration of one process: the URL plus the environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `server`, `client` or `master`.
    pub scheme: Scheme,
    /// Tunnel key: URL username, or FNV-1a-32 hex of the port string.
    pub key: String,
    /// The URL host: bound by servers and single-end clients, dialled by dual-end clients.
    /// For `master://` it is the API listen address.
    pub tunnel: HostPort,
    /// Target addresses (the URL path, comma list). Empty for master.
    pub targets: Vec<HostPort>,
    /// For `master://`: the API prefix without trailing `/` (default `/api`).
    pub master_prefix: String,
    /// Query parameters.
    pub params: Params,
    /// `NP_*` environment.
    pub env: Env,
    /// The URL's `log=` value exactly as written ("" when absent): Go's master copies
    /// this raw text into instance URLs and `/info` (PROTOCOL.md §7).
    pub raw_log: String,
}

impl Config {
    /// The TLS server name and HTTP `Host` a client uses: `sni=`, else the tunnel host,
    /// else `none` when that host is an IP literal (or empty).
    pub fn sni_name(&self) -> String {
        if !self.params.sni.is_empty() {
            return self.params.sni.clone();
        }
        if self.tunnel.host.is_empty() || self.tunnel.ip().is_some() {
            "none".to_string()
        } else {
            self.tunnel.host.clone()
        }
    }

    /// Bytes per second for `rate=`, or `None` for unlimited (NodePass: N × 125000).
    pub fn rate_bytes_per_sec(&self) -> Option<u64> {
        (self.params.rate_mbps > 0).then(|| u64::from(self.params.rate_mbps) * 125_000)
    }
}
