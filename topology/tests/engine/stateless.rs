use std::sync::{Arc, Mutex};

use topology::{Consumed, Produced, Repartitioned, StreamsBuilder, TestDriver};

use crate::{i, s};

fn input(b: &mut StreamsBuilder) -> topology::KStream<String, i64> {
    b.stream("in", Consumed::with(s(), i()))
}

#[test]
fn filter_map_values_and_filter_not() {
    let mut b = StreamsBuilder::new();
    let st = input(&mut b);
    st.filter(|_, v| *v % 2 == 0).map_values(|v| v * 10).to("even", Produced::with(s(), i()));
    st.filter_not(|_, v| *v % 2 == 0).to("odd", Produced::with(s(), i()));
    let d = TestDriver::new(b.build().unwrap());
    let inp = d.input_topic("in", s(), i());
    for n in 1..=4 {
        inp.pipe(format!("k{n}"), n, n);
    }
    assert_eq!(d.output_topic("even", s(), i()).read_values(), vec![20, 40]);
    assert_eq!(d.output_topic("odd", s(), i()).read_values(), vec![1, 3]);
}

#[test]
fn map_flat_map_select_key_and_timestamps_carry_through() {
    let mut b = StreamsBuilder::new();
    input(&mut b)
        .map(|k, v| (format!("{k}!"), v + 1))
        .flat_map(|k, v| vec![(k.clone(), v), (k, -v)])
        .flat_map_values(|v| if v > 0 { vec![v, v] } else { vec![] })
        .select_key(|k, v| format!("{k}{v}"))
        .to("out", Produced::with(s(), i()));
    let d = TestDriver::new(b.build().unwrap());
    d.input_topic("in", s(), i()).pipe("a".into(), 1, 77);
    let out = d.output_topic("out", s(), i()).read_records();
    let got: Vec<(String, i64, i64)> = out.into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
    assert_eq!(got, vec![("a!2".into(), 2, 77), ("a!2".into(), 2, 77)]);
}

#[test]
fn peek_foreach_merge_and_split() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut b = StreamsBuilder::new();
    let a = input(&mut b);
    let other = b.stream("in2", Consumed::with(s(), i()));
    let seen2 = seen.clone();
    let merged = a.merge(&other).peek(move |k, _| seen2.lock().unwrap().push(k.clone()));
    let branches =
        merged.split("n-").branch("small", |_, v| *v < 10).branch("big", |_, v| *v >= 100).default_branch("mid");
    branches["n-small"].to("small", Produced::with(s(), i()));
    branches["n-big"].to("big", Produced::with(s(), i()));
    let mids = Arc::new(Mutex::new(Vec::new()));
    let m2 = mids.clone();
    branches["n-mid"].foreach(move |_, v| m2.lock().unwrap().push(*v));
    let d = TestDriver::new(b.build().unwrap());
    d.input_topic("in", s(), i()).pipe("x".into(), 5, 0);
    d.input_topic("in2", s(), i()).pipe("y".into(), 500, 1);
    d.input_topic("in", s(), i()).pipe("z".into(), 50, 2);
    assert_eq!(*seen.lock().unwrap(), vec!["x", "y", "z"]);
    assert_eq!(d.output_topic("small", s(), i()).read_values(), vec![5]);
    assert_eq!(d.output_topic("big", s(), i()).read_values(), vec![500]);
    assert_eq!(*mids.lock().unwrap(), vec![50]);
}

#[test]
fn repartition_moves_records_to_the_partition_of_their_new_key() {
    let mut b = StreamsBuilder::new();
    input(&mut b)
        .select_key(|_, v| format!("key-{}", v % 3))
        .repartition(Repartitioned::as_("by-mod").with_partitions(3))
        .to("out", Produced::with(s(), i()));
    let d = TestDriver::builder(b.build().unwrap()).partitions(4).application_id("app").build().unwrap();
    assert_eq!(d.partitions_of("app-by-mod-repartition"), 3);
    // 1 sub-topology × 4 partitions + 1 × 3 partitions.
    assert_eq!(d.task_count(), 7);
    let inp = d.input_topic("in", s(), i());
    for n in 0..30 {
        inp.pipe(format!("k{n}"), n, n);
    }
    // Every key lands on exactly one partition of the repartition topic.
    let mut part_of = std::collections::HashMap::new();
    for (p, r) in d.topic_records("app-by-mod-repartition") {
        let k = r.key.unwrap();
        assert_eq!(*part_of.entry(k).or_insert(p), p);
    }
    assert_eq!(part_of.len(), 3);
    assert_eq!(d.output_topic("out", s(), i()).read_values().len(), 30);
}
