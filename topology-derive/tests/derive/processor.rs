use topology::{
    processor, topology, Application, Consumed, Named, ProcessorContext, Produced, Punctuation, Record, Serdes,
    StreamsBuilder, TestDriver,
};

const MINUTE_MS: i64 = 60_000;

/// Counts per key in a key-value store, remembers each minute's records in a window store (retention:
/// any `i64` expression), and every 100 ms of stream time forwards the totals.
#[processor(
    stores(totals: key_value<String, i64>, per_minute: window<String, i64>(retention_ms = 2 * MINUTE_MS)),
    punctuate(stream_time = 100, call = emit_totals)
)]
fn count_and_window(
    ctx: &mut ProcessorContext<'_, String, i64>,
    stores: &CountAndWindowStores,
    record: Record<String, i64>,
) {
    let total = stores.totals.borrow().get(&record.key).unwrap_or(0) + 1;
    stores.totals.borrow_mut().put(&record.key, total);
    let minute = record.timestamp - record.timestamp.rem_euclid(60_000);
    let n = stores.per_minute.borrow().fetch(&record.key, minute).unwrap_or(0) + 1;
    stores.per_minute.borrow_mut().put(&record.key, minute, n);
    let _ = ctx;
}

fn emit_totals(ctx: &mut ProcessorContext<'_, String, i64>, stores: &CountAndWindowStores, p: Punctuation) {
    for (k, v) in stores.totals.borrow().all() {
        ctx.forward(Record::new(k, v, p.time));
    }
}

#[topology(application_id = "counting")]
fn counting(builder: &mut StreamsBuilder) {
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .process_declared::<CountAndWindow>(Named::as_("count"))
        .to("totals", Produced::with(Serdes::string(), Serdes::i64()));
}

#[test]
fn a_declared_processor_gets_its_stores_and_punctuations() {
    assert_eq!(CountingApp::ID, "counting");
    let topology = CountingApp::topology().unwrap();
    let text = topology.describe().to_string();
    assert!(
        text.contains("Processor: count (stores: [count-and-window-totals, count-and-window-per-minute])"),
        "{text}"
    );
    let d = TestDriver::new(topology);
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    input.pipe("a".into(), 0, 10);
    input.pipe("b".into(), 0, 20);
    input.pipe("a".into(), 0, 99);
    let out = d.output_topic("totals", Serdes::string(), Serdes::i64());
    assert!(out.is_empty());
    input.pipe("a".into(), 0, 150); // crosses the 100 ms tick
    assert_eq!(out.read_key_values(), vec![("a".into(), 3), ("b".into(), 1)]);
    assert_eq!(
        d.window_all::<String, i64>("count-and-window-per-minute"),
        vec![("a".into(), 0, 3), ("b".into(), 0, 1)]
    );
}
