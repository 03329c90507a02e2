use serde::{Deserialize, Serialize};

#[derive(topology::Record, Clone, Serialize, Deserialize)]
#[record(topik = "clicks")]
struct Click {
    #[key]
    user: String,
}

fn main() {}
