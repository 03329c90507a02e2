//! Nexmark on the engine: events from the `nexmark` crate's generator (the RisingWave port of the
//! Beam/Flink generator; fixed base time, so the same events every run) on the embedded runtime with
//! sled state and changelogs, like E1/E2. The events reach the engine as typed records made in the
//! process ([`topology::RecordsInput`]), as Flink's and Arroyo's Nexmark runs read a generator source:
//! made ahead in chunks whose making is timed apart and left out of the query's time (the generator
//! itself makes ~1.3M events/s here, slower than the passthrough queries). Or, with a file, as JSON
//! Lines (parsing included).
//!
//! The queries follow the standard definitions (Flink's nexmark SQL, also used by Arroyo and RisingWave):
//!
//! - q0 passthrough: every bid (auction, bidder, price, date_time).
//! - q1 currency conversion: every bid with its price in euros (`0.908 * price`, in thousandths).
//! - q2 filter: (auction, price) of bids whose `auction % 123 == 0`.
//! - q5 hot items: bids per auction in hopping windows (10 s, every 2 s); per window the auctions
//!   with the most bids.
//! - q7 highest bid: per 10 s tumbling window, the bids with the highest price.
//! - q8 monitor new users: people who opened an auction in the same 10 s tumbling window in which they
//!   registered (a window join of persons and auctions on id = seller).
//! - q11 user sessions: bids per bidder in session windows with a 10 s gap.
//!
//! Windows close exactly at their end (grace 0: the generator's events are in time order). Session
//! windows end at their last bid (Flink's SESSION_END adds the gap). Each query also has a floor (a
//! plain loop over hash maps with the same parsing and rules): the same rows, so the same checksum.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexmark::event::{Bid, Event};
use serde::{Deserialize, Serialize};
use topology::{
    Consumed, EmitStrategy, Grouped, JoinWindows, KStream, Materialized, Produced, Serdes, SessionWindows,
    StreamJoined, StreamsBuilder, TimeWindows, Topology, Windowed,
};

use crate::workloads::{typed_row_hash, Checksum, SharedChecksum};

pub const INPUT: &str = "nexmark";
pub const OUTPUT: &str = "rows";
/// The generator's first event time (2023-11-14): fixed, so every run sees the same events.
pub const BASE_TIME_MS: u64 = 1_700_000_000_000;
const Q5_SIZE_MS: i64 = 10_000;
const Q5_SLIDE_MS: i64 = 2_000;
const TUMBLE_MS: i64 = 10_000;
const GAP_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Query {
    Q0,
    Q1,
    Q2,
    Q5,
    Q7,
    Q8,
    Q11,
}

impl Query {
    pub const ALL: [Query; 7] = [Query::Q0, Query::Q1, Query::Q2, Query::Q5, Query::Q7, Query::Q8, Query::Q11];
    pub fn name(self) -> &'static str {
        match self {
            Query::Q0 => "q0",
            Query::Q1 => "q1",
            Query::Q2 => "q2",
            Query::Q5 => "q5",
            Query::Q7 => "q7",
            Query::Q8 => "q8",
            Query::Q11 => "q11",
        }
    }
}

fn generator(n: usize, rate: usize) -> std::iter::Take<nexmark::EventGenerator> {
    let config = nexmark::config::NexmarkConfig {
        base_time: BASE_TIME_MS,
        first_rate: rate,
        next_rate: rate,
        ..Default::default()
    };
    nexmark::EventGenerator::new(config).take(n)
}

/// Events made ahead in chunks: the time spent making them is added to `making` (ns), so a run can
/// leave the generator's time out of its own.
struct Pregenerated {
    events: std::iter::Take<nexmark::EventGenerator>,
    chunk: std::vec::IntoIter<Event>,
    making: Arc<AtomicU64>,
}

/// Events per chunk: large enough that timing a chunk costs nothing, small enough to stay in cache.
const CHUNK: usize = 4096;

impl Iterator for Pregenerated {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.chunk.next() {
            return Some(e);
        }
        let started = Instant::now();
        let chunk: Vec<Event> = self.events.by_ref().take(CHUNK).collect();
        self.making.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.chunk = chunk.into_iter();
        self.chunk.next()
    }
}

/// The first `n` events at `rate` per second of event time, made ahead (see [`Pregenerated`]).
pub fn pregenerated(n: usize, rate: usize, making: Arc<AtomicU64>) -> impl Iterator<Item = Event> {
    Pregenerated { events: generator(n, rate), chunk: Vec::new().into_iter(), making }
}

