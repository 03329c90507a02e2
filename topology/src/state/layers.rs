//! The layers between a typed store and its sled trees, each one concern:
//! [`ChangeLogging`] mirrors writes to the changelog, [`Caching`] is the write-back cache bounded in bytes,
//! [`Metered`] counts operations. Stacked as `Metered(Caching(ChangeLogging(WriteBehind(sled))))` (see
//! `write_behind` for the last one; window and session stores keep a typed front above, see `front`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::rc::Rc;

use super::bytes::{BytesStore, TimeHint, UpdateFn};
use super::changelog::Changelog;
use super::sled_store::{groups_in, segment_of, Segmenting};
use crate::error::Result;

/// Implements `BytesStore` methods that a layer passes to `self.inner` unchanged.
macro_rules! pass_through {
    ($($method:ident),* $(,)?) => {
        $(pass_through!(@one $method);)*
    };
    (@one get) => {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.get(key)
        }
    };
    (@one range) => {
        fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.inner.range(lo, hi, time)
        }
    };
    (@one expire_before) => {
        fn expire_before(&mut self, t: i64) -> Result<()> {
            self.inner.expire_before(t)
        }
    };
    (@one flush) => {
        fn flush(&mut self) -> Result<()> {
            self.inner.flush()
        }
    };
    (@one approximate_len) => {
        fn approximate_len(&self) -> u64 {
            self.inner.approximate_len()
        }
    };
    (@one restore) => {
        fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
            self.inner.restore(key, value)
        }
    };
    (@one wipe) => {
        fn wipe(&mut self) -> Result<()> {
            self.inner.wipe()
        }
    };
}

/// A changelog shared by its logging layer (which appends) and the state manager (which flushes it at
/// commit, reads it on restore and records its offset in the checkpoint).
pub(crate) type SharedChangelog = Rc<RefCell<Box<dyn Changelog>>>;

/// Appends every write that reaches the store to its changelog, stamped with the task's stream time.
pub(crate) struct ChangeLogging {
    pub(crate) inner: Box<dyn BytesStore>,
    pub(crate) changelog: SharedChangelog,
    pub(crate) clock: Rc<Cell<i64>>,
}

impl BytesStore for ChangeLogging {
    fn put(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.changelog.borrow_mut().append(key, Some(&value), self.clock.get())?;
        self.inner.put(key, value)
    }
    fn put_new(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.changelog.borrow_mut().append(key, Some(&value), self.clock.get())?;
        self.inner.put_new(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.changelog.borrow_mut().append(key, None, self.clock.get())?;
        self.inner.delete(key)
    }
    // Expired segments are not logged: a restore drops them again by the same retention. Restores write
    // below the log (they come from it).
    pass_through!(get, range, expire_before, flush, approximate_len, restore, wipe);
}

/// Counters of one store, shared by its layers.
#[derive(Debug, Default)]
pub(crate) struct StoreStats {
    pub(crate) gets: Cell<u64>,
    pub(crate) puts: Cell<u64>,
    pub(crate) deletes: Cell<u64>,
    pub(crate) range_scans: Cell<u64>,
    pub(crate) cache_hits: Cell<u64>,
    pub(crate) cache_misses: Cell<u64>,
    pub(crate) cache_flushes: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// Per-entry bookkeeping cost counted against the cache size, besides key and value bytes.
const ENTRY_OVERHEAD: usize = 64;
/// The same for a key in a group's fresh list.
const FRESH_OVERHEAD: usize = 40;

/// Write-back cache: writes stay here (the latest per key) until a commit or until the cache exceeds
/// `max_bytes`, so repeated updates of a hot key within a commit interval cost one store write and one
/// changelog record. Entries read or written stay cached (clean after a flush) within the same bound, so
/// hot keys are served from memory across commits. Entries are grouped by time segment (one group for
/// key-value stores), so range scans and expiry touch only the segments involved; within a group a hash
/// map serves point reads and writes, and an ordered set of the dirty keys serves range merges and
/// writes down in key order.
pub(crate) struct Caching {
    pub(crate) inner: Box<dyn BytesStore>,
    pub(crate) max_bytes: usize,
    /// For segmented stores: how keys fall into time segments (one group each).
    pub(crate) segments: Option<Segmenting>,
    pub(crate) stats: Rc<StoreStats>,
    groups: BTreeMap<i64, Group>,
    bytes: usize,
    dirty: usize,
    /// Bytes of the groups' fresh-key lists: beyond a quarter of `max_bytes` every group settles.
    fresh_bytes: usize,
    /// A buffer for the next update's value (the previous value's, recycled).
    spare: Vec<u8>,
}

#[derive(Default)]
struct Group {
    /// Keys are shared with `dirty` and `fresh` (one allocation per cached key).
    entries: rustc_hash::FxHashMap<Rc<[u8]>, Entry>,
    /// Dirty keys in key order, for range merges and write-downs.
    dirty: BTreeSet<Rc<[u8]>>,
    /// Keys that became dirty since `dirty` was last brought up to date ([`settle`](Self::settle)):
    /// they join it only when an ordered use comes (a range scan, a write-down) or the list grows, so
    /// a key deleted meanwhile — each session a merge replaces — costs no ordered insert and remove.
    fresh: Vec<Rc<[u8]>>,
}

impl Group {
    /// Bytes the fresh list holds (counted in `Caching::fresh_bytes`).
    fn fresh_bytes(&self) -> usize {
        self.fresh.iter().map(|k| k.len() + FRESH_OVERHEAD).sum()
    }

