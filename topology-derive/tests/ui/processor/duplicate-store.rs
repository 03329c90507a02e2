use topology::{processor, ProcessorContext, Record};

#[processor(stores(seen: key_value<String, i64>, seen: key_value<String, u64>))]
fn dedupe(ctx: &mut ProcessorContext<'_, String, i64>, stores: &DedupeStores, record: Record<String, i64>) {
    let _ = (ctx, stores, record);
}

fn main() {}
