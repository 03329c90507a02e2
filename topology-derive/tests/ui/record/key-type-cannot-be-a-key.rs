use serde::{Deserialize, Serialize};

#[derive(topology::Record, Clone, Serialize, Deserialize)]
#[record(topic = "prices")]
struct Price {
    #[key]
    amount: f64,
}

fn main() {}
