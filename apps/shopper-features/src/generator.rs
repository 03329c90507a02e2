//! `shopper-features gen`: realistic Snowplow enriched TSV for demos and benchmarks — shoppers browse
//! lists and products, add to and remove from carts, and some check out; every event carries a
//! client_session entity, some sessions marketing fields, and shoppers use several devices.

use std::io::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::enriched::FIELDS;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenConfig {
    /// Random seed: the same seed gives the same lines.
    pub seed: u64,
    /// Shoppers.
    pub users: u32,
    /// Minutes of event time.
    pub minutes: u32,
    /// Event time of the start, epoch ms.
    pub start_ms: i64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig { seed: 1, users: 50, minutes: 60, start_ms: 1_742_986_800_000 }
    }
}

const PRODUCTS: &[(&str, &str, &str, f64)] = &[
    ("1", "SP Dash Runner", "Running shoes", 89.99),
    ("2", "SP Trail Blazer", "Trail shoes", 119.0),
    ("3", "SP Court Classic", "Tennis shoes", 74.5),
    ("4", "SP City Walker", "Casual shoes", 64.0),
    ("5", "SP Flex Runner 2", "Kid shoes", 42.99),
    ("6", "SP Summit Boot", "Boots", 159.0),
];
const LISTS: &[&str] = &["New series", "Top this week", "Sale", "search results"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36 Edg/133.0.0.0",
];
const CAMPAIGNS: &[&str] = &["winter-sale", "spring-launch", "newsletter-0325"];

/// `YYYY-MM-DD HH:MM:SS.fff` (UTC), the enriched TSV timestamp format.
fn tsv_time(ms: i64) -> String {
    topology::format_timestamp(ms).replacen('T', " ", 1).trim_end_matches('Z').to_string()
}

fn sd(schema: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"schema": format!("iglu:{schema}"), "data": data})
}

struct Shopper {
    domain_userid: String,
    user_id: Option<String>,
    agent: &'static str,
    session: String,
    session_index: u32,
    campaign: Option<&'static str>,
    cart: Vec<(usize, f64)>,
    next_at: i64,
}

