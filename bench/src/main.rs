//! `bench`: the benchmark workloads, one per process so peak RSS is each one's own.
//!
//! ```text
//! python3 ../shared/bench/gen_events.py --n 1000000 --seed 42 --out /tmp/events-1m.jsonl
//! cargo run --release -p bench -- e1 --input /tmp/events-1m.jsonl        # the engine (embedded, sled, changelogs)
//! cargo run --release -p bench -- floor-e1 --input /tmp/events-1m.jsonl  # the plain-loop floor
//! cargo run --release -p bench -- table --input /tmp/events-1m.jsonl     # all four, a markdown table
//! cargo run --release -p bench -- nexmark q5 --events 1000000               # a Nexmark query on the engine
//! cargo run --release -p bench -- nexmark-table --events 1000000           # every query and its floor
//! ```
//!
//! Each run prints one JSON line last: {"workload", "events", "wall_s", "events_per_s", "peak_rss_mb",
//! "output_rows", "checksum", "late"}.

mod nexmark;
mod workloads;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use serde_json::json;
use topology::{run_embedded, EmbeddedConfig, Input, Output};
use workloads::Workload;

#[derive(Parser)]
#[command(name = "bench", about = "Benchmark workloads on the embedded runtime and their floors")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Files {
    /// JSON Lines clickstream from gen_events.py.
    #[arg(long)]
    input: PathBuf,
    /// Where the engine writes its rows (default: a temporary file).
    #[arg(long)]
    output: Option<PathBuf>,
    /// State directory (default: a temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Tables: rounds, each running every engine workload then its floor; the median run per row and
    /// the median per-round ratio are reported — this shared machine swings ±30 %.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// E1 on the engine: per user, 5-minute tumbling windows, count and sum(price), on close.
    E1(Files),
    /// E2 on the engine: per session, 30-minute-gap session windows, count and duration, on close.
    E2(Files),
    /// E1 as a plain single-threaded loop over hash maps.
    FloorE1(Files),
    /// E2 as a plain single-threaded loop over hash maps.
    FloorE2(Files),
    /// Runs e1, floor-e1, e2, floor-e2 (each in its own process) and prints a markdown table.
    Table(Files),
    /// A Nexmark query on the engine, over events from the nexmark generator.
    Nexmark(NexmarkArgs),
    /// A Nexmark query as a plain loop (the same rows).
    NexmarkFloor(NexmarkArgs),
    /// Every Nexmark query and its floor (each in its own process), as a markdown table.
    NexmarkTable(NexmarkArgs),
}

