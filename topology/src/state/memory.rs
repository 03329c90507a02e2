//! In-memory stores: ordered maps over encoded keys, window and session stores split into time segments.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::Bound;

use super::{push_ts, read_ts, Data, KeyValueStore, SessionStore, StateStore, WindowStore};
use crate::serdes::{decode, encode_into};
use crate::window::Window;

pub(crate) fn decode_key<K: Data>(bytes: &[u8]) -> K {
    decode(bytes).expect("store keys were encoded by this store")
}

/// Encodes keys into a reused buffer, so lookups allocate nothing.
pub(crate) struct KeyBuf(RefCell<Vec<u8>>);

impl KeyBuf {
    pub(crate) fn new() -> Self {
        KeyBuf(RefCell::new(Vec::with_capacity(64)))
    }
    pub(crate) fn with<K: Data, R>(&self, key: &K, suffix: &[i64], f: impl FnOnce(&[u8]) -> R) -> R {
        let mut buf = self.0.borrow_mut();
        buf.clear();
        encode_into(key, &mut buf);
        for &t in suffix {
            push_ts(&mut buf, t);
        }
        f(&buf)
    }
}

/// Key-value store over a `BTreeMap` of encoded keys.
pub(crate) struct InMemoryKeyValueStore<K, V> {
    name: String,
    map: BTreeMap<Vec<u8>, V>,
    buf: KeyBuf,
    _k: PhantomData<fn() -> K>,
}

impl<K: Data, V: Data> InMemoryKeyValueStore<K, V> {
    pub(crate) fn new(name: &str) -> Self {
        InMemoryKeyValueStore { name: name.to_string(), map: BTreeMap::new(), buf: KeyBuf::new(), _k: PhantomData }
    }
}

impl<K, V> StateStore for InMemoryKeyValueStore<K, V> {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> crate::Result<()> {
        Ok(())
    }
    fn approximate_num_entries(&self) -> u64 {
        self.map.len() as u64
    }
}

impl<K: Data, V: Data> KeyValueStore<K, V> for InMemoryKeyValueStore<K, V> {
    fn get(&self, key: &K) -> Option<V> {
        self.buf.with(key, &[], |k| self.map.get(k).cloned())
    }
    fn put(&mut self, key: &K, value: V) {
        let map = &mut self.map;
        self.buf.with(key, &[], |k| match map.get_mut(k) {
            Some(slot) => *slot = value,
            None => {
                map.insert(k.to_vec(), value);
            }
        })
    }
    fn delete(&mut self, key: &K) -> Option<V> {
        let map = &mut self.map;
        self.buf.with(key, &[], |k| map.remove(k))
    }
    fn all(&self) -> Vec<(K, V)> {
        self.map.iter().map(|(k, v)| (decode_key(k), v.clone())).collect()
    }
}

/// Entries of one time segment, by `key ++ ts [++ ts]`.
type Segment<V> = BTreeMap<Vec<u8>, V>;

/// Time segments keyed by segment id (`time / interval`).
struct Segments<V> {
    interval: i64,
    segments: BTreeMap<i64, Segment<V>>,
}

impl<V> Segments<V> {
    fn new(retention: i64) -> Self {
        let interval = super::segment_interval(retention);
        Segments { interval, segments: BTreeMap::new() }
    }
    fn id(&self, t: i64) -> i64 {
        t.div_euclid(self.interval)
    }
    fn segment_mut(&mut self, t: i64) -> &mut Segment<V> {
        let id = self.id(t);
        self.segments.entry(id).or_default()
    }
    fn segment(&self, t: i64) -> Option<&Segment<V>> {
        self.segments.get(&self.id(t))
    }
    fn range(&self, from: i64, to: i64) -> impl Iterator<Item = &Segment<V>> {
        let (a, b) = (self.id(from), self.id(to));
        self.segments.range(a..=b.max(a)).map(|(_, s)| s)
    }
    /// Drops segments that hold only times before `t`.
    fn expire_before(&mut self, t: i64) {
        let keep_from = self.id(t);
        self.segments = self.segments.split_off(&keep_from);
    }
    fn len(&self) -> u64 {
        self.segments.values().map(|s| s.len() as u64).sum()
    }
}

