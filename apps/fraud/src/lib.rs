//! Real-time transaction fraud scoring.
//!
//! ```text
//!  transactions ─┐                                   ┌─▶ transactions_scored (every one)
//!                ├─ by user ─▶ score (user state) ───┤
//!  user_events ──┘                                   └─▶ fraud_alerts (score > 0.5) ─▶ Redis: PUBLISH,
//!                                                        capped list; last score per user (SET)
//! ```
//!
//! Each transaction is scored when it arrives, against its user's state in event time: recent
//! transactions (10 minutes), the mean of earlier amounts, the latest login, and devices seen in the
//! last 30 days. Each rule that fires adds its weight (the sum is clamped to 1.0) and its name to
//! `reasons`. Thresholds are configuration ([`Rules`], from `FRAUD_*` environment variables), with the
//! issue's defaults. Undecodable records go to `fraud_dlq`.
//!
//! When the producers already key both input topics by user_id (the same partitioner and partition
//! count — the usual layout), `FRAUD_INPUTS_KEYED_BY_USER=true` scores records in the task that reads
//! them: no `by-user` repartition topic, one broker round trip less per transaction ([`build`]). A
//! record whose key is not its user_id then goes to `fraud_dlq` with the reason.

pub mod generator;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use topology::sink::redis::RedisCommand;
use topology::{
    processor, topology, Consumed, DeserializationPolicy, KStream, Named, ProcessorContext, Produced, RawRecord,
    Record, Repartitioned, Serdes, StreamsBuilder, TopicRecord,
};

/// The dead-letter topic.
pub const DLQ: &str = "fraud_dlq";
const MINUTE: i64 = 60_000;

/// An address (only the country is scored; other fields pass through in `raw`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Address {
    #[serde(default)]
    pub country: String,
}

/// A transaction, as on topic `transactions`.
#[derive(Record, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[record(topic = "transactions")]
pub struct Transaction {
    pub transaction_id: String,
    pub user_id: String,
    #[serde(default)]
    pub order_id: String,
    pub amount: f64,
    #[serde(default)]
    pub currency: String,
    pub payment_method: String,
    #[serde(default)]
    pub items: Vec<String>,
    #[timestamp]
    pub timestamp: String,
    #[serde(default)]
    pub ip_address: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub shipping_address: Address,
    #[serde(default)]
    pub billing_address: Address,
}

/// A clickstream event, as on topic `user_events`.
#[derive(Record, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[record(topic = "user_events")]
pub struct UserEvent {
    pub event_id: String,
    pub user_id: String,
    #[serde(default)]
    pub session_id: String,
    pub event_type: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub device_id: String,
    #[timestamp]
    pub timestamp: String,
}

/// Scoring thresholds and weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub high_amount: f64,
    pub very_high_amount: f64,
    pub risky_payment_methods: Vec<String>,
    pub velocity_count: usize,
    pub velocity_window_ms: i64,
    pub card_testing_count: usize,
    pub card_testing_amount: f64,
    pub card_testing_window_ms: i64,
    pub spike_factor: f64,
    pub spike_min_history: u64,
    pub travel_window_ms: i64,
    pub device_memory_ms: i64,
    pub review_above: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            high_amount: 1000.0,
            very_high_amount: 5000.0,
            risky_payment_methods: vec!["prepaid_card".into(), "gift_card".into()],
            velocity_count: 5,
            velocity_window_ms: 10 * MINUTE,
            card_testing_count: 3,
            card_testing_amount: 5.0,
            card_testing_window_ms: 5 * MINUTE,
            spike_factor: 5.0,
            spike_min_history: 3,
            travel_window_ms: 5 * MINUTE,
            device_memory_ms: 30 * 24 * 60 * MINUTE,
            review_above: 0.5,
        }
    }
}

impl Rules {
    /// The defaults, overridden by `FRAUD_HIGH_AMOUNT`, `FRAUD_VERY_HIGH_AMOUNT`, `FRAUD_VELOCITY_COUNT`,
    /// `FRAUD_CARD_TESTING_AMOUNT`, `FRAUD_SPIKE_FACTOR`, `FRAUD_REVIEW_ABOVE` when set.
    pub fn from_env() -> Result<Rules, String> {
        let mut r = Rules::default();
        fn get<T: std::str::FromStr>(name: &str, into: &mut T) -> Result<(), String> {
            if let Ok(v) = std::env::var(name) {
                *into = v.parse().map_err(|_| format!("{name}: cannot parse `{v}`"))?;
            }
            Ok(())
        }
        get("FRAUD_HIGH_AMOUNT", &mut r.high_amount)?;
        get("FRAUD_VERY_HIGH_AMOUNT", &mut r.very_high_amount)?;
        get("FRAUD_VELOCITY_COUNT", &mut r.velocity_count)?;
        get("FRAUD_CARD_TESTING_AMOUNT", &mut r.card_testing_amount)?;
        get("FRAUD_SPIKE_FACTOR", &mut r.spike_factor)?;
        get("FRAUD_REVIEW_ABOVE", &mut r.review_above)?;
        Ok(r)
    }
}

