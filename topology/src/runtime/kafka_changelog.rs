//! A changelog kept in a Kafka topic partition (`<application-id>-<store>-changelog`), for the Kafka
//! runtime. Appends go through an idempotent producer (the runtime's own, transactional one under
//! exactly-once, so changelog records commit or abort with the outputs and offsets). The task that owns a
//! store is the only writer of its changelog partition, so the end offset is the end found by the restore
//! plus the records delivered since (transaction markers also take offsets, so under exactly-once this
//! undercounts: a later restore then starts a little early, which is safe). A restore reads from an
//! offset until librdkafka reports the partition's end (from the fetch responses' high watermark, or the
//! last stable offset under read_committed); for an empty partition, whose end some brokers never report,
//! a quiet second and a high watermark of 0 end it. Other watermark answers are not trusted (tansu's
//! memory engine reports less than the true end).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::state::{Changelog, ReplayFn};

/// Sees every client error.
pub(crate) type ErrorHook = Box<dyn Fn(&KafkaError, &str) + Send + Sync>;

/// Counts delivered records per topic partition and remembers the first delivery error.
#[derive(Default)]
pub(crate) struct Deliveries {
    delivered: Mutex<HashMap<String, HashMap<i32, i64>>>,
    error: Mutex<Option<String>>,
    /// Called with every client error (the runtime logs broker outages from it).
    pub(crate) on_error: Option<ErrorHook>,
}

impl Deliveries {
    /// Takes the count of records delivered to `topic`/`partition` since the last call.
    fn take(&self, topic: &str, partition: i32) -> i64 {
        let mut map = self.delivered.lock().expect("not poisoned");
        map.get_mut(topic).and_then(|m| m.get_mut(&partition)).map_or(0, std::mem::take)
    }
    fn count(&self, topic: &str, partition: i32) -> i64 {
        let map = self.delivered.lock().expect("not poisoned");
        map.get(topic).and_then(|m| m.get(&partition)).copied().unwrap_or(0)
    }
    /// The first delivery error since the last call.
    pub(crate) fn take_error(&self) -> Option<String> {
        self.error.lock().expect("not poisoned").take()
    }
    pub(crate) fn has_error(&self) -> bool {
        self.error.lock().expect("not poisoned").is_some()
    }
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        match &self.on_error {
            Some(f) => f(&error, reason),
            None => tracing::debug!(%error, reason, "kafka producer"),
        }
    }
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        super::kafka::librdkafka_log(level, fac, message);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut map = self.delivered.lock().expect("not poisoned");
                let per_topic = match map.get_mut(m.topic()) {
                    Some(p) => p,
                    None => map.entry(m.topic().to_string()).or_default(),
                };
                *per_topic.entry(m.partition()).or_default() += 1;
            }
            Err((e, m)) => {
                let mut slot = self.error.lock().expect("not poisoned");
                slot.get_or_insert_with(|| format!("{e} (topic {})", m.topic()));
            }
        }
    }
}

/// A producer shared by a runtime's changelogs and outputs.
pub(crate) type SharedProducer = Arc<ThreadedProducer<Deliveries>>;

fn kafka(topic: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::State { store: topic.to_string(), message: format!("{what}: {e}") }
}

/// One changelog partition in Kafka.
pub struct KafkaChangelog {
    topic: String,
    partition: i32,
    producer: SharedProducer,
    consumer_config: ClientConfig,
    /// The offset the next record will get, as far as this instance knows.
    end: u64,
    /// Records sent since the last flush.
    sent: i64,
    /// Writes go through a transactional producer (exactly-once).
    transactional: bool,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaChangelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaChangelog").field("topic", &self.topic).field("partition", &self.partition).finish()
    }
}

impl KafkaChangelog {
    /// A changelog on `topic`/`partition` of the cluster `client` points at (bootstrap servers and any
    /// security settings). The topic must exist (the Kafka runtime creates it, compacted).
    pub fn new(client: &ClientConfig, topic: &str, partition: u32) -> Result<KafkaChangelog> {
        let mut producer_config = client.clone();
        producer_config.set("enable.idempotence", "true").set("linger.ms", "5");
        let producer: ThreadedProducer<Deliveries> = producer_config
            .create_with_context(Deliveries::default())
            .map_err(|e| kafka(topic, "cannot create a producer", e))?;
        Ok(KafkaChangelog::with_producer(client, Arc::new(producer), false, topic, partition))
    }