#[derive(clap::Args, Clone)]
struct NexmarkArgs {
    /// The query (not used by nexmark-table).
    #[arg(value_enum, default_value = "q0")]
    query: nexmark::Query,
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Read the events as JSON Lines from this file (generated there if missing; parsing is timed)
    /// instead of as typed records from the generator (made ahead in chunks, not timed).
    #[arg(long)]
    input: Option<PathBuf>,
    /// State directory (default: a temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Tables: rounds, each running every query then its floor (medians reported, as for `table`).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

impl NexmarkArgs {
    /// The events file when the run reads one, generated first if needed (not timed).
    fn events_file(&self) -> Result<Option<PathBuf>, String> {
        let Some(path) = self.input.clone() else { return Ok(None) };
        if !path.exists() {
            nexmark::generate(self.events, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(Some(path))
    }
}

/// Peak resident set size of this process, MB (VmHWM).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Prints a run's line. `generator_s`: time spent making input events ahead (Nexmark's typed input),
/// left out of `wall_s` and the rate, and shown when there was any.
fn report(workload: &str, events: u64, wall_s: f64, rows: u64, checksum: String, late: u64, generator_s: f64) {
    let wall_s = wall_s - generator_s;
    let mut line = json!({"workload": workload, "events": events, "wall_s": (wall_s * 1000.0).round() / 1000.0,
        "events_per_s": (events as f64 / wall_s).round(), "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
        "output_rows": rows, "checksum": checksum, "late": late});
    if generator_s > 0.0 {
        line["generator_s"] = json!((generator_s * 1000.0).round() / 1000.0);
    }
    println!("{line}");
}

/// Nanoseconds spent making events ahead, as seconds.
fn seconds(ns: &AtomicU64) -> f64 {
    ns.load(Ordering::Relaxed) as f64 / 1e9
}

/// Runs `topology` on the embedded runtime (sled, changelogs) from `input` into `output` (topic, where)
/// and reports it; `checksum` gives the rows' checksum after the run; `making`: time the input spent
/// making events ahead (ns), not the engine's.
fn run_engine(
    name: &str,
    topology: &topology::Topology,
    (input_topic, input): (&str, Input),
    (output_topic, output): (&str, Output),
    state: PathBuf,
    checksum: impl FnOnce() -> std::io::Result<workloads::Checksum>,
    making: &AtomicU64,
) -> Result<(), String> {
    let mut cfg = EmbeddedConfig::new(&format!("bench-{name}"), state);
    cfg.inputs.push((input_topic.into(), input));
    cfg.outputs.push((output_topic.into(), output));
    let started = Instant::now();
    let summary = run_embedded(topology, &cfg).map_err(|e| e.to_string())?;
    let wall = started.elapsed().as_secs_f64();
    let checksum = checksum().map_err(|e| e.to_string())?;
    let events = summary.records_in.get(input_topic).copied().unwrap_or(0);
    report(name, events, wall, checksum.rows, checksum.hex(), summary.late, seconds(making));
    Ok(())
}

/// A floor's input, buffered.
fn open_lines(path: &std::path::Path) -> Result<std::io::BufReader<std::fs::File>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(std::io::BufReader::with_capacity(1 << 20, file))
}

fn engine(name: &str, workload: Workload, files: &Files) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let output = files.output.clone().unwrap_or_else(|| tmp.path().join("rows.jsonl"));
    let state = files.state_dir.clone().unwrap_or_else(|| tmp.path().join("state"));
    let input = (workloads::INPUT, Input::File(files.input.clone()));
    let checksum = || workloads::checksum_of_output(workload, &output);
    let (topology, rows) = (workloads::topology(workload), (workloads::OUTPUT, Output::File(output.clone())));
    run_engine(name, &topology, input, rows, state, checksum, &AtomicU64::new(0))
}

fn floor(name: &str, workload: Workload, files: &Files) -> Result<(), String> {
    let lines = open_lines(&files.input)?;
    let started = Instant::now();
    let r = workloads::floor_reader(workload, lines).map_err(|e| e.to_string())?;
    report(name, r.events, started.elapsed().as_secs_f64(), r.checksum.rows, r.checksum.hex(), r.late, 0.0);
    Ok(())
}

/// Nexmark's events: the file's lines, or typed records from the generator (at its default 10,000
/// events per second of event time).
const NEXMARK_RATE: usize = 10_000;

fn nexmark_engine(args: &NexmarkArgs) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state = args.state_dir.clone().unwrap_or_else(|| tmp.path().join("state"));
    let name = format!("nexmark-{}", args.query.name());
    let topology = nexmark::topology(args.query);
    let making = Arc::new(AtomicU64::new(0));
    match args.events_file()? {
        // From a file to a file, as E1/E2.
        Some(path) => {
            let output = tmp.path().join("rows.jsonl");
            let checksum = || nexmark::checksum_of_output(&output);
            let rows = (nexmark::OUTPUT, Output::File(output.clone()));
            run_engine(&name, &topology, (nexmark::INPUT, Input::File(path)), rows, state, checksum, &making)
        }
        // From the generator to a typed output (rows summed by their fields, never encoded), as
        // Flink's and Arroyo's Nexmark runs end in a blackhole sink.
        None => {
            let input = Input::Records(nexmark::input(args.events, NEXMARK_RATE, making.clone()));
            let sum = Arc::new(workloads::SharedChecksum::default());
            let rows = (nexmark::OUTPUT, Output::Records(nexmark::typed_output(args.query, sum.clone())));
            run_engine(&name, &topology, (nexmark::INPUT, input), rows, state, || Ok(sum.get()), &making)
        }
    }
}

