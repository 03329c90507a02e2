//! What operators see of their task while processing: time, the current record's origin, the record
//! collector, metrics, and the late-record and dead-letter handlers.

use std::any::Any;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use serde::Serialize;

use super::handlers::{DeserializationPolicy, LateRecord, LateRecords};
use super::TaskId;
use crate::error::{DecodeError, Error};
use crate::record::{Headers, RawRecord, Record, RecordMetadata};

/// A record produced by a task, before the runtime picks its partition.
#[derive(Debug)]
pub(crate) struct OutRecord {
    pub(crate) topic: Arc<str>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) timestamp: i64,
    pub(crate) headers: Headers,
    /// The value is one compact JSON text (its serde says so, see `Serde::is_json`).
    pub(crate) json_value: bool,
    /// The typed record itself, instead of its value bytes (see [`TaskCtx::typed_handover`]).
    pub(crate) typed: Option<Handover>,
}

/// A typed `Record<K, V>` passed to the task that reads it in the same process, as is.
pub(crate) struct Handover(pub(crate) Box<dyn Any>);

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handover(..)")
    }
}

/// Counters of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records taken from input queues and processed.
    pub processed: u64,
    /// Records that failed to deserialize and went to the dead-letter topic.
    pub dead_lettered: u64,
    /// Late records per node (window already closed).
    pub late: BTreeMap<String, u64>,
}

pub(crate) struct TaskCtx {
    pub(crate) application_id: String,
    pub(crate) task: TaskId,
    /// Highest timestamp this task has processed; `i64::MIN` before the first record.
    pub(crate) stream_time: i64,
    pub(crate) wall_clock: i64,
    pub(crate) meta: RecordMetadata,
    pub(crate) out: Vec<OutRecord>,
    pub(crate) metrics: TaskMetrics,
    pub(crate) late: LateRecords,
    pub(crate) deserialization: DeserializationPolicy,
    /// Repartition sinks hand their typed records to the reading task instead of encoding them: set
    /// by a runtime whose repartition topics are in-process logs read by one task each (embedded).
    /// The key is still encoded (it picks the partition); the value is never encoded or decoded.
    pub(crate) typed_handover: bool,
    /// Partitions per topic (the default, then the exceptions), for typed hand-overs: a key that
    /// picks no partition need not be encoded.
    pub(crate) partitions: Rc<(u32, FxHashMap<String, u32>)>,
    dlq_topic: Arc<str>,
    late_topic: Option<Arc<str>>,
}

impl TaskCtx {
    pub(crate) fn new(
        application_id: &str,
        task: TaskId,
        late: LateRecords,
        deserialization: DeserializationPolicy,
        wall_clock: i64,
    ) -> Self {
        let dlq_topic = deserialization.topic(application_id).into();
        let late_topic = late.topic().map(Arc::from);
        TaskCtx {
            application_id: application_id.to_string(),
            task,
            stream_time: i64::MIN,
            wall_clock,
            meta: RecordMetadata::default(),
            out: Vec::new(),
            metrics: TaskMetrics::default(),
            late,
            deserialization,
            typed_handover: false,
            partitions: Rc::new((1, FxHashMap::default())),
            dlq_topic,
            late_topic,
        }
    }

    pub(crate) fn send(
        &mut self,
        topic: &Arc<str>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        ts: i64,
        headers: Headers,
    ) {
        self.send_value(topic, key, value, ts, headers, false);
    }

    /// [`send`](Self::send), saying whether the value is one compact JSON text.
    pub(crate) fn send_value(
        &mut self,
        topic: &Arc<str>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        ts: i64,
        headers: Headers,
        json_value: bool,
    ) {
        self.out.push(OutRecord { topic: topic.clone(), key, value, timestamp: ts, headers, json_value, typed: None });
    }

    /// How many partitions `topic` has.
    pub(crate) fn partition_count(&self, topic: &str) -> u32 {
        self.partitions.1.get(topic).copied().unwrap_or(self.partitions.0)
    }

