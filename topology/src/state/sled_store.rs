//! sled-backed byte stores: one tree per key-value store, one tree per time segment for window and
//! session stores (dropping an expired segment is dropping its tree).

use std::collections::BTreeMap;
use std::ops::Bound;

use super::bytes::{BytesStore, TimeHint};
use super::changelog::EntrySink;
use crate::error::{Error, Result};

pub(crate) fn sled_err(store: &str, e: sled::Error) -> Error {
    Error::State { store: store.to_string(), message: e.to_string() }
}

fn collect(store: &str, iter: sled::Iter) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    iter.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| sled_err(store, e))).collect()
}

fn bounds<'a>(lo: &'a [u8], hi: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (Bound::Included(lo), hi.map_or(Bound::Unbounded, Bound::Included))
}

/// A key-value store in one sled tree.
pub(crate) struct SledKv {
    name: String,
    tree: sled::Tree,
    db: sled::Db,
}

impl SledKv {
    pub(crate) fn open(db: &sled::Db, name: &str) -> Result<SledKv> {
        let tree = db.open_tree(name).map_err(|e| sled_err(name, e))?;
        Ok(SledKv { name: name.to_string(), tree, db: db.clone() })
    }
}

impl BytesStore for SledKv {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key).map_err(|e| sled_err(&self.name, e))?.map(|v| v.to_vec()))
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.tree.insert(key, value).map_err(|e| sled_err(&self.name, e)).map(|_| ())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.tree.remove(key).map_err(|e| sled_err(&self.name, e)).map(|_| ())
    }
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, _: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        collect(&self.name, self.tree.range::<&[u8], _>(bounds(lo, hi)))
    }
    fn for_each(&mut self, f: &mut EntrySink<'_>) -> Result<()> {
        each(&self.name, &self.tree, f)
    }
    fn expire_before(&mut self, _: i64) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.tree.flush().map_err(|e| sled_err(&self.name, e)).map(|_| ())
    }
    fn approximate_len(&self) -> u64 {
        self.tree.len() as u64
    }
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.put(key, v.to_vec()),
            None => self.delete(key),
        }
    }
    fn wipe(&mut self) -> Result<()> {
        self.tree.clear().map_err(|e| sled_err(&self.name, e))?;
        let _ = &self.db;
        Ok(())
    }
}

/// Calls `f` for every entry of `tree`, in key order, streamed (not collected).
fn each(store: &str, tree: &sled::Tree, f: &mut EntrySink<'_>) -> Result<()> {
    for entry in tree.iter() {
        let (k, v) = entry.map_err(|e| sled_err(store, e))?;
        f(&k, &v)?;
    }
    Ok(())
}

/// Extracts the segment time from a composite key (window start, or session end).
pub(crate) type SegmentTime = fn(&[u8]) -> i64;

/// How a window or session store's keys fall into time segments: one sled tree per segment, and the
/// layers above group their entries the same way (so scans and expiry touch only the segments involved).
#[derive(Clone, Copy)]
pub(crate) struct Segmenting {
    time_of: SegmentTime,
    interval: i64,
}

impl Segmenting {
    pub(crate) fn new(time_of: SegmentTime, retention: i64) -> Segmenting {
        Segmenting { time_of, interval: super::segment_interval(retention) }
    }
    /// The segment holding time `t`.
    pub(crate) fn at(&self, t: i64) -> i64 {
        t.div_euclid(self.interval)
    }
    /// The segment of a key.
    pub(crate) fn of(&self, key: &[u8]) -> i64 {
        self.at((self.time_of)(key))
    }
    /// The segments a time range `[from, to]` can touch.
    pub(crate) fn span(&self, (from, to): (i64, i64)) -> std::ops::RangeInclusive<i64> {
        let first = self.at(from);
        first..=self.at(to).max(first)
    }
}

