use serde::{Deserialize, Serialize};

#[derive(topology::Record, Clone, Serialize, Deserialize)]
#[record(topic = "clicks", format = "xml")]
struct Click {
    #[key]
    user: String,
}

fn main() {}
