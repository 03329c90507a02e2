//! The Kafka runtime: the same tasks as the embedded runtime, fed by a consumer group.
//!
//! ```text
//!  start: prepare topics (wait for the cluster) ─▶ subscribe (group = application id)
//!  loop:  poll a batch ─▶ tasks process it ─▶ outputs and repartition records produced
//!         rebalance? revoke: commit and close the tasks; unassign
//!                    assign: restore the new tasks on their own threads; assign, pause their
//!                            partitions until the tasks are open (the others keep processing)
//!         every commit interval: flush caches → stores → changelogs; then
//!           at-least-once: wait for every produced record, commit the consumed offsets
//!           exactly-once:  send the offsets to the transaction and commit it (abort → restore, rewind)
//!  stop:  commit, close every task cleanly, leave the group
//! ```
//!
//! A task is (sub-topology, partition): it is opened when the group assigns a partition of one of its
//! source topics. Sub-topologies that join several topics need their partitions on the same instance,
//! which the range assignor guarantees for co-partitioned topics (an eager protocol); otherwise the
//! group uses cooperative-sticky, so a rebalance only stops the partitions that move. Assignments are
//! applied by this loop, not in librdkafka's callback, so tasks are committed and closed while the
//! partitions are still owned. A new task's state is restored into its local database on a thread of
//! its own (`StateManager::prepare`); its partitions stay paused until then, and opening it afterwards
//! replays only the changelog tail.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::embedded::{RedisOutput, RunSummary};
use super::engine::{Engine, EngineConfig};
use super::kafka_changelog::{Deliveries, KafkaChangelog, SharedProducer};
use super::kafka_topics::{cluster as kafka_error, prepare_topics};
use crate::error::{Error, Result};
use crate::record::{Headers, RawRecord};
use crate::sink::redis::RedisSink;
use crate::state::Changelog;
use crate::task::{ChangelogFactory, RestoreStats, StateConfig, TaskId};
use crate::topology::Topology;

/// Configures a run on a Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Application id: the consumer group, the prefix of internal topics and of the transactional id.
    pub application_id: String,
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Client properties applied to every client (as kcat's `-X key=value`): security, timeouts, ….
    pub properties: Vec<(String, String)>,
    /// State directory.
    pub state_dir: PathBuf,
    /// Exactly-once through transactions (else at-least-once).
    pub exactly_once: bool,
    /// How often state is flushed and offsets committed (Kafka Streams: 30 s, 100 ms under exactly-once).
    pub commit_interval: Duration,
    /// Write-back cache per store, bytes.
    pub cache_max_bytes: usize,
    /// Redis writes for output records, flushed with every commit.
    pub redis: Option<RedisOutput>,
    /// Set to stop: the run commits, closes its tasks, leaves the group and returns.
    pub stop: Option<Arc<AtomicBool>>,
    /// Records polled at most before the batch is processed.
    pub max_poll_records: usize,
    /// Idle advance: a task with no records for this long moves its stream time on with the wall clock
    /// (off by default; see the README's time model).
    pub idle_advance: Option<Duration>,
    /// Metrics and readiness for the operations endpoints ([`crate::metrics::serve`]): updated at
    /// every commit and rebalance; ready while partitions are assigned and no task is restoring.
    pub metrics: Option<Arc<crate::metrics::AppMetrics>>,
}

impl KafkaConfig {
    /// A run of `application_id` on the cluster at `bootstrap_servers`, state under `state_dir`.
    pub fn new(application_id: &str, bootstrap_servers: &str, state_dir: impl Into<PathBuf>) -> Self {
        KafkaConfig {
            application_id: application_id.to_string(),
            bootstrap_servers: bootstrap_servers.to_string(),
            properties: Vec::new(),
            state_dir: state_dir.into(),
            exactly_once: false,
            commit_interval: Duration::from_secs(30),
            cache_max_bytes: 10 << 20,
            redis: None,
            stop: None,
            max_poll_records: 1000,
            idle_advance: None,
            metrics: None,
        }
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

/// Logs a cluster outage once when it begins and once when it ends.
#[derive(Default)]
struct Outage {
    down: AtomicBool,
}

impl Outage {
    fn report(&self, error: &KafkaError, reason: &str) {
        let all_down = error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown);
        if all_down {
            if !self.down.swap(true, Ordering::SeqCst) {
                tracing::warn!(reason, "the Kafka cluster is unreachable; retrying");
            }
        } else {
            tracing::debug!(%error, reason, "kafka client");
        }
    }
    fn reachable(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            tracing::info!("the Kafka cluster is reachable again");
        }
    }
}

