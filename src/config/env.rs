//! The `NP_*` environment variables (PROTOCOL.md §1.2) plus our `NP_WORKERS`, `NP_DRIVER`,
//! `NP_RELAY`, `NP_MASTER_STATE_DIR`, and the standard `SSL_CERT_FILE`, `NO_COLOR` and
//! systemd's `STATE_DIRECTORY`. `reference.rs` documents each one (a test keeps the two
//! lists equal).
//!
//! Read once at startup; nothing outside `config/` reads the environment. An invalid, zero
//! or negative value means the default, as in Go.

use std::path::PathBuf;
use std::time::Duration;

use super::duration::positive_go_duration;

/// Which monoio driver the workers run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, the legacy epoll driver otherwise.
    Auto,
    /// io_uring only (start fails if it is unavailable).
    Uring,
    /// The legacy epoll driver.
    Legacy,
}

/// Process-wide tunables from the environment, with NodePass v1.14.0 defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Env {
    /// `NP_SEMAPHORE_LIMIT`: capacity of signal queues and the master's event queue.
    pub semaphore_limit: usize,
    /// `NP_TCP_DATA_BUF_SIZE`: per-direction copy buffer (also the splice chunk floor).
    pub tcp_data_buf_size: usize,
    /// `NP_UDP_DATA_BUF_SIZE`: largest datagram; longer ones are truncated.
    pub udp_data_buf_size: usize,
    /// `NP_HANDSHAKE_TIMEOUT`.
    pub handshake_timeout: Duration,
    /// `NP_TCP_DIAL_TIMEOUT`.
    pub tcp_dial_timeout: Duration,
    /// `NP_UDP_DIAL_TIMEOUT`.
    pub udp_dial_timeout: Duration,
    /// `NP_UDP_READ_TIMEOUT`: idle expiry of a UDP session.
    pub udp_read_timeout: Duration,
    /// `NP_POOL_GET_TIMEOUT`.
    pub pool_get_timeout: Duration,
    /// `NP_MIN_POOL_INTERVAL`.
    pub min_pool_interval: Duration,
    /// `NP_MAX_POOL_INTERVAL`.
    pub max_pool_interval: Duration,
    /// `NP_REPORT_INTERVAL`: ping, CHECK_POINT and keepalive period.
    pub report_interval: Duration,
    /// `NP_SERVICE_COOLDOWN`: longest wait between restarts (the backoff's cap).
    pub service_cooldown: Duration,
    /// `NP_SHUTDOWN_TIMEOUT`: graceful drain limit.
    pub shutdown_timeout: Duration,
    /// `NP_RELOAD_INTERVAL`: certificate reload and master periodic tasks.
    pub reload_interval: Duration,
    /// `NP_WORKERS`: data-plane worker threads; `None` = the CPUs this process may use.
    pub workers: Option<usize>,
    /// `NP_DRIVER`: `auto`, `uring` or `legacy`.
    pub driver: Driver,
    /// `NP_RELAY` as given (`copy`, `uring-splice`; anything else is the default splice
    /// relay), read by the data plane's `RelayKind::from_env_value`.
    pub relay: Option<String>,
    /// `SSL_CERT_FILE`: a CA bundle added to the system roots for tls=2 (as Go does).
    pub ssl_cert_file: Option<PathBuf>,
    /// `NP_MASTER_STATE_DIR`: the master's state directory (unset or empty: next to the
    /// executable).
    pub master_state_dir: Option<PathBuf>,
    /// `STATE_DIRECTORY` (set by systemd's `StateDirectory=`): its first entry, the master's
    /// state directory when `NP_MASTER_STATE_DIR` is unset.
    pub systemd_state_dir: Option<PathBuf>,
    /// `NO_COLOR` set and not empty: no ANSI colour in log lines.
    pub no_color: bool,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            semaphore_limit: 65536,
            tcp_data_buf_size: 16384,
            udp_data_buf_size: 16384,
            handshake_timeout: Duration::from_secs(5),
            tcp_dial_timeout: Duration::from_secs(5),
            udp_dial_timeout: Duration::from_secs(5),
            udp_read_timeout: Duration::from_secs(30),
            pool_get_timeout: Duration::from_secs(5),
            min_pool_interval: Duration::from_millis(100),
            max_pool_interval: Duration::from_secs(1),
            report_interval: Duration::from_secs(5),
            service_cooldown: Duration::from_secs(3),
            shutdown_timeout: Duration::from_secs(5),
            reload_interval: Duration::from_secs(3600),
            workers: None,
            driver: Driver::Auto,
            relay: None,
            ssl_cert_file: None,
            master_state_dir: None,
            systemd_state_dir: None,
            no_color: false,
        }
    }
}

