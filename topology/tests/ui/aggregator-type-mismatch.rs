// The aggregator must return the aggregate's type.
use topology::{Consumed, Grouped, Materialized, Serdes, StreamsBuilder};

fn main() {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::new())
        .aggregate(|| 0u64, |_k, v: &i64, agg: u64| format!("{agg}{v}"), Materialized::new());
}