/// The engine's input: `n` events as typed records (timestamps come from the source's extractor).
pub fn input(n: usize, rate: usize, making: Arc<AtomicU64>) -> topology::RecordsInput {
    topology::RecordsInput::new(Serdes::unit(), move || {
        pregenerated(n, rate, making.clone()).map(|e| topology::Record::new((), e, 0))
    })
}

/// Writes `n` generated events to `path`, one JSON object per line (`{"Bid":{…}}` and so on), at the
/// generator's default rate (10,000 events per second of event time).
pub fn generate(n: usize, path: &std::path::Path) -> std::io::Result<()> {
    generate_at(n, 10_000, path)
}

/// [`generate`] at `rate` events per second of event time.
pub fn generate_at(n: usize, rate: usize, path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for event in generator(n, rate) {
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn time_of(e: &Event) -> i64 {
    e.timestamp() as i64
}

// Row fields are declared in name order: a row's JSON is then its canonical text (see `canonical`).

/// q0/q1 rows: a bid, its price in thousandths (q1: `0.908 * price` exactly, as Flink's DECIMAL; no
/// float whose JSON text could differ in the last digit).
#[derive(Debug, Clone, Hash, Serialize, Deserialize)]
pub struct BidRow {
    pub auction: usize,
    pub bidder: usize,
    pub date_time: u64,
    pub price_thousandths: u64,
}

/// q0 keeps the price (× 1000), q1 converts dollars to euros (× 908).
const DOLLARS: u64 = 1000;
const EUROS: u64 = 908;

impl BidRow {
    fn of(b: &Bid, rate: u64) -> BidRow {
        BidRow {
            auction: b.auction,
            bidder: b.bidder,
            price_thousandths: rate * b.price as u64,
            date_time: b.date_time,
        }
    }
}

#[derive(Debug, Clone, Hash, Serialize, Deserialize)]
pub struct Q2Row {
    pub auction: usize,
    pub price: usize,
}

#[derive(Debug, Clone, Hash, Serialize, Deserialize)]
pub struct Q5Row {
    pub auction: usize,
    pub bids: u64,
    pub window_start: i64,
}

#[derive(Debug, Clone, Hash, Serialize, Deserialize)]
pub struct Q7Row {
    pub auction: usize,
    pub bidder: usize,
    pub date_time: u64,
    pub price: usize,
    pub window_start: i64,
}

impl Q7Row {
    fn of(window_start: i64, b: &Bid) -> Q7Row {
        Q7Row { window_start, auction: b.auction, bidder: b.bidder, price: b.price, date_time: b.date_time }
    }
}

#[derive(Debug, Clone, Hash, Serialize, Deserialize)]
pub struct Q8Row {
    pub id: usize,
    pub name: String,
    pub window_start: i64,
}

#[derive(Debug, Clone, Hash, Serialize, Deserialize)]
pub struct Q11Row {
    pub bidder: usize,
    pub bids: u64,
    pub end: i64,
    pub start: i64,
}

/// The leaders of a window: the highest figure seen and who has it (q5: auctions by bid count; q7: bids
/// by price).
#[derive(Debug, Clone, Hash, Serialize, Deserialize)]
pub struct Top<T> {
    pub best: u64,
    pub holders: Vec<T>,
}

impl<T> Default for Top<T> {
    fn default() -> Self {
        Top { best: 0, holders: Vec::new() }
    }
}

impl<T> Top<T> {
    fn offer(mut self, figure: u64, holder: T) -> Self {
        if figure > self.best || self.holders.is_empty() {
            self.best = figure;
            self.holders.clear();
        }
        if figure == self.best {
            self.holders.push(holder);
        }
        self
    }
}

fn tumbling(size_ms: i64) -> TimeWindows {
    TimeWindows::of(Duration::from_millis(size_ms as u64)).grace(Duration::ZERO)
}

/// Rows leave as JSON.
fn out<T: Serialize + serde::de::DeserializeOwned + Clone + 'static>(rows: KStream<(), T>) {
    rows.to(OUTPUT, Produced::with(Serdes::unit(), Serdes::json::<T>()));
}

fn bids(events: &KStream<(), Event>) -> KStream<(), Bid> {
    events.flat_map(|_, e| match e {
        Event::Bid(b) => Some(((), b)),
        _ => None,
    })
}

/// The engine's topology for a query.
pub fn topology(query: Query) -> Topology {
    let mut b = StreamsBuilder::new();
    let events = b.stream(
        INPUT,
        Consumed::with(Serdes::unit(), Serdes::json::<Event>()).with_timestamp_extractor(|_, e, _| Ok(time_of(e))),
    );
    match query {
        Query::Q0 => out(bids(&events).map_values(move |b| BidRow::of(&b, DOLLARS))),
        Query::Q1 => out(bids(&events).map_values(move |b| BidRow::of(&b, EUROS))),
        Query::Q2 => out(bids(&events)
            .filter(|_, b| b.auction % 123 == 0)
            .map_values(move |b| Q2Row { auction: b.auction, price: b.price })),
        Query::Q5 => {
            // Bids per auction and hopping window, emitted once the window closes (at its end − 1)…
            let counts = bids(&events)
                .map(|_, b| (b.auction, ()))
                .group_by_key(Grouped::as_("q5-by-auction"))
                .windowed_by(
                    TimeWindows::of(Duration::from_millis(Q5_SIZE_MS as u64))
                        .advance_by(Duration::from_millis(Q5_SLIDE_MS as u64))
                        .grace(Duration::ZERO),
                )
                .emit(EmitStrategy::OnWindowClose)
                .count(Materialized::as_("q5-counts"))
                .to_stream()
                .flat_map(|k: Windowed<usize>, n: Option<u64>| n.map(|n| (k.window.start, (k.key, n))));
            // …so all counts of one window fall into one tumbling window of the slide's length, keyed
            // by the window's start: the leaders are final when it closes.
            out(counts
                .group_by_key(Grouped::as_("q5-by-window"))
                .windowed_by(tumbling(Q5_SLIDE_MS))
                .emit(EmitStrategy::OnWindowClose)
                .aggregate(
                    Top::<usize>::default,
                    |_, (auction, n): &(usize, u64), top| top.offer(*n, *auction),
                    Materialized::as_("q5-leaders"),
                )
                .to_stream()
                .flat_map(move |k: Windowed<i64>, top: Option<Top<usize>>| {
                    let top = top.unwrap_or_default();
                    let window_start = k.key;
                    top.holders
                        .into_iter()
                        .map(move |auction| ((), Q5Row { window_start, auction, bids: top.best }))
                        .collect::<Vec<_>>()
                }))
        }
        Query::Q7 => out(bids(&events)
            .group_by_key(Grouped::as_("q7-all"))
            .windowed_by(tumbling(TUMBLE_MS))
            .emit(EmitStrategy::OnWindowClose)
            .aggregate(
                Top::<Bid>::default,
                |_, b: &Bid, top| top.offer(b.price as u64, b.clone()),
                Materialized::as_("q7-max"),
            )
            .to_stream()
            .flat_map(move |k: Windowed<()>, top: Option<Top<Bid>>| {
                let window_start = k.window.start;
                top.unwrap_or_default()
                    .holders
                    .into_iter()
                    .map(move |b| ((), Q7Row::of(window_start, &b)))
                    .collect::<Vec<_>>()
            })),
        Query::Q8 => {
            let persons = events
                .flat_map(|_, e| match e {
                    Event::Person(p) => Some((p.id, p.name)),
                    _ => None,
                })
                .group_by_key(Grouped::as_("q8-persons"))
                .windowed_by(tumbling(TUMBLE_MS))
                .emit(EmitStrategy::OnWindowClose)
                .reduce(|first, _| first, Materialized::as_("q8-new-persons"))
                .to_stream()
                .flat_map(|k: Windowed<usize>, name: Option<String>| name.map(|n| ((k.key, k.window.start), n)));
            let sellers = events
                .flat_map(|_, e| match e {
                    Event::Auction(a) => Some((a.seller, ())),
                    _ => None,
                })
                .group_by_key(Grouped::as_("q8-sellers"))
                .windowed_by(tumbling(TUMBLE_MS))
                .emit(EmitStrategy::OnWindowClose)
                .count(Materialized::as_("q8-new-auctions"))
                .to_stream()
                .flat_map(|k: Windowed<usize>, n: Option<u64>| n.map(|_| ((k.key, k.window.start), ())));
            // Both sides are emitted at their window's end − 1: a zero-width join window pairs the same
            // (person, window).
            out(persons
                .join_stream(
                    &sellers,
                    |name: &String, _: &()| name.clone(),
                    JoinWindows::of(Duration::ZERO).grace(Duration::ZERO),
                    StreamJoined::as_("q8-join"),
                )
                .map(move |(id, window_start), name| ((), Q8Row { id, name, window_start })))
        }
        Query::Q11 => out(bids(&events)
            .map(|_, b| (b.bidder, ()))
            .group_by_key(Grouped::as_("q11-by-bidder"))
            .windowed_by(
                SessionWindows::with_inactivity_gap(Duration::from_millis(GAP_MS as u64)).grace(Duration::ZERO),
            )
            .emit(EmitStrategy::OnWindowClose)
            .count(Materialized::as_("q11-sessions"))
            .to_stream()
            .flat_map(move |k: Windowed<usize>, n: Option<u64>| {
                n.map(|bids| ((), Q11Row { bidder: k.key, bids, start: k.window.start, end: k.window.end }))
            })),
    }
    b.build().expect("the Nexmark topologies are valid")
}

/// The text a row's checksum hashes: its JSON with object keys sorted.
pub fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut fields: Vec<(&String, &serde_json::Value)> = m.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{}", canonical(v))).collect();
            format!("{{{}}}", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// What a row's checksum hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Its JSON text (rows written out, see [`canonical`]).
    Json,
    /// Its fields, as its `Hash` writes them (rows handed over typed, see [`typed_output`]).
    Typed,
}

/// The rows of `query` handed to a function as the typed records its sink writes (as Flink's and
/// Arroyo's Nexmark runs end in a blackhole sink: rows are never encoded), summed into `sum` by
/// their fields ([`Rows::Typed`]).
pub fn typed_output(query: Query, sum: Arc<SharedChecksum>) -> topology::RecordsOutput {
    fn summed<T: Hash + 'static>(sum: Arc<SharedChecksum>) -> topology::RecordsOutput {
        topology::RecordsOutput::typed(move |r: topology::Record<(), T>| sum.add_hash(typed_row_hash(&r.value)))
    }
    match query {
        Query::Q0 | Query::Q1 => summed::<BidRow>(sum),
        Query::Q2 => summed::<Q2Row>(sum),
        Query::Q5 => summed::<Q5Row>(sum),
        Query::Q7 => summed::<Q7Row>(sum),
        Query::Q8 => summed::<Q8Row>(sum),
        Query::Q11 => summed::<Q11Row>(sum),
    }
}

