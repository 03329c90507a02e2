//! Sink: serializes typed records onto a topic through the task's record collector — or, for an
//! in-process repartition topic, sends them as they are to the reading task (see `task::channel`).

use std::cell::OnceCell;
use std::sync::Arc;

use crate::record::Record;
use crate::serdes::SerdeRef;
use crate::task::{Downstream, TaskCtx, TypedChannel};

pub(crate) struct Sink<K, V> {
    pub(crate) topic: Arc<str>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    /// A repartition sink: sends typed records when the runtime connected its topic in-process.
    pub(crate) repartition: bool,
    /// The topic's channel, looked up at the first record (the runtime connects topics before any is
    /// processed).
    pub(crate) channel: OnceCell<Option<TypedChannel<K, V>>>,
}

impl<K: 'static, V: 'static> Downstream<K, V> for Sink<K, V> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let channel = match self.repartition {
            true => self.channel.get_or_init(|| ctx.channel(&self.topic).map(TypedChannel::of)).as_ref(),
            false => None,
        };
        // Sent in-process to a topic of one partition, the key picks nothing: not encoded (as the
        // value is not).
        if let Some(channel) = channel.filter(|c| c.partitions() == 1) {
            return channel.send(0, r);
        }
        let key = match self.key_serde.try_serialize(&r.key) {
            Ok(key) => key,
            Err(e) => return ctx.undeliverable(&self.topic, None, e.context("key"), r.timestamp, r.headers),
        };
        if let Some(channel) = channel {
            return channel.send(channel.partition_of(key.as_deref()), r);
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
