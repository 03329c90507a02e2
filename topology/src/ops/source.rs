//! Source: decodes raw records of one topic partition into a typed queue and extracts event time.

use std::any::{Any, TypeId};
use std::rc::Rc;
use std::sync::Arc;

use crate::record::{RawRecord, Record, RecordMetadata};
use crate::serdes::SerdeRef;
use crate::task::{Forward, Position, Queue, SourceNode, TaskCtx};
use crate::DecodeError;

/// Extracts a record's event time from the typed key and value (and the record's own timestamp).
pub(crate) type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> Result<i64, String> + Send + Sync>;

pub(crate) struct Source<K, V> {
    /// The topic it reads (resolved): the records' metadata.
    pub(crate) topic: Arc<str>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
    /// Shared with the sinks of an in-process topic (see `task::channel`).
    pub(crate) queue: Queue<K, V>,
    pub(crate) forward: Forward<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> Source<K, V> {
    /// Decodes key and value and extracts the event time (`timestamp`: the record's own); an error
    /// says which part failed.
    fn decode(&self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64) -> Result<(K, V, i64), DecodeError> {
        let key = self.key_serde.deserialize(key).map_err(|e| e.context("key"))?;
        let value = self.value_serde.deserialize(value).map_err(|e| e.context("value"))?;
        let timestamp = match &self.extractor {
            None => timestamp,
            Some(f) => f(&key, &value, timestamp).map_err(|e| DecodeError::new(format!("timestamp: {e}")))?,
        };
        Ok((key, value, timestamp))
    }

    fn meta(&self, at: Position) -> RecordMetadata {
        RecordMetadata { topic: self.topic.clone(), partition: at.partition, offset: at.offset }
    }

    /// The record of a line that is only a value; `None` when it could not be decoded and the line
    /// went to the dead-letter handler.
    fn value_record(&self, ctx: &mut TaskCtx, at: Position, value: &[u8]) -> crate::Result<Option<Record<K, V>>> {
        match self.decode(None, Some(value), 0) {
            Ok((key, value, timestamp)) => Ok(Some(Record { key, value, timestamp, headers: Default::default() })),
            Err(e) => {
                let raw =
                    RawRecord { key: None, value: Some(value.to_vec()), timestamp: 0, headers: Default::default() };
                ctx.dead_letter(&self.meta(at), raw, e).map(|()| None)
            }
        }
    }

    /// A typed input's record with its event time extracted; `None` when that failed and the record
    /// went to the dead-letter handler (encoded with the source's serdes, as far as they can).
    fn typed_input(
        &self,
        ctx: &mut TaskCtx,
        at: Position,
        record: Box<dyn Any>,
    ) -> crate::Result<Option<Record<K, V>>> {
        let Ok(record) = record.downcast::<Record<K, V>>() else {
            panic!("a typed input of `{}` holds another record type than its source reads", self.topic)
        };
        let mut record = *record;
        let Some(f) = &self.extractor else { return Ok(Some(record)) };
        match f(&record.key, &record.value, record.timestamp) {
            Ok(ts) => {
                record.timestamp = ts;
                Ok(Some(record))
            }
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
                ctx.dead_letter(&self.meta(at), raw, DecodeError::new(error)).map(|()| None)
            }
        }
    }

    /// Moves the task's time to `record` and forwards it; whether stream time advanced.
    fn forward_now(&mut self, ctx: &mut TaskCtx, record: Record<K, V>, at: Position) -> bool {
        let advanced = ctx.begin(record.timestamp);
        // The topic is this source's own: shared, not cloned per record.
        if !Arc::ptr_eq(&ctx.meta.topic, &self.topic) {
            ctx.meta.topic = self.topic.clone();
        }
        (ctx.meta.partition, ctx.meta.offset) = (at.partition, at.offset);
        self.forward.push(ctx, record);
        advanced
    }
}

impl<K: Clone + 'static, V: Clone + 'static> SourceNode for Source<K, V> {
    fn enqueue(&mut self, ctx: &mut TaskCtx, at: Position, raw: RawRecord) -> crate::Result<bool> {
        match self.decode(raw.key.as_deref(), raw.value.as_deref(), raw.timestamp) {
            Ok((key, value, timestamp)) => {
                self.queue.borrow_mut().push_back((Record { key, value, timestamp, headers: raw.headers }, at));
                Ok(true)
            }
            Err(e) => ctx.dead_letter(&self.meta(at), raw, e).map(|()| false),
        }
    }

    fn enqueue_value(&mut self, ctx: &mut TaskCtx, at: Position, value: &[u8]) -> crate::Result<bool> {
        let Some(record) = self.value_record(ctx, at, value)? else { return Ok(false) };
        self.queue.borrow_mut().push_back((record, at));
        Ok(true)
    }

    fn queue(&self) -> Rc<dyn Any> {
        self.queue.clone()
    }

    fn enqueue_input(&mut self, ctx: &mut TaskCtx, at: Position, record: Box<dyn Any>) -> crate::Result<bool> {
        let Some(record) = self.typed_input(ctx, at, record)? else { return Ok(false) };
        self.queue.borrow_mut().push_back((record, at));
        Ok(true)
    }

    fn process_input(&mut self, ctx: &mut TaskCtx, at: Position, record: Box<dyn Any>) -> crate::Result<Option<bool>> {
        let Some(record) = self.typed_input(ctx, at, record)? else { return Ok(None) };
        Ok(Some(self.forward_now(ctx, record, at)))
    }

    fn record_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<Record<K, V>>(), std::any::type_name::<Record<K, V>>())
    }

    fn head_timestamp(&self) -> Option<i64> {
        self.queue.borrow().front().map(|(r, _)| r.timestamp)
    }

    fn buffered(&self) -> usize {
        self.queue.borrow().len()
    }

    fn process_next(&mut self, ctx: &mut TaskCtx) -> Option<bool> {
        let (record, at) = self.queue.borrow_mut().pop_front()?;
        Some(self.forward_now(ctx, record, at))
    }

    fn process_value(&mut self, ctx: &mut TaskCtx, at: Position, value: &[u8]) -> crate::Result<Option<bool>> {
        let Some(record) = self.value_record(ctx, at, value)? else { return Ok(None) };
        Ok(Some(self.forward_now(ctx, record, at)))
    }
}