    /// Sends `record` to `topic` as is (see `typed_handover`); `key` picks the partition.
    pub(crate) fn hand_over<K: 'static, V: 'static>(
        &mut self,
        topic: &Arc<str>,
        key: Option<Vec<u8>>,
        record: Record<K, V>,
    ) {
        self.out.push(OutRecord {
            topic: topic.clone(),
            key,
            value: None,
            timestamp: record.timestamp,
            headers: Headers::default(),
            json_value: false,
            typed: Some(Handover(Box::new(record))),
        });
    }

    /// Counts a late record against `node` and routes it to the late-records output.
    pub(crate) fn late<K: Serialize, V: Serialize>(&mut self, node: &str, reason: &str, record: &Record<K, V>) {
        *self.metrics.late.entry(node.to_string()).or_default() += 1;
        if matches!(self.late, LateRecords::Count) {
            return;
        }
        let late = LateRecord {
            node: node.to_string(),
            reason: reason.to_string(),
            timestamp: record.timestamp,
            stream_time: self.stream_time,
            topic: self.meta.topic.to_string(),
            partition: self.meta.partition,
            offset: self.meta.offset,
            key: serde_json::to_value(&record.key).unwrap_or(serde_json::Value::Null),
            value: serde_json::to_value(&record.value).unwrap_or(serde_json::Value::Null),
        };
        match (&self.late, &self.late_topic) {
            (LateRecords::Callback(f), _) => f(&late),
            (LateRecords::Topic(_), Some(topic)) => {
                let topic = topic.clone();
                let key = serde_json::to_vec(&late.key).ok();
                let value = serde_json::to_vec(&late).ok();
                self.send(&topic, key, value, record.timestamp, Headers::default());
            }
            _ => {}
        }
    }

    /// A record that cannot be encoded for `topic` (its serde refused the key or value): dead-lettered
    /// with what could be encoded, the error, the input record it came from and the destination in
    /// headers (`dlq.error`, `dlq.topic`, `dlq.partition`, `dlq.offset`, `dlq.destination`), and
    /// counted; processing goes on. Under either deserialization policy: it
    /// is the app's own record, and stopping would only stop at it again on restart.
    pub(crate) fn undeliverable(
        &mut self,
        topic: &Arc<str>,
        key: Option<Vec<u8>>,
        error: DecodeError,
        timestamp: i64,
        mut headers: Headers,
    ) {
        self.metrics.dead_lettered += 1;
        headers.add("dlq.error", error.0.into_bytes());
        headers.add("dlq.topic", self.meta.topic.as_bytes());
        headers.add("dlq.partition", self.meta.partition.to_string().into_bytes());
        headers.add("dlq.offset", self.meta.offset.to_string().into_bytes());
        headers.add("dlq.destination", topic.as_bytes());
        let dlq = self.dlq_topic.clone();
        self.send(&dlq, key, None, timestamp, headers);
    }

    /// Applies the deserialization policy to a record that could not be decoded.
    pub(crate) fn dead_letter(
        &mut self,
        meta: &RecordMetadata,
        raw: RawRecord,
        error: DecodeError,
    ) -> crate::Result<()> {
        match self.deserialization {
            DeserializationPolicy::Fail => Err(Error::Deserialization {
                topic: meta.topic.to_string(),
                partition: meta.partition,
                offset: meta.offset,
                source: error,
            }),
            DeserializationPolicy::DeadLetter { .. } => {
                self.metrics.dead_lettered += 1;
                let mut headers = raw.headers;
                headers.add("dlq.error", error.0.into_bytes());
                headers.add("dlq.topic", meta.topic.as_bytes());
                headers.add("dlq.partition", meta.partition.to_string().into_bytes());
                headers.add("dlq.offset", meta.offset.to_string().into_bytes());
                let topic = self.dlq_topic.clone();
                self.send(&topic, raw.key, raw.value, raw.timestamp, headers);
                Ok(())
            }
        }
    }
}
