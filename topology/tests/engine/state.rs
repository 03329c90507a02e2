use std::path::Path;
use std::time::Duration;

use topology::{
    Changelog, Consumed, EmitStrategy, Grouped, LogChangelog, Materialized, Produced, Serdes, StateConfig,
    StreamsBuilder, TestDriver, TimeWindows,
};

use crate::{i, s};

const APP: &str = "app";

/// Sum per key into the store `sums`, partitioned over 2 tasks.
fn sums(dir: &Path, config: impl Fn(StateConfig) -> StateConfig) -> TestDriver {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .reduce(|a, v| a + v, Materialized::as_("sums"))
        .to_stream()
        .to("out", Produced::with(s(), Serdes::optional(i())));
    TestDriver::builder(b.build().unwrap())
        .application_id(APP)
        .partitions(2)
        .state(config(StateConfig::new(dir)))
        .build()
        .unwrap()
}

fn pipe_range(d: &TestDriver, from: i64, to: i64) {
    let inp = d.input_topic("in", s(), i());
    for n in from..to {
        inp.pipe(format!("k{}", n % 5), n, n);
    }
}

fn all(d: &TestDriver) -> Vec<(String, i64)> {
    d.kv_all::<String, i64>("sums")
}

/// A driver of application `APP` with its state on disk.
fn on_disk(b: StreamsBuilder, config: StateConfig) -> TestDriver {
    TestDriver::builder(b.build().unwrap()).application_id(APP).state(config).build().unwrap()
}

fn expected(to: i64) -> Vec<(String, i64)> {
    let mut m = std::collections::BTreeMap::new();
    for n in 0..to {
        *m.entry(format!("k{}", n % 5)).or_insert(0) += n;
    }
    let mut v: Vec<(String, i64)> = m.into_iter().collect();
    v.sort_by_cached_key(|(k, _)| topology::Serdes::bincode::<String>().serialize(k));
    v
}

fn changelog_records(dir: &Path, store: &str, partition: u32) -> u64 {
    let path =
        dir.join(APP).join("changelogs").join(format!("{APP}-{store}-changelog")).join(format!("{partition}.log"));
    let mut log = LogChangelog::open(&path).unwrap();
    log.read_from(0, &mut |_, _, _| Ok(())).unwrap()
}

#[test]
fn a_clean_restart_reopens_the_stores_without_restoring() {
    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c);
    pipe_range(&d, 0, 100);
    d.close().unwrap();
    let d = sums(dir.path(), |c| c);
    assert_eq!(all(&d), expected(100));
    assert_eq!(d.restore_stats().full_restores, 0);
    assert_eq!(d.restore_stats().records, 0);
    pipe_range(&d, 100, 150);
    assert_eq!(all(&d), expected(150));
}

#[test]
fn a_crash_after_a_commit_keeps_exactly_the_committed_state_when_the_cache_held_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c);
    pipe_range(&d, 0, 100);
    d.commit().unwrap();
    pipe_range(&d, 100, 120); // in the cache only
    drop(d); // crash: no commit, no close
    let d = sums(dir.path(), |c| c);
    assert_eq!(all(&d), expected(100));
    assert_eq!(d.restore_stats().full_restores, 0, "the checkpoint was valid: tail restore only");
}

#[test]
fn a_deleted_task_directory_is_rebuilt_from_the_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c);
    pipe_range(&d, 0, 200);
    d.close().unwrap();
    std::fs::remove_dir_all(dir.path().join(APP).join("0_0")).unwrap();
    std::fs::remove_dir_all(dir.path().join(APP).join("0_1")).unwrap();
    let d = sums(dir.path(), |c| c);
    assert_eq!(all(&d), expected(200));
    let stats = d.restore_stats();
    assert_eq!(stats.full_restores, 2);
    assert!(stats.records >= 5, "{stats:?}");
}

