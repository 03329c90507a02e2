//! The embedded runtime: the same tasks as on Kafka, in one process, no server. Input topics are files
//! (or stdin, or typed records made in the process: [`RecordsInput`]), output topics are files (or
//! stdout, or a function in the process: [`RecordsOutput`]), state lives in the state directory.
//!
//! Records of several input topics are merged by event time: the runtime holds the next record of each
//! input and processes the one with the lowest timestamp over all tasks and partitions (Kafka Streams
//! chooses per task; merging globally also keeps partitions of one input in step), so a replay of files
//! gives the same results as live processing. At the end of finite input the final
//! results of every open window are emitted (`final_flush`), so a replay is a complete batch computation;
//! that ends the stream for the state directory (stream time moves to the end of time, and later input
//! would be late), so runs meant to be continued turn it off.
//!
//! Every commit: state is committed (caches → stores → changelogs → checkpoints), output files are
//! flushed and synced, then one commit record is written (write + rename) with the input positions, the
//! output files' lengths and a copy of every task checkpoint. A run started again with the same state
//! directory continues from it. At-least-once (default): commits every `commit_interval`; output written
//! after the last commit of a crashed run may appear twice. Exactly-once: commits at deterministic input
//! positions (every `commit_every_records`), and a restart first truncates the output files to their
//! committed lengths and rolls state and changelogs back to the committed checkpoints, so a replay
//! killed at any moment and run again ends with the same output files as an uninterrupted run.
//!
//! File formats: an output line is `{"key": …, "value": …, "timestamp": ms}` (plus `"headers"` when there
//! are any; keys and values that are JSON are embedded, other text is a string, other bytes are
//! `"hex:…"`; `null` value = tombstone). An input line is either one record in the topic's wire format
//! (`InputFormat::Wire`: the line is the value, no key) or such an envelope (`InputFormat::Envelope`),
//! so outputs can be replayed as inputs. Output topics without a file go to
//! `<state-dir>/<application-id>/topics/<topic>.jsonl`: nothing is dropped.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::engine::{Engine, EngineConfig, Outgoing};
use super::in_process::{AnyRecord, RecordsInput, RecordsOutput};
use crate::error::{Error, Result};
use crate::record::{Headers, RawRecord};
use crate::task::{write_atomically, StateConfig};
use crate::topology::Topology;

/// Where an input topic comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file, read from the last committed position.
    File(PathBuf),
    /// Standard input (not resumable).
    Stdin,
    /// Typed records made in this process (see [`RecordsInput`]): neither encoded nor parsed.
    Records(RecordsInput),
}

/// Where an output topic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file, appended to.
    File(PathBuf),
    /// Standard output.
    Stdout,
    /// A function in this process, given each record as the topic's bytes or as it is (see
    /// [`RecordsOutput`]).
    Records(RecordsOutput),
}

/// How input lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// The line is the record's value in the topic's wire format; no key.
    #[default]
    Wire,
    /// The line is a `{"key", "value", "timestamp"}` envelope, as the runtime writes them.
    Envelope,
}

/// Configures an embedded run.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Application id.
    pub application_id: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// Input topics.
    pub inputs: Vec<(String, Input)>,
    /// Output topics.
    pub outputs: Vec<(String, Output)>,
    /// How input lines are read.
    pub input_format: InputFormat,
    /// How often state, outputs and positions are committed (at-least-once).
    pub commit_interval: Duration,
    /// Exactly-once: commit every `commit_every_records` input records (deterministic commit points), and
    /// on restart truncate output files, state and changelogs back to the last commit.
    pub exactly_once: bool,
    /// Records between commits under exactly-once.
    pub commit_every_records: u64,
    /// Write-back cache per store, bytes.
    pub cache_max_bytes: usize,
    /// Emit the final results of open windows at the end of the input.
    pub final_flush: bool,
    /// Partitions per topic (tasks per sub-topology).
    pub partitions: u32,
    /// Called every 10,000 input records and at the end (the runner draws a progress line with it).
    pub progress: Option<ProgressFn>,
    /// Redis writes for output records: the sink and the mapping from (topic, record) to commands.
    /// Flushed with every commit; while Redis is down commands stay buffered (see the sink).
    pub redis: Option<RedisOutput>,
    /// Set (by a signal handler, say) to stop: reading stops, what was read is processed and committed,
    /// and the run returns (no final flush: the input did not end).
    pub stop: Option<Arc<AtomicBool>>,
    /// Idle advance for live input (stdin): a task with no records for this long moves its stream time
    /// on with the wall clock. Off by default, and ignored when every input is a file (a replay's time
    /// comes from its records only).
    pub idle_advance: Option<Duration>,
    /// Metrics and readiness for the operations endpoints ([`crate::metrics::serve`]), updated at
    /// every commit; ready once the tasks are open (their state restored).
    pub metrics: Option<Arc<crate::metrics::AppMetrics>>,
    /// Local changelogs are rewritten from their store once they hold this many records (and twice
    /// their last rewrite); see [`StateConfig::compact_changelogs_after`].
    pub compact_changelogs_after: u64,
}

