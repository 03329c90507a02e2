#[derive(topology::Record)]
#[record(topic = "clicks")]
enum Click {
    A,
}

fn main() {}