/// Window store: `key ++ start` per segment of window start.
pub(crate) struct InMemoryWindowStore<K, V> {
    name: String,
    segs: Segments<V>,
    buf: KeyBuf,
    _k: PhantomData<fn() -> K>,
}

impl<K: Data, V: Data> InMemoryWindowStore<K, V> {
    pub(crate) fn new(name: &str, retention: i64) -> Self {
        InMemoryWindowStore {
            name: name.to_string(),
            segs: Segments::new(retention),
            buf: KeyBuf::new(),
            _k: PhantomData,
        }
    }
}

impl<K, V> StateStore for InMemoryWindowStore<K, V> {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> crate::Result<()> {
        Ok(())
    }
    fn approximate_num_entries(&self) -> u64 {
        self.segs.len()
    }
}

impl<K: Data, V: Data> WindowStore<K, V> for InMemoryWindowStore<K, V> {
    fn fetch(&self, key: &K, start: i64) -> Option<V> {
        let seg = self.segs.segment(start)?;
        self.buf.with(key, &[start], |k| seg.get(k).cloned())
    }
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Vec<(i64, V)> {
        let mut out = Vec::new();
        if from > to {
            return out;
        }
        let (lo, hi) = (self.buf.with(key, &[from], |k| k.to_vec()), self.buf.with(key, &[to], |k| k.to_vec()));
        for seg in self.segs.range(from, to) {
            for (k, v) in seg.range::<[u8], _>((Bound::Included(&lo[..]), Bound::Included(&hi[..]))) {
                out.push((read_ts(&k[k.len() - 8..]), v.clone()));
            }
        }
        out
    }
    fn fetch_all(&self, from: i64, to: i64) -> Vec<(K, i64, V)> {
        let mut out: Vec<(&[u8], i64, &V)> = Vec::new();
        for seg in self.segs.range(from, to) {
            for (k, v) in seg {
                let ts = read_ts(&k[k.len() - 8..]);
                if ts >= from && ts <= to {
                    out.push((&k[..k.len() - 8], ts, v));
                }
            }
        }
        out.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        out.into_iter().map(|(k, t, v)| (decode_key(k), t, v.clone())).collect()
    }
    fn put(&mut self, key: &K, start: i64, value: V) {
        let seg = self.segs.segment_mut(start);
        self.buf.with(key, &[start], |k| match seg.get_mut(k) {
            Some(slot) => *slot = value,
            None => {
                seg.insert(k.to_vec(), value);
            }
        })
    }
    fn remove(&mut self, key: &K, start: i64) {
        let id = self.segs.id(start);
        if let Some(seg) = self.segs.segments.get_mut(&id) {
            self.buf.with(key, &[start], |k| seg.remove(k));
        }
    }
    fn expire_before(&mut self, start: i64) {
        self.segs.expire_before(start);
    }
}

/// Session store: `key ++ end ++ start` per segment of session end.
pub(crate) struct InMemorySessionStore<K, V> {
    name: String,
    segs: Segments<V>,
    buf: KeyBuf,
    _k: PhantomData<fn() -> K>,
}

impl<K: Data, V: Data> InMemorySessionStore<K, V> {
    pub(crate) fn new(name: &str, retention: i64) -> Self {
        InMemorySessionStore {
            name: name.to_string(),
            segs: Segments::new(retention),
            buf: KeyBuf::new(),
            _k: PhantomData,
        }
    }
}

impl<K, V> StateStore for InMemorySessionStore<K, V> {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> crate::Result<()> {
        Ok(())
    }
    fn approximate_num_entries(&self) -> u64 {
        self.segs.len()
    }
}

fn session_of(k: &[u8]) -> (&[u8], Window) {
    let n = k.len();
    (&k[..n - 16], Window { start: read_ts(&k[n - 8..]), end: read_ts(&k[n - 16..n - 8]) })
}

