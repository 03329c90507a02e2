//! Driver tests: each metric, window edges and ticks, idle zeroing, the purchase rule, sessions (merge,
//! close, a fresh session after close), late and bad input, and the accelerator's 26-event checkout.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use topology::{Application, Serdes, TestDriver, TestInputTopic, TestOutputTopic};

use crate::*;

/// 2025-03-26T11:00:00Z, a multiple of every tick.
const T0: i64 = 1_742_986_800_000;
const S: i64 = 1_000;
const MIN: i64 = 60 * S;
const DESKTOP: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36";
const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

struct Fixture {
    driver: TestDriver,
    input: TestInputTopic<(), String>,
    output: TestOutputTopic<String, Feature>,
}

fn fixture() -> Fixture {
    let driver = TestDriver::builder(ShopperFeaturesApp::topology().unwrap())
        .application_id("shopper-features")
        .build()
        .unwrap();
    let input = driver.input_topic(INPUT, Serdes::unit(), Serdes::string());
    let output = driver.output_topic(OUTPUT, Serdes::string(), Serdes::json::<Feature>());
    Fixture { driver, input, output }
}

/// An event in the accelerator's JSON form: `type` of user `user` in session `session` at `t`.
fn ev(kind: &str, user: &str, session: &str, t: i64) -> Value {
    json!({"id": format!("{kind}-{user}-{t}"), "type": kind, "timestamp": topology::format_timestamp(t),
        "payload": {}, "enrich": {"user": {"domain_userid": user}, "platform": "web",
        "client": {"useragent": DESKTOP, "page": {"page_url": "https://shop.example/"}}},
        "session": {"sessionId": session}})
}

fn with_product(mut e: Value, id: &str, price: f64, category: &str) -> Value {
    e["payload"]["product"] = json!({"id": id, "price": price, "category": category, "currency": "USD"});
    e
}

fn product_view(user: &str, t: i64, id: &str, price: f64, category: &str) -> Value {
    with_product(ev("product_view", user, "s", t), id, price, category)
}

fn cart_event(kind: &str, user: &str, t: i64, total: f64, price: f64) -> Value {
    let mut e = with_product(ev(kind, user, "s", t), "p", price, "c");
    e["payload"]["cart"] = json!({"total_value": total, "currency": "USD"});
    e
}

fn checkout(user: &str, t: i64, step: i64) -> Value {
    let mut e = ev("checkout_step", user, "s", t);
    e["payload"]["checkout_step"] = json!({"step": step});
    e
}

fn list_view(user: &str, t: i64, name: &str) -> Value {
    let mut e = ev("list_view", user, "s", t);
    e["payload"]["list_name"] = json!(name);
    e
}

impl Fixture {
    fn send(&self, e: &Value) {
        self.input.pipe((), e.to_string(), 0);
    }
    /// Moves stream time to `t` with an event of a bystander (who has no features of interest).
    fn tick_to(&self, t: i64) {
        self.send(&ev("page_ping", "bystander", "bystander-session", t));
    }
    /// (key, value, timestamp) of everything written since the last read.
    fn written(&self) -> Vec<(String, String, i64)> {
        self.output.read_records().into_iter().map(|r| (r.key, r.value.value, r.timestamp)).collect()
    }
    /// The latest value of each key written since the last read (what Redis would hold).
    fn latest(&self) -> BTreeMap<String, String> {
        self.written().into_iter().map(|(k, v, _)| (k, v)).collect()
    }
}

