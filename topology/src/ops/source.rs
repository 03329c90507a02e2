//! Source: decodes raw records of one topic partition into a typed queue and extracts event time.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::sync::Arc;

use crate::record::{RawRecord, Record, RecordMetadata};
use crate::serdes::SerdeRef;
use crate::task::{Forward, SourceNode, TaskCtx};

/// Extracts a record's event time from the typed key and value (and the record's own timestamp).
pub(crate) type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> Result<i64, String> + Send + Sync>;

pub(crate) struct Source<K, V> {
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) queue: VecDeque<(Record<K, V>, RecordMetadata)>,
    pub(crate) forward: Forward<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> SourceNode for Source<K, V> {
    fn enqueue(&mut self, ctx: &mut TaskCtx, meta: RecordMetadata, raw: RawRecord) -> crate::Result<bool> {
        let key = match self.key_serde.deserialize(raw.key.as_deref()) {
            Ok(k) => k,
            Err(e) => return ctx.dead_letter(&meta, raw, e.context("key")).map(|()| false),
        };
        let value = match self.value_serde.deserialize(raw.value.as_deref()) {
            Ok(v) => v,
            Err(e) => return ctx.dead_letter(&meta, raw, e.context("value")).map(|()| false),
        };
        let timestamp = match &self.extractor {
            None => raw.timestamp,
            Some(f) => match f(&key, &value, raw.timestamp) {
                Ok(ts) => ts,
                Err(e) => {
                    let error = crate::DecodeError::new(format!("timestamp: {e}"));
                    return ctx.dead_letter(&meta, raw, error).map(|()| false);
                }
            },
        };
        let record = Record { key, value, timestamp, headers: raw.headers };
        self.queue.push_back((record, meta));
        Ok(true)
    }

    fn enqueue_typed(&mut self, meta: RecordMetadata, record: Box<dyn Any>) {
        let record = record.downcast::<Record<K, V>>().unwrap_or_else(|_| {
            panic!("a record handed over to `{}` has another type than its source reads", meta.topic)
        });
        self.queue.push_back((*record, meta));
    }

    fn enqueue_input(&mut self, ctx: &mut TaskCtx, meta: RecordMetadata, record: Box<dyn Any>) -> crate::Result<bool> {
        let Ok(record) = record.downcast::<Record<K, V>>() else {
            panic!("a typed input of `{}` holds another record type than its source reads", meta.topic)
        };
        let mut record = *record;
        if let Some(f) = &self.extractor {
            match f(&record.key, &record.value, record.timestamp) {
                Ok(ts) => record.timestamp = ts,
                Err(e) => {
                    let mut error = format!("timestamp: {e}");
                    let mut encoded = |part: &str, bytes: Result<Option<Vec<u8>>, crate::DecodeError>| {
                        bytes.unwrap_or_else(|e| {
                            error.push_str(&format!("; {part} not encodable: {e}"));
                            None
                        })
                    };
                    let key = encoded("key", self.key_serde.try_serialize(&record.key));
                    let value = encoded("value", self.value_serde.try_serialize(&record.value));
                    let raw = RawRecord { key, value, timestamp: record.timestamp, headers: record.headers };
                    return ctx.dead_letter(&meta, raw, crate::DecodeError::new(error)).map(|()| false);
                }
            }
        }
        self.queue.push_back((record, meta));
        Ok(true)
    }

    fn record_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<Record<K, V>>(), std::any::type_name::<Record<K, V>>())
    }

    fn head_timestamp(&self) -> Option<i64> {
        self.queue.front().map(|(r, _)| r.timestamp)
    }

    fn buffered(&self) -> usize {
        self.queue.len()
    }

    fn process_next(&mut self, ctx: &mut TaskCtx) {
        if let Some((record, meta)) = self.queue.pop_front() {
            ctx.meta = meta;
            self.forward.push(ctx, record);
        }
    }
}
