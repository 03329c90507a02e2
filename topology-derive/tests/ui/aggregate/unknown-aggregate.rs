use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct View {
    price: f64,
}

#[derive(topology::Aggregate, Clone, Default, Serialize, Deserialize)]
#[aggregate(input = View)]
struct Stats {
    #[aggregate(median = price)]
    middle: f64,
}

fn main() {}
