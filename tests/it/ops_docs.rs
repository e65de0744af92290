//! The documentation tells the truth: README's parameter and variable tables are the ones
//! `--help` is rendered from (`src/config/reference.rs`), every name shows in `--help`, and
//! `--check` prints the effective URL or exits 64.

use std::path::PathBuf;
use std::time::Duration;

use nodepass::config::reference::{params_markdown, vars_markdown, PARAMS, VARS};

use crate::common::cli::run_nodepass;

const LIMIT: Duration = Duration::from_secs(10);

fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

/// README's text between `<!-- BEGIN name… -->\n` and `<!-- END name -->`, with the byte
/// range it occupies.
fn generated_block(readme: &str, name: &str) -> (usize, usize) {
    let begin = format!("<!-- BEGIN {name}:");
    let start = readme
        .find(&begin)
        .and_then(|i| readme[i..].find('\n').map(|j| i + j + 1))
        .unwrap_or_else(|| panic!("README lacks the {begin} marker"));
    let end = readme[start..]
        .find(&format!("<!-- END {name} -->"))
        .map(|j| start + j)
        .unwrap_or_else(|| panic!("README lacks <!-- END {name} -->"));
    (start, end)
}

#[test]
fn readme_tables_are_rendered_from_the_help_reference() {
    let path = readme_path();
    let mut readme = std::fs::read_to_string(&path).expect("read README.md");
    let tables = [("params", params_markdown()), ("vars", vars_markdown())];
    // NP_BLESS_README=1 rewrites the tables after an edit of reference.rs.
    let bless = std::env::var_os("NP_BLESS_README").is_some_and(|v| v == "1");
    for (name, want) in &tables {
        let (start, end) = generated_block(&readme, name);
        if bless {
            readme.replace_range(start..end, want);
        } else {
            assert_eq!(
                &readme[start..end],
                want.as_str(),
                "README's {name} table differs from src/config/reference.rs; \
                 run NP_BLESS_README=1 cargo test --test it readme"
            );
        }
    }
    if bless {
        std::fs::write(&path, readme).expect("write README.md");
    }
}

#[test]
fn help_shows_every_parameter_and_variable_of_the_reference() {
    let out = run_nodepass(&["--help"], &[], LIMIT);
    assert_eq!(out.status.code(), Some(0));
    for d in PARAMS {
        assert!(
            out.stdout.contains(&format!("\n  {} ", d.name)),
            "{}",
            d.name
        );
    }
    for d in VARS {
        assert!(
            out.stdout.contains(&format!("\n  {} ", d.name)),
            "{}",
            d.name
        );
    }
    for name in [
        "NP_RELAY",
        "NP_MASTER_STATE_DIR",
        "NO_COLOR",
        "STATE_DIRECTORY",
    ] {
        assert!(out.stdout.contains(name), "{name}");
    }
    assert!(!out.stdout.contains('`'), "no Markdown in --help");
}

#[test]
fn help_and_readme_show_mode_2_in_every_two_host_client_example() {
    let help = run_nodepass(&["--help"], &[], LIMIT).stdout;
    let readme = std::fs::read_to_string(readme_path()).expect("read README.md");
    for text in [help.as_str(), readme.as_str()] {
        // A client URL with a key that dials another host is a tunnel example.
        for example in text
            .split('"')
            .filter(|s| s.starts_with("client://") && s.contains('@'))
        {
            assert!(
                example.contains("mode=2"),
                "tunnel client example without mode=2: {example}"
            );
        }
    }
}

#[test]
fn check_prints_the_effective_url_with_every_default_and_exits_zero() {
    let out = run_nodepass(
        &["--check", "server://secret@:10101/127.0.0.1:8080?tls=1"],
        &[],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "server://secret@:10101/127.0.0.1:8080?dns=5m0s&max=1024&mode=0&type=0&dial=auto&read=0s\
         &rate=0&slot=65536&proxy=0&block=0&notcp=0&noudp=0&log=info&tls=1\n"
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // What --check prints is a URL --check accepts again, unchanged.
    let again = run_nodepass(&["--check", out.stdout.trim_end()], &[], LIMIT);
    assert_eq!(again.stdout, out.stdout);

    let client = run_nodepass(
        &[
            "--check",
            "client://k@server.example:10101/127.0.0.1:80?mode=2",
        ],
        &[],
        LIMIT,
    );
    assert_eq!(client.status.code(), Some(0), "{}", client.stderr);
    assert!(client.stdout.starts_with(
        "client://k@server.example:10101/127.0.0.1:80?dns=5m0s&sni=server.example&min=64&mode=2&"
    ));
    let master = run_nodepass(&["--check", "master://:9090"], &[], LIMIT);
    assert_eq!(master.stdout, "master://:9090/api?log=info&tls=0\n");
}

#[test]
fn check_of_a_bad_url_or_no_url_exits_64_and_prints_nothing_on_stdout() {
    let out = run_nodepass(&["--check", "client://nohost"], &[], LIMIT);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        out.stderr.contains("missing port in tunnel address"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    let out = run_nodepass(&["--check"], &[], LIMIT);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stderr.contains("--check <URL>"), "{}", out.stderr);
}
