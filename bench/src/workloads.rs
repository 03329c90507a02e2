//! The E1/E2 clickstream workloads: on the engine (a topology run by the embedded runtime with sled
//! state and changelogs) and as the floor (the same computation as a plain single-threaded loop over
//! hash maps with the same JSON parsing). Both produce the same rows, so the same count and checksum.
//!
//! - E1: per user_id, 5-minute tumbling event-time windows, count and sum(price), emitted on close.
//! - E2: per session_id, session windows with a 30-minute gap, count and duration (max ts − min ts),
//!   emitted on close.
//!
//! Grace 5 s. Windows close, and records are late, exactly as the engine's operators define it
//! (`topology::ops::window_aggregate` and `session_aggregate`); late records are counted, not emitted.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use topology::{
    Aggregate, EmitStrategy, Grouped, Materialized, Produced, Record, Serdes, SessionWindows, StreamsBuilder,
    TimeWindows, Topology, Windowed,
};

pub const WINDOW_MS: i64 = 5 * 60_000;
pub const GAP_MS: i64 = 30 * 60_000;
pub const GRACE_MS: i64 = 5_000;
/// The input and output topics.
pub const INPUT: &str = "events";
pub const OUTPUT: &str = "rows";

/// A clickstream event of `gen_events.py` as E1 reads it: the parser skips the other fields
/// (event_id, session_id, event_type, product_id, category), in the engine and the floor alike.
#[derive(Record, Debug, Clone, Serialize, Deserialize)]
#[record(topic = "events")]
pub struct UserEvent {
    pub user_id: String,
    pub price: f64,
    #[timestamp]
    pub ts: i64,
}

/// The same event as E2 reads it.
#[derive(Record, Debug, Clone, Serialize, Deserialize)]
#[record(topic = "events")]
pub struct SessionEvent {
    pub session_id: String,
    #[timestamp]
    pub ts: i64,
}

/// Prices are two-decimal amounts: summed as integer cents, so every implementation agrees exactly.
pub fn cents(price: f64) -> i64 {
    (price * 100.0).round() as i64
}

/// What E1 aggregates per user and window.
#[derive(Aggregate, Debug, Clone, Default, Serialize, Deserialize)]
#[aggregate(input = Sale)]
pub struct Spend {
    #[aggregate(count)]
    pub count: u64,
    #[aggregate(sum = cents)]
    pub cents: i64,
}

/// E1's input after the key change: just the amount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sale {
    pub cents: i64,
}

/// An output row: E1 (user_id, window_start, count, sum) or E2 (session_id, start, count, duration_ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub key: String,
    pub start: i64,
    pub count: u64,
    /// E1: the sum of prices in cents; E2: the duration in ms.
    pub value: i64,
}

impl Row {
    /// The canonical text the checksum hashes: `key,start,count,value` (E1's sum with two decimals).
    pub fn canonical(&self, workload: Workload) -> String {
        match workload {
            Workload::E1 => {
                format!("{},{},{},{}.{:02}", self.key, self.start, self.count, self.value / 100, self.value % 100)
            }
            Workload::E2 => format!("{},{},{},{}", self.key, self.start, self.count, self.value),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    E1,
    E2,
}

/// Order-independent checksum of rows: the wrapping sum of each canonical row's FNV-1a hash.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    pub rows: u64,
    pub sum: u64,
}

/// FNV-1a of a canonical row.
fn row_hash(canonical: &[u8]) -> u64 {
    let mut h = Fnv::default();
    std::hash::Hasher::write(&mut h, canonical);
    h.0
}

/// FNV-1a of what a typed row's `Hash` writes (its fields in order): the checksum of rows that are
/// never written out as text (Nexmark's typed output).
pub fn typed_row_hash<T: std::hash::Hash>(row: &T) -> u64 {
    let mut h = Fnv::default();
    row.hash(&mut h);
    h.0
}

/// The FNV-1a hasher.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A [`Checksum`] that an output function running on the engine adds to.
#[derive(Debug, Default)]
pub struct SharedChecksum {
    rows: AtomicU64,
    sum: AtomicU64,
}

impl SharedChecksum {
    /// Adds a row by its hash (see [`typed_row_hash`]).
    pub fn add_hash(&self, hash: u64) {
        self.rows.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(hash, Ordering::Relaxed); // wraps
    }
    pub fn get(&self) -> Checksum {
        Checksum { rows: self.rows.load(Ordering::Relaxed), sum: self.sum.load(Ordering::Relaxed) }
    }
}

impl Checksum {
    pub fn add(&mut self, canonical: &str) {
        self.add_hash(row_hash(canonical.as_bytes()))
    }
    /// Adds a row by its hash (see [`typed_row_hash`]).
    pub fn add_hash(&mut self, hash: u64) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(hash);
    }
    pub fn hex(&self) -> String {
        format!("{:016x}", self.sum)
    }
}

