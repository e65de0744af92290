//! Why a URL was refused; each message names the problem and how to fix it.

const EXAMPLE: &str = "e.g. client://127.0.0.1:1080/127.0.0.1:8080";

/// A configuration error; `main` prints it and exits 64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The text is not a URL at all (no `scheme://`), or has a control character.
    Malformed(String),
    /// The scheme is not `server`, `client` or `master`.
    UnknownScheme(String),
    /// A `%` escape in the username or path is not `%` + two hex digits.
    BadEscape {
        /// Which part of the URL (`username`, `path`).
        part: &'static str,
        /// The text as written.
        text: String,
    },
    /// Nothing between `scheme://` and the path.
    MissingTunnelAddress,
    /// The tunnel address has no `:port` (holds the address as written).
    MissingTunnelPort(String),
    /// The tunnel port is not a number in 0..=65535 (holds the address as written).
    InvalidTunnelPort(String),
    /// The tunnel host is not a valid name or IP literal.
    InvalidTunnelHost {
        /// The address as written.
        addr: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A server or client URL lists no target.
    MissingTarget,
    /// A target entry has no `:port` (holds the entry).
    MissingTargetPort(String),
    /// A target port is not a number in 0..=65535 (holds the entry).
    InvalidTargetPort(String),
    /// A target host is not a valid name or IP literal.
    InvalidTargetHost {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A target would loop back onto the tunnel port (NodePass refuses this too).
    PortConflict {
        /// The tunnel port.
        port: u16,
        /// The conflicting target, `host:port`.
        target: String,
    },
    /// One of our own parameters (not Go's, which fall back silently) has a value it
    /// does not take.
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The value as written.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Malformed(why) => write!(
                f,
                "malformed URL: {why}: write scheme://[key@]host:port/target[?query], {EXAMPLE}"
            ),
            ConfigError::UnknownScheme(s) => write!(
                f,
                "unknown scheme \"{s}\": use server://, client:// or master://, {EXAMPLE}"
            ),
            ConfigError::BadEscape { part, text } => write!(
                f,
                "invalid percent-escape in URL {part} \"{text}\": write % followed by two hex digits, e.g. %2C for a comma"
            ),
            ConfigError::MissingTunnelAddress => write!(
                f,
                "missing tunnel address: write host:port (or :port for all addresses) after the scheme, {EXAMPLE}"
            ),
            ConfigError::MissingTunnelPort(addr) => write!(
                f,
                "missing port in tunnel address \"{addr}\": write host:port, {EXAMPLE}"
            ),
            ConfigError::InvalidTunnelPort(addr) => write!(
                f,
                "invalid port in tunnel address \"{addr}\": the port must be a number from 0 to 65535, {EXAMPLE}"
            ),
            ConfigError::InvalidTunnelHost { addr, why } => write!(
                f,
                "invalid host in tunnel address \"{addr}\": {why}; write a hostname, an IPv4 address or [IPv6], {EXAMPLE}"
            ),
            ConfigError::MissingTarget => write!(
                f,
                "no target address: write one or more host:port after the tunnel address, separated by commas, {EXAMPLE}"
            ),
            ConfigError::MissingTargetPort(entry) => write!(
                f,
                "missing port in target address \"{entry}\": write host:port, {EXAMPLE}"
            ),
            ConfigError::InvalidTargetPort(entry) => write!(
                f,
                "invalid port in target address \"{entry}\": the port must be a number from 0 to 65535, {EXAMPLE}"
            ),
            ConfigError::InvalidTargetHost { entry, why } => write!(
                f,
                "invalid host in target address \"{entry}\": {why}; write a hostname, an IPv4 address or [IPv6], {EXAMPLE}"
            ),
            ConfigError::PortConflict { port, target } => write!(
                f,
                "tunnel port {port} conflicts with target address {target}: traffic would loop back into the tunnel; use a different port for the tunnel or the target"
            ),
            ConfigError::InvalidParameter {
                name,
                value,
                expected,
            } => write!(f, "invalid {name}={value}: {name} takes {expected}"),
        }
    }
}

impl std::error::Error for ConfigError {}
