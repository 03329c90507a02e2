use std::sync::{Arc, Mutex};
use std::time::Duration;

use topology::{
    Consumed, EmitStrategy, Grouped, LateRecords, Materialized, Produced, Serdes, SessionWindows, SlidingWindows,
    StreamsBuilder, TestDriver, TimeWindows, Window, Windowed,
};

use crate::{i, json, s};

type Out = Option<u64>;

fn windowed_counts(windows: TimeWindows, emit: EmitStrategy, b: &mut StreamsBuilder) {
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .windowed_by(windows)
        .emit(emit)
        .count(Materialized::as_("counts"))
        .to_stream()
        .to("out", Produced::with(json::<Windowed<String>>(), Serdes::optional(json::<u64>())));
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn read(d: &TestDriver) -> Vec<(String, i64, i64, Out)> {
    d.output_topic("out", json::<Windowed<String>>(), Serdes::optional(json::<u64>()))
        .read_key_values()
        .into_iter()
        .map(|(k, v)| (k.key, k.window.start, k.window.end, v))
        .collect()
}

#[test]
fn tumbling_count_emits_every_update_and_refuses_late_records() {
    let late = Arc::new(Mutex::new(Vec::new()));
    let mut b = StreamsBuilder::new();
    let l2 = late.clone();
    b.late_records(LateRecords::Callback(Arc::new(move |r| l2.lock().unwrap().push((r.timestamp, r.reason.clone())))));
    windowed_counts(TimeWindows::of(ms(10)).grace(ms(5)), EmitStrategy::OnWindowUpdate, &mut b);
    let d = TestDriver::new(b.build().unwrap());
    let inp = d.input_topic("in", s(), i());
    inp.pipe("a".into(), 1, 3);
    inp.pipe("a".into(), 1, 9);
    inp.pipe("a".into(), 1, 12); // stream time 12: window [0,10) still open until 15
    inp.pipe("a".into(), 1, 5); // out of order but within grace
    inp.pipe("a".into(), 1, 15); // stream time 15: [0,10) closes (15 >= 10 + 5)
    inp.pipe("a".into(), 1, 8); // late
    assert_eq!(
        read(&d),
        vec![
            ("a".into(), 0, 10, Some(1)),
            ("a".into(), 0, 10, Some(2)),
            ("a".into(), 10, 20, Some(1)),
            ("a".into(), 0, 10, Some(3)),
            ("a".into(), 10, 20, Some(2)),
        ]
    );
    // A named store names its node too.
    assert_eq!(d.late_count("counts"), 1);
    let late = late.lock().unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].0, 8);
    assert!(late[0].1.contains("window [0, 10) closed at stream time 15"), "{}", late[0].1);
}

#[test]
fn emit_on_window_close_sends_final_results_once_and_frees_the_store() {
    let mut b = StreamsBuilder::new();
    windowed_counts(TimeWindows::of(ms(10)).grace(ms(5)), EmitStrategy::OnWindowClose, &mut b);
    let d = TestDriver::new(b.build().unwrap());
    let inp = d.input_topic("in", s(), i());
    inp.pipe("a".into(), 1, 1);
    inp.pipe("b".into(), 1, 2);
    inp.pipe("a".into(), 1, 11);
    inp.pipe("a".into(), 1, 14); // stream time 14 < 15: nothing closed yet
    assert!(read(&d).is_empty());
    inp.pipe("c".into(), 1, 15); // exactly at the edge: [0,10) closes
    assert_eq!(read(&d), vec![("a".into(), 0, 10, Some(1)), ("b".into(), 0, 10, Some(1))]);
    inp.pipe("c".into(), 1, 24); // [10,20) closes at 25, not yet
    assert!(read(&d).is_empty());
    inp.pipe("c".into(), 1, 25);
    assert_eq!(read(&d), vec![("a".into(), 10, 20, Some(2)), ("c".into(), 10, 20, Some(1))]);
    // Only the open window [20,30) of c is left.
    assert_eq!(d.window_all::<String, u64>("counts"), vec![("c".into(), 20, 2)]);
}

