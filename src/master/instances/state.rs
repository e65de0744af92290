//! The durable state file `<state dir>/nodepass.json`: written atomically (temp file,
//! fsync, rename, fsync of the directory) so a crash leaves the old or the new file, never
//! a torn one; a backup copy; loading with a fallback to the backup.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::atomic_file::is_temp_of;
use super::model::{Instance, Peer, Status, KEY_ID};

/// File name inside the state directory.
pub const FILE_NAME: &str = "nodepass.json";

/// What the file holds.
pub struct Saved {
    /// Master id.
    pub mid: String,
    /// Master alias.
    pub alias: String,
    /// Instances, the key pseudo-instance included.
    pub instances: Vec<Instance>,
}

/// Serialise the master state.
pub fn encode(mid: &str, alias: &str, instances: &[Instance]) -> Vec<u8> {
    let list: Vec<Value> = instances
        .iter()
        .filter(|i| !i.run.deleted)
        .map(|i| {
            let mut v = i.to_json();
            v["base"] = json!(i.base);
            v["reset"] = json!(i.reset);
            v
        })
        .collect();
    let doc = json!({"version": 1, "mid": mid, "alias": alias, "instances": list});
    serde_json::to_vec_pretty(&doc).unwrap_or_default()
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn counters(v: &Value, k: &str) -> [u64; 4] {
    let mut out = [0; 4];
    if let Some(a) = v.get(k).and_then(Value::as_array) {
        for (o, x) in out.iter_mut().zip(a) {
            *o = x.as_u64().unwrap_or(0);
        }
    }
    out
}

fn decode_instance(v: &Value) -> Option<Instance> {
    let id = s(v, "id");
    if id.is_empty() {
        return None;
    }
    let mut inst = Instance::new(id, &s(v, "type"), s(v, "url"), s(v, "config"));
    inst.alias = s(v, "alias");
    inst.restart = v.get("restart").and_then(Value::as_bool).unwrap_or(false);
    inst.status = if inst.is_key() {
        Status::None
    } else {
        Status::Stopped
    };
    let meta = v.get("meta").cloned().unwrap_or(Value::Null);
    let peer = meta.get("peer").cloned().unwrap_or(Value::Null);
    inst.peer = Peer {
        sid: s(&peer, "sid"),
        kind: s(&peer, "type"),
        alias: s(&peer, "alias"),
    };
    if let Some(tags) = meta.get("tags").and_then(Value::as_object) {
        inst.tags = tags
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
    }
    inst.reported.mode = v.get("mode").and_then(Value::as_u64).unwrap_or(0);
    inst.traffic = [
        v.get("tcprx").and_then(Value::as_u64).unwrap_or(0),
        v.get("tcptx").and_then(Value::as_u64).unwrap_or(0),
        v.get("udprx").and_then(Value::as_u64).unwrap_or(0),
        v.get("udptx").and_then(Value::as_u64).unwrap_or(0),
    ];
    inst.base = counters(v, "base");
    inst.reset = counters(v, "reset");
    Some(inst)
}

/// Parse a state file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Saved, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let list = doc
        .get("instances")
        .and_then(Value::as_array)
        .ok_or("no instances array")?;
    let mut instances: Vec<Instance> = Vec::new();
    for inst in list.iter().filter_map(decode_instance) {
        // Duplicate ids (Go's periodic cleanup): keep the first.
        if !instances.iter().any(|i| i.id == inst.id) {
            instances.push(inst);
        }
    }
    // The key instance always comes first.
    instances.sort_by_key(|i| i.id != KEY_ID);
    Ok(Saved {
        mid: s(&doc, "mid"),
        alias: s(&doc, "alias"),
        instances,
    })
}

/// Backup path next to the state file.
pub fn backup_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".backup");
    PathBuf::from(p)
}

/// Why the master refuses to start: a state file exists but neither it nor its backup
/// can be loaded, and starting empty would silently drop every instance and the API key.
#[derive(Debug)]
pub struct LoadError {
    /// The state file.
    pub file: PathBuf,
    /// What is wrong with it ("not found" when only the backup exists).
    pub reason: String,
    /// The backup file.
    pub backup: PathBuf,
    /// What is wrong with the backup.
    pub backup_reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (file, backup) = (self.file.display(), self.backup.display());
        write!(
            f,
            "state file {file} is unusable ({}) and so is its backup {backup} ({}); \
             refusing to start with no instances and a new API key. To start fresh, move both \
             files away (mv {file} {file}.bad; mv {backup} {backup}.bad); to keep the \
             instances, repair the JSON or restore the file from a copy",
            self.reason, self.backup_reason
        )
    }
}

impl std::error::Error for LoadError {}

