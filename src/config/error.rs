//! Why a URL or environment was refused.

/// A configuration error; `main` prints it and exits 64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The text is not a URL at all.
    Malformed(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Malformed(why) => write!(f, "malformed URL: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}