#[test]
fn hopping_windows_count_a_record_in_each_window_that_contains_it() {
    let mut b = StreamsBuilder::new();
    windowed_counts(TimeWindows::of(ms(10)).advance_by(ms(5)), EmitStrategy::OnWindowUpdate, &mut b);
    let d = TestDriver::new(b.build().unwrap());
    d.input_topic("in", s(), i()).pipe("a".into(), 1, 7);
    assert_eq!(read(&d), vec![("a".into(), 0, 10, Some(1)), ("a".into(), 5, 15, Some(1))]);
}

#[test]
fn closed_windows_leave_the_store_so_state_stays_bounded() {
    let mut b = StreamsBuilder::new();
    windowed_counts(TimeWindows::of(Duration::from_secs(60)), EmitStrategy::OnWindowUpdate, &mut b);
    let d = TestDriver::new(b.build().unwrap());
    let inp = d.input_topic("in", s(), i());
    let mut max_entries = 0;
    for minute in 0..200i64 {
        for user in 0..5 {
            inp.pipe(format!("u{user}"), 1, minute * 60_000 + user);
        }
        max_entries = max_entries.max(d.store_entries("counts"));
    }
    // 5 keys, one-minute windows, retention one minute, segments of one minute: never more than a few
    // segments of 5 windows each, however long the stream.
    assert!(max_entries <= 15, "store grew to {max_entries}");
}

fn session_counts(emit: EmitStrategy) -> TestDriver {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .windowed_by(SessionWindows::with_inactivity_gap(ms(10)).grace(ms(2)))
        .emit(emit)
        .count(Materialized::as_("sessions"))
        .to_stream()
        .to("out", Produced::with(json::<Windowed<String>>(), Serdes::optional(json::<u64>())));
    TestDriver::new(b.build().unwrap())
}

#[test]
fn a_record_bridging_two_sessions_merges_them_and_tombstones_the_old_ones() {
    let d = session_counts(EmitStrategy::OnWindowUpdate);
    let inp = d.input_topic("in", s(), i());
    inp.pipe("u".into(), 1, 0);
    inp.pipe("u".into(), 1, 18); // gap 18 > 10: second session
    inp.pipe("u".into(), 1, 9); // within 10 of both: merges [0,0] and [18,18] into [0,18]
    assert_eq!(
        read(&d),
        vec![
            ("u".into(), 0, 0, Some(1)),
            ("u".into(), 18, 18, Some(1)),
            ("u".into(), 0, 0, None),
            ("u".into(), 18, 18, None),
            ("u".into(), 0, 18, Some(3)),
        ]
    );
    let sessions = d.session_all::<String, u64>("sessions");
    assert_eq!(sessions, vec![("u".into(), Window { start: 0, end: 18 }, 3)]);
}

#[test]
fn sessions_close_after_gap_plus_grace_and_a_returning_key_starts_fresh() {
    let d = session_counts(EmitStrategy::OnWindowClose);
    let inp = d.input_topic("in", s(), i());
    inp.pipe("u".into(), 1, 100);
    inp.pipe("u".into(), 1, 105);
    inp.pipe("v".into(), 1, 117); // 117 = 105 + 10 + 2: not past yet
    assert!(read(&d).is_empty());
    inp.pipe("v".into(), 1, 118); // past end + gap + grace
    assert_eq!(read(&d), vec![("u".into(), 100, 105, Some(2))]);
    inp.pipe("u".into(), 1, 119); // a new session for u
    inp.pipe("v".into(), 1, 200);
    assert_eq!(read(&d), vec![("v".into(), 117, 118, Some(2)), ("u".into(), 119, 119, Some(1))]);
}

#[test]
fn late_session_records_are_counted() {
    let d = session_counts(EmitStrategy::OnWindowUpdate);
    let inp = d.input_topic("in", s(), i());
    inp.pipe("u".into(), 1, 100);
    inp.pipe("u".into(), 1, 97); // fine: within grace
    inp.pipe("u".into(), 1, 50); // a new session ending at 50 < 100 - 2: late
    assert_eq!(d.late_count("sessions"), 1);
    assert_eq!(d.session_all::<String, u64>("sessions"), vec![("u".into(), Window { start: 97, end: 100 }, 2)]);
}