impl Driver {
    /// `auto`, `uring` or `legacy` (any case); anything else is `None`.
    pub fn from_name(name: &str) -> Option<Driver> {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Driver::Auto),
            "uring" | "io_uring" | "iouring" => Some(Driver::Uring),
            "legacy" | "epoll" => Some(Driver::Legacy),
            _ => None,
        }
    }

    /// The name used in `NP_DRIVER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::Uring => "uring",
            Driver::Legacy => "legacy",
        }
    }
}

impl Env {
    /// The environment of this process (`std::env::vars_os`; names or values that are not
    /// UTF-8 are ignored, except the paths `SSL_CERT_FILE` and `NP_MASTER_STATE_DIR`).
    pub fn from_process() -> Env {
        let mut env = Env::default();
        for (name, value) in std::env::vars_os() {
            let Ok(name) = name.into_string() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => env.apply(&name, &value),
                Err(raw) => env.apply_path(&name, PathBuf::from(raw)),
            }
        }
        env
    }

    /// Read every `NP_*` variable from `vars`; a missing, invalid, zero or negative value
    /// leaves the default. Other names are ignored.
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(vars: I) -> Env {
        let mut env = Env::default();
        for (name, value) in vars {
            env.apply(&name, &value);
        }
        env
    }

    fn apply(&mut self, name: &str, value: &str) {
        let size = |default: usize| positive_int(value).unwrap_or(default);
        let time = |default: Duration| positive_go_duration(value).unwrap_or(default);
        match name {
            "NP_SEMAPHORE_LIMIT" => self.semaphore_limit = size(self.semaphore_limit),
            "NP_TCP_DATA_BUF_SIZE" => self.tcp_data_buf_size = size(self.tcp_data_buf_size),
            "NP_UDP_DATA_BUF_SIZE" => self.udp_data_buf_size = size(self.udp_data_buf_size),
            "NP_HANDSHAKE_TIMEOUT" => self.handshake_timeout = time(self.handshake_timeout),
            "NP_TCP_DIAL_TIMEOUT" => self.tcp_dial_timeout = time(self.tcp_dial_timeout),
            "NP_UDP_DIAL_TIMEOUT" => self.udp_dial_timeout = time(self.udp_dial_timeout),
            "NP_UDP_READ_TIMEOUT" => self.udp_read_timeout = time(self.udp_read_timeout),
            "NP_POOL_GET_TIMEOUT" => self.pool_get_timeout = time(self.pool_get_timeout),
            "NP_MIN_POOL_INTERVAL" => self.min_pool_interval = time(self.min_pool_interval),
            "NP_MAX_POOL_INTERVAL" => self.max_pool_interval = time(self.max_pool_interval),
            "NP_REPORT_INTERVAL" => self.report_interval = time(self.report_interval),
            "NP_SERVICE_COOLDOWN" => self.service_cooldown = time(self.service_cooldown),
            "NP_SHUTDOWN_TIMEOUT" => self.shutdown_timeout = time(self.shutdown_timeout),
            "NP_RELOAD_INTERVAL" => self.reload_interval = time(self.reload_interval),
            "NP_WORKERS" => self.workers = positive_int(value).or(self.workers),
            "NP_DRIVER" => self.driver = Driver::from_name(value).unwrap_or(self.driver),
            "NP_RELAY" => self.relay = Some(value.to_string()),
            "NO_COLOR" => self.no_color = !value.is_empty(),
            _ => self.apply_path(name, PathBuf::from(value)),
        }
    }

    /// The variables that name a path (any bytes allowed).
    fn apply_path(&mut self, name: &str, value: PathBuf) {
        match name {
            "SSL_CERT_FILE" => self.ssl_cert_file = Some(value),
            "NP_MASTER_STATE_DIR" if !value.as_os_str().is_empty() => {
                self.master_state_dir = Some(value)
            }
            // systemd joins several directories with ':'; the first is ours.
            "STATE_DIRECTORY" => {
                use std::os::unix::ffi::OsStrExt;
                let bytes = value.as_os_str().as_bytes();
                let first = bytes.split(|b| *b == b':').next().unwrap_or_default();
                if !first.is_empty() {
                    let first = std::ffi::OsStr::from_bytes(first);
                    self.systemd_state_dir = Some(PathBuf::from(first));
                }
            }
            "NO_COLOR" => self.no_color = !value.as_os_str().is_empty(),
            _ => {}
        }
    }
}

