use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use topology::{
    run_embedded, Consumed, EmbeddedConfig, EmitStrategy, Grouped, Input, InputFormat, Materialized, Named, Output,
    Produced, Serdes, StreamsBuilder, TimeWindows,
};

use crate::s;

fn write_lines(path: &Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn append_lines(path: &Path, lines: &[Value]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn env(key: &str, value: Value, ts: i64) -> Value {
    json!({"key": key, "value": value, "timestamp": ts})
}

/// A run of application `app` (state under `dir`) over envelope lines: `inputs` as (topic, file),
/// one output (topic, file).
fn envelope_config(app: &str, dir: &Path, inputs: &[(&str, &Path)], output: (&str, &Path)) -> EmbeddedConfig {
    let mut cfg = EmbeddedConfig::new(app, dir.join("state"));
    cfg.input_format = InputFormat::Envelope;
    cfg.inputs = inputs.iter().map(|(topic, file)| (topic.to_string(), Input::File(file.to_path_buf()))).collect();
    cfg.outputs = vec![(output.0.to_string(), Output::File(output.1.to_path_buf()))];
    cfg
}

#[test]
fn inputs_are_merged_by_event_time_so_a_replay_equals_live_processing() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    let users = b.table("users", Consumed::with(s(), s()), Materialized::as_("users"));
    b.stream("clicks", Consumed::with(s(), s()))
        .join(&users, |click, user| format!("{user}:{click}"), Named::as_("enrich"))
        .to("enriched", Produced::with(s(), s()));
    let topology = b.build().unwrap();
    let (users_file, clicks_file, out) = (dir.path().join("users"), dir.path().join("clicks"), dir.path().join("out"));
    // The whole users file comes first on disk, but "bob" only becomes the name at t=100.
    write_lines(&users_file, &[env("1", json!("ann"), 0), env("1", json!("bob"), 100)]);
    write_lines(&clicks_file, &[env("1", json!("/a"), 50), env("1", json!("/b"), 150)]);
    let cfg =
        envelope_config("app", dir.path(), &[("users", &users_file), ("clicks", &clicks_file)], ("enriched", &out));
    let summary = run_embedded(&topology, &cfg).unwrap();
    let values: Vec<Value> = read_lines(&out).into_iter().map(|l| l["value"].clone()).collect();
    assert_eq!(values, vec![json!("ann:/a"), json!("bob:/b")]);
    assert_eq!(summary.records_out["enriched"], 2);
}

#[test]
fn the_final_flush_emits_windows_still_open_at_the_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events");
    let out = dir.path().join("counts");
    let mut b = StreamsBuilder::new();
    b.stream("events", Consumed::with(s(), s()))
        .group_by_key(Grouped::new())
        .windowed_by(TimeWindows::of(Duration::from_secs(60)))
        .emit(EmitStrategy::OnWindowClose)
        .count(Materialized::as_("counts"))
        .to_stream()
        .map(|k, v| (format!("{}@{}", k.key, k.window.start), format!("{}", v.unwrap_or(0))))
        .to("counts", Produced::with(s(), s()));
    let topology = b.build().unwrap();
    write_lines(&input, &[env("u", json!("a"), 1_000), env("u", json!("b"), 61_000), env("v", json!("c"), 62_000)]);
    let cfg = envelope_config("app", dir.path(), &[("events", &input)], ("counts", &out));
    run_embedded(&topology, &cfg).unwrap();
    let got: Vec<(Value, Value)> =
        read_lines(&out).into_iter().map(|l| (l["key"].clone(), l["value"].clone())).collect();
    // [0,60s) of u closed when stream time reached 61s; [60s,120s) of u and v only by the final flush.
    assert_eq!(got, vec![(json!("u@0"), json!(1)), (json!("u@60000"), json!(1)), (json!("v@60000"), json!(1))]);
}

