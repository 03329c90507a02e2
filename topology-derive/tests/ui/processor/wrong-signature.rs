use topology::{processor, Record};

#[processor(stores(seen: key_value<String, i64>))]
fn dedupe(record: Record<String, i64>) {
    let _ = record;
}

fn main() {}
