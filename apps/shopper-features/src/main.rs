//! `shopper-features describe|run …` (the shared runner) and `shopper-features gen …` (sample enriched
//! TSV).

use std::process::ExitCode;

use clap::Parser;

/// Writes realistic Snowplow enriched TSV (ecommerce actions, client sessions, marketing, devices).
#[derive(Debug, Parser)]
#[command(name = "shopper-features gen")]
struct Gen {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Shoppers.
    #[arg(long, default_value_t = 50)]
    users: u32,
    /// Minutes of event time.
    #[arg(long, default_value_t = 60)]
    minutes: u32,
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("gen") {
        return topology::app::main::<shopper_features::ShopperFeaturesApp>();
    }
    let g: Gen = match topology::app::subcommand(&args) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let cfg = shopper_features::generator::GenConfig {
        seed: g.seed,
        users: g.users.max(1),
        minutes: g.minutes,
        ..Default::default()
    };
    let result = match &g.out {
        Some(path) => std::fs::File::create(path)
            .and_then(|f| shopper_features::generator::write(&cfg, &mut std::io::BufWriter::new(f))),
        None => shopper_features::generator::write(&cfg, &mut std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
