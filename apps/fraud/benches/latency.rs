//! Transaction in → alert visible, on the embedded runtime: the `fraud` binary reads transactions on
//! stdin (each stamped with the time it is written) and writes alerts to stdout, and to a real
//! redis-server (PUBLISH on `alerts:fraud`, seen by a subscriber). One transaction in 20 is a fraud
//! that must alert (a first, very large amount). p50/p99 of both latencies per rate.
//!
//! The same through a broker (tansu 0.6.0 on a free port, memory storage): transactions produced to
//! `transactions` (4 partitions), the app on the Kafka runtime in a child process of this binary,
//! alerts read from `fraud_alerts` and from Redis.
//!
//! ```text
//! cargo bench -p fraud --bench latency            # embedded at 1k/10k/50k tx/s, broker at 1k/5k
//! BENCH_KEYED=1 BENCH_LINGER_MS=0 cargo bench -p fraud --bench latency -- kafka   # inputs keyed by user
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use topology::testing::RedisServer;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn percentile(v: &mut [i64], q: f64) -> i64 {
    v.sort_unstable();
    if v.is_empty() {
        return -1;
    }
    v[((v.len() - 1) as f64 * q) as usize]
}

/// Milliseconds since the transaction was written, from an alert's JSON.
fn age(alert: &serde_json::Value, now: i64) -> Option<i64> {
    let ts = alert["transaction"]["timestamp"].as_str()?;
    Some(now - topology::parse_timestamp(ts).ok()?)
}

/// Ages of the alerts published on `alerts:fraud`, from a subscriber thread (subscribed on return).
fn subscribe_alerts(url: &str) -> mpsc::Receiver<i64> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut conn = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
        let mut ps = conn.as_pubsub();
        ps.subscribe("alerts:fraud").unwrap();
        let _ = ready_tx.send(());
        while let Ok(msg) = ps.get_message() {
            let payload: String = msg.get_payload().unwrap();
            let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
            if let Some(a) = age(&v, now_ms()) {
                if tx.send(a).is_err() {
                    break;
                }
            }
        }
    });
    ready_rx.recv().unwrap();
    rx
}

fn run(rate: u64, seconds: u64) -> (usize, [i64; 2], [i64; 2]) {
    let redis = RedisServer::start(None, None);
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("events.jsonl");
    std::fs::write(&empty, "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fraud"))
        .args(["run", "--state-dir", dir.path().join("state").to_str().unwrap()])
        .args(["--input", "transactions=-", "--input", &format!("user_events={}", empty.display())])
        .args(["--output", "fraud_alerts=-"])
        .args(["--output", &format!("transactions_scored={}", dir.path().join("scored.jsonl").display())])
        .args(["--redis", &redis.url()]) // the default 1 s commit interval
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Alerts on the topic (stdout).
    let stdout = child.stdout.take().unwrap();
    let (topic_tx, topic_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if let Some(a) = age(&v["value"], now_ms()) {
                let _ = topic_tx.send(a);
            }
        }
    });
    let redis_rx = subscribe_alerts(&redis.url());
    let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
    let start = Instant::now();
    let total = rate * seconds;
    let mut frauds = 0;
    for n in 0..total {
        let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            stdin.flush().unwrap();
            std::thread::sleep(wait);
        }
        let (_, line, fraud) = transaction(n);
        frauds += usize::from(fraud);
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    let collect = |rx: &mpsc::Receiver<i64>| {
        let mut v = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while v.len() < frauds && Instant::now() < deadline {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
                v.push(a);
            }
        }
        v
    };
    let mut topic = collect(&topic_rx);
    let mut in_redis = collect(&redis_rx);
    drop(stdin); // end of input: the run finishes
    let _ = child.wait();
    let _ = reader.join();
    assert_eq!(topic.len(), frauds, "every alert on the topic");
    assert_eq!(in_redis.len(), frauds, "every alert in Redis");
    let t = [percentile(&mut topic, 0.5), percentile(&mut topic, 0.99)];
    let r = [percentile(&mut in_redis, 0.5), percentile(&mut in_redis, 0.99)];
    (frauds, t, r)
}

const CHILD: &str = "FRAUD_BENCH_INSTANCE";

/// A transaction line stamped now; every 20th is a fraud that alerts.
fn transaction(n: u64) -> (String, String, bool) {
    let fraud = n.is_multiple_of(20);
    let (user, amount, device) = if fraud {
        (format!("f{n}"), 9000.0, "dx".to_string())
    } else {
        (format!("u{}", n % 1000), 50.0, format!("d{}", n % 1000))
    };
    let ts = topology::format_timestamp(now_ms());
    let line = format!(
        r#"{{"transaction_id":"t{n}","user_id":"{user}","amount":{amount},"payment_method":"credit_card","timestamp":"{ts}","country":"US","device_id":"{device}","shipping_address":{{"country":"US"}},"billing_address":{{"country":"US"}}}}"#
    );
    (user, line, fraud)
}

