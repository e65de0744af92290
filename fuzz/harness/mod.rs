//! One function per fuzz target: the parser call and the invariants it must keep.
//!
//! The cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the stable replay test
//! (`tests/it/fuzz_regressions.rs`) both include this module with `#[path]`, so a crash
//! input replays through exactly the code that found it. Each function takes the raw
//! fuzzer bytes and panics only when an invariant breaks.

mod master;
mod misc;
mod proto;
mod ws;

pub use master::{master_chunked, master_http, master_json};
pub use misc::{checkpoint, config_url, proxy_v2};
pub use proto::{auth_profile, handshake_reply, handshake_request, signal_line};
pub use ws::{ws_frames, ws_upgrade};

/// A target's body: the raw fuzzer input in, a panic if an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name, in the order `scripts/fuzz.sh` runs them.
#[allow(dead_code)]
pub const TARGETS: [(&str, Target); 12] = [
    ("config_url", config_url),
    ("handshake_request", handshake_request),
    ("handshake_reply", handshake_reply),
    ("signal_line", signal_line),
    ("auth_profile", auth_profile),
    ("master_http", master_http),
    ("master_chunked", master_chunked),
    ("master_json", master_json),
    ("checkpoint", checkpoint),
    ("proxy_v2", proxy_v2),
    ("ws_upgrade", ws_upgrade),
    ("ws_frames", ws_frames),
];

/// Splits off a length-prefixed field: the first byte (mod `max + 1`) says how many of
/// the following bytes belong to it.
fn take_field(data: &[u8], max: usize) -> (&[u8], &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (&[], &[]);
    };
    let n = (n as usize % (max + 1)).min(rest.len());
    rest.split_at(n)
}

/// Text from fuzzer bytes (invalid UTF-8 replaced), for fields that must be strings.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
