//! `attribution describe|run …` (the shared runner) and `attribution gen …` (sample files).

use std::process::ExitCode;

use clap::Parser;

/// Writes users.jsonl, clicks.jsonl and checkouts.jsonl for a run on files.
#[derive(Debug, Parser)]
#[command(name = "attribution gen")]
struct Gen {
    /// Random seed (same seed, same files).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Users.
    #[arg(long, default_value_t = 100)]
    users: u32,
    /// Clicks.
    #[arg(long, default_value_t = 10_000)]
    clicks: u32,
    /// Share of clicks followed by a checkout of the same product.
    #[arg(long, default_value_t = 0.3)]
    checkout_ratio: f64,
    /// Output directory.
    #[arg(long, default_value = "attribution-data")]
    out: std::path::PathBuf,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("gen") {
        let g: Gen = match topology::app::subcommand(&args) {
            Ok(g) => g,
            Err(code) => return code,
        };
        let cfg = attribution::generator::GenConfig {
            seed: g.seed,
            users: g.users.max(1),
            clicks: g.clicks,
            checkout_ratio: g.checkout_ratio.clamp(0.0, 1.0),
            ..Default::default()
        };
        return match attribution::generator::write_files(&cfg, &g.out) {
            Ok(()) => {
                eprintln!("wrote {}/{{users,clicks,checkouts}}.jsonl", g.out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", g.out.display());
                ExitCode::from(1)
            }
        };
    }
    topology::app::main::<attribution::AttributionApp>()
}
