//! Query parameters (PROTOCOL.md §1.1) with NodePass v1.14.0 defaults and Go's
//! "present but invalid or ≤ 0 → zero value" rule.

use std::time::Duration;

use super::duration::positive_go_duration;
use super::{AuthPolicy, BlockSet, LogLevel, Params, ProxyProtocol, RunMode, TlsMode};

/// `dns=` default.
pub const DEFAULT_DNS_TTL: Duration = Duration::from_secs(300);
/// `min=` default.
pub const DEFAULT_MIN_POOL: u32 = 64;
/// `max=` default.
pub const DEFAULT_MAX_POOL: u32 = 1024;
/// `slot=` default.
pub const DEFAULT_SLOT: u32 = 65536;

/// The first value of each key, as Go's `Query().Get` sees it; an empty value counts as absent.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    /// Decode `a=1&b=x+y` (`+` is a space, `%XX` escapes) like Go's `ParseQuery`.
    pub(super) fn parse(raw: &str) -> Query {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            if !pairs.iter().any(|(seen, _)| *seen == k) {
                pairs.push((k.into_owned(), v.into_owned()));
            }
        }
        Query(pairs)
    }

    /// The first value of `key`, or `None` when absent or empty.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            log: LogLevel::Info,
            tls: TlsMode::Off,
            crt: String::new(),
            key_file: String::new(),
            dns_ttl: DEFAULT_DNS_TTL,
            sni: String::new(),
            min: DEFAULT_MIN_POOL,
            max: DEFAULT_MAX_POOL,
            mode: RunMode::Auto,
            pool_type: 0,
            dial: None,
            read_timeout: Duration::ZERO,
            rate_mbps: 0,
            slot: DEFAULT_SLOT,
            proxy: ProxyProtocol::Off,
            block: BlockSet::default(),
            no_tcp: false,
            no_udp: false,
            auth: AuthPolicy::Auto,
        }
    }
}

impl Params {
    /// Every parameter from `query`, defaults for the absent ones.
    pub(super) fn from_query(q: &Query) -> Params {
        let d = Params::default();
        let mut p = Params {
            log: q.get("log").map_or(d.log, parse_log_level),
            tls: q.get("tls").map_or(d.tls, parse_tls),
            crt: q.get("crt").unwrap_or_default().to_string(),
            key_file: q.get("key").unwrap_or_default().to_string(),
            dns_ttl: q.get("dns").map_or(d.dns_ttl, zero_unless_positive),
            sni: q.get("sni").unwrap_or_default().to_string(),
            min: q.get("min").map_or(d.min, positive_or_zero),
            max: q.get("max").map_or(d.max, positive_or_zero),
            mode: q.get("mode").map_or(d.mode, parse_mode),
            pool_type: q.get("type").map_or(0, |v| v.parse().unwrap_or(0)),
            dial: q.get("dial").and_then(|v| v.parse().ok()),
            read_timeout: q.get("read").map_or(d.read_timeout, zero_unless_positive),
            rate_mbps: q.get("rate").map_or(d.rate_mbps, positive_or_zero),
            slot: q.get("slot").map_or(d.slot, positive_or_zero),
            proxy: q.get("proxy").map_or(d.proxy, parse_proxy),
            block: q.get("block").map_or(d.block, parse_block),
            no_tcp: q.get("notcp") == Some("1"),
            no_udp: q.get("noudp") == Some("1"),
            auth: match q.get("auth") {
                Some("strict") => AuthPolicy::Strict,
                _ => AuthPolicy::Auto,
            },
        };
        // Go: QUIC (1) and HTTP/2 (3) pools need TLS, so a plaintext server is upgraded.
        if matches!(p.pool_type, 1 | 3) && p.tls == TlsMode::Off {
            p.tls = TlsMode::SelfSigned;
        }
        p
    }
}

/// `auth=` is ours: unlike Go's parameters, a value that is neither `auto` nor `strict` is
/// an error (a typo must not silently turn a security setting off).
pub(super) fn check_auth(q: &Query) -> Result<(), super::ConfigError> {
    match q.get("auth") {
        None | Some("auto") | Some("strict") => Ok(()),
        Some(other) => Err(super::ConfigError::InvalidParameter {
            name: "auth",
            value: other.to_string(),
            expected: "auto or strict",
        }),
    }
}

/// Go's `log=` switch: anything unknown means info.
pub fn parse_log_level(text: &str) -> LogLevel {
    match text {
        "debug" => LogLevel::Debug,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "event" => LogLevel::Event,
        "none" => LogLevel::None,
        _ => LogLevel::Info,
    }
}

fn parse_tls(text: &str) -> TlsMode {
    match text {
        "1" => TlsMode::SelfSigned,
        "2" => TlsMode::Files,
        _ => TlsMode::Off,
    }
}

