//! URL tables: good URLs → the expected `Config` fields, bad URLs → the exact `ConfigError`.

use std::time::Duration;

use super::*;

fn parse(url: &str) -> Result<Config, ConfigError> {
    parse_url(url, Env::default())
}

fn hp(host: &str, port: u16) -> HostPort {
    HostPort {
        host: host.to_string(),
        port,
    }
}

#[test]
fn good_urls_give_scheme_key_tunnel_and_targets() {
    let table: &[(&str, Scheme, &str, HostPort, Vec<HostPort>)] = &[
        (
            "server://:10101/127.0.0.1:8080",
            Scheme::Server,
            "e68be2b4",
            hp("", 10101),
            vec![hp("127.0.0.1", 8080)],
        ),
        (
            "client://127.0.0.1:10201/127.0.0.1:8080",
            Scheme::Client,
            "48109c45",
            hp("127.0.0.1", 10201),
            vec![hp("127.0.0.1", 8080)],
        ),
        (
            "client://secret:pass@example.com:1080/a.example:80, b.example:81 ,,",
            Scheme::Client,
            "secret",
            hp("example.com", 1080),
            vec![hp("a.example", 80), hp("b.example", 81)],
        ),
        (
            "SERVER://k%40y@[::1]:10101/[::1]:8080,[2001:db8::1]:53",
            Scheme::Server,
            "k@y",
            hp("::1", 10101),
            vec![hp("::1", 8080), hp("2001:db8::1", 53)],
        ),
        (
            "server://[::]:10101/1.2.3.4:8080%2C5.6.7.8:9090",
            Scheme::Server,
            "e68be2b4",
            hp("::", 10101),
            vec![hp("1.2.3.4", 8080), hp("5.6.7.8", 9090)],
        ),
        (
            "client://:010101/:8080?mode=1",
            Scheme::Client,
            &derive_key("010101"),
            hp("", 10101),
            vec![hp("", 8080)],
        ),
    ];
    for (url, scheme, key, tunnel, targets) in table {
        let cfg = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(cfg.scheme, *scheme, "{url}");
        assert_eq!(cfg.key, *key, "{url}");
        assert_eq!(cfg.tunnel, *tunnel, "{url}");
        assert_eq!(cfg.targets, *targets, "{url}");
        assert_eq!(cfg.master_prefix, "", "{url}");
    }
}

#[test]
fn a_username_only_url_derives_the_key_from_the_port_when_the_username_is_empty() {
    // `:pw@` has an empty username, so Go falls back to the port hash ("1" here).
    assert_eq!(parse("client://:pw@h:1/x:2").unwrap().key, derive_key("1"));
}

#[test]
fn master_urls_take_the_path_as_api_prefix_and_have_no_targets() {
    let table = [
        ("master://:9090", hp("", 9090), "/api"),
        ("master://:9090/", hp("", 9090), "/api"),
        (
            "master://0.0.0.0:9090/admin/?tls=1",
            hp("0.0.0.0", 9090),
            "/admin",
        ),
        ("master://[::1]:9090/x/y", hp("::1", 9090), "/x/y"),
    ];
    for (url, tunnel, prefix) in table {
        let cfg = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(cfg.scheme, Scheme::Master);
        assert_eq!(cfg.tunnel, tunnel, "{url}");
        assert_eq!(cfg.master_prefix, prefix, "{url}");
        assert!(cfg.targets.is_empty());
    }
    assert_eq!(
        parse("master://:9090?tls=1").unwrap().params.tls,
        TlsMode::SelfSigned
    );
}

