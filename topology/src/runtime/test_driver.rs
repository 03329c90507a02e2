//! The deterministic test driver: the real tasks over in-memory topics with N partitions each.
//!
//! Like Kafka Streams' `TopologyTestDriver`, but every topic — repartition topics included — has as many
//! partitions as you configure, and one task runs per (sub-topology, partition), so tests see what
//! repartitioning and co-partitioning really do. Each piped record is processed to completion (through
//! every sub-topology it reaches) before `pipe` returns.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::engine::{Engine, EngineConfig};
use crate::error::Error;
use crate::record::{Headers, RawRecord};
use crate::serdes::{encode, SerdeRef};
use crate::state::{Data, KeyValueStoreHandle, SessionStoreHandle, WindowStoreHandle};
use crate::task::{DeadLetter, RestoreStats, StateConfig, TaskMetrics};
use crate::topology::Topology;
use crate::window::Window;

/// Configures a [`TestDriver`].
#[derive(Debug)]
pub struct TestDriverBuilder {
    topology: Topology,
    application_id: String,
    default_partitions: u32,
    partitions: HashMap<String, u32>,
    wall_clock: i64,
    state: Option<StateConfig>,
    keep_records: bool,
    idle_advance: Option<Duration>,
}

impl TestDriverBuilder {
    /// `false`: topics count records but keep none, so a long benchmark or soak runs in bounded memory
    /// (output topics then read as empty; see [`TestDriver::records_written`]). Default `true`.
    pub fn keep_records(mut self, keep: bool) -> Self {
        self.keep_records = keep;
        self
    }

    /// Keeps state in sled stores under a state directory, behind write-back caches and changelogs, as a
    /// production runtime does (default: in-memory stores). A driver built again on the same directory
    /// restores every task's state.
    pub fn state(mut self, config: StateConfig) -> Self {
        self.state = Some(config);
        self
    }
    /// The application id (prefix of internal topics). Default `test-app`.
    pub fn application_id(mut self, id: &str) -> Self {
        self.application_id = id.to_string();
        self
    }
    /// Partitions of every external topic not set with [`topic_partitions`](Self::topic_partitions). Default 1.
    pub fn partitions(mut self, n: u32) -> Self {
        assert!(n > 0, "a topic needs at least one partition");
        self.default_partitions = n;
        self
    }
    /// Partitions of one external topic.
    pub fn topic_partitions(mut self, topic: &str, n: u32) -> Self {
        assert!(n > 0, "a topic needs at least one partition");
        self.partitions.insert(topic.to_string(), n);
        self
    }
    /// Initial wall-clock time, epoch ms. Default 0.
    pub fn wall_clock(mut self, ms: i64) -> Self {
        self.wall_clock = ms;
        self
    }
    /// Idle advance: a task with no records for `idle` of wall-clock time
    /// ([`TestDriver::advance_wall_clock`]) moves its stream time on with the wall clock.
    pub fn idle_advance(mut self, idle: Duration) -> Self {
        self.idle_advance = Some(idle);
        self
    }
    /// Plans partitions (checking co-partitioning) and compiles every task.
    pub fn build(self) -> Result<TestDriver, Error> {
        let TestDriverBuilder {
            topology,
            application_id,
            default_partitions,
            partitions,
            wall_clock,
            state,
            keep_records,
            idle_advance,
        } = self;
        let config = EngineConfig {
            application_id,
            default_partitions,
            partitions,
            wall_clock,
            state,
            keep_records,
            lazy_tasks: false,
        };
        let mut state = Engine::new(&topology, config)?;
        state.set_idle_advance(idle_advance);
        Ok(TestDriver { state: Rc::new(RefCell::new(state)) })
    }
}

/// Runs a topology deterministically in memory, like Kafka Streams' `TopologyTestDriver`: records piped in
/// are processed at once, outputs read back, wall-clock time advanced by hand.
///
/// ```
/// use topology::{Consumed, Produced, Serdes, StreamsBuilder, TestDriver};
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
///     .filter(|_, v| *v > 10)
///     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
/// let driver = TestDriver::new(builder.build().unwrap());
/// let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
/// let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
/// input.pipe("a".to_string(), 5, 0);
/// input.pipe("b".to_string(), 50, 1);
/// assert_eq!(output.read_key_values(), vec![("b".to_string(), 50)]);
/// ```
pub struct TestDriver {
    state: Rc<RefCell<Engine>>,
}