impl EmbeddedConfig {
    /// A run of `application_id` with state under `state_dir` and no topics yet.
    pub fn new(application_id: &str, state_dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            application_id: application_id.to_string(),
            state_dir: state_dir.into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_format: InputFormat::Wire,
            commit_interval: Duration::from_secs(1),
            exactly_once: false,
            commit_every_records: 10_000,
            cache_max_bytes: 10 << 20,
            final_flush: true,
            partitions: 1,
            stop: None,
            progress: None,
            redis: None,
            idle_advance: None,
            metrics: None,
            compact_changelogs_after: 100_000,
        }
    }
}

/// How far a run has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input records read so far in this run.
    pub records: u64,
    /// Seconds since the run started.
    pub elapsed_ms: u64,
    /// The highest stream time over all tasks (epoch ms), `None` before the first record.
    pub stream_time: Option<i64>,
    /// The run is over.
    pub done: bool,
}

/// Maps an output record to Redis commands.
pub type RedisMapper = Arc<dyn Fn(&str, &RawRecord) -> Vec<crate::sink::redis::RedisCommand> + Send + Sync>;

/// Where output records also go to Redis.
#[derive(Clone)]
pub struct RedisOutput {
    /// The Redis URL (AUTH/TLS inside).
    pub url: String,
    /// Commands per output record.
    pub mapper: RedisMapper,
    /// Commands buffered at most before the run waits for Redis.
    pub max_buffered: usize,
    /// TLS material for a `rediss://` URL beyond the system's roots.
    pub tls: crate::sink::redis::RedisTls,
}

impl std::fmt::Debug for RedisOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("RedisOutput").field("max_buffered", &self.max_buffered).finish()
    }
}

/// A progress callback.
#[derive(Clone)]
pub struct ProgressFn(pub Arc<dyn Fn(&Progress) + Send + Sync>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn(..)")
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records read per input topic.
    pub records_in: BTreeMap<String, u64>,
    /// Records written per output topic.
    pub records_out: BTreeMap<String, u64>,
    /// Records dead-lettered (undecodable).
    pub dead_lettered: u64,
    /// Late records.
    pub late: u64,
    /// Commits made.
    pub commits: u64,
    /// The run was stopped before its inputs ended.
    pub stopped: bool,
    /// Commands written to Redis.
    pub redis_commands: u64,
    /// Redis outages seen (each logged when it began and ended).
    pub redis_outages: u64,
}

/// Where a source's lines come from: a file read in place, or stdin read by a thread (so a live stream
/// that is quiet does not block the loop, and a stop request is seen at once).
enum Lines {
    File(Box<dyn BufRead>),
    Channel(std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>),
}

enum Next {
    Line(usize),
    Pending,
    End,
}

