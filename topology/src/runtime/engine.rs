//! The engine under every runtime: tasks per (sub-topology, partition), topics as in-process logs,
//! routing of produced records to the tasks that read them. The test driver keeps every record; the
//! embedded runtime sends the records of its output topics to an outbox and keeps none, and connects
//! its repartition topics as typed channels from sink to reading task (`task::channel`).

use std::any::Any;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::in_process::{AnyRecord, RecordsInput};
use super::partitioner::partition_for;
use crate::error::Error;
use crate::record::RawRecord;
use crate::state::StoreBuilder;
use crate::task::{
    Channel, OutRecord, Ready, RestoreStats, SourceNode, StateConfig, StateManager, Task, TaskCtx, TaskId, TypedOutput,
};
use crate::topology::Topology;

/// How to build an [`Engine`].
pub(crate) struct EngineConfig {
    pub(crate) application_id: String,
    pub(crate) default_partitions: u32,
    pub(crate) partitions: HashMap<String, u32>,
    pub(crate) wall_clock: i64,
    pub(crate) state: Option<StateConfig>,
    pub(crate) keep_records: bool,
    /// Open no task at start: the runtime opens and closes them as partitions are assigned (Kafka).
    pub(crate) lazy_tasks: bool,
}

#[derive(Default)]
pub(crate) struct Log {
    /// (partition, offset, record) in append order.
    pub(crate) records: Vec<(u32, u64, RawRecord)>,
    next_offset: Vec<u64>,
    round_robin: u32,
    pub(crate) written: u64,
}

/// Where the records of one topic go, resolved from the engine's topic maps the first time the topic
/// is written or delivered (one lookup per record instead of one per map).
struct Route {
    partitions: u32,
    /// Its records leave the engine through the outbox (a sink topic, or every topic when external).
    leaves: bool,
    /// The global task reads it.
    global: bool,
    /// The sub-topologies whose tasks read it.
    readers: Vec<usize>,
    /// Its records buffered in tasks, not processed yet (the tasks count them).
    queued: Rc<Cell<usize>>,
    /// The topic's in-process log (unused when its records leave).
    log: Log,
}

impl Route {
    /// The partition (given, else by key, else round robin) and offset of the next record appended.
    fn place(&mut self, partition: Option<u32>, key: Option<&[u8]>) -> (u32, u64) {
        let n = self.partitions;
        let log = &mut self.log;
        if log.next_offset.len() != n as usize {
            log.next_offset.resize(n as usize, 0);
        }
        let p = match (partition, key) {
            _ if n == 1 => 0,
            (Some(p), _) => p % n,
            (None, Some(k)) => partition_for(k, n),
            (None, None) => {
                log.round_robin = (log.round_robin + 1) % n;
                log.round_robin
            }
        };
        let offset = log.next_offset[p as usize];
        log.next_offset[p as usize] += 1;
        log.written += 1;
        (p, offset)
    }
}

/// A record leaving the engine (see `Engine::outbox`).
pub(crate) struct Outgoing {
    pub(crate) topic: Arc<str>,
    pub(crate) raw: RawRecord,
    /// The value is one compact JSON text (its serde says so, see `Serde::is_json`).
    pub(crate) json_value: bool,
}