impl std::fmt::Debug for TestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDriver").field("tasks", &self.state.borrow().tasks.len()).finish()
    }
}

impl TestDriver {
    /// A driver with one partition per topic and application id `test-app`.
    ///
    /// # Panics
    /// If the topology cannot be planned (use [`builder`](Self::builder) to get the error).
    pub fn new(topology: Topology) -> TestDriver {
        Self::builder(topology).build().expect("topology plans and compiles")
    }

    /// Configures a driver.
    pub fn builder(topology: Topology) -> TestDriverBuilder {
        TestDriverBuilder {
            topology,
            application_id: "test-app".into(),
            default_partitions: 1,
            partitions: HashMap::new(),
            wall_clock: 0,
            state: None,
            keep_records: true,
            idle_advance: None,
        }
    }

    /// A handle to pipe typed records into `topic`.
    pub fn input_topic<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic { state: self.state.clone(), topic: topic.to_string(), key_serde, value_serde }
    }

    /// A handle to read typed records from `topic` (a resolved name: internal topics carry the app id).
    pub fn output_topic<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic { state: self.state.clone(), topic: topic.to_string(), key_serde, value_serde }
    }

    /// Advances wall-clock time and fires wall-clock punctuations.
    pub fn advance_wall_clock(&self, by: Duration) -> Result<(), Error> {
        let mut s = self.state.borrow_mut();
        let now = s.wall_clock + by.as_millis() as i64;
        s.advance_wall_clock(now)
    }

    /// End of input, as the embedded runtime signals it after a finite replay: stream time jumps to the
    /// end of time, so every open window closes and emits its final result.
    pub fn final_flush(&self) -> Result<(), Error> {
        self.state.borrow_mut().final_flush()
    }

    /// Commits every task: with persistent state, caches are flushed to the stores and changelogs and a
    /// checkpoint is written (a real runtime does this every commit interval).
    pub fn commit(&self) -> Result<(), Error> {
        self.state.borrow_mut().commit()
    }

    /// Commits and closes every task cleanly. Dropping a driver without closing it is like a crash after
    /// the last commit (nothing after it is checkpointed).
    ///
    /// Closing releases the state directory even while topic handles of this driver are still alive.
    pub fn close(self) -> Result<(), Error> {
        self.state.borrow_mut().close()
    }

    /// Restore figures summed over all tasks (zero for in-memory state).
    pub fn restore_stats(&self) -> RestoreStats {
        let s = self.state.borrow();
        let mut total = RestoreStats::default();
        for sm in s.tasks.values().filter_map(|t| t.state.as_ref()) {
            total.records += sm.restore.records;
            total.full_restores += sm.restore.full_restores;
            total.micros += sm.restore.micros;
        }
        total
    }

    /// Bytes of all tasks' sled databases on disk (zero for in-memory state).
    pub fn state_size_on_disk(&self) -> u64 {
        self.state.borrow().tasks.values().filter_map(|t| t.state.as_ref()).map(|sm| sm.size_on_disk()).sum()
    }

    /// How many records were written to `topic` (a resolved name), kept or not.
    pub fn records_written(&self, topic: &str) -> u64 {
        self.state.borrow().log(topic).map_or(0, |l| l.written)
    }

    /// Number of tasks (sub-topologies × partitions).
    pub fn task_count(&self) -> usize {
        self.state.borrow().tasks.len()
    }

    /// Partitions of a (resolved) topic.
    pub fn partitions_of(&self, topic: &str) -> u32 {
        self.state.borrow().partition_count(topic)
    }

    /// The application id.
    pub fn application_id(&self) -> String {
        self.state.borrow().application_id.clone()
    }

    /// Metrics summed over all tasks.
    pub fn metrics(&self) -> TaskMetrics {
        let s = self.state.borrow();
        let mut total = TaskMetrics::default();
        for t in s.tasks.values().chain(s.global.as_ref()) {
            let m = &t.ctx.metrics;
            total.processed += m.processed;
            total.dead_lettered += m.dead_lettered;
            for (k, v) in &m.late {
                *total.late.entry(k.clone()).or_default() += v;
            }
        }
        total
    }

    /// Records refused as late by `node`, over all tasks.
    pub fn late_count(&self, node: &str) -> u64 {
        self.metrics().late.get(node).copied().unwrap_or(0)
    }

    /// Everything written to the dead-letter topic `topic` (default `<app>-dlq`).
    pub fn dead_letters(&self, topic: &str) -> Vec<DeadLetter> {
        let s = self.state.borrow();
        s.log(topic)
            .map(|l| {
                l.records
                    .iter()
                    .filter_map(|(_, _, r)| DeadLetter::from_parts(r.key.clone(), r.value.clone(), &r.headers))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every (partition, record) appended to `topic` so far, in order.
    pub fn topic_records(&self, topic: &str) -> Vec<(u32, RawRecord)> {
        let s = self.state.borrow();
        s.log(topic).map(|l| l.records.iter().map(|(p, _, r)| (*p, r.clone())).collect()).unwrap_or_default()
    }

    /// `key`'s value in key-value store `store` (whichever task owns it).
    pub fn kv_get<K: Data, V: Data>(&self, store: &str, key: &K) -> Option<V> {
        self.kv_handles::<K, V>(store).iter().find_map(|h| h.borrow().get(key))
    }

    /// Every entry of key-value store `store` over all tasks, by encoded key.
    pub fn kv_all<K: Data, V: Data>(&self, store: &str) -> Vec<(K, V)> {
        let mut all: Vec<(K, V)> = self.kv_handles::<K, V>(store).iter().flat_map(|h| h.borrow().all()).collect();
        all.sort_by_cached_key(|(k, _)| encode(k));
        all
    }

    fn kv_handles<K: Data, V: Data>(&self, store: &str) -> Vec<KeyValueStoreHandle<K, V>> {
        self.typed(store)
    }

    fn typed<H: Clone + 'static>(&self, store: &str) -> Vec<H> {
        let handles = self.state.borrow().handles(store);
        assert!(!handles.is_empty(), "no store `{store}`");
        handles
            .iter()
            .map(|h| h.downcast_ref::<H>().cloned().unwrap_or_else(|| panic!("store `{store}` has other types")))
            .collect()
    }

    /// Every window of window store `store` over all tasks: (key, window start, value).
    pub fn window_all<K: Data, V: Data>(&self, store: &str) -> Vec<(K, i64, V)> {
        let mut all: Vec<(K, i64, V)> = self
            .typed::<WindowStoreHandle<K, V>>(store)
            .iter()
            .flat_map(|h| h.borrow().fetch_all(i64::MIN, i64::MAX))
            .collect();
        all.sort_by_cached_key(|(k, t, _)| (*t, encode(k)));
        all
    }

    /// Every session of session store `store` over all tasks: (key, window, value).
    pub fn session_all<K: Data, V: Data>(&self, store: &str) -> Vec<(K, Window, V)> {
        let mut all: Vec<(K, Window, V)> = self
            .typed::<SessionStoreHandle<K, V>>(store)
            .iter()
            .flat_map(|h| h.borrow().fetch_ending(i64::MIN, i64::MAX))
            .collect();
        all.sort_by_cached_key(|(k, w, _)| (w.end, encode(k), w.start));
        all
    }

    /// Approximate number of entries in `store` over all tasks.
    pub fn store_entries(&self, store: &str) -> u64 {
        let s = self.state.borrow();
        s.tasks
            .values()
            .chain(s.global.as_ref())
            .flat_map(|t| t.stores.iter())
            .filter(|st| st.borrow().name() == store)
            .map(|st| st.borrow().approximate_num_entries())
            .sum()
    }
}

/// Pipes typed records into a topic of a [`TestDriver`].
pub struct TestInputTopic<K, V> {
    state: Rc<RefCell<Engine>>,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> std::fmt::Debug for TestInputTopic<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestInputTopic").field("topic", &self.topic).finish()
    }
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Pipes one record and processes it to completion.
    ///
    /// # Panics
    /// If processing fails (only possible with `DeserializationPolicy::Fail`; see [`try_pipe`](Self::try_pipe)).
    pub fn pipe(&self, key: K, value: V, timestamp: i64) {
        self.try_pipe(key, value, timestamp).expect("processing failed")
    }

    /// Pipes one record; returns processing errors instead of panicking.
    pub fn try_pipe(&self, key: K, value: V, timestamp: i64) -> Result<(), Error> {
        let raw = RawRecord {
            key: self.key_serde.serialize(&key),
            value: self.value_serde.serialize(&value),
            timestamp,
            headers: Headers::default(),
        };
        self.try_pipe_raw(raw)
    }

    /// Pipes many records, then processes them all (each task picks its next record by timestamp, as
    /// after a poll that returned a batch).
    ///
    /// # Panics
    /// If processing fails.
    pub fn pipe_batch(&self, records: impl IntoIterator<Item = (K, V, i64)>) {
        let mut s = self.state.borrow_mut();
        for (key, value, timestamp) in records {
            let raw = RawRecord {
                key: self.key_serde.serialize(&key),
                value: self.value_serde.serialize(&value),
                timestamp,
                headers: Headers::default(),
            };
            s.append(&self.topic, None, raw).expect("processing failed");
        }
        s.run().expect("processing failed");
    }

    /// Pipes raw bytes (for example a record that does not decode).
    pub fn try_pipe_raw(&self, raw: RawRecord) -> Result<(), Error> {
        let mut s = self.state.borrow_mut();
        s.append(&self.topic, None, raw)?;
        s.run()
    }

    /// Pipes raw key and value bytes.
    ///
    /// # Panics
    /// If processing fails.
    pub fn pipe_raw(&self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64) {
        let raw = RawRecord {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
            headers: Headers::default(),
        };
        self.try_pipe_raw(raw).expect("processing failed")
    }
}

