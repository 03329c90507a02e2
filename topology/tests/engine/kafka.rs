//! The Kafka runtime against a real broker (tansu, see ../shared/BROKER.md): a round trip through a
//! consumer group, two instances splitting the partitions and one taking over from the other after a
//! SIGKILL (state restored from the changelog), and exactly-once across SIGKILLs (transactional build).
//!
//! Instances run as child processes of this test binary (selected by an environment variable), so a
//! SIGKILL is a real crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use topology::{Consumed, Grouped, KafkaConfig, Materialized, Produced, Serdes, StreamsBuilder, Topology};

use crate::broker::{Broker, Build};
use crate::s;

const APP: &str = "clicks-app";
const CHILD: &str = "TOPOLOGY_KAFKA_CHILD";

/// Clicks (key: click id, value: user) re-keyed by user through a repartition topic and counted; every
/// count update goes to `counts` (no cache), so the output per user must read 1, 2, 3, … exactly.
fn counts_topology() -> Topology {
    let mut b = StreamsBuilder::new();
    b.stream("clicks", Consumed::with(s(), s()))
        .select_key(|_, user| user.clone())
        .group_by_key(Grouped::as_("by-user"))
        .count(Materialized::as_("clicks-per-user"))
        .to_stream()
        .to("counts", Produced::with(s(), Serdes::optional(Serdes::json::<u64>())));
    b.build().unwrap()
}

/// Test settings for every client: the transactional build's first group join waits half the session
/// timeout, so keep it short.
fn properties() -> Vec<(String, String)> {
    vec![("session.timeout.ms".into(), "6000".into()), ("heartbeat.interval.ms".into(), "1000".into())]
}

fn config(bootstrap: &str, dir: &Path, exactly_once: bool) -> KafkaConfig {
    let mut cfg = KafkaConfig::new(APP, bootstrap, dir);
    cfg.properties = properties();
    cfg.exactly_once = exactly_once;
    cfg.commit_interval = Duration::from_millis(200);
    cfg.cache_max_bytes = 0;
    cfg
}

fn user_of(n: u32) -> String {
    format!("u{}", n % 7)
}

/// Produces clicks `from..to` (keys spread over the partitions, as Java clients spread them).
fn produce_clicks(broker: &Broker, from: u32, to: u32) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for n in from..to {
        let key = format!("click-{n}");
        let value = user_of(n);
        let mut record = BaseRecord::to("clicks").key(&key).payload(&value).timestamp(1_000 + i64::from(n));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Every count update per user read from `counts`, in partition order (one user's updates share a
/// partition), until `done` holds or the deadline passes.
fn read_counts(
    broker: &Broker,
    read_committed: bool,
    deadline: Duration,
    done: impl Fn(&BTreeMap<String, Vec<u64>>) -> bool,
) -> BTreeMap<String, Vec<u64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "checker")
        .set("isolation.level", if read_committed { "read_committed" } else { "read_uncommitted" })
        .create()
        .unwrap();
    let until = Instant::now() + deadline;
    // The app creates `counts` when it starts; wait for it.
    let partitions = loop {
        let md = consumer.fetch_metadata(Some("counts"), Duration::from_secs(10)).unwrap();
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == "counts" && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if n > 0 || Instant::now() > until {
            break n as i32;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset("counts", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    while Instant::now() < until && !done(&seen) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let user = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let count: u64 = serde_json::from_slice(m.payload().unwrap()).unwrap();
            seen.entry(user).or_default().push(count);
        }
    }
    seen
}

/// Where a user's updates stop reading 1, 2, 3, …: the first wrong index and its neighbourhood.
fn first_gap(updates: &[u64]) -> Option<(usize, Vec<u64>)> {
    let i = updates.iter().enumerate().position(|(i, c)| *c != i as u64 + 1)?;
    Some((i, updates[i.saturating_sub(3)..(i + 5).min(updates.len())].to_vec()))
}

fn expected_totals(to: u32) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for n in 0..to {
        *totals.entry(user_of(n)).or_insert(0) += 1;
    }
    totals
}

