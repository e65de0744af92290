//! Where the master keeps its state in the layouts people deploy: the container image
//! (`/nodepass` in a root-owned `/`, uid 65532, a `/data` volume) and the systemd unit
//! (`/usr/local/bin` read-only, `StateDirectory=`). Each layout is rebuilt under a
//! root-owned temp directory from what the Dockerfile and the unit say, and the real binary
//! runs there as uid 65532 (`setpriv`). Needs root and setpriv; skips with a message
//! otherwise. No daemon is needed: the test checks what the image relies on.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::master::read_key;
use crate::common::{NodepassProcess, TempDir};

const UID: u32 = 65532;
const LIMIT: Duration = Duration::from_secs(15);

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Why an unprivileged run cannot be set up here, if it cannot.
fn cannot_switch_user() -> Option<&'static str> {
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if euid != 0 {
        return Some("tests do not run as root, so they cannot switch to uid 65532");
    }
    let _room = crate::common::isolation::enter(crate::common::isolation::Room::Children);
    let setpriv = Command::new("setpriv").arg("--version").output();
    if !setpriv.is_ok_and(|o| o.status.success()) {
        return Some("setpriv (util-linux) is not installed");
    }
    None
}

/// A root-owned directory tree standing in for `/`, removed at the end.
struct Root(TempDir);

impl Root {
    fn new(tag: &str) -> Root {
        let dir = TempDir::new(tag);
        let root = Root(dir);
        root.chmod("", 0o755);
        root
    }

    /// `abs` (an absolute path of the layout) inside this root.
    fn at(&self, abs: &str) -> PathBuf {
        self.0 .0.join(abs.trim_start_matches('/'))
    }

    fn chmod(&self, abs: &str, mode: u32) {
        let perms = std::fs::Permissions::from_mode(mode);
        std::fs::set_permissions(self.at(abs), perms).expect("chmod");
    }

    /// Root-owned directories down to `abs` (mode 0755), like an image's or a distro's.
    fn mkdir(&self, abs: &str) {
        std::fs::create_dir_all(self.at(abs)).expect("mkdir");
        let mut path = String::new();
        for part in abs.trim_matches('/').split('/') {
            path.push('/');
            path.push_str(part);
            self.chmod(&path, 0o755);
        }
    }

    /// A directory owned by the unprivileged user (the image's `--chown`, systemd's
    /// `StateDirectory=`).
    fn user_dir(&self, abs: &str) {
        self.mkdir(abs);
        std::os::unix::fs::chown(self.at(abs), Some(UID), Some(UID)).expect("chown");
    }

    /// Copy the binary to `abs` (root-owned, 0755).
    fn install_binary(&self, abs: &str) -> PathBuf {
        let to = self.at(abs);
        if let Some(dir) = Path::new(abs).parent().and_then(Path::to_str) {
            self.mkdir(dir);
        }
        std::fs::copy(env!("CARGO_BIN_EXE_nodepass"), &to).expect("copy binary");
        self.chmod(abs, 0o755);
        to
    }
}

/// `exe master://127.0.0.1:0` as uid 65532 in `cwd` with exactly `envs`.
fn master_as_user(exe: &Path, cwd: &Path, envs: &[(&str, PathBuf)]) -> NodepassProcess {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        format!("--reuid={UID}"),
        format!("--regid={UID}"),
        "--clear-groups".to_string(),
    ])
    .arg(exe)
    .arg("master://127.0.0.1:0")
    .current_dir(cwd)
    .env_clear()
    .env("PATH", "/usr/bin:/bin");
    for (name, value) in envs {
        cmd.env(name, value);
    }
    NodepassProcess::spawn(cmd)
}

/// Start, check the key is created and saved in `state`, restart, check it is loaded.
fn master_keeps_its_key_across_a_restart(
    exe: &Path,
    cwd: &Path,
    envs: &[(&str, PathBuf)],
    state: &Path,
) {
    let mut first = master_as_user(exe, cwd, envs);
    let created = first.wait_for_line("API Key created:", LIMIT);
    let Some(created) = created else {
        first.take_output();
        panic!("no key created; output: {:#?}", first.seen);
    };
    let key = created.rsplit(' ').next().unwrap_or_default().to_string();
    first.terminate();
    assert_eq!(
        first.wait_exit(LIMIT),
        Some(0),
        "graceful stop; output: {:#?}",
        first.seen
    );
    let file = state.join("nodepass.json");
    let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(meta.uid(), UID, "written by the unprivileged user");
    assert_eq!(read_key(&file).as_deref(), Some(key.as_str()));

    let mut second = master_as_user(exe, cwd, envs);
    let loaded = second.wait_for_line("API Key loaded from", LIMIT);
    second.take_output();
    assert!(
        loaded.is_some_and(|l| l.contains(&file.display().to_string())),
        "{:#?}",
        second.seen
    );
    assert!(
        !second.seen.iter().any(|l| l.contains("API Key created")),
        "a new key: {:#?}",
        second.seen
    );
    second.terminate();
    assert_eq!(second.wait_exit(LIMIT), Some(0));
    assert!(
        !second.seen.iter().any(|l| l.contains("saveState")),
        "save errors: {:#?}",
        second.seen
    );
}

