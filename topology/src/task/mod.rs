//! Tasks: one per (sub-topology, partition), the unit every runtime schedules.
//!
//! ```text
//!  Created ──compile──▶ Running ◀──────────────┐
//!                         │ enqueue(raw)        │ process_one(): pick the buffered record with the lowest
//!                         ▼                     │ timestamp, advance stream time, push it through the
//!                       (decode, DLQ) ──────────┘ typed operators, then fire due punctuations
//! ```
//! A task owns its source nodes (each a typed queue), its operators, its stores and a record collector
//! (`TaskCtx::out`) that the runtime drains into topics.

mod channel;
mod context;
mod handlers;
mod state_manager;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

pub(crate) use channel::{Channel, Queue, Ready, TypedChannel, TypedOutput, TypedOutputFn};
pub use context::TaskMetrics;
pub(crate) use context::{OutRecord, TaskCtx};
pub use handlers::{DeadLetter, DeserializationPolicy, LateRecord, LateRecords};
pub(crate) use state_manager::{write_atomically, StateManager};
pub use state_manager::{ChangelogFactory, RestoreStats, StateConfig};

use crate::graph::{BuildCtx, Graph};
use crate::record::{RawRecord, Record};
use crate::state::{ErrorSlot, StateStore};

/// A typed operator input.
pub(crate) trait Downstream<K, V> {
    fn push(&mut self, ctx: &mut TaskCtx, record: Record<K, V>);
}

/// A typed operator input shared by its parents.
pub(crate) type Handle<K, V> = Rc<RefCell<dyn Downstream<K, V>>>;

/// The children of a node: clones the record for all but the last child.
pub(crate) struct Forward<K, V> {
    children: Vec<Handle<K, V>>,
}

impl<K, V> Forward<K, V> {
    pub(crate) fn new(children: Vec<Handle<K, V>>) -> Self {
        Forward { children }
    }
}

impl<K: Clone, V: Clone> Forward<K, V> {
    pub(crate) fn push(&self, ctx: &mut TaskCtx, record: Record<K, V>) {
        if let Some((last, rest)) = self.children.split_last() {
            for c in rest {
                c.borrow_mut().push(ctx, record.clone());
            }
            last.borrow_mut().push(ctx, record);
        }
    }
    pub(crate) fn at(&self, i: usize) -> &Handle<K, V> {
        &self.children[i]
    }
    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }
}

/// Time-driven hooks of an operator.
pub(crate) trait Punctuator {
    /// Stream time moved forward (called after the record that moved it).
    fn stream_time_advanced(&mut self, _ctx: &mut TaskCtx) {}
    /// Wall-clock time moved forward.
    fn wall_clock_advanced(&mut self, _ctx: &mut TaskCtx) {}
    /// The task is committing: forward what was held back until now.
    fn commit(&mut self, _ctx: &mut TaskCtx) {}
    /// The task restarted at a committed stream time: everything due by then was handled before the
    /// commit, so only later work remains (nothing is emitted here).
    fn resume(&mut self, _ctx: &mut TaskCtx) {}
}

/// A source node: decodes raw records into its typed queue and feeds them to its children.
pub(crate) trait SourceNode {
    /// Decodes and buffers; a record that cannot be decoded goes to the dead-letter handler. Whether
    /// it was buffered.
    fn enqueue(&mut self, ctx: &mut TaskCtx, at: Position, raw: RawRecord) -> crate::Result<bool>;
    /// [`enqueue`](Self::enqueue) of a record that is only a value (no key, no timestamp, no headers),
    /// borrowed: decoded without a copy (a line of an input file).
    fn enqueue_value(&mut self, ctx: &mut TaskCtx, at: Position, value: &[u8]) -> crate::Result<bool>;
    /// Its queue (a [`Queue<K, V>`]), for the sinks of an in-process topic to fill (see [`Channel`]).
    fn queue(&self) -> Rc<dyn Any>;
    /// Buffers a typed `Record<K, V>` of an in-process input (see `RecordsInput`): its event time is
    /// extracted as a decoded record's would be; one whose time cannot be extracted goes to the
    /// dead-letter handler (encoded with the source's serdes). Whether it was buffered.
    fn enqueue_input(&mut self, ctx: &mut TaskCtx, at: Position, record: Box<dyn Any>) -> crate::Result<bool>;
    /// The `Record<K, V>` type this source reads (typed inputs are checked against it).
    fn record_type(&self) -> (std::any::TypeId, &'static str);
    /// Timestamp of the next buffered record.
    fn head_timestamp(&self) -> Option<i64>;
    /// Processes the next buffered record, first moving its task's time to it (`TaskCtx::begin`):
    /// `None` when it has none, else whether stream time advanced.
    fn process_next(&mut self, ctx: &mut TaskCtx) -> Option<bool>;
    /// Decodes a record that is only a value, borrowed (see [`enqueue_value`](Self::enqueue_value)),
    /// and processes it at once, without buffering it, as [`process_next`](Self::process_next) would:
    /// whether stream time advanced, `None` when it went to the dead-letter handler.
    fn process_value(&mut self, ctx: &mut TaskCtx, at: Position, value: &[u8]) -> crate::Result<Option<bool>>;
    /// [`enqueue_input`](Self::enqueue_input), then processes the record at once, as
    /// [`process_value`](Self::process_value) does.
    fn process_input(&mut self, ctx: &mut TaskCtx, at: Position, record: Box<dyn Any>) -> crate::Result<Option<bool>>;
    /// Number of buffered records.
    fn buffered(&self) -> usize;
}

/// Where a buffered record sits in the topic its source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) partition: u32,
    pub(crate) offset: u64,
}

