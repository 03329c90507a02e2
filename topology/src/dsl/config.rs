//! Config values passed to DSL operations: how to read, write, name and materialize.

use std::fmt;
use std::sync::Arc;

use crate::ops::source::TimestampExtractor;
use crate::serdes::SerdeRef;

/// How a source topic is read: serdes, event-time extraction, node name.
///
/// ```
/// use topology::{Consumed, Serdes};
/// let _consumed = Consumed::with(Serdes::string(), Serdes::json::<serde_json::Value>())
///     .with_timestamp_extractor(|_k, v, _ts| v["ts"].as_i64().ok_or("no ts".to_string()));
/// ```
pub struct Consumed<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Consumed<K, V> {
    /// Reads keys and values with these serdes; event time is the record's own timestamp.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Consumed { key_serde, value_serde, extractor: None, name: None }
    }
    /// Takes event time from the record (`Err` sends the record to the dead-letter handler).
    pub fn with_timestamp_extractor(
        mut self,
        f: impl Fn(&K, &V, i64) -> Result<i64, String> + Send + Sync + 'static,
    ) -> Self {
        self.extractor = Some(Arc::new(f));
        self
    }
    /// Names the source node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K, V> fmt::Debug for Consumed<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumed").field("name", &self.name).field("extractor", &self.extractor.is_some()).finish()
    }
}

/// How records are written to a topic.
pub struct Produced<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K, V> Produced<K, V> {
    /// Writes keys and values with these serdes.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Produced { key_serde, value_serde, name: None }
    }
    /// Names the sink node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K, V> fmt::Debug for Produced<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Produced").field("name", &self.name).finish()
    }
}

/// Names and configures the store behind a stateful operation (its changelog is `<app>-<name>-changelog`).
#[derive(Debug, Clone, Default)]
pub struct Materialized {
    pub(crate) name: Option<String>,
    pub(crate) logging: bool,
    pub(crate) retention: Option<i64>,
}

impl Materialized {
    /// A store with a generated name (refused under `require_names`).
    pub fn new() -> Self {
        Materialized { name: None, logging: true, retention: None }
    }
    /// A store called `name`; the operation's node gets the same name.
    pub fn as_(name: impl Into<String>) -> Self {
        Materialized { name: Some(name.into()), logging: true, retention: None }
    }
    /// No changelog.
    pub fn without_logging(mut self) -> Self {
        self.logging = false;
        self
    }
    /// Keeps windows this long (ms); at least window size + grace.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = Some(retention.as_millis() as i64);
        self
    }
}

/// Names the repartition topic of a grouping (`<app>-<name>-repartition`).
#[derive(Debug, Clone, Default)]
pub struct Grouped {
    pub(crate) name: Option<String>,
}

impl Grouped {
    /// Generated name (derived from the store's name).
    pub fn new() -> Self {
        Grouped { name: None }
    }
    /// Repartition topic `<app>-<name>-repartition`.
    pub fn as_(name: impl Into<String>) -> Self {
        Grouped { name: Some(name.into()) }
    }
}

/// Names a processor node.
#[derive(Debug, Clone, Default)]
pub struct Named {
    pub(crate) name: Option<String>,
}

impl Named {
    /// A generated name.
    pub fn new() -> Self {
        Named { name: None }
    }
    /// The node is called `name`.
    pub fn as_(name: impl Into<String>) -> Self {
        Named { name: Some(name.into()) }
    }
}

/// An explicit repartition: topic name and partition count.
#[derive(Debug, Clone, Default)]
pub struct Repartitioned {
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<u32>,
}

impl Repartitioned {
    /// Generated name, partition count of the upstream topics.
    pub fn new() -> Self {
        Repartitioned::default()
    }
    /// Topic `<app>-<name>-repartition`.
    pub fn as_(name: impl Into<String>) -> Self {
        Repartitioned { name: Some(name.into()), partitions: None }
    }
    /// Sets the partition count.
    pub fn with_partitions(mut self, n: u32) -> Self {
        self.partitions = Some(n);
        self
    }
}

/// Names a stream–stream join: node `name`, stores `name-this-join-store` and `name-other-join-store`.
#[derive(Debug, Clone, Default)]
pub struct StreamJoined {
    pub(crate) name: Option<String>,
}

impl StreamJoined {
    /// Generated names.
    pub fn new() -> Self {
        StreamJoined { name: None }
    }
    /// Names the join and its stores.
    pub fn as_(name: impl Into<String>) -> Self {
        StreamJoined { name: Some(name.into()) }
    }
}