pub(crate) struct Engine {
    topology: Topology,
    state: Option<StateConfig>,
    /// Global stores, shared by every task.
    shared: HashMap<String, Rc<dyn Any>>,
    pub(crate) application_id: String,
    pub(crate) default_partitions: u32,
    pub(crate) partitions: FxHashMap<String, u32>,
    pub(crate) tasks: BTreeMap<TaskId, Task>,
    pub(crate) global: Option<Task>,
    pub(crate) global_topics: FxHashSet<String>,
    pub(crate) consumers: FxHashMap<String, Vec<usize>>,
    /// Per topic written or delivered so far: where its records go, and its log (an index into
    /// `route_list`, so a record costs one lookup).
    routes: FxHashMap<String, usize>,
    route_list: Vec<Route>,
    /// How far output topics have been read, per topic (shared by every handle, like Kafka's driver).
    pub(crate) read: HashMap<String, usize>,
    pub(crate) wall_clock: i64,
    pub(crate) keep_records: bool,
    /// Topics whose records leave the engine (to files, stdout, a broker) instead of a log.
    sinks: FxHashSet<String>,
    /// Records written to `sinks`, in order, until the runtime takes them.
    pub(crate) outbox: Vec<Outgoing>,
    /// Every record written goes to the outbox (the Kafka runtime produces them all to the cluster,
    /// repartition topics included, and reads them back through its consumer).
    external: bool,
    /// Idle advance of every task, ms (see `Task::advance_wall_clock`).
    idle_advance: Option<i64>,
    /// Processing times of sampled records, for the metrics (on when a runtime serves them).
    latency: LatencySampler,
    /// Empty output buffers, traded for a task's when what it wrote is routed (see `route_traded`).
    spare_outs: Vec<Vec<OutRecord>>,
    /// In-process repartition topics whose sinks send typed records to the reading tasks (see
    /// `connect_repartitions`), and the tasks they sent to that take them at once.
    channels: Rc<FxHashMap<Arc<str>, Rc<Channel>>>,
    ready: Ready,
    /// Output topics whose sinks hand typed records to a function (see `add_typed_output`).
    typed_outputs: Rc<FxHashMap<Arc<str>, Rc<TypedOutput>>>,
    /// The route last sent to (see `route_of_sent`).
    last_route: Option<(Arc<str>, usize)>,
}

/// Times one record in [`LatencySampler::EVERY`] through its task (processing and routing its
/// output), so the hot loop pays for a clock read rarely; the samples wait for the next metrics
/// observation.
#[derive(Default)]
struct LatencySampler {
    on: bool,
    countdown: u32,
    samples: std::cell::RefCell<Vec<f64>>,
}

impl LatencySampler {
    const EVERY: u32 = 64;
    /// Samples kept between two observations at most (the rest are dropped).
    const MAX: usize = 10_000;

    /// Whether to time the next record.
    fn due(&mut self) -> bool {
        if !self.on {
            return false;
        }
        if self.countdown == 0 {
            self.countdown = Self::EVERY - 1;
            return true;
        }
        self.countdown -= 1;
        false
    }

    fn add(&self, seconds: f64) {
        let mut samples = self.samples.borrow_mut();
        if samples.len() < Self::MAX {
            samples.push(seconds);
        }
    }
}

impl Engine {
    pub(crate) fn partition_count(&self, topic: &str) -> u32 {
        self.partitions.get(topic).copied().unwrap_or(self.default_partitions)
    }

    /// Records written to `topic` leave the engine (see `outbox`).
    pub(crate) fn add_sink(&mut self, topic: &str) {
        self.sinks.insert(topic.to_string());
        if let Some(&i) = self.routes.get(topic) {
            self.route_list[i].leaves = true;
        }
    }

    /// Every record written leaves the engine (see `external`).
    pub(crate) fn set_external(&mut self) {
        self.external = true;
        for r in &mut self.route_list {
            r.leaves = true;
        }
    }

    /// The in-process log of `topic`, if anything was appended to it.
    pub(crate) fn log(&self, topic: &str) -> Option<&Log> {
        self.routes.get(topic).map(|&i| &self.route_list[i].log)
    }

    /// The route of `topic` (its index in `route_list`), resolved on first use.
    fn route_of(&mut self, topic: &str) -> usize {
        if let Some(&i) = self.routes.get(topic) {
            return i;
        }
        let route = Route {
            partitions: self.partition_count(topic),
            leaves: self.external || self.sinks.contains(topic),
            global: self.global_topics.contains(topic),
            readers: self.consumers.get(topic).cloned().unwrap_or_default(),
            queued: Rc::default(),
            log: Log::default(),
        };
        self.route_list.push(route);
        self.routes.insert(topic.to_string(), self.route_list.len() - 1);
        self.route_list.len() - 1
    }

    /// The route of a topic a task sent to: tasks send to the same few topics, so the last one is
    /// remembered (by its `Arc`, which the sink keeps) and most records skip the lookup by name.
    fn route_of_sent(&mut self, topic: &Arc<str>) -> usize {
        if let Some((last, i)) = &self.last_route {
            if Arc::ptr_eq(last, topic) {
                return *i;
            }
        }
        let i = self.route_of(topic);
        self.last_route = Some((topic.clone(), i));
        i
    }

