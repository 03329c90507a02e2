use std::time::Duration;

use topology::{
    Consumed, KeyValueStoreHandle, Named, Processor, ProcessorContext, ProcessorInit, Produced, Punctuation,
    PunctuationType, Record, Stores, StreamsBuilder, TestDriver, TopologyError,
};

use crate::{i, json, s};

/// Sums values per key in a store; every 100 ms of stream time forwards all sums; every wall-clock
/// second forwards a heartbeat.
#[derive(Default)]
struct Summer {
    store: Option<KeyValueStoreHandle<String, i64>>,
}

impl Processor<String, i64> for Summer {
    type KeyOut = String;
    type ValueOut = i64;

    fn init(&mut self, ctx: &mut ProcessorInit<'_>) -> Result<(), TopologyError> {
        self.store = Some(ctx.key_value_store("sums")?);
        ctx.schedule(Duration::from_millis(100), PunctuationType::StreamTime);
        ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(&mut self, _ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, i64>) {
        let store = self.store.as_ref().unwrap();
        let sum = store.borrow().get(&r.key).unwrap_or(0) + r.value;
        store.borrow_mut().put(&r.key, sum);
    }

    fn punctuate(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, p: Punctuation) {
        match p.kind {
            PunctuationType::StreamTime => {
                let all = self.store.as_ref().unwrap().borrow().all();
                for (k, v) in all {
                    ctx.forward(Record::new(format!("{k}@{}", p.time), v, p.time));
                }
            }
            PunctuationType::WallClockTime => ctx.forward(Record::new("heartbeat".into(), p.time, ctx.stream_time())),
        }
    }
}

#[test]
fn processor_with_store_and_both_punctuation_clocks() {
    let mut b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value::<String, i64>("sums"));
    b.stream("in", Consumed::with(s(), i()))
        .process(Summer::default, Named::as_("summer"), &["sums"])
        .to("out", Produced::with(s(), i()));
    let d = TestDriver::new(b.build().unwrap());
    let inp = d.input_topic("in", s(), i());
    inp.pipe("a".into(), 1, 10); // first stream time: schedules the first tick at 100
    inp.pipe("a".into(), 2, 50);
    inp.pipe("b".into(), 5, 99);
    let out = d.output_topic("out", s(), i());
    assert!(out.is_empty());
    inp.pipe("a".into(), 4, 100); // tick 100
    assert_eq!(out.read_key_values(), vec![("a@100".into(), 7), ("b@100".into(), 5)]);
    inp.pipe("a".into(), 0, 350); // several intervals passed: fires once, for the latest tick
    assert_eq!(out.read_key_values(), vec![("a@300".into(), 7), ("b@300".into(), 5)]);
    d.advance_wall_clock(Duration::from_millis(999)).unwrap(); // the first wall-clock call arms the timer
    assert!(out.is_empty());
    d.advance_wall_clock(Duration::from_millis(1)).unwrap();
    d.advance_wall_clock(Duration::from_millis(1000)).unwrap();
    assert_eq!(out.read_key_values(), vec![("heartbeat".into(), 1000), ("heartbeat".into(), 2000)]);
    assert_eq!(d.kv_get::<String, i64>("sums", &"a".into()), Some(7));
}

struct Sneaky;
impl Processor<String, i64> for Sneaky {
    type KeyOut = String;
    type ValueOut = i64;
    fn init(&mut self, ctx: &mut ProcessorInit<'_>) -> Result<(), TopologyError> {
        ctx.key_value_store::<String, i64>("not-mine").map(|_| ())
    }
    fn process(&mut self, _: &mut ProcessorContext<'_, String, i64>, _: Record<String, i64>) {}
}

#[test]
fn a_processor_cannot_open_a_store_it_did_not_declare() {
    let mut b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value::<String, i64>("not-mine"));
    b.stream("in", Consumed::with(s(), i())).process(|| Sneaky, Named::as_("sneaky"), &[]);
    let err = TestDriver::builder(b.build().unwrap()).build().unwrap_err();
    assert_eq!(err.to_string(), "processor `sneaky` uses store `not-mine` which was not added with `add_state_store`");
}

#[test]
fn declaring_a_store_that_was_never_added_fails_the_build() {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i())).process(Summer::default, Named::as_("summer"), &["sums"]);
    assert!(matches!(b.build(), Err(TopologyError::UnknownStore { .. })));
}

#[test]
fn opening_a_store_with_the_wrong_types_is_an_error() {
    struct Wrong;
    impl Processor<String, i64> for Wrong {
        type KeyOut = String;
        type ValueOut = i64;
        fn init(&mut self, ctx: &mut ProcessorInit<'_>) -> Result<(), TopologyError> {
            ctx.key_value_store::<String, String>("sums").map(|_| ())
        }
        fn process(&mut self, _: &mut ProcessorContext<'_, String, i64>, _: Record<String, i64>) {}
    }
    let mut b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value::<String, i64>("sums"));
    b.stream("in", Consumed::with(s(), i())).process(|| Wrong, Named::as_("wrong"), &["sums"]);
    let err = TestDriver::builder(b.build().unwrap()).build().unwrap_err();
    assert!(err.to_string().contains("store `sums` was requested with types"), "{err}");
    let _ = json::<i64>();
}