fn reached(seen: &BTreeMap<String, Vec<u64>>, totals: &BTreeMap<String, u64>) -> bool {
    totals.iter().all(|(u, t)| seen.get(u).and_then(|v| v.last()) == Some(t))
}

/// One instance in a thread: 300 clicks in, every count update out once and in order, offsets committed.
fn round_trip(build: Build, exactly_once: bool) {
    let broker = Broker::start(build);
    broker.create_topic("clicks", 4);
    produce_clicks(&broker, 0, 300);
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut cfg = config(&broker.bootstrap(), dir.path(), exactly_once);
    cfg.stop = Some(stop.clone());
    let run = std::thread::spawn(move || topology::run_kafka(&counts_topology(), &cfg));
    let totals = expected_totals(300);
    let seen = read_counts(&broker, exactly_once, Duration::from_secs(60), |seen| reached(seen, &totals));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let summary = run.join().unwrap().unwrap();
    for (user, total) in &totals {
        assert_eq!(seen[user], (1..=*total).collect::<Vec<_>>(), "{user}: every update once, in order");
    }
    assert_eq!(summary.records_in["clicks"], 300);
    assert_eq!(summary.records_in[&format!("{APP}-by-user-repartition")], 300);
    assert_eq!(summary.records_out["counts"], 300);
    assert!(summary.stopped && summary.commits > 0);
    // The group's committed offsets cover the input (in the transactions, under exactly-once).
    assert_eq!(committed_offsets(&broker, "clicks", 4), 300);
    // The task state is on disk, one directory per task (2 sub-topologies × 4 partitions).
    let tasks: Vec<String> = std::fs::read_dir(dir.path().join(APP))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains('_'))
        .collect();
    assert_eq!(tasks.len(), 8, "{tasks:?}");
}

/// The sum of the group's committed offsets over the partitions of `topic`.
fn committed_offsets(broker: &Broker, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).set("group.id", APP).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum()
}

#[test]
fn records_round_trip_through_a_consumer_group_and_a_repartition_topic() {
    round_trip(Build::CratesIo, false);
}

#[test]
fn exactly_once_commits_outputs_changelogs_and_offsets_in_transactions() {
    round_trip(Build::Transactional, true);
}

/// A child process running the app until SIGTERM (graceful) or SIGKILL.
struct Instance {
    child: Child,
    dir: PathBuf,
}

impl Instance {
    fn start(test: &str, bootstrap: &str, dir: &Path, exactly_once: bool) -> Instance {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("instance.log")).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--test-threads=1", "--nocapture"])
            .env(CHILD, format!("{bootstrap}|{}|{exactly_once}", dir.display()))
            .env("RUST_LOG", std::env::var("TEST_INSTANCE_LOG").unwrap_or("topology=info".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Instance { child, dir: dir.to_path_buf() }
    }

    /// Tasks whose state directory this instance holds open (their lock files are taken).
    fn open_tasks(&self) -> Vec<String> {
        let mut held = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join(APP)) else { return held };
        for e in entries {
            let path = e.unwrap().path().join(".lock");
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                if f.try_lock().is_err() {
                    held.push(path.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned());
                }
            }
        }
        held.sort();
        held
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn stop(mut self) -> String {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(self.dir.join("instance.log")).unwrap_or_default();
        assert!(status.success(), "instance failed: {status}\n{log}");
        log
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("instance.log")).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A failed test must not leave its instances running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In a child process: runs the app until SIGTERM. Returns false in the parent.
fn run_child_if_asked() -> bool {
    let Ok(spec) = std::env::var(CHILD) else { return false };
    let mut parts = spec.split('|');
    let (bootstrap, dir, eos) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap() == "true");
    let _ = tracing_subscriber_init();
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone()).unwrap();
    let mut cfg = config(bootstrap, Path::new(dir), eos);
    cfg.stop = Some(stop);
    if let Ok(debug) = std::env::var("TEST_RDKAFKA_DEBUG") {
        cfg.properties.push(("debug".into(), debug));
    }
    let summary = topology::run_kafka(&counts_topology(), &cfg).unwrap();
    eprintln!("instance done: {summary:?}");
    true
}

