//! The fraud app: its topology (snapshot) and the rules on generated, labelled traffic.

use fraud::generator::{evaluate, write_files, GenConfig};
use fraud::FraudApp;
use topology::{run_embedded, Application, EmbeddedConfig, Input, Output};

#[test]
fn the_topology_is_described() {
    insta::assert_snapshot!(FraudApp::topology().unwrap().describe().to_string());
}

fn keyed_topology() -> topology::Topology {
    let mut builder = topology::StreamsBuilder::new();
    fraud::build(&mut builder, true);
    builder.build().unwrap()
}

#[test]
fn with_inputs_keyed_by_user_the_topology_has_no_repartition() {
    insta::assert_snapshot!(keyed_topology().describe().to_string());
}

#[test]
fn on_generated_traffic_every_alert_is_a_labelled_fraud_and_every_single_shot_pattern_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_files(&GenConfig { seed: 9, rate: 10, seconds: 300, ..Default::default() }, &data).unwrap();
    let scored = dir.path().join("scored.jsonl");
    let mut cfg = EmbeddedConfig::new(FraudApp::ID, dir.path().join("state"));
    cfg.inputs.push(("transactions".into(), Input::File(data.join("transactions.jsonl"))));
    cfg.inputs.push(("user_events".into(), Input::File(data.join("user_events.jsonl"))));
    cfg.outputs.push(("transactions_scored".into(), Output::File(scored.clone())));
    cfg.partitions = 2;
    let summary = run_embedded(&FraudApp::topology().unwrap(), &cfg).unwrap();
    assert_eq!(summary.records_out["transactions_scored"], summary.records_in["transactions"]);
    let ev = evaluate(
        &std::fs::read_to_string(&scored).unwrap(),
        &std::fs::read_to_string(data.join("labels.jsonl")).unwrap(),
    )
    .unwrap();
    assert!(ev.true_positives > 20, "{ev:?}");
    assert_eq!(ev.false_positives, 0, "{ev:?}");
    for (pattern, flagged, labelled) in &ev.per_pattern {
        match pattern.as_str() {
            // Bursts: the first transactions of a burst cannot fire yet (velocity needs 5, card testing 3).
            "velocity" => assert_eq!(*flagged * 3, *labelled, "2 of 6 per burst"),
            "card_testing" => assert_eq!(*flagged * 2, *labelled, "2 of 4 per burst"),
            _ => assert_eq!(flagged, labelled, "{pattern}"),
        }
    }
}

#[test]
fn with_redis_down_alerts_still_reach_the_topic_and_redis_catches_up_when_it_returns() {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use topology::testing::{free_port, RedisServer};
    use topology::RedisOutput;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_files(&GenConfig { seed: 4, rate: 10, seconds: 120, ..Default::default() }, &data).unwrap();
    let (scored, alerts) = (dir.path().join("scored.jsonl"), dir.path().join("alerts.jsonl"));
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut cfg = EmbeddedConfig::new(FraudApp::ID, dir.path().join("state"));
    cfg.inputs.push(("transactions".into(), Input::File(data.join("transactions.jsonl"))));
    cfg.inputs.push(("user_events".into(), Input::File(data.join("user_events.jsonl"))));
    cfg.outputs.push(("transactions_scored".into(), Output::File(scored.clone())));
    cfg.outputs.push(("fraud_alerts".into(), Output::File(alerts.clone())));
    cfg.redis = Some(RedisOutput {
        url: url.clone(),
        mapper: std::sync::Arc::new(|t: &str, r: &topology::RawRecord| FraudApp::redis_commands(t, r)),
        max_buffered: 1_000_000,
        tls: Default::default(),
    });
    // Redis is down while the run processes everything, and comes back two seconds later; the run's
    // final flush waits for it.
    let run = std::thread::spawn(move || run_embedded(&FraudApp::topology().unwrap(), &cfg));
    std::thread::sleep(Duration::from_secs(2));
    let server = RedisServer::start(Some(port), None);
    let summary = run.join().unwrap().unwrap();
    let alert_lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&alerts).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!alert_lines.is_empty());
    assert_eq!(summary.records_out["fraud_alerts"], alert_lines.len() as u64, "the topic got every alert");
    assert!(summary.redis_outages >= 1, "the outage is counted: {summary:?}");
    let mut conn = server.client(&url);
    let list: Vec<String> = redis::cmd("LRANGE").arg("recent_alerts:fraud").arg(0).arg(-1).query(&mut conn).unwrap();
    assert_eq!(list.len(), alert_lines.len().min(100), "newest 100 alerts kept");
    let newest: serde_json::Value = serde_json::from_str(&list[0]).unwrap();
    assert_eq!(newest, alert_lines.last().unwrap()["value"], "LPUSH: the newest first");
    let ttl: i64 = redis::cmd("TTL").arg("recent_alerts:fraud").query(&mut conn).unwrap();
    assert!((86_000..=86_400).contains(&ttl), "24 h expiry, got {ttl}");
    let users: BTreeSet<String> = std::fs::read_to_string(&scored)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["value"]["transaction"]["user_id"].to_string())
        .collect();
    let keys: Vec<String> = redis::cmd("KEYS").arg("user:*:fraud:last_score").query(&mut conn).unwrap();
    assert_eq!(keys.len(), users.len(), "a last score per user, none lost");
    assert_eq!(summary.redis_commands, summary.records_out["transactions_scored"] + 2 * alert_lines.len() as u64);
}

