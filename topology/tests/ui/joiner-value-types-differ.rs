// The joiner receives the table's value type, not something else.
use topology::{Consumed, Materialized, Named, Serdes, StreamsBuilder};

fn main() {
    let mut b = StreamsBuilder::new();
    let table = b.table("users", Consumed::with(Serdes::string(), Serdes::string()), Materialized::new());
    let clicks = b.stream("clicks", Consumed::with(Serdes::string(), Serdes::i64()));
    clicks.join(&table, |c: &i64, u: &i64| c + u, Named::new());
}