#[test]
fn torn_store_files_or_a_torn_checkpoint_force_a_full_restore_with_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c);
    pipe_range(&d, 0, 300);
    d.close().unwrap();
    // Task 0_0: sled's files overwritten with garbage. Task 0_1: checkpoint cut in half.
    let db = dir.path().join(APP).join("0_0").join("db");
    for entry in std::fs::read_dir(&db).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, b"\x00garbage from a torn write").unwrap();
        }
    }
    let cp = dir.path().join(APP).join("0_1").join("checkpoint");
    let text = std::fs::read_to_string(&cp).unwrap();
    std::fs::write(&cp, &text[..text.len() / 2]).unwrap();
    let d = sums(dir.path(), |c| c);
    assert_eq!(all(&d), expected(300));
    assert_eq!(d.restore_stats().full_restores, 2);
}

#[test]
fn a_hot_key_costs_one_changelog_record_per_commit_with_the_cache_and_one_per_update_without() {
    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c);
    let inp = d.input_topic("in", s(), i());
    for n in 0..1000 {
        inp.pipe("hot".into(), 1, n);
    }
    d.commit().unwrap();
    let p = d.partitions_of("in");
    let part = (0..p).find(|&q| changelog_records(dir.path(), "sums", q) > 0).unwrap();
    assert_eq!(changelog_records(dir.path(), "sums", part), 1);
    drop(d);

    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c.cache_max_bytes(0));
    let inp = d.input_topic("in", s(), i());
    for n in 0..1000 {
        inp.pipe("hot".into(), 1, n);
    }
    d.commit().unwrap();
    assert_eq!(changelog_records(dir.path(), "sums", part), 1000);
}

/// A windowed count and a session count (on close) of one stream, in one task.
fn window_and_session_counts(dir: &Path) -> TestDriver {
    let mut b = StreamsBuilder::new();
    let events = b.stream("in", Consumed::with(s(), i()));
    let out = |k: topology::Windowed<String>, n: Option<u64>| (k.key, n.map_or(0, |n| n as i64));
    events
        .clone()
        .group_by_key(Grouped::new())
        .windowed_by(TimeWindows::of(Duration::from_secs(60)))
        .count(Materialized::as_("per-minute"))
        .to_stream()
        .map(out)
        .to("minutes", Produced::with(s(), i()));
    events
        .group_by_key(Grouped::new())
        .windowed_by(topology::SessionWindows::with_inactivity_gap(Duration::from_secs(10)))
        .emit(EmitStrategy::OnWindowClose)
        .count(Materialized::as_("sessions"))
        .to_stream()
        .map(out)
        .to("sessions", Produced::with(s(), i()));
    on_disk(b, StateConfig::new(dir))
}

#[test]
fn a_session_that_grows_on_update_costs_one_changelog_record_per_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .windowed_by(topology::SessionWindows::with_inactivity_gap(Duration::from_secs(10)))
        .count(Materialized::as_("sessions"))
        .to_stream()
        .map(|k: topology::Windowed<String>, n: Option<u64>| (k.key, n.map_or(-1, |n| n as i64)))
        .to("counts", Produced::with(s(), i()));
    let d = on_disk(b, StateConfig::new(dir.path()));
    let inp = d.input_topic("in", s(), i());
    for n in 0..500 {
        inp.pipe("hot".into(), 1, n * 10);
    }
    d.commit().unwrap();
    // Each record moved the session to a new key; the keys it left were never written down, so they
    // need no tombstones: one record, the session as it is now.
    assert_eq!(changelog_records(dir.path(), "sessions", 0), 1);
    assert_eq!(
        d.session_all::<String, u64>("sessions"),
        vec![("hot".to_string(), topology::Window { start: 0, end: 4_990 }, 500)]
    );
}