#[test]
fn bad_urls_are_refused_with_the_specific_error() {
    let table: Vec<(&str, ConfigError)> = vec![
        ("ftp://x:1/y:2", ConfigError::UnknownScheme("ftp".into())),
        ("http://x:1/y:2", ConfigError::UnknownScheme("http".into())),
        (
            "client://nohost",
            ConfigError::MissingTunnelPort("nohost".into()),
        ),
        (
            "client://nohost/1.1.1.1:80",
            ConfigError::MissingTunnelPort("nohost".into()),
        ),
        (
            "client://h:/1.1.1.1:80",
            ConfigError::MissingTunnelPort("h:".into()),
        ),
        (
            "client://[::1]/1.1.1.1:80",
            ConfigError::MissingTunnelPort("[::1]".into()),
        ),
        ("client:///1.1.1.1:80", ConfigError::MissingTunnelAddress),
        (
            "client://key@/1.1.1.1:80",
            ConfigError::MissingTunnelAddress,
        ),
        (
            "client://127.0.0.1:abc/1.1.1.1:80",
            ConfigError::InvalidTunnelPort("127.0.0.1:abc".into()),
        ),
        (
            "client://127.0.0.1:70000/1.1.1.1:80",
            ConfigError::InvalidTunnelPort("127.0.0.1:70000".into()),
        ),
        ("client://127.0.0.1:1080", ConfigError::MissingTarget),
        ("client://127.0.0.1:1080/", ConfigError::MissingTarget),
        ("client://127.0.0.1:1080/ , ,", ConfigError::MissingTarget),
        (
            "client://127.0.0.1:1080/host-without-port",
            ConfigError::MissingTargetPort("host-without-port".into()),
        ),
        (
            "client://127.0.0.1:1080/a:1,b",
            ConfigError::MissingTargetPort("b".into()),
        ),
        (
            "client://127.0.0.1:1080/a:http",
            ConfigError::InvalidTargetPort("a:http".into()),
        ),
        (
            "client://127.0.0.1:1080/a:65536",
            ConfigError::InvalidTargetPort("a:65536".into()),
        ),
        (
            "server://:10101/127.0.0.1:10101",
            ConfigError::PortConflict {
                port: 10101,
                target: "127.0.0.1:10101".into(),
            },
        ),
        (
            "server://:10101/8.8.8.8:10101",
            ConfigError::PortConflict {
                port: 10101,
                target: "8.8.8.8:10101".into(),
            },
        ),
        (
            "server://0.0.0.0:10101/8.8.8.8:10101",
            ConfigError::PortConflict {
                port: 10101,
                target: "8.8.8.8:10101".into(),
            },
        ),
        (
            "server://[::]:80/[2001:db8::1]:80",
            ConfigError::PortConflict {
                port: 80,
                target: "[2001:db8::1]:80".into(),
            },
        ),
        (
            "client://10.0.0.1:80/[::1]:80",
            ConfigError::PortConflict {
                port: 80,
                target: "[::1]:80".into(),
            },
        ),
        (
            "client://10.0.0.1:80/localhost:80",
            ConfigError::PortConflict {
                port: 80,
                target: "localhost:80".into(),
            },
        ),
        (
            "client://10.0.0.1:80/[::ffff:127.0.0.1]:80",
            ConfigError::PortConflict {
                port: 80,
                target: "[::ffff:127.0.0.1]:80".into(),
            },
        ),
    ];
    for (url, want) in table {
        assert_eq!(parse(url), Err(want), "{url}");
    }
}

#[test]
fn structurally_broken_urls_are_malformed_or_bad_hosts() {
    for url in ["not-a-url", "", "client:127.0.0.1:1/x:2", "client//h:1/x:2"] {
        assert!(
            matches!(parse(url), Err(ConfigError::Malformed(_))),
            "{url}"
        );
    }
    for url in [
        "client://a b:1/x:2",
        "client://a:b:1/x:2",
        "client://[::1:1/x:2",
    ] {
        assert!(
            matches!(parse(url), Err(ConfigError::InvalidTunnelHost { .. })),
            "{url}"
        );
    }
    for url in ["client://h:1/a b:2", "client://h:1/::1:80"] {
        assert!(
            matches!(parse(url), Err(ConfigError::InvalidTargetHost { .. })),
            "{url}"
        );
    }
    assert!(matches!(
        parse("client://h:1/a%G0:2"),
        Err(ConfigError::BadEscape { part: "path", .. })
    ));
}