fn sliding_sums(emit: EmitStrategy, grace: u64) -> TestDriver {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .windowed_by(SlidingWindows::with_time_difference_and_grace(ms(10), ms(grace)))
        .emit(emit)
        .reduce(|a, v| a + v, Materialized::as_("sums"))
        .to_stream()
        .to("out", Produced::with(json::<Windowed<String>>(), Serdes::optional(json::<i64>())));
    TestDriver::new(b.build().unwrap())
}

fn read_sums(d: &TestDriver) -> Vec<(i64, i64, i64)> {
    d.output_topic("out", json::<Windowed<String>>(), Serdes::optional(json::<i64>()))
        .read_key_values()
        .into_iter()
        .map(|(k, v)| (k.window.start, k.window.end, v.unwrap()))
        .collect()
}

#[test]
fn sliding_windows_follow_kafka_streams_semantics() {
    let d = sliding_sums(EmitStrategy::OnWindowUpdate, 0);
    let inp = d.input_topic("in", s(), i());
    inp.pipe("k".into(), 1, 10); // left window [0,10] = 1
    inp.pipe("k".into(), 2, 15); // [5,15] = 1+2; right window of 10: [11,21] = 2
    inp.pipe("k".into(), 4, 30); // [20,30] = 4 (15 is outside); right window of 15: [16,26] empty: not created
                                 // The previous record's right window is created before the new record's left window.
    assert_eq!(read_sums(&d), vec![(0, 10, 1), (11, 21, 2), (5, 15, 3), (20, 30, 4)]);
}

#[test]
fn sliding_windows_out_of_order_record_updates_every_window_containing_it() {
    let d = sliding_sums(EmitStrategy::OnWindowClose, 5);
    let inp = d.input_topic("in", s(), i());
    inp.pipe("k".into(), 1, 10);
    inp.pipe("k".into(), 2, 15);
    inp.pipe("k".into(), 10, 12); // stream time 15, grace 5: every window ending at or after 10 is open
    inp.pipe("k".into(), 100, 100); // closes everything before 90
    let mut got = read_sums(&d);
    got.sort();
    // [0,10]=1, [2,12]=1+10, [5,15]=1+10+2, [11,21]=10+2, [13,23]=2
    assert_eq!(got, vec![(0, 10, 1), (2, 12, 11), (5, 15, 13), (11, 21, 12), (13, 23, 2)]);
}

#[test]
fn aggregations_over_a_repartitioned_stream_agree_across_partition_counts() {
    fn run(partitions: u32) -> Vec<(String, u64)> {
        let mut b = StreamsBuilder::new();
        b.stream("in", Consumed::with(s(), i()))
            .select_key(|_, v| format!("g{}", v % 7))
            .group_by_key(Grouped::as_("by-group"))
            .windowed_by(TimeWindows::of(ms(100)))
            .emit(EmitStrategy::OnWindowClose)
            .count(Materialized::as_("c"))
            .to_stream()
            .map(|k, v| (format!("{}@{}", k.key, k.window.start), v.unwrap()))
            .to("out", Produced::with(s(), json::<u64>()));
        let d = TestDriver::builder(b.build().unwrap()).partitions(partitions).build().unwrap();
        let inp = d.input_topic("in", s(), i());
        for n in 0..500 {
            inp.pipe(format!("k{}", n % 13), n, n * 3);
        }
        inp.pipe("end".into(), 0, 10_000);
        // Every partition of the repartition topic must see stream time pass, so send one end record per
        // group key (the partitions of "in" are independent tasks with their own stream time).
        for g in 0..7 {
            inp.pipe(format!("end{g}"), g, 10_000);
        }
        let mut out = d.output_topic("out", s(), json::<u64>()).read_key_values();
        out.sort();
        out
    }
    let one = run(1);
    assert!(!one.is_empty());
    assert_eq!(one, run(3));
    assert_eq!(one, run(5));
}

