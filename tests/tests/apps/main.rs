//! Workspace tests of the apps: topology snapshots and end-to-end runs.

mod attribution;
mod fraud;

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
