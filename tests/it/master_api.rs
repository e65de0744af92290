//! The dashboard call sequence of MASTER_API.md §1 against a real master on loopback,
//! with the timing rules of §4 (instances are a fake program printing CHECK_POINTs).

use std::time::Duration;

use crate::common::master::*;
use serde_json::Value;

const T3: Duration = Duration::from_secs(3);
const T5: Duration = Duration::from_secs(5);

const KEYS: [&str; 17] = [
    "id", "alias", "type", "status", "url", "config", "restart", "meta", "mode", "ping", "pool",
    "tcps", "udps", "tcprx", "tcptx", "udprx", "udptx",
];

fn assert_full_instance(v: &Value) {
    for k in KEYS {
        assert!(v.get(k).is_some(), "instance lacks {k}: {v}");
    }
    assert!(
        v["alias"].is_string() && v["meta"]["tags"].is_object() && v["meta"]["peer"].is_object()
    );
}

#[test]
fn the_dashboard_sequence_works_within_its_time_windows() {
    let (_dir, m) = fake_master("dash");
    let mut ev = m.events();
    let first = ev.next_event(T3).expect("an initial event at once");
    assert_eq!(
        (first["type"].as_str(), first["instance"]["type"].as_str()),
        (Some("initial"), Some(""))
    );

    let created = m.call(
        "POST",
        "/instances",
        Some(r#"{"url":"client://127.0.0.1:10101/127.0.0.1:8080?log=info"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let inst = created.json();
    assert_full_instance(&inst);
    let id = inst["id"].as_str().unwrap().to_string();
    assert_eq!(inst["type"], "client");
    assert!(inst["config"].as_str().unwrap().contains("min=64"));
    ev.wait_for(T3, |e| is_type(e, "create", &id))
        .expect("create event within 3 s");
    ev.wait_for(T3, |e| is_status(e, &id, "running"))
        .expect("running within 3 s");
    let counted = ev
        .wait_for(T3, |e| {
            is_type(e, "update", &id) && e["instance"]["tcprx"].as_u64() > Some(0)
        })
        .expect("counters rise");
    assert_eq!(counted["instance"]["ping"], 3);

    let stopped = m.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"action":"stop"}"#),
    );
    assert_eq!(
        stopped.json()["status"],
        "stopped",
        "a stop answers with the new status"
    );
    ev.wait_for(T3, |e| is_status(e, &id, "stopped"))
        .expect("stopped update within 3 s");
    let listed = m.call("GET", "/instances", None).json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id.as_str() && i["status"] == "stopped"));

    m.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"action":"start"}"#),
    );
    ev.wait_for(T3, |e| is_status(e, &id, "running"))
        .expect("running update within 3 s");

    m.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"action":"restart"}"#),
    );
    ev.wait_for(T5, |e| is_status(e, &id, "stopped"))
        .expect("restart: stopped within 5 s");
    ev.wait_for(T5, |e| is_status(e, &id, "running"))
        .expect("restart: running within 5 s");
    let before = ev
        .wait_for(T3, |e| {
            is_type(e, "update", &id) && e["instance"]["tcprx"].as_u64() > Some(0)
        })
        .unwrap();
    assert!(
        before["instance"]["tcprx"].as_u64().unwrap() > 100,
        "counters are cumulative across restarts"
    );

    let reset = m
        .call(
            "PATCH",
            &format!("/instances/{id}"),
            Some(r#"{"action":"reset"}"#),
        )
        .json();
    assert_eq!(
        (reset["tcprx"].as_u64(), reset["tcptx"].as_u64()),
        (Some(0), Some(0))
    );
    let after = ev
        .wait_for(T3, |e| {
            is_type(e, "update", &id) && e["instance"]["tcprx"].as_u64() > Some(0)
        })
        .unwrap();
    assert!(
        after["instance"]["tcprx"].as_u64().unwrap() <= 300,
        "after a reset counting restarts near zero: {after}"
    );

    let renamed = m
        .call(
            "PATCH",
            &format!("/instances/{id}"),
            Some(r#"{"alias":"web"}"#),
        )
        .json();
    assert_eq!(renamed["alias"], "web");
    ev.wait_for(T3, |e| {
        is_type(e, "update", &id) && e["instance"]["alias"] == "web"
    })
    .expect("rename update");

    let meta = m.call("PATCH", &format!("/instances/{id}"), Some(r#"{"meta":{"peer":{"sid":"s-1","type":"0","alias":null},"tags":{"env":"prod"}},"restart":false}"#)).json();
    assert_eq!(meta["meta"]["peer"]["sid"], "s-1");
    assert_eq!(meta["meta"]["peer"]["alias"], "");
    assert_eq!(meta["meta"]["tags"]["env"], "prod");
    assert_eq!(meta["restart"], false);

    let url = meta["url"].as_str().unwrap().to_string();
    let same = m.call(
        "PUT",
        &format!("/instances/{id}"),
        Some(&format!(r#"{{"url":"{url}"}}"#)),
    );
    assert_eq!(
        (same.status, same.json()["error"].as_str()),
        (409, Some("Instance URL conflict"))
    );
    let put = m.call(
        "PUT",
        &format!("/instances/{id}"),
        Some(r#"{"url":"client://127.0.0.1:10101/127.0.0.1:9090"}"#),
    );
    assert_eq!(put.status, 200);
    assert!(put.json()["url"].as_str().unwrap().contains("9090"));

    let del = m.call("DELETE", &format!("/instances/{id}"), None);
    assert_eq!((del.status, del.body.as_str()), (204, ""));
    ev.wait_for(T3, |e| is_type(e, "delete", &id))
        .expect("delete event within 3 s");
    assert_eq!(m.call("GET", &format!("/instances/{id}"), None).status, 404);
}

#[test]
fn rotating_the_key_closes_streams_and_refuses_the_old_key() {
    let (_dir, m) = fake_master("rotate");
    let mut ev = m.events();
    let reply = m.call(
        "PATCH",
        "/instances/********",
        Some(r#"{"action":"restart"}"#),
    );
    assert_eq!(reply.status, 200);
    let new_key = reply.json()["url"].as_str().unwrap().to_string();
    assert_eq!(new_key.len(), 32);
    assert!(new_key
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(new_key, m.key);
    ev.wait_for(T3, |e| {
        e["type"] == "update" && e["instance"]["id"] == "********"
    })
    .expect("update with the new key");
    let shutdown = ev
        .wait_for(T3, |e| e["type"] == "shutdown")
        .expect("shutdown event");
    assert!(shutdown["instance"].is_null() && shutdown["logs"] == "");
    assert!(
        ev.next_frame(T3).is_none() && ev.ended,
        "the stream ends after shutdown"
    );
    let old = m.call("GET", "/instances", None);
    assert_eq!(
        (old.status, old.json()["error"].as_str()),
        (401, Some("Unauthorized: Invalid API key"))
    );
    let new = request(m.addr, "GET", "/api/v1/instances", Some(&new_key), None);
    assert_eq!(new.status, 200);
}

#[test]
fn errors_carry_gos_statuses_messages_and_cors() {
    let (_dir, m) = fake_master("errors");
    let none = request(m.addr, "GET", "/api/v1/instances", None, None);
    assert_eq!(
        (none.status, none.json()["error"].as_str()),
        (401, Some("Unauthorized: API key required"))
    );
    assert_eq!(none.header("Access-Control-Allow-Origin"), Some("*"));
    let pre = request(m.addr, "OPTIONS", "/api/v1/instances", None, None);
    assert_eq!(pre.status, 200);
    assert_eq!(
        pre.header("Access-Control-Allow-Headers"),
        Some("Content-Type, Authorization, X-API-Key, Cache-Control")
    );
    assert_eq!(
        pre.header("Access-Control-Allow-Methods"),
        Some("GET, PATCH, POST, PUT, DELETE, OPTIONS")
    );
    assert_eq!(
        m.call("GET", "/instances/deadbeef", None).json()["error"],
        "Instance not found"
    );
    assert_eq!(
        m.call(
            "PUT",
            "/instances/********",
            Some(r#"{"url":"client://a:1/b:2"}"#)
        )
        .status,
        403
    );
    assert_eq!(
        m.call("DELETE", "/instances/********", None).json()["error"],
        "Forbidden: API Key"
    );
    assert_eq!(
        m.call("POST", "/instances", Some("{")).json()["error"],
        "Invalid request body"
    );
    assert_eq!(
        m.call("POST", "/instances", Some(r#"{"url":"master://:1/api"}"#))
            .json()["error"],
        "Invalid URL scheme"
    );
    assert_eq!(
        m.call(
            "POST",
            "/instances",
            Some(r#"{"url":"client://h:port/x:1"}"#)
        )
        .json()["error"],
        "Invalid URL format"
    );
    let id = m
        .call(
            "POST",
            "/instances",
            Some(r#"{"url":"client://127.0.0.1:10101/127.0.0.1:8080"}"#),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = m.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"action":"jump"}"#),
    );
    assert_eq!(
        (bad.status, bad.json()["error"].as_str()),
        (400, Some("Invalid action: jump"))
    );
    let long = format!(r#"{{"alias":"{}"}}"#, "a".repeat(257));
    assert_eq!(
        m.call("PATCH", &format!("/instances/{id}"), Some(&long))
            .status,
        400
    );
    let junk = m.call("PATCH", &format!("/instances/{id}"), Some("not json"));
    assert_eq!(
        (junk.status, junk.json()["id"].as_str()),
        (200, Some(id.as_str()))
    );
    assert_eq!(m.call("DELETE", "/instances", None).status, 405);
    assert_eq!(
        m.call("GET", "/instances/", None).json()["error"],
        "Instance ID is required"
    );
}

#[test]
fn info_reports_every_field_with_a_dashboard_compatible_version() {
    let (_dir, m) = fake_master("info");
    let info = m.call("GET", "/info", None).json();
    for k in [
        "mid",
        "alias",
        "os",
        "arch",
        "cpu",
        "mem_total",
        "mem_used",
        "swap_total",
        "swap_used",
        "netrx",
        "nettx",
        "diskr",
        "diskw",
        "sysup",
        "ver",
        "name",
        "uptime",
        "log",
        "tls",
        "crt",
        "key",
    ] {
        assert!(info.get(k).is_some(), "info lacks {k}");
    }
    assert_eq!(info["tls"], "0");
    let ver: Vec<u32> = info["ver"]
        .as_str()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(ver >= vec![1, 10, 0]);
    assert_eq!(info["mid"].as_str().unwrap().len(), 16);
    let renamed = m
        .call("POST", "/info", Some(r#"{"alias":"edge-1"}"#))
        .json();
    assert_eq!(renamed["alias"], "edge-1");
}

#[test]
fn tcping_reports_open_and_closed_ports_and_needs_a_target() {
    let (_dir, m) = fake_master("tcping");
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let ok = m
        .call("GET", &format!("/tcping?target=127.0.0.1:{port}"), None)
        .json();
    assert_eq!(
        (ok["connected"].as_bool(), ok["error"].is_null()),
        (Some(true), true)
    );
    drop(open);
    let closed = m.call("GET", &format!("/tcping?target=[::1]:{port}"), None);
    assert_eq!(closed.status, 200);
    assert_eq!(closed.json()["connected"], false);
    assert!(closed.json()["error"].is_string());
    assert_eq!(m.call("GET", "/tcping", None).status, 400);
}

#[test]
fn docs_and_openapi_are_public_and_metrics_need_the_key() {
    let (_dir, m) = fake_master("docs");
    let spec = request(m.addr, "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(spec.status, 200);
    assert_eq!(spec.json()["servers"][0]["url"], "/api/v1");
    let docs = request(m.addr, "GET", "/api/v1/docs", None, None);
    assert_eq!(docs.status, 200);
    assert!(
        docs.body.contains("<script>")
            && !docs.body.contains("https://")
            && !docs.body.contains("http://")
    );
    assert_eq!(
        request(m.addr, "GET", "/api/v1/metrics", None, None).status,
        401
    );
    let metrics = m.call("GET", "/metrics", None);
    assert!(metrics
        .body
        .contains("nodepass_instances{status=\"running\"} 0"));
    assert!(metrics.body.contains("nodepass_master_uptime_seconds"));
}

#[test]
fn a_real_single_end_forwarder_relays_data_and_its_counters_rise() {
    use std::io::{Read, Write};
    let dir = TempDir::new("real");
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut opts = options(
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_nodepass")),
        &dir.0.join("state"),
    );
    opts.validate_urls = true;
    let m = TestMaster::start(opts);
    let mut ev = m.events();
    let url = format!("client://127.0.0.1:{port}/127.0.0.1:{echo_port}?mode=1");
    let id = m
        .call("POST", "/instances", Some(&format!(r#"{{"url":"{url}"}}"#)))
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ev.wait_for(T3, |e| is_status(e, &id, "running")).unwrap();
    let mut conn = poll(T5, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("forwarder listens");
    conn.set_read_timeout(Some(T5)).unwrap();
    conn.write_all(&[7u8; 1000]).unwrap();
    let mut back = [0u8; 1000];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(back, [7u8; 1000]);
    let up = ev
        .wait_for(Duration::from_secs(12), |e| {
            is_type(e, "update", &id) && e["instance"]["tcprx"].as_u64() >= Some(1000)
        })
        .expect("counters rise");
    assert!(up["instance"]["tcptx"].as_u64().unwrap() >= 1000);
}

#[test]
fn a_restart_answers_once_the_new_child_runs_so_a_get_right_after_shows_running() {
    let (_dir, m) = fake_master("restart-now");
    let created = m.call(
        "POST",
        "/instances",
        Some(r#"{"url":"client://127.0.0.1:10101/127.0.0.1:8080?log=info"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let mut ev = m.events();
    ev.wait_for(T3, |e| {
        is_type(e, "update", &id) && e["instance"]["tcprx"].as_u64() > Some(0)
    })
    .expect("the first child reports");
    let path = format!("/instances/{id}");
    let restarted = m.call("PATCH", &path, Some(r#"{"action":"restart"}"#));
    assert_eq!(restarted.status, 200, "{}", restarted.body);
    assert_eq!(restarted.json()["status"], "running");
    // Readings in the next 400 ms (a dashboard refreshing right after) all show running:
    // nothing of the restart is still to come.
    let window = std::time::Instant::now() + Duration::from_millis(400);
    while std::time::Instant::now() < window {
        assert_eq!(m.call("GET", &path, None).json()["status"], "running");
    }
    let list = m.call("GET", "/instances", None).json();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .cloned();
    assert_eq!(listed.expect("listed")["status"], "running");
    // It really restarted: the stop was announced before the answer.
    ev.wait_for(T3, |e| is_status(e, &id, "stopped"))
        .expect("a stopped update from the restart");
}

/// The process whose command line names `script` (the test's own fake instance).
fn pid_running(script: &std::path::Path) -> Option<u32> {
    let wanted = script.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|arg| arg == wanted)
            .then_some(pid)
    })
}

/// An instance inherits none of the master's connections. monoio's io_uring accept sets no
/// SOCK_CLOEXEC, so a child used to hold copies of the API connections open while it was
/// started (the master's close then sent no FIN until the child exited). The fake instance
/// opens no socket itself: any socket it holds is inherited.
#[test]
fn an_instance_inherits_none_of_the_masters_connections() {
    let (dir, m) = fake_master("noinherit");
    let held = std::net::TcpStream::connect(m.addr).unwrap();
    // Accepted by the master before the instance starts (any request proves it).
    assert_eq!(m.call("GET", "/info", None).status, 200);
    let created = m.call(
        "POST",
        "/instances",
        Some(r#"{"url":"client://127.0.0.1:1/127.0.0.1:2"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let script = dir.0.join("fake-nodepass.sh");
    let pid = poll(T5, || pid_running(&script)).expect("the instance runs");
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("socket:"))
        .collect();
    assert!(
        sockets.is_empty(),
        "the instance holds the master's sockets: {sockets:?}"
    );
    drop(held);
}