#[test]
fn a_second_run_continues_from_the_committed_positions_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), s()))
        .group_by_key(Grouped::new())
        .count(Materialized::as_("counts"))
        .to_stream()
        .to("counts", Produced::with(s(), Serdes::optional(Serdes::json::<u64>())));
    let topology = b.build().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    write_lines(&input, &[env("a", json!("x"), 1), env("a", json!("y"), 2)]);
    let cfg = envelope_config("app", dir.path(), &[("in", &input)], ("counts", &out));
    let first = run_embedded(&topology, &cfg).unwrap();
    assert_eq!(first.records_in["in"], 2);
    append_lines(&input, &[env("a", json!("z"), 3), env("b", json!("w"), 4)]);
    let second = run_embedded(&topology, &cfg).unwrap();
    assert_eq!(second.records_in["in"], 2, "only the new lines are read");
    let last: Vec<(Value, Value)> =
        read_lines(&out).into_iter().map(|l| (l["key"].clone(), l["value"].clone())).collect();
    assert_eq!(last.last().unwrap(), &(json!("b"), json!(1)));
    assert!(last.contains(&(json!("a"), json!(3))), "the count went on from the saved state: {last:?}");
}

#[test]
fn bad_lines_go_to_the_dead_letter_file_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    // Wire-format lines carry no key: a keyless topic has `()` keys.
    b.stream("in", Consumed::with(Serdes::unit(), Serdes::json::<Value>()))
        .to("out", Produced::with(Serdes::unit(), Serdes::json::<Value>()));
    let topology = b.build().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, "{\"a\": 1}\nnot json at all\n{\"b\": 2}\n").unwrap();
    let mut cfg = EmbeddedConfig::new("app", dir.path().join("state"));
    cfg.inputs = vec![("in".into(), Input::File(input))];
    let summary = run_embedded(&topology, &cfg).unwrap();
    assert_eq!(summary.records_out["out"], 2);
    assert_eq!(summary.dead_lettered, 1);
    let dlq = read_lines(&dir.path().join("state/app/topics/app-dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["value"], json!("not json at all"));
    assert!(dlq[0]["headers"]["dlq.error"].as_str().unwrap().contains("invalid JSON"), "{}", dlq[0]);
    // Outputs without a file are kept under the state directory too.
    assert_eq!(read_lines(&dir.path().join("state/app/topics/out.jsonl")).len(), 2);
}

#[test]
fn lines_that_are_not_utf8_are_dead_lettered_in_either_input_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::unit(), Serdes::json::<Value>()))
        .to("out", Produced::with(Serdes::unit(), Serdes::json::<Value>()));
    let topology = b.build().unwrap();
    for format in [InputFormat::Wire, InputFormat::Envelope] {
        let state = dir.path().join(format!("state-{format:?}"));
        let input = dir.path().join(format!("in-{format:?}"));
        let good = |n: i64| match format {
            InputFormat::Wire => format!("{{\"n\": {n}}}\r\n"),
            InputFormat::Envelope => format!("{}\n", json!({"key": null, "value": {"n": n}, "timestamp": n})),
        };
        let mut bytes = good(1).into_bytes();
        bytes.extend_from_slice(b"{\"n\": \"\xff\xfe\"}\n"); // Latin-1 bytes in a string
        bytes.extend_from_slice(good(2).as_bytes());
        std::fs::write(&input, bytes).unwrap();
        let mut cfg = EmbeddedConfig::new("app", &state);
        cfg.input_format = format;
        cfg.inputs = vec![("in".into(), Input::File(input))];
        let summary = run_embedded(&topology, &cfg).unwrap();
        assert_eq!((summary.records_out["out"], summary.dead_lettered), (2, 1), "{format:?}");
        let dlq = read_lines(&state.join("app/topics/app-dlq.jsonl"));
        assert_eq!(dlq.len(), 1, "{format:?}");
        assert_eq!(dlq[0]["value"], json!("hex:7b226e223a2022fffe227d"), "{format:?}: the line, byte for byte");
        let values: Vec<Value> =
            read_lines(&state.join("app/topics/out.jsonl")).into_iter().map(|l| l["value"].clone()).collect();
        assert_eq!(values, vec![json!({"n": 1}), json!({"n": 2})], "{format:?}: CRLF endings are trimmed too");
    }
}

#[test]
fn a_missing_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), s())).to("out", Produced::with(s(), s()));
    let topology = b.build().unwrap();
    let mut cfg = EmbeddedConfig::new("app", dir.path().join("state"));
    assert_eq!(run_embedded(&topology, &cfg).unwrap_err().to_string(), "no input given for topic `in`");
    cfg.inputs = vec![("in".into(), Input::File(dir.path().join("nope")))];
    let err = run_embedded(&topology, &cfg).unwrap_err().to_string();
    assert!(err.starts_with("cannot read input"), "{err}");
}

