//! Topics of the embedded runtime that stay in this process: typed input made here (a generator, a
//! collection), whose records go to their topic's source as they are, never encoded nor parsed, like
//! Flink's data-generator sources; and output handed to a function, like Flink's sink functions or
//! Kafka Streams' `foreach`.

use std::any::{Any, TypeId};
use std::sync::Arc;

use crate::record::{RawRecord, Record};
use crate::serdes::SerdeRef;

/// A typed record on its way to a source.
pub(crate) type AnyRecord = Box<dyn Any>;
type MakeRecords = dyn Fn() -> Box<dyn Iterator<Item = AnyRecord>> + Send + Sync;
type KeyBytes = dyn Fn(&dyn Any) -> Option<Vec<u8>> + Send + Sync;

/// The records of an input topic, made in this process: a function that makes an iterator of
/// `Record<K, V>`, called once per run. The topic's source must read `K` and `V` (checked when the run
/// starts); its timestamp extractor, if any, sees each record's own timestamp as the previous one.
///
/// A run that continues a committed one skips the records it already consumed, so a deterministic
/// iterator (a seeded generator, a collection) resumes exactly where the last commit left it. The key
/// serde places records on partitions as the topic's bytes would be placed (when it has more than one).
#[derive(Clone)]
pub struct RecordsInput {
    make: Arc<MakeRecords>,
    key_bytes: Arc<KeyBytes>,
    clone: fn(&dyn Any) -> AnyRecord,
    record_type: TypeId,
    type_name: &'static str,
}

impl RecordsInput {
    /// Records of `make()`'s iterator, placed on partitions by their key encoded with `key_serde`.
    pub fn new<K, V, I>(key_serde: SerdeRef<K>, make: impl Fn() -> I + Send + Sync + 'static) -> RecordsInput
    where
        K: Clone + 'static,
        V: Clone + 'static,
        I: Iterator<Item = Record<K, V>> + 'static,
    {
        fn clone_record<K: Clone + 'static, V: Clone + 'static>(r: &dyn Any) -> AnyRecord {
            Box::new(r.downcast_ref::<Record<K, V>>().expect("a typed input makes one record type").clone())
        }
        RecordsInput {
            make: Arc::new(move || Box::new(make().map(|r| Box::new(r) as AnyRecord))),
            key_bytes: Arc::new(move |r| {
                let r = r.downcast_ref::<Record<K, V>>().expect("a typed input makes one record type");
                key_serde.serialize(&r.key)
            }),
            clone: clone_record::<K, V>,
            record_type: TypeId::of::<Record<K, V>>(),
            type_name: std::any::type_name::<Record<K, V>>(),
        }
    }

    /// A fresh iterator over the records (type-erased).
    pub(crate) fn records(&self) -> Box<dyn Iterator<Item = AnyRecord>> {
        (self.make)()
    }

    /// The record's key as the topic's bytes would carry it (to pick its partition).
    pub(crate) fn key_bytes(&self, record: &AnyRecord) -> Option<Vec<u8>> {
        (self.key_bytes)(record.as_ref())
    }

    /// A copy of a record, for a topic that more than one sub-topology reads.
    pub(crate) fn clone_record(&self, record: &AnyRecord) -> AnyRecord {
        (self.clone)(record.as_ref())
    }

    /// The `Record<K, V>` type made, and its name.
    pub(crate) fn record_type(&self) -> (TypeId, &'static str) {
        (self.record_type, self.type_name)
    }
}

impl std::fmt::Debug for RecordsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordsInput<{}>", self.type_name)
    }
}

/// Two inputs are the same when they are one input (cloned).
impl PartialEq for RecordsInput {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.make, &other.make)
    }
}

impl Eq for RecordsInput {}

/// An output topic's records handed to a function in this process, in the order the tasks produce
/// them, as soon as they are produced (at-least-once, like stdout: they are not part of commits, so a
/// run continuing a crashed one may hand over again what was produced after its last commit).
///
/// Either as the topic's bytes (its serdes' encoding, [`new`](Self::new)) or as the typed records
/// the topic's sinks write, never encoded ([`typed`](Self::typed)).
#[derive(Clone)]
pub struct RecordsOutput(OutputFn);

#[derive(Clone)]
enum OutputFn {
    Bytes(Arc<dyn Fn(&RawRecord) + Send + Sync>),
    /// A [`TypedFn<K, V>`] and the `Record<K, V>` type it takes.
    Typed(Arc<dyn Any + Send + Sync>, TypeId, &'static str),
}

/// The function of a typed output.
pub(crate) struct TypedFn<K, V>(pub(crate) Box<dyn Fn(Record<K, V>) + Send + Sync>);

impl RecordsOutput {
    /// Hands every record of the topic to `f` as the topic's bytes.
    pub fn new(f: impl Fn(&RawRecord) + Send + Sync + 'static) -> RecordsOutput {
        RecordsOutput(OutputFn::Bytes(Arc::new(f)))
    }

    /// Hands every record of the topic to `f` as the typed record its sinks write, without encoding
    /// it (as Flink's sink functions, or its blackhole sink, get rows). Every sink of the topic must
    /// write `Record<K, V>` (checked when the run starts); the topic's serdes are not used, and a Redis
    /// mapping does not see its records (it sees bytes).
    pub fn typed<K: 'static, V: 'static>(f: impl Fn(Record<K, V>) + Send + Sync + 'static) -> RecordsOutput {
        let f: Arc<dyn Any + Send + Sync> = Arc::new(TypedFn::<K, V>(Box::new(f)));
        RecordsOutput(OutputFn::Typed(f, TypeId::of::<Record<K, V>>(), std::any::type_name::<Record<K, V>>()))
    }

    /// Hands `record` over as bytes; a typed output gets records only from its sinks.
    pub(crate) fn send(&self, record: &RawRecord) {
        match &self.0 {
            OutputFn::Bytes(f) => f(record),
            OutputFn::Typed(..) => unreachable!("a typed output is written by its sinks only (checked at start)"),
        }
    }

    /// A typed output's function (a `TypedFn<K, V>`) and the `Record<K, V>` type it takes, with its
    /// name.
    pub(crate) fn typed_fn(&self) -> Option<(Arc<dyn Any + Send + Sync>, TypeId, &'static str)> {
        match &self.0 {
            OutputFn::Bytes(_) => None,
            OutputFn::Typed(f, t, name) => Some((f.clone(), *t, name)),
        }
    }
}

impl std::fmt::Debug for RecordsOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            OutputFn::Bytes(_) => f.write_str("RecordsOutput(..)"),
            OutputFn::Typed(_, _, name) => write!(f, "RecordsOutput<{name}>"),
        }
    }
}

/// Two outputs are the same when they are one output (cloned).
impl PartialEq for RecordsOutput {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (OutputFn::Bytes(a), OutputFn::Bytes(b)) => Arc::ptr_eq(a, b),
            (OutputFn::Typed(a, ..), OutputFn::Typed(b, ..)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for RecordsOutput {}
