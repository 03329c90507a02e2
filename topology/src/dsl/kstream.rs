//! [`KStream`]: an unbounded stream of independent records.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::config::{Grouped, Named, Produced, Repartitioned, StreamJoined};
use super::grouped::KGroupedStream;
use super::ktable::{GlobalKTable, KTable};
use super::Shared;
use crate::graph::{input, Factory, NodeKind, TopicName};
use crate::ops::branch::{Branch, Predicate};
use crate::ops::process::Process;
use crate::ops::stateless::{FlatMap, FlatMapFn};
use crate::ops::stream_stream_join::{Buffered, JoinKind, LeftInput, RightInput, StreamStreamJoin};
use crate::ops::stream_table_join::{KeyMapper, StreamTableJoin, ValueJoiner};
use crate::processor::{Processor, ProcessorInit};
use crate::record::Record;
use crate::serdes::{SerdeRef, Serdes};
use crate::state::{Data, Stores};
use crate::task::Handle;
use crate::window::JoinWindows;

/// A stream of records `(K, V)`; every record is an independent event.
///
/// Operations return new streams; a stream can feed several operations (records are cloned to each).
pub struct KStream<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: usize,
    /// Set after a key-changing operation: a grouping or join downstream must repartition first.
    pub(crate) repartition_required: bool,
    /// How keys are encoded on the topic this stream came from, while the key is unchanged: a repartition
    /// that must line up with that topic's partitions encodes keys the same way.
    pub(crate) key_serde: Option<SerdeRef<K>>,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            b: self.b.clone(),
            node: self.node,
            repartition_required: self.repartition_required,
            key_serde: self.key_serde.clone(),
            _t: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.b.borrow().graph.nodes[self.node].name.clone();
        f.debug_struct("KStream")
            .field("node", &name)
            .field("repartition_required", &self.repartition_required)
            .finish()
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    pub(crate) fn new(b: Shared, node: usize, repartition_required: bool, key_serde: Option<SerdeRef<K>>) -> Self {
        KStream { b, node, repartition_required, key_serde, _t: PhantomData }
    }

    /// A record-at-a-time operator that keeps the key (and so its encoding).
    fn same_key<V2: Clone + 'static>(&self, prefix: &str, f: FlatMapFn<K, V, K, V2>) -> KStream<K, V2> {
        let mut out = self.stateless(prefix, false, f);
        out.key_serde = self.key_serde.clone();
        out
    }

    /// Adds a record-at-a-time operator.
    fn stateless<K2: Clone + 'static, V2: Clone + 'static>(
        &self,
        prefix: &str,
        key_changed: bool,
        f: FlatMapFn<K, V, K2, V2>,
    ) -> KStream<K2, V2> {
        let mut inner = self.b.borrow_mut();
        let name = inner.node_name(None, prefix);
        let factory: Factory = Arc::new(move |b| {
            let node: Handle<K, V> = Rc::new(RefCell::new(FlatMap { f: f.clone(), forward: b.forward::<K2, V2>() }));
            Ok(vec![input(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(self.node, 0)], vec![], factory);
        KStream::new(self.b.clone(), id, self.repartition_required || key_changed, None)
    }

    /// Keeps records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.same_key(
            "KSTREAM-FILTER",
            Arc::new(move |r, emit| {
                if predicate(&r.key, &r.value) {
                    emit(r)
                }
            }),
        )
    }

    /// Drops records for which `predicate` holds.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.same_key(
            "KSTREAM-FILTER",
            Arc::new(move |r, emit| {
                if !predicate(&r.key, &r.value) {
                    emit(r)
                }
            }),
        )
    }

    /// Replaces key and value (marks the stream for repartitioning).
    pub fn map<K2: Clone + 'static, V2: Clone + 'static>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.stateless(
            "KSTREAM-MAP",
            true,
            Arc::new(move |r, emit| {
                let Record { key, value, timestamp, headers } = r;
                let (key, value) = f(key, value);
                emit(Record { key, value, timestamp, headers })
            }),
        )
    }

    /// Replaces the value, keeping the key (no repartitioning needed).
    pub fn map_values<V2: Clone + 'static>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        self.same_key(
            "KSTREAM-MAPVALUES",
            Arc::new(move |r, emit| {
                let Record { key, value, timestamp, headers } = r;
                emit(Record { value: f(value), key, timestamp, headers })
            }),
        )
    }

    /// Replaces the value using the key as well.
    pub fn map_values_with_key<V2: Clone + 'static>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.same_key(
            "KSTREAM-MAPVALUES",
            Arc::new(move |r, emit| {
                let Record { key, value, timestamp, headers } = r;
                emit(Record { value: f(&key, value), key, timestamp, headers })
            }),
        )
    }

    /// Replaces each record by any number of records (marks the stream for repartitioning).
    pub fn flat_map<K2, V2, I>(&self, f: impl Fn(K, V) -> I + Send + Sync + 'static) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.stateless(
            "KSTREAM-FLATMAP",
            true,
            Arc::new(move |r, emit| {
                let Record { key, value, timestamp, headers } = r;
                for (key, value) in f(key, value) {
                    emit(Record { key, value, timestamp, headers: headers.clone() })
                }
            }),
        )
    }

    /// Replaces each value by any number of values, keeping the key.
    pub fn flat_map_values<V2, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> KStream<K, V2>
    where
        V2: Clone + 'static,
        I: IntoIterator<Item = V2>,
    {
        self.same_key(
            "KSTREAM-FLATMAPVALUES",
            Arc::new(move |r, emit| {
                let Record { key, value, timestamp, headers } = r;
                for value in f(value) {
                    emit(Record { key: key.clone(), value, timestamp, headers: headers.clone() })
                }
            }),
        )
    }

    /// Sets a new key computed from the record (marks the stream for repartitioning).
    pub fn select_key<K2: Clone + 'static>(&self, f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V> {
        self.stateless(
            "KSTREAM-KEY-SELECT",
            true,
            Arc::new(move |r, emit| {
                let key = f(&r.key, &r.value);
                emit(r.with_key(key))
            }),
        )
    }

    /// Looks at each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.same_key(
            "KSTREAM-PEEK",
            Arc::new(move |r, emit| {
                f(&r.key, &r.value);
                emit(r)
            }),
        )
    }

    /// Consumes each record (a terminal operation).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        self.stateless::<K, V>("KSTREAM-FOREACH", false, Arc::new(move |r, _| f(&r.key, &r.value)));
    }

    /// Interleaves this stream with `other`.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut inner = self.b.borrow_mut();
        let name = inner.node_name(None, "KSTREAM-MERGE");
        let f: FlatMapFn<K, V, K, V> = Arc::new(|r, emit| emit(r));
        let factory: Factory = Arc::new(move |b| {
            let node: Handle<K, V> = Rc::new(RefCell::new(FlatMap { f: f.clone(), forward: b.forward::<K, V>() }));
            Ok(vec![input(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(self.node, 0), (other.node, 0)], vec![], factory);
        KStream::new(
            self.b.clone(),
            id,
            self.repartition_required || other.repartition_required,
            self.key_serde.clone(),
        )
    }

    /// Splits the stream into named branches; each record goes to the first branch whose predicate holds.
    ///
    /// ```
    /// # use topology::{Consumed, Serdes, StreamsBuilder};
    /// # let mut builder = StreamsBuilder::new();
    /// # let stream = builder.stream("in", Consumed::with(Serdes::string(), Serdes::i64()));
    /// let branches = stream
    ///     .split("amount-")
    ///     .branch("small", |_, v| *v < 10)
    ///     .branch("large", |_, v| *v >= 1000)
    ///     .default_branch("medium");
    /// assert!(branches.contains_key("amount-large"));
    /// ```
    pub fn split(&self, prefix: impl Into<String>) -> BranchedKStream<K, V> {
        BranchedKStream { stream: self.clone(), prefix: prefix.into(), branches: Vec::new() }
    }

    /// Writes the stream to `topic`.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        let Produced { key_serde, value_serde, name } = produced;
        self.b.borrow_mut().add_sink(self.node, TopicName::external(topic), name, key_serde, value_serde);
    }

    /// Runs a hand-written [`Processor`] (a new instance per task from `supplier`) that may use the named
    /// stores; the output may have any key (the stream is marked for repartitioning).
    pub fn process<P, S>(&self, supplier: S, named: Named, stores: &[&str]) -> KStream<P::KeyOut, P::ValueOut>
    where
        P: Processor<K, V>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        self.add_process("KSTREAM-PROCESSOR", true, supplier, named, stores)
    }

    /// Runs a `#[processor]`: adds the stores it declares to the topology (once) and attaches it.
    pub fn process_declared<P>(&self, named: Named) -> KStream<P::KeyOut, P::ValueOut>
    where
        P: crate::DeclaredProcessor<K, V>,
    {
        let mut names = Vec::new();
        {
            let mut inner = self.b.borrow_mut();
            for store in P::stores() {
                names.push(store.name.clone());
                if !inner.graph.stores.contains_key(&store.name) {
                    inner.add_store(store);
                }
            }
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.process(P::default, named, &names)
    }

    /// Like [`process`](Self::process) for processors that keep the key (no repartitioning follows).
    pub fn process_values<P, S>(&self, supplier: S, named: Named, stores: &[&str]) -> KStream<K, P::ValueOut>
    where
        P: Processor<K, V, KeyOut = K>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        let mut out = self.add_process("KSTREAM-PROCESSVALUES", false, supplier, named, stores);
        out.key_serde = self.key_serde.clone();
        out
    }

    fn add_process<P, S>(
        &self,
        prefix: &str,
        key_changed: bool,
        supplier: S,
        named: Named,
        stores: &[&str],
    ) -> KStream<P::KeyOut, P::ValueOut>
    where
        P: Processor<K, V>,
        S: Fn() -> P + Send + Sync + 'static,
    {
        let mut inner = self.b.borrow_mut();
        let name = inner.node_name(named.name, prefix);
        let declared: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
        let (node_name, decl) = (name.clone(), declared.clone());
        let factory: Factory = Arc::new(move |b| {
            let mut processor = supplier();
            let mut init = ProcessorInit { node: &node_name, declared: &decl, stores: b.stores, schedules: Vec::new() };
            processor.init(&mut init)?;
            let schedules = init.schedules;
            let has_timers = !schedules.is_empty();
            let node = Rc::new(RefCell::new(Process {
                node: Rc::from(node_name.as_str()),
                processor,
                schedules,
                forward: b.forward(),
                _t: PhantomData,
            }));
            if has_timers {
                b.add_punctuator(node.clone());
            }
            Ok(vec![input::<K, V>(node)])
        });
        let id = inner.add_node(name, NodeKind::Processor, vec![(self.node, 0)], declared, factory);
        KStream::new(self.b.clone(), id, self.repartition_required || key_changed, None)
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Repartitions by key through an internal topic now (normally inserted for you where needed).
    pub fn repartition(&self, repartitioned: Repartitioned) -> KStream<K, V> {
        let mut inner = self.b.borrow_mut();
        let base = inner.internal_name(
            repartitioned.name,
            "KSTREAM-REPARTITION",
            "repartition",
            "use `Repartitioned::as_(name)`",
        );
        let key_serde = self.key_serde.clone().unwrap_or_else(Serdes::bincode);
        let id = inner.add_repartition::<K, V>(self.node, base, repartitioned.partitions, key_serde.clone());
        KStream::new(self.b.clone(), id, false, Some(key_serde))
    }

    /// The stream itself, or a repartitioned copy if a key-changing operation came before. Keys on the
    /// repartition topic are encoded with `key_serde` (to line up with the topic this stream is joined
    /// with), else with this stream's own key serde, else with bincode.
    pub(crate) fn repartitioned_for(&self, base: &str, key_serde: Option<SerdeRef<K>>) -> KStream<K, V> {
        if !self.repartition_required {
            return self.clone();
        }
        let key_serde = key_serde.or_else(|| self.key_serde.clone()).unwrap_or_else(Serdes::bincode);
        let id = self.b.borrow_mut().add_repartition::<K, V>(self.node, base.to_string(), None, key_serde.clone());
        KStream::new(self.b.clone(), id, false, Some(key_serde))
    }

    /// Groups by the current key, for aggregations.
    pub fn group_by_key(&self, grouped: Grouped) -> KGroupedStream<K, V> {
        KGroupedStream { stream: self.clone(), grouped }
    }

    /// Groups by a new key (always repartitions).
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped,
    ) -> KGroupedStream<K2, V> {
        KGroupedStream { stream: self.select_key(f), grouped }
    }

    /// Adds a stream–table join node named `name` reading `self` (already repartitioned if needed).
    fn stream_table_join<TK: Data, T: Data, R: Clone + 'static>(
        &self,
        name: String,
        (table_node, store): (Option<usize>, String),
        key_mapper: KeyMapper<K, V, TK>,
        joiner: ValueJoiner<V, T, R>,
        left: bool,
    ) -> KStream<K, R> {
        let mut inner = self.b.borrow_mut();
        let st = store.clone();
        let factory: Factory = Arc::new(move |b| {
            let node = StreamTableJoin {
                table: b.dsl_store(&st),
                key_mapper: key_mapper.clone(),
                joiner: joiner.clone(),
                left,
                forward: b.forward::<K, R>(),
            };
            Ok(vec![input::<K, V>(Rc::new(RefCell::new(node)))])
        });
        let stores = if table_node.is_some() { vec![store] } else { vec![] };
        let id = inner.add_node(name.clone(), NodeKind::Processor, vec![(self.node, 0)], stores, factory);
        if let Some(t) = table_node {
            inner.copartition(&name, &[self.node, t]);
        }
        KStream::new(self.b.clone(), id, false, self.key_serde.clone())
    }

    /// Names a join node and repartitions this stream (keys encoded as on the table's topic) if needed.
    fn prepare_table_join<T: Data>(&self, named: Named, prefix: &str, table: &KTable<K, T>) -> (String, KStream<K, V>) {
        let name = self.b.borrow_mut().node_name(named.name, prefix);
        let input = self.repartitioned_for(&name, table.key_serde.clone());
        (name, input)
    }

    /// Joins each record with the table's current value for its key; records without one are dropped.
    pub fn join<T: Data, R: Clone + 'static>(
        &self,
        table: &KTable<K, T>,
        joiner: impl Fn(&V, &T) -> R + Send + Sync + 'static,
        named: Named,
    ) -> KStream<K, R> {
        let table = table.materialized_for_join();
        let (name, input) = self.prepare_table_join(named, "KSTREAM-JOIN", &table);
        let store = table.store.clone().expect("materialized");
        let joiner: ValueJoiner<V, T, R> = Arc::new(move |v, t| joiner(v, t.expect("inner join has a table value")));
        input.stream_table_join(name, (Some(table.node), store), Arc::new(|k: &K, _: &V| k.clone()), joiner, false)
    }

    /// Joins each record with the table's current value for its key, `None` when there is none.
    pub fn left_join<T: Data, R: Clone + 'static>(
        &self,
        table: &KTable<K, T>,
        joiner: impl Fn(&V, Option<&T>) -> R + Send + Sync + 'static,
        named: Named,
    ) -> KStream<K, R> {
        let table = table.materialized_for_join();
        let (name, input) = self.prepare_table_join(named, "KSTREAM-LEFTJOIN", &table);
        let store = table.store.clone().expect("materialized");
        input.stream_table_join(
            name,
            (Some(table.node), store),
            Arc::new(|k: &K, _: &V| k.clone()),
            Arc::new(joiner),
            true,
        )
    }

    /// Joins with a global table through `key_mapper`; records without a match are dropped.
    pub fn join_global<GK: Data, T: Data, R: Clone + 'static>(
        &self,
        table: &GlobalKTable<GK, T>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &T) -> R + Send + Sync + 'static,
        named: Named,
    ) -> KStream<K, R> {
        let name = self.b.borrow_mut().node_name(named.name, "KSTREAM-JOIN");
        let joiner: ValueJoiner<V, T, R> = Arc::new(move |v, t| joiner(v, t.expect("inner join has a table value")));
        self.stream_table_join(name, (None, table.store.clone()), Arc::new(key_mapper), joiner, false)
    }

    /// Joins with a global table through `key_mapper`, `None` when there is no match.
    pub fn left_join_global<GK: Data, T: Data, R: Clone + 'static>(
        &self,
        table: &GlobalKTable<GK, T>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&T>) -> R + Send + Sync + 'static,
        named: Named,
    ) -> KStream<K, R> {
        let name = self.b.borrow_mut().node_name(named.name, "KSTREAM-LEFTJOIN");
        self.stream_table_join(name, (None, table.store.clone()), Arc::new(key_mapper), Arc::new(joiner), true)
    }

    fn stream_join<V2: Data, R: Clone + 'static>(
        &self,
        other: &KStream<K, V2>,
        kind: JoinKind,
        joiner: crate::ops::stream_stream_join::OuterJoiner<V, V2, R>,
        windows: JoinWindows,
        joined: StreamJoined,
    ) -> KStream<K, R> {
        let prefix = match kind {
            JoinKind::Inner => "KSTREAM-JOIN",
            JoinKind::Left => "KSTREAM-LEFTJOIN",
            JoinKind::Outer => "KSTREAM-OUTERJOIN",
        };
        let base = self.b.borrow_mut().internal_name(
            joined.name,
            prefix,
            "stream-stream join",
            "use `StreamJoined::as_(name)`",
        );
        // A repartitioned side encodes keys like the other side's topic, so equal keys meet.
        let left = self.repartitioned_for(
            &format!("{base}-left"),
            other.key_serde.clone().filter(|_| !other.repartition_required),
        );
        let right = other
            .repartitioned_for(&format!("{base}-right"), self.key_serde.clone().filter(|_| !self.repartition_required));
        let mut inner = self.b.borrow_mut();
        let (this_store, other_store) = (format!("{base}-this-join-store"), format!("{base}-other-join-store"));
        let retention = windows.before + windows.after + windows.grace;
        inner.add_store(Stores::window::<K, Vec<Buffered<V>>>(this_store.clone(), retention));
        inner.add_store(Stores::window::<K, Vec<Buffered<V2>>>(other_store.clone(), retention));
        let (ts, os, name) = (this_store.clone(), other_store.clone(), base.clone());
        let factory: Factory = Arc::new(move |b| {
            let join = Rc::new(RefCell::new(StreamStreamJoin {
                name: name.clone(),
                windows,
                kind,
                left_store: b.dsl_store(&ts),
                right_store: b.dsl_store(&os),
                joiner: joiner.clone(),
                forward: b.forward::<K, R>(),
                left_done: i64::MIN,
                right_done: i64::MIN,
            }));
            let left = Rc::new(RefCell::new(LeftInput(join.clone())));
            b.add_punctuator(left.clone());
            Ok(vec![input::<K, V>(left), input::<K, V2>(Rc::new(RefCell::new(RightInput(join))))])
        });
        let id = inner.add_node(
            base.clone(),
            NodeKind::Processor,
            vec![(left.node, 0), (right.node, 1)],
            vec![this_store, other_store],
            factory,
        );
        inner.copartition(&base, &[left.node, right.node]);
        KStream::new(self.b.clone(), id, false, left.key_serde.clone())
    }

    /// Inner windowed join with another stream.
    pub fn join_stream<V2: Data, R: Clone + 'static>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, &V2) -> R + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined,
    ) -> KStream<K, R> {
        let j = Arc::new(move |l: Option<&V>, r: Option<&V2>| joiner(l.expect("inner join"), r.expect("inner join")));
        self.stream_join(other, JoinKind::Inner, j, windows, joined)
    }

    /// Left windowed join: unmatched left records are emitted with `None` once their window has closed.
    pub fn left_join_stream<V2: Data, R: Clone + 'static>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> R + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined,
    ) -> KStream<K, R> {
        let j = Arc::new(move |l: Option<&V>, r: Option<&V2>| joiner(l.expect("left side present"), r));
        self.stream_join(other, JoinKind::Left, j, windows, joined)
    }

    /// Outer windowed join: unmatched records of either side are emitted once their window has closed.
    pub fn outer_join_stream<V2: Data, R: Clone + 'static>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> R + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined,
    ) -> KStream<K, R> {
        self.stream_join(other, JoinKind::Outer, Arc::new(joiner), windows, joined)
    }
}

