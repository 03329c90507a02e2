//! A task's state on disk: one sled database per task directory `<state-dir>/<application-id>/<task-id>/`,
//! a changelog per logged store, and a checkpoint file.
//!
//! Commit: flush caches → stores → changelogs, then write `<task-dir>/checkpoint` (write + fsync + rename)
//! with every changelog's end offset, the offset its sled trees are complete up to (writes reach sled one
//! commit late, see `WriteBehind`) and the task's stream time. Open: a store whose task directory and
//! checkpoint are intact replays only the changelog after that applied offset; otherwise (directory deleted,
//! sled files torn, checkpoint missing or unreadable) the store is wiped and restored fully. Under
//! exactly-once, a task that did not close cleanly also drops the changelog records after the last commit
//! (they belong to work that is about to be redone) and restores fully.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::TaskId;
use crate::error::{Error, Result};
use crate::state::{
    for_each_over, session_time, window_time, BytesStore, Caching, ChangeLogging, Changelog, ErrorSlot, FrontSpec,
    LogChangelog, Metered, Pending, Segmenting, SharedChangelog, SledKv, SledSegmented, StateStore, StoreBuilder,
    StoreInstance, StoreKind, StoreStats, WriteBehind,
};

/// Opens the changelog of a store partition: `(changelog topic, partition)`.
pub type ChangelogFactory = Arc<dyn Fn(&str, u32) -> Result<Box<dyn Changelog>> + Send + Sync>;

/// Where and how a runtime keeps state.
///
/// ```
/// use topology::StateConfig;
/// let cfg = StateConfig::new("/tmp/state").cache_max_bytes(1 << 20).exactly_once(true);
/// assert_eq!(cfg.dir(), std::path::Path::new("/tmp/state"));
/// ```
#[derive(Clone)]
pub struct StateConfig {
    pub(crate) dir: PathBuf,
    pub(crate) cache_max_bytes: usize,
    pub(crate) exactly_once: bool,
    pub(crate) changelogs: Option<ChangelogFactory>,
    pub(crate) sled_cache_bytes: u64,
    pub(crate) compact_changelogs_after: u64,
    /// Changelogs are rewritten by [`StateManager::compact_due`] after the runtime's own commit record,
    /// not inside the commit (the embedded runtime's exactly-once).
    pub(crate) compact_after_commit_record: bool,
}

impl std::fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateConfig")
            .field("dir", &self.dir)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field("exactly_once", &self.exactly_once)
            .finish()
    }
}

impl StateConfig {
    /// State under `dir`, a 10 MiB write-back cache per task, at-least-once, changelogs as local logs
    /// under `<dir>/<application-id>/changelogs/`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateConfig {
            dir: dir.into(),
            cache_max_bytes: 10 << 20,
            exactly_once: false,
            changelogs: None,
            sled_cache_bytes: 8 << 20,
            compact_changelogs_after: 100_000,
            compact_after_commit_record: false,
        }
    }
    /// See `compact_after_commit_record`.
    pub(crate) fn compact_after_commit_records(mut self, on: bool) -> Self {
        self.compact_after_commit_record = on;
        self
    }
    /// Local changelogs (the embedded runtime's and the test driver's) are rewritten from their store
    /// at a commit once they hold this many records and twice as many as after their last rewrite
    /// (default 100,000), so they stay in proportion to the state rather than to the input. Kafka
    /// changelog topics are compacted by the broker.
    pub fn compact_changelogs_after(mut self, records: u64) -> Self {
        self.compact_changelogs_after = records.max(1);
        self
    }
    /// Bounds the write-back cache of each store (0 disables it: every update is written and forwarded).
    pub fn cache_max_bytes(mut self, bytes: usize) -> Self {
        self.cache_max_bytes = bytes;
        self
    }
    /// Exactly-once: after an unclean stop, uncommitted changelog records are dropped and stores rebuilt.
    pub fn exactly_once(mut self, on: bool) -> Self {
        self.exactly_once = on;
        self
    }
    /// Opens changelogs elsewhere (the Kafka runtime uses topics).
    pub fn changelogs(mut self, factory: ChangelogFactory) -> Self {
        self.changelogs = Some(factory);
        self
    }
    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    fn open_changelog(&self, application_id: &str, topic: &str, partition: u32) -> Result<Box<dyn Changelog>> {
        match &self.changelogs {
            Some(f) => f(topic, partition),
            None => {
                let path =
                    self.dir.join(application_id).join("changelogs").join(topic).join(format!("{partition}.log"));
                Ok(Box::new(LogChangelog::open(&path)?))
            }
        }
    }
}

