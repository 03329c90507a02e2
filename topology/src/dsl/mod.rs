//! The typed DSL. Use [`StreamsBuilder`] as entry: read topics as [`KStream`]s and [`KTable`]s, transform,
//! group, window, aggregate and join them, write results with [`KStream::to`], then
//! [`build`](StreamsBuilder::build) a [`Topology`].
//!
//! Types carry through: a join or aggregation whose key or value types do not line up does not compile.
//! Operations that change the key mark the stream; a grouping or join downstream then inserts a
//! repartition topic (`<application-id>-<name>-repartition`) so records with equal keys meet in one task.

mod config;
mod grouped;
mod kstream;
mod ktable;
mod windowed;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

pub use config::{Consumed, Grouped, Materialized, Named, Produced, Repartitioned, StreamJoined};
pub use grouped::{KGroupedStream, KGroupedTable};
pub use kstream::{BranchedKStream, KStream};
pub use ktable::{GlobalKTable, KTable};
pub use windowed::{SessionWindowedKStream, TimeWindowedKStream, WindowedBy};

use crate::error::TopologyError;
use crate::graph::{Factory, Graph, NodeDef, NodeKind, TopicName};
use crate::ops::source::Source;
use crate::serdes::SerdeRef;
use crate::state::{Data, StoreBuilder};
use crate::task::{DeserializationPolicy, LateRecords};
use crate::topology::Topology;

/// Builder state shared by the streams and tables it hands out.
pub(crate) struct Inner {
    pub(crate) graph: Graph,
    index: usize,
    require_names: bool,
    pub(crate) errors: Vec<TopologyError>,
    pub(crate) late: LateRecords,
    pub(crate) deserialization: DeserializationPolicy,
    names: HashSet<String>,
    source_topics: HashSet<TopicName>,
}

pub(crate) type Shared = Rc<RefCell<Inner>>;

impl Inner {
    /// Kafka Streams' generated names: `PREFIX-0000000007`.
    pub(crate) fn generated(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{:010}", self.index);
        self.index += 1;
        name
    }

    pub(crate) fn node_name(&mut self, given: Option<String>, prefix: &str) -> String {
        given.unwrap_or_else(|| self.generated(prefix))
    }

    /// A store or internal-topic name; refused when generated under `require_names`.
    pub(crate) fn internal_name(&mut self, given: Option<String>, prefix: &str, operation: &str, hint: &str) -> String {
        match given {
            Some(n) => n,
            None => {
                if self.require_names {
                    self.errors.push(TopologyError::GeneratedName {
                        operation: operation.to_string(),
                        hint: hint.to_string(),
                    });
                }
                self.generated(prefix)
            }
        }
    }

    pub(crate) fn add_node(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: Vec<(usize, usize)>,
        stores: Vec<String>,
        factory: Factory,
    ) -> usize {
        if !self.names.insert(name.clone()) {
            self.errors.push(TopologyError::DuplicateName(name.clone()));
        }
        for s in &stores {
            if !self.graph.stores.contains_key(s) {
                self.errors.push(TopologyError::UnknownStore { processor: name.clone(), store: s.clone() });
            }
        }
        self.graph.nodes.push(NodeDef { name, kind, parents, stores, factory, global: false });
        self.graph.nodes.len() - 1
    }

    pub(crate) fn add_store(&mut self, store: StoreBuilder) {
        if self.graph.stores.contains_key(&store.name) {
            self.errors.push(TopologyError::DuplicateName(store.name.clone()));
        }
        self.graph.stores.insert(store.name.clone(), store);
    }

    /// Adds a source node reading `topic` into a typed queue.
    pub(crate) fn add_source<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        topic: TopicName,
        consumed: Consumed<K, V>,
    ) -> usize {
        if !self.source_topics.insert(topic.clone()) {
            self.errors.push(TopologyError::DuplicateName(format!("source topic {topic}")));
        }
        let name = self.node_name(consumed.name.clone(), "KSTREAM-SOURCE");
        let Consumed { key_serde, value_serde, extractor, .. } = consumed;
        let t = topic.clone();
        let factory: Factory = Arc::new(move |b| {
            let src = Source {
                topic: b.resolve(&t).into(),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                extractor: extractor.clone(),
                queue: Default::default(),
                forward: b.forward::<K, V>(),
            };
            b.add_source(&t, Box::new(src));
            Ok(vec![])
        });
        self.add_node(name, NodeKind::Source { topics: vec![topic] }, vec![], vec![], factory)
    }

    /// Adds a sink node writing to `topic`.
    pub(crate) fn add_sink<K: 'static, V: 'static>(
        &mut self,
        parent: usize,
        topic: TopicName,
        name: Option<String>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> usize {
        let name = self.node_name(name, "KSTREAM-SINK");
        let t = topic.clone();
        let repartition = topic.internal;
        let factory: Factory = Arc::new(move |b| {
            let sink = crate::ops::sink::Sink {
                topic: b.resolve(&t).into(),
                key_serde: key_serde.clone(),
                value_serde: value_serde.clone(),
                repartition,
                direct: std::cell::OnceCell::new(),
            };
            Ok(vec![crate::graph::input::<K, V>(Rc::new(RefCell::new(sink)))])
        });
        let id = self.add_node(name, NodeKind::Sink { topic }, vec![(parent, 0)], vec![], factory);
        let record = (
            std::any::TypeId::of::<crate::record::Record<K, V>>(),
            std::any::type_name::<crate::record::Record<K, V>>(),
        );
        self.graph.sink_records.insert(id, record);
        id
    }

    /// Writes `parent`'s records to an internal repartition topic and reads them back: the new source.
    pub(crate) fn add_repartition<K: Data, V: Data>(
        &mut self,
        parent: usize,
        base: String,
        partitions: Option<u32>,
        key_serde: SerdeRef<K>,
    ) -> usize {
        let topic = TopicName::internal(format!("{base}-repartition"));
        self.graph.repartition_topics.push((topic.clone(), partitions));
        self.add_sink::<K, V>(parent, topic.clone(), None, key_serde.clone(), crate::Serdes::bincode());
        self.add_source::<K, V>(topic, Consumed::with(key_serde, crate::Serdes::bincode()))
    }

    /// Records that the sources upstream of `nodes` must be co-partitioned for `node`.
    pub(crate) fn copartition(&mut self, node: &str, nodes: &[usize]) {
        let mut sources: Vec<usize> = nodes.iter().flat_map(|&n| self.graph.upstream_sources(n)).collect();
        sources.sort_unstable();
        sources.dedup();
        self.graph.copartition.push(crate::graph::CoPartitionGroup { node: node.to_string(), sources });
    }
}

