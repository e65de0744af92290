//! What an operator sees: plain log lines off a terminal or with `NO_COLOR`, colour on a
//! terminal, Go's coloured lines in the master's `log` events, the INFO line of a client
//! that auto mode made a local forwarder, and the master's root redirecting to its docs.

use std::process::Command;
use std::time::Duration;

use crate::common::master::*;
use crate::common::{echo_tcp, free_port, NodepassProcess, STEP};

const T5: Duration = Duration::from_secs(5);

#[test]
fn log_lines_through_a_pipe_carry_no_ansi_escapes() {
    for envs in [&[][..], &[("NO_COLOR", "1")][..]] {
        let url = format!("client://127.0.0.1:{}/127.0.0.1:9?mode=1", free_port());
        let mut np = NodepassProcess::start(&url, envs);
        let line = np.wait_for_line("Listening on", STEP).expect("listens");
        assert!(line.contains("  INFO  Listening on"), "{line:?}");
        np.take_output();
        assert!(
            np.seen.iter().all(|l| !l.contains('\x1b')),
            "{envs:?}: {:#?}",
            np.seen
        );
    }
}

/// Output of `nodepass <url>` run for about a second on a pseudo-terminal (`script`).
fn on_a_terminal(url: &str, no_color: &str) -> Option<String> {
    let _room = crate::common::isolation::enter(crate::common::isolation::Room::Children);
    let probe = Command::new("script").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let bin = env!("CARGO_BIN_EXE_nodepass");
    // `timeout` ends nodepass with SIGTERM after 1 s (a graceful stop); the outer one
    // bounds the whole run.
    let out = Command::new("timeout")
        .args(["20", "script", "-qec"])
        .arg(format!("timeout -k 5 -s TERM 1 {bin} '{url}'"))
        .arg("/dev/null")
        .env("NO_COLOR", no_color)
        .output()
        .expect("run script");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_terminal_gets_coloured_level_words_unless_no_color_is_set() {
    let url = format!("client://127.0.0.1:{}/127.0.0.1:9?mode=1", free_port());
    let Some(coloured) = on_a_terminal(&url, "") else {
        eprintln!("skipped: script (util-linux) is not installed");
        return;
    };
    assert!(
        coloured.contains("\x1b[32mINFO\x1b[0m  Client started"),
        "{coloured:?}"
    );
    let url = format!("client://127.0.0.1:{}/127.0.0.1:9?mode=1", free_port());
    let plain = on_a_terminal(&url, "1").unwrap_or_default();
    assert!(plain.contains("  INFO  Client started"), "{plain:?}");
    assert!(!plain.contains("\x1b["), "{plain:?}");
}

#[test]
fn master_log_events_carry_gos_coloured_level_word_for_plain_child_lines() {
    let (_dir, m) = fake_master("logcolour");
    let mut ev = m.events();
    let r = m.call(
        "POST",
        "/instances",
        Some(r#"{"url":"client://127.0.0.1:1/127.0.0.1:2"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap_or_default().to_string();
    // The fake child prints plain lines, as nodepass does into the master's pipe.
    let log = ev
        .wait_for(T5, |e| is_type(e, "log", &id))
        .expect("a log event");
    let text = log["logs"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("2026-01-02 00:00:00.000  \x1b[32mINFO\x1b[0m  Client started: client://"),
        "{text:?}"
    );
    // Statistics still arrive as updates.
    ev.wait_for(T5, |e| {
        is_type(e, "update", &id) && e["instance"]["tcprx"].as_u64() > Some(0)
    })
    .expect("an update with counters");
}

#[test]
fn the_masters_root_redirects_a_browser_to_the_docs_page() {
    let (_dir, m) = fake_master("root");
    let r = request(m.addr, "GET", "/", None, None);
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.header("location"), Some("/api/v1/docs"));
    let docs = request(m.addr, "GET", "/api/v1/docs", None, None);
    assert_eq!(docs.status, 200);
    assert_eq!(request(m.addr, "GET", "/other", None, None).status, 404);
}

#[test]
fn auto_mode_says_when_a_client_with_a_key_becomes_a_local_forwarder() {
    let target = echo_tcp();
    let port = free_port();
    let url = format!("client://secret@127.0.0.1:{port}/{target}");
    let mut np = NodepassProcess::start(&url, &[]);
    let line = np
        .wait_for_line("Auto mode:", STEP)
        .expect("the auto-mode line");
    assert!(line.contains("  INFO  "), "{line}");
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains("mode=2"),
        "{line}"
    );

    // Without a key it is a plain forwarder: no such line.
    let url = format!("client://127.0.0.1:{}/{target}", free_port());
    let mut plain = NodepassProcess::start(&url, &[]);
    plain.wait_for_line("Listening on", STEP).expect("listens");
    plain.take_output();
    assert!(
        !plain.seen.iter().any(|l| l.contains("Auto mode:")),
        "{:#?}",
        plain.seen
    );
}

#[test]
fn the_demo_prints_no_ansi_escapes_into_a_pipe() {
    let _room = crate::common::isolation::enter(crate::common::isolation::Room::Children);
    let has = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("python3") || !has("setsid") {
        eprintln!("skipped: the demo needs python3 and setsid");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh");
    let out = Command::new("timeout")
        .args(["60", "bash", script])
        .env("NODEPASS_BIN", env!("CARGO_BIN_EXE_nodepass"))
        .env_remove("NO_COLOR")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("== done: every byte came back"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "{stdout}");
}
