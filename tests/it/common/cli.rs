//! Run the `nodepass` binary to completion with a deadline; the child is killed if it overruns.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a finished run printed and how it exited.
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// Kills the child on drop, so a hung binary never outlives its test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `nodepass args…` with `env` added; panic if it has not exited within `limit`.
pub fn run_nodepass(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Finished {
    let _room = super::isolation::enter(super::isolation::Room::Children);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nodepass"));
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    nodepass::sys::inherit_only_stdio(&mut cmd);
    let mut child = KillOnDrop(cmd.spawn().expect("spawn nodepass"));
    let (tx, rx) = mpsc::channel();
    let pipes: [Box<dyn Read + Send>; 2] = [
        Box::new(child.0.stdout.take().expect("stdout piped")),
        Box::new(child.0.stderr.take().expect("stderr piped")),
    ];
    for (index, mut pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send((index, text));
        });
    }
    let deadline = Instant::now() + limit;
    let mut outputs = [String::new(), String::new()];
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (index, text) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("nodepass {args:?} still running after {limit:?}"));
        outputs[index] = text;
    }
    // Both pipes closed: the process has exited (or is exiting) by now.
    let status = child.0.wait().expect("wait for nodepass");
    let [stdout, stderr] = outputs;
    Finished {
        status,
        stdout,
        stderr,
    }
}
