//! Keyed tumbling-window count over generated records through the real task path (source decode →
//! repartition-free grouping → window aggregate → emit on close → sink), on the test driver.
//!
//! `cargo bench -p topology --bench tumbling_count -- [records] [batch]` (defaults: 1,000,000 and 10,000).
//! Prints records/s. The driver keeps every input and output record in memory (it is a test harness), so
//! this is a floor for the engine, not a ceiling.

use std::time::{Duration, Instant};

use topology::{
    Consumed, EmitStrategy, Grouped, Materialized, Produced, Serdes, StreamsBuilder, TestDriver, TimeWindows,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let batch: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);

    let mut b = StreamsBuilder::new();
    b.stream("events", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::as_("by-user"))
        .windowed_by(TimeWindows::of(Duration::from_secs(60)).grace(Duration::from_secs(5)))
        .emit(EmitStrategy::OnWindowClose)
        .count(Materialized::as_("counts"))
        .to_stream()
        .map(|k, v| (k.key, v.unwrap_or(0) as i64))
        .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
    let driver = TestDriver::new(b.build().expect("topology builds"));
    let input = driver.input_topic("events", Serdes::string(), Serdes::i64());

    // 10,000 users, ~2 events per ms, up to 4 s out of order (a deterministic LCG, no dependency).
    let mut seed: u64 = 42;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let keys: Vec<String> = (0..10_000).map(|u| format!("user-{u}")).collect();
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        let m = batch.min(n - sent);
        let records: Vec<(String, i64, i64)> = (sent..sent + m)
            .map(|i| {
                let key = keys[(next() % 10_000) as usize].clone();
                let ts = 1_700_000_000_000 + (i / 2) as i64 - (next() % 4_000) as i64;
                (key, 1, ts)
            })
            .collect();
        input.pipe_batch(records);
        sent += m;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let out = driver.output_topic("counts", Serdes::string(), Serdes::i64()).read_values();
    let counted: i64 = out.iter().sum();
    println!(
        "tumbling_count: {n} records in {elapsed:.2} s = {:.0} records/s; {} window results covering {counted} records; late {}",
        n as f64 / elapsed,
        out.len(),
        driver.metrics().late.values().sum::<u64>()
    );
}