/// A stream being split into named branches; finish with [`default_branch`](Self::default_branch) or
/// [`no_default_branch`](Self::no_default_branch).
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    prefix: String,
    branches: Vec<(String, Predicate<K, V>)>,
}

impl<K, V> std::fmt::Debug for BranchedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchedKStream").field("prefix", &self.prefix).finish()
    }
}

impl<K: Clone + 'static, V: Clone + 'static> BranchedKStream<K, V> {
    /// Adds a branch named `prefix + name`.
    pub fn branch(mut self, name: &str, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.branches.push((format!("{}{name}", self.prefix), Arc::new(predicate)));
        self
    }

    /// Records that match no branch go to a branch named `prefix + name`.
    pub fn default_branch(self, name: &str) -> BTreeMap<String, KStream<K, V>> {
        let default = format!("{}{name}", self.prefix);
        self.finish(Some(default))
    }

    /// Records that match no branch are dropped.
    pub fn no_default_branch(self) -> BTreeMap<String, KStream<K, V>> {
        self.finish(None)
    }

    fn finish(self, default: Option<String>) -> BTreeMap<String, KStream<K, V>> {
        let b = self.stream.b.clone();
        let (names, predicates): (Vec<String>, Vec<Predicate<K, V>>) = self.branches.into_iter().unzip();
        let branch = {
            let mut inner = b.borrow_mut();
            let name = inner.node_name(
                Some(format!("{}BRANCH", self.prefix)).filter(|_| !self.prefix.is_empty()),
                "KSTREAM-BRANCH",
            );
            let preds = predicates.clone();
            let factory: Factory = Arc::new(move |bc| {
                let node = Branch { predicates: preds.clone(), forward: bc.forward::<K, V>() };
                Ok(vec![input::<K, V>(Rc::new(RefCell::new(node)))])
            });
            inner.add_node(name, NodeKind::Processor, vec![(self.stream.node, 0)], vec![], factory)
        };
        let mut out = BTreeMap::new();
        for name in names.into_iter().chain(default) {
            let mut inner = b.borrow_mut();
            let f: FlatMapFn<K, V, K, V> = Arc::new(|r, emit| emit(r));
            let factory: Factory = Arc::new(move |bc| {
                let node: Handle<K, V> = Rc::new(RefCell::new(FlatMap { f: f.clone(), forward: bc.forward::<K, V>() }));
                Ok(vec![input(node)])
            });
            let id = inner.add_node(name.clone(), NodeKind::Processor, vec![(branch, 0)], vec![], factory);
            drop(inner);
            out.insert(
                name,
                KStream::new(b.clone(), id, self.stream.repartition_required, self.stream.key_serde.clone()),
            );
        }
        out
    }
}
