//! The fraud app: its topology (snapshot) and the rules on generated, labelled traffic.

use fraud::generator::{evaluate, write_files, GenConfig};
use fraud::FraudApp;
use topology::{run_embedded, Application, EmbeddedConfig, Input, Output};

#[test]
fn the_topology_is_described() {
    insta::assert_snapshot!(FraudApp::topology().unwrap().describe().to_string());
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
