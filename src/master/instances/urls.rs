//! Instance URL handling as Go's master does it: validation, the enhanced `url` and the `config` URL.
//!
//! Go rebuilds the query with `url.Values.Encode()`: keys sorted, values escaped with
//! `QueryEscape`. We do the same so the `url` and `config` strings match NodePass byte for byte.

use crate::config::{format_go_duration, parse_query, query_escape, query_unescape, Params};

/// The master settings that flow into instance URLs.
#[derive(Clone, Debug, Default)]
pub struct UrlDefaults {
    /// The master URL's `log=` value as written, "" when absent (then nothing is filled,
    /// as Go's `m.logLevel` is the raw query value).
    pub log: String,
    /// Master TLS code: "0", "1" or "2".
    pub tls: String,
    /// Master `crt=` path (tls=2).
    pub crt: String,
    /// Master `key=` path (tls=2).
    pub key: String,
}

/// Why an instance URL was refused (the texts are Go's error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// Not parseable as a URL.
    Format,
    /// Scheme other than `client` / `server`.
    Scheme,
}

/// Check `raw` the way Go's master does (`url.Parse`, then the scheme) and return the
/// instance type (`client` / `server`). Go's parser is lenient — `server://:10101/…` with
/// an empty host is fine — so this is a small check of our own, not the `url` crate.
pub fn instance_type(raw: &str) -> Result<&'static str, UrlError> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(UrlError::Format);
    }
    let Some((scheme, rest)) = raw.split_once(':') else {
        return Err(UrlError::Scheme);
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(if scheme.is_empty() {
            UrlError::Format
        } else {
            UrlError::Scheme
        });
    }
    let kind = match scheme.to_ascii_lowercase().as_str() {
        "client" => "client",
        "server" => "server",
        _ => return Err(UrlError::Scheme),
    };
    let before_query = rest.split(['?', '#']).next().unwrap_or("");
    if query_unescape(&before_query.replace('+', "%2B")).is_none() {
        return Err(UrlError::Format);
    }
    if let Some(auth) = before_query.strip_prefix("//") {
        let authority = auth.split('/').next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port = if let Some(v6) = host.strip_prefix('[') {
            let (_, after) = v6.split_once(']').ok_or(UrlError::Format)?;
            match after {
                "" => "",
                p => p.strip_prefix(':').ok_or(UrlError::Format)?,
            }
        } else {
            host.rsplit_once(':').map_or("", |(_, p)| p)
        };
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UrlError::Format);
        }
    }
    Ok(kind)
}

/// The enhanced URL (Go's `enhanceURL`): the master's `log` when the master URL has one
/// (and for servers with master tls≠0 `tls`, for tls=2 also `crt`, `key`) filled in where
/// the instance URL leaves them empty; keys sorted.
pub fn enhance(raw: &str, kind: &str, d: &UrlDefaults) -> String {
    let (head, query, frag) = split(raw);
    let mut q = parse_query(query);
    fill_master(&mut q, kind, d);
    join(head, &q, frag)
}

/// The `config` URL (Go's `generateConfigURL`): the enhanced URL with every parameter of
/// the instance type that is still empty set to its default, keys sorted. Values the user
/// gave stay as written, as in Go; the defaults come from [`Params::default`].
pub fn config_url(enhanced: &str, kind: &str, d: &UrlDefaults) -> String {
    let (head, query, frag) = split(enhanced);
    let mut q = parse_query(query);
    fill_master(&mut q, kind, d);
    for (k, v) in type_defaults(kind == "client") {
        set_if_empty(&mut q, k, &v);
    }
    join(head, &q, frag)
}

/// Go's per-type defaults in its order: client `dns sni lbs min mode dial read rate slot
/// proxy block notcp noudp`, server `dns lbs max mode type dial read …`.
fn type_defaults(client: bool) -> Vec<(&'static str, String)> {
    let p = Params::default();
    let mut out = vec![("dns", format_go_duration(p.dns_ttl))];
    if client {
        // Go's DefaultServerName; `Config::sni_name` would pick the tunnel host instead.
        out.push(("sni", "none".into()));
    }
    // Load balancing is not modelled by crate::config; "0" is Go's DefaultLBStrategy.
    out.push(("lbs", "0".into()));
    if client {
        out.push(("min", p.min.to_string()));
        out.push(("mode", p.mode.code().to_string()));
    } else {
        out.push(("max", p.max.to_string()));
        out.push(("mode", p.mode.code().to_string()));
        out.push(("type", p.pool_type.to_string()));
    }
    out.extend([
        (
            "dial",
            p.dial.map_or_else(|| "auto".into(), |ip| ip.to_string()),
        ),
        ("read", format_go_duration(p.read_timeout)),
        ("rate", p.rate_mbps.to_string()),
        ("slot", p.slot.to_string()),
        ("proxy", p.proxy.code().to_string()),
        ("block", p.block.to_digits()),
        ("notcp", u8::from(p.no_tcp).to_string()),
        ("noudp", u8::from(p.no_udp).to_string()),
    ]);
    out
}

