//! Sink: serializes typed records onto a topic through the task's record collector.

use std::sync::Arc;

use crate::record::Record;
use crate::serdes::SerdeRef;
use crate::task::{Downstream, TaskCtx};

pub(crate) struct Sink<K, V> {
    pub(crate) topic: Arc<str>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    /// A repartition sink: may hand typed records over (see `TaskCtx::typed_handover`).
    pub(crate) repartition: bool,
    /// Its topic has one partition (known at the first typed hand-over).
    pub(crate) one_partition: std::cell::OnceCell<bool>,
}

impl<K: 'static, V: 'static> Downstream<K, V> for Sink<K, V> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        // Handed over in-process to a topic of one partition, the key picks nothing: not encoded (as
        // the value is not).
        let handover = self.repartition && ctx.typed_handover;
        if handover && *self.one_partition.get_or_init(|| ctx.partition_count(&self.topic) == 1) {
            return ctx.hand_over(&self.topic, None, r);
        }
        let key = match self.key_serde.try_serialize(&r.key) {
            Ok(key) => key,
            Err(e) => return ctx.undeliverable(&self.topic, None, e.context("key"), r.timestamp, r.headers),
        };
        if handover {
            return ctx.hand_over(&self.topic, key, r);
        }
        match self.value_serde.try_serialize(&r.value) {
            Ok(value) => {
                let json = self.value_serde.is_json();
                ctx.send_value(&self.topic, key, value, r.timestamp, r.headers, json)
            }
            Err(e) => ctx.undeliverable(&self.topic, key, e.context("value"), r.timestamp, r.headers),
        }
    }
}