    /// The route of `topic`, for [`append_at`](Self::append_at) (a runtime appending to an input
    /// topic per record looks it up once).
    pub(crate) fn route_index(&mut self, topic: &str) -> usize {
        self.route_of(topic)
    }

    /// Appends to a topic and hands the record to the tasks that read that partition.
    pub(crate) fn append(&mut self, topic: &str, partition: Option<u32>, raw: RawRecord) -> Result<(), Error> {
        let i = self.route_of(topic);
        self.append_at(i, topic, partition, raw)
    }

    /// [`append`](Self::append) to the topic of route `i` (see `route_index`).
    pub(crate) fn append_at(
        &mut self,
        i: usize,
        topic: &str,
        partition: Option<u32>,
        raw: RawRecord,
    ) -> Result<(), Error> {
        let route = &mut self.route_list[i];
        if route.leaves {
            self.outbox.push(Outgoing { topic: Arc::from(topic), raw, json_value: false });
            return Ok(());
        }
        let (p, offset) = route.place(partition, raw.key.as_deref());
        let log = &mut route.log;
        if self.keep_records {
            log.records.push((p, offset, raw.clone()));
        }
        self.deliver_routed(i, topic, p, offset, raw)
    }

    /// [`append_at`](Self::append_at) of a record that is only a value, borrowed (a line of an input
    /// file): a stream read by one task decodes it without a copy. `at_once`: the run has no other
    /// input to merge it with by time, so a task that reads only this topic and has nothing buffered
    /// processes it now, without buffering it (as `process_task` does with records sent in-process).
    /// Whether it was processed.
    pub(crate) fn append_value_at(
        &mut self,
        i: usize,
        topic: &str,
        value: &[u8],
        at_once: bool,
    ) -> Result<bool, Error> {
        let route = &mut self.route_list[i];
        if route.leaves || route.global || self.keep_records || route.readers.len() != 1 {
            let raw = RawRecord { key: None, value: Some(value.to_vec()), timestamp: 0, headers: Default::default() };
            return self.append_at(i, topic, None, raw).map(|()| false);
        }
        let (partition, offset) = route.place(None, None);
        let id = TaskId { subtopology: route.readers[0], partition };
        if let Some(id) = self.taker_at_once(at_once, i, partition) {
            let process = |node: &mut dyn SourceNode, ctx: &mut TaskCtx, at| node.process_value(ctx, at, value);
            return self.process_task_with(id, |t| t.process_now(topic, partition, offset, process).map(|()| true));
        }
        match self.tasks.get_mut(&id) {
            Some(task) => task.enqueue_value(topic, partition, offset, value).map(|()| false),
            None => Ok(false), // as `deliver_to_tasks`: no task of this instance reads the partition
        }
    }

    /// The task that processes a record of route `i`'s `partition` as it is appended, when `at_once`
    /// (see `append_value_at`): the one task reading that partition, if it reads only this topic and
    /// nothing of the topic is buffered.
    fn taker_at_once(&self, at_once: bool, i: usize, partition: u32) -> Option<TaskId> {
        let route = &self.route_list[i];
        let [reader] = route.readers[..] else { return None };
        let id = TaskId { subtopology: reader, partition };
        let takes = at_once && route.queued.get() == 0 && self.tasks.get(&id).is_some_and(Task::reads_one_topic);
        takes.then_some(id)
    }

    pub(crate) fn route(&mut self, mut out: Vec<OutRecord>) -> Result<(), Error> {
        self.route_drain(&mut out)
    }

    /// Routes and empties `out` (its capacity stays for reuse).
    fn route_drain(&mut self, out: &mut Vec<OutRecord>) -> Result<(), Error> {
        for o in out.drain(..) {
            let i = self.route_of_sent(&o.topic);
            let raw = RawRecord { key: o.key, value: o.value, timestamp: o.timestamp, headers: o.headers };
            if self.route_list[i].leaves {
                self.outbox.push(Outgoing { topic: o.topic, raw, json_value: o.json_value });
                continue;
            }
            self.append_at(i, &o.topic, None, raw)?;
        }
        Ok(())
    }

