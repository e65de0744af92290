//! The event stream and the supervisor behind it: framing, periodic updates, log events,
//! error/running transitions, SIGKILL after the shutdown timeout, state across restarts.

use std::time::{Duration, Instant};

use crate::common::master::*;
use nodepass::config::TlsMode;

const T3: Duration = Duration::from_secs(3);

fn create(m: &TestMaster, url: &str) -> String {
    let r = m.call("POST", "/instances", Some(&format!(r#"{{"url":"{url}"}}"#)));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

#[test]
fn the_stream_starts_with_headers_retry_and_initial_frames() {
    let (_dir, m) = fake_master("frames");
    let mut ev = m.events();
    assert!(ev.head.starts_with("HTTP/1.1 200"));
    let ct = ev
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
        .unwrap();
    assert_eq!(ct, "Content-Type: text/event-stream");
    assert!(ev.head.contains("Access-Control-Allow-Origin: *"));
    assert_eq!(ev.next_frame(T3).as_deref(), Some("retry: 3000"));
    let frame = ev.next_frame(T3).unwrap();
    let data = frame
        .strip_prefix("event: instance\ndata: ")
        .expect("Go's framing");
    assert!(!data.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["type"], "initial");
    assert_eq!(v["logs"], "");
    assert!(v["time"].as_str().unwrap().contains('T'));
}

#[test]
fn running_instances_send_updates_on_every_checkpoint_and_logs_for_other_lines() {
    let (_dir, m) = fake_master("updates");
    let mut ev = m.events();
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2");
    let log = ev
        .wait_for(T3, |e| is_type(e, "log", &id))
        .expect("a log event");
    assert!(log["logs"].as_str().unwrap().contains("Client started"));
    let start = Instant::now();
    let mut seen = 0;
    while seen < 5 {
        ev.wait_for(T3, |e| is_type(e, "update", &id))
            .expect("periodic update");
        seen += 1;
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "one update per CHECK_POINT"
    );
}

#[test]
fn an_error_line_marks_error_and_the_next_checkpoint_recovers() {
    let (_dir, m) = fake_master("errline");
    let mut ev = m.events();
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2?x=errline");
    ev.wait_for(T3, |e| is_status(e, &id, "error"))
        .expect("error after a Client error line");
    ev.wait_for(T3, |e| is_status(e, &id, "running"))
        .expect("running again on the next CHECK_POINT");
}

#[test]
fn a_child_exiting_with_an_error_code_leaves_status_error() {
    let (_dir, m) = fake_master("exit");
    let mut ev = m.events();
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2?x=fail");
    ev.wait_for(T3, |e| is_status(e, &id, "error"))
        .expect("error status");
    let got = poll(T3, || {
        let v = m.call("GET", &format!("/instances/{id}"), None).json();
        (v["status"] == "error").then_some(v)
    });
    assert!(got.is_some());
}

#[test]
fn a_silent_child_turns_error_after_three_report_intervals() {
    let (_dir, m) = fake_master("silent");
    let mut ev = m.events();
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2?x=once");
    ev.wait_for(T3, |e| {
        is_type(e, "update", &id) && e["instance"]["tcprx"] == 1
    })
    .expect("the one CHECK_POINT");
    let start = Instant::now();
    ev.wait_for(Duration::from_secs(6), |e| is_status(e, &id, "error"))
        .expect("error after 3 silent intervals");
    assert!(
        start.elapsed() >= Duration::from_millis(2500),
        "not before 3 report intervals: {:?}",
        start.elapsed()
    );
}

#[test]
fn a_child_that_never_reports_is_not_judged_silent() {
    let (_dir, m) = fake_master("quiet");
    let mut ev = m.events();
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2?x=quiet");
    ev.wait_for(T3, |e| is_status(e, &id, "running")).unwrap();
    assert!(
        ev.wait_for(Duration::from_millis(3500), |e| is_status(e, &id, "error"))
            .is_none(),
        "Go judges only after a first report"
    );
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_shutdown_timeout() {
    let (_dir, m) = fake_master("stubborn");
    let mut ev = m.events();
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2?x=stubborn");
    // Its first CHECK_POINT proves the shell has installed its SIGTERM trap.
    ev.wait_for(T3, |e| {
        is_status(e, &id, "running") && e["instance"]["tcprx"].as_u64().unwrap_or(0) > 0
    })
    .unwrap();
    let start = Instant::now();
    let r = m.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"action":"stop"}"#),
    );
    let took = start.elapsed();
    assert_eq!(r.json()["status"], "stopped");
    assert!(
        took >= Duration::from_millis(900),
        "waited for NP_SHUTDOWN_TIMEOUT (1 s): {took:?}"
    );
    assert!(took < Duration::from_secs(4), "then SIGKILL: {took:?}");
}

#[test]
fn state_survives_an_abrupt_master_restart_and_restart_true_instances_come_back() {
    let dir = TempDir::new("survive");
    let exe = write_script(&dir.0);
    let state = dir.0.join("state");
    let m = TestMaster::start(options(exe.clone(), &state));
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2");
    m.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"alias":"keep-me"}"#),
    );
    let mut ev = m.events();
    ev.wait_for(T3, |e| {
        is_type(e, "update", &id) && e["instance"]["tcprx"].as_u64() >= Some(300)
    })
    .unwrap();
    // Let the counter save (every 200 ms in tests) catch up, then crash the master.
    let saved = poll(T3, || {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("nodepass.json")).ok()?).ok()?;
        let inst = v["instances"]
            .as_array()?
            .iter()
            .find(|i| i["id"] == id.as_str())?
            .clone();
        (inst["tcprx"].as_u64()? >= 300).then_some(inst["tcprx"].as_u64()?)
    })
    .expect("counters saved");
    let key = m.key.clone();
    drop(ev);
    let mut m = m;
    m.handle.take().unwrap().abort();

    let m2 = TestMaster::start(options(exe, &state));
    assert_eq!(m2.key, key, "the API key survives");
    let back = poll(Duration::from_secs(5), || {
        let v = m2.call("GET", &format!("/instances/{id}"), None).json();
        (v["status"] == "running").then_some(v)
    })
    .expect("restart:true instance running again");
    assert_eq!(back["alias"], "keep-me");
    assert!(
        back["tcprx"].as_u64().unwrap() >= saved,
        "counters kept: {back}"
    );
}

#[test]
fn a_corrupt_state_file_without_a_backup_is_refused_rather_than_started_empty() {
    let dir = TempDir::new("corrupt");
    let exe = write_script(&dir.0);
    let state = dir.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join("nodepass.json");
    std::fs::write(&file, b"{\"instances\": [ torn").unwrap();
    let _room = crate::common::isolation::enter(crate::common::isolation::Room::InProcessMaster);
    let err = match nodepass::master::start(
        master_config(TlsMode::Off, test_env()),
        options(exe, &state),
    ) {
        Ok(_) => panic!("started with an empty state and a new key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"{\"instances\": [ torn");
}