#[test]
fn window_and_session_values_stay_decoded_until_commit_and_a_crash_keeps_the_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = window_and_session_counts(dir.path());
    let inp = d.input_topic("in", s(), i());
    for n in 0..500 {
        inp.pipe("hot".into(), 1, n * 10);
    }
    // Queries see every update before any commit.
    assert_eq!(d.window_all::<String, u64>("per-minute"), vec![("hot".to_string(), 0, 500)]);
    let sessions = d.session_all::<String, u64>("sessions");
    assert_eq!(sessions, vec![("hot".to_string(), topology::Window { start: 0, end: 4_990 }, 500)]);
    d.commit().unwrap();
    // One changelog record per window at the commit: the session moved to a new key 499 times, and
    // none of the keys it left reached the store or its changelog.
    assert_eq!(changelog_records(dir.path(), "per-minute", 0), 1);
    assert_eq!(changelog_records(dir.path(), "sessions", 0), 1);
    for n in 500..600 {
        inp.pipe("hot".into(), 1, n * 10);
    }
    drop((inp, d)); // crash: the last 100 updates were never committed
    let d = window_and_session_counts(dir.path());
    assert_eq!(d.window_all::<String, u64>("per-minute"), vec![("hot".to_string(), 0, 500)]);
    assert_eq!(d.session_all::<String, u64>("sessions"), sessions);
}

/// Without a cache every update reaches the changelog at once; after an unclean stop, at-least-once
/// replays those uncommitted records (their input is then processed again: duplicates the guarantee
/// allows), while exactly-once drops them and rebuilds the committed state.
#[test]
fn after_an_unclean_stop_exactly_once_returns_to_the_committed_state() {
    for exactly_once in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = sums(dir.path(), |c| c.cache_max_bytes(0).exactly_once(exactly_once));
        pipe_range(&d, 0, 50);
        d.commit().unwrap();
        pipe_range(&d, 50, 60);
        // Dropping flushes the changelog's write buffer: the uncommitted records are durable, as after a
        // crash that came after a background flush.
        drop(d);
        let d = sums(dir.path(), |c| c.cache_max_bytes(0).exactly_once(exactly_once));
        if exactly_once {
            assert_eq!(all(&d), expected(50));
            assert_eq!(d.restore_stats().full_restores, 2);
        } else {
            assert_eq!(all(&d), expected(60));
        }
    }
}

/// The same, when the task's database is also lost (sled could not recover it, or it was deleted): the
/// checkpoint's changelog offsets still mark the last commit, so exactly-once drops what came after.
#[test]
fn after_an_unclean_stop_that_also_lost_the_database_exactly_once_returns_to_the_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = |c: topology::StateConfig| c.cache_max_bytes(0).exactly_once(true);
    let d = sums(dir.path(), config);
    pipe_range(&d, 0, 50);
    d.commit().unwrap();
    pipe_range(&d, 50, 60);
    drop(d);
    let app = dir.path().join("app");
    for task in std::fs::read_dir(&app).unwrap() {
        let db = task.unwrap().path().join("db");
        if db.exists() {
            std::fs::remove_dir_all(db).unwrap();
        }
    }
    let d = sums(dir.path(), config);
    assert_eq!(all(&d), expected(50));
}

#[test]
fn a_value_in_an_unknown_format_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c);
    d.input_topic("in", s(), i()).pipe("k".into(), 1, 0);
    d.close().unwrap();
    // A future build's record appended to the changelog; the clean checkpoint makes the tail replay it.
    let part = (0..2).find(|&q| changelog_records(dir.path(), "sums", q) > 0).unwrap();
    let path =
        dir.path().join(APP).join("changelogs").join(format!("{APP}-sums-changelog")).join(format!("{part}.log"));
    let mut log = LogChangelog::open(&path).unwrap();
    let key = {
        let mut v = Vec::new();
        v.extend(topology::Serdes::bincode::<String>().serialize(&"k".to_string()).unwrap());
        v
    };
    log.append(&key, Some(&[9, 1, 2, 3]), 0).unwrap();
    log.flush().unwrap();
    // The clean checkpoint's offset is before the new record, so it is restored as a tail.
    let d = sums(dir.path(), |c| c);
    let err = d.input_topic("in", s(), i()).try_pipe("k".into(), 1, 1).unwrap_err();
    assert!(err.to_string().contains("format version 9; this build reads version 1"), "{err}");
}