    /// Checks that `topic` can take the typed records of `input`: every source reading it reads their
    /// type, and it is a stream's topic (not a global table's, not one the run writes).
    pub(crate) fn check_typed_input(&mut self, topic: &str, input: &RecordsInput) -> Result<(), Error> {
        let (given, given_name) = input.record_type();
        let invalid = |message: String| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, message));
        let i = self.route_of(topic);
        let route = &self.route_list[i];
        if route.global || route.leaves {
            return Err(invalid(format!("topic `{topic}` cannot take typed records: only a stream's input can")));
        }
        for task in self.tasks.values() {
            if let Some((read, read_name)) = task.source_record_type(topic) {
                if read != given {
                    return Err(invalid(format!(
                        "the typed input of topic `{topic}` makes `{given_name}`, but its source reads `{read_name}`"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Appends a typed record of an in-process input (checked by `check_typed_input`) to the topic of
    /// route `i` (see `route_index`) and hands it to the tasks that read its partition; `at_once` as
    /// for [`append_value_at`](Self::append_value_at). Whether it was processed.
    pub(crate) fn append_input(
        &mut self,
        i: usize,
        topic: &str,
        record: AnyRecord,
        input: &RecordsInput,
        at_once: bool,
    ) -> Result<bool, Error> {
        let route = &mut self.route_list[i];
        let key = if route.partitions > 1 { input.key_bytes(&record) } else { None };
        let (partition, offset) = route.place(None, key.as_deref());
        if let Some(id) = self.taker_at_once(at_once, i, partition) {
            let process = |node: &mut dyn SourceNode, ctx: &mut TaskCtx, at| node.process_input(ctx, at, record);
            return self.process_task_with(id, |t| t.process_now(topic, partition, offset, process).map(|()| true));
        }
        let copy = |r: &AnyRecord| input.clone_record(r);
        let enqueue = |t: &mut Task, r| t.enqueue_input(topic, partition, offset, r);
        self.deliver_to_tasks(i, partition, record, copy, enqueue).map(|()| false)
    }

    /// Connects the in-process repartition topics: their sinks send typed records straight to the
    /// source queue of the task that reads each partition (see `task::channel`), so a repartition in
    /// this process costs neither encoding, nor routing, nor a round of the scheduler (as Flink chains
    /// operators). For a runtime whose repartition topics stay in this process and whose tasks are
    /// all open for the run (embedded); not when every topic leaves (Kafka) or records are kept to be
    /// read back as bytes (test driver).
    pub(crate) fn connect_repartitions(&mut self) {
        if self.external || self.keep_records {
            return;
        }
        let mut internal = Vec::new();
        for (s, nodes) in self.topology.subtopologies.iter().enumerate() {
            for t in self.topology.source_topics_of(nodes).into_iter().filter(|t| t.internal) {
                internal.push((s, t.resolve(&self.application_id)));
            }
        }
        let mut channels = FxHashMap::default();
        for (s, topic) in internal {
            let i = self.route_of(&topic);
            let route = &self.route_list[i];
            if route.leaves || route.global || route.readers != [s] {
                continue;
            }
            let ids = (0..route.partitions).map(|partition| TaskId { subtopology: s, partition });
            let Some(tasks) = ids.map(|id| self.tasks.get(&id)).collect::<Option<Vec<_>>>() else { continue };
            let mut readers = Vec::new();
            let mut queued = Rc::default();
            for task in tasks {
                let (queue, count) = task.source_queue(&topic);
                queued = count;
                readers.push((task.id, queue, task.reads_one_topic()));
            }
            let topic: Arc<str> = Arc::from(topic);
            let channel = Channel {
                topic: topic.clone(),
                offsets: readers.iter().map(|_| Default::default()).collect(),
                readers,
                round_robin: Default::default(),
                queued,
                ready: self.ready.clone(),
            };
            channels.insert(topic, Rc::new(channel));
        }
        self.channels = Rc::new(channels);
        for task in self.tasks.values_mut() {
            task.ctx.channels = self.channels.clone();
        }
    }

    /// Hands the records of output topic `topic` to `output`'s function as its sinks write them
    /// (see `RecordsOutput::typed`): every sink of the topic must write the record type it takes.
    pub(crate) fn add_typed_output(&mut self, topic: &str, output: &crate::RecordsOutput) -> Result<(), Error> {
        let Some((f, takes, takes_name)) = output.typed_fn() else { return Ok(()) };
        let invalid = |message: String| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, message));
        let written = self.topology.sink_record_types(topic);
        if written.is_empty() {
            return Err(invalid(format!("topic `{topic}` has a typed output, but no sink of the topology writes it")));
        }
        if let Some((_, name)) = written.iter().find(|(t, _)| *t != takes) {
            return Err(invalid(format!(
                "the typed output of topic `{topic}` takes `{takes_name}`, but a sink writes `{name}` to it"
            )));
        }
        let topic: Arc<str> = Arc::from(topic);
        let output = TypedOutput { topic: topic.clone(), f, written: Default::default() };
        let mut outputs = (*self.typed_outputs).clone();
        outputs.insert(topic, Rc::new(output));
        self.typed_outputs = Rc::new(outputs);
        for task in self.tasks.values_mut() {
            task.ctx.typed_outputs = self.typed_outputs.clone();
        }
        Ok(())
    }

    /// How many records each typed output got so far.
    pub(crate) fn typed_outputs_written(&self) -> impl Iterator<Item = (&str, u64)> {
        self.typed_outputs.values().map(|o| (&*o.topic, o.written.get()))
    }

    /// Routes `out`, what a task wrote, traded for an empty spare buffer (see `spare_outs`), and
    /// keeps it as a spare: no buffer is allocated per record.
    fn route_traded(&mut self, mut out: Vec<OutRecord>) -> Result<(), Error> {
        let routed = self.route_drain(&mut out);
        self.spare_outs.push(out);
        routed
    }

    /// Processes until no task has buffered input.
    pub(crate) fn run(&mut self) -> Result<(), Error> {
        loop {
            let mut progressed = false;
            if let Some(g) = self.global.as_mut() {
                while g.process_one()? {
                    progressed = true;
                }
                let out = g.take_output();
                self.route(out)?;
            }
            let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
            for id in ids {
                while self.process_task(id)? {
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    pub(crate) fn handles(&self, store: &str) -> Vec<Rc<dyn Any>> {
        let mut out: Vec<Rc<dyn Any>> =
            self.tasks.values().filter_map(|t| t.store_handles.get(store).cloned()).collect();
        if let Some(g) = &self.global {
            if out.is_empty() {
                out.extend(g.store_handles.get(store).cloned());
            }
        }
        let mut seen = HashSet::new();
        out.retain(|h| seen.insert(Rc::as_ptr(h) as *const () as usize));
        out
    }
}

impl Engine {
    /// Plans partitions (checking co-partitioning) and compiles every task (none when `lazy_tasks`).
    pub(crate) fn new(topology: &Topology, config: EngineConfig) -> Result<Engine, Error> {
        let EngineConfig {
            application_id,
            default_partitions,
            partitions,
            wall_clock,
            state,
            keep_records,
            lazy_tasks,
        } = config;
        let plan =
            topology.plan(&application_id, &|t| Some(partitions.get(t).copied().unwrap_or(default_partitions)))?;
        let global_nodes: Vec<usize> = topology.globals.iter().flatten().copied().collect();
        let global_id = TaskId { subtopology: usize::MAX, partition: 0 };
        let global = if global_nodes.is_empty() {
            None
        } else {
            let ctx = TaskCtx::new(
                &application_id,
                global_id,
                topology.late.clone(),
                topology.deserialization.clone(),
                wall_clock,
            );
            Some(Task::compile(&topology.graph, &global_nodes, global_id, ctx, &HashMap::new(), None)?)
        };
        let shared: HashMap<String, Rc<dyn Any>> = match &global {
            Some(g) => g.store_handles.clone(),
            None => HashMap::new(),
        };
        let mut consumers: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        for (s, nodes) in topology.subtopologies.iter().enumerate() {
            for t in topology.source_topics_of(nodes) {
                consumers.entry(t.resolve(&application_id)).or_default().push(s);
            }
        }
        let global_topics =
            global.as_ref().map(|g| g.source_topics().map(str::to_string).collect()).unwrap_or_default();
        let mut all_partitions = partitions;
        all_partitions.extend(plan.partitions.clone());
        let mut engine = Engine {
            topology: topology.clone(),
            state,
            shared,
            default_partitions,
            partitions: all_partitions.into_iter().collect(),
            tasks: BTreeMap::new(),
            global,
            global_topics,
            consumers,
            routes: FxHashMap::default(),
            route_list: Vec::new(),
            read: HashMap::new(),
            wall_clock,
            application_id,
            keep_records,
            sinks: FxHashSet::default(),
            outbox: Vec::new(),
            external: false,
            idle_advance: None,
            latency: LatencySampler::default(),
            spare_outs: Vec::new(),
            channels: Rc::default(),
            ready: Rc::default(),
            typed_outputs: Rc::default(),
            last_route: None,
        };
        if !lazy_tasks {
            for &id in &plan.tasks {
                engine.open_task(id)?;
            }
        }
        Ok(engine)
    }

    /// Compiles task `id`, restoring its state (a no-op when it is open).
    pub(crate) fn open_task(&mut self, id: TaskId) -> Result<(), Error> {
        if self.tasks.contains_key(&id) {
            return Ok(());
        }
        let manager = match &self.state {
            Some(cfg) => Some(StateManager::open(cfg, &self.application_id, id)?),
            None => None,
        };
        let ctx = TaskCtx::new(
            &self.application_id,
            id,
            self.topology.late.clone(),
            self.topology.deserialization.clone(),
            self.wall_clock,
        );
        let nodes = &self.topology.subtopologies[id.subtopology];
        let mut task = Task::compile(&self.topology.graph, nodes, id, ctx, &self.shared, manager)?;
        task.idle_advance = self.idle_advance;
        task.ctx.channels = self.channels.clone();
        task.ctx.typed_outputs = self.typed_outputs.clone();
        let topics: Vec<String> = task.source_topics().map(str::to_string).collect();
        for t in topics {
            let i = self.route_of(&t);
            task.share_queued(&t, &self.route_list[i].queued);
        }
        self.tasks.insert(id, task);
        Ok(())
    }

    /// Starts timing sampled records for the metrics (the runtimes do when metrics are served).
    pub(crate) fn sample_latency(&mut self) {
        self.latency.on = true;
    }

    /// Folds the tasks' figures into `m` (at a commit): processed, late and dead-lettered records,
    /// each store's cache hits, misses and size, restored records, open tasks, stream-time lag, and
    /// the processing times sampled since the last call.
    pub(crate) fn observe(&self, m: &crate::metrics::AppMetrics) {
        m.observe_process_seconds(&std::mem::take(&mut *self.latency.samples.borrow_mut()));
        let mut entries: BTreeMap<String, u64> = BTreeMap::new();
        let mut stream_time = i64::MIN;
        for t in self.tasks.values().chain(self.global.as_ref()) {
            let task = t.id.to_string();
            m.observe_task(&task, &t.ctx.metrics);
            if t.ctx.stream_time != i64::MAX {
                stream_time = stream_time.max(t.ctx.stream_time);
            }
            if let Some(sm) = &t.state {
                m.observe_restored(&task, sm.restore.records);
                for (name, stats) in &sm.stats {
                    m.observe_cache(&task, name, stats.cache_hits.get(), stats.cache_misses.get());
                }
            }
            for store in &t.stores {
                let store = store.borrow();
                *entries.entry(store.name().to_string()).or_default() += store.approximate_num_entries();
            }
        }
        for (name, n) in entries {
            m.set_store_entries(&name, n);
        }
        if stream_time != i64::MIN {
            m.set_stream_time_lag(super::now_ms() - stream_time);
        }
    }

    /// Sets the idle advance of every task, open and future.
    pub(crate) fn set_idle_advance(&mut self, idle: Option<std::time::Duration>) {
        self.idle_advance = idle.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        for task in self.tasks.values_mut() {
            task.idle_advance = self.idle_advance;
        }
    }

    /// Moves every task's wall clock to `now` (firing wall-clock punctuations and, for idle tasks with
    /// an idle advance, stream-time ones) and processes what that produced.
    pub(crate) fn advance_wall_clock(&mut self, now: i64) -> Result<(), Error> {
        self.wall_clock = self.wall_clock.max(now);
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            let task = self.tasks.get_mut(&id).expect("task exists");
            task.advance_wall_clock(now);
            let out = task.take_output();
            self.route(out)?;
        }
        self.run()
    }

    /// A job that restores task `id`'s state on another thread (see `StateManager::prepare`); opening
    /// the task after it finishes is quick. `None` when state is in memory.
    pub(crate) fn restore_job(&self, id: TaskId) -> Option<impl FnOnce() -> Result<RestoreStats, Error> + Send> {
        let config = self.state.clone()?;
        let mut names: Vec<&String> = self.topology.subtopologies[id.subtopology]
            .iter()
            .flat_map(|&n| self.topology.graph.nodes[n].stores.iter())
            .filter(|s| !self.shared.contains_key(*s))
            .collect();
        names.sort();
        names.dedup();
        let builders: Vec<StoreBuilder> = names.into_iter().map(|s| self.topology.graph.stores[s].clone()).collect();
        let application_id = self.application_id.clone();
        Some(move || StateManager::prepare(&config, &application_id, id, &builders))
    }

    /// Closes task `id`: cleanly (commit, checkpoint marked clean) or, after a failure, by dropping it
    /// (its state is rebuilt from the changelog when it opens again).
    pub(crate) fn close_task(&mut self, id: TaskId, clean: bool) -> Result<(), Error> {
        if let Some(mut task) = self.tasks.remove(&id) {
            if clean {
                task.close()?;
                let out = task.take_output();
                self.route(out)?;
            }
        }
        Ok(())
    }

    /// The tasks that read partition `partition` of `topic`.
    pub(crate) fn tasks_reading(&self, topic: &str, partition: u32) -> Vec<TaskId> {
        self.consumers
            .get(topic)
            .map(|subs| subs.iter().map(|&s| TaskId { subtopology: s, partition }).collect())
            .unwrap_or_default()
    }

    /// Hands a record at `offset` of `topic`/`partition` (appended here, or read from a cluster) to the
    /// global task if it reads the topic and to the open tasks reading that partition.
    pub(crate) fn deliver(&mut self, topic: &str, partition: u32, offset: u64, raw: RawRecord) -> Result<(), Error> {
        let i = self.route_of(topic);
        self.deliver_routed(i, topic, partition, offset, raw)
    }

    /// [`deliver`](Self::deliver) through route `i`.
    fn deliver_routed(
        &mut self,
        i: usize,
        topic: &str,
        partition: u32,
        offset: u64,
        raw: RawRecord,
    ) -> Result<(), Error> {
        let route = &self.route_list[i];
        if route.global {
            if let Some(g) = self.global.as_mut() {
                let id = |s: usize| TaskId { subtopology: s, partition };
                if !route.readers.iter().any(|&s| self.tasks.contains_key(&id(s))) {
                    return g.enqueue(topic, partition, offset, raw);
                }
                g.enqueue(topic, partition, offset, raw.clone())?;
            }
        }
        self.deliver_to_tasks(i, partition, raw, RawRecord::clone, |t, r| t.enqueue(topic, partition, offset, r))
    }

    /// Hands `record` to every task that reads `partition` of route `i`: a copy to each but the last.
    fn deliver_to_tasks<R>(
        &mut self,
        i: usize,
        partition: u32,
        record: R,
        copy: impl Fn(&R) -> R,
        mut enqueue: impl FnMut(&mut Task, R) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let readers = &self.route_list[i].readers;
        let tasks = &mut self.tasks;
        let id = |s: usize| TaskId { subtopology: s, partition };
        let Some(last) = readers.iter().rposition(|&s| tasks.contains_key(&id(s))) else { return Ok(()) };
        for &s in &readers[..last] {
            if let Some(task) = tasks.get_mut(&id(s)) {
                enqueue(task, copy(&record))?;
            }
        }
        enqueue(tasks.get_mut(&id(readers[last])).expect("present"), record)
    }

    /// How many records of `topic` are buffered in tasks, not processed yet: a counter the tasks keep
    /// (read it without a lookup per record).
    pub(crate) fn queued(&mut self, topic: &str) -> Rc<Cell<usize>> {
        let i = self.route_of(topic);
        self.route_list[i].queued.clone()
    }

    /// Processes one record: the lowest-timestamp head over every task (global tables first), so records
    /// of all partitions and topics are processed in event-time order, as one merged stream (with what
    /// it sent in-process, see `process_task`). Returns whether anything was processed.
    pub(crate) fn step_lowest(&mut self) -> Result<bool, Error> {
        if let Some(g) = self.global.as_mut() {
            if g.process_one()? {
                let out = g.take_output();
                self.route(out)?;
                return Ok(true);
            }
        }
        // No task has a record (every record read was processed at once, say): nothing to look for.
        if self.route_list.iter().all(|r| r.queued.get() == 0) {
            return Ok(false);
        }
        let next = self.tasks.iter().filter_map(|(id, t)| t.head_timestamp().map(|ts| (ts, *id))).min();
        let Some((_, id)) = next else { return Ok(false) };
        self.process_task(id)?;
        Ok(true)
    }

    /// Processes the next record of task `id` and routes what it wrote, then the records it sent
    /// in-process (timing it now and then for the metrics); whether there was one.
    ///
    /// A task that reads only a connected topic takes what was sent to it at once (see
    /// `task::channel`): it takes its input in arrival order whenever it runs, so running it now
    /// changes nothing it computes. Other readers wait for their turn among the heads of every task.
    fn process_task(&mut self, id: TaskId) -> Result<bool, Error> {
        self.process_task_with(id, Task::process_one)
    }

    /// [`process_task`](Self::process_task) with `process` taking the task's record: whether it did.
    fn process_task_with(
        &mut self,
        id: TaskId,
        process: impl FnOnce(&mut Task) -> crate::Result<bool>,
    ) -> Result<bool, Error> {
        let started = self.latency.due().then(std::time::Instant::now);
        let did = self.process_routed(id, process)?;
        loop {
            let sent_to = self.ready.borrow_mut().pop();
            let Some(sent_to) = sent_to else { break };
            self.process_routed(sent_to, |task| {
                let mut did = false;
                while task.process_one()? {
                    did = true;
                }
                Ok(did)
            })?;
        }
        if let (true, Some(started)) = (did, started) {
            self.latency.add(started.elapsed().as_secs_f64());
        }
        Ok(did)
    }

    /// Lets `process` take records of task `id` and routes what it wrote; whether it took any.
    fn process_routed(
        &mut self,
        id: TaskId,
        process: impl FnOnce(&mut Task) -> crate::Result<bool>,
    ) -> Result<bool, Error> {
        let task = self.tasks.get_mut(&id).expect("task exists");
        let did = process(task)?;
        if !task.ctx.out.is_empty() {
            let out = std::mem::replace(&mut task.ctx.out, self.spare_outs.pop().unwrap_or_default());
            self.route_traded(out)?;
        }
        Ok(did)
    }

    /// Commits every task (state, then what the commit forwarded is routed).
    pub(crate) fn commit(&mut self) -> Result<(), Error> {
        // Every task sends its changelog records first; then each waits for its own (one round trip
        // for all, on a remote changelog).
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in &ids {
            let task = self.tasks.get_mut(id).expect("task exists");
            task.commit_prepare()?;
            let out = task.take_output();
            self.route(out)?;
        }
        for id in &ids {
            self.tasks.get_mut(id).expect("task exists").commit_finish()?;
        }
        self.run()
    }

    /// End of input: every task emits its final results, then everything is processed. Sub-topologies
    /// go in order (upstream ones are numbered first), each one's results processed downstream before
    /// the next one flushes: results of one stage may open windows in the next, which must still be
    /// open when they arrive.
    pub(crate) fn final_flush(&mut self) -> Result<(), Error> {
        let mut ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        ids.sort();
        for stage in ids.chunk_by(|a, b| a.subtopology == b.subtopology) {
            for id in stage {
                let task = self.tasks.get_mut(id).expect("task exists");
                task.final_flush();
                let out = task.take_output();
                self.route(out)?;
            }
            self.run()?;
        }
        Ok(())
    }

    /// Closes every task cleanly and releases their state.
    pub(crate) fn close(&mut self) -> Result<(), Error> {
        for task in self.tasks.values_mut() {
            task.close()?;
        }
        self.tasks.clear();
        self.global = None;
        Ok(())
    }
}
