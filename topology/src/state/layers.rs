//! The layers between a typed store and its sled trees, each one concern:
//! [`ChangeLogging`] mirrors writes to the changelog, [`Caching`] is the write-back cache bounded in bytes,
//! [`Metered`] counts operations. Stacked as `Metered(Caching(ChangeLogging(sled)))`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

use super::bytes::{BytesStore, TimeHint};
use super::changelog::Changelog;
use super::sled_store::SegmentTime;
use crate::error::Result;

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
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.put(key, value)?;
        self.changelog.borrow_mut().append(key, Some(value), self.clock.get())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.inner.delete(key)?;
        self.changelog.borrow_mut().append(key, None, self.clock.get())
    }
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.range(lo, hi, time)
    }
    fn expire_before(&mut self, t: i64) -> Result<()> {
        // Expired segments are not logged: a restore drops them again by the same retention.
        self.inner.expire_before(t)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len()
    }
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.inner.restore(key, value)
    }
    fn wipe(&mut self) -> Result<()> {
        self.inner.wipe()
    }
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

/// Write-back cache: writes stay here (the latest per key) until a commit or until the cache exceeds
/// `max_bytes`, so repeated updates of a hot key within a commit interval cost one store write and one
/// changelog record. Reads of cached keys do not reach the store.
pub(crate) struct Caching {
    pub(crate) inner: Box<dyn BytesStore>,
    pub(crate) max_bytes: usize,
    /// For segmented stores: the segment time of a key and the segment length.
    pub(crate) segments: Option<(SegmentTime, i64)>,
    pub(crate) stats: Rc<StoreStats>,
    dirty: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
}

impl Caching {
    pub(crate) fn new(
        inner: Box<dyn BytesStore>,
        max_bytes: usize,
        segments: Option<(SegmentTime, i64)>,
        stats: Rc<StoreStats>,
    ) -> Self {
        Caching { inner, max_bytes, segments, stats, dirty: BTreeMap::new(), bytes: 0 }
    }

    fn cost(key: &[u8], value: &Option<Vec<u8>>) -> usize {
        key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
    }

    fn write(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        let added = Self::cost(key, &value);
        match self.dirty.get_mut(key) {
            Some(slot) => {
                self.bytes -= Self::cost(key, slot);
                *slot = value;
            }
            None => {
                self.dirty.insert(key.to_vec(), value);
            }
        }
        self.bytes += added;
        if self.bytes > self.max_bytes {
            self.write_down()?;
        }
        Ok(())
    }

    /// Writes every dirty entry to the layer below, in key order.
    fn write_down(&mut self) -> Result<()> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        bump(&self.stats.cache_flushes);
        for (k, v) in std::mem::take(&mut self.dirty) {
            match v {
                Some(v) => self.inner.put(&k, &v)?,
                None => self.inner.delete(&k)?,
            }
        }
        self.bytes = 0;
        Ok(())
    }
}

impl BytesStore for Caching {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.dirty.get(key) {
            bump(&self.stats.cache_hits);
            return Ok(v.clone());
        }
        bump(&self.stats.cache_misses);
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(key, Some(value.to_vec()))
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.write(key, None)
    }
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self.inner.range(lo, hi, time)?.into_iter().collect();
        let upper = hi.map_or(Bound::Unbounded, Bound::Included);
        for (k, v) in self.dirty.range::<[u8], _>((Bound::Included(lo), upper)) {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }
    fn expire_before(&mut self, t: i64) -> Result<()> {
        // Only entries of the segments the store below drops go: an entry in a surviving segment (a
        // tombstone above all) must still be written down, or an older value would come back.
        if let Some((time_of, interval)) = self.segments {
            let before = self.dirty.len();
            let first_kept = t.div_euclid(interval);
            self.dirty.retain(|k, _| time_of(k).div_euclid(interval) >= first_kept);
            if self.dirty.len() != before {
                self.bytes = self.dirty.iter().map(|(k, v)| Self::cost(k, v)).sum();
            }
        }
        self.inner.expire_before(t)
    }
    fn flush(&mut self) -> Result<()> {
        self.write_down()?;
        self.inner.flush()
    }
    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len() + self.dirty.len() as u64
    }
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        if let Some(v) = self.dirty.remove(key) {
            self.bytes -= Self::cost(key, &v);
        }
        self.inner.restore(key, value)
    }
    fn wipe(&mut self) -> Result<()> {
        self.dirty.clear();
        self.bytes = 0;
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
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        bump(&self.stats.puts);
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        bump(&self.stats.deletes);
        self.inner.delete(key)
    }
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        bump(&self.stats.range_scans);
        self.inner.range(lo, hi, time)
    }
    fn expire_before(&mut self, t: i64) -> Result<()> {
        self.inner.expire_before(t)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len()
    }
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.inner.restore(key, value)
    }
    fn wipe(&mut self) -> Result<()> {
        self.inner.wipe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map-backed bottom layer for testing the layers above it.
    #[derive(Default)]
    struct Map(BTreeMap<Vec<u8>, Vec<u8>>, Rc<Cell<u64>>);

    impl BytesStore for Map {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(key).cloned())
        }
        fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
            self.1.set(self.1.get() + 1);
            self.0.insert(key.to_vec(), value.to_vec());
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

    #[test]
    fn a_hot_key_costs_one_store_write_per_flush() {
        let writes = Rc::new(Cell::new(0));
        let stats = Rc::new(StoreStats::default());
        let mut c = Caching::new(Box::new(Map(BTreeMap::new(), writes.clone())), 1 << 20, None, stats.clone());
        for i in 0..1000u32 {
            c.put(b"hot", &i.to_le_bytes()).unwrap();
            assert_eq!(c.get(b"hot").unwrap(), Some(i.to_le_bytes().to_vec()));
        }
        assert_eq!(writes.get(), 0);
        c.flush().unwrap();
        assert_eq!(writes.get(), 1);
        assert_eq!(stats.cache_hits.get(), 1000);
    }

    #[test]
    fn the_cache_writes_down_when_over_its_byte_bound_and_ranges_see_both_layers() {
        let writes = Rc::new(Cell::new(0));
        let stats = Rc::new(StoreStats::default());
        let mut c =
            Caching::new(Box::new(Map(BTreeMap::new(), writes.clone())), 10 * (ENTRY_OVERHEAD + 2), None, stats);
        for i in 0..25u8 {
            c.put(&[i], &[i]).unwrap();
            assert!(c.bytes <= c.max_bytes);
        }
        assert!(writes.get() >= 20, "{}", writes.get());
        c.delete(&[3]).unwrap();
        let r = c.range(&[2], Some(&[4]), None).unwrap();
        assert_eq!(r, vec![(vec![2], vec![2]), (vec![4], vec![4])]);
    }
}
