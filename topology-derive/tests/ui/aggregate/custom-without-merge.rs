use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct View {
    price: f64,
}

fn add(acc: &mut f64, v: &View, _ts: i64) {
    *acc += v.price;
}

#[derive(topology::Aggregate, Clone, Default, Serialize, Deserialize)]
#[aggregate(input = View)]
struct Stats {
    #[aggregate(custom = add)]
    total: f64,
}

fn main() {}
