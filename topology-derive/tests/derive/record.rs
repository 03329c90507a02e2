use serde::{Deserialize, Serialize};
use topology::{Produced, Record, Serdes, StreamsBuilder, TestDriver, TopicRecord};

#[derive(Record, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[record(topic = "checkouts")]
struct Checkout {
    checkout_id: String,
    #[key]
    user_id: i64,
    total_amount: f64,
    #[timestamp]
    datetime_occured: String,
}

#[derive(Record, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[record(topic = "views", format = "json")]
struct View {
    #[key]
    user: String,
    #[key]
    page: String,
    #[timestamp]
    ts: i64,
}

#[derive(Record, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[record(topic = "events")]
struct Unkeyed {
    what: String,
}

fn checkout(id: &str, user: i64, at: &str) -> Checkout {
    Checkout { checkout_id: id.into(), user_id: user, total_amount: 9.5, datetime_occured: at.into() }
}

#[test]
fn the_derive_declares_topic_key_and_event_time() {
    assert_eq!(Checkout::TOPIC, "checkouts");
    let c = checkout("c1", 42, "2024-01-01 00:02:03.456");
    assert_eq!(c.key(), 42);
    assert_eq!(c.timestamp(), Ok(1_704_067_323_456));
    let v = View { user: "u".into(), page: "/p".into(), ts: 7 };
    assert_eq!(v.key(), ("u".to_string(), "/p".to_string()));
    assert_eq!(v.timestamp(), Ok(7));
    assert_eq!(Unkeyed { what: "x".into() }.key(), ());
    const { assert!(!Unkeyed::HAS_TIMESTAMP) };
}

#[test]
fn stream_of_reads_keys_as_text_and_event_time_from_the_field_and_dead_letters_bad_times() {
    let mut b = StreamsBuilder::new();
    b.stream_of::<Checkout>()
        .map_values(|c| c.checkout_id)
        .to("ids", Produced::with(Serdes::json::<i64>(), Serdes::string()));
    let d = TestDriver::builder(b.build().unwrap()).application_id("app").build().unwrap();
    let input = d.input_topic("checkouts", Serdes::string(), Serdes::string());
    input.pipe("42".into(), serde_json::to_string(&checkout("c1", 42, "2024-01-01T00:00:00Z")).unwrap(), 0);
    input.pipe("42".into(), serde_json::to_string(&checkout("c2", 42, "last tuesday")).unwrap(), 0);
    input.pipe("not-a-number".into(), serde_json::to_string(&checkout("c3", 1, "2024-01-01T00:00:00Z")).unwrap(), 0);
    let out = d.output_topic("ids", Serdes::json::<i64>(), Serdes::string()).read_records();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].key, out[0].value.as_str(), out[0].timestamp), (42, "c1", 1_704_067_200_000));
    let dead = d.dead_letters("app-dlq");
    assert_eq!(dead.len(), 2);
    assert!(dead[0].error.contains("bad timestamp `last tuesday`"), "{}", dead[0].error);
    assert!(dead[1].error.contains("key `not-a-number` is not a number"), "{}", dead[1].error);
    // The same types write the topic back.
    let _produced = Checkout::produced();
}