fn parse_mode(text: &str) -> RunMode {
    match text {
        "1" => RunMode::One,
        "2" => RunMode::Two,
        _ => RunMode::Auto,
    }
}

fn parse_proxy(text: &str) -> ProxyProtocol {
    match text {
        "1" => ProxyProtocol::V1,
        "2" => ProxyProtocol::V2,
        _ => ProxyProtocol::Off,
    }
}

fn parse_block(text: &str) -> BlockSet {
    BlockSet {
        socks: text.contains('1'),
        http: text.contains('2'),
        tls: text.contains('3'),
    }
}

/// Go's `strconv.Atoi` then `> 0`; anything else is 0. Huge values saturate.
fn positive_or_zero(text: &str) -> u32 {
    match text.parse::<i64>() {
        Ok(v) if v > 0 => u32::try_from(v).unwrap_or(u32::MAX),
        _ => 0,
    }
}

fn zero_unless_positive(text: &str) -> Duration {
    positive_go_duration(text).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::from_query(&Query::parse(query))
    }

    #[test]
    fn absent_parameters_take_the_v1_14_defaults() {
        let p = params("");
        assert_eq!(p, Params::default());
        assert_eq!(p.dns_ttl, Duration::from_secs(300));
        assert_eq!((p.min, p.max, p.slot), (64, 1024, 65536));
        assert_eq!(p.read_timeout, Duration::ZERO);
    }

    #[test]
    fn present_but_invalid_numbers_become_zero_not_the_default() {
        let p = params("slot=abc&max=0&min=-3&rate=1.5&dns=0&read=junk");
        assert_eq!((p.slot, p.max, p.min, p.rate_mbps), (0, 0, 0, 0));
        assert_eq!(
            (p.dns_ttl, p.read_timeout),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn empty_values_count_as_absent_and_the_first_value_wins() {
        let p = params("slot=&max=7&max=9&rate=%2B12");
        assert_eq!((p.slot, p.max, p.rate_mbps), (65536, 7, 12));
        // A literal `+` is a space in a query, so `rate=+12` is " 12": invalid, hence 0.
        assert_eq!(params("rate=+12").rate_mbps, 0);
    }

    #[test]
    fn words_outside_the_vocabulary_fall_back_to_the_zero_value() {
        let p = params("log=bogus&tls=bogus&mode=x&proxy=9&dial=auto&type=q");
        assert_eq!(p.log, LogLevel::Info);
        assert_eq!(p.tls, TlsMode::Off);
        assert_eq!(p.mode, RunMode::Auto);
        assert_eq!(p.proxy, ProxyProtocol::Off);
        assert_eq!(p.dial, None);
        assert_eq!(p.pool_type, 0);
        assert_eq!(params("dial=not-an-ip").dial, None);
    }

    #[test]
    fn every_parameter_is_read_when_valid() {
        let p = params(
            "log=debug&tls=2&crt=/c.pem&key=/k%20x.pem&dns=1h30m&sni=a+b&min=5&max=6&mode=2\
             &type=2&dial=::1&read=300ms&rate=100&slot=7&proxy=2&block=31&notcp=1&noudp=1",
        );
        assert_eq!(p.log, LogLevel::Debug);
        assert_eq!(p.tls, TlsMode::Files);
        assert_eq!(
            (p.crt.as_str(), p.key_file.as_str()),
            ("/c.pem", "/k x.pem")
        );
        assert_eq!(p.dns_ttl, Duration::from_secs(5400));
        assert_eq!(p.sni, "a b");
        assert_eq!((p.min, p.max, p.slot, p.rate_mbps), (5, 6, 7, 100));
        assert_eq!(p.mode, RunMode::Two);
        assert_eq!(p.pool_type, 2);
        assert_eq!(p.dial, Some("::1".parse().unwrap()));
        assert_eq!(p.read_timeout, Duration::from_millis(300));
        assert_eq!(p.proxy, ProxyProtocol::V2);
        let b = p.block;
        assert!(b.socks && !b.http && b.tls);
        assert!(p.no_tcp && p.no_udp);
    }

    #[test]
    fn quic_and_http2_pool_types_force_self_signed_tls_on_a_plain_server() {
        assert_eq!(params("type=1").tls, TlsMode::SelfSigned);
        assert_eq!(params("type=3&tls=x").tls, TlsMode::SelfSigned);
        assert_eq!(params("type=3&tls=2").tls, TlsMode::Files);
        assert_eq!(params("type=2").tls, TlsMode::Off);
    }

    #[test]
    fn each_log_word_maps_to_its_level() {
        let table = [
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("error", LogLevel::Error),
            ("event", LogLevel::Event),
            ("none", LogLevel::None),
            ("DEBUG", LogLevel::Info),
        ];
        for (word, level) in table {
            assert_eq!(parse_log_level(word), level, "{word}");
        }
    }
}
