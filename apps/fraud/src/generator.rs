//! `fraud gen`: normal traffic with labelled fraud patterns mixed in (one per rule family), and
//! `fraud eval`: precision and recall of the rules on it.

use std::collections::HashMap;
use std::io::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenConfig {
    pub seed: u64,
    /// Transactions per second of event time.
    pub rate: u32,
    /// Seconds of event time.
    pub seconds: u32,
    pub users: u32,
    /// Share of transactions that start a fraud pattern.
    pub fraud_ratio: f64,
    pub start_ms: i64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig { seed: 1, rate: 20, seconds: 600, users: 200, fraud_ratio: 0.02, start_ms: 1_700_000_000_000 }
    }
}

const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "BR", "JP"];
/// The labelled patterns.
pub const PATTERNS: &[&str] = &["very_high_amount", "card_testing", "velocity", "impossible_travel", "amount_spike"];

struct Gen {
    rng: StdRng,
    n: u64,
    tx: Vec<(i64, String)>,
    events: Vec<(i64, String)>,
    labels: Vec<String>,
}

impl Gen {
    #[allow(clippy::too_many_arguments)]
    fn tx(
        &mut self,
        t: i64,
        user: u32,
        amount: f64,
        method: &str,
        country: &str,
        device: &str,
        ship: &str,
        label: &str,
    ) {
        self.n += 1;
        let id = format!("tx-{:08}", self.n);
        let v = json!({
            "transaction_id": id, "user_id": format!("u{user}"), "order_id": format!("o{}", self.n),
            "amount": (amount * 100.0).round() / 100.0, "currency": "USD", "payment_method": method,
            "items": [format!("p{}", self.rng.random_range(1..50))], "timestamp": topology::format_timestamp(t),
            "ip_address": format!("10.1.{}.{}", user % 250, self.rng.random_range(1..250)), "country": country,
            "device_id": device, "shipping_address": {"country": ship, "city": "Springfield"},
            "billing_address": {"country": country, "city": "Springfield"}
        });
        self.tx.push((t, v.to_string()));
        self.labels.push(json!({"transaction_id": id, "label": label}).to_string());
    }
    fn login(&mut self, t: i64, user: u32, country: &str) {
        self.n += 1;
        let v = json!({"event_id": format!("ev-{:08}", self.n), "user_id": format!("u{user}"),
            "session_id": format!("s{}", self.n), "event_type": "login", "country": country,
            "device_id": format!("d{user}"), "timestamp": topology::format_timestamp(t)});
        self.events.push((t, v.to_string()));
    }
}