/// The transactions that require review, by id, from envelope lines or raw values.
fn reviewed(values: impl Iterator<Item = serde_json::Value>) -> std::collections::BTreeSet<String> {
    values
        .filter(|v| v["requires_review"] == true)
        .map(|v| v["transaction"]["transaction_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn through_the_broker_the_same_traffic_raises_the_same_alerts_as_on_files() {
    same_alerts_through_the_broker(false);
}

#[test]
fn with_inputs_keyed_by_user_the_broker_raises_the_same_alerts_too() {
    same_alerts_through_the_broker(true);
}

fn same_alerts_through_the_broker(keyed: bool) {
    use std::time::{Duration, Instant};

    use topology::testing::{Broker, Build};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_files(&GenConfig { seed: 21, rate: 5, seconds: 240, ..Default::default() }, &data).unwrap();
    let lines = |name: &str| -> Vec<String> {
        std::fs::read_to_string(data.join(format!("{name}.jsonl"))).unwrap().lines().map(str::to_string).collect()
    };
    // On files.
    let scored = dir.path().join("scored.jsonl");
    let mut cfg = EmbeddedConfig::new(FraudApp::ID, dir.path().join("embedded"));
    cfg.inputs.push(("transactions".into(), Input::File(data.join("transactions.jsonl"))));
    cfg.inputs.push(("user_events".into(), Input::File(data.join("user_events.jsonl"))));
    cfg.outputs.push(("transactions_scored".into(), Output::File(scored.clone())));
    run_embedded(&FraudApp::topology().unwrap(), &cfg).unwrap();
    let on_files = reviewed(
        std::fs::read_to_string(&scored)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["value"].clone()),
    );
    assert!(on_files.len() > 5, "{on_files:?}");

    // Through the broker: logins first (each fraud login precedes its transactions), then transactions,
    // keyed by user so each user's records keep their order.
    let broker = Broker::start(Build::CratesIo);
    broker.create_topic("transactions", 2);
    broker.create_topic("user_events", 2);
    let app = if keyed {
        crate::KafkaApp::start_with(&broker, &dir.path().join("kafka"), FraudApp::ID, keyed_topology)
    } else {
        crate::KafkaApp::start::<FraudApp>(&broker, &dir.path().join("kafka"))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let user = |v: &serde_json::Value| v["user_id"].as_str().unwrap().to_string();
    crate::feed(&broker, FraudApp::ID, "user_events", &lines("user_events"), user, "timestamp", deadline);
    let transactions = lines("transactions");
    crate::produce(&broker, "transactions", &transactions, user, "timestamp");
    let values = crate::read_values(&broker, "transactions_scored", deadline, |v| v.len() >= transactions.len());
    app.stop();
    assert_eq!(values.len(), transactions.len(), "every transaction scored once");
    assert_eq!(reviewed(values.into_iter()), on_files);
}