/// A group rebalance, applied by the loop.
enum GroupEvent {
    Assign(TopicPartitionList),
    Revoke(TopicPartitionList),
    Error(String),
}

struct GroupContext {
    events: Mutex<Vec<GroupEvent>>,
    /// While leaving the group, rebalances are applied at once (nobody polls for them any more).
    closing: AtomicBool,
    outage: Arc<Outage>,
    /// Consumer lag per partition comes from librdkafka's statistics (`statistics.interval.ms`).
    metrics: Option<Arc<crate::metrics::AppMetrics>>,
}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.outage.report(&error, reason);
    }
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(m) = &self.metrics else { return };
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is "unknown" and the internal partition -1 is librdkafka's own
                if *partition >= 0 && p.consumer_lag >= 0 {
                    m.set_lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log(level, fac, message);
    }
}

/// librdkafka's own log lines, as tracing events of target `librdkafka` (its `debug` property turns
/// on more of them).
pub(crate) fn librdkafka_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        if self.closing.load(Ordering::SeqCst) {
            let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
            let _ = match (err, cooperative) {
                (RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, _) => Ok(()),
                (_, true) => consumer.incremental_unassign(tpl),
                (_, false) => consumer.unassign(),
            };
            return;
        }
        let event = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => GroupEvent::Assign(tpl.clone()),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => GroupEvent::Revoke(tpl.clone()),
            other => GroupEvent::Error(format!("{other:?}")),
        };
        self.events.lock().expect("not poisoned").push(event);
    }
}

