//! Table materialization: keeps a KTable's latest value per key in a store (tombstones delete) and
//! forwards the change with the old value, which joins and table aggregations need.

use super::change_forward::ChangeForward;
use crate::record::{Change, Record};
use crate::state::{Data, KeyValueStoreHandle};
use crate::task::{Downstream, Punctuator, TaskCtx};

/// Materializes a table source (records of `Option<V>`; `None` is a tombstone).
pub(crate) struct TableSource<K, V> {
    pub(crate) store: KeyValueStoreHandle<K, V>,
    pub(crate) forward: ChangeForward<K, V>,
}

impl<K: Data, V: Data> Downstream<K, Option<V>> for TableSource<K, V> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, Option<V>>) {
        let old = {
            let mut s = self.store.borrow_mut();
            let old = s.get(&r.key);
            match &r.value {
                Some(v) => s.put(&r.key, v.clone()),
                None => {
                    s.delete(&r.key);
                }
            }
            old
        };
        if old.is_none() && r.value.is_none() {
            return; // deleting a key that was never there changes nothing
        }
        self.forward.push(ctx, r.with_value_change(old));
    }
}

impl<K, V> Record<K, Option<V>> {
    fn with_value_change(self, old: Option<V>) -> Record<K, Change<V>> {
        Record {
            key: self.key,
            value: Change { new: self.value, old },
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
}

/// Materializes a derived table (after filter, map_values, a join).
pub(crate) struct Materialize<K, V> {
    pub(crate) store: KeyValueStoreHandle<K, V>,
    pub(crate) forward: ChangeForward<K, V>,
}

impl<K: Data, V: Data> Downstream<K, Change<V>> for Materialize<K, V> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, Change<V>>) {
        {
            let mut s = self.store.borrow_mut();
            match &r.value.new {
                Some(v) => s.put(&r.key, v.clone()),
                None => {
                    s.delete(&r.key);
                }
            }
        }
        self.forward.push(ctx, r);
    }
}

impl<K: Data, V: Data> Punctuator for TableSource<K, V> {
    fn commit(&mut self, ctx: &mut TaskCtx) {
        self.forward.flush(ctx);
    }
}

impl<K: Data, V: Data> Punctuator for Materialize<K, V> {
    fn commit(&mut self, ctx: &mut TaskCtx) {
        self.forward.flush(ctx);
    }
}
