// A stream keyed by String cannot join a table keyed by i64.
use topology::{Consumed, Materialized, Named, Serdes, StreamsBuilder};

fn main() {
    let mut b = StreamsBuilder::new();
    let table = b.table("users", Consumed::with(Serdes::i64(), Serdes::string()), Materialized::new());
    let clicks = b.stream("clicks", Consumed::with(Serdes::string(), Serdes::string()));
    clicks.join(&table, |c: &String, u: &String| format!("{c}{u}"), Named::new());
}
