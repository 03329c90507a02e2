use topology::{processor, ProcessorContext, Record};

#[processor(stores(seen: hash_map<String, i64>))]
fn dedupe(ctx: &mut ProcessorContext<'_, String, i64>, stores: &DedupeStores, record: Record<String, i64>) {
    let _ = (ctx, stores, record);
}

fn main() {}