/// Identifies a task: sub-topology and partition, shown as `0_3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    /// Sub-topology number.
    pub subtopology: usize,
    /// Partition number.
    pub partition: u32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// A source node of a task, with the topic it reads.
struct TaskSource {
    topic: Arc<str>,
    node: Box<dyn SourceNode>,
    /// Records buffered for `topic`, counted over every task that reads it (shared through the
    /// engine, see [`Task::share_queued`]), so a runtime asks whether an input was taken in O(1).
    queued: Rc<Cell<usize>>,
}

impl Drop for TaskSource {
    /// A task that goes away takes its buffered records out of the count.
    fn drop(&mut self) {
        self.queued.set(self.queued.get() - self.node.buffered());
    }
}

/// A compiled task.
pub(crate) struct Task {
    pub(crate) id: TaskId,
    pub(crate) ctx: TaskCtx,
    sources: Vec<TaskSource>,
    punctuators: Vec<Rc<RefCell<dyn Punctuator>>>,
    pub(crate) stores: Vec<Rc<RefCell<dyn StateStore>>>,
    pub(crate) store_handles: HashMap<String, Rc<dyn Any>>,
    /// Persistent state, when the runtime keeps state on disk (else stores are in memory).
    pub(crate) state: Option<StateManager>,
    /// The first store failure; the task stops with it.
    errors: ErrorSlot,
    /// Idle advance, ms: once no record has arrived for this long of wall-clock time, stream time
    /// moves on with the wall clock (see [`advance_wall_clock`](Self::advance_wall_clock)).
    pub(crate) idle_advance: Option<i64>,
}

impl Task {
    /// Compiles the nodes `node_ids` of `graph` into a task. `shared_stores` are the global stores.
    pub(crate) fn compile(
        graph: &Graph,
        node_ids: &[usize],
        id: TaskId,
        mut ctx: TaskCtx,
        shared_stores: &HashMap<String, Rc<dyn Any>>,
        mut state: Option<StateManager>,
    ) -> crate::Result<Task> {
        let dedup_keys = state.as_ref().and_then(StateManager::dedup_keys);
        let errors = ErrorSlot::default();
        let mut stores = Vec::new();
        let mut handles: HashMap<String, Rc<dyn Any>> = shared_stores.clone();
        for &n in node_ids {
            for s in &graph.nodes[n].stores {
                if handles.contains_key(s) {
                    continue;
                }
                let b = &graph.stores[s];
                let (typed, erased) = match state.as_mut() {
                    Some(sm) => sm.create(b, errors.clone())?,
                    None => (b.make)(),
                };
                handles.insert(s.clone(), typed);
                stores.push(erased);
            }
        }
        if let Some(sm) = &state {
            ctx.stream_time = sm.checkpointed_stream_time();
            ctx.store_clock = Some(sm.clock.clone());
        }
        let children = graph.children();
        let application_id = ctx.application_id.clone();
        let mut inputs = HashMap::new();
        let mut sources = Vec::new();
        let mut punctuators = Vec::new();
        let mut ids = node_ids.to_vec();
        ids.sort_unstable_by(|a, b| b.cmp(a)); // children before parents: a child's id is always larger
        for n in ids {
            let def = &graph.nodes[n];
            let mut b = BuildCtx {
                node: n,
                node_name: &def.name,
                application_id: &application_id,
                children: &children,
                inputs: &mut inputs,
                stores: &handles,
                sources: &mut sources,
                punctuators: &mut punctuators,
                dedup_keys,
            };
            let ports = (def.factory)(&mut b)?;
            inputs.insert(n, ports);
        }
        if ctx.stream_time != i64::MIN {
            for p in &punctuators {
                p.borrow_mut().resume(&mut ctx);
            }
        }
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        let sources = sources
            .into_iter()
            .map(|(t, node)| TaskSource { topic: Arc::from(t), node, queued: Rc::default() })
            .collect();
        Ok(Task { id, ctx, sources, punctuators, stores, store_handles: handles, state, errors, idle_advance: None })
    }

