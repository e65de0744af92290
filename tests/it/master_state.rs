//! The master's state and children across crashes, with the real binary: children do not
//! outlive a master killed with SIGKILL and come back under the next master; a corrupt
//! state file falls back to its backup (same API key) or stops the start with a message
//! that names the file; a failing save names the path and backs off.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::master::{api_call, poll, read_key, Reply, TempDir};
use crate::common::{free_port, NodepassProcess, STEP};
use serde_json::Value;

const T3: Duration = Duration::from_secs(3);

/// `nodepass master://127.0.0.1:port/api` on a given state dir (so a second master can
/// take over the first one's state and port).
struct RealMaster {
    proc: NodepassProcess,
    addr: SocketAddr,
    key: String,
}

fn master_env(state: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("NP_REPORT_INTERVAL", "1s".into()),
        ("NP_SHUTDOWN_TIMEOUT", "2s".into()),
        ("NP_WORKERS", "1".into()),
        ("NP_MASTER_STATE_DIR", state.to_string_lossy().into_owned()),
    ]
}

fn start_process(port: u16, state: &Path) -> NodepassProcess {
    let url = format!("master://127.0.0.1:{port}/api?log=info");
    let env = master_env(state);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    NodepassProcess::start(&url, &env)
}

impl RealMaster {
    fn start(port: u16, state: &Path) -> Self {
        let mut proc = start_process(port, state);
        proc.wait_for_line("Master started", STEP)
            .unwrap_or_else(|| panic!("master did not start: {:?}", proc.seen));
        let key = poll(STEP, || read_key(&state.join("nodepass.json"))).expect("API key");
        RealMaster {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            key,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        api_call(self.addr, &self.key, method, path, body)
    }

    fn status_of(&self, id: &str) -> Value {
        self.call("GET", &format!("/instances/{id}"), None).json()["status"].clone()
    }

    /// Pids of this master's children.
    fn children(&self) -> Vec<u32> {
        let master = self.proc.pid();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| stat_field(*pid, 1).and_then(|p| p.parse().ok()) == Some(master))
            .collect()
    }
}

impl Drop for RealMaster {
    fn drop(&mut self) {
        self.proc.terminate();
        let _ = self.proc.wait_exit(STEP);
    }
}

/// Field `n` after the command name of /proc/<pid>/stat (0 = state, 1 = parent pid).
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(n).map(str::to_string)
}

/// Gone, or a zombie nobody has reaped yet (it holds no ports).
fn is_gone(pid: u32) -> bool {
    stat_field(pid, 0).map_or(true, |state| state == "Z" || state == "X")
}

