//! [`Topology`]: the built graph, split into sub-topologies, able to describe itself and to plan tasks.
//!
//! [`Topology::describe`] renders Kafka Streams' `TopologyDescription` grammar (`Display`), and the same
//! graph as Mermaid ([`TopologyDescription::mermaid`]) or Graphviz DOT ([`TopologyDescription::dot`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::sync::Arc;

use crate::error::TopologyError;
use crate::graph::{Graph, NodeKind, TopicName};
use crate::task::{DeserializationPolicy, LateRecords, TaskId};

/// A built topology: immutable, shareable across threads, compiled into tasks by a runtime.
#[derive(Clone)]
pub struct Topology {
    pub(crate) graph: Arc<Graph>,
    /// Node ids of each sub-topology (tasks are created per sub-topology and partition).
    pub(crate) subtopologies: Vec<Vec<usize>>,
    /// Node ids of global-table sub-topologies (no tasks; they feed shared global stores).
    pub(crate) globals: Vec<Vec<usize>>,
    pub(crate) late: LateRecords,
    pub(crate) deserialization: DeserializationPolicy,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology").field("subtopologies", &self.subtopologies.len()).finish()
    }
}

fn find(parent: &mut [usize], x: usize) -> usize {
    let mut r = x;
    while parent[r] != r {
        r = parent[r];
    }
    let mut y = x;
    while parent[y] != r {
        let next = parent[y];
        parent[y] = r;
        y = next;
    }
    r
}

/// Partition counts and tasks for one application id.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Resolved topic name → partitions, for every source and internal topic.
    pub(crate) partitions: BTreeMap<String, u32>,
    /// Every task of the non-global sub-topologies.
    pub(crate) tasks: Vec<TaskId>,
}

impl Topology {
    pub(crate) fn new(graph: Graph, late: LateRecords, deserialization: DeserializationPolicy) -> Topology {
        let n = graph.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        let mut by_store: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, node) in graph.nodes.iter().enumerate() {
            for &(p, _) in &node.parents {
                let (a, b) = (find(&mut parent, id), find(&mut parent, p));
                parent[a.max(b)] = a.min(b);
            }
            for s in &node.stores {
                if let Some(&other) = by_store.get(s.as_str()) {
                    let (a, b) = (find(&mut parent, id), find(&mut parent, other));
                    parent[a.max(b)] = a.min(b);
                } else {
                    by_store.insert(s, id);
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for id in 0..n {
            let root = find(&mut parent, id);
            groups.entry(root).or_default().push(id);
        }
        let (mut subtopologies, mut globals) = (Vec::new(), Vec::new());
        for (_, ids) in groups {
            if graph.nodes[ids[0]].global {
                globals.push(ids);
            } else {
                subtopologies.push(ids);
            }
        }
        Topology { graph: Arc::new(graph), subtopologies, globals, late, deserialization }
    }

    /// Describes the topology (see [`TopologyDescription`]).
    pub fn describe(&self) -> TopologyDescription {
        let children = self.graph.children();
        let node = |id: usize| {
            let def = &self.graph.nodes[id];
            let kind = match &def.kind {
                NodeKind::Source { topics } => {
                    NodeDescriptionKind::Source { topics: topics.iter().map(|t| t.name.clone()).collect() }
                }
                NodeKind::Processor => NodeDescriptionKind::Processor { stores: def.stores.clone() },
                NodeKind::Sink { topic } => NodeDescriptionKind::Sink { topic: topic.name.clone() },
            };
            let mut predecessors: Vec<String> =
                def.parents.iter().map(|&(p, _)| self.graph.nodes[p].name.clone()).collect();
            predecessors.dedup();
            let successors = children[id].iter().map(|&(c, _)| self.graph.nodes[c].name.clone()).collect();
            NodeDescription { name: def.name.clone(), kind, predecessors, successors }
        };
        let order = |ids: &Vec<usize>| {
            let mut ids = ids.clone();
            ids.sort_by_key(|&i| (!matches!(self.graph.nodes[i].kind, NodeKind::Source { .. }), i));
            ids.into_iter().map(node).collect()
        };
        let subtopologies: Vec<SubtopologyDescription> = self
            .subtopologies
            .iter()
            .chain(&self.globals)
            .enumerate()
            .map(|(id, ids)| SubtopologyDescription { id, global: id >= self.subtopologies.len(), nodes: order(ids) })
            .collect();
        TopologyDescription { subtopologies }
    }

    /// Number of sub-topologies that create tasks.
    pub fn subtopology_count(&self) -> usize {
        self.subtopologies.len()
    }

    /// Topics of source nodes in sub-topology `s` (unresolved names).
    pub(crate) fn source_topics_of(&self, nodes: &[usize]) -> Vec<TopicName> {
        let mut out = BTreeSet::new();
        for &n in nodes {
            if let NodeKind::Source { topics } = &self.graph.nodes[n].kind {
                out.extend(topics.iter().cloned());
            }
        }
        out.into_iter().collect()
    }

    /// External topics the application reads (global tables included).
    pub fn source_topics(&self) -> Vec<String> {
        let all: Vec<usize> = (0..self.graph.nodes.len()).collect();
        self.source_topics_of(&all).into_iter().filter(|t| !t.internal).map(|t| t.name).collect()
    }

    /// External topics the application writes (late-record and dead-letter topics not included).
    pub fn sink_topics(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .graph
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Sink { topic } if !topic.internal => Some(topic.name.clone()),
                _ => None,
            })
            .collect();
        set.into_iter().collect()
    }

