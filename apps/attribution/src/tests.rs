//! The attribution rules on the test driver, one test per rule.

use topology::{Application, Serdes, TestDriver, TestInputTopic, TestOutputTopic};

use crate::generator::format_time;
use crate::*;

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

struct Fixture {
    driver: TestDriver,
    clicks: TestInputTopic<String, String>,
    checkouts: TestInputTopic<String, String>,
    users: TestInputTopic<String, String>,
    out: TestOutputTopic<String, AttributedCheckout>,
}

fn fixture() -> Fixture {
    let driver =
        TestDriver::builder(AttributionApp::topology().unwrap()).application_id("attribution").build().unwrap();
    let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    let checkouts = driver.input_topic("checkouts", Serdes::string(), Serdes::string());
    let users = driver.input_topic("users", Serdes::string(), Serdes::string());
    let out = driver.output_topic("attributed_checkouts", Serdes::string(), Serdes::json::<AttributedCheckout>());
    Fixture { driver, clicks, checkouts, users, out }
}

fn click(id: &str, user: i64, product: &str, at: i64) -> String {
    serde_json::to_string(&Click {
        click_id: id.into(),
        user_id: user,
        product_id: product.into(),
        product: "Laptop".into(),
        price: 999.0,
        url: "https://shop.example/p".into(),
        user_agent: "ua".into(),
        ip_address: "10.0.0.1".into(),
        datetime_occured: format_time(at),
    })
    .unwrap()
}

fn checkout(id: &str, user: i64, product: &str, at: i64) -> String {
    serde_json::to_string(&Checkout {
        checkout_id: id.into(),
        user_id: user,
        product_id: product.into(),
        payment_method: "credit_card".into(),
        total_amount: 999.0,
        shipping_address: "1 Main St".into(),
        billing_address: "1 Main St".into(),
        user_agent: "ua".into(),
        ip_address: "10.0.0.1".into(),
        datetime_occured: format_time(at),
    })
    .unwrap()
}