#[test]
fn windowed_state_on_disk_stays_bounded_on_an_unbounded_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .windowed_by(TimeWindows::of(Duration::from_secs(60)))
        .emit(EmitStrategy::OnWindowClose)
        .count(Materialized::as_("counts"))
        .to_stream()
        .map(|k, v| (k.key, v.unwrap_or(0) as i64))
        .to("out", Produced::with(s(), i()));
    let d = on_disk(b, StateConfig::new(dir.path()));
    let inp = d.input_topic("in", s(), i());
    let mut max_entries = 0;
    for minute in 0..120i64 {
        inp.pipe_batch((0..50).map(|u| (format!("user-{u}"), 1, minute * 60_000 + u)));
        d.commit().unwrap();
        max_entries = max_entries.max(d.store_entries("counts"));
    }
    // 50 keys per minute, one open window per key: expired segments are dropped as stream time moves.
    assert!(max_entries <= 150, "{max_entries}");
    assert_eq!(d.output_topic("out", s(), i()).read_values().len(), 119 * 50);
    assert!(d.state_size_on_disk() < 64 << 20, "{}", d.state_size_on_disk());
}

#[test]
fn results_with_sled_stores_equal_in_memory_results() {
    fn run(dir: Option<&Path>) -> Vec<(String, u64)> {
        let mut b = StreamsBuilder::new();
        b.stream("in", Consumed::with(s(), i()))
            .select_key(|_, v| format!("g{}", v % 7))
            .group_by_key(Grouped::as_("by-group"))
            .windowed_by(TimeWindows::of(Duration::from_millis(100)).advance_by(Duration::from_millis(50)))
            .emit(EmitStrategy::OnWindowClose)
            .count(Materialized::as_("c"))
            .to_stream()
            .map(|k, v| (format!("{}@{}", k.key, k.window.start), v.unwrap()))
            .to("out", Produced::with(s(), crate::json::<u64>()));
        let mut builder = TestDriver::builder(b.build().unwrap()).partitions(3);
        if let Some(dir) = dir {
            builder = builder.state(StateConfig::new(dir).cache_max_bytes(4096));
        }
        let d = builder.build().unwrap();
        let inp = d.input_topic("in", s(), i());
        for n in 0..600 {
            inp.pipe(format!("k{}", n % 13), n, n * 3);
            if n % 97 == 0 {
                d.commit().unwrap();
            }
        }
        for g in 0..7 {
            inp.pipe(format!("end{g}"), g, 100_000);
        }
        let mut out = d.output_topic("out", s(), crate::json::<u64>()).read_key_values();
        out.sort();
        out
    }
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(None), run(Some(dir.path())));
}

/// Closed windows stay in the store until their segment expires (closing costs no delete and no
/// tombstone); what was emitted follows from the stream time a task resumes at. A restart — clean,
/// after a crash with no checkpoint yet, or with the local store gone — emits every window once.
#[test]
fn emitted_windows_are_not_emitted_again_after_a_restart_or_a_restore() {
    #[derive(Debug, Clone, Copy)]
    enum Restart {
        None,
        Clean,
        CrashAfterCommit,
        LocalStoreLost,
    }
    fn run(cache: usize, restart: Restart) -> Vec<(String, u64)> {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let mut b = StreamsBuilder::new();
            b.stream("in", Consumed::with(s(), i()))
                .group_by_key(Grouped::new())
                .windowed_by(TimeWindows::of(Duration::from_millis(100)))
                .emit(EmitStrategy::OnWindowClose)
                .count(Materialized::as_("c"))
                .to_stream()
                .map(|k, v| (format!("{}@{}", k.key, k.window.start), v.unwrap()))
                .to("out", Produced::with(s(), crate::json::<u64>()));
            let config = StateConfig::new(dir.path()).cache_max_bytes(cache);
            on_disk(b, config)
        };
        let mut d = open();
        let mut out = Vec::new();
        for n in 0..60 {
            d.input_topic("in", s(), i()).pipe(format!("g{}", n % 2), n, n * 30);
            if n == 40 {
                d.commit().unwrap();
                out.extend(d.output_topic("out", s(), crate::json::<u64>()).read_key_values());
                match restart {
                    Restart::None => continue,
                    Restart::Clean => d.close().unwrap(),
                    Restart::CrashAfterCommit => drop(d),
                    Restart::LocalStoreLost => {
                        drop(d);
                        std::fs::remove_dir_all(dir.path().join(APP).join("0_0")).unwrap();
                    }
                }
                d = open();
                if matches!(restart, Restart::LocalStoreLost) {
                    assert_eq!(d.restore_stats().full_restores, 1);
                }
            }
        }
        d.final_flush().unwrap();
        out.extend(d.output_topic("out", s(), crate::json::<u64>()).read_key_values());
        out
    }
    let uninterrupted = run(0, Restart::None);
    assert_eq!(uninterrupted.len(), 36, "18 windows of 100 ms for each of 2 keys: {uninterrupted:?}");
    let mut distinct = uninterrupted.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), uninterrupted.len(), "each window once");
    for cache in [0, 4096, 1 << 20] {
        for restart in [Restart::None, Restart::Clean, Restart::CrashAfterCommit, Restart::LocalStoreLost] {
            assert_eq!(run(cache, restart), uninterrupted, "cache {cache}, {restart:?}");
        }
    }
}

