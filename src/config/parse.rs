//! The URL grammar of PROTOCOL.md §1 → [`Config`](super::Config).

use super::{Config, ConfigError, Env};

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
pub fn parse_url(url: &str, env: Env) -> Result<Config, ConfigError> {
    let _ = env;
    Err(ConfigError::Malformed(format!(
        "not implemented yet: {url}"
    )))
}
