use topology::{topology, StreamsBuilder};

#[topology(application_id = "my app")]
fn app(builder: &mut StreamsBuilder) {
    let _ = builder;
}

fn main() {}
