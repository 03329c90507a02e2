//! Crash recovery with real SIGKILLs: this test binary re-runs itself as a child process (selected by an
//! environment variable) that processes a deterministic input against a real state directory; the
//! parent kills it with SIGKILL at random moments and starts it again until it completes.
//!
//! The child records how far it got in a store of the same task as the aggregates, so input position and
//! state are committed together in one checkpoint. Set `TOPOLOGY_SOAK=1` for a long soak.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use topology::{
    Consumed, Grouped, KeyValueStoreHandle, Materialized, Named, Processor, ProcessorContext, ProcessorInit, Record,
    StateConfig, Stores, StreamsBuilder, TestDriver, TopologyError,
};

use crate::{i, s};

const CHILD_DIR: &str = "TOPOLOGY_CRASH_CHILD_DIR";
const CHILD_MODE: &str = "TOPOLOGY_CRASH_CHILD_MODE";

fn records() -> i64 {
    if std::env::var("TOPOLOGY_SOAK").is_ok() {
        50_000
    } else {
        4_000
    }
}

fn key_of(seq: i64) -> String {
    format!("k{}", (seq * 7919) % 13)
}

/// Remembers the sequence number of the last record processed.
#[derive(Default)]
struct Progress(Option<KeyValueStoreHandle<String, i64>>);

impl Processor<String, i64> for Progress {
    type KeyOut = String;
    type ValueOut = i64;
    fn init(&mut self, ctx: &mut ProcessorInit<'_>) -> Result<(), TopologyError> {
        self.0 = Some(ctx.key_value_store("progress")?);
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, i64>) {
        self.0.as_ref().unwrap().borrow_mut().put(&"position".to_string(), r.value);
        ctx.forward(r);
    }
}

fn driver(dir: &Path, exactly_once: bool) -> TestDriver {
    driver_with_cache(dir, exactly_once, 1 << 16)
}

fn driver_with_cache(dir: &Path, exactly_once: bool, cache_max_bytes: usize) -> TestDriver {
    let mut b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value::<String, i64>("progress"));
    let grouped = b
        .stream("in", Consumed::with(s(), i()))
        .process_values(Progress::default, Named::as_("progress"), &["progress"])
        .group_by_key(Grouped::new());
    grouped.reduce(|a, v| a + v, Materialized::as_("sums"));
    grouped.reduce(|a, v| a.max(*v), Materialized::as_("maxes"));
    // Changelogs are rewritten from the stores every few hundred records, so kills land in compactions
    // too.
    let config =
        StateConfig::new(dir).exactly_once(exactly_once).cache_max_bytes(cache_max_bytes).compact_changelogs_after(300);
    TestDriver::builder(b.build().unwrap()).application_id("crash").state(config).build().unwrap()
}

type Results = (BTreeMap<String, i64>, BTreeMap<String, i64>);