/// Buffers records and forwards them on a stream-time punctuation; the final flush (stream time → the
/// end of time) fires it once more, so nothing stays buffered.
#[derive(Default)]
struct Buffer(Vec<topology::Record<String, String>>);

impl topology::Processor<String, String> for Buffer {
    type KeyOut = String;
    type ValueOut = String;
    fn init(&mut self, ctx: &mut topology::ProcessorInit<'_>) -> Result<(), topology::TopologyError> {
        ctx.schedule(Duration::from_secs(1), topology::PunctuationType::StreamTime);
        Ok(())
    }
    fn process(&mut self, _: &mut topology::ProcessorContext<'_, String, String>, r: topology::Record<String, String>) {
        self.0.push(r);
    }
    fn punctuate(&mut self, ctx: &mut topology::ProcessorContext<'_, String, String>, _: topology::Punctuation) {
        for r in self.0.drain(..) {
            ctx.forward(r);
        }
    }
}

#[test]
fn stream_time_punctuations_fire_at_the_final_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), s()))
        .process(Buffer::default, Named::as_("buffer"), &[])
        .to("out", Produced::with(s(), s()));
    write_lines(&input, &[env("a", json!("1"), 100), env("b", json!("2"), 2_500), env("c", json!("3"), 2_600)]);
    let cfg = envelope_config("app", dir.path(), &[("in", &input)], ("out", &out));
    run_embedded(&b.build().unwrap(), &cfg).unwrap();
    let keys: Vec<Value> = read_lines(&out).into_iter().map(|l| l["key"].clone()).collect();
    assert_eq!(keys, vec![json!("a"), json!("b"), json!("c")]);
}

/// A value that refuses to be encoded: it can only cross a repartition as a typed record.
#[derive(Clone, Debug, serde::Deserialize)]
struct Unencodable(#[allow(dead_code)] String);

impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value is never encoded"))
    }
}

#[test]
fn repartitions_hand_typed_records_to_the_reading_task_without_encoding_values() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), s()))
        .map(|_, v: String| (v.clone(), Unencodable(v)))
        .group_by_key(Grouped::as_("by-value"))
        .count(Materialized::as_("counts"))
        .to_stream()
        .to("counts", Produced::with(s(), Serdes::optional(Serdes::json::<u64>())));
    let topology = b.build().unwrap();
    let words = ["x", "y", "x", "z", "x", "y"];
    let lines: Vec<Value> = words.iter().enumerate().map(|(i, w)| env("k", json!(w), i as i64)).collect();
    write_lines(&input, &lines);
    let mut cfg = envelope_config("app", dir.path(), &[("in", &input)], ("counts", &out));
    cfg.partitions = 3; // keys are placed on the repartition topic's partitions as before
    let summary = run_embedded(&topology, &cfg).unwrap();
    assert_eq!(summary.dead_lettered, 0);
    let mut last = std::collections::BTreeMap::new();
    for l in read_lines(&out) {
        last.insert(l["key"].as_str().unwrap().to_string(), l["value"].as_u64().unwrap());
    }
    let want: std::collections::BTreeMap<String, u64> =
        [("x".to_string(), 3), ("y".to_string(), 2), ("z".to_string(), 1)].into();
    assert_eq!(last, want);
    // Each key was counted by the task of the partition its bytes hash to.
    let tasks: Vec<String> = std::fs::read_dir(dir.path().join("state").join("app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("1_"))
        .collect();
    assert_eq!(tasks.len(), 3, "{tasks:?}");
}

#[test]
fn a_record_sent_to_a_task_reading_only_its_repartition_topic_is_processed_in_the_same_step() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in"), dir.path().join("out"));
    let mut b = StreamsBuilder::new();
    let words = b.stream("in", Consumed::with(s(), s()));
    words.clone().map_values(|w: String| format!("read {w}")).to("trace", Produced::with(s(), s()));
    words
        .map(|_, w: String| (w.clone(), w))
        .group_by_key(Grouped::as_("by-word"))
        .count(Materialized::as_("counts"))
        .to_stream()
        .map_values(|n: Option<u64>| format!("count {}", n.unwrap_or(0)))
        .to("trace", Produced::with(s(), s()));
    // Out of order: the second record is older than the first one's repartitioned copy.
    write_lines(&input, &[env("k", json!("x"), 10), env("k", json!("y"), 5), env("k", json!("x"), 20)]);
    let mut cfg = envelope_config("app", dir.path(), &[("in", &input)], ("trace", &out));
    cfg.cache_max_bytes = 0; // every count is forwarded as it changes
    run_embedded(&b.build().unwrap(), &cfg).unwrap();
    let trace: Vec<String> = read_lines(&out)
        .into_iter()
        .map(|l| format!("{} {}", l["key"].as_str().unwrap(), l["value"].as_str().unwrap()))
        .collect();
    // The counting task reads only the repartition topic: each record is counted right after it is
    // read, not when its timestamp comes up among the heads of every task.
    assert_eq!(trace, ["k read x", "x count 1", "k read y", "y count 1", "k read x", "x count 2"]);
}

