use serde::{Deserialize, Serialize};
use topology::agg::Mean;

#[derive(topology::Record, Clone, Serialize, Deserialize)]
#[record(topic = "views")]
struct View {
    #[key]
    user: u64,
    price: f64,
    #[timestamp]
    at: Option<String>,
}

#[derive(topology::Aggregate, Clone, Default, Serialize, Deserialize)]
#[aggregate(input = View)]
struct Stats {
    #[aggregate(count)]
    n: u64,
    #[aggregate(mean = price)]
    avg: Mean,
}

fn main() {
    fn assert_subtractable<A: topology::Subtractable<View>>() {}
    assert_subtractable::<Stats>();
}
