use topology::{processor, ProcessorContext, Record};

struct Stores;

#[processor(stores(seen: key_value<String, i64>))]
fn dedupe(ctx: &mut ProcessorContext<'_, String, i64>, stores: &Stores, record: Record<String, i64>) {
    let _ = (ctx, stores, record);
}

fn main() {}
