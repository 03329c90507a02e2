//! Typed records a sink sends on without encoding them.
//!
//! In-process repartition topics ([`Channel`]): a repartition sink puts its typed records straight
//! into the source queue of the task that reads their partition — no encoding, no box, no routing
//! per record.
//!
//! ```text
//!   task 0_p ── Sink ──send(partition by key)──▶ queue of task 1_0 ─┐
//!                                            └─▶ queue of task 1_1 ─┴─▶ ready: the engine runs them next
//! ```
//! The engine connects a topic this way when its records stay in this process and one task per
//! partition reads it (see `Engine::connect_repartitions`); otherwise the sink encodes as for any topic.
//!
//! Typed outputs ([`TypedOutput`], see `RecordsOutput::typed`): an output topic's sinks hand their
//! records to a function of the application as they are.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use super::{Position, TaskId};
use crate::record::Record;
use crate::runtime::partitioner::partition_for;
use crate::runtime::TypedFn;

/// A source's buffered records, shared with the channel that fills it.
pub(crate) type Queue<K, V> = Rc<RefCell<VecDeque<(Record<K, V>, Position)>>>;

/// The tasks that records were sent to and that take them at once: the engine runs them after the
/// task that sent (see `Engine::process_task`).
pub(crate) type Ready = Rc<RefCell<Vec<TaskId>>>;

/// The reading side of one in-process topic, untyped (the engine builds it; each sink takes its
/// typed view, [`TypedChannel`]).
pub(crate) struct Channel {
    pub(crate) topic: Arc<str>,
    /// Per partition: the reading task, its source queue (a `Queue<K, V>`) and whether it takes
    /// records at once (it reads only this topic, so in arrival order; else the scheduler orders its
    /// topics by time).
    pub(crate) readers: Vec<(TaskId, Rc<dyn Any>, bool)>,
    /// The next offset per partition.
    pub(crate) offsets: Vec<Cell<u64>>,
    /// The partition a record without a key went to last.
    pub(crate) round_robin: Cell<u32>,
    /// Records of the topic buffered, not processed yet (shared with the reading tasks).
    pub(crate) queued: Rc<Cell<usize>>,
    pub(crate) ready: Ready,
}

/// A sink's typed view of a [`Channel`].
pub(crate) struct TypedChannel<K, V> {
    channel: Rc<Channel>,
    queues: Vec<Queue<K, V>>,
}

impl<K: 'static, V: 'static> TypedChannel<K, V> {
    pub(crate) fn of(channel: Rc<Channel>) -> Self {
        let queues = channel
            .readers
            .iter()
            .map(|(_, q, _)| {
                q.clone().downcast().unwrap_or_else(|_| {
                    panic!("the source of `{}` reads another record type than its sink writes", channel.topic)
                })
            })
            .collect();
        TypedChannel { channel, queues }
    }

    pub(crate) fn partitions(&self) -> u32 {
        self.queues.len() as u32
    }

    /// The partition of a record with this encoded key, as the engine places one: by the key's hash,
    /// round robin without a key.
    pub(crate) fn partition_of(&self, key: Option<&[u8]>) -> u32 {
        let n = self.partitions();
        match key {
            Some(k) => partition_for(k, n),
            None => {
                let rr = &self.channel.round_robin;
                rr.set((rr.get() + 1) % n);
                rr.get()
            }
        }
    }

    /// Appends `record` to `partition`: into its reader's queue, marking the reader ready when it
    /// takes records at once and had none.
    pub(crate) fn send(&self, partition: u32, record: Record<K, V>) {
        let ch = &*self.channel;
        let p = partition as usize;
        let offset = ch.offsets[p].get();
        ch.offsets[p].set(offset + 1);
        let mut queue = self.queues[p].borrow_mut();
        let (reader, _, at_once) = &ch.readers[p];
        if *at_once && queue.is_empty() {
            ch.ready.borrow_mut().push(*reader);
        }
        queue.push_back((record, Position { partition, offset }));
        ch.queued.set(ch.queued.get() + 1);
    }
}

/// An output topic whose records go to a function in this process as they are (see
/// `RecordsOutput::typed`), and how many went.
pub(crate) struct TypedOutput {
    pub(crate) topic: Arc<str>,
    /// A `TypedFn<K, V>`.
    pub(crate) f: Arc<dyn Any + Send + Sync>,
    pub(crate) written: Cell<u64>,
}

/// A sink's typed view of a [`TypedOutput`].
pub(crate) struct TypedOutputFn<K, V> {
    output: Rc<TypedOutput>,
    f: Arc<TypedFn<K, V>>,
}

impl<K: 'static, V: 'static> TypedOutputFn<K, V> {
    pub(crate) fn of(output: Rc<TypedOutput>) -> Self {
        let f = output.f.clone().downcast().unwrap_or_else(|_| {
            panic!("the typed output of `{}` takes another record type than its sink writes", output.topic)
        });
        TypedOutputFn { output, f }
    }

    pub(crate) fn send(&self, record: Record<K, V>) {
        self.output.written.set(self.output.written.get() + 1);
        (self.f.0)(record)
    }
}