const CHECKPOINT: &str = "checkpoint";
/// Distinct keys buffered while restoring, before they are written to the store.
const RESTORE_CHUNK: usize = 100_000;
const CHECKPOINT_VERSION: &str = "topology-checkpoint 1";
/// Pending writes of a logged store are bounded by its cache size, and by at least this much.
const MIN_WRITE_BEHIND_BYTES: usize = 1 << 20;
/// Changelog records after which an at-least-once commit writes a new checkpoint.
const CHECKPOINT_DELTA: u64 = 10_000;

/// What a checkpoint file records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Each changelog's end offset at the commit.
    pub(crate) offsets: BTreeMap<String, u64>,
    /// Where a store's sled trees are complete up to, when that is before its changelog's end (writes
    /// still pending in `WriteBehind`): a restore replays its changelog from here.
    pub(crate) applied: BTreeMap<String, u64>,
    pub(crate) stream_time: i64,
    /// Written by a clean close (no processing after it).
    pub(crate) clean: bool,
}

impl Checkpoint {
    fn parse(text: &str) -> Option<Checkpoint> {
        let mut lines = text.lines();
        if lines.next()? != CHECKPOINT_VERSION {
            return None;
        }
        let mut cp = Checkpoint { stream_time: i64::MIN, ..Default::default() };
        let mut complete = false;
        for line in lines {
            let mut parts = line.split(' ');
            match (parts.next()?, parts.next(), parts.next()) {
                ("stream-time", Some(t), None) => cp.stream_time = t.parse().ok()?,
                ("clean", None, None) => cp.clean = true,
                ("store", Some(name), Some(offset)) => {
                    cp.offsets.insert(name.to_string(), offset.parse().ok()?);
                }
                ("applied", Some(name), Some(offset)) => {
                    cp.applied.insert(name.to_string(), offset.parse().ok()?);
                }
                ("end", None, None) => complete = true,
                _ => return None,
            }
        }
        complete.then_some(cp)
    }

    fn render(&self) -> String {
        let mut s = format!("{CHECKPOINT_VERSION}\nstream-time {}\n", self.stream_time);
        for (name, offset) in &self.offsets {
            s.push_str(&format!("store {name} {offset}\n"));
        }
        for (name, offset) in &self.applied {
            s.push_str(&format!("applied {name} {offset}\n"));
        }
        if self.clean {
            s.push_str("clean\n");
        }
        s.push_str("end\n");
        s
    }
}

/// Writes `contents` to `path` atomically: a temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A logged store of the task: what rewriting its changelog from the store needs.
struct Logged {
    name: String,
    kind: StoreKind,
    retention: i64,
    log: SharedChangelog,
    /// Records in the changelog right after its last rewrite (0: not rewritten since open).
    compacted_len: u64,
    /// Writes not in sled yet (see `WriteBehind`).
    pending: Rc<RefCell<Pending>>,
    /// The changelog's end at the previous commit (or at open): sled holds everything logged before
    /// it once that commit's flush has run.
    last_end: u64,
}

impl Logged {
    /// The offset sled is complete up to, given the changelog's end now.
    fn applied(&self, end: u64) -> u64 {
        if self.pending.borrow().is_empty() {
            end
        } else {
            self.last_end
        }
    }
}

/// Restore figures of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Changelog records applied.
    pub records: u64,
    /// Stores rebuilt from the start of their changelog.
    pub full_restores: u64,
    /// Time spent restoring, microseconds.
    pub micros: u64,
}

pub(crate) struct StateManager {
    config: StateConfig,
    application_id: String,
    task: TaskId,
    task_dir: PathBuf,
    db: sled::Db,
    /// Held while the task is open.
    _lock: std::fs::File,
    /// Checkpoint found at open (or written by the last commit).
    checkpoint: Option<Checkpoint>,
    /// The local database survived (it is not new or rebuilt): a tail restore can start from it.
    local_trusted: bool,
    /// The checkpoint found at open was written by a clean close (see `checkpoint_restored`, which
    /// marks it unclean once a store is restored).
    clean_at_open: bool,
    changelogs: Vec<Logged>,
    pub(crate) clock: Rc<Cell<i64>>,
    pub(crate) stats: BTreeMap<String, Rc<StoreStats>>,
    pub(crate) restore: RestoreStats,
    /// The latest timestamp among the changelog records replayed: the stream time of the task that
    /// wrote them. A task restored without (or with an older) checkpoint takes stream time up from
    /// there, so operators know which windows were already closed and emitted.
    restored_stream_time: i64,
}