/// The checksum of an engine output file (envelope lines whose value is a row).
pub fn checksum_of_output(path: &std::path::Path) -> std::io::Result<Checksum> {
    let mut sum = Checksum::default();
    for line in std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(path)?)) {
        let v: serde_json::Value = serde_json::from_str(&line?).map_err(std::io::Error::other)?;
        sum.add(&canonical(&v["value"]));
    }
    Ok(sum)
}

/// What a floor run found.
#[derive(Debug, Default)]
pub struct FloorResult {
    pub events: u64,
    pub bad: u64,
    pub checksum: Checksum,
}

/// The floor of a query over a file: one pass over the lines, rows straight into the checksum.
pub fn floor_reader(query: Query, reader: impl std::io::BufRead) -> std::io::Result<FloorResult> {
    let mut f = Floor::new(query, Rows::Json);
    crate::workloads::for_each_line(reader, |line| match serde_json::from_str::<Event>(line) {
        Ok(e) => f.event(e),
        Err(_) => f.out.bad += 1,
    })?;
    f.close_up_to(i64::MAX);
    Ok(f.out)
}

/// The floor of a query over events made in the process, its rows summed as `rows`.
pub fn floor_events(query: Query, events: impl Iterator<Item = Event>, rows: Rows) -> FloorResult {
    let mut f = Floor::new(query, rows);
    for e in events {
        f.event(e);
    }
    f.close_up_to(i64::MAX);
    f.out
}