impl Fixture {
    fn click(&self, id: &str, user: i64, product: &str, at: i64) {
        self.clicks.pipe(String::new(), click(id, user, product, at), at);
    }
    fn checkout(&self, id: &str, user: i64, product: &str, at: i64) {
        self.checkouts.pipe(String::new(), checkout(id, user, product, at), at);
    }
    fn user(&self, id: i64, name: &str, at: i64) {
        self.users.pipe(id.to_string(), format!(r#"{{"id":{id},"username":"{name}"}}"#), at);
    }
    /// Moves stream time of the attribution task to `at` (a click of an unrelated user and product).
    fn advance(&self, at: i64) {
        self.click("tick", 999_999, "none", at);
    }
    /// The outputs so far: (checkout id, click id, user name).
    fn outputs(&self) -> Vec<(String, Option<String>, Option<String>)> {
        self.out.read_values().into_iter().map(|a| (a.checkout_id, a.click_id, a.user_name)).collect()
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn the_earliest_click_in_the_hour_before_wins_and_the_output_waits_for_the_grace() {
    let f = fixture();
    f.user(1, "ada", T0 - MIN);
    f.click("c-late", 1, "p1", T0 + 10 * MIN);
    f.click("c-first", 1, "p1", T0 + 5 * MIN);
    f.click("c-other-product", 1, "p2", T0);
    f.checkout("k1", 1, "p1", T0 + 20 * MIN);
    f.advance(T0 + 20 * MIN + GRACE_MS - 1);
    assert!(f.out.is_empty(), "not before checkout time + grace");
    f.advance(T0 + 20 * MIN + GRACE_MS);
    let out = f.out.read_records();
    assert_eq!(out.len(), 1);
    let a = &out[0].value;
    assert_eq!(out[0].key, "k1");
    assert_eq!((a.click_id.as_deref(), a.user_name.as_deref()), (Some("c-first"), Some("ada")));
    assert_eq!(a.click_time.as_deref(), Some(format_time(T0 + 5 * MIN).as_str()));
    assert_eq!(a.checkout_time, format_time(T0 + 20 * MIN));
}

#[test]
fn a_click_exactly_one_hour_before_qualifies_one_millisecond_more_does_not() {
    let f = fixture();
    f.click("c-too-early", 1, "p1", T0 - 1);
    f.click("c-edge", 2, "p1", T0);
    f.checkout("k1", 1, "p1", T0 + WINDOW_MS);
    f.checkout("k2", 2, "p1", T0 + WINDOW_MS);
    f.advance(T0 + WINDOW_MS + GRACE_MS);
    let mut got = f.outputs();
    got.sort();
    assert_eq!(got, vec![("k1".into(), None, None), ("k2".into(), s("c-edge"), None)]);
}

#[test]
fn a_click_in_the_same_millisecond_qualifies_and_ties_go_to_the_smaller_click_id() {
    let f = fixture();
    f.click("c-b", 1, "p1", T0);
    f.click("c-a", 1, "p1", T0);
    f.checkout("k1", 1, "p1", T0);
    f.advance(T0 + GRACE_MS);
    assert_eq!(f.outputs(), vec![("k1".into(), s("c-a"), None)]);
}

#[test]
fn a_late_click_inside_the_grace_counts_and_one_after_it_does_not() {
    let f = fixture();
    f.checkout("k1", 1, "p1", T0);
    f.advance(T0 + GRACE_MS - 1);
    f.click("c-late-but-in-grace", 1, "p1", T0 - MIN); // arrives after the checkout, before its grace ends
    f.advance(T0 + GRACE_MS);
    f.checkout("k2", 2, "p1", T0 + GRACE_MS);
    f.advance(T0 + 2 * GRACE_MS);
    f.click("c-too-late", 2, "p1", T0); // k2 was emitted already
    f.advance(T0 + 3 * GRACE_MS);
    assert_eq!(f.outputs(), vec![("k1".into(), s("c-late-but-in-grace"), None), ("k2".into(), None, None)]);
}

#[test]
fn a_duplicated_checkout_gives_one_output() {
    let f = fixture();
    f.click("c1", 1, "p1", T0);
    f.checkout("k1", 1, "p1", T0 + MIN);
    f.checkout("k1", 1, "p1", T0 + MIN); // redelivered before emission
    f.advance(T0 + MIN + GRACE_MS);
    f.checkout("k1", 1, "p1", T0 + MIN); // and after
    f.advance(T0 + 30 * MIN);
    assert_eq!(f.outputs(), vec![("k1".into(), s("c1"), None)]);
}

#[test]
fn unknown_users_have_no_name_renamed_users_their_latest_and_deleted_users_none() {
    let f = fixture();
    f.user(1, "ada", T0 - 10 * MIN);
    f.user(1, "ada-lovelace", T0 - MIN); // renamed before the checkout
    f.user(3, "carol", T0 - 10 * MIN);
    f.users.pipe("3".into(), "null".into(), T0 - MIN); // a JSON null (a file's tombstone) deletes carol
    f.user(4, "dan", T0 - 10 * MIN);
    f.users.pipe_raw(Some(b"4"), None, T0 - MIN); // a Kafka tombstone (null value) deletes dan
    f.checkout("k1", 1, "p1", T0);
    f.checkout("k2", 2, "p1", T0);
    f.checkout("k3", 3, "p1", T0);
    f.checkout("k4", 4, "p1", T0);
    f.advance(T0 + GRACE_MS);
    let mut got = f.outputs();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("k1".into(), None, s("ada-lovelace")),
            ("k2".into(), None, None),
            ("k3".into(), None, None),
            ("k4".into(), None, None)
        ]
    );
}

#[test]
fn malformed_records_go_to_the_dead_letter_topic_and_processing_continues() {
    let f = fixture();
    f.clicks.pipe(String::new(), "{not json".into(), T0);
    f.clicks.pipe(String::new(), r#"{"click_id":"c1"}"#.into(), T0); // fields missing
    let bad_time = checkout("k0", 1, "p1", T0).replace(&format_time(T0), "yesterday");
    f.checkouts.pipe(String::new(), bad_time, T0);
    f.click("c2", 1, "p1", T0);
    f.checkout("k1", 1, "p1", T0);
    f.advance(T0 + GRACE_MS);
    assert_eq!(f.outputs(), vec![("k1".into(), s("c2"), None)]);
    let dead = f.driver.dead_letters(DLQ);
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(dead.iter().any(|d| d.error.contains("timestamp")), "{dead:?}");
}

#[test]
fn a_checkout_older_than_the_bookkeeping_is_rejected_with_its_reason() {
    let f = fixture();
    f.advance(T0 + 2 * WINDOW_MS);
    f.checkout("k-old", 1, "p1", T0);
    let dlq = f.driver.output_topic(DLQ, Serdes::string(), Serdes::json::<Rejection>()).read_records();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].key, "k-old");
    assert!(dlq[0].value.reason.starts_with("late:"), "{}", dlq[0].value.reason);
    assert!(f.out.is_empty());
}

#[test]
fn state_is_bounded_old_clicks_and_emitted_checkouts_leave_the_stores() {
    let f = fixture();
    for n in 0..50 {
        f.click(&format!("c{n}"), n, "p1", T0 + n * 1000);
        f.checkout(&format!("k{n}"), n, "p1", T0 + n * 1000 + 10);
    }
    f.advance(T0 + 2 * MIN);
    assert_eq!(f.outputs().len(), 50);
    assert!(f.driver.window_all::<String, Vec<ClickRef>>("attribute-clicks").len() >= 50);
    assert!(f.driver.kv_all::<u8, Vec<(i64, Checkout)>>("attribute-pending").is_empty(), "emitted ones leave");
    // Hours later only recent entries remain.
    f.advance(T0 + 3 * WINDOW_MS);
    f.advance(T0 + 3 * WINDOW_MS + 1000);
    let clicks = f.driver.window_all::<String, Vec<ClickRef>>("attribute-clicks");
    let seen = f.driver.window_all::<String, bool>("attribute-seen");
    assert!(clicks.iter().all(|(_, t, _)| *t > T0 + WINDOW_MS), "{} old clicks kept", clicks.len());
    assert!(seen.iter().all(|(_, t, _)| *t > T0 + WINDOW_MS), "{} old checkouts kept", seen.len());
}
