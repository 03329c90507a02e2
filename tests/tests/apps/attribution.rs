//! The attribution app: its topology (snapshot) and a replay of generated files on the embedded
//! runtime checked against a brute-force reading of the rules.

use std::collections::BTreeMap;
use std::path::Path;

use attribution::generator::{write_files, GenConfig};
use attribution::{AttributedCheckout, AttributionApp, Checkout, Click, WINDOW_MS};
use topology::{parse_timestamp, run_embedded, Application, EmbeddedConfig, Input, Output};

#[test]
fn the_topology_is_described() {
    insta::assert_snapshot!(AttributionApp::topology().unwrap().describe().to_string());
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// checkout id → (click id, user name), straight from the rules.
fn expected(dir: &Path) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let clicks: Vec<Click> = read(&dir.join("clicks.jsonl"));
    let checkouts: Vec<Checkout> = read(&dir.join("checkouts.jsonl"));
    let mut out = BTreeMap::new();
    for c in checkouts {
        let t = parse_timestamp(&c.datetime_occured).unwrap();
        let first = clicks
            .iter()
            .filter(|k| k.user_id == c.user_id && k.product_id == c.product_id)
            .map(|k| (parse_timestamp(&k.datetime_occured).unwrap(), k.click_id.clone()))
            .filter(|(kt, _)| *kt <= t && t <= kt + WINDOW_MS)
            .min();
        out.insert(c.checkout_id, (first.map(|(_, id)| id), Some(format!("user_{}", c.user_id))));
    }
    out
}

#[test]
fn a_replay_of_generated_files_attributes_every_checkout_by_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_files(&GenConfig { seed: 11, users: 40, clicks: 4_000, ..Default::default() }, &data).unwrap();
    let out = dir.path().join("attributed.jsonl");
    let mut cfg = EmbeddedConfig::new(AttributionApp::ID, dir.path().join("state"));
    for t in ["users", "clicks", "checkouts"] {
        cfg.inputs.push((t.into(), Input::File(data.join(format!("{t}.jsonl")))));
    }
    cfg.outputs.push(("attributed_checkouts".into(), Output::File(out.clone())));
    cfg.partitions = 2;
    let summary = run_embedded(&AttributionApp::topology().unwrap(), &cfg).unwrap();
    let lines: Vec<serde_json::Value> = read(&out);
    let got: BTreeMap<String, (Option<String>, Option<String>)> = lines
        .into_iter()
        .map(|l| {
            let a: AttributedCheckout = serde_json::from_value(l["value"].clone()).unwrap();
            (a.checkout_id, (a.click_id, a.user_name))
        })
        .collect();
    let want = expected(&data);
    assert!(want.len() > 800, "{} checkouts generated", want.len());
    assert_eq!(summary.records_out["attributed_checkouts"], want.len() as u64, "one output per checkout");
    let wrong: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).map(|(k, v)| (k, v, got.get(k))).collect();
    assert!(
        wrong.is_empty(),
        "{} of {} differ (id, want, got): {:?}",
        wrong.len(),
        want.len(),
        &wrong[..wrong.len().min(8)]
    );
    assert_eq!(summary.dead_lettered, 0);
}

#[test]
fn on_kafka_generated_traffic_is_attributed_by_the_rules() {
    use std::time::{Duration, Instant};

    use topology::testing::{Broker, Build};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_files(&GenConfig { seed: 5, users: 30, clicks: 1_500, ..Default::default() }, &data).unwrap();
    let lines = |name: &str| -> Vec<String> {
        std::fs::read_to_string(data.join(format!("{name}.jsonl"))).unwrap().lines().map(str::to_string).collect()
    };
    let broker = Broker::start(Build::CratesIo);
    for t in ["users", "clicks", "checkouts"] {
        broker.create_topic(t, 2);
    }
    let app = crate::KafkaApp::start::<AttributionApp>(&broker, &dir.path().join("state"));
    // Traffic in the order it happens, each kind consumed before the next arrives, as live traffic would
    // be (a backlog of several topics is read in no particular order across partitions): users, clicks,
    // the checkouts that follow them, then a click two hours later on many keys, so every task's stream
    // time passes the last checkout's grace (Kafka has no end of input).
    let deadline = Instant::now() + Duration::from_secs(120);
    let feed = |topic: &str, lines: &[String], key: &dyn Fn(&serde_json::Value) -> String| {
        crate::feed(&broker, AttributionApp::ID, topic, lines, key, "datetime_occured", deadline)
    };
    feed("users", &lines("users"), &|v| v["id"].to_string());
    // Users reach their table through a repartition topic: consumed from `users` is not yet in the
    // table (under load, checkouts could otherwise be joined before their user arrives).
    let users_by_id = format!("{}-users-by-id-repartition", AttributionApp::ID);
    crate::wait_consumed(&broker, AttributionApp::ID, &users_by_id, lines("users").len() as i64, deadline);
    feed("clicks", &lines("clicks"), &|v| v["click_id"].as_str().unwrap().to_string());
    feed("checkouts", &lines("checkouts"), &|v| v["checkout_id"].as_str().unwrap().to_string());
    let last: i64 = lines("checkouts")
        .iter()
        .map(|l| parse_timestamp(serde_json::from_str::<Checkout>(l).unwrap().datetime_occured.as_str()).unwrap())
        .max()
        .unwrap();
    let ticks: Vec<String> = (0..32)
        .map(|n| {
            serde_json::json!({"click_id": format!("tick-{n}"), "user_id": 100_000 + n, "product_id": "tick",
                "product": "tick", "price": 0.0, "url": "", "user_agent": "", "ip_address": "",
                "datetime_occured": attribution::generator::format_time(last + 2 * WINDOW_MS)})
            .to_string()
        })
        .collect();
    feed("clicks", &ticks, &|v| v["click_id"].as_str().unwrap().to_string());

    let want = expected(&data);
    let values = crate::read_values(&broker, "attributed_checkouts", deadline, |v| v.len() >= want.len());
    let outputs = values.len();
    let mut got = BTreeMap::new();
    for v in values {
        let a: AttributedCheckout = serde_json::from_value(v).unwrap();
        got.insert(a.checkout_id, (a.click_id, a.user_name));
    }
    let summary = app.stop();
    let wrong: Vec<_> = want.iter().filter(|(k, v)| got.get(*k) != Some(v)).map(|(k, v)| (k, v, got.get(k))).collect();
    assert!(wrong.is_empty(), "{} of {} differ: {:?}", wrong.len(), want.len(), &wrong[..wrong.len().min(5)]);
    assert_eq!(outputs, want.len(), "one output per checkout");
    assert_eq!(summary.records_in["checkouts"], want.len() as u64);
}