    /// Puts the fresh keys still dirty into the ordered set (the others were deleted meanwhile).
    fn settle(&mut self) {
        for k in self.fresh.drain(..) {
            if let Some(e) = self.entries.get_mut(&k) {
                if e.dirty && !e.ordered {
                    e.ordered = true;
                    self.dirty.insert(k);
                }
            }
        }
    }

    /// Forgets that a removed entry was dirty.
    fn forget_dirty(&mut self, key: &[u8], e: &Entry) {
        if e.ordered {
            self.dirty.remove(key);
        }
    }
}

/// A cached value (`None`: known to be absent) and whether the store below lacks it yet.
struct Entry {
    value: Option<Vec<u8>>,
    dirty: bool,
    /// The store below is known not to have the key (it was read as absent, a range over it came back
    /// without it, or a delete was written down). Deleting such an entry needs no tombstone: a key
    /// written and deleted between two flushes never reaches the store, its changelog, or the dirty
    /// set that range scans walk (session merges leave one such key per merged session).
    absent_below: bool,
    /// Its key is in the group's ordered dirty set (else, if dirty, in its fresh list).
    ordered: bool,
}

impl Caching {
    pub(crate) fn new(
        inner: Box<dyn BytesStore>,
        max_bytes: usize,
        segments: Option<Segmenting>,
        stats: Rc<StoreStats>,
    ) -> Self {
        Caching {
            inner,
            max_bytes,
            segments,
            stats,
            groups: BTreeMap::new(),
            bytes: 0,
            dirty: 0,
            fresh_bytes: 0,
            spare: Vec::new(),
        }
    }

    /// Notes that `key` of segment `seg` became dirty.
    fn mark_dirty(&mut self, seg: i64, key: Rc<[u8]>) {
        self.dirty += 1;
        self.fresh_bytes += key.len() + FRESH_OVERHEAD;
        self.groups.get_mut(&seg).expect("the entry's group").fresh.push(key);
        if self.fresh_bytes > self.max_bytes / 4 {
            for g in self.groups.values_mut() {
                g.settle();
            }
            self.fresh_bytes = 0;
        }
    }

    /// Settles the groups of these segments (see `Group::settle`).
    fn settle(&mut self, segments: &[i64]) {
        for s in segments {
            if let Some(g) = self.groups.get_mut(s) {
                if !g.fresh.is_empty() {
                    self.fresh_bytes = self.fresh_bytes.saturating_sub(g.fresh_bytes());
                    g.settle();
                }
            }
        }
    }

    fn cost(key: &[u8], value: &Option<Vec<u8>>) -> usize {
        key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
    }

    fn segment_of(&self, key: &[u8]) -> i64 {
        segment_of(self.segments, key)
    }

    /// Caches `value` for `key`; `dirty` when it still has to reach the store below.
    fn set(&mut self, key: &[u8], value: Option<Vec<u8>>, dirty: bool) -> Result<()> {
        self.set_known(key, value, dirty, false)
    }

