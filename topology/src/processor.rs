//! The processor API: write an operator by hand, with typed state stores and punctuations.
//!
//! Implement [`Processor`] (only `process` is required), add its stores with
//! [`StreamsBuilder::add_state_store`](crate::StreamsBuilder::add_state_store), and attach it with
//! [`KStream::process`](crate::KStream::process), naming the stores it uses. A processor can only open the
//! stores it named; [`ProcessorInit::schedule`] sets up stream-time or wall-clock punctuations.

use std::any::Any;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use crate::error::TopologyError;
use crate::record::{Record, RecordMetadata};
use crate::state::{Data, KeyValueStoreHandle, SessionStoreHandle, WindowStoreHandle};
use crate::task::{Forward, TaskCtx, TaskId};

/// A hand-written operator: receives records of `(K, V)` and forwards records of its output types.
///
/// ```
/// use topology::{Consumed, Named, Processor, ProcessorContext, Produced, Record, Serdes, StreamsBuilder, TestDriver};
///
/// /// Forwards the length of each value.
/// struct Len;
/// impl Processor<String, String> for Len {
///     type KeyOut = String;
///     type ValueOut = usize;
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, usize>, r: Record<String, String>) {
///         let n = r.value.len();
///         ctx.forward(r.with_value(n));
///     }
/// }
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream("words", Consumed::with(Serdes::string(), Serdes::string()))
///     .process(|| Len, Named::as_("length"), &[])
///     .to("lengths", Produced::with(Serdes::string(), Serdes::json()));
/// let driver = TestDriver::new(builder.build().unwrap());
/// driver.input_topic("words", Serdes::string(), Serdes::string()).pipe("k".into(), "hello".into(), 0);
/// let out = driver.output_topic("lengths", Serdes::string(), Serdes::json::<usize>());
/// assert_eq!(out.read_values(), vec![5]);
/// ```
pub trait Processor<K, V>: 'static {
    /// Key type of forwarded records.
    type KeyOut: Clone + 'static;
    /// Value type of forwarded records.
    type ValueOut: Clone + 'static;

    /// Opens stores and schedules punctuations; called once per task before any record.
    fn init(&mut self, _ctx: &mut ProcessorInit<'_>) -> Result<(), TopologyError> {
        Ok(())
    }

    /// Handles one record.
    fn process(&mut self, ctx: &mut ProcessorContext<'_, Self::KeyOut, Self::ValueOut>, record: Record<K, V>);

    /// Handles a punctuation scheduled in [`init`](Self::init).
    fn punctuate(&mut self, _ctx: &mut ProcessorContext<'_, Self::KeyOut, Self::ValueOut>, _p: Punctuation) {}
}

/// Which clock drives a punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// Stream time (event time): fires as records move the task's stream time past each tick.
    StreamTime,
    /// Wall-clock time of the runtime (the test driver's is advanced by hand).
    WallClockTime,
}

/// A punctuation firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Punctuation {
    /// Which clock.
    pub kind: PunctuationType,
    /// The index of the schedule, in the order [`ProcessorInit::schedule`] was called.
    pub schedule: usize,
    /// The tick that is due (a multiple of the interval; the latest one when several passed at once).
    pub time: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub(crate) kind: PunctuationType,
    pub(crate) interval: i64,
    pub(crate) next: Option<i64>,
}

impl Schedule {
    /// The tick due at `now`, if any, and moves to the next one. Ticks are multiples of the interval.
    pub(crate) fn due(&mut self, now: i64) -> Option<i64> {
        if now == i64::MIN {
            return None;
        }
        let tick = now - now.rem_euclid(self.interval);
        match self.next {
            // Saturating: the final flush moves stream time to the end of time.
            None => {
                self.next = Some(tick.saturating_add(self.interval));
                None
            }
            Some(next) if now >= next => {
                self.next = Some(tick.saturating_add(self.interval));
                Some(tick)
            }
            Some(_) => None,
        }
    }
}

/// What a processor can do in [`Processor::init`].
pub struct ProcessorInit<'a> {
    pub(crate) node: &'a str,
    pub(crate) declared: &'a [String],
    pub(crate) stores: &'a HashMap<String, Rc<dyn Any>>,
    pub(crate) schedules: Vec<Schedule>,
}

impl std::fmt::Debug for ProcessorInit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorInit").field("node", &self.node).field("stores", &self.declared).finish()
    }
}

impl ProcessorInit<'_> {
    fn open<H: Clone + 'static>(&self, name: &str) -> Result<H, TopologyError> {
        if !self.declared.iter().any(|s| s == name) {
            return Err(TopologyError::UnknownStore { processor: self.node.to_string(), store: name.to_string() });
        }
        let any = self
            .stores
            .get(name)
            .ok_or_else(|| TopologyError::UnknownStore { processor: self.node.to_string(), store: name.to_string() })?;
        any.downcast_ref::<H>().cloned().ok_or_else(|| TopologyError::StoreTypeMismatch(name.to_string()))
    }
    /// Opens a declared key-value store.
    pub fn key_value_store<K: Data, V: Data>(&self, name: &str) -> Result<KeyValueStoreHandle<K, V>, TopologyError> {
        self.open(name)
    }
    /// Opens a declared window store.
    pub fn window_store<K: Data, V: Data>(&self, name: &str) -> Result<WindowStoreHandle<K, V>, TopologyError> {
        self.open(name)
    }
    /// Opens a declared session store.
    pub fn session_store<K: Data, V: Data>(&self, name: &str) -> Result<SessionStoreHandle<K, V>, TopologyError> {
        self.open(name)
    }
    /// Schedules a punctuation every `interval`; returns its index (see [`Punctuation::schedule`]).
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> usize {
        let interval = i64::try_from(interval.as_millis()).expect("interval fits in i64 ms").max(1);
        self.schedules.push(Schedule { kind, interval, next: None });
        self.schedules.len() - 1
    }
}

/// What a processor can do while processing: forward records, read time and the record's origin.
pub struct ProcessorContext<'a, K, V> {
    pub(crate) ctx: &'a mut TaskCtx,
    pub(crate) node: &'a str,
    pub(crate) forward: &'a Forward<K, V>,
}

impl<K, V> std::fmt::Debug for ProcessorContext<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorContext").field("task", &self.ctx.task).finish()
    }
}

impl<K: Clone, V: Clone> ProcessorContext<'_, K, V> {
    /// Sends a record to every child.
    pub fn forward(&mut self, record: Record<K, V>) {
        self.forward.push(self.ctx, record);
    }
    /// The task's stream time (`i64::MIN` before the first record).
    pub fn stream_time(&self) -> i64 {
        self.ctx.stream_time
    }
    /// The runtime's wall-clock time, epoch ms.
    pub fn wall_clock_time(&self) -> i64 {
        self.ctx.wall_clock
    }
    /// Where the record being processed came from.
    pub fn record_metadata(&self) -> &RecordMetadata {
        &self.ctx.meta
    }
    /// The task this processor instance runs in.
    pub fn task_id(&self) -> TaskId {
        self.ctx.task
    }
    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.ctx.application_id
    }
    /// Refuses `record` as late: counts it against this processor (`metrics().late`) and routes it as the
    /// topology's [`LateRecords`](crate::LateRecords) policy says, with `reason` — as the DSL's windowed
    /// operators do with records for closed windows.
    pub fn late<K2: serde::Serialize, V2: serde::Serialize>(&mut self, reason: &str, record: &Record<K2, V2>) {
        self.ctx.late(self.node, reason, record);
    }
}
