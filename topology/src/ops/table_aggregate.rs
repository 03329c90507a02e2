//! Table aggregate: re-keyed table changes update an aggregate with an adder (new value) and a subtractor
//! (old value), as Kafka Streams' `KGroupedTable::aggregate`.

use super::change_forward::ChangeForward;
use crate::record::{Change, Record};
use crate::state::{Data, KeyValueStoreHandle};
use crate::task::{Downstream, Punctuator, TaskCtx};

use super::aggregate::{Aggregator, Initializer};

pub(crate) struct TableAggregate<K, V, A> {
    pub(crate) store: KeyValueStoreHandle<K, A>,
    pub(crate) init: Initializer<A>,
    pub(crate) adder: Aggregator<K, V, A>,
    pub(crate) subtractor: Aggregator<K, V, A>,
    pub(crate) forward: ChangeForward<K, A>,
}

impl<K: Data, V: Data, A: Data> Downstream<K, Change<V>> for TableAggregate<K, V, A> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, Change<V>>) {
        let old = self.store.borrow().get(&r.key);
        let mut agg = old.clone().unwrap_or_else(|| (self.init)());
        if let Some(v) = &r.value.old {
            agg = (self.subtractor)(&r.key, v, r.timestamp, agg);
        }
        if let Some(v) = &r.value.new {
            agg = (self.adder)(&r.key, v, r.timestamp, agg);
        }
        self.store.borrow_mut().put(&r.key, agg.clone());
        self.forward.push(ctx, Record::new(r.key, Change { new: Some(agg), old }, r.timestamp));
    }
}

impl<K: Data, V: Data, A: Data> Punctuator for TableAggregate<K, V, A> {
    fn commit(&mut self, ctx: &mut TaskCtx) {
        self.forward.flush(ctx);
    }
}