    /// A changelog written through `producer` (shared with the runtime; `transactional` when it is the
    /// exactly-once producer, whose uncommitted records restores skip).
    pub(crate) fn with_producer(
        client: &ClientConfig,
        producer: SharedProducer,
        transactional: bool,
        topic: &str,
        partition: u32,
    ) -> KafkaChangelog {
        let mut consumer_config = client.clone();
        consumer_config
            .set("group.id", format!("{topic}-restore"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest");
        KafkaChangelog {
            topic: topic.to_string(),
            partition: partition as i32,
            producer,
            consumer_config,
            end: 0,
            sent: 0,
            transactional,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Changelog for KafkaChangelog {
    fn append(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<()> {
        let mut record = BaseRecord::to(&self.topic).partition(self.partition).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        // The timestamp is the writer's stream time, which a restore takes up again: never let the
        // producer stamp its wall clock instead (0 = no stream time yet; restores read it as none).
        record = record.timestamp(timestamp.max(0));
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    std::thread::sleep(Duration::from_millis(5)); // the producer's thread drains the queue
                    record = r;
                }
                Err((e, _)) => return Err(kafka(&self.topic, "cannot send", e)),
            }
        }
    }

    fn flush(&mut self) -> Result<u64> {
        // The producer's own thread sends and serves delivery reports; this waits on the count (not
        // `Producer::flush`, whose polling has a 100 ms granularity). While the cluster is unreachable
        // librdkafka keeps retrying until `message.timeout.ms`, then reports the record as failed: an
        // outage blocks the commit, it never loses a write.
        let started = Instant::now();
        let mut warned = false;
        let ctx = self.producer.context();
        while ctx.count(&self.topic, self.partition) < self.sent && !ctx.has_error() {
            if !warned && started.elapsed() > self.timeout {
                tracing::warn!(topic = %self.topic, "changelog writes wait for the cluster");
                warned = true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if warned {
            tracing::info!(topic = %self.topic, waited_ms = started.elapsed().as_millis() as u64, "changelog writes resumed");
        }
        if let Some(e) = ctx.take_error() {
            return Err(kafka(&self.topic, "a record was not delivered", e));
        }
        let delivered = ctx.take(&self.topic, self.partition);
        self.sent = 0;
        self.end += delivered as u64;
        Ok(self.end)
    }

    fn read_from(&mut self, from: u64, f: &mut ReplayFn<'_>) -> Result<u64> {
        let consumer: BaseConsumer =
            self.consumer_config.create().map_err(|e| kafka(&self.topic, "cannot create a consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(from as i64))
            .map_err(|e| kafka(&self.topic, "bad offset", e))?;
        consumer.assign(&tpl).map_err(|e| kafka(&self.topic, "cannot assign", e))?;
        // Some brokers never signal the end of an empty partition, so an empty changelog (every store
        // of a new application) is recognised by asking first: one round trip per store. Only "empty"
        // (high watermark 0) is trusted: a broker's ListOffsets may report less than the true end of
        // a non-empty partition, and stopping early would lose state.
        if from == 0 {
            let (_, high) = consumer
                .fetch_watermarks(&self.topic, self.partition, Duration::from_secs(5))
                .map_err(|e| kafka(&self.topic, "cannot read the end offset", e))?;
            if high == 0 {
                return Ok(self.end);
            }
        }
        let deadline = Instant::now() + self.timeout;
        let mut next = from;
        loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let ts = m.timestamp().to_millis().filter(|&t| t > 0).unwrap_or(i64::MIN);
                    f(m.key().unwrap_or_default(), m.payload(), ts)?;
                    next = m.offset() as u64 + 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(kafka(&self.topic, "restore failed", e)),
                None if Instant::now() > deadline => {
                    return Err(kafka(
                        &self.topic,
                        "restore did not reach the end of the changelog",
                        format!("at offset {next}"),
                    ))
                }
                None => {}
            }
        }
        self.end = self.end.max(next);
        Ok(self.end)
    }

    fn truncate(&mut self, offset: u64) -> Result<()> {
        // On Kafka nothing can be cut off a topic. Under exactly-once, records after the last commit
        // belong to transactions that were aborted (or will be, when the producer is fenced), and
        // restores read committed records only: there is nothing to do.
        if self.transactional {
            return Ok(());
        }
        Err(kafka(
            &self.topic,
            "cannot truncate a Kafka changelog",
            format!("to offset {offset}; exactly-once on Kafka uses transactions"),
        ))
    }
}