impl StateManager {
    /// Opens the task directory; a directory sled cannot open is deleted and rebuilt from changelogs.
    pub(crate) fn open(config: &StateConfig, application_id: &str, task: TaskId) -> Result<StateManager> {
        let task_dir = config.dir.join(application_id).join(task.to_string());
        let existed = task_dir.join("db").exists();
        std::fs::create_dir_all(&task_dir)?;
        // One instance per task directory: another one holding it is an error, never a reason to touch it.
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(task_dir.join(".lock"))?;
        if lock.try_lock().is_err() {
            return Err(Error::State {
                store: format!("task {task}"),
                message: format!("state directory {} is locked by another instance", task_dir.display()),
            });
        }
        let sled_config = |dir: &Path| {
            sled::Config::new()
                .path(dir.join("db"))
                .cache_capacity(config.sled_cache_bytes)
                .flush_every_ms(None)
                .mode(sled::Mode::HighThroughput)
        };
        let (db, local_trusted) = match sled_config(&task_dir).open() {
            Ok(db) => (db, existed),
            Err(_) => {
                // Torn or corrupt files (we hold the lock, so nobody else uses them): rebuild from the
                // changelogs.
                std::fs::remove_dir_all(task_dir.join("db"))?;
                let db = sled_config(&task_dir)
                    .open()
                    .map_err(|e| Error::State { store: format!("task {task}"), message: e.to_string() })?;
                (db, false)
            }
        };
        // The checkpoint is kept even when the local database is not: its changelog offsets still mark
        // the last commit (exactly-once drops what was logged after it).
        let checkpoint = std::fs::read_to_string(task_dir.join(CHECKPOINT)).ok().and_then(|t| Checkpoint::parse(&t));
        Ok(StateManager {
            config: config.clone(),
            application_id: application_id.to_string(),
            task,
            task_dir,
            db,
            _lock: lock,
            clean_at_open: checkpoint.as_ref().is_some_and(|c| c.clean),
            checkpoint,
            local_trusted,
            changelogs: Vec::new(),
            clock: Rc::new(Cell::new(i64::MIN)),
            stats: BTreeMap::new(),
            restore: RestoreStats::default(),
            restored_stream_time: i64::MIN,
        })
    }

    /// Changed entries a window or session store keeps decoded above its cache (see `state::front`),
    /// by the cache's size (about 1 KiB of memory each, counting the table and the cache's copies
    /// of what it writes down: Nexmark q5's peak RSS grew 13 MB at 256 bytes each): none without a
    /// cache.
    fn front_entries(&self) -> usize {
        self.config.cache_max_bytes / 1024
    }

    /// With a cache, table changes are de-duplicated until commit, by this many keys at most.
    pub(crate) fn dedup_keys(&self) -> Option<usize> {
        (self.config.cache_max_bytes > 0).then(|| (self.config.cache_max_bytes / 256).max(64))
    }

    /// The stream time the task resumes at: the one recorded at the last checkpoint, or the latest one
    /// found in the changelogs restored since (checkpoints are written every so many records).
    pub(crate) fn checkpointed_stream_time(&self) -> i64 {
        self.checkpoint.as_ref().map_or(i64::MIN, |c| c.stream_time).max(self.restored_stream_time)
    }

    /// The store's sled-backed byte store, and how its keys fall into time segments (window and
    /// session stores).
    fn open_stack(&self, builder: &StoreBuilder) -> Result<(Box<dyn BytesStore>, Option<Segmenting>)> {
        self.open_sled(&builder.name, builder.kind, builder.retention)
    }

    fn open_sled(
        &self,
        name: &str,
        kind: StoreKind,
        retention: i64,
    ) -> Result<(Box<dyn BytesStore>, Option<Segmenting>)> {
        let by_time = match kind {
            StoreKind::KeyValue => return Ok((Box::new(SledKv::open(&self.db, name)?), None)),
            StoreKind::Window => Segmenting::new(window_time, retention),
            StoreKind::Session => Segmenting::new(session_time, retention),
        };
        Ok((Box::new(SledSegmented::open(&self.db, name, by_time)?), Some(by_time)))
    }

