//! The Debian package: what `[package.metadata.deb]` and `debian/` put in it, the postinst
//! run against stub commands (it creates the user and the state directory, and touches
//! nothing real), and, when `bash scripts/deb.sh` has built a `.deb`, that package
//! installed with `dpkg --root` into a temp root. The suite never builds the package
//! (a release build takes minutes); that test skips with a message when there is none.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::cli::run_nodepass;
use crate::common::isolation::{enter, Room};
use crate::common::TempDir;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `NODEPASS_URL=` value of an environment file.
fn url_of(env_file: &str) -> String {
    env_file
        .lines()
        .find_map(|l| l.strip_prefix("NODEPASS_URL="))
        .expect("NODEPASS_URL= line")
        .to_string()
}

#[test]
fn package_metadata_installs_binary_unit_and_environment_file() {
    let cargo = read(&repo().join("Cargo.toml"));
    let deb = cargo
        .split("[package.metadata.deb]")
        .nth(1)
        .expect("[package.metadata.deb] in Cargo.toml");
    for asset in [
        r#"["target/release/nodepass", "usr/bin/", "755"]"#,
        r#"["debian/nodepass.service", "lib/systemd/system/nodepass.service", "644"]"#,
        r#"["debian/nodepass.env", "etc/nodepass/nodepass.env", "640"]"#,
    ] {
        assert!(deb.contains(asset), "asset {asset} missing");
    }
    assert!(deb.contains(r#"maintainer-scripts = "debian/""#));
    assert!(deb.contains(r#"conf-files = ["/etc/nodepass/nodepass.env"]"#));

    let unit = read(&repo().join("debian/nodepass.service"));
    for line in [
        "EnvironmentFile=/etc/nodepass/nodepass.env",
        "ExecStart=/usr/bin/nodepass \"${NODEPASS_URL}\"",
        "User=nodepass",
        "StateDirectory=nodepass",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    // The default URL is one nodepass accepts.
    let url = url_of(&read(&repo().join("debian/nodepass.env")));
    let check = run_nodepass(&["--check", &url], &[], Duration::from_secs(10));
    assert_eq!(check.status.code(), Some(0), "{url}: {}", check.stderr);
    let _room = enter(Room::Children);
    for script in ["postinst", "prerm", "postrm"] {
        let path = repo().join("debian").join(script);
        let mode = std::fs::metadata(&path).expect(script).permissions().mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
        let syntax = Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .expect("sh -n");
        assert!(syntax.success(), "{script}: shell syntax error");
    }
}

/// Stubs for every command the postinst runs: each appends its name and arguments to `log`.
fn stub_path(dir: &Path, log: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("stub dir");
    for name in [
        "getent",
        "useradd",
        "install",
        "chown",
        "chmod",
        "systemctl",
    ] {
        let stub = bin.join(name);
        // getent finds no user, so the postinst creates one.
        let status = if name == "getent" { 2 } else { 0 };
        let body = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\nexit {status}\n",
            log.display()
        );
        std::fs::write(&stub, body).expect("write stub");
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755))
            .expect("chmod stub");
    }
    bin
}

#[test]
fn postinst_creates_the_user_and_the_state_directory() {
    let dir = TempDir::new("postinst");
    let log = dir.0.join("calls");
    let bin = stub_path(&dir.0, &log);
    let _room = enter(Room::Children);
    let status = Command::new("/bin/sh")
        .arg(repo().join("debian/postinst"))
        .arg("configure")
        .env_clear()
        .env("PATH", &bin)
        .status()
        .expect("run postinst");
    assert!(status.success());
    let calls = read(&log);
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.first(), Some(&"getent passwd nodepass"), "{calls}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("useradd --system --user-group")
                && l.contains("--home-dir /var/lib/nodepass")
                && l.ends_with(" nodepass")),
        "{calls}"
    );
    assert!(
        lines.contains(&"install -d -o nodepass -g nodepass -m 0750 /var/lib/nodepass"),
        "{calls}"
    );
    assert!(
        lines.contains(&"chown root:nodepass /etc/nodepass/nodepass.env"),
        "{calls}"
    );
    assert!(
        lines.contains(&"chmod 0640 /etc/nodepass/nodepass.env"),
        "{calls}"
    );
}

/// The newest `target/debian/nodepass_*.deb`, if `scripts/deb.sh` built one.
fn built_deb() -> Option<PathBuf> {
    let dir = repo().join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("nodepass_") && name.ends_with(".deb")
        })
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn built_package_installs_into_a_temp_root_with_its_files() {
    let Some(deb) = built_deb() else {
        eprintln!("skipped: no target/debian/nodepass_*.deb (build one with bash scripts/deb.sh)");
        return;
    };
    if !Command::new("dpkg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipped: dpkg is not installed");
        return;
    }
    let _room = enter(Room::Children);
    let control = run(Command::new("dpkg-deb").arg("--field").arg(&deb));
    assert!(control.contains("Package: nodepass"), "{control}");
    assert!(
        control.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{control}"
    );
    assert!(
        control.contains("passwd"),
        "Depends names passwd (useradd): {control}"
    );

    // A dpkg database of its own: unpack installs the files and records them, and runs no
    // maintainer script (postinst is covered with stubs above), so nothing real changes.
    let root = TempDir::new("deb-root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.0.join(d)).expect("dpkg dirs");
    }
    std::fs::write(root.0.join("var/lib/dpkg/status"), "").expect("status");
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.0.display()))
        .args(["--force-depends", "--force-not-root", "--unpack"])
        .arg(&deb));
    let listed = run(Command::new("dpkg")
        .arg(format!("--root={}", root.0.display()))
        .args(["-L", "nodepass"]));
    for file in [
        "/usr/bin/nodepass",
        "/lib/systemd/system/nodepass.service",
        "/etc/nodepass/nodepass.env",
    ] {
        assert!(
            listed.lines().any(|l| l == file),
            "{file} not installed: {listed}"
        );
    }
    // Unpacked, not configured: a conffile waits as .dpkg-new until configure renames it.
    let env_file = root.0.join("etc/nodepass/nodepass.env.dpkg-new");
    for file in ["usr/bin/nodepass", "lib/systemd/system/nodepass.service"] {
        assert!(root.0.join(file).exists(), "{file} missing");
    }
    assert!(env_file.exists(), "{} missing", env_file.display());
    let info = root.0.join("var/lib/dpkg/info");
    assert!(info.join("nodepass.postinst").exists(), "postinst recorded");
    assert!(read(&info.join("nodepass.conffiles")).contains("/etc/nodepass/nodepass.env"));
    // The installed binary runs and accepts the installed default URL.
    let bin = root.0.join("usr/bin/nodepass");
    let url = url_of(&read(&env_file));
    let version = run(Command::new(&bin).arg("--version"));
    assert_eq!(version, format!("nodepass {}\n", env!("CARGO_PKG_VERSION")));
    run(Command::new(&bin).arg("--check").arg(&url));
}