/// The child: continue from the committed position, commit every few records, write the results.
///
/// Exactly-once keeps the input position in a store of the task, committed atomically with the rest of
/// the state. At-least-once commits it the Kafka way instead: to a separate file, after the state commit,
/// so state may run ahead of it (replayed records count twice) but never behind (nothing is lost).
fn child(dir: &Path, exactly_once: bool) {
    let d = driver(dir, exactly_once);
    let position_file = dir.join("position");
    let start = if exactly_once {
        d.kv_get::<String, i64>("progress", &"position".to_string()).map_or(0, |p| p + 1)
    } else {
        std::fs::read_to_string(&position_file).map_or(0, |t| t.parse().unwrap())
    };
    let input = d.input_topic("in", s(), i());
    for seq in start..records() {
        input.pipe(key_of(seq), seq, seq);
        if seq % 7 == 0 {
            d.commit().unwrap();
            if !exactly_once {
                std::fs::write(dir.join("position.tmp"), (seq + 1).to_string()).unwrap();
                std::fs::rename(dir.join("position.tmp"), &position_file).unwrap();
            }
        }
    }
    let sums: BTreeMap<String, i64> = d.kv_all("sums").into_iter().collect();
    let maxes: BTreeMap<String, i64> = d.kv_all("maxes").into_iter().collect();
    d.close().unwrap();
    let tmp = dir.join("done.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&(sums, maxes)).unwrap()).unwrap();
    std::fs::rename(tmp, dir.join("done.json")).unwrap();
}

fn expected() -> Results {
    let (mut sums, mut maxes) = (BTreeMap::new(), BTreeMap::new());
    for seq in 0..records() {
        *sums.entry(key_of(seq)).or_insert(0) += seq;
        let m = maxes.entry(key_of(seq)).or_insert(seq);
        *m = (*m).max(seq);
    }
    (sums, maxes)
}

/// Runs the child, killing it at random moments `max_kills` times, then lets it complete; returns the
/// results and the number of kills. (Under exactly-once every unclean stop rebuilds the stores from the
/// whole changelog, so with unbounded kills a restart could stop making progress.)
fn run_with_kills(dir: &Path, exactly_once: bool, test: &str) -> (Results, u32) {
    let max_kills = if std::env::var("TOPOLOGY_SOAK").is_ok() { 500 } else { 25 };
    let mut seed: u64 = 0x5eed ^ u64::from(exactly_once);
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let deadline =
        Instant::now() + Duration::from_secs(if std::env::var("TOPOLOGY_SOAK").is_ok() { 1800 } else { 120 });
    let mut kills = 0;
    loop {
        assert!(Instant::now() < deadline, "the child never completed ({kills} kills)");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--test-threads=1", "--nocapture"])
            .env(CHILD_DIR, dir)
            .env(CHILD_MODE, if exactly_once { "eos" } else { "alos" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Early kills land in start-up and restore; later ones mid-processing and mid-commit.
        std::thread::sleep(Duration::from_millis(10 + next() % 120));
        if kills < max_kills && child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            continue;
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "the child failed on its own: {status}");
        let done = std::fs::read(dir.join("done.json")).expect("a successful child writes its results");
        eprintln!("{test}: completed after {kills} SIGKILLs");
        return (serde_json::from_slice(&done).unwrap(), kills);
    }
}

fn child_mode() -> Option<(std::path::PathBuf, bool)> {
    let dir = std::env::var(CHILD_DIR).ok()?;
    Some((dir.into(), std::env::var(CHILD_MODE).ok()? == "eos"))
}

#[test]
fn sigkill_at_random_points_exactly_once_state_equals_an_uninterrupted_run() {
    if let Some((dir, eos)) = child_mode() {
        return child(&dir, eos);
    }
    let dir = tempfile::tempdir().unwrap();
    let (got, kills) = run_with_kills(
        dir.path(),
        true,
        "crash::sigkill_at_random_points_exactly_once_state_equals_an_uninterrupted_run",
    );
    assert!(kills >= 10, "too few kill points to mean anything: {kills}");
    assert_eq!(got, expected(), "after {kills} kills");
}

#[test]
fn sigkill_at_random_points_at_least_once_loses_nothing() {
    if let Some((dir, eos)) = child_mode() {
        return child(&dir, eos);
    }
    let dir = tempfile::tempdir().unwrap();
    let ((sums, maxes), kills) =
        run_with_kills(dir.path(), false, "crash::sigkill_at_random_points_at_least_once_loses_nothing");
    let (want_sums, want_maxes) = expected();
    assert!(kills >= 10, "too few kill points to mean anything: {kills}");
    // An idempotent aggregate is exact; a sum may count re-processed records again, never fewer.
    assert_eq!(maxes, want_maxes, "after {kills} kills");
    for (k, want) in want_sums {
        assert!(sums[&k] >= want, "{k}: {} < {want} after {kills} kills: a record was lost", sums[&k]);
    }
}

/// A crash while a commit rewrites a changelog leaves a checkpoint that names no offset for that
/// store: the restart restores it in full, from its log. Under exactly-once, what the restarted task
/// then appends must still be rolled back by a second crash before its first commit — else that store
/// runs ahead of the others (here: sums ahead of the input position, so replayed records are summed
/// twice).
#[test]
fn a_store_restored_without_an_offset_is_rolled_back_to_its_restore_by_the_next_crash() {
    let dir = tempfile::tempdir().unwrap();
    // A cache of one byte: every write reaches the changelogs at once, as a commit's flushes do.
    let open = || driver_with_cache(dir.path(), true, 1);
    let position = |d: &TestDriver| d.kv_get::<String, i64>("progress", &"position".to_string()).map_or(0, |p| p + 1);
    let pipe = |d: &TestDriver, seqs: std::ops::Range<i64>, commit: bool| {
        let input = d.input_topic("in", s(), i());
        for seq in seqs {
            input.pipe(key_of(seq), seq, seq);
            if commit && seq % 7 == 0 {
                d.commit().unwrap();
            }
        }
    };
    // A crash (the driver dropped, never closed) during the commit after record 98…
    let d = open();
    pipe(&d, 0..99, true);
    drop(d);
    // …that was rewriting the changelog of `sums`: its checkpoint names no offset for it.
    let checkpoints: Vec<std::path::PathBuf> =
        walk(dir.path()).into_iter().filter(|p| p.ends_with("checkpoint")).collect();
    assert_eq!(checkpoints.len(), 1, "one task: {checkpoints:?}");
    let text = std::fs::read_to_string(&checkpoints[0]).unwrap();
    let edited: String = text.lines().filter(|l| !l.starts_with("store sums ")).map(|l| format!("{l}\n")).collect();
    assert_ne!(edited, text, "the checkpoint named the offset of `sums`");
    std::fs::write(&checkpoints[0], edited).unwrap();
    // The restart goes on from the commit and crashes again before committing anything.
    let d = open();
    assert_eq!(position(&d), 99);
    pipe(&d, 99..150, false);
    drop(d);
    // The next restart is back at the commit, every store with it, and finishes as if never stopped.
    let d = open();
    assert_eq!(position(&d), 99, "rolled back to the commit");
    pipe(&d, 99..records(), true);
    let sums: BTreeMap<String, i64> = d.kv_all("sums").into_iter().collect();
    let maxes: BTreeMap<String, i64> = d.kv_all("maxes").into_iter().collect();
    d.close().unwrap();
    assert_eq!((sums, maxes), expected());
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

const EOS_CHILD: &str = "TOPOLOGY_EOS_CHILD_DIR";

/// A repartition, a cached table (updates de-duplicated per commit) and windows closed by the final
/// flush: outputs that depend on where commits fall.
fn eos_topology() -> topology::Topology {
    use topology::{EmitStrategy, Grouped, Produced, Serdes, TimeWindows};
    let mut b = StreamsBuilder::new();
    let events = b.stream("in", Consumed::with(s(), s()));
    let by_value = events.select_key(|_, v| v.clone()).group_by_key(Grouped::as_("by-value"));
    by_value
        .count(Materialized::as_("value-counts"))
        .to_stream()
        .to("counts", Produced::with(s(), Serdes::optional(Serdes::json::<u64>())));
    events
        .group_by_key(Grouped::new())
        .windowed_by(TimeWindows::of(Duration::from_millis(1000)))
        .emit(EmitStrategy::OnWindowClose)
        .count(Materialized::as_("windows"))
        .to_stream()
        .map(|k, v| (format!("{}@{}", k.key, k.window.start), v.unwrap_or(0)))
        .to("windows", Produced::with(s(), Serdes::json::<u64>()));
    b.build().unwrap()
}

fn eos_config(dir: &Path) -> topology::EmbeddedConfig {
    let mut cfg = topology::EmbeddedConfig::new("eos", dir.join("state"));
    cfg.input_format = topology::InputFormat::Envelope;
    cfg.exactly_once = true;
    cfg.commit_every_records = 250;
    cfg.cache_max_bytes = 4096;
    // Changelogs are rewritten after every few commit records, so kills land in rewrites too.
    cfg.compact_changelogs_after = 300;
    cfg.inputs = vec![("in".into(), topology::Input::File(dir.join("in.jsonl")))];
    cfg.outputs = vec![
        ("counts".into(), topology::Output::File(dir.join("counts.jsonl"))),
        ("windows".into(), topology::Output::File(dir.join("windows.jsonl"))),
    ];
    cfg
}

fn write_eos_input(dir: &Path) {
    let lines: String = (0..40_000)
        .map(|n| format!("{{\"key\":\"k{}\",\"value\":\"v{}\",\"timestamp\":{}}}\n", n % 37, n % 11, n * 10))
        .collect();
    std::fs::write(dir.join("in.jsonl"), lines).unwrap();
}

#[test]
fn sigkill_during_an_exactly_once_replay_leaves_output_files_identical_to_an_uninterrupted_run() {
    if let Ok(dir) = std::env::var(EOS_CHILD) {
        topology::run_embedded(&eos_topology(), &eos_config(Path::new(&dir))).unwrap();
        return;
    }
    // The reference: one uninterrupted run.
    let reference = tempfile::tempdir().unwrap();
    write_eos_input(reference.path());
    topology::run_embedded(&eos_topology(), &eos_config(reference.path())).unwrap();
    let want = |f: &str| std::fs::read(reference.path().join(f)).unwrap();
    assert!(want("counts.jsonl").len() > 1000 && want("windows.jsonl").len() > 1000);
    // The changelogs were rewritten along the way: each holds a few hundred records, not the thousands
    // of updates its store saw (37 keys updated over 160 commits).
    let changelogs = reference.path().join("state/eos/changelogs");
    let mut logs = 0;
    for topic in std::fs::read_dir(&changelogs).unwrap() {
        let path = topic.unwrap().path().join("0.log");
        let mut log = topology::LogChangelog::open(&path).unwrap();
        let records = topology::Changelog::read_from(&mut log, 0, &mut |_, _, _| Ok(())).unwrap();
        assert!(records < 1_000, "{}: {records} records", path.display());
        logs += 1;
    }
    assert_eq!(logs, 2, "both stores are logged");

    let dir = tempfile::tempdir().unwrap();
    write_eos_input(dir.path());
    let test = "crash::sigkill_during_an_exactly_once_replay_leaves_output_files_identical_to_an_uninterrupted_run";
    let mut seed: u64 = 0xe05;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut kills = 0;
    loop {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--test-threads=1"])
            .env(EOS_CHILD, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(10 + next() % 200));
        if kills < 20 && child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            continue;
        }
        assert!(child.wait().unwrap().success(), "the child failed on its own");
        break;
    }
    eprintln!("exactly-once replay completed after {kills} SIGKILLs");
    assert!(kills >= 10, "too few kill points: {kills}");
    for f in ["counts.jsonl", "windows.jsonl"] {
        let got = std::fs::read(dir.path().join(f)).unwrap();
        assert!(got == want(f), "{f} differs after {kills} kills ({} vs {} bytes)", got.len(), want(f).len());
    }
}

/// A crash between a changelog rewrite and the commit record that follows it leaves a record whose
/// offset is past the end of the shorter, rewritten log. A run started from there must commit before
/// processing: else what it appends lies below that offset, and a crash before its first commit rolls
/// back to a state that includes it (counted twice on replay, windows closed without output).
#[test]
fn after_a_crash_behind_a_changelog_rewrite_the_next_crash_still_rolls_back_to_the_commit() {
    let reference = tempfile::tempdir().unwrap();
    write_eos_input(reference.path());
    topology::run_embedded(&eos_topology(), &eos_config(reference.path())).unwrap();
    let want = |f: &str| std::fs::read(reference.path().join(f)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    write_eos_input(dir.path());
    let input = std::fs::read_to_string(dir.path().join("in.jsonl")).unwrap();
    let half: String = input.lines().take(20_000).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("in.jsonl"), &half).unwrap();
    let mut first = eos_config(dir.path());
    first.final_flush = false;
    topology::run_embedded(&eos_topology(), &first).unwrap();
    // What such a crash leaves: every log shorter than the offset its commit record names.
    let commit = dir.path().join("state/eos/commit.json");
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&commit).unwrap()).unwrap();
    for cp in record["checkpoints"].as_object_mut().unwrap().values_mut() {
        let text: String = cp
            .as_str()
            .unwrap()
            .lines()
            .map(|l| match l.strip_prefix("store ").and_then(|r| r.rsplit_once(' ')) {
                Some((name, offset)) => format!("store {name} {}\n", offset.parse::<u64>().unwrap() + 1_000),
                None => format!("{l}\n"),
            })
            .collect();
        *cp = serde_json::Value::String(text);
    }
    std::fs::write(&commit, serde_json::to_vec(&record).unwrap()).unwrap();
    std::fs::write(dir.path().join("in.jsonl"), &input).unwrap();
    // The next run crashes (a panic here) after 10,000 records, before any commit of its own would
    // come (one every 100,000)...
    let mut crashing = eos_config(dir.path());
    crashing.commit_every_records = 100_000;
    crashing.progress = Some(topology::ProgressFn(std::sync::Arc::new(|p: &topology::Progress| {
        assert!(p.records < 10_000, "crash");
    })));
    let crashed =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| topology::run_embedded(&eos_topology(), &crashing)));
    assert!(crashed.is_err(), "the run crashed");
    // ...and a run to the end gives what an uninterrupted run gives.
    topology::run_embedded(&eos_topology(), &eos_config(dir.path())).unwrap();
    for f in ["counts.jsonl", "windows.jsonl"] {
        let got = std::fs::read(dir.path().join(f)).unwrap();
        assert!(got == want(f), "{f} differs ({} vs {} bytes)", got.len(), want(f).len());
    }
}
