//! The `--help` text: every mode, query parameter and variable with its default, rendered
//! from the one reference in `reference.rs` (README's tables come from the same lists).

use super::reference::{plain, PARAMS, VARS};

/// The full usage text printed by `nodepass --help` (and, on misuse, to stderr).
pub fn usage() -> String {
    let mut text = format!(
        "nodepass {} - TCP/UDP tunnel, wire-compatible with NodePass v1.14.0\n\n\
         Usage: nodepass <URL>\n\
         \x20      nodepass --check <URL>   validate, print the effective URL, start nothing\n\
         \x20      nodepass --help | --version\n\n\
         Modes:\n\
         \x20 server://[key@]<tunnel_host:port>/<target_host:port>[,…][?query]\n\
         \x20     public end: accepts the client's tunnel, serves or dials the targets\n\
         \x20 client://[key@]<tunnel_host:port>/<target_host:port>[,…][?query]\n\
         \x20     private end: dials the server's tunnel (mode=2), or forwards alone (mode=1)\n\
         \x20 master://[<host>]:<port>[/<prefix>][?log=&tls=&crt=&key=]\n\
         \x20     REST API under <prefix>/v1 (default /api) that runs server and client instances\n\n\
         The key is the URL username; without one it is derived from the port string.\n\
         Hosts may be names, IPv4, or [IPv6]; an empty tunnel host means all addresses.\n\
         Durations use Go syntax: 300ms, 1.5s, 5m, 1h30m.\n\n\
         Query parameters (name  modes  default  meaning):\n",
        env!("CARGO_PKG_VERSION")
    );
    for d in PARAMS {
        let (name, modes, default) = (d.name, d.modes, plain(d.default));
        let meaning = plain(d.meaning);
        let lead = format!("  {name:<6} {modes:<15} ");
        push_row(&mut text, &lead, &default, 13, &meaning);
    }
    text.push_str("\nEnvironment (invalid, zero or negative values mean the default):\n");
    for d in VARS {
        let (name, default, meaning) = (d.name, plain(d.default), plain(d.meaning));
        push_row(&mut text, &format!("  {name:<21} "), &default, 15, &meaning);
    }
    text.push_str(
        "\nExamples:\n\
         \x20 nodepass \"server://secret@:10101/127.0.0.1:8080?tls=1\"\n\
         \x20 nodepass \"client://secret@server.example:10101/127.0.0.1:8080?mode=2\"\n\
         \x20 nodepass \"client://127.0.0.1:1080/10.0.0.5:8080?mode=1\"\n\
         \x20 nodepass \"master://:9090/api?tls=1\"\n\
         \x20 nodepass --check \"server://secret@:10101/127.0.0.1:8080\"\n\n\
         Exit code 64 means a bad URL or bad usage; nothing was started.\n",
    );
    text
}

/// One table row; a default wider than its column puts the meaning on the next line,
/// aligned under the meaning column.
fn push_row(text: &mut String, lead: &str, default: &str, width: usize, meaning: &str) {
    if default.chars().count() <= width {
        text.push_str(&format!("{lead}{default:<width$} {meaning}\n"));
    } else {
        let indent = " ".repeat(lead.chars().count() + width + 1);
        text.push_str(&format!("{lead}{default}\n{indent}{meaning}\n"));
    }
}