#[test]
fn late_records_can_be_routed_to_a_topic_as_json() {
    let mut b = StreamsBuilder::new();
    b.late_records(LateRecords::Topic("late".into()));
    windowed_counts(TimeWindows::of(ms(10)), EmitStrategy::OnWindowUpdate, &mut b);
    let d = TestDriver::new(b.build().unwrap());
    let inp = d.input_topic("in", s(), i());
    inp.pipe("a".into(), 7, 100);
    inp.pipe("b".into(), 8, 5);
    let late = d.output_topic("late", json::<String>(), json::<topology::LateRecord>()).read_records();
    assert_eq!(late.len(), 1);
    let r = &late[0];
    assert_eq!(r.key, "b");
    assert_eq!((r.value.node.as_str(), r.value.timestamp, r.value.stream_time), ("counts", 5, 100));
    assert_eq!((r.value.topic.as_str(), r.value.offset), ("in", 1));
    assert_eq!(r.value.value, serde_json::json!(8));
    assert_eq!(d.late_count("counts"), 1);
}

#[test]
fn with_idle_advance_a_quiet_task_closes_its_windows_by_the_wall_clock() {
    let build = |idle: Option<Duration>| {
        let mut b = StreamsBuilder::new();
        windowed_counts(TimeWindows::of(ms(60_000)), EmitStrategy::OnWindowClose, &mut b);
        let mut driver = TestDriver::builder(b.build().unwrap()).wall_clock(1_000_000);
        if let Some(idle) = idle {
            driver = driver.idle_advance(idle);
        }
        let d = driver.build().unwrap();
        d.input_topic("in", s(), i()).pipe("a".into(), 1, 10_000);
        d
    };
    let d = build(Some(ms(30_000)));
    d.advance_wall_clock(ms(29_999)).unwrap();
    assert_eq!(read(&d), vec![], "not idle for 30 s yet");
    d.advance_wall_clock(ms(1)).unwrap();
    // Idle: stream time = 10 s + 30 s of quiet = 40 s; the window [0, 60 s) is still open.
    assert_eq!(read(&d), vec![]);
    d.advance_wall_clock(ms(20_000)).unwrap();
    assert_eq!(read(&d), vec![("a".into(), 0, 60_000, Some(1))], "stream time 60 s closes it");
    // A record that is now behind stream time is late; a newer one moves stream time as usual.
    d.input_topic("in", s(), i()).pipe("a".into(), 1, 59_000);
    assert_eq!(d.metrics().late.values().sum::<u64>(), 1);

    let d = build(None);
    d.advance_wall_clock(ms(600_000)).unwrap();
    assert_eq!(read(&d), vec![], "without idle advance only records move stream time");
}

/// End of input closes chained windowed stages in order: the first stage's final results reach the
/// second stage while its windows are still open (they were late there before, and lost).
#[test]
fn a_final_flush_closes_chained_window_stages_in_order() {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::as_("by-key"))
        .windowed_by(TimeWindows::of(ms(10)).grace(ms(0)))
        .emit(EmitStrategy::OnWindowClose)
        .count(Materialized::as_("per-key"))
        .to_stream()
        .map(|k: Windowed<String>, n: Option<u64>| (k.window.start, n.unwrap_or(0) as i64))
        .group_by_key(Grouped::as_("by-window"))
        .windowed_by(TimeWindows::of(ms(10)).grace(ms(0)))
        .emit(EmitStrategy::OnWindowClose)
        .reduce(|a, b| a.max(*b), Materialized::as_("busiest"))
        .to_stream()
        .map(|k: Windowed<i64>, v: Option<i64>| (k.key, v.unwrap_or(0)))
        .to("out", Produced::with(json::<i64>(), i()));
    let d = TestDriver::new(b.build().unwrap());
    let inp = d.input_topic("in", s(), i());
    for (key, t) in [("a", 1), ("a", 2), ("b", 3), ("a", 11), ("b", 12), ("b", 13), ("b", 14)] {
        inp.pipe(key.into(), 1, t);
    }
    let out = d.output_topic("out", json::<i64>(), i());
    assert!(out.is_empty(), "nothing is closed yet in the second stage");
    d.final_flush().unwrap();
    let mut got = out.read_key_values();
    got.sort();
    assert_eq!(got, vec![(0, 2), (10, 3)], "per 10 ms window, the busiest key's count");
    assert_eq!(d.metrics().late.values().sum::<u64>(), 0, "{:?}", d.metrics().late);
}
