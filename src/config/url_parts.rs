//! Split a URL the way Go's `net/url` does: scheme, username, raw host, decoded path, query.
//!
//! Not `url::Url`: it refuses the empty host of `server://:10101/…` and `master://:9090`
//! (NodePass's own examples) and rewrites the port `010101` as `10101`, which would change
//! the key derived from the port string. The query still goes through `url::form_urlencoded`.

use super::ConfigError;

/// The pieces of a NodePass URL before any NodePass rule is applied.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UrlParts {
    /// Lowercased scheme.
    pub scheme: String,
    /// Percent-decoded username of the userinfo (`user` of `user:pass@`), "" when absent.
    pub username: String,
    /// The host and port as written (`[::1]:10101`, `:10101`, `nohost`).
    pub authority_host: String,
    /// Percent-decoded path, including its leading `/` ("" when absent).
    pub path: String,
    /// Raw query string (after `?`, before `#`).
    pub query: String,
}

/// Split `input` into its parts; only structural problems are reported here.
pub(super) fn split_url(input: &str) -> Result<UrlParts, ConfigError> {
    if input.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(ConfigError::Malformed(
            "the URL contains a control character".into(),
        ));
    }
    let without_fragment = input.split('#').next().unwrap_or_default();
    let (scheme, rest) = split_scheme(without_fragment)
        .ok_or_else(|| ConfigError::Malformed(format!("\"{input}\" has no scheme:// prefix")))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let Some(hier) = rest.strip_prefix("//") else {
        return Err(ConfigError::Malformed(format!(
            "\"{input}\" has no // after the scheme"
        )));
    };
    let (authority, raw_path) = match hier.find('/') {
        Some(i) => hier.split_at(i),
        None => (hier, ""),
    };
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (&authority[..i], &authority[i + 1..]),
        None => ("", authority),
    };
    let raw_user = userinfo.split(':').next().unwrap_or_default();
    Ok(UrlParts {
        scheme,
        username: percent_decode(raw_user, "username")?,
        authority_host: host.to_string(),
        path: percent_decode(raw_path, "path")?,
        query: query.to_string(),
    })
}

/// `scheme:rest` with Go's scheme rule (a letter, then letters, digits, `+`, `-`, `.`).
fn split_scheme(s: &str) -> Option<(String, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    (first_ok && rest_ok).then(|| (scheme.to_ascii_lowercase(), rest))
}

/// Go's `unescape` for userinfo and path: `%XX` → byte; a bad escape is an error; `+` stays.
fn percent_decode(text: &str, part: &'static str) -> Result<String, ConfigError> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let bad = || ConfigError::BadEscape {
        part,
        text: text.to_string(),
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            // Two hex digits exactly: `from_str_radix` alone would take `%+e` as 0x0e.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Why a `host:port` text was refused (the caller says whether it was the tunnel or a target).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AddrError {
    /// No `:port` at all, or an empty port.
    MissingPort,
    /// The port is not a number in 0..=65535.
    InvalidPort,
    /// The host part is malformed.
    InvalidHost(&'static str),
}

/// Split `host:port` like Go's `net.SplitHostPort`, IPv6 in brackets; the host may be empty.
/// Returns the host without brackets.
pub(super) fn split_host_port(addr: &str) -> Result<(String, u16), AddrError> {
    let (host, port) = if let Some(bracketed) = addr.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or(AddrError::InvalidHost("missing ']' after the IPv6 address"))?;
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AddrError::InvalidHost(
                "the text in brackets is not an IPv6 address",
            ));
        }
        let port = match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(AddrError::MissingPort),
            None => return Err(AddrError::InvalidHost("unexpected text after ']'")),
        };
        (inside, port)
    } else {
        let (host, port) = addr.rsplit_once(':').ok_or(AddrError::MissingPort)?;
        if host.contains(':') {
            return Err(AddrError::InvalidHost(
                "too many colons (put an IPv6 address in brackets)",
            ));
        }
        check_host_chars(host)?;
        (host, port)
    };
    Ok((host.to_string(), parse_port(port)?))
}

