//! Policies for records that cannot be processed normally: late records and undecodable records.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::record::Headers;

/// A record that arrived after its window closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateRecord {
    /// The node that refused it.
    pub node: String,
    /// Why it was refused.
    pub reason: String,
    /// Its event time.
    pub timestamp: i64,
    /// The task's stream time when it arrived.
    pub stream_time: i64,
    /// Source topic of the record being processed.
    pub topic: String,
    /// Source partition.
    pub partition: u32,
    /// Source offset.
    pub offset: u64,
    /// The key, as JSON.
    pub key: serde_json::Value,
    /// The value, as JSON.
    pub value: serde_json::Value,
}

/// Where late records go besides the per-node counter.
#[derive(Clone, Default)]
pub enum LateRecords {
    /// Only counted (default).
    #[default]
    Count,
    /// Counted and written to this topic as JSON [`LateRecord`]s.
    Topic(String),
    /// Counted and handed to a callback.
    Callback(Arc<dyn Fn(&LateRecord) + Send + Sync>),
}

impl LateRecords {
    pub(crate) fn topic(&self) -> Option<&str> {
        match self {
            LateRecords::Topic(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Debug for LateRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LateRecords::Count => f.write_str("Count"),
            LateRecords::Topic(t) => write!(f, "Topic({t:?})"),
            LateRecords::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// What happens to a record whose key, value or timestamp cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeserializationPolicy {
    /// Written unchanged (raw key and value) to a dead-letter topic with the error and origin in headers
    /// (`dlq.error`, `dlq.topic`, `dlq.partition`, `dlq.offset`), counted, and processing continues.
    /// `None` means the topic `<application-id>-dlq`.
    DeadLetter {
        /// Dead-letter topic.
        topic: Option<String>,
    },
    /// Processing stops with [`Error::Deserialization`](crate::Error::Deserialization).
    Fail,
}

impl Default for DeserializationPolicy {
    fn default() -> Self {
        DeserializationPolicy::DeadLetter { topic: None }
    }
}

impl DeserializationPolicy {
    pub(crate) fn topic(&self, application_id: &str) -> String {
        match self {
            DeserializationPolicy::DeadLetter { topic: Some(t) } => t.clone(),
            _ => format!("{application_id}-dlq"),
        }
    }
}

/// A dead-lettered record as read back from the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Raw key.
    pub key: Option<Vec<u8>>,
    /// Raw value.
    pub value: Option<Vec<u8>>,
    /// The decode error.
    pub error: String,
    /// Where the record came from.
    pub topic: String,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// For a record the app produced but could not encode: the topic it was for (the other fields then
    /// name the input record being processed).
    pub destination: Option<String>,
}

impl DeadLetter {
    /// Reads the dead-letter headers back; `None` if they are missing.
    pub fn from_parts(key: Option<Vec<u8>>, value: Option<Vec<u8>>, headers: &Headers) -> Option<Self> {
        Some(DeadLetter {
            key,
            value,
            error: headers.last_str("dlq.error")?.to_string(),
            topic: headers.last_str("dlq.topic")?.to_string(),
            partition: headers.last_str("dlq.partition")?.parse().ok()?,
            offset: headers.last_str("dlq.offset")?.parse().ok()?,
            destination: headers.last_str("dlq.destination").map(str::to_string),
        })
    }
}
