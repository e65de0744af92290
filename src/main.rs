//! `nodepass <URL>`: parse the URL, start the mode, map errors to exit codes (64 = bad configuration).

use nodepass::config::{parse_url, usage, Env};

/// Exit code for a bad URL or bad usage (BSD `EX_USAGE`); nothing was started.
const EXIT_USAGE: i32 = 64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arg] = args.as_slice() else {
        eprint!("{}", usage());
        std::process::exit(EXIT_USAGE);
    };
    match arg.as_str() {
        "--help" | "-h" => {
            print!("{}", usage());
            return;
        }
        "--version" | "-V" => {
            println!("nodepass {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        _ => {}
    }
    match parse_url(arg, Env::from_process()) {
        Ok(cfg) => {
            nodepass::logging::init(cfg.params.log);
            std::process::exit(nodepass::app::run(cfg));
        }
        Err(e) => {
            eprintln!("Error: {e}");
            eprintln!("Run \"nodepass --help\" for the URL format, parameters and environment.");
            std::process::exit(EXIT_USAGE);
        }
    }
}
