//! One driver test per rule, with window edges and the amount-spike warm-up.

use serde_json::json;
use topology::{Application, Serdes, TestDriver, TestInputTopic, TestOutputTopic};

use crate::*;

const T0: i64 = 1_700_000_000_000;

struct Fixture {
    driver: TestDriver,
    tx: TestInputTopic<String, String>,
    events: TestInputTopic<String, String>,
    scored: TestOutputTopic<String, Scored>,
}

fn fixture() -> Fixture {
    let driver = TestDriver::builder(FraudApp::topology().unwrap()).application_id("fraud").build().unwrap();
    let tx = driver.input_topic("transactions", Serdes::string(), Serdes::string());
    let events = driver.input_topic("user_events", Serdes::string(), Serdes::string());
    let scored = driver.output_topic("transactions_scored", Serdes::string(), Serdes::json::<Scored>());
    Fixture { driver, tx, events, scored }
}

/// A plain transaction of `user` at `t` (known device "d1", matching addresses, card payment).
fn tx(id: &str, user: &str, amount: f64, t: i64) -> serde_json::Value {
    json!({"transaction_id": id, "user_id": user, "order_id": "o", "amount": amount, "currency": "USD",
        "payment_method": "credit_card", "items": ["p1"], "timestamp": topology::format_timestamp(t), "ip_address": "10.0.0.1",
        "country": "US", "device_id": "d1", "shipping_address": {"country": "US"},
        "billing_address": {"country": "US"}})
}

impl Fixture {
    fn send(&self, v: serde_json::Value) -> Scored {
        let t = topology::parse_timestamp(v["timestamp"].as_str().unwrap()).unwrap();
        self.tx.pipe(String::new(), v.to_string(), t);
        self.scored.read_values().pop().expect("every transaction is scored")
    }
    /// Sends a transaction and returns the rules that fired.
    fn reasons(&self, v: serde_json::Value) -> Vec<String> {
        self.send(v).reasons
    }
    fn login(&self, user: &str, country: &str, t: i64) {
        let v = json!({"event_id": "e", "user_id": user, "session_id": "s", "event_type": "login",
            "country": country, "device_id": "d1", "timestamp": topology::format_timestamp(t)});
        self.events.pipe(String::new(), v.to_string(), t);
    }
    /// A first transaction so the device is known.
    fn warm(&self, user: &str, t: i64) {
        self.send(tx("warm", user, 10.0, t));
    }
}

fn has(r: &[String], rule: &str) -> bool {
    r.iter().any(|x| x == rule)
}

#[test]
fn amounts_above_1000_and_5000_fire_and_exactly_1000_does_not() {
    // One user per amount (so no amount spike against the others).
    let f = fixture();
    for u in ["a", "b", "c", "d"] {
        f.warm(u, T0);
    }
    assert!(f.reasons(tx("a", "a", 1000.0, T0 + 1)).is_empty());
    assert_eq!(f.reasons(tx("b", "b", 1000.01, T0 + 2)), vec!["high_amount"]);
    assert_eq!(f.reasons(tx("c", "c", 5000.0, T0 + 3)), vec!["high_amount"]);
    let s = f.send(tx("d", "d", 5000.01, T0 + 4));
    assert_eq!(s.reasons, vec!["high_amount", "very_high_amount"]);
    assert_eq!((s.fraud_score, s.risk_level, s.requires_review), (0.5, RiskLevel::Medium, false));
}

#[test]
fn prepaid_and_gift_cards_are_risky_payments() {
    let f = fixture();
    f.warm("u", T0);
    for (i, m) in ["prepaid_card", "gift_card"].iter().enumerate() {
        let mut v = tx(&format!("t{i}"), "u", 50.0, T0 + 1 + i as i64);
        v["payment_method"] = json!(m);
        assert_eq!(f.reasons(v), vec!["risky_payment"]);
    }
}

