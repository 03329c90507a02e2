//! Kafka Streams–style stream processing for Rust: a typed DSL that compiles into a self-describing graph
//! and then into per-partition tasks, with event time, windows, joins and state stores.
//!
//! # A word count on the test driver
//!
//! ```
//! use topology::{Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder, TestDriver};
//!
//! let mut builder = StreamsBuilder::new();
//! builder
//!     .stream("lines", Consumed::with(Serdes::unit(), Serdes::string()))
//!     .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
//!     .select_key(|_, word| word.clone())
//!     .group_by_key(Grouped::as_("words"))
//!     .count(Materialized::as_("counts"))
//!     .to_stream()
//!     .to("word-counts", Produced::with(Serdes::string(), Serdes::optional(Serdes::json::<u64>())));
//! let topology = builder.build()?;
//!
//! // Two partitions per topic: the re-keyed words really travel through a repartition topic.
//! let driver = TestDriver::builder(topology).partitions(2).build()?;
//! let lines = driver.input_topic("lines", Serdes::unit(), Serdes::string());
//! let counts = driver.output_topic("word-counts", Serdes::string(), Serdes::optional(Serdes::json::<u64>()));
//! lines.pipe((), "the cat and the hat".into(), 1_000);
//! let mut last = std::collections::BTreeMap::new();
//! for (word, n) in counts.read_key_values() {
//!     last.insert(word, n.unwrap());
//! }
//! assert_eq!(last["the"], 2);
//! assert_eq!(driver.kv_get::<String, u64>("counts", &"hat".into()), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # A tour
//!
//! - [`StreamsBuilder`], [`KStream`], [`KTable`], grouped and windowed streams, and the config values
//!   [`Consumed`], [`Produced`], [`Materialized`], [`Grouped`], [`Named`], [`StreamJoined`]: the DSL
//!   (module `dsl`).
//! - [`TimeWindows`], [`SlidingWindows`], [`SessionWindows`], [`JoinWindows`], [`Windowed`],
//!   [`EmitStrategy`]: windows and when their results are emitted. A window closes when stream time (the
//!   highest timestamp a task has seen) reaches its end plus grace; later records are *late*: counted per
//!   node ([`TaskMetrics::late`]) and routed by [`LateRecords`].
//! - [`Processor`], [`ProcessorContext`], [`ProcessorInit`]: the processor API with typed stores and
//!   stream-time or wall-clock punctuations.
//! - [`KeyValueStore`], [`WindowStore`], [`SessionStore`], [`Stores`]: state.
//! - [`Topology`] and [`TopologyDescription`]: the built graph, printed like Kafka Streams'
//!   `TopologyDescription`, or as Mermaid / DOT.
//! - [`TestDriver`]: runs the real tasks deterministically over in-memory topics with N partitions.
//! - [`Serdes`] and [`Serde`]: bytes on topics. Records that fail to decode follow the
//!   [`DeserializationPolicy`] (dead-letter and continue by default), never a panic.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![doc(test(attr(deny(warnings))))]

pub mod app;
mod derive_support;
mod dsl;
mod error;
mod graph;
mod log;
pub mod metrics;
mod ops;
mod processor;
mod record;
mod runtime;
mod serdes;
pub mod sink;
mod state;
mod task;
pub mod testing;
mod topology;
mod window;

pub use derive_support::{
    agg, format_timestamp, parse_timestamp, Aggregator, Application, DeclaredProcessor, EventTime, Numeric, RecordKey,
    Subtractable, TopicRecord,
};
pub use dsl::{
    BranchedKStream, Consumed, GlobalKTable, Grouped, KGroupedStream, KGroupedTable, KStream, KTable, Materialized,
    Named, Produced, Repartitioned, SessionWindowedKStream, StreamJoined, StreamsBuilder, TimeWindowedKStream,
    WindowedBy,
};
pub use error::{DecodeError, Error, Result, TopologyError};
pub use processor::{Processor, ProcessorContext, ProcessorInit, Punctuation, PunctuationType};
pub use record::{Change, Headers, RawRecord, Record, RecordMetadata};
pub use runtime::{
    prepare_topics, run_embedded, run_kafka, EmbeddedConfig, Input, InputFormat, KafkaChangelog, KafkaConfig, Output,
    Progress, ProgressFn, RecordsInput, RecordsOutput, RedisMapper, RedisOutput, RunSummary, TestDriver,
    TestDriverBuilder, TestInputTopic, TestOutputTopic, TestRecord, TopicSetup,
};
pub use serdes::{Serde, SerdeRef, Serdes};
pub use state::{
    Changelog, Data, EntriesFn, EntrySink, KeyValueStore, KeyValueStoreHandle, LogChangelog, ReplayFn, SessionStore,
    SessionStoreHandle, StateStore, StoreBuilder, StoreKind, Stores, WindowStore, WindowStoreHandle,
};
pub use task::{
    ChangelogFactory, DeadLetter, DeserializationPolicy, LateRecord, LateRecords, RestoreStats, StateConfig, TaskId,
    TaskMetrics,
};
pub use topology::{NodeDescription, NodeDescriptionKind, SubtopologyDescription, Topology, TopologyDescription};
pub use topology_derive::{processor, topology, Aggregate, Record};
pub use window::{EmitStrategy, JoinWindows, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};

/// What generated code refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::derive_support::numeric;
    pub use serde;
    pub use serde_json;
}
