//! Keyed tumbling-window count through the real task path (source decode → window aggregate → emit on
//! close → sink) on the test driver, with in-memory stores, sled + cache, or sled + cache + changelog.
//!
//! ```text
//! cargo bench -p topology --bench tumbling_count                  # the table: every mode at 1M and 10M
//! cargo bench -p topology --bench tumbling_count -- run sled-changelog 1000000
//! ```
//! One process per measurement, so peak RSS (VmHWM) belongs to that measurement. The driver keeps no
//! records (`keep_records(false)`), pipes batches of 10,000 records, commits every 100,000 (about every
//! 100 ms of wall time at 1M records/s, Kafka Streams' exactly-once commit interval) and holds 10,000
//! user keys.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use topology::{
    Consumed, EmitStrategy, Grouped, Materialized, Produced, Serdes, StateConfig, StreamsBuilder, TestDriver,
    TimeWindows, Topology,
};

const BATCH: u64 = 10_000;
const COMMIT_EVERY: u64 = 100_000;
const KEYS: u64 = 10_000;

fn topology(logging: bool) -> Topology {
    let mut b = StreamsBuilder::new();
    let store = if logging { Materialized::as_("counts") } else { Materialized::as_("counts").without_logging() };
    b.stream("events", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::as_("by-user"))
        .windowed_by(TimeWindows::of(Duration::from_secs(60)).grace(Duration::from_secs(5)))
        .emit(EmitStrategy::OnWindowClose)
        .count(store)
        .to_stream()
        .map(|k, v| (k.key, v.unwrap_or(0) as i64))
        .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
    b.build().expect("topology builds")
}

fn driver(mode: &str, dir: &Path) -> TestDriver {
    let b = TestDriver::builder(topology(mode != "sled")).application_id("bench").keep_records(false);
    match mode {
        "memory" => b,
        _ => b.state(StateConfig::new(dir)),
    }
    .build()
    .expect("driver builds")
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn dir_size(p: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// One measurement; prints a JSON line.
fn run(mode: &str, n: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = driver(mode, dir.path());
    let input = d.input_topic("events", Serdes::string(), Serdes::i64());
    // ~2 events per ms, up to 4 s out of order; a deterministic LCG.
    let mut seed: u64 = 42;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let keys: Vec<String> = (0..KEYS).map(|u| format!("user-{u}")).collect();
    let mut elapsed = Duration::ZERO;
    let mut sent = 0u64;
    while sent < n {
        let m = BATCH.min(n - sent);
        let records: Vec<(String, i64, i64)> = (sent..sent + m)
            .map(|i| {
                (
                    keys[(next() % KEYS) as usize].clone(),
                    1,
                    1_700_000_000_000 + (i / 2) as i64 - (next() % 4_000) as i64,
                )
            })
            .collect();
        let start = Instant::now();
        input.pipe_batch(records);
        sent += m;
        if sent.is_multiple_of(COMMIT_EVERY) || sent == n {
            d.commit().expect("commit");
        }
        elapsed += start.elapsed();
    }
    let outputs = d.records_written("counts");
    let state_bytes = dir_size(dir.path());
    let mut restore = String::from("null");
    if mode == "sled-changelog" {
        d.close().expect("close");
        std::fs::remove_dir_all(dir.path().join("bench").join("0_0")).expect("task dir");
        let start = Instant::now();
        let d = driver(mode, dir.path());
        let secs = start.elapsed().as_secs_f64();
        let stats = d.restore_stats();
        let _ = secs;
        restore = format!(
            "{{\"records\": {}, \"records_per_s\": {:.0}}}",
            stats.records,
            stats.records as f64 / (stats.micros as f64 / 1e6)
        );
    }
    println!(
        "{{\"mode\": \"{mode}\", \"records\": {n}, \"wall_s\": {:.3}, \"records_per_s\": {:.0}, \"window_results\": {outputs}, \"peak_rss_mb\": {:.1}, \"state_dir_mb\": {:.1}, \"restore\": {restore}}}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        peak_rss_mb(),
        state_bytes as f64 / 1048576.0,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.first().map(String::as_str) == Some("run") {
        let n = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
        return run(args.get(1).map_or("memory", String::as_str), n);
    }
    let sizes: Vec<u64> = if args.is_empty() {
        vec![1_000_000, 10_000_000]
    } else {
        args.iter().filter_map(|a| a.parse().ok()).collect()
    };
    println!("| mode | records | records/s | vs memory | peak RSS MB | state dir MB | restore records/s |");
    println!("|---|---|---|---|---|---|---|");
    let exe = std::env::current_exe().expect("own path");
    for n in sizes {
        let mut memory_rate = 0.0;
        for mode in ["memory", "sled", "sled-changelog"] {
            let out = Command::new(&exe).args(["run", mode, &n.to_string()]).output().expect("child runs");
            let line = String::from_utf8_lossy(&out.stdout);
            let v: serde_json::Value =
                serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("bad output: {line}"));
            let rate = v["records_per_s"].as_f64().unwrap_or(0.0);
            if mode == "memory" {
                memory_rate = rate;
            }
            let restore = v["restore"]["records_per_s"].as_f64().map_or("-".to_string(), |r| format!("{r:.0}"));
            println!(
                "| {mode} | {n} | {rate:.0} | {:.2} | {:.1} | {:.1} | {restore} |",
                rate / memory_rate,
                v["peak_rss_mb"].as_f64().unwrap_or(0.0),
                v["state_dir_mb"].as_f64().unwrap_or(0.0),
            );
        }
    }
}
