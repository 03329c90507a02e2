//! The shopper-features app: its topology (snapshot), every emitted rolling value against a brute-force
//! computation over the generated events, and the Redis sink against a real redis-server.

use std::collections::{BTreeMap, BTreeSet};

use shopper_features::event::{parse, ShopperEvent};
use shopper_features::generator::{generate, GenConfig};
use shopper_features::ShopperFeaturesApp;
use topology::{run_embedded, Application, EmbeddedConfig, Input, Output, RunSummary};

#[test]
fn the_topology_is_described() {
    insta::assert_snapshot!(ShopperFeaturesApp::topology().unwrap().describe().to_string());
}

/// Generated events in a file, and an embedded run over them writing `shopper_features`.
fn run(
    dir: &std::path::Path,
    cfg: &GenConfig,
    partitions: u32,
    redis: Option<String>,
) -> (Vec<ShopperEvent>, Vec<serde_json::Value>, RunSummary) {
    let lines = generate(cfg);
    let input = dir.join("events.tsv");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = dir.join("features.jsonl");
    let mut run = EmbeddedConfig::new(ShopperFeaturesApp::ID, dir.join("state"));
    run.inputs.push((shopper_features::INPUT.into(), Input::File(input)));
    run.outputs.push((shopper_features::OUTPUT.into(), Output::File(output.clone())));
    run.partitions = partitions;
    run.redis = redis.map(|url| topology::RedisOutput {
        url,
        mapper: std::sync::Arc::new(|t: &str, r: &topology::RawRecord| ShopperFeaturesApp::redis_commands(t, r)),
        max_buffered: 1_000_000,
        tls: Default::default(),
    });
    let summary = run_embedded(&ShopperFeaturesApp::topology().unwrap(), &run).unwrap();
    let events = lines.iter().map(|l| parse(l).unwrap()).collect();
    let features =
        std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (events, features, summary)
}

#[test]
fn every_rolling_value_is_what_a_brute_force_count_over_the_window_gives() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = GenConfig { seed: 5, users: 40, minutes: 90, ..Default::default() };
    let (events, features, summary) = run(dir.path(), &cfg, 2, None);
    assert_eq!(summary.dead_lettered, 0);
    assert_eq!(summary.late, 0, "{summary:?}");
    let size = |w: &str| match w {
        "5m" => 5 * 60_000,
        "1h" => 60 * 60_000,
        _ => 24 * 60 * 60_000,
    };
    let mut checked = BTreeMap::<String, usize>::new();
    for f in &features {
        let (key, tick) = (f["key"].as_str().unwrap(), f["timestamp"].as_i64().unwrap());
        let value = f["value"]["value"].as_str().unwrap();
        let Some(rest) = key.strip_prefix("user:") else { continue };
        let (user, metric) = rest.rsplit_once(':').unwrap();
        let (name, w) = metric.rsplit_once('_').unwrap();
        let in_window: Vec<&ShopperEvent> =
            events.iter().filter(|e| e.user_key == user && e.time >= tick - size(w) && e.time < tick).collect();
        let count = |t: &str| in_window.iter().filter(|e| e.event_type == t).count().to_string();
        let expected = match name {
            "cart_add_count" => count("add_to_cart"),
            "cart_remove_count" => count("remove_from_cart"),
            "product_view_count" => in_window
                .iter()
                .filter(|e| e.event_type == "product_view")
                .flat_map(|e| e.products.iter().map(|p| p.id.clone()))
                .collect::<BTreeSet<_>>()
                .len()
                .to_string(),
            "unique_categories" => in_window
                .iter()
                .flat_map(|e| match e.event_type.as_str() {
                    "list_view" => e.list_name.clone().into_iter().collect::<Vec<_>>(),
                    "product_view" => e.products.iter().filter_map(|p| p.category.clone()).collect(),
                    _ => Vec::new(),
                })
                .collect::<BTreeSet<_>>()
                .len()
                .to_string(),
            _ => continue,
        };
        assert_eq!(value, expected, "{key} at {tick}");
        *checked.entry(format!("{name}_{w}")).or_default() += 1;
    }
    for metric in ["cart_add_count_5m", "cart_remove_count_1h", "product_view_count_5m", "unique_categories_24h"] {
        assert!(checked.get(metric).copied().unwrap_or(0) > 50, "{metric}: {checked:?}");
    }
}