/// A window's persons (id → name) and the sellers of its auctions (q8).
type NewUsers = (HashMap<usize, String>, HashSet<usize>);

struct Floor {
    query: Query,
    rows: Rows,
    out: FloorResult,
    stream_time: i64,
    /// q5: window start → auction → bids.
    hop_counts: BTreeMap<i64, HashMap<usize, u64>>,
    /// q7: window start → leaders.
    highest: BTreeMap<i64, Top<Bid>>,
    /// q8: window start → persons and sellers.
    new_users: BTreeMap<i64, NewUsers>,
    /// q11: bidder → open sessions (start, end, bids); (end, bidder) candidates to close (stale ones —
    /// the session grew since — are skipped when they come up).
    sessions: HashMap<usize, Vec<(i64, i64, u64)>>,
    ends: BinaryHeap<Reverse<(i64, usize)>>,
}

impl Floor {
    fn new(query: Query, rows: Rows) -> Floor {
        Floor {
            query,
            rows,
            out: FloorResult::default(),
            stream_time: i64::MIN,
            hop_counts: BTreeMap::new(),
            highest: BTreeMap::new(),
            new_users: BTreeMap::new(),
            sessions: HashMap::new(),
            ends: BinaryHeap::new(),
        }
    }

    /// A row into the checksum: its JSON text (fields in name order, numbers and plain strings: its
    /// canonical text) or its fields (see `Rows`).
    fn emit<T: Serialize + Hash>(&mut self, row: &T) {
        match self.rows {
            Rows::Json => self.out.checksum.add(&serde_json::to_string(row).expect("rows serialize")),
            Rows::Typed => self.out.checksum.add_hash(typed_row_hash(row)),
        }
    }