/// The engine's topology for a workload.
pub fn topology(workload: Workload) -> Topology {
    let mut b = StreamsBuilder::new();
    let rows = match workload {
        Workload::E1 => b
            .stream_of::<UserEvent>()
            .map(|_, e| (e.user_id, Sale { cents: cents(e.price) }))
            .group_by_key(Grouped::as_("by-user"))
            .windowed_by(
                TimeWindows::of(Duration::from_millis(WINDOW_MS as u64)).grace(Duration::from_millis(GRACE_MS as u64)),
            )
            .emit(EmitStrategy::OnWindowClose)
            .aggregate_into::<Spend>(Materialized::as_("e1-spend"))
            .to_stream()
            .flat_map(|k: Windowed<String>, v: Option<Spend>| {
                v.map(|s| (k.key.clone(), Row { key: k.key, start: k.window.start, count: s.count, value: s.cents }))
            }),
        Workload::E2 => b
            .stream_of::<SessionEvent>()
            .map(|_, e| (e.session_id, ()))
            .group_by_key(Grouped::as_("by-session"))
            .windowed_by(
                SessionWindows::with_inactivity_gap(Duration::from_millis(GAP_MS as u64))
                    .grace(Duration::from_millis(GRACE_MS as u64)),
            )
            .emit(EmitStrategy::OnWindowClose)
            .count(Materialized::as_("e2-sessions"))
            .to_stream()
            .flat_map(|k: Windowed<String>, v: Option<u64>| {
                v.map(|n| {
                    let row = Row {
                        key: k.key.clone(),
                        start: k.window.start,
                        count: n,
                        value: k.window.end - k.window.start,
                    };
                    (k.key, row)
                })
            }),
    };
    rows.to(OUTPUT, Produced::with(Serdes::string(), Serdes::json::<Row>()));
    b.build().expect("the workload topologies are valid")
}

/// What a floor run found.
#[derive(Debug, Default)]
pub struct FloorResult {
    pub events: u64,
    pub late: u64,
    pub bad: u64,
    pub checksum: Checksum,
}

/// The fields E1's floor reads, borrowed from the line (serde_json, like the engine's source).
#[derive(Deserialize)]
struct UserEventRef<'a> {
    #[serde(borrow)]
    user_id: std::borrow::Cow<'a, str>,
    price: f64,
    ts: i64,
}

/// The fields E2's floor reads.
#[derive(Deserialize)]
struct SessionEventRef<'a> {
    #[serde(borrow)]
    session_id: std::borrow::Cow<'a, str>,
    ts: i64,
}

/// The floor: one pass over the lines with the engine's window rules, as a tight single-threaded loop
/// over hash maps (no allocation per event once a key is known), rows straight into the checksum; one
/// line buffer, reused.
pub fn floor_reader(workload: Workload, reader: impl std::io::BufRead) -> std::io::Result<FloorResult> {
    let mut f = Floor::default();
    for_each_line(reader, |line| f.line(workload, line))?;
    Ok(f.finish(workload))
}

/// Calls `f` with each non-blank line, through one reused buffer (the floors' reading loop).
pub fn for_each_line(mut reader: impl std::io::BufRead, mut f: impl FnMut(&str)) -> std::io::Result<()> {
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        if !line.trim().is_empty() {
            f(&line);
        }
        line.clear();
    }
    Ok(())
}

