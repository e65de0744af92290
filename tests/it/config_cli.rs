//! The `nodepass` binary's command line: help, version, usage errors and bad URLs (exit 64).

use std::time::Duration;

use crate::common::cli::{run_nodepass, Finished};

const LIMIT: Duration = Duration::from_secs(10);

fn run(args: &[&str]) -> Finished {
    run_nodepass(args, &[], LIMIT)
}

const PARAMS: [&str; 18] = [
    "log", "tls", "crt", "key", "dns", "sni", "min", "max", "mode", "type", "dial", "read", "rate",
    "slot", "proxy", "block", "notcp", "noudp",
];

const VARS: [&str; 16] = [
    "NP_SEMAPHORE_LIMIT",
    "NP_TCP_DATA_BUF_SIZE",
    "NP_UDP_DATA_BUF_SIZE",
    "NP_HANDSHAKE_TIMEOUT",
    "NP_TCP_DIAL_TIMEOUT",
    "NP_UDP_DIAL_TIMEOUT",
    "NP_UDP_READ_TIMEOUT",
    "NP_POOL_GET_TIMEOUT",
    "NP_MIN_POOL_INTERVAL",
    "NP_MAX_POOL_INTERVAL",
    "NP_REPORT_INTERVAL",
    "NP_SERVICE_COOLDOWN",
    "NP_SHUTDOWN_TIMEOUT",
    "NP_RELOAD_INTERVAL",
    "NP_WORKERS",
    "NP_DRIVER",
];

#[test]
fn help_lists_every_mode_parameter_and_variable_and_exits_zero() {
    for flag in ["--help", "-h"] {
        let out = run(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", out.stderr);
        for mode in ["server://", "client://", "master://"] {
            assert!(out.stdout.contains(mode), "{flag} lacks {mode}");
        }
        for name in PARAMS {
            // Each parameter has its own row: two spaces, the name, then its columns.
            assert!(
                out.stdout.contains(&format!("\n  {name} ")),
                "{flag} lacks {name}"
            );
        }
        for var in VARS {
            assert!(out.stdout.contains(var), "{flag} lacks {var}");
        }
        assert!(
            out.stdout.contains("65536") && out.stdout.contains("5m0s"),
            "defaults shown"
        );
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn version_prints_the_crate_version_and_exits_zero() {
    for flag in ["--version", "-V"] {
        let out = run(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            out.stdout,
            format!("nodepass {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn no_argument_prints_usage_to_stderr_and_exits_64() {
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        out.stderr.contains("Usage: nodepass <URL>"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn two_arguments_print_usage_to_stderr_and_exit_64() {
    for args in [
        &["server://:10101/127.0.0.1:8080", "extra"][..],
        &["--help", "--version"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(out.stderr.contains("Usage: nodepass <URL>"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn each_bad_url_exits_64_with_its_specific_message_and_starts_nothing() {
    let table = [
        (
            "client://nohost",
            "missing port in tunnel address \"nohost\"",
        ),
        ("ftp://x:1/y:2", "unknown scheme \"ftp\""),
        (
            "server://:10101/127.0.0.1:10101",
            "tunnel port 10101 conflicts with target address 127.0.0.1:10101",
        ),
        (
            "client://127.0.0.1:abc/1.1.1.1:80",
            "invalid port in tunnel address \"127.0.0.1:abc\"",
        ),
        ("client://127.0.0.1:1080/", "no target address"),
        ("client://127.0.0.1:1080", "no target address"),
        (
            "client://127.0.0.1:1080/host-without-port",
            "missing port in target address \"host-without-port\"",
        ),
        (
            "client://127.0.0.1:1080/a:1,b:99999",
            "invalid port in target address \"b:99999\"",
        ),
        ("client:///1.1.1.1:80", "missing tunnel address"),
        ("client://h:1/a%zz:1", "invalid percent-escape in URL path"),
        (
            "client://a b:1/x:2",
            "invalid host in tunnel address \"a b:1\"",
        ),
        ("not-a-url", "malformed URL"),
        ("", "malformed URL"),
    ];
    for (url, message) in table {
        let out = run(&[url]);
        assert_eq!(out.status.code(), Some(64), "{url}: {}", out.stderr);
        assert!(out.stderr.starts_with("Error: "), "{url}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{url}: {}", out.stderr);
        assert!(
            out.stderr.contains("nodepass --help"),
            "{url}: hint missing"
        );
        assert!(out.stdout.is_empty(), "{url}: printed {}", out.stdout);
    }
}

#[test]
fn bad_environment_values_do_not_turn_a_bad_url_into_anything_else() {
    let env = [
        ("NP_WORKERS", "-3"),
        ("NP_DRIVER", "bogus"),
        ("NP_REPORT_INTERVAL", "x"),
    ];
    let out = run_nodepass(&["client://nohost"], &env, LIMIT);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stderr.contains("missing port in tunnel address"));
}