/// Waits for the cluster at start: retries with backoff (1 s doubling to 30 s), one log line when
/// waiting begins (or its reason changes) and one when it ends. An unreachable cluster and a source
/// topic that does not exist yet (deployments often create topics and start apps in any order) are
/// waited for; other errors (co-partitioning, configuration) end the run.
fn wait_for_cluster<T>(config: &KafkaConfig, mut attempt: impl FnMut() -> Result<T>) -> Result<Option<T>> {
    let mut backoff = Duration::from_secs(1);
    let mut waiting: Option<String> = None;
    loop {
        match attempt() {
            Ok(v) => {
                if waiting.is_some() {
                    tracing::info!(bootstrap = %config.bootstrap_servers, "the Kafka cluster is reachable");
                }
                return Ok(Some(v));
            }
            Err(e) => {
                let text = e.to_string();
                let reason = if text.starts_with("cannot reach the cluster") {
                    "waiting for the Kafka cluster"
                } else if text.starts_with("source topic") && text.contains("does not exist") {
                    "waiting for a source topic"
                } else {
                    return Err(e);
                };
                if waiting.as_deref() != Some(reason) {
                    tracing::warn!(bootstrap = %config.bootstrap_servers, error = %text, "{reason}");
                    waiting = Some(reason.to_string());
                }
            }
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if config.stopping() {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// The instance's own id, kept in the state directory so a restarted instance reuses its
/// transactional id (and so fences and aborts what its previous incarnation left open).
fn instance_id(config: &KafkaConfig) -> Result<String> {
    let dir = config.state_dir.join(&config.application_id);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("instance-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    let id = format!("{:016x}", h.finish());
    crate::task::write_atomically(&path, id.as_bytes())?;
    Ok(id)
}

fn raw_of(m: &BorrowedMessage<'_>) -> RawRecord {
    let mut headers = Headers::default();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            headers.add(h.key, h.value.unwrap_or_default().to_vec());
        }
    }
    RawRecord {
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        headers,
    }
}

/// The running instance.
struct Runner<'a> {
    config: &'a KafkaConfig,
    engine: Engine,
    consumer: BaseConsumer<GroupContext>,
    producer: SharedProducer,
    cooperative: bool,
    /// Partitions owned now.
    assigned: BTreeSet<(String, i32)>,
    /// Next offset to commit per owned partition (everything before it is processed).
    positions: HashMap<(String, i32), i64>,
    redis: Option<(RedisSink, super::embedded::RedisMapper)>,
    summary: RunSummary,
    outage: Arc<Outage>,
    last_consume_error: Option<String>,
    /// Tasks being restored on their own threads; their partitions are paused meanwhile.
    restoring: HashMap<TaskId, std::thread::JoinHandle<Result<RestoreStats>>>,
    /// Owned partitions paused until their tasks are open.
    paused: BTreeSet<(String, i32)>,
    /// Records fetched for a paused partition before the pause took effect, delivered once it resumes.
    held: HashMap<(String, i32), Vec<(i64, RawRecord)>>,
}

/// Runs `topology` on the cluster until `config.stop` is set.
pub fn run_kafka(topology: &Topology, config: &KafkaConfig) -> Result<RunSummary> {
    let client = config.client();
    let Some(setup) = wait_for_cluster(config, || prepare_topics(topology, &config.application_id, &client))? else {
        return Ok(RunSummary { stopped: true, ..Default::default() });
    };
    for t in &setup.created {
        tracing::info!(topic = %t, "created topic");
    }
    let outage = Arc::new(Outage::default());
    let mut producer_config = ClientConfig::new();
    producer_config
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random") // keyed records land where Java clients put them
        .set("linger.ms", "5")
        .set("transaction.timeout.ms", "10000");
    for (k, v) in client.config_map().iter() {
        producer_config.set(*k, *v); // the user's settings win
    }
    if config.exactly_once {
        let id = instance_id(config)?;
        producer_config.set("transactional.id", format!("{}-{id}", config.application_id));
    }
    let mut deliveries = Deliveries::default();
    let o = outage.clone();
    deliveries.on_error = Some(Box::new(move |e, r| o.report(e, r)));
    let producer: SharedProducer = Arc::new(
        producer_config.create_with_context(deliveries).map_err(|e| kafka_error("cannot create a producer", e))?,
    );
    if config.exactly_once {
        producer.init_transactions(Duration::from_secs(60)).map_err(|e| kafka_error("cannot init transactions", e))?;
        producer.begin_transaction().map_err(|e| kafka_error("cannot begin a transaction", e))?;
    }
    let changelog_client = client.clone();
    let changelog_producer = producer.clone();
    let eos = config.exactly_once;
    let factory: ChangelogFactory = Arc::new(move |topic: &str, partition: u32| {
        let log = KafkaChangelog::with_producer(&changelog_client, changelog_producer.clone(), eos, topic, partition);
        Ok(Box::new(log) as Box<dyn Changelog>)
    });
    let state = StateConfig::new(&config.state_dir)
        .cache_max_bytes(config.cache_max_bytes)
        .exactly_once(config.exactly_once)
        .changelogs(factory);
    let engine_config = EngineConfig {
        application_id: config.application_id.clone(),
        default_partitions: 1,
        partitions: setup.partitions.clone().into_iter().collect(),
        wall_clock: super::now_ms(),
        state: Some(state),
        keep_records: false,
        lazy_tasks: true,
    };
    let mut engine = Engine::new(topology, engine_config)?;
    if config.metrics.is_some() {
        engine.sample_latency();
    }
    engine.set_external();
    engine.set_idle_advance(config.idle_advance);
    if !engine.global_topics.is_empty() {
        return Err(kafka_error(
            "global tables are not supported on the Kafka runtime yet",
            format!("topics {:?}", engine.global_topics),
        ));
    }
    // Co-partitioned inputs of one task must be assigned together: the range assignor does it.
    let joins_topics = topology.subtopologies.iter().any(|nodes| topology.source_topics_of(nodes).len() > 1);
    let mut consumer_config = client.clone();
    consumer_config
        .set("group.id", &config.application_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", if joins_topics { "range" } else { "cooperative-sticky" })
        .set("isolation.level", if config.exactly_once { "read_committed" } else { "read_uncommitted" });
    if config.metrics.is_some() {
        consumer_config.set("statistics.interval.ms", "5000"); // consumer lag for the metrics
    }
    for (k, v) in &config.properties {
        consumer_config.set(k, v); // the user's settings win
    }
    let context = GroupContext {
        events: Mutex::new(Vec::new()),
        closing: AtomicBool::new(false),
        outage: outage.clone(),
        metrics: config.metrics.clone(),
    };
    let consumer: BaseConsumer<GroupContext> =
        consumer_config.create_with_context(context).map_err(|e| kafka_error("cannot create a consumer", e))?;
    let mut topics: Vec<&String> = engine.consumers.keys().collect();
    topics.sort();
    let topics: Vec<&str> = topics.into_iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| kafka_error("cannot subscribe", e))?;
    tracing::info!(group = %config.application_id, topics = ?topics, exactly_once = config.exactly_once, "joined");
    let redis = match &config.redis {
        Some(r) => Some((
            RedisSink::open_tls(&r.url, &r.tls, r.max_buffered)
                .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())))?,
            r.mapper.clone(),
        )),
        None => None,
    };
    let cooperative = !joins_topics;
    let mut runner = Runner {
        config,
        engine,
        consumer,
        producer,
        cooperative,
        assigned: BTreeSet::new(),
        positions: HashMap::new(),
        redis,
        summary: RunSummary::default(),
        outage,
        last_consume_error: None,
        restoring: HashMap::new(),
        paused: BTreeSet::new(),
        held: HashMap::new(),
    };
    let result = runner.run();
    let closed = runner.shut_down(result.is_ok());
    result.and(closed)?;
    Ok(runner.summary)
}