/// Read and decode one file; `Ok(None)` if it does not exist.
fn read_state(path: &Path) -> Result<Option<Saved>, String> {
    match fs::read(path) {
        Ok(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|e| format!("corrupt: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// "3 instances, API key kept" for the log line after a fallback.
fn summary(saved: &Saved) -> String {
    let count = saved.instances.iter().filter(|i| !i.is_key()).count();
    let key = if saved.instances.iter().any(Instance::is_key) {
        "API key kept"
    } else {
        "no API key in it, a new one is created"
    };
    format!("{count} instances, {key}")
}

/// Remove temp files an interrupted save left next to `file`.
fn remove_leftover_temps(file: &Path) {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let entry = e.file_name().to_string_lossy().into_owned();
        // `np-<pid>.tmp` is what earlier versions left behind.
        let old_style = entry.starts_with("np-") && entry.ends_with(".tmp");
        if old_style || is_temp_of(&entry, &name) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Load the state: the file; if it is missing or unusable, its backup (logged at
/// WARN/ERROR with both names and what was loaded). `Ok(None)` only when neither file
/// exists (a first run). A file that exists but cannot be used, with no usable backup, is
/// an error: the master must not start empty with a new API key without being told to.
pub fn load(file: &Path) -> Result<Option<Saved>, LoadError> {
    remove_leftover_temps(file);
    let backup = backup_path(file);
    let reason = match read_state(file) {
        Ok(Some(saved)) => return Ok(Some(saved)),
        Ok(None) => None,
        Err(reason) => Some(reason),
    };
    let from_backup = read_state(&backup);
    match (reason, from_backup) {
        (None, Ok(None)) => Ok(None),
        (None, Ok(Some(saved))) => {
            log::warn!(
                "loadState: {} not found; loaded the backup {}: {}",
                file.display(),
                backup.display(),
                summary(&saved)
            );
            Ok(Some(saved))
        }
        (Some(reason), Ok(Some(saved))) => {
            let mut aside = file.as_os_str().to_owned();
            aside.push(".corrupt");
            let aside = PathBuf::from(aside);
            let kept = match fs::rename(file, &aside) {
                Ok(()) => format!("the bad file is kept as {}", aside.display()),
                Err(e) => format!("could not keep the bad file ({e}); the next save replaces it"),
            };
            log::error!(
                "loadState: state file {} is unusable ({reason}); loaded the backup {} instead: {}; {kept}",
                file.display(),
                backup.display(),
                summary(&saved)
            );
            Ok(Some(saved))
        }
        (reason, backup_state) => Err(LoadError {
            file: file.to_path_buf(),
            reason: reason.unwrap_or_else(|| "not found".into()),
            backup,
            backup_reason: match backup_state {
                Err(e) => e,
                Ok(_) => "not found".into(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("np-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn state_round_trips_with_counters_and_meta() {
        let mut a = Instance::new(
            "0a0b0c0d".into(),
            "client",
            "client://h:1/t:2".into(),
            "cfg".into(),
        );
        a.alias = "x".into();
        a.traffic = [1, 2, 3, 4];
        a.base = [1, 1, 1, 1];
        a.tags = vec![("k".into(), "v".into())];
        a.status = Status::Running;
        let key = Instance::key("k".repeat(32), "m".into());
        let bytes = encode("mid1", "al", &[a, key]);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.mid, "mid1");
        assert_eq!(back.instances[0].id, KEY_ID);
        let a = &back.instances[1];
        assert_eq!(
            (a.traffic, a.base, a.status),
            ([1, 2, 3, 4], [1, 1, 1, 1], Status::Stopped)
        );
        assert_eq!(a.tags, vec![("k".to_string(), "v".to_string())]);
    }

    #[test]
    fn a_corrupt_file_falls_back_to_the_backup_and_is_kept_aside() {
        let dir = tmpdir("corrupt");
        let file = dir.join(FILE_NAME);
        fs::write(backup_path(&file), encode("from-backup", "", &[])).unwrap();
        fs::write(&file, b"{\"instances\": [tor").unwrap();
        let saved = load(&file).unwrap().expect("the backup");
        assert_eq!(saved.mid, "from-backup");
        assert!(dir.join("nodepass.json.corrupt").exists());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_file_and_backup_is_a_first_run() {
        let dir = tmpdir("first");
        assert!(load(&dir.join(FILE_NAME)).unwrap().is_none());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_corrupt_file_without_a_usable_backup_is_refused_naming_both_files() {
        let dir = tmpdir("refuse");
        let file = dir.join(FILE_NAME);
        fs::write(&file, b"{not json").unwrap();
        let err = load(&file).err().expect("refused");
        let text = err.to_string();
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(text.contains("nodepass.json.backup (not found)"), "{text}");
        assert_eq!(fs::read(&file).unwrap(), b"{not json", "left untouched");
        fs::write(backup_path(&file), b"").unwrap();
        assert!(load(&file).is_err(), "an empty backup is no backup");
        fs::remove_file(&file).unwrap();
        assert!(load(&file).is_err(), "only a corrupt backup left");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn leftover_temp_files_are_removed_at_load() {
        let dir = tmpdir("temps");
        let file = dir.join(FILE_NAME);
        fs::write(dir.join(".nodepass.json.77.3.tmp"), b"x").unwrap();
        fs::write(dir.join("np-77.tmp"), b"x").unwrap();
        fs::write(dir.join("keep.tmp"), b"x").unwrap();
        assert!(load(&file).unwrap().is_none());
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("keep.tmp")]);
        let _ = fs::remove_dir_all(dir);
    }
}