    /// [`set`](Self::set) with what the caller knows of the store below: a new entry's `absent_below`
    /// (an entry already cached keeps its own).
    fn set_known(&mut self, key: &[u8], value: Option<Vec<u8>>, dirty: bool, absent_below: bool) -> Result<()> {
        let added = Self::cost(key, &value);
        let seg = self.segment_of(key);
        let group = self.groups.entry(seg).or_default();
        let newly_dirty = match group.entries.get_mut(key) {
            Some(e) => {
                self.bytes -= Self::cost(key, &e.value);
                e.value = value;
                let newly = dirty && !e.dirty;
                e.dirty |= dirty;
                newly.then(|| group.entries.get_key_value(key).expect("present").0.clone())
            }
            None => {
                let key: Rc<[u8]> = Rc::from(key);
                group.entries.insert(key.clone(), Entry { value, dirty, absent_below, ordered: false });
                dirty.then_some(key)
            }
        };
        if let Some(key) = newly_dirty {
            self.mark_dirty(seg, key);
        }
        self.bytes += added;
        self.keep_within_bound()
    }

    /// Over the byte bound: writes the dirty entries down, then forgets every (now clean) entry.
    fn keep_within_bound(&mut self) -> Result<()> {
        if self.bytes > self.max_bytes {
            self.write_down()?;
            self.groups.clear();
            self.bytes = 0;
            self.fresh_bytes = 0;
        }
        Ok(())
    }

    /// Writes every dirty entry to the layer below, segment by segment in key order; they stay cached.
    fn write_down(&mut self) -> Result<()> {
        if self.dirty == 0 {
            return Ok(());
        }
        bump(&self.stats.cache_flushes);
        self.fresh_bytes = 0;
        for group in self.groups.values_mut() {
            group.settle();
            for k in std::mem::take(&mut group.dirty) {
                let e = group.entries.get_mut(&k).expect("dirty keys are cached");
                e.ordered = false;
                match &e.value {
                    // The layers below learn that the key is new to them (see `WriteBehind`).
                    Some(v) if e.absent_below => self.inner.put_new(&k, v.clone())?,
                    Some(v) => self.inner.put(&k, v.clone())?,
                    None => self.inner.delete(&k)?,
                }
                e.dirty = false;
                e.absent_below = e.value.is_none();
            }
        }
        self.dirty = 0;
        Ok(())
    }

    /// The cached segments a range with this time hint can touch.
    fn segments_in(&self, time: TimeHint) -> Vec<i64> {
        groups_in(self.segments, time, &self.groups).map(|(s, _)| *s).collect()
    }

    /// Removes `key`'s entry if the store below is known not to have it: nothing needs writing down
    /// for a delete, and the key is absent from both layers (so the keys that merged sessions leave
    /// behind do not fill the cache either). The entry's value, if it went.
    fn forget_if_absent_below(&mut self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let seg = self.segment_of(key);
        let group = self.groups.get_mut(&seg)?;
        if !group.entries.get(key)?.absent_below {
            return None;
        }
        let e = group.entries.remove(key).expect("just seen");
        self.bytes -= Self::cost(key, &e.value);
        if e.dirty {
            group.forget_dirty(key, &e);
            self.dirty -= 1;
        }
        Some(e.value)
    }

