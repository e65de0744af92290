//! Replays the fuzz inputs on stable Rust through the same harness the cargo-fuzz targets
//! run (`fuzz/harness`): every seed under `fuzz/corpus/<target>/seed-*` and every crash,
//! timeout or out-of-memory input `scripts/fuzz.sh` saved under `fuzz/regressions/<target>/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../../fuzz/harness/mod.rs"]
mod harness;

/// libFuzzer's `-timeout=1` in `scripts/fuzz.sh`; a debug build gets some slack.
const SLOW: Duration = Duration::from_secs(5);

fn inputs(dir: &Path, seeds_only: bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && (!seeds_only || name.starts_with("seed-"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_saved_crash_input_replays_through_its_fuzz_harness() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seeds = 0;
    for (name, run) in harness::TARGETS {
        let mut files = inputs(&fuzz.join("corpus").join(name), true);
        seeds += files.len();
        files.extend(inputs(&fuzz.join("regressions").join(name), false));
        for file in files {
            let data = std::fs::read(&file).expect("read a fuzz input");
            let started = Instant::now();
            run(&data);
            let took = started.elapsed();
            assert!(took < SLOW, "{} took {took:?}", file.display());
        }
    }
    assert!(seeds >= harness::TARGETS.len(), "each target has seeds");
}

#[test]
fn every_target_survives_empty_and_tiny_inputs() {
    for (_, run) in harness::TARGETS {
        for data in [&b""[..], b"\0", b"\xff", b"\n", b"\r\n\r\n", b"0\r\n\r\n"] {
            run(data);
        }
    }
}
