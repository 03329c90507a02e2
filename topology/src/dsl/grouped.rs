//! Grouped streams and tables: the step between a grouping and an aggregation.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::config::{Grouped, Materialized};
use super::kstream::KStream;
use super::ktable::KTable;
use super::windowed::WindowedBy;
use super::Shared;
use crate::graph::{input, Factory, NodeKind};
use crate::ops::aggregate::{Aggregate, Aggregator, First};
use crate::ops::table_aggregate::TableAggregate;
use crate::record::Change;
use crate::state::{Data, Stores};

/// A stream grouped by key, ready to be aggregated (or windowed first).
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) grouped: Grouped,
}

impl<K, V> std::fmt::Debug for KGroupedStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KGroupedStream").field("grouped", &self.grouped).finish()
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// The store name for an aggregation, and the (possibly repartitioned) input stream.
    pub(crate) fn prepare(
        &self,
        materialized: &Materialized,
        prefix: &str,
        operation: &str,
    ) -> (String, KStream<K, V>) {
        let store = self.stream.b.borrow_mut().internal_name(
            materialized.name.clone(),
            &format!("{prefix}-STATE-STORE"),
            operation,
            "use `Materialized::as_(name)`",
        );
        let base = self.grouped.name.clone().unwrap_or_else(|| store.clone());
        (store.clone(), self.stream.repartitioned_for(&base, None))
    }

    fn aggregate_with<A: Data>(
        &self,
        prefix: &str,
        first: First<K, V, A>,
        aggregator: Aggregator<K, V, A>,
        materialized: Materialized,
    ) -> KTable<K, A> {
        let (store, input_stream) = self.prepare(&materialized, prefix, "aggregation");
        let b: Shared = self.stream.b.clone();
        let mut inner = b.borrow_mut();
        let mut builder = Stores::key_value::<K, A>(store.clone());
        if !materialized.logging {
            builder = builder.without_logging();
        }
        inner.add_store(builder);
        let name = inner.node_name(materialized.name, prefix);
        let st = store.clone();
        let factory: Factory = Arc::new(move |bc| {
            let node = Rc::new(RefCell::new(Aggregate {
                store: bc.dsl_store(&st),
                first: first.clone(),
                aggregator: aggregator.clone(),
                forward: bc.change_forward::<K, A>(),
            }));
            bc.flush_on_commit(node.clone());
            Ok(vec![input::<K, V>(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(input_stream.node, 0)], vec![store.clone()], factory);
        drop(inner);
        KTable::new(b, id, Some(store), input_stream.key_serde)
    }

    /// Counts records per key.
    pub fn count(&self, materialized: Materialized) -> KTable<K, u64> {
        self.aggregate_with("KSTREAM-AGGREGATE", Arc::new(|_, _, _| 1), Arc::new(|_, _, _, c| c + 1), materialized)
    }

    /// Combines values per key; the first value is the initial aggregate.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, V> {
        self.aggregate_with(
            "KSTREAM-REDUCE",
            Arc::new(|_, v: &V, _| v.clone()),
            Arc::new(move |_, v, _, agg| reducer(agg, v)),
            materialized,
        )
    }

    /// Folds values per key into an aggregate that starts at `init()`.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, A> {
        let aggregator: Aggregator<K, V, A> = Arc::new(move |k, v, _, a| aggregator(k, v, a));
        let agg = aggregator.clone();
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(move |k, v, ts| agg(k, v, ts, init())),
            aggregator,
            materialized,
        )
    }

    /// Aggregates into a `#[derive(Aggregate)]` type: starts at `A::default()`, folds with `A::add`.
    pub fn aggregate_into<A: crate::Aggregator<V>>(&self, materialized: Materialized) -> KTable<K, A> {
        let (first, add) = crate::ops::aggregate::derived::<K, V, A>();
        self.aggregate_with("KSTREAM-AGGREGATE", first, add, materialized)
    }

    /// Windows the grouped stream: [`TimeWindows`](crate::TimeWindows) and
    /// [`SlidingWindows`](crate::SlidingWindows) give a [`TimeWindowedKStream`](crate::TimeWindowedKStream),
    /// [`SessionWindows`](crate::SessionWindows) a [`SessionWindowedKStream`](crate::SessionWindowedKStream).
    pub fn windowed_by<W: WindowedBy<K, V>>(&self, windows: W) -> W::Output {
        windows.windowed(KGroupedStream { stream: self.stream.clone(), grouped: self.grouped.clone() })
    }
}

/// A re-keyed table, ready for an aggregation with adder and subtractor.
pub struct KGroupedTable<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: usize,
    pub(crate) grouped: Grouped,
    pub(crate) _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for KGroupedTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KGroupedTable").field("grouped", &self.grouped).finish()
    }
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Aggregates: `adder` folds in each new value, `subtractor` takes out each replaced or deleted one.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        subtractor: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<K, A> {
        let mut inner = self.b.borrow_mut();
        let store = inner.internal_name(
            materialized.name.clone(),
            "KTABLE-AGGREGATE-STATE-STORE",
            "table aggregation",
            "use `Materialized::as_(name)`",
        );
        let base = self.grouped.name.clone().unwrap_or_else(|| store.clone());
        let source = inner.add_repartition::<K, Change<V>>(self.node, base, None, crate::Serdes::bincode());
        let mut builder = Stores::key_value::<K, A>(store.clone());
        if !materialized.logging {
            builder = builder.without_logging();
        }
        inner.add_store(builder);
        let name = inner.node_name(materialized.name, "KTABLE-AGGREGATE");
        let init = Arc::new(init);
        let adder: Aggregator<K, V, A> = Arc::new(move |k, v, _, a| adder(k, v, a));
        let subtractor: Aggregator<K, V, A> = Arc::new(move |k, v, _, a| subtractor(k, v, a));
        let st = store.clone();
        let factory: Factory = Arc::new(move |bc| {
            let node = Rc::new(RefCell::new(TableAggregate {
                store: bc.dsl_store(&st),
                init: init.clone(),
                adder: adder.clone(),
                subtractor: subtractor.clone(),
                forward: bc.change_forward::<K, A>(),
            }));
            bc.flush_on_commit(node.clone());
            Ok(vec![input::<K, Change<V>>(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(source, 0)], vec![store.clone()], factory);
        drop(inner);
        KTable::new(self.b.clone(), id, Some(store), Some(crate::Serdes::bincode()))
    }

    /// Counts rows per new key (a replaced or deleted row is subtracted).
    pub fn count(&self, materialized: Materialized) -> KTable<K, i64> {
        self.aggregate(|| 0i64, |_, _, c| c + 1, |_, _, c| c - 1, materialized)
    }
}