/// The segment of `key` for a layer grouped by `segments` (key-value stores: the one group 0).
pub(crate) fn segment_of(segments: Option<Segmenting>, key: &[u8]) -> i64 {
    segments.map_or(0, |s| s.of(key))
}

/// The groups (by segment) of a layer that a scan with this time hint can touch: all of them without a
/// hint or segments.
pub(crate) fn groups_in<G>(
    segments: Option<Segmenting>,
    time: TimeHint,
    groups: &BTreeMap<i64, G>,
) -> std::collections::btree_map::Range<'_, i64, G> {
    match (time, segments) {
        (Some(span), Some(s)) => groups.range(s.span(span)),
        _ => groups.range(..),
    }
}

/// A window or session store: one sled tree per time segment, named `<store>.<segment id>`.
pub(crate) struct SledSegmented {
    name: String,
    db: sled::Db,
    by_time: Segmenting,
    segments: BTreeMap<i64, sled::Tree>,
}

impl SledSegmented {
    pub(crate) fn open(db: &sled::Db, name: &str, by_time: Segmenting) -> Result<SledSegmented> {
        let prefix = format!("{name}.");
        let mut segments = BTreeMap::new();
        for tree_name in db.tree_names() {
            let Ok(tree_name) = std::str::from_utf8(&tree_name) else { continue };
            if let Some(id) = tree_name.strip_prefix(&prefix).and_then(|s| s.parse::<i64>().ok()) {
                segments.insert(id, db.open_tree(tree_name).map_err(|e| sled_err(name, e))?);
            }
        }
        Ok(SledSegmented { name: name.to_string(), db: db.clone(), by_time, segments })
    }

    fn segment(&mut self, key: &[u8]) -> Result<&sled::Tree> {
        let id = self.by_time.of(key);
        if !self.segments.contains_key(&id) {
            let tree = self.db.open_tree(format!("{}.{id}", self.name)).map_err(|e| sled_err(&self.name, e))?;
            self.segments.insert(id, tree);
        }
        Ok(&self.segments[&id])
    }
}

impl BytesStore for SledSegmented {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.segments.get(&self.by_time.of(key)) {
            Some(t) => Ok(t.get(key).map_err(|e| sled_err(&self.name, e))?.map(|v| v.to_vec())),
            None => Ok(None),
        }
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        let name = self.name.clone();
        self.segment(key)?.insert(key, value).map_err(|e| sled_err(&name, e)).map(|_| ())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        if let Some(t) = self.segments.get(&self.by_time.of(key)) {
            t.remove(key).map_err(|e| sled_err(&self.name, e))?;
        }
        Ok(())
    }
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let ids: Vec<i64> = match time {
            Some(span) => self.segments.range(self.by_time.span(span)).map(|(id, _)| *id).collect(),
            None => self.segments.keys().copied().collect(),
        };
        let mut out = Vec::new();
        for id in ids {
            out.extend(collect(&self.name, self.segments[&id].range::<&[u8], _>(bounds(lo, hi)))?);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
    fn for_each(&mut self, f: &mut EntrySink<'_>) -> Result<()> {
        for tree in self.segments.values() {
            each(&self.name, tree, f)?;
        }
        Ok(())
    }
    fn expire_before(&mut self, t: i64) -> Result<()> {
        let keep_from = self.by_time.at(t);
        let expired: Vec<i64> = self.segments.range(..keep_from).map(|(id, _)| *id).collect();
        for id in expired {
            self.segments.remove(&id);
            self.db.drop_tree(format!("{}.{id}", self.name)).map_err(|e| sled_err(&self.name, e))?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.db.flush().map_err(|e| sled_err(&self.name, e)).map(|_| ())
    }
    fn approximate_len(&self) -> u64 {
        self.segments.values().map(|t| t.len() as u64).sum()
    }
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.put(key, v.to_vec()),
            None => self.delete(key),
        }
    }
    fn wipe(&mut self) -> Result<()> {
        self.expire_before(i64::MAX)
    }
}
