//! Preparing a Kafka cluster for a topology at start: source topics must exist (their partition counts
//! decide the tasks, and co-partitioning is checked against them, with an error naming the topics);
//! missing internal topics are created with their final partition counts (no broker needs
//! CreatePartitions later): repartition topics as the plan says, changelog topics compacted, one
//! partition per task of the store's sub-topology. Output topics (sinks, dead letters, late records)
//! that do not exist are created too, with as many partitions as the widest source topic.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;

use crate::error::{Error, Result};
use crate::topology::Topology;

/// What [`prepare_topics`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicSetup {
    /// Partitions of every topic the application reads, writes internally or logs to.
    pub partitions: BTreeMap<String, u32>,
    /// Internal topics created now (existing ones are left as they are).
    pub created: Vec<String>,
}

/// An error talking to the cluster: `what` failed because of `e`.
pub(crate) fn cluster(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("{what}: {e}")))
}

/// Checks the source topics, plans the tasks and creates missing internal topics.
pub fn prepare_topics(topology: &Topology, application_id: &str, client: &ClientConfig) -> Result<TopicSetup> {
    let admin: AdminClient<DefaultClientContext> =
        client.create().map_err(|e| cluster("cannot create an admin client", e))?;
    // Short: an unreachable cluster is reported (and retried by the runtime) rather than waited for here.
    let timeout = Duration::from_secs(3);
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for topic in topology.source_topics() {
        let md =
            admin.inner().fetch_metadata(Some(&topic), timeout).map_err(|e| cluster("cannot reach the cluster", e))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if n == 0 {
            return Err(cluster(
                &format!("source topic `{topic}` does not exist"),
                "create it before starting the application",
            ));
        }
        counts.insert(topic, n as u32);
    }
    let plan = topology.plan(application_id, &|t| counts.get(t).copied())?;
    // Changelogs: one partition per task of the sub-topology that owns the store.
    let mut wanted: Vec<NewTopicSpec> = Vec::new();
    for (topic, n) in &plan.partitions {
        if !counts.contains_key(topic) {
            wanted.push(NewTopicSpec { name: topic.clone(), partitions: *n, compact: false });
        }
    }
    let logged = topology.changelogged_stores();
    for (s, nodes) in topology.subtopologies.iter().enumerate() {
        let tasks = plan.tasks.iter().filter(|t| t.subtopology == s).count() as u32;
        let mut stores: Vec<&String> = nodes
            .iter()
            .flat_map(|&n| topology.graph.nodes[n].stores.iter())
            .filter(|st| logged.contains(st))
            .collect();
        stores.sort();
        stores.dedup();
        for st in stores {
            wanted.push(NewTopicSpec {
                name: format!("{application_id}-{st}-changelog"),
                partitions: tasks,
                compact: true,
            });
        }
    }
    let mut outputs = topology.sink_topics();
    if matches!(topology.deserialization, crate::task::DeserializationPolicy::DeadLetter { .. }) {
        outputs.push(topology.deserialization.topic(application_id));
    }
    outputs.extend(topology.late.topic().map(str::to_string));
    let widest = counts.values().copied().max().unwrap_or(1);
    for topic in outputs {
        if counts.contains_key(&topic) || wanted.iter().any(|w| w.name == topic) {
            continue;
        }
        let md =
            admin.inner().fetch_metadata(Some(&topic), timeout).map_err(|e| cluster("cannot reach the cluster", e))?;
        let exists = md.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            wanted.push(NewTopicSpec { name: topic, partitions: widest, compact: false });
        }
    }
    let mut setup = TopicSetup { partitions: plan.partitions.clone(), created: Vec::new() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| cluster("runtime", e))?;
    for spec in wanted {
        setup.partitions.insert(spec.name.clone(), spec.partitions);
        let mut topic = NewTopic::new(&spec.name, spec.partitions as i32, TopicReplication::Fixed(1));
        if spec.compact {
            topic = topic.set("cleanup.policy", "compact");
        }
        let results = rt
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .map_err(|e| cluster("cannot create topics", e))?;
        for r in results {
            match r {
                Ok(name) => setup.created.push(name),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(cluster(&format!("cannot create topic `{name}`"), code)),
            }
        }
    }
    Ok(setup)
}

struct NewTopicSpec {
    name: String,
    partitions: u32,
    compact: bool,
}
