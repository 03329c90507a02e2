use serde::{Deserialize, Serialize};

#[derive(topology::Aggregate, Clone, Default, Serialize, Deserialize)]
struct Stats {
    #[aggregate(count)]
    n: u64,
}

fn main() {}