impl Lines {
    fn stdin() -> Lines {
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            loop {
                let mut line = Vec::new();
                match lock.read_until(b'\n', &mut line) {
                    Ok(0) => return,
                    Ok(_) => {
                        if tx.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        Lines::Channel(rx)
    }

    /// Reads the next line into `buf` (cleared first), as bytes: a line that is not UTF-8 is bad
    /// input for its record (dead-lettered), not the end of the run.
    fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Next> {
        buf.clear();
        match self {
            Lines::File(r) => Ok(match r.read_until(b'\n', buf)? {
                0 => Next::End,
                n => Next::Line(n),
            }),
            Lines::Channel(rx) => match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    *buf = line?;
                    Ok(Next::Line(buf.len()))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(Next::Pending),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Ok(Next::End),
            },
        }
    }
}

/// What a source reads: lines, or typed records made in this process.
enum Reader {
    Lines(Lines),
    Records { records: Box<dyn Iterator<Item = AnyRecord>>, input: RecordsInput },
}

/// The next thing a reader has: a line (in the line buffer, `n` bytes) or a record.
enum Item {
    Line(usize),
    Record(AnyRecord),
}

struct Source {
    topic: String,
    /// The engine's route of `topic` (see `Engine::route_index`).
    route: usize,
    reader: Reader,
    /// Byte position after the last line read (files), records read (typed inputs).
    position: u64,
    resumable: bool,
    eof: bool,
    /// It had nothing more to read once (at its end, or waiting for live input): a global table is
    /// then loaded, and the streams start.
    caught_up: bool,
    line: u64,
    /// A global table's topic (loaded before, and apart from, the streams).
    global: bool,
    /// Non-blank lines read this run (the summary's `records_in`).
    records: u64,
    /// Its records buffered in the engine's tasks.
    queued: Rc<Cell<usize>>,
}

/// A line without its line ending (`\n` or `\r\n`, or stray `\r`s before it).
fn trim_line_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn json_or_text(bytes: &[u8]) -> serde_json::Value {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return v;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => {
            serde_json::Value::String(format!("hex:{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
        }
    }
}

/// An output line for a record: `{"key", "timestamp", "value"[, "headers"]}`, where a key or value that
/// is JSON is embedded as JSON and anything else as a string (`hex:…` when not UTF-8).
#[cfg(test)]
pub(crate) fn envelope(raw: &RawRecord) -> String {
    let mut out = Vec::new();
    write_envelope(&mut out, raw, false);
    String::from_utf8(out).expect("envelopes are JSON text")
}

/// Appends the output line of `raw` (see `envelope`, without the line end) to `out`. `json_value`: the
/// value is known to be one compact JSON text (its serde says so), embedded without checking.
fn write_envelope(out: &mut Vec<u8>, raw: &RawRecord, json_value: bool) {
    out.extend_from_slice(b"{\"key\":");
    push_json_or_text(out, raw.key.as_deref());
    out.extend_from_slice(b",\"timestamp\":");
    out.extend_from_slice(itoa::Buffer::new().format(raw.timestamp).as_bytes());
    out.extend_from_slice(b",\"value\":");
    match raw.value.as_deref() {
        Some(value) if json_value => out.extend_from_slice(value),
        value => push_json_or_text(out, value),
    }
    if !raw.headers.is_empty() {
        let h: serde_json::Map<String, serde_json::Value> =
            raw.headers.0.iter().map(|(k, v)| (k.clone(), json_or_text(v))).collect();
        out.extend_from_slice(b",\"headers\":");
        serde_json::to_writer(&mut *out, &h).expect("a JSON map of strings encodes");
    }
    out.push(b'}');
}

/// Appends `bytes` as JSON: compact one-line JSON as it is (validated without building a value, the
/// common case), other JSON re-serialized onto one line, anything else as a string.
fn push_json_or_text(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    let Some(bytes) = bytes else {
        out.extend_from_slice(b"null");
        return;
    };
    let one_line = !bytes.iter().any(|b| matches!(b, b'\n' | b'\r'));
    if one_line && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        if let Ok(text) = std::str::from_utf8(bytes) {
            out.extend_from_slice(text.trim().as_bytes());
            return;
        }
    }
    serde_json::to_writer(&mut *out, &json_or_text(bytes)).expect("a JSON value encodes");
}

fn bytes_of(v: &serde_json::Value) -> Option<Vec<u8>> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone().into_bytes()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// Reads an envelope line back into a record.
pub(crate) fn parse_envelope(line: &str) -> std::result::Result<RawRecord, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not a JSON envelope: {e}"))?;
    let o = v.as_object().ok_or("an envelope is a JSON object")?;
    let timestamp =
        o.get("timestamp").and_then(serde_json::Value::as_i64).ok_or("envelope without an integer `timestamp`")?;
    Ok(RawRecord {
        key: o.get("key").and_then(bytes_of),
        value: o.get("value").and_then(bytes_of),
        timestamp,
        headers: Headers::default(),
    })
}

/// Runs `topology` over files until the inputs end.
pub fn run_embedded(topology: &Topology, config: &EmbeddedConfig) -> Result<RunSummary> {
    let app_dir = config.state_dir.join(&config.application_id);
    std::fs::create_dir_all(&app_dir)?;
    let commit_path = app_dir.join("commit.json");
    let committed: Option<CommitRecord> =
        std::fs::read(&commit_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if config.exactly_once {
        match &committed {
            // Roll back to the commit: tasks restore from the committed checkpoints (marked unclean, so
            // changelog records after them are dropped).
            Some(c) => {
                for (task, text) in &c.checkpoints {
                    let unclean: String = text.lines().filter(|l| *l != "clean").map(|l| format!("{l}\n")).collect();
                    let dir = app_dir.join(task);
                    std::fs::create_dir_all(&dir)?;
                    write_atomically(&dir.join("checkpoint"), unclean.as_bytes())?;
                }
            }
            // Nothing committed yet: whatever state exists is from a run that never committed.
            None => {
                for entry in std::fs::read_dir(&app_dir)? {
                    let path = entry?.path();
                    if path.is_dir() && path.file_name().is_some_and(|n| n != "topics") {
                        std::fs::remove_dir_all(&path)?;
                    }
                }
            }
        }
    }
    let positions: HashMap<String, u64> =
        committed.as_ref().map(|c| c.positions.clone().into_iter().collect()).unwrap_or_default();
    let state = StateConfig::new(&config.state_dir)
        .cache_max_bytes(config.cache_max_bytes)
        .exactly_once(config.exactly_once)
        .compact_changelogs_after(config.compact_changelogs_after)
        .compact_after_commit_records(config.exactly_once);
    let engine_config = EngineConfig {
        application_id: config.application_id.clone(),
        default_partitions: config.partitions,
        partitions: HashMap::new(),
        wall_clock: super::now_ms(),
        state: Some(state),
        keep_records: false,
        lazy_tasks: false,
    };
    let mut engine = Engine::new(topology, engine_config)?;
    engine.connect_repartitions();
    let live = config.inputs.iter().any(|(_, i)| matches!(i, Input::Stdin));
    if config.idle_advance.is_some() && !live {
        tracing::info!("idle advance is off: every input is a file (replay time comes from the records)");
    }
    engine.set_idle_advance(config.idle_advance.filter(|_| live));
    let inputs: HashSet<&str> = config.inputs.iter().map(|(t, _)| t.as_str()).collect();
    for t in topology.source_topics() {
        if !inputs.contains(t.as_str()) {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no input given for topic `{t}`"),
            )));
        }
    }
    // Every external topic the tasks write leaves the engine: configured outputs, the dead-letter and
    // late-record topics and any sink topic without an output (to a file under the state directory).
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut stdout_topics = Vec::new();
    let mut writers: Writers = Writers::default();
    for (topic, out) in &config.outputs {
        match out {
            Output::File(p) => files.push((topic.clone(), p.clone())),
            Output::Stdout => stdout_topics.push(topic.clone()),
            Output::Records(f) => {
                engine.add_typed_output(topic, f)?;
                writers.insert(topic.clone(), Sink::Records(f.clone()));
            }
        }
    }
    let mut sink_topics: Vec<String> = topology.sink_topics();
    sink_topics.push(topology.deserialization.topic(&config.application_id));
    if let Some(t) = topology.late.topic() {
        sink_topics.push(t.to_string());
    }
    for topic in &sink_topics {
        if !config.outputs.iter().any(|(t, _)| t == topic) {
            std::fs::create_dir_all(app_dir.join("topics"))?;
            files.push((topic.clone(), app_dir.join("topics").join(format!("{topic}.jsonl"))));
        }
        engine.add_sink(topic);
    }
    for (topic, path) in files {
        let key = path.display().to_string();
        let f = OpenOptions::new().create(true).append(true).read(true).open(&path)?;
        if config.exactly_once {
            // Output written after the last commit is dropped: it will be written again.
            if let Some(len) = committed.as_ref().and_then(|c| c.outputs.get(&key)) {
                f.set_len(*len)?;
            }
        }
        let len = f.metadata()?.len();
        writers.insert(topic, Sink::File { writer: BufWriter::new(f), path: key, len });
    }
    for topic in stdout_topics {
        writers.insert(topic, Sink::Stdout(BufWriter::new(std::io::stdout())));
    }
    let mut consumed = committed.as_ref().map_or(0, |c| c.consumed);
    let mut redis = match &config.redis {
        Some(r) => Some((
            crate::sink::redis::RedisSink::open_tls(&r.url, &r.tls, r.max_buffered)
                .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())))?,
            r.mapper.clone(),
        )),
        None => None,
    };
    let mut sources = Vec::new();
    for (topic, input) in &config.inputs {
        let (reader, position, resumable): (Reader, u64, bool) = match input {
            Input::File(p) => {
                let mut f = File::open(p)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read input `{}`: {e}", p.display())))?;
                let pos = positions.get(topic).copied().unwrap_or(0);
                f.seek(SeekFrom::Start(pos))?;
                (Reader::Lines(Lines::File(Box::new(BufReader::with_capacity(1 << 16, f)))), pos, true)
            }
            Input::Stdin => (Reader::Lines(Lines::stdin()), 0, false),
            Input::Records(input) => {
                engine.check_typed_input(topic, input)?;
                // The records a committed run consumed are made again and skipped.
                let pos = positions.get(topic).copied().unwrap_or(0);
                let mut records = input.records();
                let skipped = records.by_ref().take(pos as usize).count() as u64;
                (Reader::Records { records, input: input.clone() }, skipped, true)
            }
        };
        let global = engine.global_topics.contains(topic);
        let queued = engine.queued(topic);
        sources.push(Source {
            queued,
            route: engine.route_index(topic),
            topic: topic.clone(),
            reader,
            position,
            resumable,
            eof: false,
            caught_up: false,
            line: 0,
            global,
            records: 0,
        });
    }
    let mut summary = RunSummary::default();
    let mut last_commit = Instant::now();
    let mut last_committed = consumed;
    let started = Instant::now();
    let mut read_this_run = 0u64;
    let report = |engine: &Engine, records: u64, done: bool| {
        if let Some(p) = &config.progress {
            let stream_time =
                engine.tasks.values().map(|t| t.ctx.stream_time).max().filter(|t| *t != i64::MIN && *t != i64::MAX);
            (p.0)(&Progress { records, elapsed_ms: started.elapsed().as_millis() as u64, stream_time, done });
        }
    };
    // Every commit point commits the same parts of the run.
    macro_rules! commit_now {
        () => {
            commit(
                &mut engine,
                &mut writers,
                &mut summary,
                &mut redis,
                &sources,
                &commit_path,
                consumed,
                config.metrics.as_deref(),
            )
        };
    }
    // Exactly-once commits the state it starts from before processing anything: the first commit
    // point; and after a rollback, the commit record must name the changelogs as they are now. A log
    // rewritten after the last commit record can be shorter than the offset recorded for it: records
    // appended to it from here on would lie below that offset, and a crash before the next commit
    // would roll back to a state that includes them.
    if config.exactly_once {
        commit_now!()?;
    }
    // With one stream input there is nothing to merge by time: a record can be processed as soon as
    // it is read (global tables are loaded completely before it, as always).
    let one_stream = sources.iter().filter(|s| !s.global).count() == 1;
    let mut line: Vec<u8> = Vec::new();
    let mut unflushed = false;
    let mut last_output_flush = Instant::now();
    let mut last_wall_clock = Instant::now();
    let mut steps_since_clock = 0u32;
    if let Some(m) = &config.metrics {
        m.set_tasks(engine.tasks.len(), 0);
        m.set_ready(true);
        engine.sample_latency();
    }
    loop {
        if config.stop.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
            summary.stopped = true;
            break;
        }
        let mut any = false;
        // Streams start once the global tables are loaded (as Kafka Streams bootstraps them).
        let loaded = sources.iter().all(|s| !s.global || s.caught_up);
        // Records processed as they were read (see `one_stream`).
        let mut processed = false;
        for s in sources.iter_mut() {
            if !s.global && !loaded {
                any = true;
                continue;
            }
            // Global tables are loaded completely before any stream record is processed; a stream
            // reads its next record once its previous one was taken, so every step sees the head of
            // each input and processes the lowest timestamp first.
            while !s.eof && (s.global || s.queued.get() == 0) {
                let item = match &mut s.reader {
                    Reader::Lines(lines) => match lines.next(&mut line)? {
                        Next::Line(n) => Item::Line(n),
                        Next::Pending => {
                            s.caught_up = true;
                            break;
                        }
                        Next::End => {
                            (s.eof, s.caught_up) = (true, true);
                            break;
                        }
                    },
                    Reader::Records { records, .. } => match records.next() {
                        Some(r) => Item::Record(r),
                        None => {
                            (s.eof, s.caught_up) = (true, true);
                            break;
                        }
                    },
                };
                s.position += match &item {
                    Item::Line(n) => *n as u64,
                    Item::Record(_) => 1,
                };
                s.line += 1;
                if !s.global {
                    consumed += 1;
                }
                read_this_run += 1;
                if read_this_run.is_multiple_of(10_000) {
                    report(&engine, read_this_run, false);
                }
                if let Item::Record(record) = item {
                    s.records += 1;
                    let Reader::Records { input, .. } = &s.reader else {
                        unreachable!("records come from typed inputs")
                    };
                    if engine.append_input(s.route, &s.topic, record, input, one_stream)? {
                        processed = true;
                        break; // one record per input and step, as for lines
                    }
                    continue;
                }
                let text = trim_line_end(&line);
                if text.is_empty() {
                    continue;
                }
                s.records += 1;
                // A line in the wire format is the value itself: decoded where it lies.
                let enveloped = match config.input_format {
                    InputFormat::Wire => None,
                    InputFormat::Envelope => Some(
                        std::str::from_utf8(text)
                            .map_err(|e| format!("not a JSON envelope: the line is not UTF-8 ({e})"))
                            .and_then(parse_envelope),
                    ),
                };
                match enveloped {
                    // One record per input and step, processed or not (the step's timers follow).
                    None if engine.append_value_at(s.route, &s.topic, text, one_stream)? => {
                        processed = true;
                        break;
                    }
                    None => {}
                    Some(Ok(raw)) => engine.append_at(s.route, &s.topic, None, raw)?,
                    Some(Err(e)) => {
                        // Not even a record: dead-lettered with the line as its value.
                        let mut headers = Headers::default();
                        headers.add("dlq.error", e.into_bytes());
                        headers.add("dlq.topic", s.topic.as_bytes());
                        headers.add("dlq.line", s.line.to_string().into_bytes());
                        let dlq = topology.deserialization.topic(&config.application_id);
                        let raw = RawRecord { key: None, value: Some(text.to_vec()), timestamp: 0, headers };
                        engine.outbox.push(Outgoing { topic: Arc::from(dlq), raw, json_value: false });
                        summary.dead_lettered += 1;
                    }
                }
                if s.global {
                    engine.run()?;
                }
            }
            any |= !s.eof || s.queued.get() > 0;
        }
        let progressed = engine.step_lowest()? || processed;
        let wrote = write_outbox(&mut engine, &mut writers, &mut summary, &mut redis)?;
        unflushed |= wrote;
        // Exactly-once commits at every multiple of its record count (so a replay commits at the same
        // points).
        if config.exactly_once
            && consumed > 0
            && consumed.is_multiple_of(config.commit_every_records.max(1))
            && consumed != last_committed
        {
            commit_now!()?;
            last_commit = Instant::now();
            last_committed = consumed;
        }
        // One clock read serves the timers below: at every pause, else every few steps (a clock read
        // per record is a visible cost).
        steps_since_clock += 1;
        if progressed && steps_since_clock < CLOCK_EVERY_STEPS {
            continue;
        }
        steps_since_clock = 0;
        let now = Instant::now();
        // At-least-once: outputs become visible as soon as input pauses (or every millisecond under
        // load), not only at commits, so latency does not depend on the commit interval. (Exactly-once
        // shows outputs at commits only.)
        if unflushed && !config.exactly_once && (!progressed || now.duration_since(last_output_flush) >= OUTPUT_FLUSH) {
            flush_outputs(&mut writers, &mut redis)?;
            unflushed = false;
            last_output_flush = now;
        }
        if !config.exactly_once && now.duration_since(last_commit) >= config.commit_interval {
            commit_now!()?;
            last_commit = Instant::now();
            last_committed = consumed;
        }
        if !any && !progressed {
            break;
        }
        if now.duration_since(last_wall_clock) >= WALL_CLOCK_TICK {
            engine.advance_wall_clock(super::now_ms())?;
            last_wall_clock = now;
        }
    }
    engine.run()?;
    if config.final_flush && !summary.stopped {
        engine.final_flush()?;
    }
    write_outbox(&mut engine, &mut writers, &mut summary, &mut redis)?;
    commit_now!()?;
    report(&engine, read_this_run, true);
    if let Some((sink, _)) = redis.as_mut() {
        summary.redis_commands = sink.metrics().commands_written;
        summary.redis_outages = sink.metrics().outages;
        sink.flush_within(Duration::from_secs(30))
            .map_err(|e| Error::Io(std::io::Error::other(format!("redis: {e}"))))?;
        summary.redis_commands = sink.metrics().commands_written;
    }
    for (topic, n) in engine.typed_outputs_written() {
        *summary.records_out.entry(topic.to_string()).or_default() += n;
    }
    let metrics = engine.tasks.values().map(|t| &t.ctx.metrics);
    for m in metrics {
        summary.dead_lettered += m.dead_lettered;
        summary.late += m.late.values().sum::<u64>();
    }
    engine.close()?;
    Ok(summary)
}