    /// The resolved topics this task reads.
    pub(crate) fn source_topics(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|s| &*s.topic)
    }

    /// Counts this task's buffered records of `topic` in `queued` (shared by the tasks reading it).
    pub(crate) fn share_queued(&mut self, topic: &str, queued: &Rc<Cell<usize>>) {
        for s in self.sources.iter_mut().filter(|s| &*s.topic == topic) {
            queued.set(queued.get() + s.node.buffered());
            s.queued.set(s.queued.get() - s.node.buffered());
            s.queued = queued.clone();
        }
    }

    /// The source reading `topic` (the engine delivers only topics a task reads).
    fn source_of<'a>(sources: &'a mut [TaskSource], id: TaskId, topic: &str) -> &'a mut TaskSource {
        if let [only] = sources {
            debug_assert_eq!(&*only.topic, topic, "task {id} reads one topic");
            return only;
        }
        sources
            .iter_mut()
            .find(|s| &*s.topic == topic)
            .unwrap_or_else(|| panic!("task {id} does not read topic `{topic}`"))
    }

    /// Hands one record of `topic` to its source (`buffer` says whether the source kept it) and counts
    /// it as queued if it did.
    fn buffer(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        buffer: impl FnOnce(&mut dyn SourceNode, &mut TaskCtx, Position) -> crate::Result<bool>,
    ) -> crate::Result<()> {
        let src = Self::source_of(&mut self.sources, self.id, topic);
        if buffer(src.node.as_mut(), &mut self.ctx, Position { partition, offset })? {
            src.queued.set(src.queued.get() + 1);
        }
        Ok(())
    }

    /// Decodes and buffers one record of `topic`.
    pub(crate) fn enqueue(&mut self, topic: &str, partition: u32, offset: u64, raw: RawRecord) -> crate::Result<()> {
        self.buffer(topic, partition, offset, |node, ctx, at| node.enqueue(ctx, at, raw))
    }

    /// Decodes and buffers one record of `topic` that is only a value (see `SourceNode::enqueue_value`).
    pub(crate) fn enqueue_value(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        value: &[u8],
    ) -> crate::Result<()> {
        self.buffer(topic, partition, offset, |node, ctx, at| node.enqueue_value(ctx, at, value))
    }

    /// Buffers a typed record of an in-process input of `topic` (see `SourceNode::enqueue_input`).
    pub(crate) fn enqueue_input(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        record: Box<dyn Any>,
    ) -> crate::Result<()> {
        self.buffer(topic, partition, offset, |node, ctx, at| node.enqueue_input(ctx, at, record))
    }

    /// The record type each source of `topic` in this task reads.
    pub(crate) fn source_record_type(&self, topic: &str) -> Option<(std::any::TypeId, &'static str)> {
        self.sources.iter().find(|s| &*s.topic == topic).map(|s| s.node.record_type())
    }

    /// The queue of the source reading `topic` (see `SourceNode::queue`) and its count of buffered
    /// records.
    pub(crate) fn source_queue(&self, topic: &str) -> (Rc<dyn Any>, Rc<Cell<usize>>) {
        let src = self.sources.iter().find(|s| &*s.topic == topic);
        let src = src.unwrap_or_else(|| panic!("task {} does not read topic `{topic}`", self.id));
        (src.node.queue(), src.queued.clone())
    }

    /// True when the task reads a single topic: it then processes its records in arrival order.
    pub(crate) fn reads_one_topic(&self) -> bool {
        self.sources.len() == 1
    }

    /// The timestamp of the record `process_one` would process next.
    pub(crate) fn head_timestamp(&self) -> Option<i64> {
        self.sources.iter().filter_map(|s| s.node.head_timestamp()).min()
    }

    /// Processes the buffered record with the lowest timestamp (ties: first source); false when idle.
    /// Stream time, the store clock and the metrics move first (see `TaskCtx::begin`), stream-time
    /// punctuation after; a store failure during processing stops the task with that error.
    pub(crate) fn process_one(&mut self) -> crate::Result<bool> {
        let i = match &self.sources[..] {
            [_] => 0,
            sources => {
                let mut best: Option<(i64, usize)> = None;
                for (i, s) in sources.iter().enumerate() {
                    if let Some(ts) = s.node.head_timestamp() {
                        if best.is_none_or(|(b, _)| ts < b) {
                            best = Some((ts, i));
                        }
                    }
                }
                let Some((_, i)) = best else { return Ok(false) };
                i
            }
        };
        let source = &mut self.sources[i];
        let Some(advanced) = source.node.process_next(&mut self.ctx) else { return Ok(false) };
        source.queued.set(source.queued.get() - 1);
        self.processed(advanced)?;
        Ok(true)
    }

    /// Processes one record of `topic` at once, without buffering it (`process`: the source's
    /// `process_value` or `process_input`): for a task that reads only `topic` and has nothing
    /// buffered, so that its records are still processed in arrival order.
    pub(crate) fn process_now(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        process: impl FnOnce(&mut dyn SourceNode, &mut TaskCtx, Position) -> crate::Result<Option<bool>>,
    ) -> crate::Result<()> {
        let src = Self::source_of(&mut self.sources, self.id, topic);
        debug_assert_eq!(src.node.buffered(), 0, "task {} processes in arrival order", self.id);
        match process(src.node.as_mut(), &mut self.ctx, Position { partition, offset })? {
            Some(advanced) => self.processed(advanced),
            None => Ok(()),
        }
    }

    /// After a record was processed: stream-time punctuation if it advanced, then any store failure.
    fn processed(&mut self, advanced: bool) -> crate::Result<()> {
        if advanced {
            self.stream_time_advanced();
        }
        self.check_errors()
    }

    fn stream_time_advanced(&mut self) {
        for p in &self.punctuators {
            p.borrow_mut().stream_time_advanced(&mut self.ctx);
        }
    }

    fn check_errors(&self) -> crate::Result<()> {
        match self.errors.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// First half of a commit (every task's, before any waits; see `Engine::commit`): held-back changes
    /// forwarded, caches flushed into the stores (changelog records sent, not yet waited for).
    pub(crate) fn commit_prepare(&mut self) -> crate::Result<()> {
        for p in &self.punctuators {
            p.borrow_mut().commit(&mut self.ctx);
        }
        if self.state.is_some() {
            StateManager::flush_stores(&self.stores)?;
        }
        self.check_errors()
    }

    /// Second half: changelogs flushed, checkpoint written.
    pub(crate) fn commit_finish(&mut self) -> crate::Result<()> {
        if let Some(sm) = self.state.as_mut() {
            sm.finish_commit(self.ctx.stream_time, false)?;
        }
        self.check_errors()
    }

    /// After the runtime's commit record: rewrites the changelogs that are due (see
    /// `StateManager::compact_due`); whether any was.
    pub(crate) fn compact_changelogs(&mut self) -> crate::Result<bool> {
        match self.state.as_mut() {
            Some(sm) => sm.compact_due(self.ctx.stream_time),
            None => Ok(false),
        }
    }

    /// Commits and marks the state as cleanly closed.
    pub(crate) fn close(&mut self) -> crate::Result<()> {
        for p in &self.punctuators {
            p.borrow_mut().commit(&mut self.ctx);
        }
        if let Some(sm) = self.state.as_mut() {
            sm.commit(&self.stores, self.ctx.stream_time, true)?;
        }
        self.check_errors()
    }

    /// End of input: stream time jumps to the end of time, so every window closes and every final
    /// result is emitted (a replay of finite input becomes a complete batch computation).
    pub(crate) fn final_flush(&mut self) {
        self.ctx.stream_time = i64::MAX;
        self.stream_time_advanced();
    }

    /// Sets wall-clock time and fires wall-clock punctuations that are due.
    ///
    /// With an idle advance, a task that has had no record for that long of wall-clock time moves its
    /// stream time on by the wall-clock time since its last record (like Flink's idleness: windows of
    /// a quiet partition still close). Stream time never goes back, and a record arriving later that is
    /// now behind it is late.
    pub(crate) fn advance_wall_clock(&mut self, now: i64) {
        self.ctx.wall_clock = self.ctx.wall_clock.max(now);
        if let (Some(idle), Some((wall, stream))) = (self.idle_advance, self.ctx.last_input) {
            let quiet = self.ctx.wall_clock - wall;
            let target = stream.saturating_add(quiet);
            if quiet >= idle && target > self.ctx.stream_time && self.ctx.stream_time != i64::MAX {
                self.ctx.stream_time = target;
                if let Some(sm) = &self.state {
                    sm.clock.set(target);
                }
                self.stream_time_advanced();
            }
        }
        for p in &self.punctuators {
            p.borrow_mut().wall_clock_advanced(&mut self.ctx);
        }
    }

    /// Takes the records produced since the last call.
    pub(crate) fn take_output(&mut self) -> Vec<OutRecord> {
        std::mem::take(&mut self.ctx.out)
    }
}