impl<K: Data, V: Data> SessionStore<K, V> for InMemorySessionStore<K, V> {
    fn find_sessions(&self, key: &K, earliest_end: i64, latest_start: i64) -> Vec<(Window, V)> {
        let lo = self.buf.with(key, &[earliest_end, i64::MIN], |k| k.to_vec());
        let hi = self.buf.with(key, &[i64::MAX, i64::MAX], |k| k.to_vec());
        let mut out = Vec::new();
        let last = self.segs.segments.keys().next_back().copied().unwrap_or(i64::MIN);
        let first = self.segs.id(earliest_end);
        for (_, seg) in self.segs.segments.range(first..=last.max(first)) {
            for (k, v) in seg.range::<[u8], _>((Bound::Included(&lo[..]), Bound::Included(&hi[..]))) {
                let (_, w) = session_of(k);
                if w.start <= latest_start {
                    out.push((w, v.clone()));
                }
            }
        }
        out
    }
    fn fetch_session(&self, key: &K, window: Window) -> Option<V> {
        let seg = self.segs.segment(window.end)?;
        self.buf.with(key, &[window.end, window.start], |k| seg.get(k).cloned())
    }
    fn fetch_ending(&self, from: i64, to: i64) -> Vec<(K, Window, V)> {
        let mut out: Vec<(&[u8], Window, &V)> = Vec::new();
        for seg in self.segs.range(from, to) {
            for (k, v) in seg {
                let (kb, w) = session_of(k);
                if w.end >= from && w.end <= to {
                    out.push((kb, w, v));
                }
            }
        }
        out.sort_by(|a, b| (a.1.end, a.0, a.1.start).cmp(&(b.1.end, b.0, b.1.start)));
        out.into_iter().map(|(k, w, v)| (decode_key(k), w, v.clone())).collect()
    }
    fn put(&mut self, key: &K, window: Window, value: V) {
        let seg = self.segs.segment_mut(window.end);
        self.buf.with(key, &[window.end, window.start], |k| match seg.get_mut(k) {
            Some(slot) => *slot = value,
            None => {
                seg.insert(k.to_vec(), value);
            }
        })
    }
    fn remove(&mut self, key: &K, window: Window) {
        let id = self.segs.id(window.end);
        if let Some(seg) = self.segs.segments.get_mut(&id) {
            self.buf.with(key, &[window.end, window.start], |k| seg.remove(k));
        }
    }
    fn expire_before(&mut self, end: i64) {
        self.segs.expire_before(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_store_range_is_exact_per_key() {
        let mut s = InMemoryWindowStore::<String, u32>::new("w", 1_000_000);
        s.put(&"a".into(), 10, 1);
        s.put(&"ab".into(), 10, 2);
        s.put(&"a".into(), 20, 3);
        s.put(&"a".into(), 200_000, 4);
        assert_eq!(s.fetch_range(&"a".into(), 0, 20), vec![(10, 1), (20, 3)]);
        assert_eq!(s.fetch_range(&"a".into(), 0, 300_000).len(), 3);
        assert_eq!(s.fetch(&"ab".into(), 10), Some(2));
        let all: Vec<(String, i64)> = s.fetch_all(0, 20).into_iter().map(|(k, t, _)| (k, t)).collect();
        assert_eq!(all, vec![("a".into(), 10), ("ab".into(), 10), ("a".into(), 20)]);
    }

    #[test]
    fn window_store_expires_whole_segments() {
        let mut s = InMemoryWindowStore::<String, u32>::new("w", 120_000);
        for t in 0..10 {
            s.put(&"k".into(), t * 60_000, 1);
        }
        s.expire_before(5 * 60_000);
        assert_eq!(s.approximate_num_entries(), 5);
        assert!(s.fetch(&"k".into(), 0).is_none());
    }

    #[test]
    fn session_store_finds_overlapping_sessions() {
        let mut s = InMemorySessionStore::<String, u32>::new("s", 1_000_000);
        let k = "u".to_string();
        s.put(&k, Window { start: 0, end: 10 }, 1);
        s.put(&k, Window { start: 50, end: 60 }, 2);
        s.put(&"v".into(), Window { start: 20, end: 30 }, 3);
        // a record at 35 with gap 20: sessions ending >= 15 and starting <= 55
        let found: Vec<Window> = s.find_sessions(&k, 15, 55).into_iter().map(|(w, _)| w).collect();
        assert_eq!(found, vec![Window { start: 50, end: 60 }]);
        let found = s.find_sessions(&k, 5, 55);
        assert_eq!(found.len(), 2);
        s.remove(&k, Window { start: 0, end: 10 });
        assert_eq!(s.find_sessions(&k, 0, 100).len(), 1);
        assert_eq!(s.fetch_ending(0, 100).len(), 2);
    }
}
