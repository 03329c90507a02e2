//! `fraud describe|run …` (the shared runner), `fraud gen …` (labelled traffic) and `fraud eval …`
//! (precision and recall of the rules on it).

use std::process::ExitCode;

use clap::Parser;

/// Writes transactions.jsonl, user_events.jsonl and labels.jsonl.
#[derive(Debug, Parser)]
#[command(name = "fraud gen")]
struct Gen {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Transactions per second of event time.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Seconds of event time.
    #[arg(long, default_value_t = 600)]
    seconds: u32,
    #[arg(long, default_value = "fraud-data")]
    out: std::path::PathBuf,
}

/// Prints precision and recall of `requires_review` against the labels.
#[derive(Debug, Parser)]
#[command(name = "fraud eval")]
struct Eval {
    /// The `transactions_scored` output file (envelope lines).
    #[arg(long)]
    scored: std::path::PathBuf,
    /// The labels written by `fraud gen`.
    #[arg(long)]
    labels: std::path::PathBuf,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") => {
            let g: Gen = match topology::app::subcommand(&args) {
                Ok(g) => g,
                Err(code) => return code,
            };
            let cfg = fraud::generator::GenConfig {
                seed: g.seed,
                rate: g.rate.max(1),
                seconds: g.seconds,
                ..Default::default()
            };
            match fraud::generator::write_files(&cfg, &g.out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", g.out.display());
                    ExitCode::from(1)
                }
            }
        }
        Some("eval") => {
            let e: Eval = match topology::app::subcommand(&args) {
                Ok(e) => e,
                Err(code) => return code,
            };
            let read =
                |p: &std::path::Path| std::fs::read_to_string(p).map_err(|err| format!("{}: {err}", p.display()));
            match read(&e.scored).and_then(|s| read(&e.labels).and_then(|l| fraud::generator::evaluate(&s, &l))) {
                Ok(ev) => {
                    println!(
                        "precision {:.3} recall {:.3} (tp {}, fp {}, fn {})",
                        ev.precision(),
                        ev.recall(),
                        ev.true_positives,
                        ev.false_positives,
                        ev.false_negatives
                    );
                    for (pattern, flagged, labelled) in ev.per_pattern {
                        println!("  {pattern}: {flagged}/{labelled} flagged");
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(1)
                }
            }
        }
        _ => {
            // The topology reads the FRAUD_* variables itself; a bad one stops the run here.
            if let Err(e) = fraud::Rules::from_env().and_then(|_| fraud::inputs_keyed_by_user_from_env()) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            topology::app::main::<fraud::FraudApp>()
        }
    }
}