fn sigkill(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

#[test]
fn children_exit_when_the_master_is_killed_and_the_next_master_runs_them_again() {
    let dir = TempDir::new("kill9");
    let state = dir.0.join("state");
    let port = free_port();
    let m = RealMaster::start(port, &state);
    let (tunnel, user) = (free_port(), free_port());
    let r = m.call(
        "POST",
        "/instances",
        Some(&format!(
            r#"{{"url":"server://secret@127.0.0.1:{tunnel}/127.0.0.1:{user}?mode=1"}}"#
        )),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_string();
    let user_addr = SocketAddr::from(([127, 0, 0, 1], user));
    poll(STEP, || listening(user_addr).then_some(())).expect("the instance listens");
    let child = poll(STEP, || m.children().first().copied()).expect("the instance's process");
    let file = state.join("nodepass.json");
    poll(T3, || {
        let saved = std::fs::read_to_string(&file).ok()?;
        saved.contains(&id).then_some(())
    })
    .expect("the instance is saved");

    let key = m.key.clone();
    sigkill(m.proc.pid());
    let mut m = m;
    assert!(m.proc.wait_exit(T3).is_some(), "the master died");
    let killed_at = Instant::now();
    assert!(
        poll(T3, || is_gone(child).then_some(())).is_some(),
        "instance process {child} still running 3 s after its master was killed"
    );
    eprintln!("child gone {:?} after the kill", killed_at.elapsed());
    drop(m);

    let m2 = RealMaster::start(port, &state);
    assert_eq!(m2.key, key, "the API key survives");
    poll(STEP, || (m2.status_of(&id) == "running").then_some(()))
        .unwrap_or_else(|| panic!("not running again: {}", m2.status_of(&id)));
    poll(STEP, || listening(user_addr).then_some(())).expect("the new child listens");
    assert_eq!(m2.status_of(&id), "running", "no port clash with an orphan");
    let new_child = poll(STEP, || m2.children().first().copied()).expect("a new child");
    assert_ne!(new_child, child);
    // And it can be stopped: the port is free afterwards.
    let r = m2.call(
        "PATCH",
        &format!("/instances/{id}"),
        Some(r#"{"action":"stop"}"#),
    );
    assert_eq!(r.json()["status"], "stopped", "{}", r.body);
    assert!(poll(T3, || is_gone(new_child).then_some(())).is_some());
}

/// A state file as the master writes it: the key and one stopped instance.
fn state_json(key: &str, id: &str) -> String {
    format!(
        r#"{{"version":1,"mid":"0123456789abcdef","alias":"","instances":[
  {{"id":"********","type":"","url":"{key}","config":"","restart":false}},
  {{"id":"{id}","alias":"kept","type":"client","url":"client://127.0.0.1:1/127.0.0.1:2","config":"","restart":false}}]}}"#
    )
}

fn state_with_corrupt_file(dir: &TempDir) -> (PathBuf, PathBuf) {
    let state = dir.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join("nodepass.json");
    std::fs::write(&file, b"{\"instances\": [ torn").unwrap();
    (state, file)
}

#[test]
fn a_corrupt_state_file_with_a_backup_loads_the_backup_keeps_the_key_and_says_so() {
    let dir = TempDir::new("backup");
    let (state, file) = state_with_corrupt_file(&dir);
    let key = "a".repeat(32);
    std::fs::write(
        state.join("nodepass.json.backup"),
        state_json(&key, "0a0b0c0d"),
    )
    .unwrap();
    let port = free_port();
    let mut proc = start_process(port, &state);
    let line = proc
        .wait_for_line("loaded the backup", STEP)
        .unwrap_or_else(|| panic!("no fallback message: {:?}", proc.seen));
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains("nodepass.json.backup"), "{line}");
    assert!(line.contains("1 instances, API key kept"), "{line}");
    proc.wait_for_line("Master started", STEP).expect("started");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let one = api_call(addr, &key, "GET", "/instances/0a0b0c0d", None);
    assert_eq!(one.status, 200, "the old key works: {}", one.body);
    assert_eq!(one.json()["alias"], "kept");
    assert!(
        state.join("nodepass.json.corrupt").exists(),
        "bad file kept"
    );
    assert_eq!(
        poll(T3, || read_key(&file)).as_deref(),
        Some(key.as_str()),
        "the state file is written again with the same key"
    );
    proc.terminate();
    assert_eq!(proc.wait_exit(STEP), Some(0));
}

#[test]
fn a_corrupt_state_file_without_a_backup_stops_the_start_naming_the_file() {
    let dir = TempDir::new("refuse");
    let (state, file) = state_with_corrupt_file(&dir);
    let mut proc = start_process(free_port(), &state);
    let code = proc.wait_exit(STEP).expect("the master exits");
    assert_ne!(code, 0);
    let line = proc
        .wait_for_line("refusing to start", T3)
        .unwrap_or_else(|| panic!("no clear message: {:?}", proc.seen));
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains("mv "), "says how to start fresh: {line}");
    assert!(proc.seen.iter().all(|l| !l.contains("Master started")));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"{\"instances\": [ torn",
        "the file is left for the user"
    );
}