/// Entry point of the DSL: declares sources, stores and options, then [`build`](Self::build)s a
/// [`Topology`].
///
/// ```
/// use topology::{Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder};
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream("text", Consumed::with(Serdes::unit(), Serdes::string()))
///     .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
///     .select_key(|_, word| word.clone())
///     .group_by_key(Grouped::as_("words"))
///     .count(Materialized::as_("word-counts"))
///     .to_stream()
///     .to("counts", Produced::with(Serdes::string(), Serdes::optional(Serdes::json::<u64>())));
/// let topology = builder.build().unwrap();
/// assert!(topology.describe().to_string().contains("word-counts"));
/// ```
pub struct StreamsBuilder {
    inner: Shared,
}

impl std::fmt::Debug for StreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsBuilder").field("nodes", &self.inner.borrow().graph.nodes.len()).finish()
    }
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        StreamsBuilder {
            inner: Rc::new(RefCell::new(Inner {
                graph: Graph::default(),
                index: 0,
                require_names: false,
                errors: Vec::new(),
                late: LateRecords::default(),
                deserialization: DeserializationPolicy::default(),
                names: HashSet::new(),
                source_topics: HashSet::new(),
            })),
        }
    }

    /// Refuses generated names for stores and internal topics: [`build`](Self::build) fails for every
    /// stateful operation without a `Materialized::as_`/`Grouped::as_`/`StreamJoined::as_` name, so adding an
    /// operator can never silently rename a changelog.
    pub fn require_names(&mut self) -> &mut Self {
        self.inner.borrow_mut().require_names = true;
        self
    }

    /// Where late records go besides their counter.
    pub fn late_records(&mut self, late: LateRecords) -> &mut Self {
        self.inner.borrow_mut().late = late;
        self
    }

    /// What happens to records that cannot be decoded (default: dead-letter and continue).
    pub fn deserialization_policy(&mut self, policy: DeserializationPolicy) -> &mut Self {
        self.inner.borrow_mut().deserialization = policy;
        self
    }

    /// Reads `topic` as a record stream.
    pub fn stream<K: Clone + 'static, V: Clone + 'static>(
        &mut self,
        topic: &str,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let key_serde = consumed.key_serde.clone();
        let id = self.inner.borrow_mut().add_source(TopicName::external(topic), consumed);
        KStream::new(self.inner.clone(), id, false, Some(key_serde))
    }

    /// Reads the topic of a `#[derive(Record)]` type, keyed and timestamped as the type declares.
    pub fn stream_of<R: crate::TopicRecord>(&mut self) -> KStream<R::Key, R> {
        self.stream(R::TOPIC, R::consumed())
    }

    /// Reads the topic of a `#[derive(Record)]` type as a table.
    pub fn table_of<R: crate::TopicRecord>(&mut self, materialized: Materialized) -> KTable<R::Key, R> {
        self.table(R::TOPIC, R::consumed(), materialized)
    }

    /// Reads `topic` as a changelog into a table (a `null` value deletes the key).
    pub fn table<K: Data, V: Data>(
        &mut self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized,
    ) -> KTable<K, V> {
        ktable::table_source(&self.inner, topic, consumed, materialized, false)
    }

    /// Reads every partition of `topic` into a table replicated in full to every task.
    pub fn global_table<K: Data, V: Data>(
        &mut self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized,
    ) -> GlobalKTable<K, V> {
        let t = ktable::table_source(&self.inner, topic, consumed, materialized, true);
        GlobalKTable { store: t.store.expect("table sources are materialized"), _t: std::marker::PhantomData }
    }

    /// Adds a store that processors can name in [`KStream::process`].
    pub fn add_state_store(&mut self, store: StoreBuilder) -> &mut Self {
        self.inner.borrow_mut().add_store(store);
        self
    }

    /// Checks the graph and returns the topology (the first problem found, if any).
    pub fn build(self) -> Result<Topology, TopologyError> {
        let mut inner = self.inner.borrow_mut();
        if let Some(e) = inner.errors.first() {
            return Err(e.clone());
        }
        let graph = std::mem::take(&mut inner.graph);
        Ok(Topology::new(graph, inner.late.clone(), inner.deserialization.clone()))
    }
}
