use std::time::Duration;

use topology::{
    Consumed, EmitStrategy, Grouped, JoinWindows, Materialized, Named, Produced, Serdes, SessionWindows, StreamJoined,
    StreamsBuilder, TimeWindows, Topology, TopologyError,
};

use crate::{i, json, s};

/// Clicks enriched with users, counted per user in tumbling windows, sessions per user, and a
/// click/checkout window join.
fn sample(require_names: bool) -> Result<Topology, TopologyError> {
    let mut b = StreamsBuilder::new();
    if require_names {
        b.require_names();
    }
    let users = b.table("users", Consumed::with(s(), s()), Materialized::as_("users"));
    let clicks = b.stream("clicks", Consumed::with(s(), i()));
    let by_user = clicks.select_key(|_, v| format!("u{v}"));
    by_user
        .group_by_key(Grouped::as_("clicks-by-user"))
        .windowed_by(TimeWindows::of(Duration::from_secs(60)).grace(Duration::from_secs(5)))
        .emit(EmitStrategy::OnWindowClose)
        .count(Materialized::as_("clicks-per-minute"))
        .to_stream()
        .map(|k, v| (k.key, v.unwrap_or(0)))
        .to("clicks-per-minute", Produced::with(s(), json::<u64>()));
    by_user
        .group_by_key(Grouped::as_("sessions-by-user"))
        .windowed_by(SessionWindows::with_inactivity_gap(Duration::from_secs(1800)))
        .count(Materialized::as_("sessions"));
    let checkouts = b.stream("checkouts", Consumed::with(s(), i()));
    checkouts
        .join_stream(
            &clicks,
            |c, k| c + k,
            JoinWindows::of(Duration::from_secs(3600)),
            StreamJoined::as_("attribution"),
        )
        .join(&users, |v, u| format!("{u}:{v}"), Named::as_("with-user"))
        .to("attributed", Produced::with(s(), Serdes::string()));
    b.build()
}

#[test]
fn kafka_grammar_description_snapshot() {
    insta::assert_snapshot!("sample_text", sample(false).unwrap().describe().to_string());
}

#[test]
fn mermaid_and_dot_snapshots() {
    let d = sample(false).unwrap().describe();
    insta::assert_snapshot!("sample_mermaid", d.mermaid());
    insta::assert_snapshot!("sample_dot", d.dot());
}

#[test]
fn descriptions_are_deterministic() {
    assert_eq!(sample(false).unwrap().describe(), sample(false).unwrap().describe());
}

#[test]
fn require_names_refuses_generated_store_and_topic_names() {
    // Everything stateful in `sample` is named, so it builds.
    assert!(sample(true).is_ok());
    let mut b = StreamsBuilder::new();
    b.require_names();
    b.stream("in", Consumed::with(s(), i())).group_by_key(Grouped::new()).count(Materialized::new());
    let err = b.build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "`aggregation` needs an explicit name (generated names are refused): use `Materialized::as_(name)`"
    );
}

#[test]
fn duplicate_store_names_are_refused() {
    let mut b = StreamsBuilder::new();
    let g = b.stream("in", Consumed::with(s(), i())).group_by_key(Grouped::new());
    g.count(Materialized::as_("c"));
    g.count(Materialized::as_("c"));
    assert_eq!(b.build().unwrap_err(), TopologyError::DuplicateName("c".into()));
}

#[test]
fn reading_one_topic_twice_is_refused() {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()));
    b.stream("in", Consumed::with(s(), s()));
    assert!(matches!(b.build(), Err(TopologyError::DuplicateName(n)) if n == "source topic in"));
}