    /// The `Record<K, V>` types (with their names) the sinks of external topic `topic` write.
    pub(crate) fn sink_record_types(&self, topic: &str) -> Vec<(std::any::TypeId, &'static str)> {
        let writes = |n: &crate::graph::NodeDef| matches!(&n.kind, NodeKind::Sink { topic: t } if !t.internal && t.name == topic);
        let sinks = self.graph.nodes.iter().enumerate().filter(|(_, n)| writes(n));
        sinks.filter_map(|(id, _)| self.graph.sink_records.get(&id).copied()).collect()
    }

    /// Names of the stores that are mirrored to changelog topics (`<app>-<store>-changelog`).
    pub fn changelogged_stores(&self) -> Vec<String> {
        self.graph
            .stores
            .values()
            .filter(|s| s.logging && !self.graph.global_stores.contains(&s.name))
            .map(|s| s.name.clone())
            .collect()
    }

    /// Decides partition counts for internal topics and checks co-partitioning.
    pub(crate) fn plan(
        &self,
        application_id: &str,
        external: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<Plan, TopologyError> {
        let mut counts: BTreeMap<TopicName, u32> = BTreeMap::new();
        let explicit: BTreeMap<&TopicName, Option<u32>> =
            self.graph.repartition_topics.iter().map(|(t, n)| (t, *n)).collect();
        for ids in self.subtopologies.iter().chain(&self.globals) {
            for t in self.source_topics_of(ids) {
                if t.internal {
                    if let Some(Some(n)) = explicit.get(&t) {
                        counts.insert(t, *n);
                    }
                } else {
                    let n = external(&t.name).ok_or_else(|| TopologyError::UnknownTopic(t.name.clone()))?;
                    counts.insert(t, n);
                }
            }
        }
        // A repartition topic gets the partition count of the topics its writer reads (fixed point, since
        // writers may read other repartition topics).
        for _ in 0..=self.subtopologies.len() {
            for ids in &self.subtopologies {
                let inputs = self.source_topics_of(ids);
                let Some(max) = inputs
                    .iter()
                    .map(|t| counts.get(t).copied())
                    .collect::<Option<Vec<u32>>>()
                    .and_then(|v| v.into_iter().max())
                else {
                    continue;
                };
                for &n in ids {
                    if let NodeKind::Sink { topic } = &self.graph.nodes[n].kind {
                        if topic.internal && !counts.contains_key(topic) {
                            counts.insert(topic.clone(), max);
                        }
                    }
                }
            }
        }
        // Co-partitioning: repartition topics without an explicit count follow the external topics.
        for group in &self.graph.copartition {
            let topics: Vec<TopicName> = self.source_topics_of(&group.sources);
            let external_max = topics.iter().filter(|t| !t.internal).filter_map(|t| counts.get(t)).max().copied();
            if let Some(n) = external_max {
                for t in topics.iter().filter(|t| t.internal && !matches!(explicit.get(t), Some(Some(_)))) {
                    counts.insert(t.clone(), n);
                }
            }
            let found: Vec<u32> = topics.iter().map(|t| counts.get(t).copied().unwrap_or(0)).collect();
            if found.windows(2).any(|w| w[0] != w[1]) {
                return Err(TopologyError::NotCoPartitioned {
                    node: group.node.clone(),
                    topics: topics.iter().map(|t| t.resolve(application_id)).collect(),
                    counts: found,
                });
            }
        }
        let mut tasks = Vec::new();
        for (s, ids) in self.subtopologies.iter().enumerate() {
            let n = self.source_topics_of(ids).iter().filter_map(|t| counts.get(t)).max().copied().unwrap_or(1);
            tasks.extend((0..n).map(|partition| TaskId { subtopology: s, partition }));
        }
        let partitions = counts.into_iter().map(|(t, n)| (t.resolve(application_id), n)).collect();
        Ok(Plan { partitions, tasks })
    }
}

/// A topology's shape, printed in Kafka Streams' `TopologyDescription` grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// Sub-topologies in order; global-store ones last.
    pub subtopologies: Vec<SubtopologyDescription>,
}

