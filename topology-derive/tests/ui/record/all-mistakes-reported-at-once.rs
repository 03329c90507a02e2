use serde::{Deserialize, Serialize};

#[derive(topology::Record, Clone, Serialize, Deserialize)]
#[record(topik = "clicks", format = "csv")]
struct Click {
    #[key(user)]
    user: String,
    #[timestamp]
    a: i64,
    #[timestamp]
    b: i64,
}

fn main() {}