/// (transactions, user_events, labels) lines; transactions and events in event-time order.
pub fn generate(cfg: &GenConfig) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut g = Gen { rng: StdRng::seed_from_u64(cfg.seed), n: 0, tx: vec![], events: vec![], labels: vec![] };
    let home = |u: u32| COUNTRIES[u as usize % COUNTRIES.len()];
    let total = u64::from(cfg.rate) * u64::from(cfg.seconds);
    let step = 1000 / i64::from(cfg.rate.max(1));
    for i in 0..total {
        let t = cfg.start_ms + i as i64 * step;
        let user = g.rng.random_range(1..=cfg.users);
        let c = home(user);
        if g.rng.random_bool(cfg.fraud_ratio) {
            // A fraudster on a fresh user id (so normal history does not mix in).
            let f = 1_000_000 + i as u32;
            let pattern = PATTERNS[g.rng.random_range(0..PATTERNS.len())];
            let mut amount = |lo: f64, hi: f64| g.rng.random_range(lo..hi);
            let amounts: Vec<f64> = match pattern {
                "very_high_amount" => vec![amount(6000.0, 9000.0)],
                "card_testing" => (0..4).map(|_| amount(0.5, 4.5)).collect(),
                "velocity" => (0..6).map(|_| amount(1100.0, 1900.0)).collect(),
                "impossible_travel" => vec![amount(1100.0, 2000.0)],
                _ => {
                    let mut v: Vec<f64> = (0..4).map(|_| amount(30.0, 60.0)).collect();
                    v.push(amount(1500.0, 2500.0));
                    v
                }
            };
            match pattern {
                "very_high_amount" => g.tx(t, f, amounts[0], "credit_card", "US", "dX", "US", pattern),
                "card_testing" => {
                    for (k, a) in amounts.iter().enumerate() {
                        g.tx(t + k as i64 * 20_000, f, *a, "gift_card", "US", &format!("dX{k}"), "US", pattern);
                    }
                }
                "velocity" => {
                    for (k, a) in amounts.iter().enumerate() {
                        g.tx(t + k as i64 * 45_000, f, *a, "credit_card", "US", "dV", "US", pattern);
                    }
                }
                "impossible_travel" => {
                    g.login(t, f, "US");
                    g.tx(t + 120_000, f, amounts[0], "credit_card", "BR", "dT", "US", pattern);
                }
                _ => {
                    for (k, a) in amounts[..4].iter().enumerate() {
                        g.tx(t + k as i64 * 60_000, f, *a, "credit_card", "US", "dS", "US", "normal");
                    }
                    g.tx(t + 300_000, f, amounts[4], "prepaid_card", "US", "dS", "US", pattern);
                }
            }
        } else {
            if g.rng.random_bool(0.1) {
                g.login(t - 1000, user, c);
            }
            let device = format!("d{user}-{}", g.rng.random_range(0..2));
            let a = g.rng.random_range(5.0..300.0);
            g.tx(t, user, a, "credit_card", c, &device, c, "normal");
        }
    }
    g.tx.sort_by_key(|(t, _)| *t);
    g.events.sort_by_key(|(t, _)| *t);
    (g.tx.into_iter().map(|x| x.1).collect(), g.events.into_iter().map(|x| x.1).collect(), g.labels)
}

/// Writes `transactions.jsonl`, `user_events.jsonl` and `labels.jsonl` into `dir`.
pub fn write_files(cfg: &GenConfig, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let (tx, events, labels) = generate(cfg);
    for (name, lines) in [("transactions", tx), ("user_events", events), ("labels", labels)] {
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(format!("{name}.jsonl")))?);
        for l in lines {
            writeln!(f, "{l}")?;
        }
        f.flush()?;
    }
    Ok(())
}

/// Precision and recall of `requires_review` against the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
    /// Recall per pattern: (flagged, labelled).
    pub per_pattern: Vec<(String, u64, u64)>,
}

impl Evaluation {
    pub fn precision(&self) -> f64 {
        self.true_positives as f64 / (self.true_positives + self.false_positives).max(1) as f64
    }
    pub fn recall(&self) -> f64 {
        self.true_positives as f64 / (self.true_positives + self.false_negatives).max(1) as f64
    }
}

/// Compares scored transactions (envelope lines of `transactions_scored`) with the labels.
pub fn evaluate(scored_lines: &str, label_lines: &str) -> Result<Evaluation, String> {
    let mut labels: HashMap<String, String> = HashMap::new();
    for l in label_lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| format!("labels: {e}"))?;
        labels.insert(
            v["transaction_id"].as_str().unwrap_or_default().into(),
            v["label"].as_str().unwrap_or_default().into(),
        );
    }
    let (mut tp, mut fp, mut fneg) = (0, 0, 0);
    let mut per: HashMap<String, (u64, u64)> = HashMap::new();
    for l in scored_lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| format!("scored: {e}"))?;
        let s = &v["value"];
        let id = s["transaction"]["transaction_id"].as_str().unwrap_or_default();
        let flagged = s["requires_review"].as_bool().unwrap_or(false);
        let label = labels.get(id).map_or("normal", String::as_str);
        let fraud = label != "normal";
        if fraud {
            let e = per.entry(label.to_string()).or_default();
            e.1 += 1;
            e.0 += u64::from(flagged);
        }
        match (fraud, flagged) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            (false, false) => {}
        }
    }
    let mut per_pattern: Vec<(String, u64, u64)> = per.into_iter().map(|(k, (a, b))| (k, a, b)).collect();
    per_pattern.sort();
    Ok(Evaluation { true_positives: tp, false_positives: fp, false_negatives: fneg, per_pattern })
}
