//! Sink: serializes typed records onto a topic through the task's record collector — or sends them
//! on as they are: to the reading task of an in-process repartition topic, or to a typed output
//! (see `task::channel`).

use std::cell::OnceCell;
use std::sync::Arc;

use crate::record::Record;
use crate::serdes::SerdeRef;
use crate::task::{Downstream, TaskCtx, TypedChannel, TypedOutputFn};

pub(crate) struct Sink<K, V> {
    pub(crate) topic: Arc<str>,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<V>,
    /// A repartition sink: sends typed records when the runtime connected its topic in-process.
    pub(crate) repartition: bool,
    /// Where its records go without encoding, looked up at the first record (the runtime connects
    /// topics before any is processed).
    pub(crate) direct: OnceCell<Direct<K, V>>,
}

/// Where a sink's records go as they are.
pub(crate) enum Direct<K, V> {
    /// Nowhere: they are encoded.
    No,
    Channel(TypedChannel<K, V>),
    Output(TypedOutputFn<K, V>),
}

impl<K: 'static, V: 'static> Sink<K, V> {
    fn direct(&self, ctx: &TaskCtx) -> &Direct<K, V> {
        self.direct.get_or_init(|| match self.repartition {
            true => ctx.channel(&self.topic).map_or(Direct::No, |c| Direct::Channel(TypedChannel::of(c))),
            false => ctx.typed_output(&self.topic).map_or(Direct::No, |o| Direct::Output(TypedOutputFn::of(o))),
        })
    }
}

impl<K: 'static, V: 'static> Downstream<K, V> for Sink<K, V> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let channel = match self.direct(ctx) {
            Direct::No => None,
            Direct::Output(output) => return output.send(r),
            // Sent in-process to a topic of one partition, the key picks nothing: not encoded (as the
            // value is not).
            Direct::Channel(channel) if channel.partitions() == 1 => return channel.send(0, r),
            Direct::Channel(channel) => Some(channel),
        };
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
