//! A [`Config`] back to text: the query Go prints in "Server started:" / "Client started:"
//! (PROTOCOL.md §6) and the full URL the master shows as an instance's `config`.

use std::fmt::Write as _;

use super::duration::format_go_duration;
use super::{AuthPolicy, Config, Scheme, TlsMode};

/// What log lines print in place of a tunnel key.
pub const MASKED_KEY: &str = "****";

/// A key (tunnel key, master API key) as a log line shows it: [`MASKED_KEY`], or nothing
/// when there is none.
pub fn masked_key(key: &str) -> &'static str {
    if key.is_empty() {
        ""
    } else {
        MASKED_KEY
    }
}

/// `url` for a log line: the key (the userinfo of `scheme://key@host…`) replaced by
/// [`MASKED_KEY`]; a URL without one is returned as it is.
pub fn masked_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) if at > 0 => format!("{}{MASKED_KEY}{}", &url[..start], &url[start + at..]),
        _ => url.to_owned(),
    }
}

impl Config {
    /// The query Go prints after the started/restart prefix, every value filled in:
    /// server `dns=…&max=…&mode=…&type=…&dial=…&read=…&rate=…&slot=…&proxy=…&block=…&notcp=…&noudp=…`,
    /// client `dns=…&sni=…&min=…&mode=…&dial=…&…`, master `log=…&tls=…`.
    pub fn canonical_query(&self) -> String {
        self.query_with(|v| v.to_string())
    }

    /// The first log line: `Server started: server://****@TUNNEL/TARGETS?QUERY`,
    /// `Client started: …`, or `Master started: HOST:PORT/PREFIX/v1`. Unlike Go, the key
    /// is masked ([`MASKED_KEY`]): logs go to journals and dashboards.
    pub fn started_line(&self) -> String {
        self.announce_line("started")
    }

    /// The line logged after a restart: `Server restart: server://…` (same text as started).
    pub fn restart_line(&self) -> String {
        self.announce_line("restart")
    }

    /// `scheme://key@tunnel/targets?canonical_query&log=…` (plus `tls`, `crt`, `key` for a
    /// server), percent-encoded so that [`parse_url`](super::parse_url) reads it back to
    /// the same settings. For the master: `master://host:port/prefix?log=…&tls=…`.
    pub fn full_url(&self) -> String {
        let query = self.query_with(encode_query_value);
        match self.scheme {
            Scheme::Master => format!(
                "master://{}{}?{query}",
                self.tunnel,
                encode_path(&self.master_prefix)
            ),
            Scheme::Server | Scheme::Client => {
                let mut url = format!(
                    "{}://{}@{}/{}?{query}&log={}",
                    self.scheme.as_str(),
                    encode_userinfo(&self.key),
                    self.tunnel,
                    self.targets_string(),
                    self.params.log.as_str()
                );
                if self.scheme == Scheme::Server {
                    self.push_tls(&mut url, encode_query_value);
                }
                url
            }
        }
    }

    /// Targets as `h1:p1,h2:p2` (IPv6 in brackets).
    pub fn targets_string(&self) -> String {
        let list: Vec<String> = self.targets.iter().map(|t| t.to_addr_string()).collect();
        list.join(",")
    }

    fn announce_line(&self, what: &str) -> String {
        match self.scheme {
            Scheme::Master => format!("Master {what}: {}{}/v1", self.tunnel, self.master_prefix),
            Scheme::Server => format!(
                "Server {what}: server://{}@{}/{}?{}",
                masked_key(&self.key),
                self.tunnel,
                self.targets_string(),
                self.canonical_query()
            ),
            Scheme::Client => format!(
                "Client {what}: client://{}@{}/{}?{}",
                masked_key(&self.key),
                self.tunnel,
                self.targets_string(),
                self.canonical_query()
            ),
        }
    }

    fn query_with(&self, text: impl Fn(&str) -> String) -> String {
        let p = &self.params;
        let mut q = String::with_capacity(160);
        if self.scheme == Scheme::Master {
            let _ = write!(q, "log={}", p.log.as_str());
            self.push_tls(&mut q, text);
            return q;
        }
        let _ = write!(q, "dns={}", format_go_duration(p.dns_ttl));
        if self.scheme == Scheme::Server {
            let _ = write!(
                q,
                "&max={}&mode={}&type={}",
                p.max,
                p.mode.code(),
                p.pool_type
            );
        } else {
            let sni = text(&self.sni_name());
            let _ = write!(q, "&sni={sni}&min={}&mode={}", p.min, p.mode.code());
        }
        let dial = p
            .dial
            .map_or_else(|| "auto".to_string(), |ip| ip.to_string());
        let _ = write!(
            q,
            "&dial={dial}&read={}&rate={}&slot={}&proxy={}&block={}&notcp={}&noudp={}",
            format_go_duration(p.read_timeout),
            p.rate_mbps,
            p.slot,
            p.proxy.code(),
            p.block.to_digits(),
            u8::from(p.no_tcp),
            u8::from(p.no_udp)
        );
        // Ours, not Go's: shown only when set, so default lines stay Go's.
        if p.auth == AuthPolicy::Strict {
            let _ = write!(q, "&auth={}", p.auth.as_str());
        }
        q
    }

    /// `&tls=N`, plus `&crt=…&key=…` when tls=2 names files.
    fn push_tls(&self, out: &mut String, text: impl Fn(&str) -> String) {
        let p = &self.params;
        let _ = write!(out, "&tls={}", p.tls.code());
        if p.tls == TlsMode::Files {
            if !p.crt.is_empty() {
                let _ = write!(out, "&crt={}", text(&p.crt));
            }
            if !p.key_file.is_empty() {
                let _ = write!(out, "&key={}", text(&p.key_file));
            }
        }
    }
}

/// Go's `QueryEscape`: unreserved bytes stay, space is `+`, the rest `%XX`.
fn encode_query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Percent-encode a path as Go's `EscapedPath` does: unreserved characters and
/// `$&+,/:;=@` stay, everything else (`%`, `?`, `#`, controls, non-ASCII…) becomes `%XX`,
/// so the parser's decoding gives the same path back.
fn encode_path(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$&+,/:;=@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-encode everything in a username except unreserved characters.
fn encode_userinfo(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