/// Each output topic's sink (looked up per record: a fast hash).
type Writers = rustc_hash::FxHashMap<String, Sink>;

/// Where an output topic's lines (or records) go.
enum Sink {
    File { writer: BufWriter<File>, path: String, len: u64 },
    Stdout(BufWriter<std::io::Stdout>),
    Records(RecordsOutput),
}

/// What a commit makes durable, in one file: the commit point.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CommitRecord {
    /// Byte position per input topic.
    positions: BTreeMap<String, u64>,
    /// Length per output file.
    outputs: BTreeMap<String, u64>,
    /// Input records consumed since the first run (commit points are multiples under exactly-once).
    consumed: u64,
    /// Every task's checkpoint file, by task directory name.
    checkpoints: BTreeMap<String, String>,
}

/// How often buffered outputs are flushed while input keeps coming (at-least-once).
const OUTPUT_FLUSH: Duration = Duration::from_millis(1);
/// Steps of the run loop between two clock reads while records keep coming.
const CLOCK_EVERY_STEPS: u32 = 32;
/// How often wall-clock time (punctuations, idle advance) moves on.
const WALL_CLOCK_TICK: Duration = Duration::from_millis(100);

/// Makes written output visible: file and stdout buffers are written out (not synced: commits sync),
/// and buffered Redis commands get one attempt.
fn flush_outputs(
    writers: &mut Writers,
    redis: &mut Option<(crate::sink::redis::RedisSink, RedisMapper)>,
) -> Result<()> {
    for sink in writers.values_mut() {
        match sink {
            Sink::File { writer, .. } => writer.flush()?,
            Sink::Stdout(w) => w.flush()?,
            Sink::Records(_) => {}
        }
    }
    if let Some((sink, _)) = redis.as_mut() {
        sink.flush();
    }
    Ok(())
}