    /// Whether the tumbling window of `size` containing `t` is still open; its start.
    fn open_window(&self, t: i64, size: i64) -> Option<i64> {
        let start = t - t.rem_euclid(size);
        (start + size > self.stream_time).then_some(start)
    }

    fn event(&mut self, e: Event) {
        self.out.events += 1;
        let t = time_of(&e);
        self.stream_time = self.stream_time.max(t);
        match (self.query, e) {
            (Query::Q0, Event::Bid(b)) => self.emit(&BidRow::of(&b, DOLLARS)),
            (Query::Q1, Event::Bid(b)) => self.emit(&BidRow::of(&b, EUROS)),
            (Query::Q2, Event::Bid(b)) if b.auction % 123 == 0 => {
                self.emit(&Q2Row { auction: b.auction, price: b.price })
            }
            (Query::Q5, Event::Bid(b)) => {
                // The hopping windows containing t: starts in (t − size, t], multiples of the slide.
                let mut start = t - t.rem_euclid(Q5_SLIDE_MS);
                while start > t - Q5_SIZE_MS {
                    if start + Q5_SIZE_MS > self.stream_time {
                        *self.hop_counts.entry(start).or_default().entry(b.auction).or_default() += 1;
                    }
                    start -= Q5_SLIDE_MS;
                }
            }
            (Query::Q7, Event::Bid(b)) => {
                if let Some(start) = self.open_window(t, TUMBLE_MS) {
                    let top = self.highest.remove(&start).unwrap_or_default();
                    self.highest.insert(start, top.offer(b.price as u64, b));
                }
            }
            (Query::Q8, Event::Person(p)) => {
                if let Some(start) = self.open_window(t, TUMBLE_MS) {
                    self.new_users.entry(start).or_default().0.entry(p.id).or_insert(p.name);
                }
            }
            (Query::Q8, Event::Auction(a)) => {
                if let Some(start) = self.open_window(t, TUMBLE_MS) {
                    self.new_users.entry(start).or_default().1.insert(a.seller);
                }
            }
            (Query::Q11, Event::Bid(b)) => self.session(b.bidder, t),
            _ => {}
        }
        self.close_up_to(self.stream_time);
    }

    /// q11: merges `t` into the bidder's sessions, with the engine's rules (sessions within the gap
    /// merge; a session that ends before stream time − grace is late).
    fn session(&mut self, bidder: usize, t: i64) {
        let list = self.sessions.entry(bidder).or_default();
        let (mut start, mut end, mut bids) = (t, t, 1u64);
        for &(s, e, n) in list.iter() {
            if e >= t - GAP_MS && s <= t + GAP_MS {
                start = start.min(s);
                end = end.max(e);
                bids += n;
            }
        }
        if end < self.stream_time {
            return; // late (the generator's events come in time order)
        }
        list.retain(|&(s, e, _)| !(e >= t - GAP_MS && s <= t + GAP_MS));
        list.push((start, end, bids));
        self.ends.push(Reverse((end, bidder)));
    }

