//! End to end through a real broker (tansu 0.6.0, memory storage, started here on a free port): the
//! keyed tumbling-count topology on the Kafka runtime with 1 and 2 instances (child processes of this
//! binary, one consumer group).
//!
//! ```text
//! cargo bench -p topology --bench kafka_e2e              # the table
//! ```
//! - throughput: 200,000 records (10,000 keys, 4 partitions) produced before the instances start; the
//!   time from the first output record to the last, and records/s over it;
//! - latency: records produced at a fixed rate, each stamped with its produce time; every count update
//!   (no cache, so one output per input) read back by a consumer; latency = time read − produce time
//!   (p50/p99/max).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use topology::testing::{Broker, Build};
use topology::{Consumed, Grouped, KafkaConfig, Materialized, Produced, Serdes, StreamsBuilder, TimeWindows, Topology};

const PARTITIONS: i32 = 4;
const KEYS: u64 = 10_000;
const CHILD: &str = "TOPOLOGY_BENCH_INSTANCE";

fn topology() -> Topology {
    let mut b = StreamsBuilder::new();
    b.stream("events", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::as_("by-user"))
        .windowed_by(TimeWindows::of(Duration::from_secs(60)).grace(Duration::from_secs(5)))
        .count(Materialized::as_("counts"))
        .to_stream()
        .map(|k, v| (k.key, v.unwrap_or(0) as i64))
        .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
    b.build().expect("topology builds")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn producer(broker: &Broker) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "1")
        .create()
        .unwrap()
}

fn send(p: &BaseProducer, n: u64, ts: i64) {
    let key = format!("user-{}", n % KEYS);
    let value = 1i64.to_be_bytes();
    let mut record = BaseRecord::to("events").key(&key).payload(&value[..]).timestamp(ts);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

fn start_instances(broker: &Broker, n: usize, dir: &std::path::Path) -> Vec<Child> {
    (0..n)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .env(CHILD, format!("{}|{}", broker.bootstrap(), dir.join(format!("i{i}")).display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn stop_instances(children: Vec<Child>) {
    for mut c in children {
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let _ = c.wait();
    }
}

fn counts_consumer(broker: &Broker) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "bench-reader")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    // The app creates `counts` at start; wait for it.
    loop {
        let md = c.fetch_metadata(Some("counts"), Duration::from_secs(5)).unwrap();
        if md.topics().iter().any(|t| t.name() == "counts" && !t.partitions().is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("counts", p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

fn throughput(instances: usize, records: u64) -> (f64, f64) {
    let broker = Broker::start(Build::CratesIo);
    broker.create_topic("events", PARTITIONS);
    let p = producer(&broker);
    let ts = now_ms();
    for n in 0..records {
        send(&p, n, ts);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let children = start_instances(&broker, instances, dir.path());
    let c = counts_consumer(&broker);
    let mut seen = 0u64;
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < records && Instant::now() < deadline {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            seen += 1;
        }
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    stop_instances(children);
    assert_eq!(seen, records, "every record counted");
    (secs, records as f64 / secs)
}

/// Tasks whose state directory an instance holds open (lock taken).
fn held_tasks(app_dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(app_dir) else { return 0 };
    entries
        .filter_map(|e| std::fs::OpenOptions::new().write(true).open(e.ok()?.path().join(".lock")).ok())
        .filter(|f| f.try_lock().is_err())
        .count()
}

fn latency(instances: usize, rate: u64, seconds: u64) -> (f64, f64, f64) {
    let broker = Broker::start(Build::CratesIo);
    broker.create_topic("events", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let children = start_instances(&broker, instances, dir.path());
    let c = counts_consumer(&broker);
    // Warm-up: wait until the group is formed and a first record goes through.
    let p = producer(&broker);
    send(&p, 0, now_ms());
    p.flush(Duration::from_secs(10)).unwrap();
    while c.poll(Duration::from_millis(100)).is_none() {}
    // Every instance owns tasks before measuring (a rebalance is not what this measures).
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..instances).any(|i| held_tasks(&dir.path().join(format!("i{i}")).join("bench")) == 0) {
        assert!(Instant::now() < deadline, "the group did not settle");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    while c.poll(Duration::from_millis(100)).is_some() {}
    let stop = Arc::new(AtomicBool::new(false));
    let total = rate * seconds;
    let producer_thread = {
        let bootstrap = broker.bootstrap();
        std::thread::spawn(move || {
            let p: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("partitioner", "murmur2_random")
                .set("linger.ms", "1")
                .create()
                .unwrap();
            let start = Instant::now();
            for n in 0..total {
                let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                send(&p, n + 1, now_ms());
                p.poll(Duration::ZERO);
            }
            p.flush(Duration::from_secs(30)).unwrap();
        })
    };
    let mut lat: Vec<i64> = Vec::with_capacity(total as usize);
    let deadline = Instant::now() + Duration::from_secs(seconds + 120);
    while (lat.len() as u64) < total && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            if let Some(ts) = m.timestamp().to_millis() {
                lat.push(now_ms() - ts);
            }
        }
    }
    producer_thread.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    stop_instances(children);
    lat.sort_unstable();
    let q = |f: f64| lat[((lat.len() as f64 - 1.0) * f) as usize] as f64;
    (q(0.5), q(0.99), *lat.last().unwrap() as f64)
}

fn instance(spec: &str) {
    let (bootstrap, dir) = spec.split_once('|').unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone()).unwrap();
    let mut cfg = KafkaConfig::new("bench", bootstrap, dir);
    cfg.properties = vec![
        ("session.timeout.ms".into(), "6000".into()),
        ("heartbeat.interval.ms".into(), "1000".into()),
        ("fetch.wait.max.ms".into(), "5".into()),
    ];
    cfg.commit_interval = Duration::from_millis(100);
    cfg.cache_max_bytes = 0; // one output per input: what the latency is measured on
    cfg.stop = Some(stop);
    topology::run_kafka(&topology(), &cfg).unwrap();
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        return instance(&spec);
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "latency") {
        let n: usize = args[i + 1].parse().unwrap();
        let rate: u64 = args[i + 2].parse().unwrap();
        let (p50, p99, max) = latency(n, rate, 10);
        println!("| {n} | {rate} | {p50:.0} | {p99:.0} | {max:.0} |");
        return;
    }
    let records = 200_000;
    println!("| instances | records | seconds | records/s |");
    println!("|---|---|---|---|");
    for n in [1, 2] {
        let (secs, rate) = throughput(n, records);
        println!("| {n} | {records} | {secs:.1} | {rate:.0} |");
    }
    println!();
    println!("| instances | produce rate/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for n in [1, 2] {
        for rate in [1_000, 5_000] {
            let (p50, p99, max) = latency(n, rate, 10);
            println!("| {n} | {rate} | {p50:.0} | {p99:.0} | {max:.0} |");
        }
    }
}