#[test]
fn with_a_cache_table_updates_are_forwarded_once_per_key_per_commit() {
    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c);
    let out = d.output_topic("out", s(), Serdes::optional(i()));
    let inp = d.input_topic("in", s(), i());
    for n in 1..=10 {
        inp.pipe("a".into(), n, n);
        inp.pipe("b".into(), 100, n);
    }
    assert!(out.is_empty(), "held back until the commit");
    d.commit().unwrap();
    let mut got = out.read_key_values();
    got.sort();
    assert_eq!(got, vec![("a".into(), Some(55)), ("b".into(), Some(1000))]);

    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c.cache_max_bytes(0));
    let inp = d.input_topic("in", s(), i());
    for n in 1..=10 {
        inp.pipe("a".into(), n, n);
    }
    assert_eq!(d.output_topic("out", s(), Serdes::optional(i())).read_values().len(), 10, "no cache: every update");
}

#[test]
fn after_a_restart_closed_sliding_windows_are_not_emitted_again() {
    fn driver(dir: &Path) -> TestDriver {
        let mut b = StreamsBuilder::new();
        b.stream("in", Consumed::with(s(), i()))
            .group_by_key(Grouped::new())
            .windowed_by(topology::SlidingWindows::with_time_difference_and_grace(
                Duration::from_millis(10),
                Duration::ZERO,
            ))
            .emit(EmitStrategy::OnWindowClose)
            .reduce(|a, v| a + v, Materialized::as_("sums"))
            .to_stream()
            .map(|k, v| (format!("{}@{}", k.key, k.window.start), v.unwrap()))
            .to("out", Produced::with(s(), i()));
        TestDriver::builder(b.build().unwrap()).state(StateConfig::new(dir)).build().unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let inp = d.input_topic("in", s(), i());
    inp.pipe("k".into(), 1, 10);
    inp.pipe("k".into(), 2, 15);
    inp.pipe("k".into(), 4, 40); // closes [0,10], [5,15], [11,21]; [30,40] closes after 40
    let before = d.output_topic("out", s(), i()).read_key_values();
    assert_eq!(before, vec![("k@0".into(), 1), ("k@5".into(), 3), ("k@11".into(), 2)]);
    d.close().unwrap();
    let d = driver(dir.path());
    d.input_topic("in", s(), i()).pipe("k".into(), 8, 70); // closes [30,40] only: nothing is emitted twice
    assert_eq!(d.output_topic("out", s(), i()).read_key_values(), vec![("k@30".into(), 4)]);
}

#[test]
fn a_state_directory_in_use_is_an_error_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let first = sums(dir.path(), |c| c);
    pipe_range(&first, 0, 10);
    first.commit().unwrap();
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .reduce(|a, v| a + v, Materialized::as_("sums"));
    let second = TestDriver::builder(b.build().unwrap())
        .application_id(APP)
        .partitions(2)
        .state(StateConfig::new(dir.path()))
        .build();
    let err = second.unwrap_err().to_string();
    assert!(err.contains("is locked by another instance"), "{err}");
    assert_eq!(all(&first), expected(10), "the running instance's state is intact");
}

