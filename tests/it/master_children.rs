//! The master's children cost no thread each: one watcher thread reads every child's
//! output and reaps it. Many instances, a flooding child, line and exit order, zombies.

use std::time::{Duration, Instant};

use crate::common::master::*;
use serde_json::Value;

const T5: Duration = Duration::from_secs(5);

fn create(m: &TestMaster, url: &str) -> String {
    let r = m.call("POST", "/instances", Some(&format!(r#"{{"url":"{url}"}}"#)));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

/// Names of this process's threads starting with `prefix`.
fn threads_named(prefix: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Pids of this process's children that are zombies (exited, not reaped).
fn zombie_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|p| {
            let pid: u32 = p.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
            let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
            let (state, ppid) = (rest.next()?, rest.next()?);
            (state == "Z" && ppid == me).then_some(pid)
        })
        .collect()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn instances(m: &TestMaster) -> Vec<Value> {
    m.call("GET", "/instances", None)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["id"] != "********")
        .collect()
}

#[test]
fn fifty_instances_cost_one_watcher_thread_and_leave_no_zombies() {
    let (_dir, m) = fake_master("fifty");
    let ids: Vec<String> = (0..50)
        .map(|i| {
            create(
                &m,
                &format!("client://127.0.0.1:{}/127.0.0.1:8080", 21000 + i),
            )
        })
        .collect();
    let all_reporting = poll(Duration::from_secs(20), || {
        let up = instances(&m)
            .iter()
            .filter(|i| i["status"] == "running" && i["tcprx"].as_u64() > Some(0))
            .count();
        (up == ids.len()).then_some(())
    });
    assert!(all_reporting.is_some(), "all 50 instances report");
    assert_eq!(
        threads_named("np-inst"),
        Vec::<String>::new(),
        "no thread per child"
    );
    assert_eq!(
        threads_named("np-children").len(),
        1,
        "one watcher thread for every child of the process"
    );
    drop(m); // stops every instance
    let reaped = poll(T5, || zombie_children().is_empty().then_some(()));
    assert!(reaped.is_some(), "zombies left: {:?}", zombie_children());
}

#[test]
fn every_line_of_both_streams_arrives_in_order_before_the_exit() {
    let (_dir, m) = fake_master("order");
    let mut ev = m.events();
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2?printlines");
    let (mut out, mut err) = (0, 0);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let e = ev.next_event(left).expect("events until the exit");
        if is_type(&e, "log", &id) {
            let line = e["logs"].as_str().unwrap_or_default();
            if let Some(n) = line.strip_prefix("out ") {
                out += 1;
                assert_eq!(n, out.to_string(), "stdout lines in order");
            } else if let Some(n) = line.strip_prefix("err ") {
                err += 1;
                assert_eq!(n, err.to_string(), "stderr lines in order");
            }
        } else if is_status(&e, &id, "stopped") {
            break;
        }
    }
    assert_eq!((out, err), (200, 200), "every line before the exit");
    let reaped = poll(T5, || zombie_children().is_empty().then_some(()));
    assert!(reaped.is_some(), "zombies left: {:?}", zombie_children());
}

#[test]
fn a_flooding_child_neither_stalls_the_api_nor_grows_the_master() {
    let (_dir, m) = fake_master("flood");
    let id = create(&m, "client://127.0.0.1:1/127.0.0.1:2?flood");
    let flooding = poll(T5, || {
        instances(&m)
            .iter()
            .any(|i| i["id"] == id.as_str() && i["status"] == "running")
            .then_some(())
    });
    assert!(flooding.is_some(), "the flooding instance runs");
    let rss_start = rss_kib();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let asked = Instant::now();
        let info = m.call("GET", "/info", None);
        assert_eq!(info.status, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "/info took {:?} under the flood",
            asked.elapsed()
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
    let grown = rss_kib().saturating_sub(rss_start);
    assert!(grown < 64 * 1024, "the process grew by {grown} KiB in 3 s");
    let stopped = m.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"action":"stop"}"#),
    );
    assert_eq!(stopped.json()["status"], "stopped");
    let reaped = poll(T5, || zombie_children().is_empty().then_some(()));
    assert!(reaped.is_some(), "zombies left: {:?}", zombie_children());
}