/// A record read from a [`TestOutputTopic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord<K, V> {
    /// Key.
    pub key: K,
    /// Value.
    pub value: V,
    /// Timestamp.
    pub timestamp: i64,
    /// Partition it was written to.
    pub partition: u32,
    /// Headers.
    pub headers: Headers,
}

/// Reads typed records from a topic of a [`TestDriver`], in the order they were written. Reading
/// consumes: every handle of one topic shares one position, as in Kafka Streams' driver.
pub struct TestOutputTopic<K, V> {
    state: Rc<RefCell<Engine>>,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> std::fmt::Debug for TestOutputTopic<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOutputTopic").field("topic", &self.topic).finish()
    }
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// The next unread record.
    ///
    /// # Panics
    /// If the record does not decode with this topic's serdes.
    pub fn read_record(&self) -> Option<TestRecord<K, V>> {
        let mut guard = self.state.borrow_mut();
        let s = &mut *guard;
        let cursor = s.read.get(&self.topic).copied().unwrap_or_default();
        let (p, _, raw) = s.log(&self.topic)?.records.get(cursor)?;
        let (p, raw) = (*p, raw.clone());
        s.read.insert(self.topic.clone(), cursor + 1);
        let key =
            self.key_serde.deserialize(raw.key.as_deref()).unwrap_or_else(|e| panic!("key on {}: {e}", self.topic));
        let value = self
            .value_serde
            .deserialize(raw.value.as_deref())
            .unwrap_or_else(|e| panic!("value on {}: {e}", self.topic));
        Some(TestRecord { key, value, timestamp: raw.timestamp, partition: p, headers: raw.headers })
    }

    /// Every unread record.
    pub fn read_records(&self) -> Vec<TestRecord<K, V>> {
        std::iter::from_fn(|| self.read_record()).collect()
    }

    /// Every unread (key, value).
    pub fn read_key_values(&self) -> Vec<(K, V)> {
        self.read_records().into_iter().map(|r| (r.key, r.value)).collect()
    }

    /// Every unread value.
    pub fn read_values(&self) -> Vec<V> {
        self.read_records().into_iter().map(|r| r.value).collect()
    }

    /// True when everything written has been read.
    pub fn is_empty(&self) -> bool {
        let s = self.state.borrow();
        let cursor = s.read.get(&self.topic).copied().unwrap_or(0);
        s.log(&self.topic).is_none_or(|l| l.records.len() <= cursor)
    }
}
