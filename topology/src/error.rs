//! Error types, one enum per layer, and the crate's [`Result`] alias.

use thiserror::Error;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A record's bytes could not be turned into a typed value (or back).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    /// Creates a decode error with the given message.
    pub fn new(msg: impl Into<String>) -> Self {
        DecodeError(msg.into())
    }
    /// Prefixes the message with what was being decoded (`key`, `value`, …).
    pub fn context(self, what: &str) -> Self {
        DecodeError(format!("{what}: {}", self.0))
    }
}

/// Building a topology or planning its tasks failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopologyError {
    /// Two sides of a join or a grouping read topics with different partition counts.
    #[error("topics {topics:?} must be co-partitioned for `{node}` but have partition counts {counts:?}")]
    NotCoPartitioned {
        /// The node that needs co-partitioned inputs.
        node: String,
        /// The topics involved, in the same order as `counts`.
        topics: Vec<String>,
        /// Their partition counts.
        counts: Vec<u32>,
    },
    /// `StreamsBuilder::require_names` is on and a store or internal topic got a generated name.
    #[error("`{operation}` needs an explicit name (generated names are refused): {hint}")]
    GeneratedName {
        /// The operation that lacks a name.
        operation: String,
        /// How to give it one.
        hint: String,
    },
    /// The same name was used for two different nodes, stores or topics.
    #[error("duplicate name `{0}`")]
    DuplicateName(String),
    /// A processor refers to a store that was never added to the builder.
    #[error("processor `{processor}` uses store `{store}` which was not added with `add_state_store`")]
    UnknownStore {
        /// The processor.
        processor: String,
        /// The missing store.
        store: String,
    },
    /// A store was requested with key/value types other than the ones it was declared with.
    #[error("store `{0}` was requested with types that differ from its declaration")]
    StoreTypeMismatch(String),
    /// A topic needed by the plan has no known partition count.
    #[error("partition count of topic `{0}` is unknown")]
    UnknownTopic(String),
}

/// Any error the engine reports.
#[derive(Debug, Error)]
pub enum Error {
    /// See [`TopologyError`].
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A record failed to deserialize and the handler is set to fail.
    #[error("cannot deserialize record from {topic}[{partition}]@{offset}")]
    Deserialization {
        /// Source topic.
        topic: String,
        /// Source partition.
        partition: u32,
        /// Offset of the record.
        offset: u64,
        /// What went wrong.
        #[source]
        source: DecodeError,
    },
    /// State store failure.
    #[error("state store `{store}` failed: {message}")]
    State {
        /// The store.
        store: String,
        /// What went wrong.
        message: String,
    },
    /// I/O failure (files, state directories).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