#[test]
fn a_target_on_the_tunnel_port_is_fine_when_neither_end_loops() {
    let cfg = parse("client://10.0.0.1:80/10.0.0.2:80").unwrap();
    assert_eq!(cfg.targets, vec![hp("10.0.0.2", 80)]);
    assert!(parse("server://127.0.0.1:80/127.0.0.1:81").is_ok());
}

#[test]
fn query_parameters_reach_the_config() {
    let cfg = parse("client://h:1/x:2?slot=abc&max=0&rate=1.5&dns=0&log=bogus&mode=x&dial=auto&proxy=2&block=123&read=1h")
        .unwrap();
    let p = &cfg.params;
    assert_eq!((p.slot, p.max, p.rate_mbps), (0, 0, 0));
    assert_eq!(p.dns_ttl, Duration::ZERO);
    assert_eq!(p.log, LogLevel::Info);
    assert_eq!(p.mode, RunMode::Auto);
    assert_eq!(p.dial, None);
    assert_eq!(p.proxy, ProxyProtocol::V2);
    assert_eq!(
        p.block,
        BlockSet {
            socks: true,
            http: true,
            tls: true
        }
    );
    assert_eq!(p.read_timeout, Duration::from_secs(3600));
}

#[test]
fn the_environment_is_carried_into_the_config() {
    let env = Env::from_vars([("NP_WORKERS".to_string(), "2".to_string())]);
    let cfg = parse_url("server://:1/x:2", env.clone()).unwrap();
    assert_eq!(cfg.env, env);
}

#[test]
fn the_raw_log_value_is_kept_as_written_even_when_it_is_not_a_level() {
    let cfg = parse_url(
        "master://:9090/api?tls=1&log=Loud%21&log=info",
        Env::default(),
    )
    .unwrap();
    assert_eq!(cfg.raw_log, "Loud!");
    assert_eq!(cfg.params.log, LogLevel::Info);
    let cfg = parse_url("master://:9090", Env::default()).unwrap();
    assert_eq!(cfg.raw_log, "");
}

#[test]
fn started_lines_mirror_go_for_server_client_and_master() {
    let server = parse("server://:10101/127.0.0.1:8080,[::1]:9090?tls=1").unwrap();
    assert_eq!(
        server.started_line(),
        "Server started: server://****@:10101/127.0.0.1:8080,[::1]:9090?dns=5m0s&max=1024&mode=0\
         &type=0&dial=auto&read=0s&rate=0&slot=65536&proxy=0&block=0&notcp=0&noudp=0"
    );
    let client = parse("client://k@127.0.0.1:1080/127.0.0.1:8080?mode=2&dns=1h&read=300ms&dial=10.0.0.1&rate=5&block=31&notcp=1&min=3")
        .unwrap();
    assert_eq!(
        client.started_line(),
        "Client started: client://****@127.0.0.1:1080/127.0.0.1:8080?dns=1h0m0s&sni=none&min=3&mode=2\
         &dial=10.0.0.1&read=300ms&rate=5&slot=65536&proxy=0&block=13&notcp=1&noudp=0"
    );
    assert!(client
        .restart_line()
        .starts_with("Client restart: client://****@127.0.0.1:1080/"));
    let named = parse("client://tunnel.example:1080/x:1?sni=s+n").unwrap();
    assert!(named.canonical_query().contains("&sni=s n&"));
    let named = parse("client://tunnel.example:1080/x:1").unwrap();
    assert!(named.canonical_query().contains("&sni=tunnel.example&"));
    let master = parse("master://:9090/api/").unwrap();
    assert_eq!(master.started_line(), "Master started: :9090/api/v1");
    assert_eq!(master.canonical_query(), "log=info&tls=0");
}

