//! Enriched TSV events per second end to end on the embedded runtime: parse → five lanes → feature
//! records on `shopper_features` (a file), then the same with every feature also SETEX'd to a real
//! redis-server on a free port. Generated events (`shopper-features gen`), state on disk (sled behind
//! the write-back cache), at-least-once, one commit a second.
//!
//! ```text
//! cargo bench -p shopper-features --bench throughput              # 2,000 shoppers × 60 min
//! BENCH_USERS=500 BENCH_MINUTES=30 cargo bench -p shopper-features --bench throughput
//! ```

use std::time::Instant;

use shopper_features::generator::{generate, GenConfig};
use shopper_features::ShopperFeaturesApp;
use topology::testing::RedisServer;
use topology::{run_embedded, Application, EmbeddedConfig, Input, Output, RedisOutput};

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let cfg = GenConfig {
        seed: 7,
        users: env("BENCH_USERS", 2_000),
        minutes: env("BENCH_MINUTES", 60),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.tsv");
    let lines = generate(&cfg);
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let bytes = std::fs::metadata(&input).unwrap().len();
    println!(
        "shopper-features throughput: {} events ({:.1} MB of enriched TSV), {} shoppers over {} minutes",
        lines.len(),
        bytes as f64 / 1e6,
        cfg.users,
        cfg.minutes
    );
    let redis = RedisServer::start(None, None);
    for with_redis in [false, true] {
        let mut run = EmbeddedConfig::new(ShopperFeaturesApp::ID, dir.path().join(format!("state-{with_redis}")));
        run.inputs.push((shopper_features::INPUT.into(), Input::File(input.clone())));
        run.outputs
            .push((shopper_features::OUTPUT.into(), Output::File(dir.path().join(format!("out-{with_redis}.jsonl")))));
        if with_redis {
            run.redis = Some(RedisOutput {
                url: redis.url(),
                mapper: std::sync::Arc::new(|t: &str, r: &topology::RawRecord| {
                    ShopperFeaturesApp::redis_commands(t, r)
                }),
                max_buffered: 1_000_000,
                tls: Default::default(),
            });
        }
        let started = Instant::now();
        let summary = run_embedded(&ShopperFeaturesApp::topology().unwrap(), &run).unwrap();
        let secs = started.elapsed().as_secs_f64();
        let features = summary.records_out.get(shopper_features::OUTPUT).copied().unwrap_or(0);
        println!(
            "  {:<14} {:>8.0} events/s  {:>9.0} feature records/s  ({} features, {} Redis commands, {:.1} s)",
            if with_redis { "with Redis" } else { "topic only" },
            lines.len() as f64 / secs,
            features as f64 / secs,
            features,
            summary.redis_commands,
            secs
        );
    }
}