#[test]
fn a_failing_save_names_the_path_backs_off_and_recovers() {
    let dir = TempDir::new("savefail");
    let state = dir.0.join("state");
    let port = free_port();
    let mut m = RealMaster::start(port, &state);
    poll(T3, || {
        state.join("nodepass.json.backup").exists().then_some(())
    })
    .expect("a backup right after the first save");
    // Make the state directory unusable: a plain file takes its place.
    let aside = dir.0.join("state-aside");
    std::fs::rename(&state, &aside).unwrap();
    std::fs::write(&state, b"not a directory").unwrap();
    let r = m.call("POST", "/info", Some(r#"{"alias":"x"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    let path = state.join("nodepass.json").display().to_string();
    let first = m
        .proc
        .wait_for_line("saveState: cannot write", T3)
        .expect("the failure is logged");
    assert!(first.contains(&path), "names the path: {first}");
    // Failures keep being logged, but backed off (0.5 s, 1 s, 2 s …), not every tick:
    // count them in the output of a 2.5 s window.
    m.proc.watch_output_for(Duration::from_millis(2500));
    let failures = m
        .proc
        .seen
        .iter()
        .filter(|l| l.contains("saveState: cannot write"))
        .count();
    assert!(
        (2..=4).contains(&failures),
        "{failures} failure lines in 2.5 s"
    );
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(&aside, &state).unwrap();
    m.proc
        .wait_for_line("written again", Duration::from_secs(6))
        .expect("the save recovers once the directory is back");
    assert!(poll(T3, || {
        let v: Value =
            serde_json::from_slice(&std::fs::read(state.join("nodepass.json")).ok()?).ok()?;
        (v["alias"] == "x").then_some(())
    })
    .is_some());
}

#[test]
fn the_state_file_and_its_backup_are_owner_only_even_where_an_old_one_was_0644() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("statemode");
    let state = dir.0.join("state");
    let mode = |p: &Path| Some(std::fs::metadata(p).ok()?.permissions().mode() & 0o777);
    let file = state.join("nodepass.json");
    let backup = state.join("nodepass.json.backup");
    {
        let _m = RealMaster::start(free_port(), &state);
        poll(T3, || backup.exists().then_some(())).expect("a backup after the first save");
        assert_eq!(mode(&file), Some(0o600), "state file");
        assert_eq!(mode(&backup), Some(0o600), "backup");
    }
    // A file left 0644 (by Go, or an older nodepass) becomes 0600 at the next save.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let m = RealMaster::start(free_port(), &state);
    let r = m.call("POST", "/info", Some(r#"{"alias":"y"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        poll(T3, || (mode(&file) == Some(0o600)).then_some(())).is_some(),
        "still {:o}",
        mode(&file).unwrap_or(0)
    );
}

/// The API key is printed once in full, when it is created (the one way an operator
/// learns it, as Go); a regenerated key is logged masked (its caller has it in the answer).
#[test]
fn a_created_key_is_logged_once_and_a_regenerated_key_only_masked() {
    let dir = TempDir::new("key-log");
    let mut m = RealMaster::start(free_port(), &dir.0);
    let created = m
        .proc
        .wait_for_line("API Key created:", STEP)
        .expect("the first start prints its key");
    assert!(created.ends_with(&m.key), "{created}");
    let reply = m.call(
        "PATCH",
        "/instances/********",
        Some(r#"{"action":"restart"}"#),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let new_key = reply.json()["url"].as_str().unwrap().to_string();
    assert_eq!(new_key.len(), 32);
    let regenerated = m
        .proc
        .wait_for_line("API Key regenerated", STEP)
        .expect("the regeneration is logged");
    assert!(
        regenerated.ends_with("API Key regenerated: ****"),
        "{regenerated}"
    );
    m.proc.watch_output_for(Duration::from_millis(300));
    let leaks: Vec<&String> = m
        .proc
        .seen
        .iter()
        .filter(|l| l.contains(&new_key))
        .collect();
    assert!(leaks.is_empty(), "the new key is in the log: {leaks:?}");
}