/// The app on the Kafka runtime (in a child process) until SIGTERM.
fn instance(spec: &str) {
    let mut parts = spec.split('|');
    let (bootstrap, dir, redis) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone()).unwrap();
    let mut cfg = topology::KafkaConfig::new("fraud", bootstrap, dir);
    cfg.properties = vec![
        ("session.timeout.ms".into(), "6000".into()),
        ("heartbeat.interval.ms".into(), "1000".into()),
        ("fetch.wait.max.ms".into(), "5".into()),
        ("linger.ms".into(), std::env::var("BENCH_LINGER_MS").unwrap_or("5".into())),
    ];
    cfg.commit_interval = Duration::from_millis(std::env::var("BENCH_COMMIT_MS").map_or(1000, |v| v.parse().unwrap()));
    cfg.redis = Some(topology::RedisOutput {
        url: redis.to_string(),
        mapper: std::sync::Arc::new(|t: &str, r: &topology::RawRecord| fraud::redis_commands(t, r)),
        max_buffered: 1_000_000,
        tls: Default::default(),
    });
    cfg.stop = Some(stop);
    // BENCH_KEYED=1: the transactions are keyed by user (they are), so no by-user repartition hop.
    let mut builder = topology::StreamsBuilder::new();
    fraud::build(&mut builder, std::env::var("BENCH_KEYED").is_ok_and(|v| v == "1"));
    topology::run_kafka(&builder.build().unwrap(), &cfg).unwrap();
}

fn run_kafka(rate: u64, seconds: u64) -> (usize, [i64; 2], [i64; 2]) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::Message;
    use topology::testing::{Broker, Build};

    let broker = Broker::start(Build::CratesIo);
    broker.create_topic("transactions", 4);
    broker.create_topic("user_events", 4);
    let redis = RedisServer::start(None, None);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{}|{}|{}", broker.bootstrap(), dir.path().display(), redis.url()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create("/tmp/fraud-bench-instance.log").unwrap())
        .spawn()
        .unwrap();
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "bench-reader")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    while consumer
        .fetch_metadata(Some("fraud_alerts"), Duration::from_secs(5))
        .map_or(true, |m| m.topics().iter().all(|t| t.name() != "fraud_alerts" || t.partitions().is_empty()))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    consumer.subscribe(&["fraud_alerts"]).unwrap();
    let redis_rx = subscribe_alerts(&redis.url());
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    // Warm-up: until a first alert comes through (the group has formed).
    let mut topic: Vec<i64> = Vec::new();
    let warm = Instant::now();
    loop {
        let (user, line, _) = transaction(0);
        producer.send(BaseRecord::to("transactions").key(&user).payload(&line)).unwrap();
        producer.flush(Duration::from_secs(5)).unwrap();
        if consumer.poll(Duration::from_millis(500)).is_some() {
            break;
        }
        assert!(warm.elapsed() < Duration::from_secs(60), "the app did not start");
    }
    while redis_rx.try_recv().is_ok() {}
    let start = Instant::now();
    let total = rate * seconds;
    let mut frauds = 0;
    for n in 1..=total {
        let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (user, line, fraud) = transaction(n);
        frauds += usize::from(fraud);
        let mut record = BaseRecord::to("transactions").key(&user).payload(&line);
        while let Err((_, r)) = producer.send(record) {
            record = r;
            producer.poll(Duration::from_millis(1));
        }
        producer.poll(Duration::ZERO);
        while let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            topic.extend(age(&v, now_ms()));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while topic.len() < frauds && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            topic.extend(age(&v, now_ms()));
        }
    }
    let mut in_redis = Vec::new();
    while in_redis.len() < frauds && Instant::now() < deadline {
        if let Ok(a) = redis_rx.recv_timeout(Duration::from_millis(100)) {
            in_redis.push(a);
        }
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.kill();
    let _ = child.wait();
    let t = [percentile(&mut topic, 0.5), percentile(&mut topic, 0.99)];
    let r = [percentile(&mut in_redis, 0.5), percentile(&mut in_redis, 0.99)];
    (frauds.min(topic.len()), t, r)
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        return instance(&spec);
    }
    let args: Vec<String> = std::env::args().collect();
    let only_kafka = args.iter().any(|a| a == "kafka");
    println!("| runtime | tx/s | alerts | topic p50 ms | topic p99 ms | Redis p50 ms | Redis p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    if !only_kafka {
        for rate in [1_000, 10_000, 50_000] {
            let (alerts, t, r) = run(rate, 5);
            println!("| embedded | {rate} | {alerts} | {} | {} | {} | {} |", t[0], t[1], r[0], r[1]);
        }
    }
    // BENCH_KAFKA_RATES=1000,5000,10000 (the default: 1000,5000).
    let rates: Vec<u64> = std::env::var("BENCH_KAFKA_RATES")
        .unwrap_or("1000,5000".into())
        .split(',')
        .map(|r| r.trim().parse().expect("BENCH_KAFKA_RATES: comma-separated tx/s"))
        .collect();
    for rate in rates {
        let (alerts, t, r) = run_kafka(rate, 5);
        println!("| kafka (tansu) | {rate} | {alerts} | {} | {} | {} | {} |", t[0], t[1], r[0], r[1]);
    }
}
