//! Transaction in → alert visible, on the embedded runtime: the `fraud` binary reads transactions on
//! stdin (each stamped with the time it is written) and writes alerts to stdout, and to a real
//! redis-server (PUBLISH on `alerts:fraud`, seen by a subscriber). One transaction in 20 is a fraud
//! that must alert (a first, very large amount). p50/p99 of both latencies per rate.
//!
//! ```text
//! cargo bench -p fraud --bench latency            # 1k, 10k and 50k transactions/s, 5 s each
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
    // Alerts in Redis (a subscriber).
    let (redis_tx, redis_rx) = mpsc::channel();
    let url = redis.url();
    let subscribed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ready = subscribed.clone();
    std::thread::spawn(move || {
        let mut conn = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
        let mut ps = conn.as_pubsub();
        ps.subscribe("alerts:fraud").unwrap();
        ready.store(true, std::sync::atomic::Ordering::SeqCst);
        while let Ok(msg) = ps.get_message() {
            let payload: String = msg.get_payload().unwrap();
            let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
            if let Some(a) = age(&v, now_ms()) {
                if redis_tx.send(a).is_err() {
                    break;
                }
            }
        }
    });
    while !subscribed.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
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
        let fraud = n % 20 == 0;
        frauds += usize::from(fraud);
        let (user, amount, device) = if fraud {
            (format!("f{n}"), 9000.0, "dx".to_string())
        } else {
            (format!("u{}", n % 1000), 50.0, format!("d{}", n % 1000))
        };
        let ts = fraud::generator::rfc3339(now_ms());
        writeln!(
            stdin,
            r#"{{"transaction_id":"t{n}","user_id":"{user}","amount":{amount},"payment_method":"credit_card","timestamp":"{ts}","country":"US","device_id":"{device}","shipping_address":{{"country":"US"}},"billing_address":{{"country":"US"}}}}"#
        )
        .unwrap();
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

fn main() {
    println!("| runtime | tx/s | alerts | topic p50 ms | topic p99 ms | Redis p50 ms | Redis p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    for rate in [1_000, 10_000, 50_000] {
        let (alerts, t, r) = run(rate, 5);
        println!("| embedded | {rate} | {alerts} | {} | {} | {} | {} |", t[0], t[1], r[0], r[1]);
    }
}
