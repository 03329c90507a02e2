//! A changelog kept in a Kafka topic partition (`<application-id>-<store>-changelog`), for the Kafka
//! runtime. Appends go through an idempotent producer. The task that owns a store is the only writer of
//! its changelog partition, so the end offset is the end found by the restore plus the records delivered
//! since. A restore reads from an offset until librdkafka reports the partition's end (from the fetch
//! responses' high watermark); for an empty partition, whose end some brokers never report, a quiet second
//! and a high watermark of 0 end it. Other watermark answers are not trusted (tansu's memory engine
//! reports less than the true end).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::state::{Changelog, ReplayFn};

/// Counts delivered records and remembers the first delivery error.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicI64,
    error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
            }
            Err((e, _)) => {
                let mut slot = self.error.lock().expect("not poisoned");
                slot.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn kafka(topic: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::State { store: topic.to_string(), message: format!("{what}: {e}") }
}

/// One changelog partition in Kafka.
pub struct KafkaChangelog {
    topic: String,
    partition: i32,
    producer: BaseProducer<Deliveries>,
    consumer_config: ClientConfig,
    /// The offset the next record will get, as far as this instance knows.
    end: u64,
    /// Records sent since the last flush.
    sent: i64,
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
        let producer: BaseProducer<Deliveries> = producer_config
            .create_with_context(Deliveries::default())
            .map_err(|e| kafka(topic, "cannot create a producer", e))?;
        let mut consumer_config = client.clone();
        consumer_config
            .set("group.id", format!("{topic}-restore"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        Ok(KafkaChangelog {
            topic: topic.to_string(),
            partition: partition as i32,
            producer,
            consumer_config,
            end: 0,
            sent: 0,
            timeout: Duration::from_secs(30),
        })
    }
}

impl Changelog for KafkaChangelog {
    fn append(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<()> {
        let mut record = BaseRecord::to(&self.topic).partition(self.partition).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        if timestamp != i64::MIN && timestamp != i64::MAX {
            record = record.timestamp(timestamp);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => return Err(kafka(&self.topic, "cannot send", e)),
            }
        }
    }

    fn flush(&mut self) -> Result<u64> {
        self.producer.flush(self.timeout).map_err(|e| kafka(&self.topic, "flush failed", e))?;
        // Delivery reports are served by polling: wait until every sent record is reported.
        let deadline = Instant::now() + self.timeout;
        while self.producer.context().delivered.load(Ordering::SeqCst) < self.sent
            && self.producer.context().error.lock().expect("not poisoned").is_none()
        {
            if Instant::now() > deadline {
                return Err(kafka(&self.topic, "flush failed", "delivery reports missing"));
            }
            self.producer.poll(Duration::from_millis(10));
        }
        self.sent = 0;
        if let Some(e) = self.producer.context().error.lock().expect("not poisoned").take() {
            return Err(kafka(&self.topic, "a changelog record was not delivered", e));
        }
        let delivered = self.producer.context().delivered.swap(0, Ordering::SeqCst);
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
        let deadline = Instant::now() + self.timeout;
        let mut next = from;
        let mut quiet_since = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    f(m.key().unwrap_or_default(), m.payload())?;
                    next = m.offset() as u64 + 1;
                    quiet_since = Instant::now();
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
                None => {
                    // Some brokers never signal the end of an empty partition: after a quiet second, ask.
                    // Only "empty" (high watermark 0) is trusted: a broker's ListOffsets may report less
                    // than the true end of a non-empty partition, and stopping early would lose state.
                    if next == 0 && quiet_since.elapsed() >= Duration::from_secs(1) {
                        let (_, high) = consumer
                            .fetch_watermarks(&self.topic, self.partition, Duration::from_secs(5))
                            .map_err(|e| kafka(&self.topic, "cannot read the end offset", e))?;
                        if high == 0 {
                            break;
                        }
                        quiet_since = Instant::now();
                    }
                }
            }
        }
        self.end = self.end.max(next);
        Ok(self.end)
    }

    fn truncate(&mut self, offset: u64) -> Result<()> {
        // On Kafka, uncommitted changelog records belong to aborted transactions (read_committed skips
        // them); nothing can be cut off a topic.
        Err(kafka(
            &self.topic,
            "cannot truncate a Kafka changelog",
            format!("to offset {offset}; exactly-once on Kafka uses transactions"),
        ))
    }
}