/// One sub-topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    /// Its number.
    pub id: usize,
    /// True for a global store's sub-topology (creates no tasks).
    pub global: bool,
    /// Its nodes: sources first, then in creation order.
    pub nodes: Vec<NodeDescription>,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    /// Node name.
    pub name: String,
    /// What it is.
    pub kind: NodeDescriptionKind,
    /// Parent node names.
    pub predecessors: Vec<String>,
    /// Child node names.
    pub successors: Vec<String>,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDescriptionKind {
    /// Reads topics.
    Source {
        /// The topics.
        topics: Vec<String>,
    },
    /// Processes records, possibly with stores.
    Processor {
        /// Stores it uses.
        stores: Vec<String>,
    },
    /// Writes a topic.
    Sink {
        /// The topic.
        topic: String,
    },
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        for (i, s) in self.subtopologies.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if s.global {
                writeln!(f, "   Sub-topology: {} for global store (will not generate tasks)", s.id)?;
            } else {
                writeln!(f, "   Sub-topology: {}", s.id)?;
            }
            for n in &s.nodes {
                match &n.kind {
                    NodeDescriptionKind::Source { topics } => {
                        writeln!(f, "    Source: {} (topics: [{}])", n.name, topics.join(", "))?
                    }
                    NodeDescriptionKind::Processor { stores } => {
                        writeln!(f, "    Processor: {} (stores: [{}])", n.name, stores.join(", "))?
                    }
                    NodeDescriptionKind::Sink { topic } => writeln!(f, "    Sink: {} (topic: {})", n.name, topic)?,
                }
                if !matches!(n.kind, NodeDescriptionKind::Sink { .. }) {
                    let succ = if n.successors.is_empty() { "none".to_string() } else { n.successors.join(", ") };
                    writeln!(f, "      --> {succ}")?;
                }
                if !matches!(n.kind, NodeDescriptionKind::Source { .. }) {
                    writeln!(f, "      <-- {}", n.predecessors.join(", "))?;
                }
            }
        }
        Ok(())
    }
}