#[test]
fn a_global_table_is_loaded_before_the_one_stream_input_is_processed_as_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    // One row (the unit key), replaced by the second line: only a completely loaded table says "bob".
    let name = b.global_table("name", Consumed::with(Serdes::unit(), s()), Materialized::as_("name"));
    b.stream("clicks", Consumed::with(Serdes::unit(), s()))
        .join_global(&name, |_, _| (), |page, name| format!("{name}:{page}"), Named::as_("g"))
        .to("enriched", Produced::with(Serdes::unit(), s()));
    let (name_file, clicks_file, out) = (dir.path().join("name"), dir.path().join("clicks"), dir.path().join("out"));
    std::fs::write(&name_file, "ann\nbob\n").unwrap();
    std::fs::write(&clicks_file, "/a\n/b\n").unwrap();
    // The stream input is listed first, and its lines are values processed as they are read (the
    // run's only stream): still after the whole table.
    let mut cfg = EmbeddedConfig::new("app", dir.path().join("state"));
    cfg.inputs = vec![("clicks".into(), Input::File(clicks_file)), ("name".into(), Input::File(name_file))];
    cfg.outputs = vec![("enriched".into(), Output::File(out.clone()))];
    run_embedded(&b.build().unwrap(), &cfg).unwrap();
    let values: Vec<Value> = read_lines(&out).into_iter().map(|l| l["value"].clone()).collect();
    assert_eq!(values, [json!("bob:/a"), json!("bob:/b")]);
}

#[test]
fn a_task_reading_a_repartition_topic_and_a_table_takes_both_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    let users = b.table("users", Consumed::with(s(), s()), Materialized::as_("users"));
    // Clicks keyed by page, re-keyed by user: the joining task reads the repartition topic and
    // `users`, so records sent to it wait for their turn by time instead of being taken at once
    // (taken at once, the task would also take "bob" at 100, already read, before the click at 70).
    b.stream("clicks", Consumed::with(s(), s()))
        .map(|page: String, user: String| (user, page))
        .join(&users, |page, user| format!("{user}:{page}"), Named::as_("enrich"))
        .to("enriched", Produced::with(s(), s()));
    let topology = b.build().unwrap();
    assert!(topology.describe().to_string().contains("repartition"), "{}", topology.describe());
    let (users_file, clicks_file, out) = (dir.path().join("users"), dir.path().join("clicks"), dir.path().join("out"));
    write_lines(
        &users_file,
        &[env("1", json!("ann"), 0), env("2", json!("cy"), 0), env("1", json!("bob"), 100), env("2", json!("di"), 100)],
    );
    let clicks = [("/a", "1", 50), ("/b", "2", 60), ("/c", "1", 70), ("/d", "2", 160)];
    write_lines(&clicks_file, &clicks.map(|(page, user, ts)| env(page, json!(user), ts)));
    let mut cfg =
        envelope_config("app", dir.path(), &[("users", &users_file), ("clicks", &clicks_file)], ("enriched", &out));
    cfg.partitions = 2;
    run_embedded(&topology, &cfg).unwrap();
    let mut values: Vec<String> =
        read_lines(&out).into_iter().map(|l| l["value"].as_str().unwrap().to_string()).collect();
    values.sort();
    assert_eq!(values, ["ann:/a", "ann:/c", "cy:/b", "di:/d"]);
}