/// Local changelogs are rewritten from their store at commits once they have grown: they stay in
/// proportion to the state (5 keys here), not to the input (20,000 updates), and a task rebuilt from
/// a compacted changelog — fully or from its checkpoint — has the same state.
#[test]
fn local_changelogs_are_compacted_from_the_store_and_restore_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = |c: StateConfig| c.cache_max_bytes(0).compact_changelogs_after(1_000);
    let d = sums(dir.path(), config);
    let inp = d.input_topic("in", s(), i());
    let mut most = 0;
    for n in 0..20_000 {
        inp.pipe(format!("k{}", n % 5), n, n);
        if n % 500 == 499 {
            d.commit().unwrap();
            let records = changelog_records(dir.path(), "sums", 0) + changelog_records(dir.path(), "sums", 1);
            most = most.max(records);
        }
    }
    assert!(most <= 2 * (1_000 + 500), "at most twice the threshold plus a commit's records: {most}");
    assert!(most >= 1_000, "compaction waits for the threshold: {most}");
    let want = expected(20_000);
    assert_eq!(all(&d), want);
    d.close().unwrap();
    // From the checkpoint (the tail after the compacted log's end: nothing).
    let d = sums(dir.path(), config);
    assert_eq!(d.restore_stats().full_restores, 0);
    assert_eq!(all(&d), want);
    d.close().unwrap();
    // Local stores lost: both tasks rebuilt from their compacted changelogs alone.
    for task in ["0_0", "0_1"] {
        std::fs::remove_dir_all(dir.path().join(APP).join(task)).unwrap();
    }
    let d = sums(dir.path(), config);
    assert_eq!(d.restore_stats().full_restores, 2);
    assert!(d.restore_stats().records <= 2 * (1_000 + 500));
    assert_eq!(all(&d), want);
}

/// Window changelogs, on an unbounded stream of new windows, stay bounded too: a rewrite leaves out the
/// windows of expired segments.
#[test]
fn window_changelogs_stay_bounded_on_an_unbounded_stream() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let mut b = StreamsBuilder::new();
        b.stream("in", Consumed::with(s(), i()))
            .group_by_key(Grouped::new())
            .windowed_by(TimeWindows::of(Duration::from_secs(1)))
            .count(Materialized::as_("c"))
            .to_stream()
            .map(|k, v| (k.key, v.unwrap_or(0) as i64))
            .to("out", Produced::with(s(), i()));
        let config = StateConfig::new(dir.path()).cache_max_bytes(0).compact_changelogs_after(1_000);
        on_disk(b, config)
    };
    let d = open();
    let inp = d.input_topic("in", s(), i());
    let mut most = 0;
    // 20,000 records over 1,000 s of event time: 5,000 windows of 5 keys; about 2 minutes are kept.
    for n in 0..20_000i64 {
        inp.pipe(format!("k{}", n % 5), 1, n * 50);
        if n % 500 == 499 {
            d.commit().unwrap();
            most = most.max(changelog_records(dir.path(), "c", 0));
        }
    }
    assert!(most <= 3_000, "bounded by the retained windows, not the 20,000 updates: {most}");
    let windows = d.window_all::<String, u64>("c");
    assert!(windows.len() < 1_500, "{} windows kept", windows.len());
    d.close().unwrap();
    std::fs::remove_dir_all(dir.path().join(APP).join("0_0")).unwrap();
    let d = open();
    assert_eq!(d.window_all::<String, u64>("c"), windows, "rebuilt from the compacted changelog");
}

