//! Fuzz target `ws_upgrade`: see `fuzz/harness` for what it checks.
#![no_main]

#[path = "../harness/mod.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::ws_upgrade(data));