static RULES: OnceLock<Rules> = OnceLock::new();

/// Whether `FRAUD_INPUTS_KEYED_BY_USER` says the input topics are keyed by user_id (`true`/`false`,
/// default false).
pub fn inputs_keyed_by_user_from_env() -> Result<bool, String> {
    match std::env::var("FRAUD_INPUTS_KEYED_BY_USER") {
        Ok(v) => v.parse().map_err(|_| format!("FRAUD_INPUTS_KEYED_BY_USER: `{v}` is not true or false")),
        Err(_) => Ok(false),
    }
}

/// Sets the rules for this process (before the topology runs); otherwise they come from the `FRAUD_*`
/// variables ([`Rules::from_env`]) or, where one does not parse, the defaults (`fraud run` stops on it
/// instead).
pub fn configure(rules: Rules) -> Result<(), Rules> {
    RULES.set(rules)
}

fn rules() -> &'static Rules {
    RULES.get_or_init(|| Rules::from_env().unwrap_or_default())
}

/// Low, medium or high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

/// A scored transaction (on `transactions_scored`, and on `fraud_alerts` when it requires review).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub transaction: Transaction,
    pub fraud_score: f64,
    pub risk_level: RiskLevel,
    pub reasons: Vec<String>,
    pub requires_review: bool,
}

/// What the per-user scorer reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    Transaction(Transaction),
    Event(UserEvent),
}

/// Amounts of the user's transactions so far: count and sum (for the mean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub count: u64,
    pub sum: f64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Scores one transaction of a user given the user's state; updates the state.
#[processor(stores(
    recent: key_value<String, Vec<(i64, f64)>>,
    history: key_value<String, History>,
    last_login: key_value<String, (i64, String)>,
    devices: key_value<String, Vec<(String, i64)>>
))]
fn score(ctx: &mut ProcessorContext<'_, String, Scored>, stores: &ScoreStores, record: Record<String, Input>) {
    let r = rules();
    let t = record.timestamp;
    let user = record.key.clone();
    let tx = match record.value {
        Input::Event(e) => {
            if e.event_type == "login" {
                let newer = stores.last_login.borrow().get(&user).is_none_or(|(at, _)| t >= at);
                if newer {
                    stores.last_login.borrow_mut().put(&user, (t, e.country));
                }
            }
            return;
        }
        Input::Transaction(tx) => tx,
    };
    let mut reasons: Vec<&str> = Vec::new();
    let mut score = 0.0;
    let mut fire = |name: &'static str, weight: f64, reasons: &mut Vec<&str>| {
        score += weight;
        reasons.push(name);
    };
    if tx.amount > r.high_amount {
        fire("high_amount", 0.3, &mut reasons);
    }
    if tx.amount > r.very_high_amount {
        fire("very_high_amount", 0.2, &mut reasons);
    }
    if r.risky_payment_methods.contains(&tx.payment_method) {
        fire("risky_payment", 0.2, &mut reasons);
    }
    // Recent transactions (this one included), in event time.
    let keep_ms = r.velocity_window_ms.max(r.card_testing_window_ms);
    let mut recent = stores.recent.borrow().get(&user).unwrap_or_default();
    recent.push((t, tx.amount));
    recent.retain(|(at, _)| *at > t - keep_ms - MINUTE);
    let in_window = |w: i64| recent.iter().filter(move |(at, _)| *at > t - w && *at <= t);
    if in_window(r.velocity_window_ms).count() >= r.velocity_count {
        fire("velocity", 0.3, &mut reasons);
    }
    if tx.amount < r.card_testing_amount
        && in_window(r.card_testing_window_ms).filter(|(_, a)| *a < r.card_testing_amount).count()
            >= r.card_testing_count
    {
        fire("card_testing", 0.3, &mut reasons);
    }
    stores.recent.borrow_mut().put(&user, recent);
    let history = stores.history.borrow().get(&user).unwrap_or_default();
    if history.count >= r.spike_min_history && tx.amount > r.spike_factor * (history.sum / history.count as f64) {
        fire("amount_spike", 0.2, &mut reasons);
    }
    stores.history.borrow_mut().put(&user, History { count: history.count + 1, sum: history.sum + tx.amount });
    if let Some((at, country)) = stores.last_login.borrow().get(&user) {
        if at <= t && t - at <= r.travel_window_ms && !country.is_empty() && country != tx.country {
            fire("impossible_travel", 0.3, &mut reasons);
        }
    }
    if !tx.device_id.is_empty() {
        let mut devices = stores.devices.borrow().get(&user).unwrap_or_default();
        devices.retain(|(_, seen)| *seen > t - r.device_memory_ms);
        match devices.iter_mut().find(|(d, _)| *d == tx.device_id) {
            Some((_, seen)) => *seen = (*seen).max(t),
            None => {
                fire("new_device", 0.1, &mut reasons);
                devices.push((tx.device_id.clone(), t));
            }
        }
        stores.devices.borrow_mut().put(&user, devices);
    }
    if !tx.shipping_address.country.is_empty()
        && !tx.billing_address.country.is_empty()
        && tx.shipping_address.country != tx.billing_address.country
    {
        fire("address_mismatch", 0.1, &mut reasons);
    }
    let fraud_score = round2(score.min(1.0));
    let risk_level = if fraud_score > 0.7 {
        RiskLevel::High
    } else if fraud_score > 0.4 {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    };
    let scored = Scored {
        transaction: tx,
        fraud_score,
        risk_level,
        reasons: reasons.into_iter().map(str::to_string).collect(),
        requires_review: fraud_score > r.review_above,
    };
    ctx.forward(Record::new(user, scored, t));
}

