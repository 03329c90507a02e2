use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct View {
    url: String,
}

#[derive(topology::Aggregate, Clone, Default, Serialize, Deserialize)]
#[aggregate(input = View)]
struct Stats {
    #[aggregate(max = url)]
    longest: Option<String>,
}

fn main() {}