#[test]
fn writes_still_pending_for_sled_at_a_checkpoint_are_replayed_from_the_changelog_after_a_crash() {
    // 24,000 keys over 2 tasks: every commit logs 12,000 records per task, enough for a new
    // at-least-once checkpoint each time.
    const KEYS: i64 = 24_000;
    let pipe = |d: &TestDriver, from: i64, to: i64| {
        let inp = d.input_topic("in", s(), i());
        inp.pipe_batch((from..to).map(|n| (format!("k{}", n % KEYS), n, n)));
    };
    let want = |to: i64| {
        let mut m = std::collections::BTreeMap::new();
        for n in 0..to {
            *m.entry(format!("k{}", n % KEYS)).or_insert(0) += n;
        }
        m
    };
    let dir = tempfile::tempdir().unwrap();
    let d = sums(dir.path(), |c| c);
    pipe(&d, 0, KEYS);
    d.commit().unwrap();
    pipe(&d, KEYS, 2 * KEYS);
    // This commit's writes reach the changelog now and sled only at the next commit: its checkpoint
    // says sled is complete up to the previous commit's end.
    d.commit().unwrap();
    let checkpoint = std::fs::read_to_string(dir.path().join(APP).join("0_0").join("checkpoint")).unwrap();
    assert!(checkpoint.contains("applied sums "), "{checkpoint}");
    pipe(&d, 2 * KEYS, 2 * KEYS + 100); // in the cache only
    drop(d); // crash
    let d = sums(dir.path(), |c| c);
    let got: std::collections::BTreeMap<String, i64> = all(&d).into_iter().collect();
    assert_eq!(got, want(2 * KEYS));
    let stats = d.restore_stats();
    assert_eq!(stats.full_restores, 0);
    assert_eq!(stats.records, KEYS as u64, "the last commit's records, replayed from the applied offset");
}

/// An aggregate whose `Serialize` fails (as a serde attribute bincode cannot follow would): it can
/// be computed, not stored.
#[derive(Clone, Debug, Default, serde::Deserialize)]
struct Unstorable(#[allow(dead_code)] i64);

impl serde::Serialize for Unstorable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this aggregate refuses to be serialized"))
    }
}

/// The error of an `Unstorable` value of store `totals`: the store, what failed, and serde's reason.
fn assert_names_unstorable_totals(text: &str) {
    assert!(text.contains("`totals`") && text.contains("value cannot be stored"), "{text}");
    assert!(text.contains("refuses to be serialized"), "{text}");
}

#[test]
fn a_value_that_cannot_be_stored_stops_the_task_with_an_error_naming_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .aggregate(Unstorable::default, |_, v, a: Unstorable| Unstorable(a.0 + v), Materialized::as_("totals"))
        .to_stream()
        .map_values(|a: Option<Unstorable>| a.map_or(0, |a| a.0))
        .to("out", Produced::with(s(), i()));
    let d = on_disk(b, StateConfig::new(dir.path()));
    let err = d.input_topic("in", s(), i()).try_pipe("k".into(), 1, 0).unwrap_err();
    let text = err.to_string();
    assert_names_unstorable_totals(&text);
}

#[test]
fn a_window_value_that_cannot_be_stored_fails_the_commit_with_an_error_naming_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(s(), i()))
        .group_by_key(Grouped::new())
        .windowed_by(TimeWindows::of(Duration::from_secs(60)))
        .emit(EmitStrategy::OnWindowClose)
        .aggregate(Unstorable::default, |_, v, a: Unstorable| Unstorable(a.0 + v), Materialized::as_("totals"))
        .to_stream()
        .map(|k: topology::Windowed<String>, a: Option<Unstorable>| (k.key, a.map_or(0, |a| a.0)))
        .to("out", Produced::with(s(), i()));
    let d = on_disk(b, StateConfig::new(dir.path()));
    // Held decoded, the value is encoded when it is written down: no later than the commit, which
    // then fails.
    let inp = d.input_topic("in", s(), i());
    let stored = inp.try_pipe("k".into(), 1, 0).and_then(|()| inp.try_pipe("k".into(), 2, 1));
    let text = match stored {
        Err(e) => e.to_string(),
        Ok(()) => d.commit().unwrap_err().to_string(),
    };
    assert_names_unstorable_totals(&text);
}
