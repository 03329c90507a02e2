use serde::{Deserialize, Serialize};

#[derive(topology::Record, Clone, Serialize, Deserialize)]
struct Click {
    #[key]
    user: String,
}

fn main() {}