fn fill_master(q: &mut Vec<(String, String)>, kind: &str, d: &UrlDefaults) {
    if !d.log.is_empty() {
        set_if_empty(q, "log", &d.log);
    }
    if kind == "server" && !d.tls.is_empty() && d.tls != "0" {
        set_if_empty(q, "tls", &d.tls);
        if d.tls == "2" {
            if !d.crt.is_empty() {
                set_if_empty(q, "crt", &d.crt);
            }
            if !d.key.is_empty() {
                set_if_empty(q, "key", &d.key);
            }
        }
    }
}

/// Go's `Get(k) == ""` then `Set(k, v)`: replaces every value of `k`.
fn set_if_empty(q: &mut Vec<(String, String)>, k: &str, v: &str) {
    if q.iter()
        .find(|(key, _)| key == k)
        .is_some_and(|(_, val)| !val.is_empty())
    {
        return;
    }
    q.retain(|(key, _)| key != k);
    q.push((k.to_string(), v.to_string()));
}

fn split(raw: &str) -> (&str, &str, &str) {
    let (rest, frag) = match raw.find('#') {
        Some(i) => (&raw[..i], &raw[i..]),
        None => (raw, ""),
    };
    match rest.find('?') {
        Some(i) => (&rest[..i], &rest[i + 1..], frag),
        None => (rest, "", frag),
    }
}

fn join(head: &str, q: &[(String, String)], frag: &str) -> String {
    let mut sorted: Vec<&(String, String)> = q.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let enc: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    let mut out = lower_scheme(head);
    if !enc.is_empty() {
        out.push('?');
        out.push_str(&enc.join("&"));
    }
    out.push_str(frag);
    out
}

/// `head` with its scheme lowercased, as Go's `url.Parse` stores it and `String()` writes
/// it (`Client://…` is kept as `client://…`).
fn lower_scheme(head: &str) -> String {
    match head.split_once(':') {
        Some((scheme, rest)) => format!("{}:{rest}", scheme.to_ascii_lowercase()),
        None => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls2() -> UrlDefaults {
        UrlDefaults {
            log: "info".into(),
            tls: "2".into(),
            crt: "/c/a.crt".into(),
            key: "/c/a.key".into(),
        }
    }

    #[test]
    fn a_server_url_gains_the_masters_log_and_tls_files_in_sorted_order() {
        let out = enhance("server://:10101/127.0.0.1:8080?max=8", "server", &tls2());
        assert_eq!(
            out,
            "server://:10101/127.0.0.1:8080?crt=%2Fc%2Fa.crt&key=%2Fc%2Fa.key&log=info&max=8&tls=2"
        );
    }

    #[test]
    fn a_client_url_keeps_its_own_log_and_gets_no_tls() {
        let out = enhance("client://k@h:1/[::]:10102?log=debug", "client", &tls2());
        assert_eq!(out, "client://k@h:1/[::]:10102?log=debug");
    }

    #[test]
    fn a_master_url_without_log_fills_no_log_into_instance_urls() {
        let d = UrlDefaults {
            tls: "1".into(),
            ..Default::default()
        };
        let out = enhance("server://:10101/127.0.0.1:8080?max=8", "server", &d);
        assert_eq!(out, "server://:10101/127.0.0.1:8080?max=8&tls=1");
        let cfg = config_url(&out, "server", &d);
        assert_eq!(cfg, "server://:10101/127.0.0.1:8080?block=0&dial=auto&dns=5m0s&lbs=0&max=8&mode=0&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&tls=1&type=0");
    }

    #[test]
    fn the_config_url_lists_every_default_of_its_type() {
        let d = UrlDefaults {
            log: "info".into(),
            tls: "0".into(),
            ..Default::default()
        };
        let out = config_url("client://h:1/t:2?log=info&min=8", "client", &d);
        assert_eq!(out, "client://h:1/t:2?block=0&dial=auto&dns=5m0s&lbs=0&log=info&min=8&mode=0&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&sni=none");
    }

    #[test]
    fn a_scheme_in_capitals_is_stored_lowercase_as_go_does() {
        let d = UrlDefaults::default();
        assert_eq!(instance_type("Client://h:1/t:2"), Ok("client"));
        let out = enhance("Client://K@H:1/t:2?min=8", "client", &d);
        assert_eq!(out, "client://K@H:1/t:2?min=8");
        assert!(config_url("SERVER://:1/t:2", "server", &d).starts_with("server://:1/t:2?"));
        assert_eq!(enhance("server://:1/t:2", "server", &d), "server://:1/t:2");
    }

    #[test]
    fn only_client_and_server_schemes_are_instances() {
        assert_eq!(instance_type("server://:1/a:2"), Ok("server"));
        assert_eq!(instance_type("master://:1"), Err(UrlError::Scheme));
        assert_eq!(instance_type("client://h:x/a:2"), Err(UrlError::Format));
        assert_eq!(instance_type("client://[::1/a:2"), Err(UrlError::Format));
        assert_eq!(
            instance_type("client://k@[::1]:10101/[::]:10102?log=info"),
            Ok("client")
        );
        assert_eq!(instance_type("no scheme here"), Err(UrlError::Scheme));
    }
}