fn ident(prefix: &str, name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{prefix}_{clean}")
}

impl TopologyDescription {
    /// The graph as a Mermaid flowchart: a box per sub-topology, topics as parallelograms, stores as
    /// cylinders.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        let mut topics = BTreeSet::new();
        let mut stores = BTreeSet::new();
        let mut edges = Vec::new();
        for s in &self.subtopologies {
            let title = if s.global {
                format!("Sub-topology {} (global store)", s.id)
            } else {
                format!("Sub-topology {}", s.id)
            };
            let _ = writeln!(out, "  subgraph sub{}[\"{title}\"]", s.id);
            for n in &s.nodes {
                let id = ident("n", &n.name);
                let _ = writeln!(out, "    {id}[\"{}\"]", n.name);
                match &n.kind {
                    NodeDescriptionKind::Source { topics: ts } => {
                        for t in ts {
                            topics.insert(t.clone());
                            edges.push(format!("  {} --> {id}", ident("t", t)));
                        }
                    }
                    NodeDescriptionKind::Sink { topic } => {
                        topics.insert(topic.clone());
                        edges.push(format!("  {id} --> {}", ident("t", topic)));
                    }
                    NodeDescriptionKind::Processor { stores: ss } => {
                        for st in ss {
                            stores.insert(st.clone());
                            edges.push(format!("  {id} -.- {}", ident("s", st)));
                        }
                    }
                }
                for succ in &n.successors {
                    edges.push(format!("  {id} --> {}", ident("n", succ)));
                }
            }
            out.push_str("  end\n");
        }
        for t in &topics {
            let _ = writeln!(out, "  {}[/\"{t}\"/]", ident("t", t));
        }
        for s in &stores {
            let _ = writeln!(out, "  {}[(\"{s}\")]", ident("s", s));
        }
        for e in edges {
            out.push_str(&e);
            out.push('\n');
        }
        out
    }

    /// The graph in Graphviz DOT: a cluster per sub-topology, topics as boxes, stores as cylinders.
    pub fn dot(&self) -> String {
        let mut out = String::from("digraph topology {\n  rankdir=TB;\n");
        let mut topics = BTreeSet::new();
        let mut stores = BTreeSet::new();
        let mut edges = Vec::new();
        for s in &self.subtopologies {
            let title = if s.global {
                format!("Sub-topology {} (global store)", s.id)
            } else {
                format!("Sub-topology {}", s.id)
            };
            let _ = writeln!(out, "  subgraph cluster_{} {{\n    label=\"{title}\";", s.id);
            for n in &s.nodes {
                let _ = writeln!(out, "    \"{}\" [shape=ellipse];", n.name);
                match &n.kind {
                    NodeDescriptionKind::Source { topics: ts } => {
                        for t in ts {
                            topics.insert(t.clone());
                            edges.push(format!("  \"topic:{t}\" -> \"{}\";", n.name));
                        }
                    }
                    NodeDescriptionKind::Sink { topic } => {
                        topics.insert(topic.clone());
                        edges.push(format!("  \"{}\" -> \"topic:{topic}\";", n.name));
                    }
                    NodeDescriptionKind::Processor { stores: ss } => {
                        for st in ss {
                            stores.insert(st.clone());
                            edges.push(format!("  \"{}\" -> \"store:{st}\" [style=dashed, dir=both];", n.name));
                        }
                    }
                }
                for succ in &n.successors {
                    edges.push(format!("  \"{}\" -> \"{succ}\";", n.name));
                }
            }
            out.push_str("  }\n");
        }
        for t in &topics {
            let _ = writeln!(out, "  \"topic:{t}\" [shape=box, label=\"{t}\"];");
        }
        for s in &stores {
            let _ = writeln!(out, "  \"store:{s}\" [shape=cylinder, label=\"{s}\"];");
        }
        for e in edges {
            out.push_str(&e);
            out.push('\n');
        }
        out.push_str("}\n");
        out
    }
}