/// A port as Go accepts it in a URL: decimal digits only (leading zeros allowed), ≤ 65535.
fn parse_port(text: &str) -> Result<u16, AddrError> {
    if text.is_empty() {
        return Err(AddrError::MissingPort);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::InvalidPort);
    }
    let digits = text.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    digits.parse::<u16>().map_err(|_| AddrError::InvalidPort)
}

fn check_host_chars(host: &str) -> Result<(), AddrError> {
    let ok = |c: char| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
    if host.chars().all(ok) {
        Ok(())
    } else {
        Err(AddrError::InvalidHost(
            "it contains a character not allowed in a hostname",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_splits_into_go_parts_with_decoded_username_and_path() {
        let parts = split_url("Client://u%40x:p@[::1]:01080/a%2Cb:1?slot=3#frag").unwrap();
        assert_eq!(
            parts,
            UrlParts {
                scheme: "client".into(),
                username: "u@x".into(),
                authority_host: "[::1]:01080".into(),
                path: "/a,b:1".into(),
                query: "slot=3".into(),
            }
        );
    }

    #[test]
    fn a_percent_escape_takes_two_hex_digits_and_no_sign() {
        // Found by fuzzing (fuzz/regressions/config_url/crash-c18b…): `%+e` was byte 0x0e.
        for bad in ["/a%+e", "/a%-1", "/a% 1", "/a%g0"] {
            assert!(percent_decode(bad, "path").is_err(), "{bad}");
            assert_eq!(crate::config::query_unescape(bad), None, "{bad}");
        }
        assert_eq!(percent_decode("/a%2c", "path").unwrap(), "/a,");
        assert_eq!(crate::config::query_unescape("a%2C+b").unwrap(), "a, b");
    }

    #[test]
    fn empty_host_and_missing_path_are_kept_as_written() {
        let parts = split_url("master://:9090?log=debug").unwrap();
        assert_eq!(parts.authority_host, ":9090");
        assert_eq!(parts.path, "");
        assert_eq!(parts.query, "log=debug");
    }

    #[test]
    fn text_without_scheme_or_slashes_is_malformed() {
        for bad in [
            "not-a-url",
            "1client://x:1/y:2",
            "client:x:1/y:2",
            "://x",
            "a\tb://x",
        ] {
            assert!(
                matches!(split_url(bad), Err(ConfigError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_percent_escapes_are_refused_with_the_part_named() {
        assert_eq!(
            split_url("client://h:1/a%zz:1"),
            Err(ConfigError::BadEscape {
                part: "path",
                text: "/a%zz:1".into()
            })
        );
        assert!(matches!(
            split_url("client://k%4@h:1/a:1"),
            Err(ConfigError::BadEscape {
                part: "username",
                ..
            })
        ));
    }

    #[test]
    fn host_port_pairs_split_like_go() {
        let ok: &[(&str, &str, u16)] = &[
            ("127.0.0.1:80", "127.0.0.1", 80),
            (":10101", "", 10101),
            ("[::1]:10101", "::1", 10101),
            ("[::]:0", "::", 0),
            ("example.com:010101", "example.com", 10101),
            ("h:00", "h", 0),
        ];
        for (text, host, port) in ok {
            assert_eq!(
                split_host_port(text),
                Ok((host.to_string(), *port)),
                "{text}"
            );
        }
        let bad: &[(&str, AddrError)] = &[
            ("nohost", AddrError::MissingPort),
            ("h:", AddrError::MissingPort),
            ("[::1]", AddrError::MissingPort),
            ("h:abc", AddrError::InvalidPort),
            ("h:65536", AddrError::InvalidPort),
            ("h:-1", AddrError::InvalidPort),
            ("h: 80", AddrError::InvalidPort),
        ];
        for (text, want) in bad {
            assert_eq!(split_host_port(text).as_ref(), Err(want), "{text}");
        }
        for text in [
            "::1:80",
            "[::1:80",
            "[nope]:80",
            "[::1]x:80",
            "a b:80",
            "a/b:80",
        ] {
            assert!(
                matches!(split_host_port(text), Err(AddrError::InvalidHost(_))),
                "{text}"
            );
        }
    }
}