fn tracing_subscriber_init() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
}

fn wait_for(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs on the newer tansu build: with crates.io tansu 0.6.0, in about one run of three the survivor's
/// assignment is reported lost when the killed member's session expires, and its rejoin then never
/// completes (no assignment within a minute); the newer build passed 5 of 5.
#[test]
fn two_instances_split_the_partitions_and_one_takes_over_after_the_other_is_killed() {
    const TEST: &str = "kafka::two_instances_split_the_partitions_and_one_takes_over_after_the_other_is_killed";
    if run_child_if_asked() {
        return;
    }
    let broker = Broker::start(Build::Transactional);
    broker.create_topic("clicks", 4);
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::start(TEST, &broker.bootstrap(), &dir.path().join("a"), false);
    let b = Instance::start(TEST, &broker.bootstrap(), &dir.path().join("b"), false);
    // Both in the group: 8 tasks (2 sub-topologies × 4 partitions), each open on exactly one instance.
    wait_for("both instances to hold tasks", Duration::from_secs(60), || {
        let (ta, tb) = (a.open_tasks(), b.open_tasks());
        !ta.is_empty() && !tb.is_empty() && ta.len() + tb.len() == 8 && ta.iter().all(|t| !tb.contains(t))
    });
    let (ta, tb) = (a.open_tasks(), b.open_tasks());
    eprintln!("a holds {ta:?}, b holds {tb:?}");
    produce_clicks(&broker, 0, 400);
    let totals = expected_totals(400);
    let seen = read_counts(&broker, false, Duration::from_secs(60), |seen| reached(seen, &totals));
    assert!(reached(&seen, &totals), "first half not processed: {seen:?}\n{}\n{}", a.log(), b.log());
    std::thread::sleep(Duration::from_millis(600)); // a few commit intervals: nothing in flight
                                                    // b crashes. a gets its partitions after the session timeout and restores b's counts from the
                                                    // changelog; counting continues from there.
    b.kill();
    let until = Instant::now() + Duration::from_secs(60);
    while a.open_tasks().len() < 8 {
        assert!(Instant::now() < until, "a did not take over b's tasks:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    produce_clicks(&broker, 400, 800);
    let totals = expected_totals(800);
    let seen = read_counts(&broker, false, Duration::from_secs(60), |seen| reached(seen, &totals));
    let log = a.stop();
    assert!(log.contains("partitions assigned"), "{log}");
    // b's tasks were rebuilt on a from the changelog, on restore threads (a's own partitions kept going).
    let restored: u64 = log
        .lines()
        .filter(|l| l.contains("task restored in the background"))
        .filter_map(|l| l.split("restored_records=").nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(restored > 0, "no changelog records restored in the background:\n{log}");
    // b was killed after its last commit (nothing in flight), so even at-least-once is exact here: each
    // user's updates read 1, 2, …, n with no repeat and no gap across the takeover.
    for (user, total) in &totals {
        assert_eq!(seen[user], (1..=*total).collect::<Vec<_>>(), "{user}");
    }
}

/// Ignored: tansu's transactional build shows records of aborted transactions to read_committed
/// consumers (`broker::the_transactional_broker_fences_zombies_and_hides_open_but_not_aborted_transactions`),
/// so a restore re-applies aborted changelog records and this fails on it (counts jump ahead) whatever
/// the runtime does. Run it against a broker that implements read_committed:
/// `cargo test -p topology --test engine -- --ignored kafka::exactly_once`.
#[test]
#[ignore = "needs a broker whose read_committed hides aborted transactions (tansu's does not)"]
fn exactly_once_output_has_no_duplicates_across_sigkills() {
    const TEST: &str = "kafka::exactly_once_output_has_no_duplicates_across_sigkills";
    if run_child_if_asked() {
        return;
    }
    let broker = Broker::start(Build::Transactional);
    broker.create_topic("clicks", 2);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("instance");
    const ROUND: u32 = 2_000;
    // Each incarnation gets a backlog and is killed shortly after it owns its tasks, mid-processing;
    // each restart (same state directory, so the same transactional id) fences the previous incarnation
    // and aborts its open transaction.
    let mut kills = 0;
    for round in 0..3u32 {
        produce_clicks(&broker, round * ROUND, (round + 1) * ROUND);
        let instance = Instance::start(TEST, &broker.bootstrap(), &state, true);
        // Killed once this incarnation has produced output of its own (not yet all of it).
        let target = (round * ROUND + ROUND / 4) as usize;
        let seen = read_counts(&broker, false, Duration::from_secs(60), |seen| {
            seen.values().map(Vec::len).sum::<usize>() >= target
        });
        assert!(seen.values().map(Vec::len).sum::<usize>() >= target, "round {round}: no progress\n{}", instance.log());
        std::thread::sleep(Duration::from_millis(50 * u64::from(round)));
        instance.kill();
        kills += 1;
    }
    const N: u32 = 3 * ROUND;
    let instance = Instance::start(TEST, &broker.bootstrap(), &state, true);
    let totals = expected_totals(N);
    let seen = read_counts(&broker, true, Duration::from_secs(120), |seen| reached(seen, &totals));
    let log = instance.stop();
    // The kills did cut work short: some of it was done twice (visible to a read_uncommitted reader,
    // unless the broker had already dropped the aborted records).
    let uncommitted = read_counts(&broker, false, Duration::from_secs(10), |_| false);
    let written: usize = uncommitted.values().map(Vec::len).sum();
    eprintln!("read_uncommitted: {written} count updates for {N} clicks");
    // Aborted transactions are invisible to read_committed consumers: each user's updates read 1, 2, …,
    // n exactly once although work was redone after every kill.
    for (user, total) in &totals {
        let updates = seen.get(user).cloned().unwrap_or_default();
        assert_eq!(first_gap(&updates), None, "{user} after {kills} kills\n{log}");
        assert_eq!(updates.len() as u64, *total, "{user}");
    }
}

#[test]
fn the_cluster_down_at_start_and_mid_run_is_waited_for_and_nothing_is_lost() {
    const TEST: &str = "kafka::the_cluster_down_at_start_and_mid_run_is_waited_for_and_nothing_is_lost";
    if run_child_if_asked() {
        return;
    }
    let port = crate::broker::free_port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker");
    std::fs::create_dir_all(&data).unwrap();
    // No broker yet: the instance waits (one log line), without spinning.
    let instance = Instance::start(TEST, &format!("127.0.0.1:{port}"), &dir.path().join("instance"), false);
    std::thread::sleep(Duration::from_secs(5));
    let broker = Broker::start_at(Build::CratesIo, port, Some(&data));
    broker.create_topic("clicks", 2);
    produce_clicks(&broker, 0, 200);
    let totals = expected_totals(200);
    let seen = read_counts(&broker, false, Duration::from_secs(60), |seen| reached(seen, &totals));
    assert!(reached(&seen, &totals), "not processed after the cluster came up:\n{}", instance.log());
    // The broker goes away mid-run and comes back with its data (sqlite storage).
    drop(broker);
    std::thread::sleep(Duration::from_secs(4));
    let broker = Broker::start_at(Build::CratesIo, port, Some(&data));
    produce_clicks(&broker, 200, 400);
    let totals = expected_totals(400);
    let seen = read_counts(&broker, false, Duration::from_secs(90), |seen| reached(seen, &totals));
    let log = instance.stop();
    for (user, total) in &totals {
        assert_eq!(seen[user], (1..=*total).collect::<Vec<_>>(), "{user}\n{log}");
    }
    assert_eq!(log.matches("waiting for the Kafka cluster").count(), 1, "{log}");
    assert!(log.matches("waiting for a source topic").count() <= 1, "{log}");
    assert_eq!(log.matches("the Kafka cluster is reachable bootstrap").count(), 1, "{log}");
    assert!(log.contains("the Kafka cluster is unreachable"), "the mid-run outage is logged:\n{log}");
    let unreachable = log.matches("the Kafka cluster is unreachable").count();
    assert!(unreachable <= 3, "one line per outage, not one per retry ({unreachable}):\n{log}");
}
