use topology::{Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder, TestDriver};

use crate::{i, json, s};

fn changes(d: &TestDriver, topic: &str) -> Vec<(String, Option<i64>)> {
    d.output_topic(topic, s(), Serdes::optional(json::<i64>())).read_key_values()
}

#[test]
fn table_filter_map_values_and_to_stream_carry_tombstones() {
    let mut b = StreamsBuilder::new();
    b.table("t", Consumed::with(s(), i()), Materialized::as_("t-store"))
        .filter(|_, v| *v >= 10)
        .map_values(|v| v * 2)
        .to_stream()
        .to("out", Produced::with(s(), Serdes::optional(json::<i64>())));
    let d = TestDriver::new(b.build().unwrap());
    let t = d.input_topic("t", s(), Serdes::optional(i()));
    t.pipe("a".into(), Some(5), 0); // filtered out, was absent: nothing
    t.pipe("a".into(), Some(20), 1);
    t.pipe("a".into(), Some(3), 2); // no longer passes: reads as a delete
    t.pipe("b".into(), Some(50), 3);
    t.pipe("b".into(), None, 4); // tombstone
    t.pipe("c".into(), None, 5); // deleting an absent key changes nothing
    assert_eq!(
        changes(&d, "out"),
        vec![("a".into(), Some(40)), ("a".into(), None), ("b".into(), Some(100)), ("b".into(), None)]
    );
}

#[test]
fn table_table_joins_inner_left_outer() {
    let mut b = StreamsBuilder::new();
    let l = b.table("l", Consumed::with(s(), i()), Materialized::as_("l-store"));
    let r = b.table("r", Consumed::with(s(), i()), Materialized::as_("r-store"));
    let sink = || Produced::with(s(), Serdes::optional(json::<i64>()));
    l.join(&r, |a, b| a * 100 + b).to_stream().to("inner", sink());
    l.left_join(&r, |a, b| a * 100 + b.copied().unwrap_or(0)).to_stream().to("left", sink());
    l.outer_join(&r, |a, b| a.copied().unwrap_or(0) * 100 + b.copied().unwrap_or(0)).to_stream().to("outer", sink());
    let d = TestDriver::new(b.build().unwrap());
    let (lt, rt) = (d.input_topic("l", s(), Serdes::optional(i())), d.input_topic("r", s(), Serdes::optional(i())));
    lt.pipe("k".into(), Some(1), 0);
    rt.pipe("k".into(), Some(2), 1);
    rt.pipe("k".into(), None, 2);
    lt.pipe("k".into(), None, 3);
    assert_eq!(changes(&d, "inner"), vec![("k".into(), Some(102)), ("k".into(), None)]);
    assert_eq!(
        changes(&d, "left"),
        vec![("k".into(), Some(100)), ("k".into(), Some(102)), ("k".into(), Some(100)), ("k".into(), None)]
    );
    assert_eq!(
        changes(&d, "outer"),
        vec![("k".into(), Some(100)), ("k".into(), Some(102)), ("k".into(), Some(100)), ("k".into(), None)]
    );
}

#[test]
fn grouped_table_aggregate_adds_and_subtracts_across_partitions() {
    // Sum of balances per region; moving a user to another region subtracts from the old one.
    let mut b = StreamsBuilder::new();
    b.table("users", Consumed::with(s(), json::<(String, i64)>()), Materialized::as_("users"))
        .group_by(|_, (region, balance)| (region.clone(), *balance), Grouped::as_("by-region"))
        .aggregate(|| 0i64, |_, v, agg| agg + v, |_, v, agg| agg - v, Materialized::as_("region-sums"))
        .to_stream()
        .to("sums", Produced::with(s(), Serdes::optional(json::<i64>())));
    let d = TestDriver::builder(b.build().unwrap()).partitions(3).build().unwrap();
    let users = d.input_topic("users", s(), Serdes::optional(json::<(String, i64)>()));
    users.pipe("ann".into(), Some(("eu".into(), 10)), 0);
    users.pipe("bob".into(), Some(("eu".into(), 5)), 1);
    users.pipe("ann".into(), Some(("us".into(), 7)), 2); // moves: eu -= 10, us += 7
    users.pipe("bob".into(), Some(("eu".into(), 6)), 3); // same region: eu -5 +6
    users.pipe("bob".into(), None, 4); // deleted: eu -= 6
    assert_eq!(d.kv_get::<String, i64>("region-sums", &"eu".into()), Some(0));
    assert_eq!(d.kv_get::<String, i64>("region-sums", &"us".into()), Some(7));
    let last: std::collections::BTreeMap<String, Option<i64>> = changes(&d, "sums").into_iter().collect();
    assert_eq!(last["eu"], Some(0));
    assert_eq!(last["us"], Some(7));
}

#[test]
fn stream_count_reduce_and_aggregate() {
    let mut b = StreamsBuilder::new();
    let grouped = b.stream("in", Consumed::with(s(), i())).group_by_key(Grouped::new());
    grouped.count(Materialized::as_("count"));
    grouped.reduce(|a, v| a.max(*v), Materialized::as_("max"));
    grouped.aggregate(
        Vec::new,
        |_, v, mut acc: Vec<i64>| {
            acc.push(*v);
            acc
        },
        Materialized::as_("all"),
    );
    let d = TestDriver::builder(b.build().unwrap()).partitions(2).build().unwrap();
    let inp = d.input_topic("in", s(), i());
    for (k, v) in [("a", 3), ("b", 1), ("a", 9), ("a", 4)] {
        inp.pipe(k.into(), v, 0);
    }
    assert_eq!(d.kv_all::<String, u64>("count"), vec![("a".into(), 3), ("b".into(), 1)]);
    assert_eq!(d.kv_get::<String, i64>("max", &"a".into()), Some(9));
    assert_eq!(d.kv_get::<String, Vec<i64>>("all", &"a".into()), Some(vec![3, 9, 4]));
}
