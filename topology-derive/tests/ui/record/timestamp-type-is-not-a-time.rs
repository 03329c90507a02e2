use serde::{Deserialize, Serialize};

#[derive(topology::Record, Clone, Serialize, Deserialize)]
#[record(topic = "clicks")]
struct Click {
    #[key]
    user: String,
    #[timestamp]
    happened: bool,
}

fn main() {}
