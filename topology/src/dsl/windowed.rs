//! Windowed grouped streams: aggregations per key and window.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::config::Materialized;
use super::grouped::KGroupedStream;
use super::ktable::KTable;
use crate::graph::{input, Factory, NodeKind};
use crate::ops::aggregate::{Aggregator, First, Merger};
use crate::ops::session_aggregate::SessionAggregate;
use crate::ops::sliding_aggregate::SlidingAggregate;
use crate::ops::window_aggregate::WindowAggregate;
use crate::state::{Data, Stores};
use crate::window::{EmitStrategy, SessionWindows, SlidingWindows, TimeWindows, Windowed};

/// A window spec that can window a [`KGroupedStream`].
pub trait WindowedBy<K, V> {
    /// The windowed stream type.
    type Output;
    /// Windows `grouped`.
    fn windowed(self, grouped: KGroupedStream<K, V>) -> Self::Output;
}

#[derive(Debug, Clone, Copy)]
enum Spec {
    Time(TimeWindows),
    Sliding(SlidingWindows),
}

/// A grouped stream in time windows (tumbling, hopping or sliding).
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    spec: Spec,
    emit: EmitStrategy,
}

impl<K, V> std::fmt::Debug for TimeWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindowedKStream").field("spec", &self.spec).field("emit", &self.emit).finish()
    }
}

impl<K: Data, V: Data> WindowedBy<K, V> for TimeWindows {
    type Output = TimeWindowedKStream<K, V>;
    fn windowed(self, grouped: KGroupedStream<K, V>) -> Self::Output {
        TimeWindowedKStream { grouped, spec: Spec::Time(self), emit: EmitStrategy::default() }
    }
}

impl<K: Data, V: Data> WindowedBy<K, V> for SlidingWindows {
    type Output = TimeWindowedKStream<K, V>;
    fn windowed(self, grouped: KGroupedStream<K, V>) -> Self::Output {
        TimeWindowedKStream { grouped, spec: Spec::Sliding(self), emit: EmitStrategy::default() }
    }
}

impl<K: Data, V: Data> WindowedBy<K, V> for SessionWindows {
    type Output = SessionWindowedKStream<K, V>;
    fn windowed(self, grouped: KGroupedStream<K, V>) -> Self::Output {
        SessionWindowedKStream { grouped, windows: self, emit: EmitStrategy::default() }
    }
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// Forward every update (default) or only final results when windows close.
    pub fn emit(mut self, strategy: EmitStrategy) -> Self {
        self.emit = strategy;
        self
    }

    fn aggregate_with<A: Data>(
        &self,
        prefix: &str,
        first: First<K, V, A>,
        aggregator: Aggregator<K, V, A>,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, A> {
        let (store, input_stream) = self.grouped.prepare(&materialized, prefix, "windowed aggregation");
        let b = input_stream.b.clone();
        let mut inner = b.borrow_mut();
        let name = inner.node_name(materialized.name.clone(), prefix);
        let emit = self.emit;
        let (builder, factory): (_, Factory) = match self.spec {
            Spec::Time(windows) => {
                let retention = materialized.retention.unwrap_or(0).max(windows.retention());
                let (st, n) = (store.clone(), name.clone());
                let factory: Factory = Arc::new(move |bc| {
                    let node = Rc::new(RefCell::new(WindowAggregate {
                        name: n.clone(),
                        windows,
                        emit,
                        store: bc.dsl_store(&st),
                        first: first.clone(),
                        aggregator: aggregator.clone(),
                        forward: bc.change_forward::<Windowed<K>, A>(),
                        done_upto: i64::MIN,
                        open: None,
                        _v: std::marker::PhantomData,
                    }));
                    bc.add_punctuator(node.clone());
                    Ok(vec![input::<K, V>(node)])
                });
                (Stores::window::<K, A>(store.clone(), retention), factory)
            }
            Spec::Sliding(windows) => {
                let retention = materialized.retention.unwrap_or(0).max(2 * windows.time_difference + windows.grace);
                let (st, n) = (store.clone(), name.clone());
                let factory: Factory = Arc::new(move |bc| {
                    let node = Rc::new(RefCell::new(SlidingAggregate {
                        name: n.clone(),
                        windows,
                        emit,
                        store: bc.dsl_store(&st),
                        first: first.clone(),
                        aggregator: aggregator.clone(),
                        forward: bc.change_forward::<Windowed<K>, A>(),
                        done_upto: i64::MIN,
                        _v: std::marker::PhantomData,
                    }));
                    bc.add_punctuator(node.clone());
                    Ok(vec![input::<K, V>(node)])
                });
                (Stores::window::<K, (A, i64)>(store.clone(), retention), factory)
            }
        };
        inner.add_store(if materialized.logging { builder } else { builder.without_logging() });
        let id = inner.add_node(name, NodeKind::Processor, vec![(input_stream.node, 0)], vec![store], factory);
        drop(inner);
        KTable::new(b, id, None, None)
    }

    /// Counts records per key and window.
    pub fn count(&self, materialized: Materialized) -> KTable<Windowed<K>, u64> {
        self.aggregate_with("KSTREAM-AGGREGATE", Arc::new(|_, _, _| 1), Arc::new(|_, _, _, c| c + 1), materialized)
    }

    /// Combines values per key and window.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, V> {
        self.aggregate_with(
            "KSTREAM-REDUCE",
            Arc::new(|_, v: &V, _| v.clone()),
            Arc::new(move |_, v, _, a| reducer(a, v)),
            materialized,
        )
    }

