use std::time::Duration;

use serde::{Deserialize, Serialize};
use topology::agg::{Distinct, First, Last, Mean};
use topology::{
    Aggregate, Aggregator, Grouped, Materialized, Record, SessionWindows, StreamsBuilder, Subtractable, TestDriver,
};

#[derive(Record, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[record(topic = "views")]
struct ProductView {
    #[key]
    user: String,
    product: String,
    price: f64,
    quantity: i64,
    #[timestamp]
    ts: i64,
}

fn concat(acc: &mut String, v: &ProductView, _ts: i64) {
    acc.push_str(&v.product);
}

fn concat_merge(acc: &mut String, other: String) {
    acc.push_str(&other);
}

#[derive(Aggregate, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[aggregate(input = ProductView)]
struct Features {
    #[aggregate(count)]
    views: u64,
    #[aggregate(sum = quantity)]
    items: i64,
    #[aggregate(min = price)]
    cheapest: Option<f64>,
    #[aggregate(max = price)]
    dearest: Option<f64>,
    #[aggregate(mean = price)]
    avg_price: Mean,
    #[aggregate(count_distinct = product)]
    products: Distinct<String>,
    #[aggregate(first = product)]
    first_product: First<String>,
    #[aggregate(last = product)]
    last_product: Last<String>,
    #[aggregate(custom = concat, merge = concat_merge)]
    trail: String,
}

#[derive(Aggregate, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[aggregate(input = ProductView)]
struct Totals {
    #[aggregate(count)]
    views: u64,
    #[aggregate(sum = quantity)]
    items: i64,
    #[aggregate(mean = price)]
    avg_price: Mean,
}

fn view(product: &str, price: f64, quantity: i64, ts: i64) -> ProductView {
    ProductView { user: "u".into(), product: product.into(), price, quantity, ts }
}

#[test]
fn every_field_kind_adds_and_merges() {
    let mut a = Features::default();
    a.add(&view("b", 5.0, 1, 20), 20);
    a.add(&view("a", 1.0, 2, 10), 10); // earlier event time: becomes `first`
    let mut b = Features::default();
    b.add(&view("a", 9.0, 3, 30), 30);
    a.merge(b);
    assert_eq!(a.views, 3);
    assert_eq!(a.items, 6);
    assert_eq!((a.cheapest, a.dearest), (Some(1.0), Some(9.0)));
    assert_eq!(a.avg_price.value(), Some(5.0));
    assert_eq!(a.products.count(), 2);
    assert_eq!(a.first_product.value().map(String::as_str), Some("a"));
    assert_eq!(a.last_product.value().map(String::as_str), Some("a"));
    assert_eq!(a.trail, "baa");
}

#[test]
fn count_sum_and_mean_aggregates_are_subtractable() {
    let mut t = Totals::default();
    t.add(&view("a", 2.0, 1, 0), 0);
    t.add(&view("b", 4.0, 5, 0), 0);
    t.subtract(&view("a", 2.0, 1, 0), 0);
    assert_eq!(t, {
        let mut only_b = Totals::default();
        only_b.add(&view("b", 4.0, 5, 0), 0);
        only_b
    });
}

#[test]
fn aggregate_into_a_session_merges_with_the_generated_merge() {
    let mut b = StreamsBuilder::new();
    b.stream_of::<ProductView>()
        .group_by_key(Grouped::new())
        .windowed_by(SessionWindows::with_inactivity_gap(Duration::from_millis(10)))
        .aggregate_into::<Features>(Materialized::as_("features"));
    let d = TestDriver::new(b.build().unwrap());
    let input = d.input_topic("views", topology::Serdes::string(), topology::Serdes::json::<ProductView>());
    input.pipe("u".into(), view("a", 3.0, 1, 0), 0);
    input.pipe("u".into(), view("b", 7.0, 1, 18), 0);
    input.pipe("u".into(), view("c", 5.0, 1, 9), 0); // bridges both sessions
    let sessions = d.session_all::<String, Features>("features");
    assert_eq!(sessions.len(), 1);
    let f = &sessions[0].2;
    assert_eq!((f.views, f.cheapest, f.dearest), (3, Some(3.0), Some(7.0)));
    assert_eq!(f.first_product.value().map(String::as_str), Some("a"));
    assert_eq!(f.last_product.value().map(String::as_str), Some("b"));
    assert_eq!(f.products.count(), 3);
}