    fn changelog_of(&self, name: &str) -> Result<SharedChangelog> {
        let topic = format!("{}-{name}-changelog", self.application_id);
        Ok(Rc::new(RefCell::new(self.config.open_changelog(&self.application_id, &topic, self.task.partition)?)))
    }

    /// Restores a task's stores into its local database and closes it cleanly, so that opening the
    /// task afterwards replays only what was logged since (nothing, usually). Runs on any thread: a
    /// runtime restores newly assigned tasks in the background while the others keep processing.
    pub(crate) fn prepare(
        config: &StateConfig,
        application_id: &str,
        task: TaskId,
        stores: &[StoreBuilder],
    ) -> Result<RestoreStats> {
        let mut sm = StateManager::open(config, application_id, task)?;
        let trusted = sm.checkpoint.is_some() && sm.local_trusted;
        let mut offsets = BTreeMap::new();
        for builder in stores {
            let (mut stack, _) = sm.open_stack(builder)?;
            if builder.logging {
                let changelog = sm.changelog_of(&builder.name)?;
                sm.restore_store(&builder.name, &mut *stack, &changelog)?;
                offsets.insert(builder.name.clone(), changelog.borrow_mut().flush()?);
            } else if !trusted {
                stack.wipe()?;
            }
            stack.flush()?;
        }
        sm.db.flush().map_err(|e| Error::State { store: format!("task {task}"), message: e.to_string() })?;
        let stream_time = sm.checkpointed_stream_time();
        let cp = Checkpoint { offsets, stream_time, clean: true, ..Default::default() };
        write_atomically(&sm.task_dir.join(CHECKPOINT), cp.render().as_bytes())?;
        Ok(sm.restore.clone())
    }

    /// Creates a store's layers (`Metered(Caching(ChangeLogging(WriteBehind(sled))))` for a logged store) and restores it.
    pub(crate) fn create(&mut self, builder: &StoreBuilder, errors: ErrorSlot) -> Result<StoreInstance> {
        let name = &builder.name;
        let (mut stack, segments) = self.open_stack(builder)?;
        if builder.logging {
            let changelog = self.changelog_of(name)?;
            let end = self.restore_store(name, &mut *stack, &changelog)?;
            let max_bytes = self.config.cache_max_bytes.max(MIN_WRITE_BEHIND_BYTES);
            let (write_behind, pending) = WriteBehind::new(stack, max_bytes, segments);
            self.changelogs.push(Logged {
                name: name.clone(),
                kind: builder.kind,
                retention: builder.retention,
                log: changelog.clone(),
                compacted_len: 0,
                pending,
                last_end: end,
            });
            stack = Box::new(ChangeLogging { inner: Box::new(write_behind), changelog, clock: self.clock.clone() });
        } else if self.checkpoint.is_none() || !self.local_trusted {
            stack.wipe()?; // nothing to restore from: start empty rather than from unknown local state
        }
        let stats = Rc::new(StoreStats::default());
        self.stats.insert(name.clone(), stats.clone());
        if self.config.cache_max_bytes > 0 {
            stack = Box::new(Caching::new(stack, self.config.cache_max_bytes, segments, stats.clone()));
        }
        stack = Box::new(Metered { inner: stack, stats });
        let front = FrontSpec { max_entries: self.front_entries(), segments };
        Ok((builder.make_persistent)(stack, errors, front))
    }

    /// Restores a store from its changelog (the tail after the checkpoint, or all of it); returns the
    /// changelog's end offset.
    fn restore_store(&mut self, name: &str, stack: &mut dyn BytesStore, changelog: &SharedChangelog) -> Result<u64> {
        let started = Instant::now();
        let mut log = changelog.borrow_mut();
        let offset = self.checkpoint.as_ref().and_then(|c| c.offsets.get(name).copied());
        let from = match (&self.checkpoint, offset) {
            // The local trees are complete up to the applied offset (the end, unless writes were pending).
            (Some(cp), Some(offset)) if self.local_trusted && (!self.config.exactly_once || self.clean_at_open) => {
                cp.applied.get(name).copied().unwrap_or(offset).min(offset)
            }
            (Some(_), Some(offset)) => {
                // Exactly-once after an unclean stop: drop what was logged after the last commit.
                if self.config.exactly_once {
                    log.truncate(offset)?;
                }
                stack.wipe()?;
                self.restore.full_restores += 1;
                0
            }
            _ => {
                stack.wipe()?;
                self.restore.full_restores += 1;
                0
            }
        };
        // Changelogs are not compacted: within a chunk only the last write of each key is applied, so a
        // restore skips superseded updates (memory stays bounded by the chunk).
        let mut n = 0u64;
        let mut latest: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        let mut max_ts = self.restored_stream_time;
        let end = log.read_from(from, &mut |k, v, ts| {
            n += 1;
            max_ts = max_ts.max(ts);
            latest.insert(k.to_vec(), v.map(<[u8]>::to_vec));
            if latest.len() >= RESTORE_CHUNK {
                for (k, v) in latest.drain() {
                    stack.restore(&k, v.as_deref())?;
                }
            }
            Ok(())
        })?;
        for (k, v) in latest.drain() {
            stack.restore(&k, v.as_deref())?;
        }
        self.restored_stream_time = max_ts;
        self.restore.records += n;
        self.restore.micros += started.elapsed().as_micros() as u64;
        drop(log);
        if self.config.exactly_once {
            self.checkpoint_restored(name, end)?;
        }
        Ok(end)
    }