/// `(word, n)` records with timestamps 1, 2, …: the first `n` of one fixed sequence.
fn typed_words(n: usize) -> topology::RecordsInput {
    topology::RecordsInput::new(s(), move || {
        let words = ["x", "y", "x", "z", "x", "y", "z", "z"];
        words.into_iter().take(n).enumerate().map(|(i, w)| topology::Record::new(w.to_string(), i as u64, i as i64 + 1))
    })
}

/// Counts per key, each key's last count.
fn count_words() -> topology::Topology {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), Serdes::json::<u64>()))
        .group_by_key(Grouped::new())
        .count(Materialized::as_("counts"))
        .to_stream()
        .to("counts", Produced::with(s(), Serdes::optional(Serdes::json::<u64>())));
    b.build().unwrap()
}

fn last_counts(path: &Path) -> std::collections::BTreeMap<String, u64> {
    read_lines(path)
        .into_iter()
        .map(|l| (l["key"].as_str().unwrap().to_string(), l["value"].as_u64().unwrap()))
        .collect()
}

#[test]
fn typed_records_give_what_their_lines_give_and_a_second_run_skips_the_committed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let topology = count_words();
    // The same six records as envelope lines, on three partitions: the reference.
    let lines: Vec<Value> =
        ["x", "y", "x", "z", "x", "y"].iter().enumerate().map(|(i, w)| env(w, json!(i), i as i64 + 1)).collect();
    let input = dir.path().join("in");
    write_lines(&input, &lines);
    let from_lines = dir.path().join("from-lines");
    let mut cfg = envelope_config("lines", dir.path(), &[("in", &input)], ("counts", &from_lines));
    cfg.partitions = 3;
    run_embedded(&topology, &cfg).unwrap();

    let from_records = dir.path().join("from-records");
    let mut cfg = EmbeddedConfig::new("records", dir.path().join("state"));
    cfg.partitions = 3;
    cfg.final_flush = false;
    cfg.inputs = vec![("in".into(), Input::Records(typed_words(6)))];
    cfg.outputs = vec![("counts".into(), Output::File(from_records.clone()))];
    let first = run_embedded(&topology, &cfg).unwrap();
    assert_eq!((first.records_in["in"], first.dead_lettered), (6, 0));
    assert_eq!(last_counts(&from_records), last_counts(&from_lines));
    // Keys were placed by their bytes, as lines are: the same tasks hold the same keys.
    let tasks = |app: &str| -> Vec<String> {
        let mut t: Vec<String> = std::fs::read_dir(dir.path().join("state").join(app))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("0_"))
            .collect();
        t.sort();
        t
    };
    assert_eq!(tasks("records"), tasks("lines"));

    // The generator now makes two more records: the next run skips the six it committed.
    cfg.inputs = vec![("in".into(), Input::Records(typed_words(8)))];
    let second = run_embedded(&topology, &cfg).unwrap();
    assert_eq!(second.records_in["in"], 2, "only the new records are read");
    let counts = last_counts(&from_records);
    assert_eq!((counts["z"], counts["x"]), (3, 3), "counted on from the saved state: {counts:?}");
}

#[test]
fn a_typed_record_whose_time_cannot_be_extracted_is_dead_lettered_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut b = StreamsBuilder::new();
    b.stream(
        "in",
        Consumed::with(s(), Serdes::json::<u64>()).with_timestamp_extractor(|_, v: &u64, _| {
            if *v == 2 {
                Err("no time in 2".into())
            } else {
                Ok(*v as i64)
            }
        }),
    )
    .to("out", Produced::with(s(), Serdes::json::<u64>()));
    let topology = b.build().unwrap();
    let mut cfg = EmbeddedConfig::new("app", dir.path().join("state"));
    let input = topology::RecordsInput::new(s(), || (1..=3u64).map(|v| topology::Record::new(format!("k{v}"), v, 0)));
    cfg.inputs = vec![("in".into(), Input::Records(input))];
    cfg.outputs = vec![("out".into(), Output::File(out.clone()))];
    let summary = run_embedded(&topology, &cfg).unwrap();
    assert_eq!((summary.records_out["out"], summary.dead_lettered), (2, 1));
    let times: Vec<Value> = read_lines(&out).into_iter().map(|l| l["timestamp"].clone()).collect();
    assert_eq!(times, vec![json!(1), json!(3)], "the extractor's times");
    let dlq = read_lines(&dir.path().join("state/app/topics/app-dlq.jsonl"));
    assert_eq!((dlq.len(), &dlq[0]["key"], &dlq[0]["value"]), (1, &json!("k2"), &json!(2)));
    assert!(dlq[0]["headers"]["dlq.error"].as_str().unwrap().contains("no time in 2"), "{}", dlq[0]);
}

