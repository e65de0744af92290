//! The durable state file `<state dir>/nodepass.json`: written atomically (temp file,
//! fsync, rename, fsync of the directory) so a crash leaves the old or the new file, never
//! a torn one; a backup copy; loading with a fallback to the backup.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

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
    inst.mode = v.get("mode").and_then(Value::as_i64).unwrap_or(0) as i32;
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

/// Write `bytes` to `path` so that a crash at any point leaves the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("np-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Backup path next to the state file.
pub fn backup_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".backup");
    PathBuf::from(p)
}

/// Load the state: the file, else its backup (with an ERROR line), else nothing.
/// Leftover temp files of an interrupted save are removed first.
pub fn load(file: &Path) -> Option<Saved> {
    if let Some(dir) = file.parent() {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("np-") && name.ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
    let main = match fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return load_backup(file),
        Err(e) => {
            log::error!("loadState: read {} failed: {e}", file.display());
            return load_backup(file);
        }
    };
    match decode(&main) {
        Ok(saved) => Some(saved),
        Err(e) => {
            log::error!(
                "loadState: {} is corrupt ({e}); loading the backup",
                file.display()
            );
            let mut aside = file.as_os_str().to_owned();
            aside.push(".corrupt");
            let _ = fs::rename(file, PathBuf::from(aside));
            load_backup(file)
        }
    }
}

fn load_backup(file: &Path) -> Option<Saved> {
    let backup = backup_path(file);
    let bytes = fs::read(&backup).ok()?;
    match decode(&bytes) {
        Ok(saved) => {
            log::error!("loadState: using backup {}", backup.display());
            Some(saved)
        }
        Err(e) => {
            log::error!(
                "loadState: backup {} is corrupt too ({e}); starting empty",
                backup.display()
            );
            None
        }
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
    fn a_corrupt_file_falls_back_to_the_backup() {
        let dir = tmpdir("corrupt");
        let file = dir.join(FILE_NAME);
        write_atomic(&backup_path(&file), &encode("from-backup", "", &[])).unwrap();
        fs::write(&file, b"{\"instances\": [tor").unwrap();
        assert_eq!(load(&file).unwrap().mid, "from-backup");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temp() {
        let dir = tmpdir("atomic");
        let file = dir.join(FILE_NAME);
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let _ = fs::remove_dir_all(dir);
    }
}