/// The Dockerfile's final stage (from its last `FROM`).
fn dockerfile_final_stage() -> String {
    let text = repo_file("Dockerfile");
    let start = text.rfind("\nFROM ").expect("a FROM line");
    text[start..].to_string()
}

#[test]
fn dockerfile_gives_uid_65532_a_data_volume_as_the_state_directory() {
    let stage = dockerfile_final_stage();
    for line in [
        "COPY --from=build --chown=65532:65532 /rootfs/data /data",
        "ENV NP_MASTER_STATE_DIR=/data",
        "VOLUME /data",
        "WORKDIR /data",
        "USER 65532:65532",
        "ENTRYPOINT [\"/nodepass\"]",
    ] {
        assert!(
            stage.lines().any(|l| l.trim() == line),
            "final stage lacks `{line}`:\n{stage}"
        );
    }
}

#[test]
fn image_layout_keeps_the_master_key_in_data_for_uid_65532() {
    if let Some(why) = cannot_switch_user() {
        eprintln!("skipped: {why}");
        return;
    }
    // What dockerfile_gives_uid_65532_a_data_volume_as_the_state_directory checks.
    let root = Root::new("image");
    let exe = root.install_binary("/nodepass");
    root.user_dir("/data");
    let data = root.at("/data");
    let envs = [("NP_MASTER_STATE_DIR", data.clone())];
    master_keeps_its_key_across_a_restart(&exe, &data, &envs, &data);
}

#[test]
fn unit_layout_keeps_the_master_key_in_the_state_directory() {
    if let Some(why) = cannot_switch_user() {
        eprintln!("skipped: {why}");
        return;
    }
    let unit = repo_file("scripts/nodepass.service");
    for line in [
        "StateDirectory=nodepass",
        "WorkingDirectory=/var/lib/nodepass",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "unit lacks {line}");
    }
    assert!(
        !unit.contains("NP_MASTER_STATE_DIR"),
        "the unit relies on STATE_DIRECTORY alone"
    );
    // ProtectSystem=strict: the binary's directory is read-only; systemd passes
    // STATE_DIRECTORY=/var/lib/nodepass, owned by the service's user.
    let root = Root::new("unit");
    let exe = root.install_binary("/usr/local/bin/nodepass");
    root.user_dir("/var/lib/nodepass");
    let state = root.at("/var/lib/nodepass");
    let envs = [("STATE_DIRECTORY", state.clone())];
    master_keeps_its_key_across_a_restart(&exe, &state, &envs, &state);
}

#[test]
fn an_unwritable_state_directory_stops_the_master_at_start_naming_the_path() {
    if let Some(why) = cannot_switch_user() {
        eprintln!("skipped: {why}");
        return;
    }
    // The image's layout without NP_MASTER_STATE_DIR: the default <binary dir>/state is
    // /state, in a root-owned directory.
    let root = Root::new("unwritable");
    let exe = root.install_binary("/nodepass");
    root.user_dir("/data");
    let mut master = master_as_user(&exe, &root.at("/data"), &[]);
    let want = format!(
        "state directory {} is not writable",
        root.at("/state").display()
    );
    let line = master.wait_for_line(&want, LIMIT);
    assert!(
        line.is_some_and(|l| l.contains("Permission denied")),
        "{:#?}",
        master.seen
    );
    assert_eq!(master.wait_exit(LIMIT), Some(1));
    master.take_output();
    assert!(
        !master.seen.iter().any(|l| l.contains("Master started")),
        "{:#?}",
        master.seen
    );
}

#[test]
fn ci_builds_and_checks_the_image_when_a_docker_daemon_is_there() {
    let ci = repo_file(".ci/run");
    assert!(
        ci.lines()
            .any(|l| l.trim() == "bash scripts/docker_check.sh"),
        "{ci}"
    );
    let script = repo_file("scripts/docker_check.sh");
    for needle in [
        "docker info",
        "docker build",
        "-v \"$VOLUME:/data\"",
        "API Key loaded from /data/nodepass.json",
    ] {
        assert!(script.contains(needle), "docker_check.sh lacks {needle}");
    }
    let _room = crate::common::isolation::enter(crate::common::isolation::Room::Children);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker_check.sh");
    let syntax = Command::new("bash").arg("-n").arg(path).status();
    assert!(syntax.is_ok_and(|s| s.success()), "docker_check.sh: syntax");
}