impl Runner<'_> {
    fn run(&mut self) -> Result<()> {
        let mut last_commit = Instant::now();
        let mut last_wall_clock = Instant::now();
        let mut last_redis_flush = Instant::now();
        loop {
            if self.config.stopping() {
                self.summary.stopped = true;
                return Ok(());
            }
            let polled = self.poll_batch()?;
            self.finish_restores()?;
            self.engine.run()?;
            self.produce_outbox()?;
            // Redis writes become visible as soon as input pauses (at least every millisecond under
            // load), not only at commits (at-least-once; under exactly-once they wait for the commit).
            if !self.config.exactly_once && (polled == 0 || last_redis_flush.elapsed() >= Duration::from_millis(1)) {
                if let Some((sink, _)) = self.redis.as_mut() {
                    sink.flush();
                }
                last_redis_flush = Instant::now();
            }
            self.apply_group_events()?;
            if last_wall_clock.elapsed() >= Duration::from_millis(100) {
                self.engine.advance_wall_clock(super::now_ms())?;
                last_wall_clock = Instant::now();
            }
            if last_commit.elapsed() >= self.config.commit_interval {
                self.commit()?;
                last_commit = Instant::now();
            }
        }
    }

    /// Polls up to `max_poll_records` records (waiting up to 100 ms for the first) and hands them to the
    /// tasks; stops early when a rebalance is pending. Returns how many were polled.
    fn poll_batch(&mut self) -> Result<usize> {
        let mut timeout = Duration::from_millis(100);
        let mut polled = 0;
        for _ in 0..self.config.max_poll_records {
            let Some(message) = self.consumer.poll(timeout) else { break };
            timeout = Duration::ZERO;
            match message {
                Ok(m) => {
                    polled += 1;
                    self.outage.reachable();
                    self.last_consume_error = None;
                    let topic = m.topic().to_string();
                    let partition = m.partition();
                    if !self.assigned.contains(&(topic.clone(), partition)) {
                        continue; // left over from a partition given up
                    }
                    let raw = raw_of(&m);
                    let tp = (topic, partition);
                    if self.paused.contains(&tp) {
                        self.held.entry(tp).or_default().push((m.offset(), raw));
                    } else {
                        self.deliver(&tp, m.offset(), raw)?;
                    }
                }
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) => {
                    self.outage.report(&e, "consumer");
                    break;
                }
                Err(e) => {
                    // Logged once until records flow again (librdkafka retries by itself).
                    let text = e.to_string();
                    if self.last_consume_error.as_deref() != Some(&text) {
                        tracing::warn!(error = %text, "consume error");
                        self.last_consume_error = Some(text);
                    }
                    break;
                }
            }
            if !self.consumer.context().events.lock().expect("not poisoned").is_empty() {
                break;
            }
        }
        Ok(polled)
    }

    fn deliver(&mut self, (topic, partition): &(String, i32), offset: i64, raw: RawRecord) -> Result<()> {
        self.positions.insert((topic.clone(), *partition), offset + 1);
        *self.summary.records_in.entry(topic.clone()).or_default() += 1;
        self.engine.deliver(topic, *partition as u32, offset as u64, raw)
    }

    /// Opens the tasks whose background restore finished and resumes the partitions whose tasks are
    /// all open (delivering what was fetched for them before the pause).
    fn finish_restores(&mut self) -> Result<()> {
        let done: Vec<TaskId> = self.restoring.iter().filter(|(_, h)| h.is_finished()).map(|(id, _)| *id).collect();
        for id in done {
            let started = Instant::now();
            let stats = self.restoring.remove(&id).expect("listed").join().map_err(|_| Error::State {
                store: format!("task {id}"),
                message: "the restore thread panicked".into(),
            })??;
            self.engine.open_task(id)?;
            tracing::info!(
                task = %id,
                restored_records = stats.records,
                restore_ms = stats.micros / 1000,
                open_ms = started.elapsed().as_millis() as u64,
                "task restored in the background"
            );
        }
        if self.paused.is_empty() {
            return Ok(());
        }
        let ready: Vec<(String, i32)> = self
            .paused
            .iter()
            .filter(|(t, p)| {
                self.engine.tasks_reading(t, *p as u32).iter().all(|id| self.engine.tasks.contains_key(id))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &ready {
            tpl.add_partition(t, *p);
            self.paused.remove(&(t.clone(), *p));
        }
        self.consumer.resume(&tpl).map_err(|e| kafka_error("cannot resume", e))?;
        for tp in ready {
            for (offset, raw) in self.held.remove(&tp).unwrap_or_default() {
                self.deliver(&tp, offset, raw)?;
            }
        }
        Ok(())
    }

    /// Waits for the background restores of `ids` (their partitions are being given up, or the
    /// instance stops).
    fn join_restores(&mut self, ids: &BTreeSet<TaskId>) {
        for id in ids {
            if let Some(h) = self.restoring.remove(id) {
                let _ = h.join();
            }
        }
    }

    fn produce_outbox(&mut self) -> Result<()> {
        for super::engine::Outgoing { topic, raw, .. } in std::mem::take(&mut self.engine.outbox) {
            if let Some((sink, mapper)) = self.redis.as_mut() {
                for c in mapper(&topic, &raw) {
                    sink.push(c);
                }
            }
            let mut headers = OwnedHeaders::new();
            for (k, v) in &raw.headers.0 {
                headers = headers.insert(Header { key: k, value: Some(v) });
            }
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic).timestamp(raw.timestamp);
            if let Some(k) = raw.key.as_deref() {
                record = record.key(k);
            }
            if let Some(v) = raw.value.as_deref() {
                record = record.payload(v);
            }
            if !raw.headers.is_empty() {
                record = record.headers(headers);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(kafka_error(&format!("cannot produce to `{topic}`"), e)),
                }
            }
            *self.summary.records_out.entry(topic.to_string()).or_default() += 1;
        }
        Ok(())
    }

    fn owned_offsets(&self, only: Option<&BTreeSet<(String, i32)>>) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for ((t, p), offset) in &self.positions {
            if only.is_none_or(|o| o.contains(&(t.clone(), *p))) && self.assigned.contains(&(t.clone(), *p)) {
                tpl.add_partition_offset(t, *p, Offset::Offset(*offset)).map_err(|e| kafka_error("offsets", e))?;
            }
        }
        Ok(tpl)
    }

    /// Commits state, outputs and consumed offsets together (see the module docs).
    fn commit(&mut self) -> Result<()> {
        let started = Instant::now();
        self.engine.run()?;
        self.engine.commit()?;
        self.produce_outbox()?;
        let state_ms = started.elapsed().as_millis() as u64;
        let offsets = self.owned_offsets(None)?;
        if self.config.exactly_once {
            if offsets.count() > 0 {
                let group = self.consumer.group_metadata().ok_or_else(|| kafka_error("no group metadata", ""))?;
                if let Err(e) = self.producer.send_offsets_to_transaction(&offsets, &group, Duration::from_secs(60)) {
                    return self.abort(e);
                }
            }
            if let Err(e) = self.producer.commit_transaction(Duration::from_secs(60)) {
                return self.abort(e);
            }
            self.producer.begin_transaction().map_err(|e| kafka_error("cannot begin a transaction", e))?;
        } else {
            self.wait_for_deliveries()?;
            if offsets.count() > 0 {
                if let Err(e) = self.consumer.commit(&offsets, CommitMode::Sync) {
                    // Not fatal: the next commit carries later offsets; a crash meanwhile reprocesses.
                    tracing::warn!(error = %e, "offset commit failed; retrying at the next commit");
                    return Ok(());
                }
            }
        }
        self.outage.reachable();
        if let Some((sink, _)) = self.redis.as_mut() {
            sink.flush();
        }
        self.summary.commits += 1;
        tracing::debug!(state_ms, total_ms = started.elapsed().as_millis() as u64, "committed");
        if let Some(m) = &self.config.metrics {
            m.commit(started.elapsed().as_secs_f64(), true);
            self.observe(m);
        }
        Ok(())
    }

    /// Folds the run's figures into the metrics and says whether it is ready.
    fn observe(&self, m: &crate::metrics::AppMetrics) {
        let redis = self.redis.as_ref().map(|(sink, _)| sink);
        super::observe_run(m, &self.engine, &self.summary, self.restoring.len(), redis);
        m.set_ready(!self.assigned.is_empty() && self.restoring.is_empty());
    }

    /// At-least-once: every produced record must be acknowledged before offsets past its input commit.
    fn wait_for_deliveries(&mut self) -> Result<()> {
        // Waits on the in-flight count (the producer's thread serves delivery reports); not
        // `Producer::flush`, whose polling has a 100 ms granularity.
        let started = Instant::now();
        let mut warned = false;
        while self.producer.in_flight_count() > 0 && !self.producer.context().has_error() {
            if !warned && started.elapsed() > Duration::from_secs(30) {
                tracing::warn!("outputs wait for the cluster");
                warned = true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if let Some(e) = self.producer.context().take_error() {
            return Err(kafka_error("a produced record was not delivered", e));
        }
        Ok(())
    }

    /// A transaction failed: abort it, drop every task's state (it restores from the committed
    /// changelog) and rewind the consumer to the committed offsets.
    fn abort(&mut self, e: KafkaError) -> Result<()> {
        let fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal());
        if fatal {
            return Err(kafka_error("the transaction failed (fatal; another instance took over?)", e));
        }
        tracing::warn!(error = %e, "transaction failed; aborting and restoring from the changelogs");
        self.producer.abort_transaction(Duration::from_secs(60)).map_err(|e| kafka_error("cannot abort", e))?;
        let ids: Vec<TaskId> = self.engine.tasks.keys().copied().collect();
        for id in &ids {
            self.engine.close_task(*id, false)?;
        }
        self.engine.outbox.clear();
        for id in ids {
            self.engine.open_task(id)?;
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &self.assigned {
            tpl.add_partition(t, *p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(30))
            .map_err(|e| kafka_error("cannot read committed offsets", e))?;
        let mut seek = TopicPartitionList::new();
        for el in committed.elements() {
            let offset = match el.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            seek.add_partition_offset(el.topic(), el.partition(), offset).map_err(|e| kafka_error("seek", e))?;
        }
        self.consumer.seek_partitions(seek, Duration::from_secs(30)).map_err(|e| kafka_error("cannot rewind", e))?;
        self.positions.clear();
        self.producer.begin_transaction().map_err(|e| kafka_error("cannot begin a transaction", e))?;
        Ok(())
    }

    fn tasks_of(&self, partitions: &BTreeSet<(String, i32)>) -> BTreeSet<TaskId> {
        partitions.iter().flat_map(|(t, p)| self.engine.tasks_reading(t, *p as u32)).collect()
    }

    fn apply_group_events(&mut self) -> Result<()> {
        let events: Vec<GroupEvent> =
            std::mem::take(&mut *self.consumer.context().events.lock().expect("not poisoned"));
        for event in events {
            if let Some(m) = &self.config.metrics {
                m.rebalance();
            }
            match event {
                GroupEvent::Revoke(tpl) => self.revoke(&tpl)?,
                GroupEvent::Assign(tpl) => self.assign(&tpl)?,
                GroupEvent::Error(e) => {
                    tracing::warn!(error = %e, "rebalance failed; giving up the assignment");
                    let all = self.assigned.clone();
                    self.give_up(&all)?;
                    if !self.cooperative {
                        let _ = self.consumer.unassign();
                    }
                }
            }
        }
        Ok(())
    }

    fn partitions(tpl: &TopicPartitionList) -> BTreeSet<(String, i32)> {
        tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect()
    }

    /// Partitions are taken away: commit while they are still owned, then close their tasks.
    fn revoke(&mut self, tpl: &TopicPartitionList) -> Result<()> {
        let revoked = Self::partitions(tpl);
        let lost = self.consumer.assignment_lost();
        tracing::info!(partitions = revoked.len(), lost, "partitions revoked");
        if !lost {
            self.commit()?;
        }
        self.give_up(&revoked)?;
        if self.cooperative {
            self.consumer.incremental_unassign(tpl).map_err(|e| kafka_error("cannot unassign", e))?;
        } else {
            self.consumer.unassign().map_err(|e| kafka_error("cannot unassign", e))?;
        }
        tracing::debug!("revocation applied");
        Ok(())
    }

    /// Closes the tasks of `partitions` cleanly (their state is committed) and forgets the partitions.
    fn give_up(&mut self, partitions: &BTreeSet<(String, i32)>) -> Result<()> {
        let ids = self.tasks_of(partitions);
        self.join_restores(&ids);
        for id in ids {
            self.engine.close_task(id, true)?;
        }
        self.produce_outbox()?;
        for p in partitions {
            self.assigned.remove(p);
            self.positions.remove(p);
            self.paused.remove(p);
            self.held.remove(p);
        }
        Ok(())
    }

    /// Partitions are given: their tasks are restored on their own threads (tasks already open stay),
    /// the partitions are assigned and paused until their tasks are open; the rest keeps processing.
    fn assign(&mut self, tpl: &TopicPartitionList) -> Result<()> {
        let added = Self::partitions(tpl);
        let mut started = 0;
        for id in self.tasks_of(&added) {
            if self.engine.tasks.contains_key(&id) || self.restoring.contains_key(&id) {
                continue;
            }
            match self.engine.restore_job(id) {
                Some(job) => {
                    let handle = std::thread::Builder::new()
                        .name(format!("restore-{id}"))
                        .spawn(job)
                        .map_err(|e| kafka_error("cannot start a restore thread", e))?;
                    self.restoring.insert(id, handle);
                    started += 1;
                }
                None => self.engine.open_task(id)?,
            }
        }
        tracing::info!(partitions = added.len(), restoring_tasks = started, "partitions assigned");
        self.assigned.extend(added.iter().cloned());
        if self.cooperative {
            self.consumer.incremental_assign(tpl).map_err(|e| kafka_error("cannot assign", e))?;
        } else {
            self.consumer.assign(tpl).map_err(|e| kafka_error("cannot assign", e))?;
        }
        let waiting: Vec<&(String, i32)> = added
            .iter()
            .filter(|(t, p)| {
                self.engine.tasks_reading(t, *p as u32).iter().any(|id| !self.engine.tasks.contains_key(id))
            })
            .collect();
        if !waiting.is_empty() {
            let mut pause = TopicPartitionList::new();
            for (t, p) in &waiting {
                pause.add_partition(t, *p);
            }
            self.consumer.pause(&pause).map_err(|e| kafka_error("cannot pause", e))?;
            self.paused.extend(waiting.into_iter().cloned());
        }
        Ok(())
    }

    /// Final commit, clean close of every task, leaving the group.
    fn shut_down(&mut self, clean: bool) -> Result<()> {
        let restoring: BTreeSet<TaskId> = self.restoring.keys().copied().collect();
        self.join_restores(&restoring);
        let mut result = Ok(());
        if clean {
            result = self.commit();
        }
        let ids: Vec<TaskId> = self.engine.tasks.keys().copied().collect();
        for id in ids {
            let r = self.engine.close_task(id, clean && result.is_ok());
            if result.is_ok() {
                result = r;
            }
        }
        if clean && result.is_ok() {
            // What closing flushed (table changes held back until commit).
            result = self.produce_outbox().and_then(|()| self.commit());
        }
        if let Some((sink, _)) = self.redis.as_mut() {
            self.summary.redis_outages = sink.metrics().outages;
            let _ = sink.flush_within(Duration::from_secs(30));
            self.summary.redis_commands = sink.metrics().commands_written;
        }
        if self.config.exactly_once && result.is_err() {
            let _ = self.producer.abort_transaction(Duration::from_secs(10));
        }
        let _ = self.producer.flush(Duration::from_secs(30));
        self.consumer.context().closing.store(true, Ordering::SeqCst);
        self.consumer.unsubscribe();
        result
    }
}
