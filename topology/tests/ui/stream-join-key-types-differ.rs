// Two streams join only on the same key type.
use std::time::Duration;
use topology::{Consumed, JoinWindows, Serdes, StreamJoined, StreamsBuilder};

fn main() {
    let mut b = StreamsBuilder::new();
    let left = b.stream("left", Consumed::with(Serdes::string(), Serdes::i64()));
    let right = b.stream("right", Consumed::with(Serdes::i64(), Serdes::i64()));
    left.join_stream(&right, |l, r| l + r, JoinWindows::of(Duration::from_secs(1)), StreamJoined::new());
}