/// A session's start, end and count.
type Session = (i64, i64, u64);

#[derive(Default)]
struct Floor {
    out: FloorResult,
    stream_time: Option<i64>,
    /// E1: user → open windows (start, count, cents); (window end, user) to close them in order.
    windows: HashMap<String, Vec<(i64, u64, i64)>>,
    by_end: BTreeMap<i64, Vec<String>>,
    /// E2: session id → slot; per slot its sessions [start, end] with counts; (end, slot) candidates
    /// to close (stale ones — the session grew since — are skipped when they come up).
    slots: HashMap<String, usize>,
    sessions: Vec<(String, Vec<Session>)>,
    ends: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>>,
}

impl Floor {
    fn line(&mut self, workload: Workload, line: &str) {
        match workload {
            Workload::E1 => match serde_json::from_str::<UserEventRef<'_>>(line) {
                Ok(e) => {
                    let close = self.advance(e.ts);
                    self.e1(&e.user_id, e.ts, cents(e.price), close);
                }
                Err(_) => self.out.bad += 1,
            },
            Workload::E2 => match serde_json::from_str::<SessionEventRef<'_>>(line) {
                Ok(e) => {
                    let close = self.advance(e.ts);
                    self.e2(&e.session_id, e.ts, close);
                }
                Err(_) => self.out.bad += 1,
            },
        }
    }

    /// One more event at `t`: stream time moves on; returns the close point (stream time − grace).
    fn advance(&mut self, t: i64) -> i64 {
        self.out.events += 1;
        let stream_time = self.stream_time.map_or(t, |s| s.max(t));
        self.stream_time = Some(stream_time);
        stream_time - GRACE_MS
    }

    fn e1(&mut self, user: &str, t: i64, cents: i64, close: i64) {
        let start = t - t.rem_euclid(WINDOW_MS);
        if start + WINDOW_MS <= close {
            self.out.late += 1;
        } else {
            let list = match self.windows.get_mut(user) {
                Some(list) => list,
                None => self.windows.entry(user.to_string()).or_default(),
            };
            match list.iter_mut().find(|w| w.0 == start) {
                Some(w) => {
                    w.1 += 1;
                    w.2 += cents;
                }
                None => {
                    list.push((start, 1, cents));
                    self.by_end.entry(start + WINDOW_MS).or_default().push(user.to_string());
                }
            }
        }
        while let Some(entry) = self.by_end.first_entry() {
            if *entry.key() > close {
                break;
            }
            let (end, users) = entry.remove_entry();
            for user in users {
                let list = self.windows.get_mut(&user).expect("indexed");
                let i = list.iter().position(|w| w.0 == end - WINDOW_MS).expect("indexed");
                let (start, count, sum) = list.swap_remove(i);
                let row = Row { key: user, start, count, value: sum };
                self.out.checksum.add(&row.canonical(Workload::E1));
            }
        }
    }

    fn e2(&mut self, id: &str, t: i64, close: i64) {
        let slot = match self.slots.get(id) {
            Some(&slot) => slot,
            None => {
                self.sessions.push((id.to_string(), Vec::new()));
                self.slots.insert(id.to_string(), self.sessions.len() - 1);
                self.sessions.len() - 1
            }
        };
        let list = &mut self.sessions[slot].1;
        let (mut start, mut end, mut count) = (t, t, 1u64);
        for &(s, en, c) in list.iter() {
            if en >= t - GAP_MS && s <= t + GAP_MS {
                start = start.min(s);
                end = end.max(en);
                count += c;
            }
        }
        if end < close {
            self.out.late += 1;
        } else {
            list.retain(|&(s, en, _)| !(en >= t - GAP_MS && s <= t + GAP_MS));
            list.push((start, end, count));
            self.ends.push(std::cmp::Reverse((end, slot)));
        }
        // Closed: end + gap + grace < stream time.
        let last_closed_end = close - GAP_MS - 1;
        while let Some(&std::cmp::Reverse((end, slot))) = self.ends.peek() {
            if end > last_closed_end {
                break;
            }
            self.ends.pop();
            let (id, list) = &mut self.sessions[slot];
            if let Some(i) = list.iter().position(|&(_, en, _)| en == end) {
                let (s, en, c) = list.swap_remove(i);
                let row = Row { key: id.clone(), start: s, count: c, value: en - s };
                self.out.checksum.add(&row.canonical(Workload::E2));
            }
        }
    }

    /// End of input: every open window closes.
    fn finish(mut self, workload: Workload) -> FloorResult {
        for (user, list) in std::mem::take(&mut self.windows) {
            for (start, count, sum) in list {
                self.out.checksum.add(&Row { key: user.clone(), start, count, value: sum }.canonical(workload));
            }
        }
        for (id, list) in std::mem::take(&mut self.sessions) {
            for (s, en, c) in list {
                self.out.checksum.add(&Row { key: id.clone(), start: s, count: c, value: en - s }.canonical(workload));
            }
        }
        self.out
    }
}