/// The lines, in event-time order.
pub fn generate(cfg: &GenConfig) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let end = cfg.start_ms + i64::from(cfg.minutes) * 60_000;
    let mut shoppers: Vec<Shopper> = (0..cfg.users)
        .map(|u| Shopper {
            domain_userid: format!("{:08x}-d{u}", cfg.seed as u32 ^ u),
            user_id: None,
            agent: AGENTS[rng.random_range(0..AGENTS.len())],
            session: format!("s{u}-1"),
            session_index: 1,
            campaign: rng.random_bool(0.3).then(|| CAMPAIGNS[rng.random_range(0..CAMPAIGNS.len())]),
            cart: Vec::new(),
            next_at: cfg.start_ms + rng.random_range(0..60_000),
        })
        .collect();
    let mut lines: Vec<(i64, String)> = Vec::new();
    let mut n = 0u64;
    while let Some((u, _)) = shoppers.iter().enumerate().filter(|(_, s)| s.next_at < end).min_by_key(|(_, s)| s.next_at)
    {
        let s = &mut shoppers[u];
        let t = s.next_at;
        // A long pause starts a new session (sometimes on another device), a short one continues it.
        let pause = if rng.random_bool(0.03) {
            rng.random_range(1_900_000..3_600_000)
        } else {
            rng.random_range(2_000..40_000)
        };
        s.next_at = t + pause;
        if pause > 1_800_000 {
            s.session_index += 1;
            s.session = format!("s{u}-{}", s.session_index);
            s.cart.clear();
            if rng.random_bool(0.3) {
                s.agent = AGENTS[rng.random_range(0..AGENTS.len())];
            }
        }
        n += 1;
        let mut f: Vec<String> = vec![String::new(); FIELDS.len()];
        let mut set = |name: &str, v: String| {
            let i = FIELDS.iter().position(|x| *x == name).expect("a field");
            f[i] = v;
        };
        let p = rng.random_range(0..PRODUCTS.len());
        let (pid, pname, pcat, price) = PRODUCTS[p];
        let product = sd(
            "com.snowplowanalytics.snowplow.ecommerce/product/jsonschema/1-0-0",
            json!({"id": pid, "name": pname, "category": pcat, "price": price, "currency": "USD"}),
        );
        let roll: f64 = rng.random();
        let search = rng.random_bool(0.1);
        let (kind, mut contexts) = if roll < 0.3 {
            ("page_view", vec![])
        } else if roll < 0.45 {
            ("list_view", vec![])
        } else if roll < 0.75 {
            ("product_view", vec![product])
        } else if roll < 0.87 {
            s.cart.push((p, price));
            ("add_to_cart", vec![product])
        } else if roll < 0.92 && !s.cart.is_empty() {
            let (q, qp) = s.cart.remove(0);
            let (qid, qn, qc, _) = PRODUCTS[q];
            let removed = sd(
                "com.snowplowanalytics.snowplow.ecommerce/product/jsonschema/1-0-0",
                json!({"id": qid, "name": qn, "category": qc, "price": qp, "currency": "USD"}),
            );
            ("remove_from_cart", vec![removed])
        } else if !s.cart.is_empty() {
            if s.user_id.is_none() {
                s.user_id = Some(format!("shopper{u}@example.com")); // logs in to check out
            }
            let step = if rng.random_bool(0.5) { 1 } else { 2 };
            (
                "checkout_step",
                vec![sd(
                    "com.snowplowanalytics.snowplow.ecommerce/checkout_step/jsonschema/1-0-0",
                    json!({"step": step}),
                )],
            )
        } else {
            ("page_view", vec![])
        };
        if matches!(kind, "add_to_cart" | "remove_from_cart" | "checkout_step") {
            let total: f64 = s.cart.iter().map(|(_, p)| p).sum();
            contexts.push(sd(
                "com.snowplowanalytics.snowplow.ecommerce/cart/jsonschema/1-0-0",
                json!({"total_value": (total * 100.0).round() / 100.0, "currency": "USD"}),
            ));
        }
        contexts.push(sd(
            "com.snowplowanalytics.snowplow/client_session/jsonschema/1-0-2",
            json!({"userId": s.domain_userid, "sessionId": s.session, "sessionIndex": s.session_index,
                "previousSessionId": null, "storageMechanism": "COOKIE_1"}),
        ));
        set("app_id", "shop".into());
        set("platform", "web".into());
        set("etl_tstamp", tsv_time(t + 1_500));
        set("collector_tstamp", tsv_time(t + 5));
        set("dvce_created_tstamp", tsv_time(t));
        set("derived_tstamp", tsv_time(t));
        set("event_id", format!("00000000-0000-4000-8000-{n:012}"));
        set("v_tracker", "js-4.3.1".into());
        set("domain_userid", s.domain_userid.clone());
        set("domain_sessionid", s.session.clone());
        set("domain_sessionidx", s.session_index.to_string());
        if let Some(id) = &s.user_id {
            set("user_id", id.clone());
        }
        set("useragent", s.agent.to_string());
        let url = if kind == "page_view" && search {
            "https://shop.example/search?q=shoes".to_string()
        } else {
            format!("https://shop.example/products/{pid}")
        };
        set("page_url", url);
        if let Some(c) = s.campaign {
            set("mkt_campaign", c.to_string());
            set("mkt_source", "google".into());
            set("mkt_medium", "cpc".into());
        }
        set("contexts", sd("com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", json!(contexts)).to_string());
        if kind == "page_view" {
            set("event", "page_view".into());
            set("event_name", "page_view".into());
        } else {
            set("event", "unstruct".into());
            set("event_vendor", "com.snowplowanalytics.snowplow.ecommerce".into());
            set("event_name", "snowplow_ecommerce_action".into());
            let mut action = json!({"type": kind});
            if kind == "list_view" {
                action["name"] = json!(LISTS[rng.random_range(0..LISTS.len())]);
            }
            set(
                "unstruct_event",
                sd(
                    "com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                    sd("com.snowplowanalytics.snowplow.ecommerce/snowplow_ecommerce_action/jsonschema/1-0-2", action),
                )
                .to_string(),
            );
        }
        lines.push((t, f.join("\t")));
    }
    lines.sort_by_key(|(t, _)| *t);
    lines.into_iter().map(|(_, l)| l).collect()
}

/// Writes the lines to `out`.
pub fn write(cfg: &GenConfig, out: &mut dyn Write) -> std::io::Result<()> {
    for l in generate(cfg) {
        writeln!(out, "{l}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse;

    #[test]
    fn generated_lines_are_enriched_events_with_every_ecommerce_action() {
        let cfg = GenConfig { users: 20, minutes: 30, ..Default::default() };
        let lines = generate(&cfg);
        assert_eq!(lines, generate(&cfg), "same seed, same lines");
        let events: Vec<_> = lines.iter().map(|l| parse(l).unwrap()).collect();
        assert!(events.len() > 500, "{}", events.len());
        for t in ["page_view", "list_view", "product_view", "add_to_cart", "remove_from_cart", "checkout_step"] {
            assert!(events.iter().any(|e| e.event_type == t), "no {t}");
        }
        assert!(events.iter().all(|e| !e.session_key.is_empty() && !e.user_key.is_empty()));
        assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(events.iter().any(|e| e.user_key.contains('@')), "some shoppers log in");
        assert!(events.iter().any(|e| e.has_marketing) && events.iter().any(|e| !e.has_marketing));
        assert!(events.iter().any(|e| e.page_url.as_deref().is_some_and(|u| u.contains("/search?q="))));
        let agents: std::collections::BTreeSet<_> = events.iter().filter_map(|e| e.useragent.clone()).collect();
        assert!(agents.len() >= 3, "several devices");
        let adds = events.iter().filter(|e| e.event_type == "add_to_cart");
        assert!(adds.clone().all(|e| e.cart.is_some() && e.products.len() == 1));
    }

    #[test]
    fn times_are_in_the_tsv_format() {
        assert_eq!(tsv_time(1_742_986_800_123), "2025-03-26 11:00:00.123");
    }
}