#[test]
fn full_urls_parse_back_to_the_same_settings() {
    let urls = [
        "server://k%2Cy@:10101/127.0.0.1:8080,[::1]:9090?tls=2&crt=/a%20b.pem&key=/k.pem&log=debug&max=9&proxy=2",
        "client://127.0.0.1:1080/a.example:80?sni=s%26n&mode=1&dns=90s&slot=abc&noudp=1&log=event",
        "server://[::1]:1/x:2?type=1&read=2m&dial=::2",
        "client://k@127.0.0.1:1/x:2?mode=2&auth=strict",
        "master://:9090/admin?tls=1&log=warn",
        // A prefix that needs escaping: `%00`, `?`, `#`, `%`, a space, non-ASCII.
        "master://:9090/x%00y%3Fz%23%25%20%C3%A9/a@b:c?log=warn",
    ];
    for url in urls {
        let cfg = parse(url).unwrap();
        let again = parse(&cfg.full_url()).unwrap_or_else(|e| panic!("{}: {e}", cfg.full_url()));
        assert_eq!(again.key, cfg.key, "{url}");
        assert_eq!(again.tunnel, cfg.tunnel, "{url}");
        assert_eq!(again.targets, cfg.targets, "{url}");
        assert_eq!(again.master_prefix, cfg.master_prefix, "{url}");
        assert_eq!(again.canonical_query(), cfg.canonical_query(), "{url}");
        assert_eq!(again.params.log, cfg.params.log, "{url}");
        assert_eq!(again.params.auth, cfg.params.auth, "{url}");
        if cfg.scheme != Scheme::Client {
            assert_eq!(again.params.tls, cfg.params.tls, "{url}");
            assert_eq!(again.params.crt, cfg.params.crt, "{url}");
        }
    }
}

#[test]
fn error_messages_name_the_problem_and_the_fix() {
    let msg = ConfigError::MissingTunnelPort("nohost".into()).to_string();
    assert_eq!(
        msg,
        "missing port in tunnel address \"nohost\": write host:port, e.g. client://127.0.0.1:1080/127.0.0.1:8080"
    );
    let msg = ConfigError::PortConflict {
        port: 10101,
        target: "127.0.0.1:10101".into(),
    }
    .to_string();
    assert!(msg.starts_with("tunnel port 10101 conflicts with target address 127.0.0.1:10101"));
}

#[test]
fn auth_is_auto_unless_strict_and_a_typo_is_an_error() {
    assert_eq!(
        parse("server://:1/x:2").unwrap().params.auth,
        AuthPolicy::Auto
    );
    let strict = parse("server://k@:1/x:2?auth=strict").unwrap();
    assert_eq!(strict.params.auth, AuthPolicy::Strict);
    assert!(strict.started_line().ends_with("&noudp=0&auth=strict"));
    assert!(!parse("server://:1/x:2?auth=auto")
        .unwrap()
        .started_line()
        .contains("auth"));
    let err = parse("client://k@h:1/x:2?auth=strcit").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid auth=strcit: auth takes auto or strict"
    );
}

#[test]
fn masked_urls_hide_the_key_and_keep_the_rest() {
    let table = [
        (
            "server://secret@:10101/127.0.0.1:8080?tls=1",
            "server://****@:10101/127.0.0.1:8080?tls=1",
        ),
        ("client://k@[::1]:1/a@b:2", "client://****@[::1]:1/a@b:2"),
        (
            "client://127.0.0.1:1080/x:1?a=b@c",
            "client://127.0.0.1:1080/x:1?a=b@c",
        ),
        ("client://@h:1/x:1", "client://@h:1/x:1"),
        ("not a url", "not a url"),
    ];
    for (url, shown) in table {
        assert_eq!(masked_url(url), shown, "{url}");
    }
}