/// Redis writes: every alert is published on `alerts:fraud` and pushed to `recent_alerts:fraud` (newest
/// 100, 24 h expiry); every scored transaction sets `user:{id}:fraud:last_score`.
pub fn redis_commands(topic: &str, record: &RawRecord) -> Vec<RedisCommand> {
    let Some(value) = record.value.as_deref() else { return Vec::new() };
    let Ok(scored) = serde_json::from_slice::<Scored>(value) else { return Vec::new() };
    let text = String::from_utf8_lossy(value).into_owned();
    match topic {
        "fraud_alerts" => vec![
            RedisCommand::Publish { channel: "alerts:fraud".into(), message: text.clone() },
            RedisCommand::PushCapped { list: "recent_alerts:fraud".into(), value: text, max_len: 100, ttl_s: 86_400 },
        ],
        "transactions_scored" => vec![RedisCommand::Set {
            key: format!("user:{}:fraud:last_score", scored.transaction.user_id),
            value: scored.fraud_score.to_string(),
            ttl_s: None,
        }],
        _ => Vec::new(),
    }
}

/// The application: see the module docs.
#[topology(application_id = "fraud", redis = redis_commands)]
pub fn fraud(builder: &mut StreamsBuilder) {
    // `fraud run` checks the variable first and stops on a bad value.
    build(builder, inputs_keyed_by_user_from_env().unwrap_or(false));
}

fn user_of(input: &Input) -> &str {
    match input {
        Input::Transaction(t) => &t.user_id,
        Input::Event(e) => &e.user_id,
    }
}

/// A record refused before scoring, as written to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub reason: String,
    pub key: String,
    pub record: Input,
}

/// The topology; `inputs_keyed_by_user`: see the module docs.
pub fn build(builder: &mut StreamsBuilder, inputs_keyed_by_user: bool) {
    builder.deserialization_policy(DeserializationPolicy::DeadLetter { topic: Some(DLQ.to_string()) });
    let by_user = if inputs_keyed_by_user {
        fn keyed<R: TopicRecord>(builder: &mut StreamsBuilder) -> KStream<String, R> {
            builder.stream(
                R::TOPIC,
                Consumed::with(Serdes::string(), R::value_serde())
                    .with_timestamp_extractor(|_, r: &R, _| r.timestamp()),
            )
        }
        let transactions = keyed::<Transaction>(builder).map_values(Input::Transaction);
        let events = keyed::<UserEvent>(builder).map_values(Input::Event);
        let mut branches = transactions
            .merge(&events)
            .split("input-")
            .branch("keyed-by-user", |key, input| key == user_of(input))
            .default_branch("miskeyed");
        branches
            .remove("input-miskeyed")
            .expect("declared above")
            .map_values_with_key(|key, record| Rejection {
                reason: format!("record key `{key}` is not its user_id `{}`", user_of(&record)),
                key: key.clone(),
                record,
            })
            .to(DLQ, Produced::with(Serdes::string(), Serdes::json::<Rejection>()));
        branches.remove("input-keyed-by-user").expect("declared above")
    } else {
        let transactions = builder.stream_of::<Transaction>().map_values(Input::Transaction);
        let events = builder.stream_of::<UserEvent>().map_values(Input::Event);
        transactions.merge(&events).select_key(|_, i| user_of(i).to_string()).repartition(Repartitioned::as_("by-user"))
    };
    let scored = by_user.process_declared::<Score>(Named::as_("score"));
    scored.to("transactions_scored", Produced::with(Serdes::string(), Serdes::json::<Scored>()));
    scored
        .filter(|_, s| s.requires_review)
        .to("fraud_alerts", Produced::with(Serdes::string(), Serdes::json::<Scored>()));
}

#[cfg(test)]
mod tests;