/// Writes the records the tasks produced; returns whether there were any.
fn write_outbox(
    engine: &mut Engine,
    writers: &mut Writers,
    summary: &mut RunSummary,
    redis: &mut Option<(crate::sink::redis::RedisSink, RedisMapper)>,
) -> Result<bool> {
    if engine.outbox.is_empty() {
        return Ok(false);
    }
    for Outgoing { topic, raw, json_value } in engine.outbox.drain(..) {
        if let Some((sink, mapper)) = redis.as_mut() {
            for c in mapper(&topic, &raw) {
                sink.push(c);
            }
        }
        let line = || {
            let mut line =
                Vec::with_capacity(48 + raw.key.as_ref().map_or(0, Vec::len) + raw.value.as_ref().map_or(0, Vec::len));
            write_envelope(&mut line, &raw, json_value);
            line.push(b'\n');
            line
        };
        match writers.get_mut(&*topic).expect("every sink topic has a writer") {
            Sink::File { writer, len, .. } => {
                let line = line();
                writer.write_all(&line)?;
                *len += line.len() as u64;
            }
            Sink::Stdout(w) => w.write_all(&line())?,
            Sink::Records(f) => f.send(&raw),
        }
        match summary.records_out.get_mut(&*topic) {
            Some(n) => *n += 1,
            None => {
                summary.records_out.insert(topic.to_string(), 1);
            }
        }
    }
    Ok(true)
}

