use std::time::Duration;

use topology::{
    Consumed, JoinWindows, Materialized, Named, Produced, Serdes, StreamJoined, StreamsBuilder, TestDriver,
    TopologyError,
};

use crate::{i, s};

type Pair = (Option<i64>, Option<i64>);

fn stream_join(kind: &str, windows: JoinWindows) -> TestDriver {
    let mut b = StreamsBuilder::new();
    let left = b.stream("left", Consumed::with(s(), i()));
    let right = b.stream("right", Consumed::with(s(), i()));
    let joined = match kind {
        "inner" => left.join_stream(&right, |l, r| (Some(*l), Some(*r)), windows, StreamJoined::as_("j")),
        "left" => left.left_join_stream(&right, |l, r| (Some(*l), r.copied()), windows, StreamJoined::as_("j")),
        _ => left.outer_join_stream(&right, |l, r| (l.copied(), r.copied()), windows, StreamJoined::as_("j")),
    };
    joined.to("out", Produced::with(s(), Serdes::json::<Pair>()));
    TestDriver::new(b.build().unwrap())
}

fn out(d: &TestDriver) -> Vec<(String, Pair, i64)> {
    d.output_topic("out", s(), Serdes::json::<Pair>())
        .read_records()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

#[test]
fn inner_stream_join_matches_within_the_window_boundaries_inclusive() {
    let w = JoinWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(100));
    let d = stream_join("inner", w);
    let (l, r) = (d.input_topic("left", s(), i()), d.input_topic("right", s(), i()));
    l.pipe("k".into(), 1, 100);
    r.pipe("k".into(), 2, 110); // exactly +10: joins
    r.pipe("k".into(), 3, 89); // -11: outside
    r.pipe("k".into(), 4, 90); // exactly -10: joins
    r.pipe("x".into(), 5, 100); // other key
    l.pipe("k".into(), 6, 111); // joins right@110 (−1) only? 111-10=101..121: right 110 only
    assert_eq!(
        out(&d),
        vec![
            ("k".into(), (Some(1), Some(2)), 110),
            ("k".into(), (Some(1), Some(4)), 100),
            ("k".into(), (Some(6), Some(2)), 111),
        ]
    );
}

#[test]
fn asymmetric_before_and_after() {
    let w = JoinWindows::of(Duration::ZERO)
        .before(Duration::from_millis(5))
        .after(Duration::from_millis(0))
        .grace(Duration::from_millis(50));
    let d = stream_join("inner", w);
    let (l, r) = (d.input_topic("left", s(), i()), d.input_topic("right", s(), i()));
    l.pipe("k".into(), 1, 100);
    r.pipe("k".into(), 2, 101); // after the left record: after = 0, no join
    r.pipe("k".into(), 3, 95); // 5 before: joins
    assert_eq!(out(&d), vec![("k".into(), (Some(1), Some(3)), 100)]);
}

#[test]
fn left_join_emits_unmatched_records_only_after_the_window_closes() {
    let w = JoinWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(5));
    let d = stream_join("left", w);
    let (l, r) = (d.input_topic("left", s(), i()), d.input_topic("right", s(), i()));
    l.pipe("a".into(), 1, 100);
    l.pipe("b".into(), 2, 100);
    r.pipe("a".into(), 3, 105); // a matches: (1, 3)
    assert_eq!(out(&d), vec![("a".into(), (Some(1), Some(3)), 105)]);
    // b's window closes when stream time passes 100 + 10 + 5 = 115.
    r.pipe("z".into(), 0, 115);
    assert!(out(&d).is_empty(), "no spurious early left-join result");
    r.pipe("z".into(), 0, 116);
    assert_eq!(out(&d), vec![("b".into(), (Some(2), None), 100)]);
    // a matched, so no (1, None) ever appears.
    r.pipe("z".into(), 0, 1_000);
    assert!(out(&d).is_empty());
}

#[test]
fn outer_join_emits_unmatched_records_of_both_sides() {
    let w = JoinWindows::of(Duration::from_millis(10));
    let d = stream_join("outer", w);
    let (l, r) = (d.input_topic("left", s(), i()), d.input_topic("right", s(), i()));
    l.pipe("a".into(), 1, 100);
    r.pipe("b".into(), 2, 100);
    r.pipe("c".into(), 0, 200);
    let mut got = out(&d);
    got.sort();
    assert_eq!(got, vec![("a".into(), (Some(1), None), 100), ("b".into(), (None, Some(2)), 100)]);
}

#[test]
fn records_arriving_after_their_join_window_closed_are_late() {
    let w = JoinWindows::of(Duration::from_millis(10));
    let d = stream_join("inner", w);
    let (l, r) = (d.input_topic("left", s(), i()), d.input_topic("right", s(), i()));
    l.pipe("k".into(), 1, 100);
    r.pipe("k".into(), 2, 200);
    l.pipe("k".into(), 3, 189); // 189 + 10 < 200: late
    l.pipe("k".into(), 4, 190); // 190 + 10 = 200: still open, joins right@200
    assert_eq!(d.late_count("j"), 1);
    assert_eq!(out(&d), vec![("k".into(), (Some(4), Some(2)), 200)]);
}

fn users_table(b: &mut StreamsBuilder) -> topology::KTable<String, String> {
    b.table("users", Consumed::with(s(), s()), Materialized::as_("users-store"))
}