    fn lookup(&self, key: &[u8]) -> Option<&Entry> {
        self.groups.get(&self.segment_of(key)).and_then(|g| g.entries.get(key))
    }
}

impl BytesStore for Caching {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(e) = self.lookup(key) {
            bump(&self.stats.cache_hits);
            return Ok(e.value.clone());
        }
        bump(&self.stats.cache_misses);
        let value = self.inner.get(key)?;
        self.set_known(key, value.clone(), false, value.is_none())?;
        Ok(value)
    }
    fn get_with(&mut self, key: &[u8], f: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        if let Some(e) = self.lookup(key) {
            bump(&self.stats.cache_hits);
            f(e.value.as_deref());
            return Ok(());
        }
        let v = self.get(key)?;
        f(v.as_deref());
        Ok(())
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.set(key, Some(value), true)
    }
    fn put_new(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        // A new entry is absent below, as the caller says; a cached one (a tombstone of a value below,
        // say) keeps what is known of it, as an ordinary put does.
        self.set_known(key, Some(value), true, true)
    }
    fn update(&mut self, key: &[u8], f: &mut UpdateFn<'_>) -> Result<()> {
        let seg = self.segment_of(key);
        if let Some(group) = self.groups.get_mut(&seg) {
            if let Some(e) = group.entries.get_mut(key) {
                bump(&self.stats.cache_hits);
                // The new value goes into the spare buffer, the old one becomes the spare: a hot key's
                // updates allocate nothing.
                let mut new = std::mem::take(&mut self.spare);
                new.clear();
                f(e.value.as_deref(), &mut new);
                let (old_len, new_len) = (e.value.as_ref().map_or(0, Vec::len), new.len());
                self.spare = e.value.replace(new).unwrap_or_default();
                self.bytes = self.bytes + new_len - old_len;
                if !e.dirty {
                    e.dirty = true;
                    let key = group.entries.get_key_value(key).expect("present").0.clone();
                    self.mark_dirty(seg, key);
                }
                return self.keep_within_bound();
            }
        }
        bump(&self.stats.cache_misses);
        let old = self.inner.get(key)?;
        let mut new = Vec::new();
        f(old.as_deref(), &mut new);
        self.set_known(key, Some(new), true, old.is_none())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        if self.forget_if_absent_below(key).is_some() {
            return Ok(());
        }
        self.set(key, None, true)
    }
    fn take(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(value) = self.forget_if_absent_below(key) {
            bump(&self.stats.cache_hits);
            return Ok(value);
        }
        let seg = self.segment_of(key);
        if let Some(group) = self.groups.get_mut(&seg) {
            if let Some(e) = group.entries.get_mut(key) {
                bump(&self.stats.cache_hits);
                // The store below may have it: the entry becomes a tombstone to write down.
                let Some(value) = e.value.take() else { return Ok(None) };
                self.bytes -= value.len();
                if !e.dirty {
                    e.dirty = true;
                    let key = group.entries.get_key_value(key).expect("present").0.clone();
                    self.mark_dirty(seg, key);
                }
                return Ok(Some(value));
            }
        }
        bump(&self.stats.cache_misses);
        let value = self.inner.get(key)?;
        match value {
            Some(_) => self.set(key, None, true)?,
            None => self.set_known(key, None, false, true)?,
        }
        Ok(value)
    }
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let below = self.inner.range(lo, hi, time)?;
        if self.dirty == 0 {
            return Ok(below); // clean entries equal the store below
        }
        let upper = hi.map_or(Bound::Unbounded, Bound::Included);
        let segments = self.segments_in(time);
        self.settle(&segments);
        let dirty: Vec<(i64, Rc<[u8]>)> = segments
            .into_iter()
            .flat_map(|s| {
                self.groups[&s].dirty.range::<[u8], _>((Bound::Included(lo), upper)).map(move |k| (s, k.clone()))
            })
            .collect();
        if dirty.is_empty() {
            return Ok(below);
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = below.into_iter().collect();
        for (s, k) in dirty {
            let e = self.groups.get_mut(&s).and_then(|g| g.entries.get_mut(&k)).expect("dirty keys are cached");
            // A dirty key the store below lacks: remember it (see `Entry::absent_below`).
            if !merged.contains_key(&*k) {
                e.absent_below = true;
            }
            match &e.value {
                Some(v) => merged.insert(k.to_vec(), v.clone()),
                None => merged.remove(&*k),
            };
        }
        Ok(merged.into_iter().collect())
    }
    fn expire_before(&mut self, t: i64) -> Result<()> {
        // Only the segments the store below drops go: an entry in a surviving segment (a tombstone above
        // all) must still be written down, or an older value would come back.
        if let Some(segments) = self.segments {
            let first_kept = segments.at(t);
            if self.groups.keys().next().is_some_and(|&s| s < first_kept) {
                let kept = self.groups.split_off(&first_kept);
                for (_, group) in std::mem::replace(&mut self.groups, kept) {
                    self.fresh_bytes = self.fresh_bytes.saturating_sub(group.fresh_bytes());
                    for (k, e) in group.entries {
                        self.bytes -= Self::cost(&k, &e.value);
                        self.dirty -= usize::from(e.dirty);
                    }
                }
            }
        }
        self.inner.expire_before(t)
    }
    fn flush(&mut self) -> Result<()> {
        self.write_down()?;
        self.inner.flush()
    }
    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len() + self.dirty as u64
    }
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let seg = self.segment_of(key);
        if let Some(group) = self.groups.get_mut(&seg) {
            if let Some(e) = group.entries.remove(key) {
                self.bytes -= Self::cost(key, &e.value);
                if e.dirty {
                    group.forget_dirty(key, &e);
                    self.dirty -= 1;
                }
            }
        }
        self.inner.restore(key, value)
    }
    fn wipe(&mut self) -> Result<()> {
        self.groups.clear();
        self.bytes = 0;
        self.dirty = 0;
        self.fresh_bytes = 0;
        self.inner.wipe()
    }
}

