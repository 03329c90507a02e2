//! Snowplow ecommerce events → rolling and session-window shopper features in Redis.
//!
//! ```text
//!                                         ┌─ product lane  (5m, 1h)      ─┐
//!                          ┌─ by user ────┼─ category lane (5m, 1h, 24h) ─┤
//!  snowplow-enriched-good ─┤              ├─ cart lane     (5m, 1h)      ─┼─▶ shopper_features ─▶ Redis SETEX
//!  (enriched TSV or        │              └─ purchase lane (24h)         ─┤    (key = Redis key)
//!   accelerator JSON)      └─ by session ──── session lane  (gap 30 min)  ─┘
//!          └─ unparsable, or missing what its lane needs ─▶ shopper_features_dlq (reason in `dlq.error`)
//! ```
//!
//! Each record is parsed by [`event::parse`] (an enriched TSV line through [`enriched`], or the
//! accelerator's JSON) and checked against what its lanes need ([`event::ShopperEvent::check`]).
//! User lanes keep tick-sized panes and emit hopping windows when they close ([`rolling`]); the
//! session lane keeps session windows ([`session`]). Time is event time: derived_tstamp, else
//! collector_tstamp, with 5 s of grace; a replay of yesterday's events gives yesterday's features.

pub mod enriched;
pub mod event;
pub mod features;
pub mod generator;
pub mod lanes;
pub mod rolling;
pub mod session;

use topology::sink::redis::RedisCommand;
use topology::{
    topology, Consumed, DecodeError, DeserializationPolicy, KStream, Named, Produced, RawRecord, Repartitioned, Serde,
    Serdes, StreamsBuilder,
};

use crate::event::ShopperEvent;
use crate::features::Feature;
use crate::lanes::{CartLane, CategoryLane, ProductLane, PurchaseLane};
use crate::session::SessionLane;

/// The input topic.
pub const INPUT: &str = "snowplow-enriched-good";
/// The features topic.
pub const OUTPUT: &str = "shopper_features";
/// The dead-letter topic.
pub const DLQ: &str = "shopper_features_dlq";

/// Reads a record of the input topic as a checked [`ShopperEvent`]; the error is the dead-letter reason.
struct ShopperEventSerde;

impl Serde<ShopperEvent> for ShopperEventSerde {
    fn serialize(&self, value: &ShopperEvent) -> Option<Vec<u8>> {
        serde_json::to_vec(value).ok()
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<ShopperEvent, DecodeError> {
        let bytes = bytes.ok_or_else(|| DecodeError::new("null value"))?;
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::new(format!("not UTF-8: {e}")))?;
        let event = event::parse(text).map_err(|e| DecodeError::new(e.to_string()))?;
        event.check().map_err(|e| DecodeError::new(e.to_string()))?;
        Ok(event)
    }
}

/// Every feature record becomes `SET key value EX ttl`.
pub fn redis_commands(topic: &str, record: &RawRecord) -> Vec<RedisCommand> {
    if topic != OUTPUT {
        return Vec::new();
    }
    let (Some(key), Some(value)) = (record.key.as_deref(), record.value.as_deref()) else { return Vec::new() };
    let Ok(feature) = serde_json::from_slice::<Feature>(value) else { return Vec::new() };
    vec![RedisCommand::Set {
        key: String::from_utf8_lossy(key).into_owned(),
        value: feature.value,
        ttl_s: Some(feature.ttl_s),
    }]
}

fn lane(
    events: &KStream<String, ShopperEvent>,
    name: &str,
    accepts: fn(&ShopperEvent) -> bool,
    run: impl FnOnce(&KStream<String, ShopperEvent>, Named) -> KStream<String, Feature>,
) -> KStream<String, Feature> {
    let only = events.filter(move |_, e| accepts(e));
    run(&only, Named::as_(format!("{name}-lane")))
}

/// The application: see the module docs.
#[topology(application_id = "shopper-features", redis = redis_commands)]
pub fn shopper_features(builder: &mut StreamsBuilder) {
    builder.deserialization_policy(DeserializationPolicy::DeadLetter { topic: Some(DLQ.to_string()) });
    let events = builder.stream(
        INPUT,
        Consumed::with(Serdes::unit(), std::sync::Arc::new(ShopperEventSerde))
            .with_timestamp_extractor(|_, e: &ShopperEvent, _| Ok(e.time))
            .with_name("snowplow-events"),
    );
    let by_user = events.select_key(|_, e| e.user_key.clone()).repartition(Repartitioned::as_("by-user"));
    let by_session = events.select_key(|_, e| e.session_key.clone()).repartition(Repartitioned::as_("by-session"));
    let features = [
        lane(&by_user, "product", lanes::in_product_lane, |s, n| s.process_declared::<ProductLane>(n)),
        lane(&by_user, "category", lanes::in_category_lane, |s, n| s.process_declared::<CategoryLane>(n)),
        lane(&by_user, "cart", lanes::in_cart_lane, |s, n| s.process_declared::<CartLane>(n)),
        lane(&by_user, "purchase", lanes::in_purchase_lane, |s, n| s.process_declared::<PurchaseLane>(n)),
        lane(&by_session, "session", lanes::in_session_lane, |s, n| s.process_declared::<SessionLane>(n)),
    ];
    for f in features {
        f.to(OUTPUT, Produced::with(Serdes::string(), Serdes::json::<Feature>()));
    }
}

#[cfg(test)]
mod tests;
