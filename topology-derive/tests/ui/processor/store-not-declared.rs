use topology::{processor, ProcessorContext, Record};

#[processor(stores(seen: key_value<String, i64>))]
fn dedupe(ctx: &mut ProcessorContext<'_, String, i64>, stores: &DedupeStores, record: Record<String, i64>) {
    stores.counts.borrow_mut().put(&record.key, 1);
    ctx.forward(record);
}

fn main() {}
