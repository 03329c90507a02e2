use serde::{Deserialize, Serialize};
use topology::{Consumed, DeserializationPolicy, Error, Headers, Produced, RawRecord, StreamsBuilder, TestDriver};

use crate::{json, s};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Click {
    user: String,
    ts: String,
}

fn parse_ts(ts: &str) -> Result<i64, String> {
    ts.parse::<i64>().map_err(|e| format!("bad ts `{ts}`: {e}"))
}

fn topology(policy: Option<DeserializationPolicy>) -> topology::Topology {
    let mut b = StreamsBuilder::new();
    if let Some(p) = policy {
        b.deserialization_policy(p);
    }
    b.stream(
        "clicks",
        Consumed::with(s(), json::<Click>()).with_timestamp_extractor(|_, c: &Click, _| parse_ts(&c.ts)),
    )
    .map_values(|c| c.user)
    .to("users", Produced::with(s(), s()));
    b.build().unwrap()
}

#[test]
fn undecodable_values_and_timestamps_go_to_the_dead_letter_topic_and_processing_continues() {
    let d = TestDriver::builder(topology(None)).application_id("app").build().unwrap();
    let clicks = d.input_topic("clicks", s(), json::<Click>());
    clicks.pipe_raw(Some(b"k1"), Some(b"{not json"), 5);
    clicks.pipe_raw(Some(b"k2"), Some(br#"{"user":"u","ts":"yesterday"}"#), 6);
    clicks.pipe_raw(Some(&[0xff, 0xfe]), Some(br#"{"user":"u","ts":"1"}"#), 7); // key is not UTF-8
    clicks.pipe("k3".into(), Click { user: "ok".into(), ts: "42".into() }, 8);
    assert_eq!(
        d.output_topic("users", s(), s())
            .read_records()
            .iter()
            .map(|r| (r.value.clone(), r.timestamp))
            .collect::<Vec<_>>(),
        vec![("ok".into(), 42)]
    );
    let dead = d.dead_letters("app-dlq");
    assert_eq!(dead.len(), 3);
    assert_eq!(d.metrics().dead_lettered, 3);
    assert_eq!(dead[0].value.as_deref(), Some(&b"{not json"[..]), "raw bytes kept unchanged");
    assert!(dead[0].error.starts_with("value: invalid JSON"), "{}", dead[0].error);
    assert_eq!((dead[0].topic.as_str(), dead[0].partition, dead[0].offset), ("clicks", 0, 0));
    assert!(dead[1].error.contains("timestamp: bad ts `yesterday`"), "{}", dead[1].error);
    assert_eq!(dead[1].offset, 1);
    assert!(dead[2].error.starts_with("key: invalid UTF-8"), "{}", dead[2].error);
}

#[test]
fn dead_letter_topic_can_be_named() {
    let policy = DeserializationPolicy::DeadLetter { topic: Some("bad-clicks".into()) };
    let d = TestDriver::new(topology(Some(policy)));
    d.input_topic("clicks", s(), json::<Click>()).pipe_raw(Some(b"k"), None, 1); // a null value is no Click
    assert_eq!(d.dead_letters("bad-clicks").len(), 1);
}

#[test]
fn the_fail_policy_stops_with_an_error_naming_the_record() {
    let d = TestDriver::new(topology(Some(DeserializationPolicy::Fail)));
    let raw = RawRecord { key: None, value: Some(b"[]".to_vec()), timestamp: 0, headers: Headers::default() };
    let err = d.input_topic("clicks", s(), json::<Click>()).try_pipe_raw(raw).unwrap_err();
    assert!(matches!(err, Error::Deserialization { ref topic, offset: 0, .. } if topic == "clicks"));
    assert_eq!(err.to_string(), "cannot deserialize record from clicks[0]@0");
}

#[test]
fn records_the_app_cannot_encode_go_to_the_dead_letter_topic_and_processing_continues() {
    use std::collections::BTreeMap;
    // A map with tuple keys is a fine Rust value but not JSON (object keys must be strings).
    let mut b = StreamsBuilder::new();
    b.stream("pairs", Consumed::with(s(), json::<Vec<(u32, u32)>>()))
        .map_values(|pairs: Vec<(u32, u32)>| {
            pairs.into_iter().map(|p| (p, 1u32)).collect::<BTreeMap<(u32, u32), u32>>()
        })
        .to("maps", Produced::with(s(), json::<BTreeMap<(u32, u32), u32>>()));
    let d = TestDriver::builder(b.build().unwrap()).application_id("app").build().unwrap();
    let pairs = d.input_topic("pairs", s(), json::<Vec<(u32, u32)>>());
    pairs.pipe("empty".into(), vec![], 1);
    pairs.pipe("one".into(), vec![(1, 2)], 2);
    pairs.pipe("empty-again".into(), vec![], 3);
    let out: Vec<String> = d.output_topic("maps", s(), s()).read_records().into_iter().map(|r| r.key).collect();
    assert_eq!(out, vec!["empty".to_string(), "empty-again".to_string()], "the run went on");
    assert_eq!(d.metrics().dead_lettered, 1);
    let dlq = d.dead_letters("app-dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].key.as_deref(), Some(b"one".as_slice()));
    assert_eq!(dlq[0].value, None, "the value could not be encoded");
    assert_eq!(dlq[0].destination.as_deref(), Some("maps"));
    assert_eq!((dlq[0].topic.as_str(), dlq[0].offset), ("pairs", 1), "the input record it came from");
    assert!(dlq[0].error.contains("value: cannot encode as JSON"), "{}", dlq[0].error);
}