fn nexmark_floor(args: &NexmarkArgs) -> Result<(), String> {
    let making = Arc::new(AtomicU64::new(0));
    let file = args.events_file()?;
    let started = Instant::now();
    let r = match file {
        Some(path) => nexmark::floor_reader(args.query, open_lines(&path)?).map_err(|e| e.to_string())?,
        None => {
            let events = nexmark::pregenerated(args.events, NEXMARK_RATE, making.clone());
            nexmark::floor_events(args.query, events, nexmark::Rows::Typed)
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let name = format!("floor-nexmark-{}", args.query.name());
    report(&name, r.events, wall, r.checksum.rows, r.checksum.hex(), 0, seconds(&making));
    Ok(())
}

/// Runs `bench <args>` in its own process and returns its last line, parsed.
fn child(args: &[&std::ffi::OsStr]) -> Result<serde_json::Value, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(&exe).args(args).output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let name = args.first().map_or(String::new(), |a| a.to_string_lossy().into_owned());
    let last = text
        .lines()
        .last()
        .ok_or_else(|| format!("{name} printed nothing: {}", String::from_utf8_lossy(&out.stderr)))?;
    serde_json::from_str(last).map_err(|e| format!("{name}: {e}: {last}"))
}

/// The index of the median of `values`.
fn median_at(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order[order.len() / 2]
}

/// An engine run and its floor's, measured `runs` times each: each workload's median run, and the
/// median of the per-round ratios.
struct Pair {
    engine: serde_json::Value,
    floor: serde_json::Value,
    ratio: f64,
}

/// Runs every (engine, floor) pair `runs` rounds, each round running the engine then its floor, so
/// that a pair's two runs see the same spell of this machine (it swings ±30 % over minutes).
fn interleaved(runs: usize, pairs: &[[Vec<&std::ffi::OsStr>; 2]]) -> Result<Vec<Pair>, String> {
    let mut rounds: Vec<Vec<[serde_json::Value; 2]>> = vec![Vec::new(); pairs.len()];
    for _ in 0..runs.max(1) {
        for (pair, args) in rounds.iter_mut().zip(pairs) {
            pair.push([child(&args[0])?, child(&args[1])?]);
        }
    }
    let rate = |v: &serde_json::Value| v["events_per_s"].as_f64().unwrap_or(0.0);
    Ok(rounds
        .into_iter()
        .map(|mut runs| {
            let ratios: Vec<f64> = runs.iter().map(|[e, f]| rate(e) / rate(f).max(1.0)).collect();
            let ratio = ratios[median_at(&ratios)];
            let mut pick = |i: usize| {
                let rates: Vec<f64> = runs.iter().map(|r| rate(&r[i])).collect();
                std::mem::take(&mut runs[median_at(&rates)][i])
            };
            let engine = pick(0);
            let floor = pick(1);
            Pair { engine, floor, ratio }
        })
        .collect())
}

/// Prints (engine, floor) pairs as a markdown table; an error if a pair's rows differ.
fn print_pairs(pairs: &[Pair]) -> Result<(), String> {
    println!("| workload | events | events/s | vs floor | peak RSS MB | output rows | checksum | late |");
    println!("|---|---|---|---|---|---|---|---|");
    for pair in pairs {
        for (i, v) in [&pair.engine, &pair.floor].into_iter().enumerate() {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                v["workload"].as_str().unwrap_or(""),
                v["events"],
                v["events_per_s"],
                if i == 0 { format!("{:.0} %", pair.ratio * 100.0) } else { "floor".into() },
                v["peak_rss_mb"],
                v["output_rows"],
                v["checksum"].as_str().unwrap_or(""),
                v["late"]
            );
        }
        if pair.engine["checksum"] != pair.floor["checksum"] || pair.engine["output_rows"] != pair.floor["output_rows"]
        {
            return Err(format!("{} and its floor disagree", pair.engine["workload"]));
        }
    }
    println!();
    println!("(events/s: each workload's median run; vs floor: the median of the per-round ratios, a round");
    println!("running the engine and then its floor)");
    Ok(())
}

fn nexmark_table(args: &NexmarkArgs) -> Result<(), String> {
    let events = args.events.to_string();
    let file = args.events_file()?;
    let pairs: Vec<[Vec<&std::ffi::OsStr>; 2]> = nexmark::Query::ALL
        .iter()
        .map(|query| {
            ["nexmark", "nexmark-floor"].map(|cmd| {
                let mut argv: Vec<&std::ffi::OsStr> = vec![cmd.as_ref(), query.name().as_ref()];
                argv.extend([std::ffi::OsStr::new("--events"), events.as_ref()]);
                if let Some(path) = &file {
                    argv.extend([std::ffi::OsStr::new("--input"), path.as_os_str()]);
                }
                argv
            })
        })
        .collect();
    print_pairs(&interleaved(args.runs, &pairs)?)
}

fn table(files: &Files) -> Result<(), String> {
    let input = files.input.as_os_str();
    let pairs: Vec<[Vec<&std::ffi::OsStr>; 2]> = [["e1", "floor-e1"], ["e2", "floor-e2"]]
        .iter()
        .map(|names| names.map(|name| vec![name.as_ref(), "--input".as_ref(), input]))
        .collect();
    print_pairs(&interleaved(files.runs, &pairs)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::E1(f) => engine("e1", Workload::E1, f),
        Cmd::E2(f) => engine("e2", Workload::E2, f),
        Cmd::FloorE1(f) => floor("floor-e1", Workload::E1, f),
        Cmd::FloorE2(f) => floor("floor-e2", Workload::E2, f),
        Cmd::Table(f) => table(f),
        Cmd::Nexmark(a) => nexmark_engine(a),
        Cmd::NexmarkFloor(a) => nexmark_floor(a),
        Cmd::NexmarkTable(a) => nexmark_table(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
