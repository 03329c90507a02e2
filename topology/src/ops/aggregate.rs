//! Aggregate: folds a grouped stream into a key-value store and forwards each new value as a table change.

use std::sync::Arc;

use super::change_forward::ChangeForward;
use crate::record::{Change, Record};
use crate::state::{Data, KeyValueStoreHandle};
use crate::task::{Downstream, Punctuator, TaskCtx};

/// Creates the initial aggregate.
pub(crate) type Initializer<A> = Arc<dyn Fn() -> A + Send + Sync>;
/// Creates a key's first aggregate from its first value (`aggregator(init())` for aggregate, the value
/// itself for reduce).
pub(crate) type First<K, V, A> = Arc<dyn Fn(&K, &V, i64) -> A + Send + Sync>;
/// Folds one value (with its event time) into an aggregate.
pub(crate) type Aggregator<K, V, A> = Arc<dyn Fn(&K, &V, i64, A) -> A + Send + Sync>;
/// Combines two aggregates (session merges).
pub(crate) type Merger<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;

/// The seed and fold of a `#[derive(Aggregate)]` type: `A::default()` plus `A::add` with event time.
pub(crate) fn derived<K, V: 'static, A: crate::Aggregator<V>>() -> (First<K, V, A>, Aggregator<K, V, A>) {
    (
        Arc::new(|_, v, ts| {
            let mut a = A::default();
            a.add(v, ts);
            a
        }),
        Arc::new(|_, v, ts, mut a: A| {
            a.add(v, ts);
            a
        }),
    )
}

pub(crate) struct Aggregate<K, V, A> {
    pub(crate) store: KeyValueStoreHandle<K, A>,
    pub(crate) first: First<K, V, A>,
    pub(crate) aggregator: Aggregator<K, V, A>,
    pub(crate) forward: ChangeForward<K, A>,
}

impl<K: Data, V, A: Data> Downstream<K, V> for Aggregate<K, V, A> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let old = self.store.borrow().get(&r.key);
        let new = match &old {
            Some(a) => (self.aggregator)(&r.key, &r.value, r.timestamp, a.clone()),
            None => (self.first)(&r.key, &r.value, r.timestamp),
        };
        self.store.borrow_mut().put(&r.key, new.clone());
        let change = Change { new: Some(new), old };
        self.forward.push(ctx, Record { key: r.key, value: change, timestamp: r.timestamp, headers: r.headers });
    }
}

impl<K: Data, V, A: Data> Punctuator for Aggregate<K, V, A> {
    fn commit(&mut self, ctx: &mut TaskCtx) {
        self.forward.flush(ctx);
    }
}