/// Counts operations for metrics.
pub(crate) struct Metered {
    pub(crate) inner: Box<dyn BytesStore>,
    pub(crate) stats: Rc<StoreStats>,
}

impl BytesStore for Metered {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        bump(&self.stats.gets);
        self.inner.get(key)
    }
    fn get_with(&mut self, key: &[u8], f: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        bump(&self.stats.gets);
        self.inner.get_with(key, f)
    }
    fn update(&mut self, key: &[u8], f: &mut UpdateFn<'_>) -> Result<()> {
        bump(&self.stats.gets);
        bump(&self.stats.puts);
        self.inner.update(key, f)
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        bump(&self.stats.puts);
        self.inner.put(key, value)
    }
    fn put_new(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        bump(&self.stats.puts);
        self.inner.put_new(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        bump(&self.stats.deletes);
        self.inner.delete(key)
    }
    fn take(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        bump(&self.stats.gets);
        bump(&self.stats.deletes);
        self.inner.take(key)
    }
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        bump(&self.stats.range_scans);
        self.inner.range(lo, hi, time)
    }
    pass_through!(expire_before, flush, approximate_len, restore, wipe);
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A map-backed bottom layer for testing the layers above it (writes counted in `.1`).
    #[derive(Default)]
    pub(in crate::state) struct Map(
        pub(in crate::state) BTreeMap<Vec<u8>, Vec<u8>>,
        pub(in crate::state) Rc<Cell<u64>>,
    );

    impl BytesStore for Map {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(key).cloned())
        }
        fn put(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
            self.1.set(self.1.get() + 1);
            self.0.insert(key.to_vec(), value);
            Ok(())
        }
        fn delete(&mut self, key: &[u8]) -> Result<()> {
            self.1.set(self.1.get() + 1);
            self.0.remove(key);
            Ok(())
        }
        fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, _: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            let upper = hi.map_or(Bound::Unbounded, Bound::Included);
            Ok(self.0.range::<[u8], _>((Bound::Included(lo), upper)).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        fn expire_before(&mut self, _: i64) -> Result<()> {
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
        fn approximate_len(&self) -> u64 {
            self.0.len() as u64
        }
        fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
            match value {
                Some(v) => self.0.insert(key.to_vec(), v.to_vec()),
                None => self.0.remove(key),
            };
            Ok(())
        }
        fn wipe(&mut self) -> Result<()> {
            self.0.clear();
            Ok(())
        }
    }

    /// A cache over a store holding one key, `k-old`, and the store's write counter.
    fn cache_over_k_old() -> (Caching, Rc<Cell<u64>>) {
        let writes = Rc::new(Cell::new(0));
        let mut below = Map(BTreeMap::new(), writes.clone());
        below.0.insert(b"k-old".to_vec(), b"1".to_vec());
        (Caching::new(Box::new(below), 1 << 20, None, Rc::new(StoreStats::default())), writes)
    }

    #[test]
    fn a_key_written_and_deleted_between_flushes_never_reaches_the_store() {
        let (mut c, writes) = cache_over_k_old();
        // As a session merge does: scan the key's range, then replace what it found with a new key.
        let mut current = b"k-old".to_vec();
        for i in 0..100u8 {
            let found = c.range(b"k-", Some(b"k-\xff"), None).unwrap();
            assert_eq!(found.len(), 1, "exactly the live session");
            c.delete(&current).unwrap();
            current = format!("k-{i:03}").into_bytes();
            c.put(&current, vec![i]).unwrap();
        }
        // The old key (present below) needs its delete; the 99 keys that came and went need nothing.
        assert_eq!(c.dirty, 2, "the one real delete and the live key");
        c.flush().unwrap();
        assert_eq!(writes.get(), 2);
        assert_eq!(c.range(b"k-", Some(b"k-\xff"), None).unwrap(), vec![(b"k-099".to_vec(), vec![99])]);
        // Written down, the key is below: its delete is a real tombstone again.
        c.delete(b"k-099").unwrap();
        c.flush().unwrap();
        assert_eq!(writes.get(), 3);
        assert_eq!(c.range(b"k-", Some(b"k-\xff"), None).unwrap(), vec![]);
    }

    /// As the session index does 100 times: no range scan, the old key deleted and a new one put,
    /// the caller saying it is stored nowhere (`k-old`, then `k-000` … `k-099`).
    fn replace_key_100_times(c: &mut Caching) {
        let mut current = b"k-old".to_vec();
        for i in 0..100u8 {
            c.delete(&current).unwrap();
            current = format!("k-{i:03}").into_bytes();
            c.put_new(&current, vec![i]).unwrap();
        }
    }

    #[test]
    fn a_key_put_as_new_and_deleted_before_a_flush_leaves_nothing_behind() {
        let (mut c, writes) = cache_over_k_old();
        replace_key_100_times(&mut c);
        assert_eq!(c.dirty, 2, "the old key's tombstone and the live key");
        assert_eq!(c.groups[&0].entries.len(), 2, "the 99 keys that came and went are not cached either");
        c.flush().unwrap();
        assert_eq!(writes.get(), 2);
        // A put_new over a cached tombstone of a key below keeps the tombstone's knowledge.
        c.delete(b"k-099").unwrap();
        c.put_new(b"k-099", vec![7]).unwrap();
        c.delete(b"k-099").unwrap();
        c.flush().unwrap();
        assert_eq!(writes.get(), 3, "the key was below: its delete is written");
        assert_eq!(c.range(b"k-", Some(b"k-\xff"), None).unwrap(), vec![]);
    }

    #[test]
    fn take_hands_the_value_over_and_leaves_a_tombstone_only_for_a_key_below() {
        let (mut c, writes) = cache_over_k_old();
        // Not cached: read from below, and the key below gets a tombstone.
        assert_eq!(c.take(b"k-old").unwrap(), Some(b"1".to_vec()));
        assert_eq!(c.get(b"k-old").unwrap(), None);
        assert_eq!(c.take(b"k-old").unwrap(), None, "a tombstone has nothing to take");
        // Taken from the cache (k-000 … k-099 put as new, each taken for the next): nothing stays.
        let mut current = b"k-000".to_vec();
        c.put_new(&current, vec![0]).unwrap();
        for i in 1..100u8 {
            let v = c.take(&current).unwrap().expect("the live key");
            current = format!("k-{i:03}").into_bytes();
            c.put_new(&current, vec![v[0] + 1]).unwrap();
        }
        assert_eq!(c.groups[&0].entries.len(), 2, "k-old's tombstone and k-099");
        // A key absent everywhere is taken as nothing and written as nothing.
        assert_eq!(c.take(b"k-none").unwrap(), None);
        c.flush().unwrap();
        assert_eq!(writes.get(), 2, "k-old's delete and k-099");
        assert_eq!(c.range(b"k-", Some(b"k-\xff"), None).unwrap(), vec![(b"k-099".to_vec(), vec![99])]);
        // Written down, k-099 is below: taking it is a real delete again.
        assert_eq!(c.take(b"k-099").unwrap(), Some(vec![99]));
        c.flush().unwrap();
        assert_eq!(writes.get(), 3);
        let counted: usize = c.groups.values().flat_map(|g| &g.entries).map(|(k, e)| Caching::cost(k, &e.value)).sum();
        assert_eq!(c.bytes, counted, "the byte count follows taken values");
    }

    #[test]
    fn a_hot_key_costs_one_store_write_per_flush() {
        let writes = Rc::new(Cell::new(0));
        let stats = Rc::new(StoreStats::default());
        let mut c = Caching::new(Box::new(Map(BTreeMap::new(), writes.clone())), 1 << 20, None, stats.clone());
        for i in 0..1000u32 {
            c.put(b"hot", i.to_le_bytes().to_vec()).unwrap();
            assert_eq!(c.get(b"hot").unwrap(), Some(i.to_le_bytes().to_vec()));
        }
        assert_eq!(writes.get(), 0);
        c.flush().unwrap();
        assert_eq!(writes.get(), 1);
        assert_eq!(stats.cache_hits.get(), 1000);
        // After the flush the entry stays cached (clean): reads still hit, nothing is written again.
        assert_eq!(c.get(b"hot").unwrap(), Some(999u32.to_le_bytes().to_vec()));
        c.flush().unwrap();
        assert_eq!((stats.cache_hits.get(), writes.get()), (1001, 1));
    }

    #[test]
    fn the_cache_writes_down_when_over_its_byte_bound_and_ranges_see_both_layers() {
        let writes = Rc::new(Cell::new(0));
        let stats = Rc::new(StoreStats::default());
        let mut c =
            Caching::new(Box::new(Map(BTreeMap::new(), writes.clone())), 10 * (ENTRY_OVERHEAD + 2), None, stats);
        for i in 0..25u8 {
            c.put(&[i], vec![i]).unwrap();
            assert!(c.bytes <= c.max_bytes);
        }
        assert_eq!(c.get(&[24]).unwrap(), Some(vec![24]));
        assert!(writes.get() >= 20, "{}", writes.get());
        c.delete(&[3]).unwrap();
        let r = c.range(&[2], Some(&[4]), None).unwrap();
        assert_eq!(r, vec![(vec![2], vec![2]), (vec![4], vec![4])]);
    }

    #[test]
    fn keys_deleted_while_fresh_never_enter_the_ordered_dirty_set_and_ranges_and_flushes_stay_exact() {
        let (mut c, writes) = cache_over_k_old();
        replace_key_100_times(&mut c);
        // Nothing needed key order yet: the set is empty, the dirty keys wait in the fresh list.
        assert!(c.groups[&0].dirty.is_empty());
        assert_eq!(c.groups[&0].fresh.len(), 101);
        // A range brings the set up to date with just the keys still dirty.
        let r = c.range(b"k-", Some(b"k-\xff"), None).unwrap();
        assert_eq!(r, vec![(b"k-099".to_vec(), vec![99])]);
        assert_eq!(c.groups[&0].dirty.len(), 2, "k-old's tombstone and k-099");
        assert!(c.groups[&0].fresh.is_empty());
        // Keys made dirty after the range are merged by the next one, in key order.
        c.put(b"k-050", vec![50]).unwrap();
        let r = c.range(b"k-", Some(b"k-\xff"), None).unwrap();
        assert_eq!(r, vec![(b"k-050".to_vec(), vec![50]), (b"k-099".to_vec(), vec![99])]);
        c.flush().unwrap();
        assert_eq!(writes.get(), 3, "k-old's delete, k-050 and k-099");
        assert_eq!(c.dirty, 0);
    }

    #[test]
    fn a_long_fresh_list_settles_within_a_quarter_of_the_bound() {
        let writes = Rc::new(Cell::new(0));
        let stats = Rc::new(StoreStats::default());
        let max = 64 * 1024;
        let mut c = Caching::new(Box::new(Map(BTreeMap::new(), writes.clone())), max, None, stats);
        let mut current = b"s-0".to_vec();
        c.put_new(&current, vec![0]).unwrap();
        for i in 1..10_000u32 {
            c.delete(&current).unwrap();
            current = format!("s-{i}").into_bytes();
            c.put_new(&current, vec![1]).unwrap();
            assert!(c.fresh_bytes <= max / 4, "at {i}: {}", c.fresh_bytes);
        }
        assert_eq!(writes.get(), 0, "settling is not a write-down");
        assert_eq!(c.groups[&0].entries.len(), 1);
        assert!(c.groups[&0].dirty.len() <= 1);
        c.flush().unwrap();
        assert_eq!(writes.get(), 1);
    }
}