/// Records read so far are processed, then state is committed, then outputs, then the commit record:
/// the record is the commit point, and positions in it are never ahead of the state or the outputs.
#[allow(clippy::too_many_arguments)] // the run's parts, each borrowed on its own by the loop
fn commit(
    engine: &mut Engine,
    writers: &mut Writers,
    summary: &mut RunSummary,
    redis: &mut Option<(crate::sink::redis::RedisSink, RedisMapper)>,
    sources: &[Source],
    commit_path: &std::path::Path,
    consumed: u64,
    metrics: Option<&crate::metrics::AppMetrics>,
) -> Result<()> {
    let started = Instant::now();
    for s in sources {
        summary.records_in.insert(s.topic.clone(), s.records);
    }
    // Records already read must be in the state before positions past them are committed.
    engine.run()?;
    engine.commit()?;
    write_outbox(engine, writers, summary, redis)?;
    flush_outputs(writers, redis)?; // Redis: one attempt; what fails stays buffered and is retried
    let mut record = CommitRecord { consumed, ..Default::default() };
    for sink in writers.values_mut() {
        if let Sink::File { writer, path, len } = sink {
            writer.get_ref().sync_data()?;
            record.outputs.insert(path.clone(), *len);
        }
    }
    record.positions = sources.iter().filter(|s| s.resumable).map(|s| (s.topic.clone(), s.position)).collect();
    // The checkpoints just written, from memory (not read back from disk).
    for (id, task) in &engine.tasks {
        if let Some(text) = task.state.as_ref().and_then(|sm| sm.checkpoint_text()) {
            record.checkpoints.insert(id.to_string(), text);
        }
    }
    write_atomically(commit_path, &serde_json::to_vec_pretty(&record).expect("serializable"))?;
    // Exactly-once rolls back to the checkpoints in the commit record, so its changelogs are rewritten
    // only now, right after it (tasks say whether they did; at-least-once commits rewrite their own),
    // and the record is written again with the new offsets before any more processing. A crash in
    // between finds a rewritten log no longer than the recorded offset (live entries ≤ records), so
    // the rollback's truncation leaves it whole and the full restore rebuilds exactly this commit.
    let mut compacted = false;
    for (id, task) in engine.tasks.iter_mut() {
        if task.compact_changelogs()? {
            compacted = true;
            if let Some(text) = task.state.as_ref().and_then(|sm| sm.checkpoint_text()) {
                record.checkpoints.insert(id.to_string(), text);
            }
        }
    }
    if compacted {
        write_atomically(commit_path, &serde_json::to_vec_pretty(&record).expect("serializable"))?;
    }
    summary.commits += 1;
    if let Some(m) = metrics {
        m.commit(started.elapsed().as_secs_f64(), true);
        super::observe_run(m, engine, summary, 0, redis.as_ref().map(|(sink, _)| sink));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let raw = RawRecord {
            key: Some(b"u1".to_vec()),
            value: Some(br#"{"n":1}"#.to_vec()),
            timestamp: 5,
            headers: Headers::default(),
        };
        let line = envelope(&raw);
        assert_eq!(line, r#"{"key":"u1","timestamp":5,"value":{"n":1}}"#);
        assert_eq!(parse_envelope(&line).unwrap(), raw);
        let tomb = RawRecord { key: Some(b"k".to_vec()), value: None, timestamp: 1, headers: Headers::default() };
        assert_eq!(parse_envelope(&envelope(&tomb)).unwrap(), tomb);
        assert!(parse_envelope("{\"key\": 1}").unwrap_err().contains("timestamp"));
    }

    #[test]
    fn a_value_its_serde_calls_json_is_embedded_as_it_is_and_others_are_checked() {
        let raw = |value: &[u8]| RawRecord {
            key: Some(b"not json".to_vec()),
            value: Some(value.to_vec()),
            timestamp: -3,
            headers: Headers::default(),
        };
        let line = |raw: &RawRecord, json| {
            let mut out = Vec::new();
            write_envelope(&mut out, raw, json);
            String::from_utf8(out).unwrap()
        };
        let json = raw(br#"{"a":[1,2]}"#);
        assert_eq!(line(&json, true), r#"{"key":"not json","timestamp":-3,"value":{"a":[1,2]}}"#);
        assert_eq!(line(&json, true), line(&json, false));
        // Unchecked text that is not JSON would be embedded as is: only JSON serdes say `is_json`.
        assert_eq!(line(&raw(b"plain"), false), r#"{"key":"not json","timestamp":-3,"value":"plain"}"#);
    }
}
