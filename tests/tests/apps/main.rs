//! Workspace tests of the apps: topology snapshots and end-to-end runs.

mod attribution;
mod compose;
mod fraud;
mod readmes;
mod shopper_features;

/// Produces `lines` (JSON) to `topic`, keyed by `key(value)`, stamped with the value's `time_field`.
pub(crate) fn produce(
    broker: &topology::testing::Broker,
    topic: &str,
    lines: &[String],
    key: impl Fn(&serde_json::Value) -> String,
    time_field: &str,
) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let k = key(&v);
        let ts = v[time_field].as_str().map_or(0, |t| topology::parse_timestamp(t).unwrap());
        let mut record = BaseRecord::to(topic).key(&k).payload(line).timestamp(ts);
        while let Err((_, r)) = producer.send(record) {
            record = r;
            producer.poll(std::time::Duration::from_millis(5));
        }
    }
    producer.flush(std::time::Duration::from_secs(30)).unwrap();
}

/// The sum of `group`'s committed offsets over partitions `0..partitions` of `topic`.
pub(crate) fn committed(broker: &topology::testing::Broker, group: &str, topic: &str, partitions: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, std::time::Duration::from_secs(10)).map_or(0, |t| {
        t.elements().iter().map(|e| if let rdkafka::Offset::Offset(o) = e.offset() { o } else { 0 }).sum()
    })
}

/// Produces `lines` to `topic` (see [`produce`]) and waits until `group` has consumed them.
pub(crate) fn feed(
    broker: &topology::testing::Broker,
    group: &str,
    topic: &str,
    lines: &[String],
    key: impl Fn(&serde_json::Value) -> String,
    time_field: &str,
    deadline: std::time::Instant,
) {
    let before = committed(broker, group, topic, 2);
    produce(broker, topic, lines, key, time_field);
    wait_consumed(broker, group, topic, before + lines.len() as i64, deadline);
}

/// Waits until `group` has committed `offsets` records (summed over 2 partitions) of `topic`.
pub(crate) fn wait_consumed(
    broker: &topology::testing::Broker,
    group: &str,
    topic: &str,
    offsets: i64,
    deadline: std::time::Instant,
) {
    while committed(broker, group, topic, 2) < offsets {
        assert!(std::time::Instant::now() < deadline, "{topic} not consumed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// An app on the Kafka runtime in a thread (test client settings, commit every 200 ms).
pub(crate) struct KafkaApp {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    run: std::thread::JoinHandle<topology::Result<topology::RunSummary>>,
}

impl KafkaApp {
    pub(crate) fn start<A: topology::Application>(broker: &topology::testing::Broker, state: &std::path::Path) -> Self {
        Self::start_with(broker, state, A::ID, || A::topology().unwrap())
    }

    /// Runs the topology `build` makes as application `id` (for a topology variant of an app).
    pub(crate) fn start_with(
        broker: &topology::testing::Broker,
        state: &std::path::Path,
        id: &str,
        build: fn() -> topology::Topology,
    ) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut cfg = topology::KafkaConfig::new(id, &broker.bootstrap(), state);
        cfg.properties =
            vec![("session.timeout.ms".into(), "6000".into()), ("heartbeat.interval.ms".into(), "1000".into())];
        cfg.commit_interval = std::time::Duration::from_millis(200);
        cfg.stop = Some(stop.clone());
        let run = std::thread::spawn(move || topology::run_kafka(&build(), &cfg));
        KafkaApp { stop, run }
    }

    pub(crate) fn stop(self) -> topology::RunSummary {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.run.join().unwrap().unwrap()
    }
}

/// A consumer of `topic` from its start (group `checker`), for reading what an app wrote.
pub(crate) fn checker(broker: &topology::testing::Broker, topic: &str) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "checker")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// JSON values read from `topic` from its start, until `done(values)` or the deadline.
pub(crate) fn read_values(
    broker: &topology::testing::Broker,
    topic: &str,
    deadline: std::time::Instant,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    use rdkafka::Message;
    let consumer = checker(broker, topic);
    let mut values = Vec::new();
    while !done(&values) && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200)) {
            values.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
        }
    }
    values
}
