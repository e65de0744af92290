//! Every black-box and library-level integration test in one binary, so the shared
//! helpers (`common`) and the crate link once. Each module is one former `tests/*.rs`
//! file; run one area with e.g. `cargo test --test it tunnel_recovery::`.
//!
//! All modules share one process: a test must not change process-wide state (environment
//! variables, signal dispositions, `nodepass::shutdown`); anything that needs its own
//! process runs the real binary as a child ([`common::NodepassProcess`]). Tests that run
//! nodepass in this process and tests that spawn it never overlap
//! ([`common::isolation`]: io_uring-accepted sockets would leak into the children).

mod common;

mod config_cli;
mod fuzz_regressions;
mod hostile_peers;
mod hostile_ports;
mod master_api;
mod master_children;
mod master_http;
mod master_sse;
mod master_state;
mod master_tunnel;
mod ops_deb;
mod ops_docs;
mod ops_idle;
mod ops_output;
mod ops_state_dir;
mod relay_tcp;
mod relay_udp;
mod single_end_cli;
mod tunnel_auth;
mod tunnel_h2;
mod tunnel_h2_wire;
mod tunnel_handshake;
mod tunnel_pending;
mod tunnel_quic;
mod tunnel_quic_wire;
mod tunnel_recovery;
mod tunnel_relay;
mod tunnel_tls;
mod tunnel_udp;
mod tunnel_udp_faults;
mod tunnel_under_attack;
mod tunnel_wire;
mod tunnel_wire_server;
mod tunnel_ws;
mod tunnel_ws_wire;