    /// Aggregates each window into a `#[derive(Aggregate)]` type.
    pub fn aggregate_into<A: crate::Aggregator<V>>(&self, materialized: Materialized) -> KTable<Windowed<K>, A> {
        let (first, add) = crate::ops::aggregate::derived::<K, V, A>();
        self.aggregate_with("KSTREAM-AGGREGATE", first, add, materialized)
    }

    /// Folds values per key and window into an aggregate that starts at `init()`.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, A> {
        let aggregator: Aggregator<K, V, A> = Arc::new(move |k, v, _, a| aggregator(k, v, a));
        let agg = aggregator.clone();
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(move |k, v, ts| agg(k, v, ts, init())),
            aggregator,
            materialized,
        )
    }
}

/// A grouped stream in session windows.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
    emit: EmitStrategy,
}

impl<K, V> std::fmt::Debug for SessionWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWindowedKStream").field("windows", &self.windows).field("emit", &self.emit).finish()
    }
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Forward every update (default; merged-away sessions as tombstones) or only closed sessions.
    pub fn emit(mut self, strategy: EmitStrategy) -> Self {
        self.emit = strategy;
        self
    }

    fn aggregate_with<A: Data>(
        &self,
        prefix: &str,
        first: First<K, V, A>,
        aggregator: Aggregator<K, V, A>,
        merger: Merger<K, A>,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, A> {
        let (store, input_stream) = self.grouped.prepare(&materialized, prefix, "session aggregation");
        let b = input_stream.b.clone();
        let mut inner = b.borrow_mut();
        let name = inner.node_name(materialized.name.clone(), prefix);
        let windows = self.windows;
        let retention = materialized.retention.unwrap_or(0).max(windows.gap + windows.grace);
        let builder = Stores::session::<K, A>(store.clone(), retention);
        inner.add_store(if materialized.logging { builder } else { builder.without_logging() });
        let (st, n, emit) = (store.clone(), name.clone(), self.emit);
        let factory: Factory = Arc::new(move |bc| {
            let node = Rc::new(RefCell::new(SessionAggregate {
                name: n.clone(),
                windows,
                emit,
                store: bc.dsl_store(&st),
                first: first.clone(),
                aggregator: aggregator.clone(),
                merger: merger.clone(),
                forward: bc.change_forward::<Windowed<K>, A>(),
                done_upto: i64::MIN,
                open: None,
                scratch: Vec::new(),
                found: Vec::new(),
                key_buf: Vec::new(),
                _v: std::marker::PhantomData,
            }));
            bc.add_punctuator(node.clone());
            Ok(vec![input::<K, V>(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(input_stream.node, 0)], vec![store], factory);
        drop(inner);
        KTable::new(b, id, None, None)
    }

    /// Counts records per session.
    pub fn count(&self, materialized: Materialized) -> KTable<Windowed<K>, u64> {
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(|_, _, _| 1),
            Arc::new(|_, _, _, c| c + 1),
            Arc::new(|_, a, b| a + b),
            materialized,
        )
    }

    /// Combines values per session; merging sessions combines their aggregates with the same reducer.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, &V) -> V + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, V> {
        let reducer = Arc::new(reducer);
        let r2 = reducer.clone();
        self.aggregate_with(
            "KSTREAM-REDUCE",
            Arc::new(|_, v: &V, _| v.clone()),
            Arc::new(move |_, v, _, a| reducer(a, v)),
            Arc::new(move |_, a, b| r2(a, &b)),
            materialized,
        )
    }

    /// Aggregates each session into a `#[derive(Aggregate)]` type; merging sessions uses `A::merge`.
    pub fn aggregate_into<A: crate::Aggregator<V>>(&self, materialized: Materialized) -> KTable<Windowed<K>, A> {
        let (first, add) = crate::ops::aggregate::derived::<K, V, A>();
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            first,
            add,
            Arc::new(|_, mut a: A, b: A| {
                a.merge(b);
                a
            }),
            materialized,
        )
    }

    /// Folds values per session; `merger` combines two sessions' aggregates when a record bridges them.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        aggregator: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        merger: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        materialized: Materialized,
    ) -> KTable<Windowed<K>, A> {
        let aggregator: Aggregator<K, V, A> = Arc::new(move |k, v, _, a| aggregator(k, v, a));
        let agg = aggregator.clone();
        self.aggregate_with(
            "KSTREAM-AGGREGATE",
            Arc::new(move |k, v, ts| agg(k, v, ts, init())),
            aggregator,
            Arc::new(merger),
            materialized,
        )
    }
}
