//! What operators see of their task while processing: time, the current record's origin, the record
//! collector, metrics, and the late-record and dead-letter handlers.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use serde::Serialize;

use super::channel::{Channel, TypedOutput};
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
    /// The in-process topics whose sinks send typed records straight to the reading tasks, by
    /// resolved name (see [`Channel`]): set by a runtime whose repartition topics stay in this
    /// process (embedded).
    pub(crate) channels: Rc<FxHashMap<Arc<str>, Rc<Channel>>>,
    /// The output topics whose sinks hand typed records to a function (see [`TypedOutput`]).
    pub(crate) typed_outputs: Rc<FxHashMap<Arc<str>, Rc<TypedOutput>>>,
    /// The clock of the task's persistent stores: its stream time (see `begin`).
    pub(crate) store_clock: Option<Rc<Cell<i64>>>,
    /// Wall-clock time and stream time when the last record was processed.
    pub(crate) last_input: Option<(i64, i64)>,
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
            channels: Rc::default(),
            typed_outputs: Rc::default(),
            store_clock: None,
            last_input: None,
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
        self.out.push(OutRecord { topic: topic.clone(), key, value, timestamp: ts, headers, json_value });
    }

    /// A record at `ts` is about to be processed: stream time moves to it if it is later (whether it
    /// did), the store clock follows, and the record is counted.
    pub(crate) fn begin(&mut self, ts: i64) -> bool {
        let advanced = ts > self.stream_time;
        if advanced {
            self.stream_time = ts;
        }
        if let Some(clock) = &self.store_clock {
            clock.set(self.stream_time);
        }
        self.metrics.processed += 1;
        self.last_input = Some((self.wall_clock, self.stream_time));
        advanced
    }

    /// The channel of in-process topic `topic`, if the runtime connected one (see `channels`).
    pub(crate) fn channel(&self, topic: &str) -> Option<Rc<Channel>> {
        self.channels.get(topic).cloned()
    }

    /// The typed output of topic `topic`, if it has one (see `typed_outputs`).
    pub(crate) fn typed_output(&self, topic: &str) -> Option<Rc<TypedOutput>> {
        self.typed_outputs.get(topic).cloned()
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