    /// Emits what stream time `now` closes: windows with end ≤ now, sessions with end + gap < now.
    fn close_up_to(&mut self, now: i64) {
        while let Some(entry) = self.hop_counts.first_entry() {
            if *entry.key() + Q5_SIZE_MS > now {
                break;
            }
            let (window_start, counts) = entry.remove_entry();
            let best = counts.values().copied().max().unwrap_or(0);
            for (&auction, &bids) in counts.iter().filter(|(_, &n)| n == best) {
                self.emit(&Q5Row { window_start, auction, bids });
            }
        }
        while let Some(entry) = self.highest.first_entry() {
            if *entry.key() + TUMBLE_MS > now {
                break;
            }
            let (window_start, top) = entry.remove_entry();
            for b in top.holders {
                self.emit(&Q7Row::of(window_start, &b));
            }
        }
        while let Some(entry) = self.new_users.first_entry() {
            if *entry.key() + TUMBLE_MS > now {
                break;
            }
            let (window_start, (persons, sellers)) = entry.remove_entry();
            for (id, name) in persons {
                if sellers.contains(&id) {
                    self.emit(&Q8Row { id, name, window_start });
                }
            }
        }
        let last_closed_end = now.saturating_sub(GAP_MS).saturating_sub(1);
        while let Some(&Reverse((end, bidder))) = self.ends.peek() {
            if end > last_closed_end {
                break;
            }
            self.ends.pop();
            let list = self.sessions.get_mut(&bidder).expect("indexed");
            if let Some(i) = list.iter().position(|&(_, e, _)| e == end) {
                let (start, end, bids) = list.swap_remove(i);
                self.emit(&Q11Row { bidder, bids, start, end });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_at(n: usize, rate: usize) -> topology::RecordsInput {
        input(n, rate, Arc::new(AtomicU64::new(0)))
    }

    /// Every query gives the floor's rows on the engine (embedded runtime, sled, changelogs). 500 events
    /// per second: a minute of event time, so windows and sessions close while events still come.
    #[test]
    fn the_engine_and_the_floor_give_the_same_rows_for_every_query() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("nexmark.jsonl");
        generate_at(30_000, 500, &input).unwrap();
        for query in Query::ALL {
            let output = dir.path().join(format!("{}.jsonl", query.name()));
            let mut cfg = topology::EmbeddedConfig::new(&format!("nexmark-{}", query.name()), dir.path().join("state"));
            cfg.inputs.push((INPUT.into(), topology::Input::File(input.clone())));
            cfg.outputs.push((OUTPUT.into(), topology::Output::File(output.clone())));
            let summary = topology::run_embedded(&topology(query), &cfg).unwrap();
            let engine = checksum_of_output(&output).unwrap();
            let floor = floor_reader(query, std::io::BufReader::new(std::fs::File::open(&input).unwrap())).unwrap();
            assert_eq!(floor.events, 30_000);
            assert_eq!(engine, floor.checksum, "{query:?}");
            assert_eq!(summary.late, 0, "{query:?}");
            // The same events made in the process give the same rows: as JSON…
            let making = Arc::new(AtomicU64::new(0));
            let floor_made = floor_events(query, pregenerated(30_000, 500, making.clone()), Rows::Json);
            assert_eq!(floor_made.checksum, floor.checksum, "{query:?} floor over made events");
            assert!(making.load(Ordering::Relaxed) > 0, "the making was timed");
            // …and handed over typed (to the engine as typed records, from it to a typed output).
            let mut cfg = topology::EmbeddedConfig::new(&format!("typed-{}", query.name()), dir.path().join("state"));
            cfg.inputs.push((INPUT.into(), topology::Input::Records(input_at(30_000, 500))));
            let sum = Arc::new(SharedChecksum::default());
            cfg.outputs.push((OUTPUT.into(), topology::Output::Records(typed_output(query, sum.clone()))));
            let summary = topology::run_embedded(&topology(query), &cfg).unwrap();
            let floor_typed = floor_events(query, pregenerated(30_000, 500, making.clone()), Rows::Typed);
            assert_eq!(sum.get(), floor_typed.checksum, "{query:?} typed");
            assert_eq!(sum.get().rows, engine.rows, "{query:?} typed");
            assert_eq!(summary.records_out[OUTPUT], engine.rows, "{query:?} typed");
            let least = match query {
                Query::Q0 | Query::Q1 => 27_000,
                Query::Q2 => 100,
                Query::Q5 => 30,                         // a window every 2 s
                Query::Q7 | Query::Q8 | Query::Q11 => 6, // a window every 10 s
            };
            assert!(engine.rows >= least, "{query:?}: {} rows", engine.rows);
        }
    }
}