#[test]
fn with_redis_every_feature_is_set_with_its_ttl_and_an_outage_loses_nothing() {
    use std::time::Duration;

    use topology::testing::{free_port, RedisServer};

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    // Redis is down while the run processes everything and comes back two seconds later; the run's
    // final flush waits for it.
    let (run_dir, run_url) = (dir.path().to_path_buf(), url.clone());
    let cfg = GenConfig { seed: 3, users: 10, minutes: 20, ..Default::default() };
    let run = std::thread::spawn(move || run(&run_dir, &cfg, 1, Some(run_url)));
    std::thread::sleep(Duration::from_secs(2));
    let server = RedisServer::start(Some(port), None);
    let (_, features, summary) = run.join().unwrap();
    assert!(summary.redis_outages >= 1, "the outage is counted: {summary:?}");
    assert_eq!(summary.redis_commands, features.len() as u64, "one SETEX per feature record");
    let latest: BTreeMap<String, String> = features
        .iter()
        .map(|f| (f["key"].as_str().unwrap().to_string(), f["value"]["value"].as_str().unwrap().to_string()))
        .collect();
    assert!(latest.keys().any(|k| k.starts_with("session:")) && latest.keys().any(|k| k.ends_with("_24h")));
    let mut conn = server.client(&url);
    let keys: BTreeSet<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    assert_eq!(keys, latest.keys().cloned().collect(), "every key written, none lost");
    for (key, value) in &latest {
        let got: String = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
        assert_eq!(&got, value, "{key}");
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut conn).unwrap();
        assert!((590..=600).contains(&ttl), "{key}: TTL {ttl}");
    }
}

#[test]
fn through_the_broker_every_feature_equals_the_one_computed_on_files() {
    use std::time::{Duration, Instant};

    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::Message;
    use topology::testing::{Broker, Build};

    let dir = tempfile::tempdir().unwrap();
    let cfg = GenConfig { seed: 11, users: 10, minutes: 15, ..Default::default() };
    let (_, on_files, _) = run(dir.path(), &cfg, 1, None);
    let on_files: BTreeSet<String> = on_files.iter().map(|f| f.to_string()).collect();

    let broker = Broker::start(Build::CratesIo);
    broker.create_topic(shopper_features::INPUT, 1);
    let app = crate::KafkaApp::start::<ShopperFeaturesApp>(&broker, &dir.path().join("kafka"));
    let producer: BaseProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).create().unwrap();
    for line in generate(&cfg) {
        // As Snowplow's Kafka sink writes them: no key, the TSV line as the value.
        let mut record = BaseRecord::<(), str>::to(shopper_features::INPUT).payload(&line);
        while let Err((_, r)) = producer.send(record) {
            record = r;
            producer.poll(Duration::from_millis(5));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let consumer = crate::checker(&broker, shopper_features::OUTPUT);
    // Without an end of input, the ticks closed by the last events' stream time are all that is emitted.
    let (deadline, mut quiet_since) = (Instant::now() + Duration::from_secs(120), Instant::now());
    let mut through_broker = Vec::new();
    while Instant::now() < deadline && (through_broker.is_empty() || quiet_since.elapsed() < Duration::from_secs(10)) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let ts = m.timestamp().to_millis().unwrap();
            through_broker.push(serde_json::json!({"key": key, "timestamp": ts, "value": value}).to_string());
            quiet_since = Instant::now();
        }
    }
    app.stop();
    assert!(through_broker.len() * 10 > on_files.len() * 8, "{} of {}", through_broker.len(), on_files.len());
    for f in &through_broker {
        assert!(on_files.contains(f), "{f} is not among the features computed on files");
    }
}
