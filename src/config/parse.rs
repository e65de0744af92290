//! The URL grammar of PROTOCOL.md §1 → [`Config`](super::Config).

use super::go_query::parse_query;
use super::params::Query;
use super::url_parts::{split_host_port, split_url, AddrError};
use super::{Config, ConfigError, Env, HostPort, Params, Scheme};

/// The master's API prefix when the URL has no path.
pub const DEFAULT_MASTER_PREFIX: &str = "/api";

/// The key NodePass derives when the URL has no username: lowercase hex of FNV-1a-32
/// over the port string.
pub fn derive_key(port: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in port.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// Parse one command-line URL with the given environment.
///
/// `scheme://[key[:ignored]@]host:port/target[,target…][?query]`; for `master://` the path is
/// the API prefix instead of targets. Nothing is resolved or bound here.
pub fn parse_url(url: &str, env: Env) -> Result<Config, ConfigError> {
    let parts = split_url(url)?;
    let scheme = match parts.scheme.as_str() {
        "server" => Scheme::Server,
        "client" => Scheme::Client,
        "master" => Scheme::Master,
        other => return Err(ConfigError::UnknownScheme(other.to_string())),
    };
    let tunnel = parse_tunnel(&parts.authority_host)?;
    let key = if parts.username.is_empty() {
        derive_key(port_text(&parts.authority_host))
    } else {
        parts.username.clone()
    };
    let (targets, master_prefix) = if scheme == Scheme::Master {
        (Vec::new(), master_prefix(&parts.path))
    } else {
        let targets = parse_targets(&parts.path)?;
        check_loop(&tunnel, &targets)?;
        (targets, String::new())
    };
    Ok(Config {
        scheme,
        key,
        tunnel,
        targets,
        master_prefix,
        params: {
            let query = Query::parse(&parts.query);
            super::params::check_auth(&query)?;
            Params::from_query(&query)
        },
        env,
        raw_log: raw_log(&parts.query),
    })
}

/// The first `log=` value as written, decoded as Go's `Query()` does ("" when absent).
fn raw_log(query: &str) -> String {
    parse_query(query)
        .into_iter()
        .find(|(k, _)| k == "log")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn parse_tunnel(addr: &str) -> Result<HostPort, ConfigError> {
    if addr.is_empty() {
        return Err(ConfigError::MissingTunnelAddress);
    }
    match split_host_port(addr) {
        Ok((host, port)) => Ok(HostPort { host, port }),
        Err(AddrError::MissingPort) => Err(ConfigError::MissingTunnelPort(addr.to_string())),
        Err(AddrError::InvalidPort) => Err(ConfigError::InvalidTunnelPort(addr.to_string())),
        Err(AddrError::InvalidHost(why)) => Err(ConfigError::InvalidTunnelHost {
            addr: addr.to_string(),
            why,
        }),
    }
}

/// The port string exactly as written (Go's `URL.Port()`), the input of the derived key.
fn port_text(addr: &str) -> &str {
    let after_bracket = addr.rfind(']').map_or(addr, |i| &addr[i..]);
    after_bracket
        .rfind(':')
        .map_or("", |i| &after_bracket[i + 1..])
}

/// The comma list in the path: entries trimmed, empty ones skipped, at least one required.
fn parse_targets(path: &str) -> Result<Vec<HostPort>, ConfigError> {
    let list = path.strip_prefix('/').unwrap_or(path);
    let mut targets = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, port) = split_host_port(entry).map_err(|e| match e {
            AddrError::MissingPort => ConfigError::MissingTargetPort(entry.to_string()),
            AddrError::InvalidPort => ConfigError::InvalidTargetPort(entry.to_string()),
            AddrError::InvalidHost(why) => ConfigError::InvalidTargetHost {
                entry: entry.to_string(),
                why,
            },
        })?;
        targets.push(HostPort { host, port });
    }
    if targets.is_empty() {
        return Err(ConfigError::MissingTarget);
    }
    Ok(targets)
}

/// Go refuses a target on the tunnel port when the target is loopback or the tunnel listens
/// on every address: the tunnel would forward into itself. An empty tunnel host means every
/// address here (Go's nil IP slips through; the loop is just as real).
fn check_loop(tunnel: &HostPort, targets: &[HostPort]) -> Result<(), ConfigError> {
    let tunnel_everywhere =
        tunnel.host.is_empty() || tunnel.ip().is_some_and(|ip| ip.is_unspecified());
    for target in targets.iter().filter(|t| t.port == tunnel.port) {
        if tunnel_everywhere || is_loopback_host(&target.host) {
            return Err(ConfigError::PortConflict {
                port: tunnel.port,
                target: target.to_addr_string(),
            });
        }
    }
    Ok(())
}

/// A loopback IP literal (IPv4-mapped included) or the name `localhost`.
fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The path without trailing `/`, or `/api` when nothing is left.
fn master_prefix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        DEFAULT_MASTER_PREFIX.to_string()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_match_the_observed_go_values() {
        assert_eq!(derive_key("10101"), "e68be2b4");
        assert_eq!(derive_key("10201"), "48109c45");
        assert_eq!(derive_key(""), "811c9dc5");
    }

    #[test]
    fn the_port_string_is_taken_as_written() {
        assert_eq!(port_text("h:010101"), "010101");
        assert_eq!(port_text("[::1]:80"), "80");
        assert_eq!(port_text(":9"), "9");
    }

    #[test]
    fn master_prefix_defaults_to_api_and_drops_trailing_slashes() {
        assert_eq!(master_prefix(""), "/api");
        assert_eq!(master_prefix("/"), "/api");
        assert_eq!(master_prefix("/x/y//"), "/x/y");
    }
}
