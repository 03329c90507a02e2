//! The logical graph the DSL writes and tasks are compiled from.
//!
//! Each node keeps a factory. Compiling a task calls the factories of its sub-topology children-first: a
//! factory receives its children's typed input handles (as `dyn Any`, downcast to the exact
//! `Rc<RefCell<dyn Downstream<K, V>>>` the typed DSL guarantees) and returns its own. Records then flow as
//! typed values through direct calls; nothing is serialized inside a sub-topology.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use crate::ops::change_forward::ChangeForward;
use crate::record::Change;
use crate::state::{Data, StoreBuilder};
use crate::task::{Downstream, Forward, Punctuator, SourceNode};

/// A topic name; internal topics are prefixed with the application id when a runtime resolves them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TopicName {
    pub(crate) name: String,
    pub(crate) internal: bool,
}

impl TopicName {
    pub(crate) fn external(name: &str) -> Self {
        TopicName { name: name.to_string(), internal: false }
    }
    pub(crate) fn internal(name: String) -> Self {
        TopicName { name, internal: true }
    }
    pub(crate) fn resolve(&self, application_id: &str) -> String {
        if self.internal {
            format!("{application_id}-{}", self.name)
        } else {
            self.name.clone()
        }
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Builds a node's typed operator inside a task; returns one input handle per input port.
pub(crate) type Factory = Arc<dyn Fn(&mut BuildCtx<'_>) -> crate::Result<Vec<Box<dyn Any>>> + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Source { topics: Vec<TopicName> },
    Processor,
    Sink { topic: TopicName },
}

pub(crate) struct NodeDef {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    /// (parent node id, input port of this node).
    pub(crate) parents: Vec<(usize, usize)>,
    pub(crate) stores: Vec<String>,
    pub(crate) factory: Factory,
    /// Part of a global table's sub-topology (runs in no task; feeds the shared global store).
    pub(crate) global: bool,
}

/// Topics whose partitions must line up because one node reads them together.
#[derive(Debug, Clone)]
pub(crate) struct CoPartitionGroup {
    pub(crate) node: String,
    /// Source nodes whose topics form the group (resolved to topics when planning).
    pub(crate) sources: Vec<usize>,
}

/// The whole logical graph.
#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: BTreeMap<String, StoreBuilder>,
    pub(crate) global_stores: Vec<String>,
    pub(crate) copartition: Vec<CoPartitionGroup>,
    /// Repartition topics and the node that writes them.
    pub(crate) repartition_topics: Vec<(TopicName, Option<u32>)>,
    /// The `Record<K, V>` type (and its name) each sink node writes, by node id.
    pub(crate) sink_records: BTreeMap<usize, (std::any::TypeId, &'static str)>,
}

impl Graph {
    pub(crate) fn children(&self) -> Vec<Vec<(usize, usize)>> {
        let mut children = vec![Vec::new(); self.nodes.len()];
        for (id, n) in self.nodes.iter().enumerate() {
            for &(p, port) in &n.parents {
                children[p].push((id, port));
            }
        }
        children
    }

    /// Nodes upstream of `id` within its sub-topology, sources included.
    pub(crate) fn upstream_sources(&self, id: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        let mut seen = vec![false; self.nodes.len()];
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            if matches!(self.nodes[n].kind, NodeKind::Source { .. }) {
                out.push(n);
            }
            stack.extend(self.nodes[n].parents.iter().map(|&(p, _)| p));
        }
        out.sort_unstable();
        out
    }
}

/// What a factory can reach while a task is being compiled.
pub(crate) struct BuildCtx<'a> {
    pub(crate) node: usize,
    pub(crate) node_name: &'a str,
    pub(crate) application_id: &'a str,
    pub(crate) children: &'a [Vec<(usize, usize)>],
    pub(crate) inputs: &'a mut HashMap<usize, Vec<Box<dyn Any>>>,
    pub(crate) stores: &'a HashMap<String, Rc<dyn Any>>,
    pub(crate) sources: &'a mut Vec<(String, Box<dyn SourceNode>)>,
    pub(crate) punctuators: &'a mut Vec<Rc<RefCell<dyn Punctuator>>>,
    /// Stores are cached: table changes are forwarded de-duplicated, at commit, by this many keys at most.
    pub(crate) dedup_keys: Option<usize>,
}

impl BuildCtx<'_> {
    /// Handles of this node's children, in creation order.
    pub(crate) fn forward<K: 'static, V: 'static>(&mut self) -> Forward<K, V> {
        let mut handles = Vec::new();
        for &(child, port) in &self.children[self.node] {
            if let Some(ports) = self.inputs.get(&child) {
                let h = ports[port]
                    .downcast_ref::<Rc<RefCell<dyn Downstream<K, V>>>>()
                    .unwrap_or_else(|| panic!("type mismatch wiring `{}` (a bug in the DSL)", self.node_name));
                handles.push(h.clone());
            }
        }
        Forward::new(handles)
    }

    /// How this node forwards table changes: de-duplicated until commit when stores are cached.
    pub(crate) fn change_forward<K: Data, V: Data>(&mut self) -> ChangeForward<K, V> {
        let forward = self.forward::<K, Change<V>>();
        match self.dedup_keys {
            Some(max_keys) => ChangeForward::Deduplicated { forward, pending: Default::default(), max_keys },
            None => ChangeForward::Immediate(forward),
        }
    }

    /// Registers `node` for commit hooks if its changes are buffered until commit.
    pub(crate) fn flush_on_commit(&mut self, node: Rc<RefCell<dyn Punctuator>>) {
        if self.dedup_keys.is_some() {
            self.punctuators.push(node);
        }
    }

    /// The typed handle of store `name`, downcast to `H`.
    pub(crate) fn store<H: Clone + 'static>(&self, name: &str) -> Option<H> {
        self.stores.get(name).and_then(|s| s.downcast_ref::<H>()).cloned()
    }

    /// Like [`store`](Self::store) for stores the DSL itself declared (their type is known to match).
    pub(crate) fn dsl_store<H: Clone + 'static>(&self, name: &str) -> H {
        self.store(name).unwrap_or_else(|| panic!("store `{name}` missing or mistyped (a bug in the DSL)"))
    }

    pub(crate) fn add_source(&mut self, topic: &TopicName, node: Box<dyn SourceNode>) {
        self.sources.push((topic.resolve(self.application_id), node));
    }

    pub(crate) fn add_punctuator(&mut self, p: Rc<RefCell<dyn Punctuator>>) {
        self.punctuators.push(p);
    }

    pub(crate) fn resolve(&self, topic: &TopicName) -> String {
        topic.resolve(self.application_id)
    }
}

/// Boxes a typed input handle for [`Factory`] results.
pub(crate) fn input<K: 'static, V: 'static>(h: Rc<RefCell<dyn Downstream<K, V>>>) -> Box<dyn Any> {
    Box::new(h)
}