#[test]
fn typed_records_of_another_type_than_the_source_reads_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new("app", dir.path().join("state"));
    let input = topology::RecordsInput::new(s(), || std::iter::once(topology::Record::new("k".to_string(), "v", 0)));
    cfg.inputs = vec![("in".into(), Input::Records(input))];
    let err = run_embedded(&count_words(), &cfg).unwrap_err().to_string();
    assert!(err.contains("typed input of topic `in`") && err.contains("&str") && err.contains("u64"), "{err}");
}

#[test]
fn an_output_handed_to_a_function_gets_each_record_as_its_topics_bytes_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let mut cfg = EmbeddedConfig::new("app", dir.path().join("state"));
    cfg.inputs = vec![("in".into(), Input::Records(typed_words(6)))];
    let output = topology::RecordsOutput::new(move |r| sink.lock().unwrap().push(r.clone()));
    cfg.outputs = vec![("counts".into(), Output::Records(output))];
    let summary = run_embedded(&count_words(), &cfg).unwrap();
    let got = got.lock().unwrap();
    let rows: Vec<(String, String, i64)> = got
        .iter()
        .map(|r| {
            let text = |b: &Option<Vec<u8>>| String::from_utf8(b.clone().unwrap()).unwrap();
            (text(&r.key), text(&r.value), r.timestamp)
        })
        .collect();
    // The table's cache sends each key's latest count when it flushes (at the end of the run here).
    let want = [("x", "3", 5), ("y", "2", 6), ("z", "1", 4)];
    let want: Vec<(String, String, i64)> = want.iter().map(|(k, v, t)| (k.to_string(), v.to_string(), *t)).collect();
    assert_eq!(rows, want);
    assert_eq!(summary.records_out["counts"], 3);
    assert!(!dir.path().join("state/app/topics/counts.jsonl").exists(), "nothing written to a file");
}

#[test]
fn a_typed_output_gets_each_record_as_its_sink_writes_it_without_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    // The value refuses to be encoded: only a typed output can take it.
    b.stream("in", Consumed::with(s(), Serdes::json::<u64>()))
        .map_values(|n: u64| Unencodable(format!("n={n}")))
        .to("out", Produced::with(s(), Serdes::json::<Unencodable>()));
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let output = topology::RecordsOutput::typed(move |r: topology::Record<String, Unencodable>| {
        sink.lock().unwrap().push((r.key, r.value.0, r.timestamp));
    });
    let mut cfg = EmbeddedConfig::new("app", dir.path().join("state"));
    cfg.inputs = vec![("in".into(), Input::Records(typed_words(3)))];
    cfg.outputs = vec![("out".into(), Output::Records(output))];
    let summary = run_embedded(&b.build().unwrap(), &cfg).unwrap();
    let want = [("x", "n=0", 1), ("y", "n=1", 2), ("x", "n=2", 3)].map(|(k, v, t)| (k.to_string(), v.to_string(), t));
    assert_eq!(*got.lock().unwrap(), want);
    assert_eq!((summary.records_out["out"], summary.dead_lettered), (3, 0));
}

#[test]
fn a_typed_output_of_another_type_than_its_sinks_write_or_of_no_sink_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = topology::RecordsOutput::typed(|_: topology::Record<String, String>| {});
    let mut cfg = EmbeddedConfig::new("app", dir.path().join("state"));
    cfg.inputs = vec![("in".into(), Input::Records(typed_words(3)))];
    cfg.outputs = vec![("counts".into(), Output::Records(wrong.clone()))];
    let err = run_embedded(&count_words(), &cfg).unwrap_err().to_string();
    let takes = "the typed output of topic `counts` takes `topology::record::Record<alloc::string::String, alloc::string::String>`";
    assert!(err.contains(takes) && err.contains("core::option::Option<u64>"), "{err}");
    cfg.outputs = vec![("nobody-writes-this".into(), Output::Records(wrong))];
    let err = run_embedded(&count_words(), &cfg).unwrap_err().to_string();
    assert!(err.contains("topic `nobody-writes-this` has a typed output, but no sink"), "{err}");
}
