use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct View {
    price: f64,
}

#[derive(topology::Aggregate, Clone, Default, Serialize, Deserialize)]
#[aggregate(input = View)]
struct Stats {
    #[aggregate(sum = pricee)]
    total: f64,
}

fn main() {}
