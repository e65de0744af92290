//! The real binary as a master running real tunnel instances: bytes through a server and
//! client created over the API, their counters in `update` events and GET /instances, and
//! a tunnel child killed from outside (status `error`, then Go's periodic restart).

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::master::{api_call, is_status, is_type, poll, read_key, Events, Reply, TempDir};
use crate::common::{
    echo_tcp, echo_through, echo_through_ok, free_port, payload, NodepassProcess, STEP,
};
use serde_json::Value;

const T3: Duration = Duration::from_secs(3);

/// `nodepass master://…` with fast report and reload intervals; the children inherit them.
struct RealMaster {
    proc: NodepassProcess,
    addr: SocketAddr,
    key: String,
    _dir: TempDir,
}

impl RealMaster {
    fn start(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        let state = dir.0.join("state");
        let port = free_port();
        let url = format!("master://127.0.0.1:{port}/api?log=info");
        let state_text = state.to_string_lossy().into_owned();
        let env = [
            ("NP_REPORT_INTERVAL", "1s"),
            ("NP_RELOAD_INTERVAL", "2s"),
            ("NP_SERVICE_COOLDOWN", "200ms"),
            ("NP_WORKERS", "2"),
            ("NP_MASTER_STATE_DIR", state_text.as_str()),
        ];
        let mut proc = NodepassProcess::start(&url, &env);
        proc.wait_for_line("Master started", STEP)
            .unwrap_or_else(|| panic!("master did not start: {:?}", proc.seen));
        let key = poll(STEP, || read_key(&state.join("nodepass.json"))).expect("API key");
        RealMaster {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            key,
            _dir: dir,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        api_call(self.addr, &self.key, method, path, body)
    }

    fn create(&self, url: &str) -> String {
        let r = self.call("POST", "/instances", Some(&format!(r#"{{"url":"{url}"}}"#)));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().expect("id").to_string()
    }

    /// Pids of the master's children whose command line contains `needle`.
    fn children_with(&self, needle: &str) -> Vec<u32> {
        let master = self.proc.pid();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| parent_of(*pid) == Some(master))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
            })
            .collect()
    }
}

impl Drop for RealMaster {
    fn drop(&mut self) {
        // SIGTERM first so the master stops its children; the process fixture SIGKILLs after.
        self.proc.terminate();
        let _ = self.proc.wait_exit(STEP);
    }
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

fn counters_rose(inst: &Value) -> bool {
    ["tcprx", "tcptx"]
        .iter()
        .all(|k| inst[*k].as_u64().unwrap_or(0) > 0)
}

#[test]
fn a_tunnel_created_through_the_api_carries_bytes_and_reports_them_in_updates_and_the_list() {
    let m = RealMaster::start("tunnel");
    let echo = echo_tcp();
    let (tunnel, user) = (free_port(), free_port());
    let mut ev = Events::open(m.addr, &m.key);
    let server = m.create(&format!(
        "server://secret@127.0.0.1:{tunnel}/127.0.0.1:{user}?mode=1"
    ));
    let client = m.create(&format!(
        "client://secret@127.0.0.1:{tunnel}/{echo}?mode=2&min=8"
    ));
    for id in [&server, &client] {
        ev.wait_for(T3, |e| is_type(e, "create", id))
            .expect("create event");
    }
    let user_addr = SocketAddr::from(([127, 0, 0, 1], user));
    let probe = payload(1000, 1);
    assert!(
        poll(STEP, || echo_through_ok(user_addr, &probe).then_some(())).is_some(),
        "the tunnel never carried bytes"
    );
    let data = payload(256 * 1024, 7);
    assert_eq!(echo_through(user_addr, &data), data);

    for id in [&server, &client] {
        let upd = ev
            .wait_for(STEP, |e| {
                is_type(e, "update", id) && counters_rose(&e["instance"])
            })
            .unwrap_or_else(|| panic!("no update with traffic for {id}"));
        assert_eq!(upd["instance"]["status"], "running");
    }
    let list = m.call("GET", "/instances", None);
    assert_eq!(list.status, 200);
    let list = list.json();
    for id in [&server, &client] {
        let inst = list
            .as_array()
            .expect("array")
            .iter()
            .find(|i| i["id"] == **id)
            .unwrap_or_else(|| panic!("{id} not listed"));
        assert_eq!(inst["status"], "running");
        assert!(counters_rose(inst), "{inst}");
    }
}

#[test]
fn a_tunnel_child_killed_from_outside_turns_error_and_the_periodic_task_restarts_it() {
    let m = RealMaster::start("killed");
    let (tunnel, user) = (free_port(), free_port());
    let mut ev = Events::open(m.addr, &m.key);
    let needle = format!("127.0.0.1:{tunnel}/");
    let id = m.create(&format!(
        "server://secret@127.0.0.1:{tunnel}/127.0.0.1:{user}?mode=1"
    ));
    let first = poll(STEP, || m.children_with(&needle).first().copied()).expect("the child");
    ev.wait_for(STEP, |e| is_type(e, "update", &id))
        .expect("a CHECK_POINT update");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    ev.wait_for(T3, |e| is_status(e, &id, "error"))
        .expect("status error within 3 s of the child's death");
    // Go restarts instances in `error` every NP_RELOAD_INTERVAL (2 s here).
    ev.wait_for(STEP, |e| is_status(e, &id, "running"))
        .expect("running again after the periodic restart");
    let second = poll(STEP, || {
        m.children_with(&needle)
            .into_iter()
            .find(|pid| *pid != first)
    });
    assert!(second.is_some(), "a new child process");
}

#[test]
fn stopping_a_tunnel_instance_frees_its_ports_within_a_second_and_lists_it_stopped() {
    let m = RealMaster::start("stop");
    let (tunnel, user) = (free_port(), free_port());
    let id = m.create(&format!(
        "server://secret@127.0.0.1:{tunnel}/127.0.0.1:{user}?mode=1"
    ));
    let user_addr = SocketAddr::from(([127, 0, 0, 1], user));
    poll(STEP, || std::net::TcpStream::connect(user_addr).ok()).expect("the server listens");
    let r = m.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"action":"stop"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let freed = poll(Duration::from_secs(1), || {
        let t = std::net::TcpListener::bind(("127.0.0.1", tunnel)).ok()?;
        let u = std::net::TcpListener::bind(user_addr).ok()?;
        Some((t, u))
    });
    assert!(freed.is_some(), "ports still held a second after the stop");
    let one = m.call("GET", &format!("/instances/{id}"), None).json();
    assert_eq!(one["status"], "stopped");
}
