use topology::{topology, StreamsBuilder};

#[topology]
fn app(builder: &mut StreamsBuilder) {
    let _ = builder;
}

fn main() {}