#[test]
fn velocity_fires_at_the_fifth_transaction_within_ten_minutes() {
    let f = fixture();
    f.warm("u", T0 - 10 * 60_000); // exactly 10 minutes before the 5th below: outside the window
    for k in 0..4 {
        assert!(!has(&f.reasons(tx("v", "u", 20.0, T0 + k * 60_000)), "velocity"));
    }
    assert!(has(&f.reasons(tx("v5", "u", 20.0, T0 + 4 * 60_000 - 1)), "velocity"), "5 within 10 min");
    let f = fixture();
    f.warm("w", T0);
    for k in 1..4 {
        f.send(tx("v", "w", 20.0, T0 + k * 60_000));
    }
    assert!(!has(&f.reasons(tx("late", "w", 20.0, T0 + 10 * 60_000)), "velocity"), "the first left the window");
}

#[test]
fn card_testing_needs_three_small_amounts_within_five_minutes() {
    let f = fixture();
    f.warm("u", T0);
    assert!(!has(&f.reasons(tx("s1", "u", 4.99, T0 + 1)), "card_testing"));
    assert!(!has(&f.reasons(tx("big", "u", 5.0, T0 + 2)), "card_testing"), "5.00 is not small");
    assert!(!has(&f.reasons(tx("s2", "u", 1.0, T0 + 3)), "card_testing"));
    assert!(has(&f.reasons(tx("s3", "u", 2.0, T0 + 5 * 60_000 - 1)), "card_testing"));
    assert!(!has(&f.reasons(tx("s4", "u", 2.0, T0 + 10 * 60_000)), "card_testing"), "the others left the window");
}

#[test]
fn amount_spike_needs_three_earlier_transactions_and_five_times_their_mean() {
    let f = fixture();
    f.send(tx("h1", "u", 10.0, T0));
    f.send(tx("h2", "u", 10.0, T0 + 60 * 60_000));
    assert!(!has(&f.reasons(tx("early", "u", 500.0, T0 + 120 * 60_000)), "amount_spike"), "only 2 earlier");
    // Earlier now: 10, 10, 500 → mean 173.33; 5× = 866.67.
    assert!(!has(&f.reasons(tx("no", "u", 866.0, T0 + 180 * 60_000)), "amount_spike"));
    // Earlier: 10, 10, 500, 866 → mean 346.5; 5× = 1732.5.
    assert!(has(&f.reasons(tx("yes", "u", 1733.0, T0 + 240 * 60_000)), "amount_spike"));
}

#[test]
fn a_login_from_another_country_within_five_minutes_is_impossible_travel() {
    let f = fixture();
    f.warm("u", T0);
    f.login("u", "BR", T0 + 60_000);
    assert!(has(&f.reasons(tx("t1", "u", 20.0, T0 + 6 * 60_000)), "impossible_travel"), "exactly 5 minutes");
    assert!(!has(&f.reasons(tx("t2", "u", 20.0, T0 + 6 * 60_000 + 1)), "impossible_travel"));
    f.login("u", "US", T0 + 7 * 60_000);
    assert!(!has(&f.reasons(tx("t3", "u", 20.0, T0 + 8 * 60_000)), "impossible_travel"), "same country");
}

#[test]
fn a_device_is_new_once_and_again_after_thirty_days() {
    let f = fixture();
    assert_eq!(f.reasons(tx("t1", "u", 20.0, T0)), vec!["new_device"]);
    assert!(f.reasons(tx("t2", "u", 20.0, T0 + 1000)).is_empty());
    let thirty_days = 30 * 24 * 60 * 60_000;
    assert!(f.reasons(tx("t3", "u", 20.0, T0 + 1000 + thirty_days - 1)).is_empty(), "seen within 30 days");
    assert_eq!(f.reasons(tx("t4", "u", 20.0, T0 + 1000 + 2 * thirty_days)), vec!["new_device"]);
}

#[test]
fn different_shipping_and_billing_countries_are_an_address_mismatch() {
    let f = fixture();
    f.warm("u", T0);
    let mut v = tx("t", "u", 20.0, T0 + 1);
    v["shipping_address"] = json!({"country": "FR", "city": "Paris"});
    assert_eq!(f.reasons(v), vec!["address_mismatch"]);
}