/// The checksum of an engine output file (envelope lines whose value is a [`Row`]).
pub fn checksum_of_output(workload: Workload, path: &std::path::Path) -> std::io::Result<Checksum> {
    let mut sum = Checksum::default();
    for line in std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(path)?)) {
        let v: serde_json::Value = serde_json::from_str(&line?).map_err(std::io::Error::other)?;
        let row: Row = serde_json::from_value(v["value"].clone()).map_err(std::io::Error::other)?;
        sum.add(&row.canonical(workload));
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events of 50 users over two hours, 20 % up to 5 s out of order and 2 % 6–60 s late, with session
    /// gaps around 30 minutes.
    fn events() -> Vec<String> {
        let (mut lines, mut seed) = (Vec::new(), 7u64);
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        let t0 = 1_704_067_323_456i64;
        for i in 0..20_000i64 {
            let user = next() % 50;
            // Users go quiet in turns: a user's events skip the stretch [30 min, 62 min) of each 2 h.
            let mut ts = t0 + i * 360;
            if (ts - t0 + (user as i64) * 60_000).rem_euclid(7_200_000) / 60_000 >= 30
                && (ts - t0 + (user as i64) * 60_000).rem_euclid(7_200_000) / 60_000 < 62
            {
                continue;
            }
            match next() % 100 {
                0..=19 => ts -= (next() % 4_999) as i64,
                20..=21 => ts -= 6_000 + (next() % 54_000) as i64,
                _ => {}
            }
            lines.push(format!(
                r#"{{"event_id":"e{i}","user_id":"u{user}","session_id":"u{user}-s","event_type":"page_view","product_id":"p1","category":"books","price":{}.{:02},"ts":{ts}}}"#,
                next() % 500,
                next() % 100
            ));
        }
        lines
    }

    #[test]
    fn the_engine_and_the_floor_give_the_same_rows_and_late_counts() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("events.jsonl");
        let lines = events();
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        for workload in [Workload::E1, Workload::E2] {
            let output = dir.path().join(format!("{workload:?}.jsonl"));
            let mut cfg = topology::EmbeddedConfig::new("bench-test", dir.path().join(format!("state-{workload:?}")));
            cfg.inputs.push((INPUT.into(), topology::Input::File(input.clone())));
            cfg.outputs.push((OUTPUT.into(), topology::Output::File(output.clone())));
            let summary = topology::run_embedded(&topology(workload), &cfg).unwrap();
            let engine = checksum_of_output(workload, &output).unwrap();
            let floor = floor_reader(workload, std::io::Cursor::new(lines.join("\n"))).unwrap();
            assert_eq!(engine, floor.checksum, "{workload:?}");
            assert_eq!(summary.late, floor.late, "{workload:?}");
            assert!(engine.rows > 50, "{workload:?}: {} rows", engine.rows);
            if workload == Workload::E1 {
                assert!(floor.late > 10, "late records are exercised: {}", floor.late);
            }
        }
    }
}
