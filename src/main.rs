//! `nodepass <URL>`: parse the URL, start the mode, map errors to exit codes (64 = bad configuration).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 1 {
        eprintln!("usage: nodepass <server://…|client://…|master://…>");
        std::process::exit(64);
    }
    match nodepass::config::parse_url(&args[0], nodepass::config::Env::default()) {
        Ok(cfg) => std::process::exit(nodepass::app::run(cfg)),
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(64);
        }
    }
}
