//! An idle process sleeps: its control thread is woken by what happens (a signal, a change
//! to save), not by timers that look at flags, and SIGTERM still ends it at once.
//! (Before: 35 wake-ups a second on every mode's control thread.)

use std::time::Duration;

use crate::common::{free_port, NodepassProcess, TempDir, STEP};

/// Voluntary context switches of the process's main thread (its control thread) so far.
fn main_thread_wakeups(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status"))
        .expect("main thread status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

/// Start `url`, wait for `started`, count the main thread's wake-ups over 2 s of idling,
/// then check SIGTERM ends it within a second.
fn idle_wakeups(url: &str, started: &str, envs: &[(&str, &str)]) -> u64 {
    let mut p = NodepassProcess::start(url, envs);
    p.wait_for_line(started, STEP)
        .unwrap_or_else(|| panic!("{url} did not start: {:?}", p.seen));
    // Start-up work (a master's first save) settles first.
    p.watch_output_for(Duration::from_millis(300));
    let before = main_thread_wakeups(p.pid());
    p.watch_output_for(Duration::from_secs(2));
    let woken = main_thread_wakeups(p.pid()) - before;
    p.terminate();
    assert!(
        p.wait_exit(Duration::from_secs(1)).is_some(),
        "{url} still runs 1 s after SIGTERM"
    );
    woken
}

#[test]
fn an_idle_forwarder_and_tunnel_server_control_thread_sleeps() {
    let port = free_port();
    let forwarder = format!("client://127.0.0.1:{port}/127.0.0.1:9?mode=1&log=info");
    for driver in ["uring", "legacy"] {
        let envs = [("NP_WORKERS", "1"), ("NP_DRIVER", driver)];
        let woken = idle_wakeups(&forwarder, "started", &envs);
        assert!(
            woken <= 6,
            "forwarder ({driver}) control thread woke {woken} times in 2 s idle"
        );
    }
    let port = free_port();
    let server = format!("server://k@127.0.0.1:{port}/127.0.0.1:9?log=info");
    let woken = idle_wakeups(&server, "started", &[("NP_WORKERS", "1")]);
    assert!(
        woken <= 6,
        "tunnel server control thread woke {woken} times in 2 s idle"
    );
}

#[test]
fn an_idle_master_wakes_a_few_times_a_second_at_most() {
    let dir = TempDir::new("idle-master");
    let state = dir.path("state");
    let url = format!("master://127.0.0.1:{}/api?log=info", free_port());
    let envs = [("NP_WORKERS", "1"), ("NP_MASTER_STATE_DIR", state.as_str())];
    // The saver and the stop check look once a second; the 5 s report tick adds one.
    let woken = idle_wakeups(&url, "Master started", &envs);
    assert!(woken <= 16, "master thread woke {woken} times in 2 s idle");
}
