//! Runtimes that execute a [`Topology`](crate::Topology). All share the same task code; today:
//! the deterministic [`TestDriver`], the embedded runtime ([`run_embedded`]) and the Kafka runtime
//! ([`run_kafka`]).

mod embedded;
mod engine;
mod in_process;
mod kafka;
mod kafka_changelog;
mod kafka_topics;
pub(crate) mod partitioner;
mod test_driver;

/// Wall-clock time, epoch ms.
/// Folds a run's figures into the metrics at a commit (both runtimes): the tasks' own, records in and
/// out per topic, open and restoring tasks, Redis outages.
pub(crate) fn observe_run(
    m: &crate::metrics::AppMetrics,
    engine: &engine::Engine,
    summary: &RunSummary,
    restoring: usize,
    redis: Option<&crate::sink::redis::RedisSink>,
) {
    engine.observe(m);
    m.observe_io(&summary.records_in, &summary.records_out);
    m.set_tasks(engine.tasks.len(), restoring);
    if let Some(sink) = redis {
        m.observe_redis_outages(sink.metrics().outages);
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub use embedded::{
    run_embedded, EmbeddedConfig, Input, InputFormat, Output, Progress, ProgressFn, RedisMapper, RedisOutput,
    RunSummary,
};
pub(crate) use in_process::TypedFn;
pub use in_process::{RecordsInput, RecordsOutput};
pub use kafka::{run_kafka, KafkaConfig};
pub use kafka_changelog::KafkaChangelog;
pub use kafka_topics::{prepare_topics, TopicSetup};
pub use test_driver::{TestDriver, TestDriverBuilder, TestInputTopic, TestOutputTopic, TestRecord};
