//! Crash-safe, race-free file replacement for the state file and its backup.
//!
//! [`write_atomic`] writes a temp file with a name no other write can use (pid and a
//! per-process counter), fsyncs it, renames it over the target and fsyncs the directory, so
//! a crash leaves the old or the new content and two writes at once never share a temp
//! file. A [`Writer`] orders the writes of one file: a save takes a ticket when its bytes
//! are encoded, and a write whose ticket is older than the last one written is dropped, so
//! a slow background save can never replace a newer final save.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Suffix of every temp file; `is_temp_of` recognises leftovers of an interrupted write.
const TEMP_SUFFIX: &str = ".tmp";

/// A temp path next to `path` that no other write (thread or process) uses.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(".{name}.{}.{n}{TEMP_SUFFIX}", std::process::id()))
}

/// True if `entry_name` is a temp file of a write to a file named `file_name`.
pub fn is_temp_of(entry_name: &str, file_name: &str) -> bool {
    entry_name.ends_with(TEMP_SUFFIX)
        && entry_name
            .strip_prefix('.')
            .is_some_and(|rest| rest.starts_with(&format!("{file_name}.")))
}

/// Mode of every file written here: the state file holds the API key and tunnel keys
/// (Go creates it 0644).
pub const FILE_MODE: u32 = 0o600;

/// Write `bytes` to `path` so that a crash at any point leaves the old or the new content.
/// The file is [`FILE_MODE`] (owner only) from its first byte, and so is a file it replaces.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        // A leftover temp of the same name keeps its old mode through `open`: set it.
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
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

/// The one writer of a file: writes happen one at a time and never go back in time.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    issued: AtomicU64,
    written: Mutex<u64>,
}

impl Writer {
    /// A writer for `path`.
    pub fn new(path: PathBuf) -> Self {
        Writer {
            path,
            issued: AtomicU64::new(0),
            written: Mutex::new(0),
        }
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take a ticket; do it when the content is encoded, so tickets order the contents.
    pub fn ticket(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Write `bytes` for `ticket`; `Ok(false)` if a newer content is already on disk.
    pub fn write(&self, ticket: u64, bytes: &[u8]) -> std::io::Result<bool> {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if ticket <= *written {
            return Ok(false);
        }
        write_atomic(&self.path, bytes)?;
        *written = ticket;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("np-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temp() {
        let dir = tmpdir("replace");
        let file = dir.join("nodepass.json");
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn written_files_are_owner_only_even_over_a_world_readable_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmpdir("mode");
        let file = dir.join("nodepass.json");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        write_atomic(&file, b"one").unwrap();
        assert_eq!(mode(&file), 0o600);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(mode(&file), 0o600, "a 0644 file rewritten becomes 0600");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn concurrent_atomic_writes_never_fail_and_never_leave_a_mixed_file() {
        let dir = tmpdir("concurrent");
        let file = Arc::new(dir.join("nodepass.json"));
        let contents: Vec<Vec<u8>> = (0..4u8).map(|i| vec![b'a' + i; 64 * 1024]).collect();
        let writers: Vec<_> = contents
            .iter()
            .cloned()
            .map(|bytes| {
                let file = file.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        write_atomic(&file, &bytes).expect("a write racing others succeeds");
                    }
                })
            })
            .collect();
        let mut reads = 0;
        while writers.iter().any(|w| !w.is_finished()) || reads == 0 {
            if let Ok(now) = fs::read(&*file) {
                assert!(contents.contains(&now), "a torn or mixed file was visible");
                reads += 1;
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(contents.contains(&fs::read(&*file).unwrap()));
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "a temp file was left"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_late_write_of_older_content_never_replaces_a_newer_save() {
        let dir = tmpdir("tickets");
        let w = Arc::new(Writer::new(dir.join("nodepass.json")));
        let (old, new) = (w.ticket(), w.ticket());
        assert!(w.write(new, b"final").unwrap());
        assert!(
            !w.write(old, b"stale").unwrap(),
            "the stale write is dropped"
        );
        assert_eq!(fs::read(w.path()).unwrap(), b"final");
        // Many threads with interleaved tickets: the file ends with the newest content.
        let tickets: Vec<u64> = (0..32).map(|_| w.ticket()).collect();
        let last = *tickets.last().unwrap();
        let threads: Vec<_> = tickets
            .into_iter()
            .rev()
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || w.write(t, t.to_string().as_bytes()).unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(fs::read(w.path()).unwrap(), last.to_string().as_bytes());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn temp_names_are_recognised_only_for_their_file() {
        let tmp = temp_path(Path::new("/x/nodepass.json"));
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(is_temp_of(name, "nodepass.json"));
        assert!(!is_temp_of(name, "other.json"));
        assert!(!is_temp_of("nodepass.json", "nodepass.json"));
        assert_ne!(tmp, temp_path(Path::new("/x/nodepass.json")));
    }
}
