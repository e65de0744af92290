//! `nodepass <URL>`: parse the URL, start the mode, map errors to exit codes (64 = bad configuration).
//! `nodepass --check <URL>` only parses and prints the effective URL.

use std::io::IsTerminal as _;

use nodepass::config::{parse_url, usage, Config, ConfigError, Env};

/// Exit code for a bad URL or bad usage (BSD `EX_USAGE`); nothing was started.
const EXIT_USAGE: i32 = 64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = match args.as_slice() {
        [flag] if flag == "--help" || flag == "-h" => {
            print!("{}", usage());
            return;
        }
        [flag] if flag == "--version" || flag == "-V" => {
            println!("nodepass {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        [flag, url] if flag == "--check" => {
            let cfg = parse_or_exit(url);
            // Every default filled in, the form the master shows as an instance's config;
            // `parse_url` reads it back to the same settings.
            println!("{}", cfg.full_url());
            return;
        }
        [url] if url != "--check" => url,
        _ => {
            eprint!("{}", usage());
            std::process::exit(EXIT_USAGE);
        }
    };
    let cfg = parse_or_exit(url);
    nodepass::logging::set_colour(!cfg.env.no_color && std::io::stdout().is_terminal());
    nodepass::logging::init(cfg.params.log);
    std::process::exit(nodepass::app::run(cfg));
}

/// The configuration of `url`, or exit 64 with what is wrong.
fn parse_or_exit(url: &str) -> Config {
    parse_url(url, Env::from_process()).unwrap_or_else(|e: ConfigError| {
        eprintln!("Error: {e}");
        eprintln!("Run \"nodepass --help\" for the URL format, parameters and environment.");
        std::process::exit(EXIT_USAGE);
    })
}
