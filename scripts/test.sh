#!/usr/bin/env bash
# The project's test command (quoted in README.md and run by .ci/run).
# Black-box tests start the real binary, so build it first; every test binds 127.0.0.1:0.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin nodepass
# Unit, integration and doc-free targets; benches are measured, never run as tests
# (clippy --all-targets in .ci/run still compiles them).
cargo test --lib --bins --tests -- --test-threads="${TEST_THREADS:-4}"