/// Go's `strconv.Atoi` (optional sign, decimal digits, no spaces), kept only when > 0.
fn positive_int(text: &str) -> Option<usize> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .and_then(|v| usize::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn no_variables_give_the_v1_14_defaults() {
        let e = env(&[("PATH", "/bin"), ("NP_UNKNOWN", "1")]);
        assert_eq!(e, Env::default());
        assert_eq!(e.udp_data_buf_size, 16384);
        assert_eq!(e.reload_interval, Duration::from_secs(3600));
    }

    #[test]
    fn every_variable_is_read_when_valid() {
        let e = env(&[
            ("NP_SEMAPHORE_LIMIT", "10"),
            ("NP_TCP_DATA_BUF_SIZE", "65536"),
            ("NP_UDP_DATA_BUF_SIZE", "+2048"),
            ("NP_HANDSHAKE_TIMEOUT", "1s"),
            ("NP_TCP_DIAL_TIMEOUT", "2s"),
            ("NP_UDP_DIAL_TIMEOUT", "3s"),
            ("NP_UDP_READ_TIMEOUT", "1m30s"),
            ("NP_POOL_GET_TIMEOUT", "4s"),
            ("NP_MIN_POOL_INTERVAL", "50ms"),
            ("NP_MAX_POOL_INTERVAL", "2s"),
            ("NP_REPORT_INTERVAL", "1.5s"),
            ("NP_SERVICE_COOLDOWN", "250ms"),
            ("NP_SHUTDOWN_TIMEOUT", "10s"),
            ("NP_RELOAD_INTERVAL", "2h"),
            ("NP_WORKERS", "3"),
            ("NP_DRIVER", "Legacy"),
            ("NP_RELAY", "copy"),
            ("SSL_CERT_FILE", "/etc/ca.pem"),
            ("NP_MASTER_STATE_DIR", "/var/lib/np"),
            ("STATE_DIRECTORY", "/var/lib/nodepass:/var/lib/other"),
            ("NO_COLOR", "1"),
        ]);
        let want = Env {
            semaphore_limit: 10,
            tcp_data_buf_size: 65536,
            udp_data_buf_size: 2048,
            handshake_timeout: Duration::from_secs(1),
            tcp_dial_timeout: Duration::from_secs(2),
            udp_dial_timeout: Duration::from_secs(3),
            udp_read_timeout: Duration::from_secs(90),
            pool_get_timeout: Duration::from_secs(4),
            min_pool_interval: Duration::from_millis(50),
            max_pool_interval: Duration::from_secs(2),
            report_interval: Duration::from_millis(1500),
            service_cooldown: Duration::from_millis(250),
            shutdown_timeout: Duration::from_secs(10),
            reload_interval: Duration::from_secs(7200),
            workers: Some(3),
            driver: Driver::Legacy,
            relay: Some("copy".into()),
            ssl_cert_file: Some("/etc/ca.pem".into()),
            master_state_dir: Some("/var/lib/np".into()),
            systemd_state_dir: Some("/var/lib/nodepass".into()),
            no_color: true,
        };
        assert_eq!(e, want);
        assert_eq!(env(&[("NP_MASTER_STATE_DIR", "")]).master_state_dir, None);
        assert_eq!(env(&[("STATE_DIRECTORY", "")]).systemd_state_dir, None);
        assert!(
            !env(&[("NO_COLOR", "")]).no_color,
            "an empty NO_COLOR is unset"
        );
    }

    #[test]
    fn invalid_zero_or_negative_values_keep_the_default() {
        let bad = ["", "0", "-5", "abc", " 5", "1.5", "0s", "-1s", "5d"];
        for value in bad {
            let e = env(&[
                ("NP_SEMAPHORE_LIMIT", value),
                ("NP_TCP_DATA_BUF_SIZE", value),
                ("NP_HANDSHAKE_TIMEOUT", value),
                ("NP_RELOAD_INTERVAL", value),
                ("NP_WORKERS", value),
                ("NP_DRIVER", value),
            ]);
            assert_eq!(e, Env::default(), "value {value:?}");
        }
    }

    #[test]
    fn a_bare_number_is_not_a_duration() {
        assert_eq!(env(&[("NP_REPORT_INTERVAL", "7")]), Env::default());
    }

    #[test]
    fn driver_names_are_recognised_in_any_case() {
        assert_eq!(env(&[("NP_DRIVER", "uring")]).driver, Driver::Uring);
        assert_eq!(env(&[("NP_DRIVER", "LEGACY")]).driver, Driver::Legacy);
        assert_eq!(env(&[("NP_DRIVER", "auto")]).driver, Driver::Auto);
        assert_eq!(env(&[("NP_DRIVER", "kqueue")]).driver, Driver::Auto);
    }
}
