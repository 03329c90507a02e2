//! Records as operators see them: typed key, value, event time and headers.

/// Kafka record headers, in order; duplicates allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, Vec<u8>)>);

impl Headers {
    /// Adds a header.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push((key.into(), value.into()));
    }
    /// The last value of header `key`.
    pub fn last(&self, key: &str) -> Option<&[u8]> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }
    /// The last value of header `key` as text.
    pub fn last_str(&self, key: &str) -> Option<&str> {
        self.last(key).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A typed record: what flows between the operators of a sub-topology (never serialized there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time, epoch milliseconds.
    pub timestamp: i64,
    /// Headers carried along.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record { key, value, timestamp, headers: Headers::default() }
    }
    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record { key, value: self.value, timestamp: self.timestamp, headers: self.headers }
    }
    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }
    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// A record as it sits in a topic partition: bytes, not yet typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Key bytes (`None` = null key).
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` = tombstone).
    pub value: Option<Vec<u8>>,
    /// Timestamp, epoch milliseconds.
    pub timestamp: i64,
    /// Headers.
    pub headers: Headers,
}

/// Where the record being processed came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Source topic (resolved name).
    pub topic: std::sync::Arc<str>,
    /// Source partition.
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
}

/// The before/after of a table row, as KTable operators pass it on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change<V> {
    /// The new value (`None` = deleted).
    pub new: Option<V>,
    /// The previous value, when known.
    pub old: Option<V>,
}