#[test]
fn scores_add_up_are_clamped_and_set_the_risk_level_and_review() {
    let f = fixture();
    f.login("u", "BR", T0);
    let mut v = tx("t", "u", 9000.0, T0 + 1);
    v["payment_method"] = json!("gift_card");
    v["shipping_address"] = json!({"country": "FR"});
    let s = f.send(v);
    assert_eq!(
        s.reasons,
        vec!["high_amount", "very_high_amount", "risky_payment", "impossible_travel", "new_device", "address_mismatch"]
    );
    assert_eq!((s.fraud_score, s.risk_level, s.requires_review), (1.0, RiskLevel::High, true));
    let alerts = f.driver.output_topic("fraud_alerts", Serdes::string(), Serdes::json::<Scored>()).read_values();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].transaction.transaction_id, "t");
}

#[test]
fn bad_records_go_to_the_dead_letter_topic_and_scoring_goes_on() {
    let f = fixture();
    f.tx.pipe(String::new(), "{oops".into(), T0);
    let mut bad_time = tx("t0", "u", 1.0, T0);
    bad_time["timestamp"] = json!("tomorrow");
    f.tx.pipe(String::new(), bad_time.to_string(), T0);
    f.tx.pipe(String::new(), r#"{"transaction_id": "t9"}"#.into(), T0);
    assert_eq!(f.driver.dead_letters(DLQ).len(), 3);
    assert_eq!(f.send(tx("ok", "u", 20.0, T0)).transaction.transaction_id, "ok");
}

#[test]
fn alerts_and_scores_map_to_redis_commands() {
    use topology::sink::redis::RedisCommand;
    let f = fixture();
    f.login("u", "BR", T0);
    let mut v = tx("t", "u", 9000.0, T0 + 1);
    v["payment_method"] = json!("gift_card");
    let s = f.send(v);
    let raw = |s: &Scored| topology::RawRecord {
        key: Some(b"u".to_vec()),
        value: Some(serde_json::to_vec(s).unwrap()),
        timestamp: T0,
        headers: Default::default(),
    };
    let alert = redis_commands("fraud_alerts", &raw(&s));
    assert!(matches!(&alert[0], RedisCommand::Publish { channel, .. } if channel == "alerts:fraud"));
    assert!(
        matches!(&alert[1], RedisCommand::PushCapped { list, max_len: 100, ttl_s: 86_400, .. } if list == "recent_alerts:fraud")
    );
    assert_eq!(
        redis_commands("transactions_scored", &raw(&s)),
        vec![RedisCommand::Set { key: "user:u:fraud:last_score".into(), value: "1".into(), ttl_s: None }]
    );
}

#[test]
fn with_inputs_keyed_by_user_records_are_scored_where_they_are_read_and_miskeyed_ones_refused() {
    let mut builder = topology::StreamsBuilder::new();
    build(&mut builder, true);
    let topology = builder.build().unwrap();
    assert!(!topology.describe().to_string().contains("repartition"), "no by-user repartition topic");
    let driver = TestDriver::builder(topology).application_id("fraud").build().unwrap();
    let txs = driver.input_topic("transactions", Serdes::string(), Serdes::string());
    let events = driver.input_topic("user_events", Serdes::string(), Serdes::string());
    let scored = driver.output_topic("transactions_scored", Serdes::string(), Serdes::json::<Scored>());
    let dlq = driver.output_topic(DLQ, Serdes::string(), Serdes::json::<Rejection>());
    // The same state as the unkeyed layout: a login from elsewhere, then a transaction minutes later.
    let login = json!({"event_id": "e", "user_id": "u", "session_id": "s", "event_type": "login",
        "country": "FR", "device_id": "d1", "timestamp": topology::format_timestamp(T0)});
    events.pipe("u".into(), login.to_string(), T0);
    txs.pipe("u".into(), tx("t1", "u", 50.0, T0 + 60_000).to_string(), T0 + 60_000);
    let s = scored.read_values().pop().unwrap();
    assert_eq!(s.reasons, vec!["impossible_travel", "new_device"]);
    // Keyed by something else: refused with the reason, not scored.
    txs.pipe("someone-else".into(), tx("t2", "u", 50.0, T0 + 61_000).to_string(), T0 + 61_000);
    assert!(scored.read_values().is_empty());
    let refused = dlq.read_values();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].reason, "record key `someone-else` is not its user_id `u`");
}
