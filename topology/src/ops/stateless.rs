//! Stateless record-at-a-time operators (filter, map, flat_map, peek, merge, …) as one operator over a
//! function that emits zero or more records per input.

use std::sync::Arc;

use crate::record::Record;
use crate::task::{Downstream, Forward, TaskCtx};

/// Maps one record to any number of records, handed to `emit`.
pub(crate) type FlatMapFn<K, V, K2, V2> = Arc<dyn Fn(Record<K, V>, &mut dyn FnMut(Record<K2, V2>)) + Send + Sync>;

pub(crate) struct FlatMap<K, V, K2, V2> {
    pub(crate) f: FlatMapFn<K, V, K2, V2>,
    pub(crate) forward: Forward<K2, V2>,
}

impl<K, V, K2: Clone, V2: Clone> Downstream<K, V> for FlatMap<K, V, K2, V2> {
    fn push(&mut self, ctx: &mut TaskCtx, record: Record<K, V>) {
        let forward = &self.forward;
        (self.f)(record, &mut |r| forward.push(ctx, r));
    }
}