#[test]
fn stream_table_inner_and_left_join_see_the_latest_table_value_and_tombstones() {
    let mut b = StreamsBuilder::new();
    let users = users_table(&mut b);
    let clicks = b.stream("clicks", Consumed::with(s(), i()));
    clicks.join(&users, |c, u| format!("{u}:{c}"), Named::as_("inner")).to("inner", Produced::with(s(), s()));
    clicks
        .left_join(&users, |c, u| format!("{}:{c}", u.map(String::as_str).unwrap_or("?")), Named::as_("left"))
        .to("left", Produced::with(s(), s()));
    let d = TestDriver::builder(b.build().unwrap()).partitions(3).build().unwrap();
    let (u, c) = (d.input_topic("users", s(), Serdes::optional(s())), d.input_topic("clicks", s(), i()));
    c.pipe("1".into(), 10, 0); // no user yet
    u.pipe("1".into(), Some("ann".into()), 1);
    c.pipe("1".into(), 11, 2);
    u.pipe("1".into(), Some("anna".into()), 3); // table updates emit nothing
    c.pipe("1".into(), 12, 4);
    u.pipe("1".into(), None, 5); // tombstone
    c.pipe("1".into(), 13, 6);
    assert_eq!(d.output_topic("inner", s(), s()).read_values(), vec!["ann:11", "anna:12"]);
    assert_eq!(d.output_topic("left", s(), s()).read_values(), vec!["?:10", "ann:11", "anna:12", "?:13"]);
    assert_eq!(d.kv_get::<String, String>("users-store", &"1".into()), None);
}

#[test]
fn stream_table_join_after_a_key_change_repartitions_the_stream() {
    let mut b = StreamsBuilder::new();
    let users = users_table(&mut b);
    b.stream("clicks", Consumed::with(s(), s()))
        .select_key(|_, user| user.clone())
        .join(&users, |c, u| format!("{u}<-{c}"), Named::as_("enrich"))
        .to("out", Produced::with(s(), s()));
    let topo = b.build().unwrap();
    assert!(topo.describe().to_string().contains("enrich-repartition"));
    let d = TestDriver::builder(topo).partitions(4).application_id("app").build().unwrap();
    assert_eq!(d.partitions_of("app-enrich-repartition"), 4);
    let (u, c) = (d.input_topic("users", s(), Serdes::optional(s())), d.input_topic("clicks", s(), s()));
    for n in 0..8 {
        u.pipe(format!("u{n}"), Some(format!("name{n}")), 0);
    }
    for n in 0..8 {
        c.pipe(format!("click{n}"), format!("u{n}"), 1);
    }
    let mut got = d.output_topic("out", s(), s()).read_values();
    got.sort();
    assert_eq!(got.len(), 8, "every click met its user in the same partition: {got:?}");
    assert_eq!(got[0], "name0<-u0");
}

#[test]
fn joining_topics_with_different_partition_counts_is_refused_naming_the_topics() {
    let mut b = StreamsBuilder::new();
    let users = users_table(&mut b);
    b.stream("clicks", Consumed::with(s(), i()))
        .join(&users, |c, u| format!("{u}{c}"), Named::as_("j"))
        .to("out", Produced::with(s(), s()));
    let err = TestDriver::builder(b.build().unwrap())
        .topic_partitions("clicks", 2)
        .topic_partitions("users", 3)
        .build()
        .unwrap_err();
    match err {
        topology::Error::Topology(TopologyError::NotCoPartitioned { topics, counts, .. }) => {
            assert_eq!(topics, vec!["clicks".to_string(), "users".to_string()]);
            assert_eq!(counts, vec![2, 3]);
        }
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn global_table_join_uses_a_key_mapper_and_every_task_sees_all_rows() {
    let mut b = StreamsBuilder::new();
    let names = b.global_table("names", Consumed::with(s(), s()), Materialized::as_("names-store"));
    b.stream("orders", Consumed::with(s(), s()))
        .join_global(&names, |_, product| product.clone(), |product, name| format!("{product}/{name}"), Named::as_("g"))
        .to("out", Produced::with(s(), s()));
    b.stream("orders2", Consumed::with(s(), s()))
        .left_join_global(
            &names,
            |_, v| v.clone(),
            |o, n| format!("{o}/{}", n.cloned().unwrap_or_default()),
            Named::as_("lg"),
        )
        .to("out2", Produced::with(s(), s()));
    let topo = b.build().unwrap();
    assert!(topo.describe().to_string().contains("for global store (will not generate tasks)"));
    let d = TestDriver::builder(topo).partitions(4).build().unwrap();
    let names = d.input_topic("names", s(), Serdes::optional(s()));
    names.pipe("p1".into(), Some("Pen".into()), 0);
    names.pipe("p2".into(), Some("Ink".into()), 0);
    let orders = d.input_topic("orders", s(), s());
    for n in 0..6 {
        orders.pipe(format!("o{n}"), if n % 2 == 0 { "p1".into() } else { "p2".into() }, 1);
    }
    orders.pipe("o9".into(), "p9".into(), 1);
    d.input_topic("orders2", s(), s()).pipe("o9".into(), "p9".into(), 1);
    let mut got = d.output_topic("out", s(), s()).read_values();
    got.sort();
    assert_eq!(got, vec!["p1/Pen", "p1/Pen", "p1/Pen", "p2/Ink", "p2/Ink", "p2/Ink"]);
    assert_eq!(d.output_topic("out2", s(), s()).read_values(), vec!["p9/"]);
}
