// Writing a stream needs serdes of its own key and value types.
use topology::{Consumed, Produced, Serdes, StreamsBuilder};

fn main() {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
}