    /// Exactly-once: processing goes on from the state just restored, so the checkpoint on disk must
    /// name where the store's log ends now, unclean. Else a crash before the next commit would roll
    /// back past records appended meanwhile: to a log rewritten after the offset was recorded (shorter
    /// than it), to a checkpoint written around a rewrite (no offset: a full restore, untruncated), or
    /// to a clean checkpoint (trusted, replayed to the end).
    fn checkpoint_restored(&mut self, name: &str, end: u64) -> Result<()> {
        let cp = self.checkpoint.get_or_insert_with(|| Checkpoint { stream_time: i64::MIN, ..Default::default() });
        if cp.offsets.get(name) == Some(&end) && !cp.applied.contains_key(name) && !cp.clean {
            return Ok(());
        }
        cp.offsets.insert(name.to_string(), end);
        cp.applied.remove(name); // sled holds everything up to the end now
        cp.clean = false;
        write_atomically(&self.task_dir.join(CHECKPOINT), cp.render().as_bytes())
    }

    /// Flushes caches → stores → changelogs, then writes the checkpoint.
    pub(crate) fn commit(
        &mut self,
        stores: &[Rc<RefCell<dyn StateStore>>],
        stream_time: i64,
        clean: bool,
    ) -> Result<()> {
        if clean {
            // Nothing stays pending after a clean close: the next open trusts sled up to the end.
            for l in &self.changelogs {
                l.pending.borrow_mut().write_all_at_flush = true;
            }
        }
        Self::flush_stores(stores)?;
        self.finish_commit(stream_time, clean)
    }

    /// First half of a commit: caches → stores, sending changelog records (a runtime does this for
    /// every task before waiting for any changelog, so a commit costs one round trip, not one per task).
    pub(crate) fn flush_stores(stores: &[Rc<RefCell<dyn StateStore>>]) -> Result<()> {
        for s in stores {
            s.borrow_mut().flush()?;
        }
        Ok(())
    }

    /// Second half: waits for the changelogs, then writes the checkpoint — after rewriting the local
    /// changelogs that have grown enough from their stores (see [`StateConfig::compact_changelogs_after`]).
    pub(crate) fn finish_commit(&mut self, stream_time: i64, clean: bool) -> Result<()> {
        let mut offsets = BTreeMap::new();
        let mut applied = BTreeMap::new();
        for l in &mut self.changelogs {
            let end = l.log.borrow_mut().flush()?;
            offsets.insert(l.name.clone(), end);
            applied.insert(l.name.clone(), l.applied(end));
            l.last_end = end;
        }
        let due = if self.config.compact_after_commit_record { Vec::new() } else { self.due_for_compaction(&offsets) };
        // At-least-once: the checkpoint (and the fsyncs that go with it) is written only once the
        // changelogs moved on by CHECKPOINT_DELTA records, or on close, as Kafka Streams does. An older
        // checkpoint is safe: a restore from it replays a little more of the changelog, and later
        // records win. Exactly-once writes it at every commit (it marks what may be rolled back).
        if !self.config.exactly_once && !clean && due.is_empty() {
            if let Some(old) = &self.checkpoint {
                let delta: u64 =
                    offsets.iter().map(|(n, o)| o.saturating_sub(old.offsets.get(n).copied().unwrap_or(0))).sum();
                if delta < CHECKPOINT_DELTA && old.offsets.len() == offsets.len() {
                    return Ok(());
                }
            }
        }
        self.db.flush().map_err(|e| Error::State { store: format!("task {}", self.task), message: e.to_string() })?;
        if !due.is_empty() {
            // A compacted log restarts its offsets: until the new checkpoint is written, the one on disk
            // names no offset for it, so a crash in between restores that store fully (from the old
            // log or the new one: both hold the state of this commit).
            let mut before =
                Checkpoint { offsets: offsets.clone(), applied: applied.clone(), stream_time, clean: false };
            for &i in &due {
                before.offsets.remove(&self.changelogs[i].name);
            }
            write_atomically(&self.task_dir.join(CHECKPOINT), before.render().as_bytes())?;
            self.compact(&due, &mut offsets, &mut applied, stream_time)?;
        }
        applied.retain(|name, a| offsets.get(name) != Some(a));
        let cp = Checkpoint { offsets, applied, stream_time, clean };
        write_atomically(&self.task_dir.join(CHECKPOINT), cp.render().as_bytes())?;
        self.checkpoint = Some(cp);
        Ok(())
    }

