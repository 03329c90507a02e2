use serde::{Deserialize, Serialize};

#[derive(topology::Record, Clone, Serialize, Deserialize)]
#[record(topic = "clicks")]
struct Click {
    #[key]
    user: String,
    #[timestamp]
    created: i64,
    #[timestamp]
    updated: i64,
}

fn main() {}