fn only(map: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    map.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k[prefix.len()..].to_string(), v.clone())).collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn product_lane_counts_distinct_products_with_their_earliest_price() {
    let f = fixture();
    f.send(&product_view("u", T0 + 10 * S, "a", 20.0, "Shoes"));
    f.send(&product_view("u", T0 + 12 * S, "b", 5.5, "Hats"));
    f.send(&product_view("u", T0 + 14 * S, "a", 30.0, "Shoes"));
    // Arrives last but happened first (within grace): its price is the earliest for product a.
    f.send(&product_view("u", T0 + 9 * S, "a", 10.0, "Shoes"));
    f.tick_to(T0 + 35 * S);
    let features = only(&f.latest(), "user:u:");
    assert_eq!(
        only(&features, ""),
        expect(&[
            ("product_view_count_5m", "2"),
            ("avg_viewed_price_5m", "7.75"),
            ("return_view_count_5m", r#"{"a":3,"b":1}"#),
            ("price_range_viewed_5m", "5.50-30.00"),
            ("top_category_5m", "Shoes"),
            ("unique_categories_5m", "2"),
        ]),
        "tick T0+30s closes the 5m window; the 1h and 24h windows tick every minute"
    );
}

#[test]
fn a_tick_is_emitted_once_stream_time_passes_it_by_the_grace_period() {
    let f = fixture();
    f.send(&cart_event("add_to_cart", "u", T0 + 29_999, 0.0, 1.0));
    f.tick_to(T0 + 34_999);
    assert!(only(&f.latest(), "user:u:cart").is_empty(), "tick T0+30s is not closed before T0+35s");
    f.tick_to(T0 + 35 * S);
    let written = f.written();
    let adds: Vec<_> = written.iter().filter(|(k, _, _)| k == "user:u:cart_add_count_5m").collect();
    assert_eq!(adds, vec![&("user:u:cart_add_count_5m".to_string(), "1".to_string(), T0 + 30 * S)]);
    // An event at exactly the tick belongs to the next window.
    let f = fixture();
    f.send(&cart_event("add_to_cart", "u", T0 + 30 * S, 0.0, 1.0));
    f.tick_to(T0 + 35 * S);
    assert!(only(&f.latest(), "user:u:cart").is_empty());
    f.tick_to(T0 + 65 * S);
    assert_eq!(only(&f.latest(), "user:u:cart_add_count_")["5m"], "1");
}

#[test]
fn windows_roll_the_event_out_after_their_size_and_zero_the_user_once() {
    let f = fixture();
    f.send(&cart_event("add_to_cart", "u", T0, 0.0, 1.0));
    f.send(&cart_event("remove_from_cart", "u", T0 + S, 1.0, 1.0));
    // 5m window [T, T+5m) holds the events at ticks T0+30s … T0+5m; at T0+5m30s it is empty.
    f.tick_to(T0 + 5 * MIN + 5 * S);
    let written = f.written();
    let five: Vec<(i64, String)> = written
        .iter()
        .filter(|(k, _, _)| k == "user:u:cart_update_frequency_5m")
        .map(|(_, v, t)| ((t - T0) / S, v.clone()))
        .collect();
    assert_eq!(five, (1..=10).map(|i| (i * 30, "2".to_string())).collect::<Vec<_>>());
    f.tick_to(T0 + 6 * MIN + 5 * S);
    let latest = f.latest();
    assert_eq!(
        only(&latest, "user:u:"),
        expect(&[
            ("cart_add_count_5m", "0"),
            ("cart_remove_count_5m", "0"),
            ("cart_update_frequency_5m", "0"),
            ("cart_add_count_1h", "1"),
            ("cart_remove_count_1h", "1"),
            ("cart_update_frequency_1h", "2"),
            ("orders_count_24h", "0"),
            ("order_value_24h", "0.00"),
            ("avg_order_value_24h", "0.00"),
        ]),
        "zeros once at T0+5m30s; the hour window still holds both events"
    );
    // Zeros once: an hour later the 5m keys have not been written again.
    f.tick_to(T0 + 61 * MIN + 5 * S);
    let latest = f.latest();
    assert!(!latest.keys().any(|k| k.starts_with("user:u:") && k.ends_with("_5m")), "{latest:?}");
    assert_eq!(latest["user:u:cart_update_frequency_1h"], "0", "the hour window is empty at T0+61m");
    // New events bring the user back.
    f.send(&cart_event("add_to_cart", "u", T0 + 61 * MIN + 10 * S, 0.0, 1.0));
    f.tick_to(T0 + 62 * MIN + 5 * S);
    assert_eq!(f.latest()["user:u:cart_add_count_5m"], "1");
}

#[test]
fn with_idle_advance_a_quiet_input_still_closes_ticks_and_zeroes_features() {
    let driver = TestDriver::builder(ShopperFeaturesApp::topology().unwrap())
        .application_id("shopper-features")
        .idle_advance(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let f = Fixture {
        input: driver.input_topic(INPUT, Serdes::unit(), Serdes::string()),
        output: driver.output_topic(OUTPUT, Serdes::string(), Serdes::json::<Feature>()),
        driver,
    };
    f.send(&cart_event("add_to_cart", "u", T0 + S, 0.0, 1.0));
    assert!(f.latest().is_empty(), "the first tick closes at T0+35s");
    // No more records: after 30 s of quiet, stream time follows the wall clock.
    f.driver.advance_wall_clock(std::time::Duration::from_secs(6 * 60)).unwrap();
    let written = f.written();
    let adds: Vec<(i64, &str)> = written
        .iter()
        .filter(|(k, _, _)| k == "user:u:cart_add_count_5m")
        .map(|(_, v, t)| ((t - T0) / S, v.as_str()))
        .collect();
    let mut want: Vec<(i64, &str)> = (1..=10).map(|i| (i * 30, "1")).collect();
    want.push((330, "0"));
    assert_eq!(adds, want, "every tick to T0+5m, then zero once (stream time T0+6m1s)");
}

#[test]
fn category_lane_takes_list_names_and_product_categories_and_breaks_ties_by_name() {
    let f = fixture();
    f.send(&list_view("u", T0 + S, "Summer"));
    f.send(&product_view("u", T0 + 2 * S, "p1", 10.0, "Boots"));
    f.send(&list_view("u", T0 + 3 * S, "Boots"));
    f.send(&list_view("u", T0 + 4 * S, "Summer"));
    f.tick_to(T0 + 65 * S);
    let categories = only(&f.latest(), "user:u:");
    assert_eq!(categories["top_category_5m"], "Boots", "Boots and Summer tie at 2: the smaller name wins");
    assert_eq!(categories["unique_categories_5m"], "2");
    assert_eq!(categories["top_category_24h"], "Boots");
    assert_eq!(categories["unique_categories_1h"], "2");
}

#[test]
fn the_24h_window_is_combined_from_minute_panes() {
    let f = fixture();
    // An event every 10 minutes for a day: 144 events, one pane each.
    for i in 0..144 {
        f.send(&list_view("u", T0 + i * 10 * MIN, if i % 3 == 0 { "A" } else { "B" }));
    }
    f.tick_to(T0 + 24 * 60 * MIN + 5 * S);
    let day = only(&f.latest(), "user:u:");
    assert_eq!(day["unique_categories_24h"], "2");
    assert_eq!(day["top_category_24h"], "B");
    let panes = f.driver.window_all::<String, BTreeMap<String, u64>>("category-lane-panes");
    let mine = panes.iter().filter(|(u, _, _)| u == "u").count();
    assert!(mine <= 146, "one pane per 30 s with events, expired past the day: {mine}");
}

#[test]
fn an_order_is_a_second_checkout_step_after_a_cart_event_in_event_time_order() {
    let f = fixture();
    // Cart total 100 before adding a 20.00 product: the order is worth 120.
    f.send(&cart_event("add_to_cart", "u", T0 + S, 100.0, 20.0));
    f.send(&checkout("u", T0 + 2 * S, 1));
    f.send(&checkout("u", T0 + 3 * S, 2));
    // A removal then a second order: 50 − 10 = 40. The removal arrives after the step but happened
    // before it (within grace), so it still precedes it.
    f.send(&checkout("u", T0 + 12 * S, 2));
    f.send(&cart_event("remove_from_cart", "u", T0 + 10 * S, 50.0, 10.0));
    // A step 2 of a user without any cart event is no order.
    f.send(&checkout("v", T0 + 13 * S, 2));
    f.tick_to(T0 + 65 * S);
    let latest = f.latest();
    assert_eq!(
        only(&latest, "user:u:"),
        expect(&[
            ("orders_count_24h", "2"),
            ("order_value_24h", "160.00"),
            ("avg_order_value_24h", "80.00"),
            ("cart_add_count_5m", "1"),
            ("cart_remove_count_5m", "1"),
            ("cart_update_frequency_5m", "2"),
            ("cart_add_count_1h", "1"),
            ("cart_remove_count_1h", "1"),
            ("cart_update_frequency_1h", "2"),
        ])
    );
    assert_eq!(only(&latest, "user:v:")["orders_count_24h"], "0");
}

fn session_event(kind: &str, session: &str, t: i64, url: &str, ua: &str) -> Value {
    let mut e = ev(kind, "u", session, t);
    e["enrich"]["client"] = json!({"useragent": ua, "page": {"page_url": url}});
    if kind == "product_view" || kind == "add_to_cart" {
        e = with_product(e, "p", 10.0, "c");
        e["payload"]["cart"] = json!({"total_value": 0.0});
    }
    e
}

#[test]
fn session_features_are_emitted_every_minute_and_once_more_at_close() {
    let f = fixture();
    let mut first = session_event("page_view", "s1", T0 + 10 * S, "https://shop.example/", DESKTOP);
    first["enrich"]["marketing"] = json!({"mkt_campaign": "spring", "mkt_source": "news"});
    f.send(&first);
    f.send(&session_event("page_view", "s1", T0 + 20 * S, "https://shop.example/search?q=boots", PHONE));
    f.send(&session_event("product_view", "s1", T0 + 25 * S, "https://shop.example/p", PHONE));
    f.send(&session_event("product_view", "s1", T0 + 26 * S, "https://shop.example/p", PHONE));
    f.send(&session_event("add_to_cart", "s1", T0 + 27 * S, "https://shop.example/p", PHONE));
    let mut later = session_event("page_view", "s1", T0 + 40 * S, "https://shop.example/", DESKTOP);
    later["enrich"]["marketing"] = json!({"mkt_campaign": "later-campaign"});
    later["enrich"]["platform"] = json!("mob");
    f.send(&later);
    f.tick_to(T0 + 65 * S);
    let at_tick = f.written();
    let session: BTreeMap<String, String> = at_tick
        .iter()
        .filter(|(k, _, t)| k.starts_with("session:s1:") && *t == T0 + MIN)
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        only(&session, "session:s1:"),
        expect(&[
            ("session_duration", "30000"),
            ("session_page_count", "3"),
            ("session_bounce", "false"),
            ("session_marketing_campaign", "spring"),
            ("session_cart_ratio", "0.50"),
            ("session_search_count", "1"),
            ("shopper_device_types", r#"["Desktop","Mobile"]"#),
            ("shopper_latest_platform", "mob"),
        ])
    );
    // Open for 30 minutes after its last event: written at every minute tick, then once at close.
    f.tick_to(T0 + 40 * S + 30 * MIN + 5 * S + 1);
    let durations: Vec<i64> =
        f.written().iter().filter(|(k, _, _)| k == "session:s1:session_duration").map(|(_, _, t)| *t).collect();
    assert_eq!(durations.len(), 30, "ticks T0+2m … T0+30m, then the close");
    assert_eq!(*durations.last().unwrap(), T0 + 40 * S + 30 * MIN, "the close is stamped with the session's end + gap");
    f.tick_to(T0 + 40 * MIN);
    assert!(!f.latest().keys().any(|k| k.starts_with("session:s1:")), "closed: no more writes");
    // The same id again: a fresh session.
    f.send(&session_event("page_view", "s1", T0 + 41 * MIN, "https://shop.example/", DESKTOP));
    f.tick_to(T0 + 42 * MIN + 5 * S);
    let fresh = only(&f.latest(), "session:s1:");
    assert_eq!((fresh["session_page_count"].as_str(), fresh["session_bounce"].as_str()), ("1", "true"));
    assert_eq!(fresh["session_duration"], "0");
    assert_eq!(fresh["session_marketing_campaign"], "");
}

#[test]
fn an_event_between_two_sessions_merges_them() {
    let sessions = |f: &Fixture| f.driver.session_all::<String, session::SessionAgg>("session-lane-windows");
    let f = fixture();
    f.send(&session_event("page_view", "s", T0, "https://shop.example/", DESKTOP));
    f.send(&session_event("page_view", "s", T0 + 29 * MIN, "https://shop.example/", DESKTOP));
    assert_eq!(sessions(&f).len(), 1, "within the gap: one session");
    let f = fixture();
    f.send(&session_event("page_view", "s", T0, "https://shop.example/", DESKTOP));
    // 2 s more than the gap later: a second session; the first closes only after T0+30m+5s.
    f.send(&session_event("page_view", "s", T0 + 30 * MIN + 2 * S, "https://shop.example/", DESKTOP));
    assert_eq!(sessions(&f).len(), 2, "more than the gap apart: two sessions");
    // An out-of-order event (within grace) within the gap of both joins them.
    f.send(&session_event("page_view", "s", T0 + 30 * MIN - 2 * S, "https://shop.example/", DESKTOP));
    let merged = sessions(&f);
    assert_eq!(merged.len(), 1);
    assert_eq!((merged[0].1.start, merged[0].1.end, merged[0].2.page_views), (T0, T0 + 30 * MIN + 2 * S, 3));
    // Older than stream time − grace: late, counted, and no part of any session.
    f.send(&session_event("page_view", "s", T0 + 10 * MIN, "https://shop.example/", DESKTOP));
    assert_eq!(f.driver.late_count("session-lane"), 1);
    assert_eq!(sessions(&f)[0].2.page_views, 3);
}

#[test]
fn records_older_than_stream_time_minus_grace_are_late_and_counted() {
    let f = fixture();
    f.send(&cart_event("add_to_cart", "u", T0 + 20 * S, 0.0, 1.0));
    f.send(&cart_event("add_to_cart", "u", T0 + 15 * S, 0.0, 1.0));
    f.send(&cart_event("add_to_cart", "u", T0 + 14_999, 0.0, 1.0));
    assert_eq!(f.driver.late_count("cart-lane"), 1);
    assert_eq!(f.driver.late_count("purchase-lane"), 1);
    f.tick_to(T0 + 35 * S);
    assert_eq!(f.latest()["user:u:cart_add_count_5m"], "2");
}

#[test]
fn bad_records_go_to_the_dead_letter_topic_with_the_reason() {
    let f = fixture();
    f.input.pipe((), "not an event".into(), 0);
    f.input.pipe((), "{\"broken json".into(), 0);
    f.input.pipe((), "a\tb\tc".into(), 0);
    let mut no_product = ev("add_to_cart", "u", "s", T0);
    no_product["payload"]["cart"] = json!({"total_value": 1.0});
    f.send(&no_product);
    f.send(&ev("checkout_step", "u", "s", T0));
    let mut anonymous = ev("page_view", "", "s", T0);
    anonymous["enrich"]["user"] = json!({});
    f.send(&anonymous);
    f.send(&ev("page_view", "u", "", T0));
    // A device clock in 2099: refused, or it would make every later event late.
    f.send(&ev("page_view", "u", "s", topology::parse_timestamp("2099-01-01T00:00:00Z").unwrap()));
    // The app keeps going.
    f.send(&cart_event("add_to_cart", "u", T0 + S, 0.0, 1.0));
    f.tick_to(T0 + 35 * S);
    let errors: Vec<String> = f.driver.dead_letters(DLQ).into_iter().map(|d| d.error).collect();
    assert_eq!(errors.len(), 8, "{errors:?}");
    assert!(errors[0].contains("neither an enriched TSV line nor a JSON document"), "{}", errors[0]);
    assert!(errors[1].contains("neither"), "{}", errors[1]);
    assert!(errors[2].contains("enriched TSV"), "{}", errors[2]);
    assert!(errors[3].contains("add_to_cart without a product entity"), "{}", errors[3]);
    assert!(errors[4].contains("checkout_step without a checkout_step entity"), "{}", errors[4]);
    assert!(errors[5].contains("page_view without user_id or domain_userid"), "{}", errors[5]);
    assert!(errors[6].contains("page_view without a client_session entity or domain_sessionid"), "{}", errors[6]);
    assert!(errors[7].contains("2099-01-01") && errors[7].contains("ahead of the wall clock"), "{}", errors[7]);
    assert_eq!(f.driver.metrics().dead_lettered, 8);
    assert_eq!(f.latest()["user:u:cart_add_count_5m"], "1");
}

/// The accelerator's recorded checkout (26 events, about two minutes, arriving out of order; the
/// shopper logs in after the cart page, so the user key changes from the domain user id to the email).
/// Features computed by hand, after the end of the input closes the windows holding the last events.
#[test]
fn the_accelerators_checkout_session_gives_the_features_computed_by_hand() {
    let f = fixture();
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/successful_checkout.jsonl"))
            .unwrap();
    for line in text.lines() {
        f.input.pipe((), line.to_string(), 0);
    }
    f.driver.final_flush().unwrap();
    assert_eq!(f.driver.metrics().dead_lettered, 0);
    assert!(f.driver.metrics().late.values().all(|n| *n == 0), "all disorder is within 5 s");
    let latest = f.latest();
    let anonymous = "user:67430c52-68fb-4277-baeb-b6033403094a:";
    let trent = "user:trent@snowplowanalytics.com:";
    let session = "session:c9727c0f-0f83-4a70-9eca-a415cf9ea52b:";
    let mut want = BTreeMap::new();
    for w in ["5m", "1h"] {
        // One product view before the login: product 5 at 42.99, and one add to cart.
        for (m, v) in [
            ("product_view_count", "1"),
            ("avg_viewed_price", "42.99"),
            ("return_view_count", r#"{"5":1}"#),
            ("price_range_viewed", "42.99-42.99"),
            ("cart_add_count", "1"),
            ("cart_remove_count", "0"),
            ("cart_update_frequency", "1"),
        ] {
            want.insert(format!("{anonymous}{m}_{w}"), v.to_string());
        }
    }
    for w in ["5m", "1h", "24h"] {
        // Before the login: New series, Top this week, Kid shoes (the product), and twice "You might
        // also be interested in". After it: New series ×2, Top this week ×2, You might… ×1 — a tie.
        want.insert(format!("{anonymous}top_category_{w}"), "You might also be interested in".into());
        want.insert(format!("{anonymous}unique_categories_{w}"), "4".into());
        want.insert(format!("{trent}top_category_{w}"), "New series".into());
        want.insert(format!("{trent}unique_categories_{w}"), "3".into());
    }
    // The add to cart was the anonymous user's and the second checkout step trent's: no order for
    // either (the rule pairs events of one user key), so both write zeros.
    for user in [anonymous, trent] {
        for (m, v) in [("orders_count_24h", "0"), ("order_value_24h", "0.00"), ("avg_order_value_24h", "0.00")] {
            want.insert(format!("{user}{m}"), v.to_string());
        }
    }
    // One session across the login: session-lane events from the page view at +2 ms to the one at
    // +127,419 ms; 8 page views, 1 product view, 1 add to cart; the campaign from the landing page.
    for (m, v) in [
        ("session_duration", "127417"),
        ("session_page_count", "8"),
        ("session_bounce", "false"),
        ("session_marketing_campaign", "google-ads-winter-sale-24"),
        ("session_cart_ratio", "1.00"),
        ("session_search_count", "0"),
        ("shopper_device_types", r#"["Desktop"]"#),
        ("shopper_latest_platform", "web"),
    ] {
        want.insert(format!("{session}{m}"), v.to_string());
    }
    assert_eq!(latest, want);
}