    /// The changelogs long enough to rewrite, given their end offsets.
    fn due_for_compaction(&self, offsets: &BTreeMap<String, u64>) -> Vec<usize> {
        (0..self.changelogs.len())
            .filter(|&i| {
                let l = &self.changelogs[i];
                let records = offsets.get(&l.name).copied().unwrap_or(0);
                l.log.borrow().compactable() && records >= self.config.compact_changelogs_after.max(2 * l.compacted_len)
            })
            .collect()
    }

    /// Right after a commit (and the runtime's commit record), rewrites the changelogs that are due and
    /// writes the checkpoint with their new offsets; whether any was rewritten. Only with
    /// `compact_after_commit_record` (else commits rewrite them themselves).
    pub(crate) fn compact_due(&mut self, stream_time: i64) -> Result<bool> {
        let Some(cp) = self.checkpoint.clone() else { return Ok(false) };
        if !self.config.compact_after_commit_record {
            return Ok(false);
        }
        let due = self.due_for_compaction(&cp.offsets);
        if due.is_empty() {
            return Ok(false);
        }
        let mut offsets = cp.offsets.clone();
        let mut applied = cp.applied.clone();
        self.compact(&due, &mut offsets, &mut applied, stream_time)?;
        applied.retain(|name, a| offsets.get(name) != Some(a));
        let cp = Checkpoint { offsets, applied, ..cp };
        write_atomically(&self.task_dir.join(CHECKPOINT), cp.render().as_bytes())?;
        self.checkpoint = Some(cp);
        Ok(true)
    }

    /// Rewrites the changelogs `due` as the live contents of their stores (flushed: this is a commit;
    /// sled's trees with the writes still pending over them), stamped with the stream time; their new
    /// end offsets go into `offsets`, and where sled is complete up to in the new log into `applied`
    /// (nowhere while writes are pending: they are somewhere in it).
    fn compact(
        &mut self,
        due: &[usize],
        offsets: &mut BTreeMap<String, u64>,
        applied: &mut BTreeMap<String, u64>,
        stream_time: i64,
    ) -> Result<()> {
        for &i in due {
            let l = &self.changelogs[i];
            let (mut store, segments) = self.open_sled(&l.name, l.kind, l.retention)?;
            let pending = l.pending.borrow();
            let end = l
                .log
                .borrow_mut()
                .compact(&mut |sink| for_each_over(&mut *store, &pending, segments, sink), stream_time)?;
            tracing::debug!(task = %self.task, store = %l.name, records = end, "changelog compacted");
            offsets.insert(l.name.clone(), end);
            applied.insert(l.name.clone(), if pending.is_empty() { end } else { 0 });
            drop(pending);
            self.changelogs[i].compacted_len = end;
            self.changelogs[i].last_end = end;
        }
        Ok(())
    }

    /// The text of the checkpoint written by the last commit, if any.
    pub(crate) fn checkpoint_text(&self) -> Option<String> {
        self.checkpoint.as_ref().map(Checkpoint::render)
    }

    /// Bytes the task's sled database takes on disk.
    pub(crate) fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_torn_ones_are_rejected() {
        let mut cp = Checkpoint { stream_time: 42, clean: true, ..Default::default() };
        cp.offsets.insert("counts".into(), 17);
        let text = cp.render();
        assert_eq!(Checkpoint::parse(&text), Some(cp));
        assert_eq!(Checkpoint::parse(&text[..text.len() - 4]), None, "no end marker: torn");
        assert_eq!(Checkpoint::parse("garbage"), None);
    }
}
