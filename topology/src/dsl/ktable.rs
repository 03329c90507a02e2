//! [`KTable`]: a changelog stream read as the latest value per key.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::config::{Consumed, Grouped, Materialized};
use super::grouped::KGroupedTable;
use super::kstream::KStream;
use super::Shared;
use crate::graph::{input, Factory, NodeKind, TopicName};
use crate::ops::stateless::{FlatMap, FlatMapFn};
use crate::ops::stream_stream_join::JoinKind;
use crate::ops::table::{Materialize, TableSource};
use crate::ops::table_table_join::{LeftTable, RightTable, TableJoiner, TableTableJoin};
use crate::record::{Change, Record};
use crate::serdes::{encode, SerdeRef, Serdes};
use crate::state::{Data, Stores};
use crate::task::Handle;

/// A table: the latest value per key. Operators pass changes (old → new); `None` is a delete.
pub struct KTable<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: usize,
    /// The key-value store holding the table, if it is materialized.
    pub(crate) store: Option<String>,
    /// How keys are encoded on the table's topic (see `KStream::key_serde`).
    pub(crate) key_serde: Option<SerdeRef<K>>,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            b: self.b.clone(),
            node: self.node,
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            _t: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KTable").field("store", &self.store).finish()
    }
}

/// A table replicated in full to every task, joined from streams through a key mapper.
pub struct GlobalKTable<K, V> {
    pub(crate) store: String,
    pub(crate) _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for GlobalKTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalKTable").field("store", &self.store).finish()
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The global store's name.
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

pub(crate) fn table_source<K: Data, V: Data>(
    b: &Shared,
    topic: &str,
    consumed: Consumed<K, V>,
    materialized: Materialized,
    global: bool,
) -> KTable<K, V> {
    let mut inner = b.borrow_mut();
    let Consumed { key_serde, value_serde, extractor, name } = consumed;
    let table_key_serde = key_serde.clone();
    let consumed = Consumed {
        key_serde,
        value_serde: Serdes::optional(value_serde),
        extractor: extractor.map(|f| {
            Arc::new(move |k: &K, v: &Option<V>, ts: i64| match v {
                Some(v) => f(k, v, ts),
                None => Ok(ts),
            }) as crate::ops::source::TimestampExtractor<K, Option<V>>
        }),
        name,
    };
    let source = inner.add_source(TopicName::external(topic), consumed);
    let store = inner.internal_name(
        materialized.name.clone(),
        &format!("{topic}-STATE-STORE"),
        "table",
        "use `Materialized::as_(name)`",
    );
    let mut builder = Stores::key_value::<K, V>(store.clone());
    if !materialized.logging || global {
        builder = builder.without_logging(); // a source table restores from its own topic
    }
    inner.add_store(builder);
    let name = inner.node_name(materialized.name, "KTABLE-SOURCE");
    let st = store.clone();
    let factory: Factory = Arc::new(move |bc| {
        let node =
            Rc::new(RefCell::new(TableSource { store: bc.dsl_store(&st), forward: bc.change_forward::<K, V>() }));
        bc.flush_on_commit(node.clone());
        Ok(vec![input::<K, Option<V>>(node)])
    });
    let id = inner.add_node(name, NodeKind::Processor, vec![(source, 0)], vec![store.clone()], factory);
    if global {
        inner.graph.nodes[source].global = true;
        inner.graph.nodes[id].global = true;
        inner.graph.global_stores.push(store.clone());
    }
    KTable { b: b.clone(), node: id, store: Some(store), key_serde: Some(table_key_serde), _t: PhantomData }
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(b: Shared, node: usize, store: Option<String>, key_serde: Option<SerdeRef<K>>) -> Self {
        KTable { b, node, store, key_serde, _t: PhantomData }
    }

    fn change_op<V2: Data>(&self, prefix: &str, f: FlatMapFn<K, Change<V>, K, Change<V2>>) -> KTable<K, V2> {
        let mut inner = self.b.borrow_mut();
        let name = inner.node_name(None, prefix);
        let factory: Factory = Arc::new(move |b| {
            let node: Handle<K, Change<V>> =
                Rc::new(RefCell::new(FlatMap { f: f.clone(), forward: b.forward::<K, Change<V2>>() }));
            Ok(vec![input(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(self.node, 0)], vec![], factory);
        KTable::new(self.b.clone(), id, None, self.key_serde.clone())
    }

    /// Keeps rows for which `predicate` holds (others read as deleted).
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.change_op(
            "KTABLE-FILTER",
            Arc::new(move |r, emit| {
                let keep = |v: Option<V>| v.filter(|v| predicate(&r.key, v));
                let change = Change { new: keep(r.value.new.clone()), old: keep(r.value.old.clone()) };
                if change.new.is_some() || change.old.is_some() {
                    emit(Record { key: r.key.clone(), value: change, timestamp: r.timestamp, headers: r.headers })
                }
            }),
        )
    }

    /// Drops rows for which `predicate` holds.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Maps every value.
    pub fn map_values<V2: Data>(&self, f: impl Fn(&V) -> V2 + Send + Sync + 'static) -> KTable<K, V2> {
        self.change_op(
            "KTABLE-MAPVALUES",
            Arc::new(move |r, emit| {
                let Record { key, value, timestamp, headers } = r;
                let change = Change { new: value.new.as_ref().map(&f), old: value.old.as_ref().map(&f) };
                emit(Record { key, value: change, timestamp, headers })
            }),
        )
    }

    /// Keeps the table in a named store (so it can be joined and queried).
    pub fn materialize(&self, materialized: Materialized) -> KTable<K, V> {
        let mut inner = self.b.borrow_mut();
        let store = inner.internal_name(
            materialized.name.clone(),
            "KTABLE-MATERIALIZE-STATE-STORE",
            "materialize",
            "use `Materialized::as_(name)`",
        );
        let mut builder = Stores::key_value::<K, V>(store.clone());
        if !materialized.logging {
            builder = builder.without_logging();
        }
        inner.add_store(builder);
        let name = inner.node_name(materialized.name, "KTABLE-MATERIALIZE");
        let st = store.clone();
        let factory: Factory = Arc::new(move |b| {
            let node =
                Rc::new(RefCell::new(Materialize { store: b.dsl_store(&st), forward: b.change_forward::<K, V>() }));
            b.flush_on_commit(node.clone());
            Ok(vec![input::<K, Change<V>>(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(self.node, 0)], vec![store.clone()], factory);
        KTable::new(self.b.clone(), id, Some(store), self.key_serde.clone())
    }

    pub(crate) fn materialized_for_join(&self) -> KTable<K, V> {
        if self.store.is_some() {
            self.clone()
        } else {
            self.materialize(Materialized::new())
        }
    }

    /// The stream of changes: each update's new value, `None` for a delete.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let mut inner = self.b.borrow_mut();
        let name = inner.node_name(None, "KTABLE-TOSTREAM");
        let f: FlatMapFn<K, Change<V>, K, Option<V>> = Arc::new(|r, emit| {
            let Record { key, value, timestamp, headers } = r;
            emit(Record { key, value: value.new, timestamp, headers })
        });
        let factory: Factory = Arc::new(move |b| {
            let node: Handle<K, Change<V>> =
                Rc::new(RefCell::new(FlatMap { f: f.clone(), forward: b.forward::<K, Option<V>>() }));
            Ok(vec![input(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(self.node, 0)], vec![], factory);
        KStream::new(self.b.clone(), id, false, self.key_serde.clone())
    }

    fn table_join<V2: Data, R: Data>(
        &self,
        other: &KTable<K, V2>,
        kind: JoinKind,
        joiner: TableJoiner<V, V2, R>,
        materialized: Option<super::Materialized>,
    ) -> KTable<K, R> {
        let (left, right) = (self.materialized_for_join(), other.materialized_for_join());
        let (ls, rs) = (left.store.clone().expect("materialized"), right.store.clone().expect("materialized"));
        let prefix = match kind {
            JoinKind::Inner => "KTABLE-JOIN",
            JoinKind::Left => "KTABLE-LEFTJOIN",
            JoinKind::Outer => "KTABLE-OUTERJOIN",
        };
        let id = {
            let mut inner = self.b.borrow_mut();
            let name = inner.node_name(None, prefix);
            let (l, r) = (ls.clone(), rs.clone());
            let factory: Factory = Arc::new(move |b| {
                let join = Rc::new(RefCell::new(TableTableJoin {
                    kind,
                    left_store: b.dsl_store(&l),
                    right_store: b.dsl_store(&r),
                    joiner: joiner.clone(),
                    forward: b.forward::<K, Change<R>>(),
                }));
                Ok(vec![
                    input::<K, Change<V>>(Rc::new(RefCell::new(LeftTable(join.clone())))),
                    input::<K, Change<V2>>(Rc::new(RefCell::new(RightTable(join)))),
                ])
            });
            let id = inner.add_node(
                name.clone(),
                NodeKind::Processor,
                vec![(left.node, 0), (right.node, 1)],
                vec![ls, rs],
                factory,
            );
            inner.copartition(&name, &[left.node, right.node]);
            id
        };
        let joined = KTable::new(self.b.clone(), id, None, self.key_serde.clone());
        match materialized {
            Some(m) => joined.materialize(m),
            None => joined,
        }
    }

    /// Inner join with another table on the key; the result updates when either side changes.
    pub fn join<V2: Data, R: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, &V2) -> R + Send + Sync + 'static,
    ) -> KTable<K, R> {
        let j = Arc::new(move |l: Option<&V>, r: Option<&V2>| joiner(l.expect("inner"), r.expect("inner")));
        self.table_join(other, JoinKind::Inner, j, None)
    }

    /// Left join with another table.
    pub fn left_join<V2: Data, R: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> R + Send + Sync + 'static,
    ) -> KTable<K, R> {
        let j = Arc::new(move |l: Option<&V>, r: Option<&V2>| joiner(l.expect("left side present"), r));
        self.table_join(other, JoinKind::Left, j, None)
    }

    /// Outer join with another table.
    pub fn outer_join<V2: Data, R: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> R + Send + Sync + 'static,
    ) -> KTable<K, R> {
        self.table_join(other, JoinKind::Outer, Arc::new(joiner), None)
    }

    /// Re-keys rows for an aggregation with adder and subtractor (always repartitions).
    pub fn group_by<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped,
    ) -> KGroupedTable<K2, V2> {
        let mut inner = self.b.borrow_mut();
        let name = inner.node_name(None, "KTABLE-SELECT");
        let select: FlatMapFn<K, Change<V>, K2, Change<V2>> = Arc::new(move |r, emit| {
            let old = r.value.old.as_ref().map(|v| f(&r.key, v));
            let new = r.value.new.as_ref().map(|v| f(&r.key, v));
            match (old, new) {
                (Some((ko, vo)), Some((kn, vn))) if encode(&ko) == encode(&kn) => {
                    emit(Record::new(kn, Change { new: Some(vn), old: Some(vo) }, r.timestamp))
                }
                (old, new) => {
                    if let Some((k, v)) = old {
                        emit(Record::new(k, Change { new: None, old: Some(v) }, r.timestamp));
                    }
                    if let Some((k, v)) = new {
                        emit(Record::new(k, Change { new: Some(v), old: None }, r.timestamp));
                    }
                }
            }
        });
        let factory: Factory = Arc::new(move |b| {
            let node: Handle<K, Change<V>> =
                Rc::new(RefCell::new(FlatMap { f: select.clone(), forward: b.forward::<K2, Change<V2>>() }));
            Ok(vec![input(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(self.node, 0)], vec![], factory);
        KGroupedTable { b: self.b.clone(), node: id, grouped, _t: PhantomData }
    }
}
