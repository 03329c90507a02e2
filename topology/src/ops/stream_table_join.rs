//! Stream–table join: each stream record looks up the table's current value (inner: skipped when absent;
//! left: joined with `None`). Table updates emit nothing. Also serves global tables through a key mapper.

use std::sync::Arc;

use crate::record::Record;
use crate::state::{Data, KeyValueStoreHandle};
use crate::task::{Downstream, Forward, TaskCtx};

/// Joins a stream value with the table value, if any.
pub(crate) type ValueJoiner<V, T, R> = Arc<dyn Fn(&V, Option<&T>) -> R + Send + Sync>;
/// Maps a stream record to the table key to look up.
pub(crate) type KeyMapper<K, V, TK> = Arc<dyn Fn(&K, &V) -> TK + Send + Sync>;

pub(crate) struct StreamTableJoin<K, V, TK, T, R> {
    pub(crate) table: KeyValueStoreHandle<TK, T>,
    pub(crate) key_mapper: KeyMapper<K, V, TK>,
    pub(crate) joiner: ValueJoiner<V, T, R>,
    pub(crate) left: bool,
    pub(crate) forward: Forward<K, R>,
}

impl<K: Clone, V, TK: Data, T: Data, R: Clone> Downstream<K, V> for StreamTableJoin<K, V, TK, T, R> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let tk = (self.key_mapper)(&r.key, &r.value);
        let found = self.table.borrow().get(&tk);
        if found.is_none() && !self.left {
            return;
        }
        let joined = (self.joiner)(&r.value, found.as_ref());
        self.forward.push(ctx, Record { key: r.key, value: joined, timestamp: r.timestamp, headers: r.headers });
    }
}
