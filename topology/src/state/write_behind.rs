//! Write-behind between a logged store's changelog and its sled trees: writes reach sled one commit
//! late, so the many that are undone within a commit interval never do.
//!
//! A window is written down at a commit and deleted when it closes, often before the next commit;
//! sled pays for both (its inserts and removes are most of a logged store's cost), although the
//! changelog alone already makes the write durable. Here a write stays pending in memory for one
//! commit interval: at each flush the writes pending since before the previous flush go to sled, and a
//! key written new (the cache knew no layer had it) and deleted while pending never reaches sled at all.
//!
//! Recovery stays exact because sled then holds every change logged before the previous commit: the
//! checkpoint records, besides each changelog's end, the offset sled is complete up to (the end at the
//! previous commit while writes are pending), and a restore replays the changelog from there (later
//! records win). A clean close writes everything down first. Pending writes are bounded in bytes;
//! beyond the bound they all go to sled at once.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

use super::bytes::{BytesStore, TimeHint};
use super::changelog::EntrySink;
use super::sled_store::{groups_in, segment_of, Segmenting};
use crate::error::Result;

/// Per-entry bookkeeping counted against the bound, besides key and value bytes.
const ENTRY_OVERHEAD: usize = 64;

/// The writes not yet in sled, shared with the state manager (which asks whether any are pending for
/// the checkpoint, overlays them when it rewrites a changelog from sled, and asks for all of them to be
/// written at a clean close).
#[derive(Default)]
pub(crate) struct Pending {
    /// By time segment (one group for key-value stores), then key.
    groups: BTreeMap<i64, BTreeMap<Vec<u8>, Write>>,
    len: usize,
    bytes: usize,
    /// Flushes so far: a write made in flush interval `e` reaches sled at the flush that ends `e + 1`.
    epoch: u64,
    /// The next flush writes everything (a clean close).
    pub(crate) write_all_at_flush: bool,
}

struct Write {
    /// `None`: a delete.
    value: Option<Vec<u8>>,
    /// Sled does not have the key (it was written new and never reached sled): deleting it costs nothing.
    new_below: bool,
    epoch: u64,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn cost(key: &[u8], value: &Option<Vec<u8>>) -> usize {
        key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
    }

    fn get(&self, segment: i64, key: &[u8]) -> Option<&Write> {
        self.groups.get(&segment).and_then(|g| g.get(key))
    }

    fn remove(&mut self, segment: i64, key: &[u8]) -> Option<Write> {
        let group = self.groups.get_mut(&segment)?;
        let w = group.remove(key)?;
        if group.is_empty() {
            self.groups.remove(&segment);
        }
        self.len -= 1;
        self.bytes -= Self::cost(key, &w.value);
        Some(w)
    }

    fn insert(&mut self, segment: i64, key: &[u8], value: Option<Vec<u8>>, new_below: bool) {
        // A key pending already keeps what is known of sled: written new and not in sled yet.
        let new_below = self.remove(segment, key).map_or(new_below, |old| old.new_below);
        self.len += 1;
        self.bytes += Self::cost(key, &value);
        let epoch = self.epoch;
        self.groups.entry(segment).or_default().insert(key.to_vec(), Write { value, new_below, epoch });
    }
}

/// Calls `f` for every entry of `store` with the `pending` writes over it (a key pending takes its
/// pending value, or is gone if that is a delete): what the store holds once they are written. For
/// `WriteBehind::for_each` and for rewriting a changelog from a store opened on its own.
pub(crate) fn for_each_over(
    store: &mut dyn BytesStore,
    pending: &Pending,
    segments: Option<Segmenting>,
    f: &mut EntrySink<'_>,
) -> Result<()> {
    store.for_each(&mut |k, v| match pending.get(segment_of(segments, k), k) {
        Some(_) => Ok(()),
        None => f(k, v),
    })?;
    for group in pending.groups.values() {
        for (k, w) in group {
            if let Some(v) = &w.value {
                f(k, v)?;
            }
        }
    }
    Ok(())
}

/// The write-behind layer over a sled store (see the module docs).
pub(crate) struct WriteBehind {
    pub(crate) inner: Box<dyn BytesStore>,
    pending: Rc<RefCell<Pending>>,
    max_bytes: usize,
    /// For segmented stores: how keys fall into time segments (one group each).
    segments: Option<Segmenting>,
}

impl WriteBehind {
    pub(crate) fn new(
        inner: Box<dyn BytesStore>,
        max_bytes: usize,
        segments: Option<Segmenting>,
    ) -> (WriteBehind, Rc<RefCell<Pending>>) {
        let pending = Rc::new(RefCell::new(Pending::default()));
        (WriteBehind { inner, pending: pending.clone(), max_bytes, segments }, pending)
    }

    fn segment_of(&self, key: &[u8]) -> i64 {
        segment_of(self.segments, key)
    }

    /// Writes the pending writes made before epoch `before` to sled (all of them with `u64::MAX`).
    fn write_down(&mut self, before: u64) -> Result<()> {
        let mut pending = self.pending.borrow_mut();
        let groups = std::mem::take(&mut pending.groups);
        let (mut len, mut bytes) = (0, 0);
        for (segment, group) in groups {
            let mut kept = BTreeMap::new();
            for (k, w) in group {
                if w.epoch >= before {
                    len += 1;
                    bytes += Pending::cost(&k, &w.value);
                    kept.insert(k, w);
                    continue;
                }
                match w.value {
                    Some(v) => self.inner.put(&k, v)?,
                    None if w.new_below => {}
                    None => self.inner.delete(&k)?,
                }
            }
            if !kept.is_empty() {
                pending.groups.insert(segment, kept);
            }
        }
        pending.len = len;
        pending.bytes = bytes;
        Ok(())
    }

    fn write(&mut self, key: &[u8], value: Option<Vec<u8>>, new_below: bool) -> Result<()> {
        let segment = self.segment_of(key);
        let mut pending = self.pending.borrow_mut();
        if value.is_none() && pending.get(segment, key).is_some_and(|w| w.new_below) {
            // Written new and deleted before reaching sled: nothing to do below.
            pending.remove(segment, key);
            return Ok(());
        }
        pending.insert(segment, key, value, new_below);
        let over = pending.bytes > self.max_bytes;
        drop(pending);
        if over {
            self.write_down(u64::MAX)?;
        }
        Ok(())
    }
}

impl BytesStore for WriteBehind {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(w) = self.pending.borrow().get(self.segment_of(key), key) {
            return Ok(w.value.clone());
        }
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.write(key, Some(value), false)
    }
    fn put_new(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.write(key, Some(value), true)
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.write(key, None, false)
    }
    fn for_each(&mut self, f: &mut EntrySink<'_>) -> Result<()> {
        for_each_over(&mut *self.inner, &self.pending.borrow(), self.segments, f)
    }
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let below = self.inner.range(lo, hi, time)?;
        let pending = self.pending.borrow();
        if pending.is_empty() {
            return Ok(below);
        }
        let upper = hi.map_or(Bound::Unbounded, Bound::Included);
        let mut writes = groups_in(self.segments, time, &pending.groups)
            .flat_map(|(_, g)| g.range::<[u8], _>((Bound::Included(lo), upper)))
            .peekable();
        if writes.peek().is_none() {
            return Ok(below);
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = below.into_iter().collect();
        for (k, w) in writes {
            match &w.value {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }
    fn expire_before(&mut self, t: i64) -> Result<()> {
        if let Some(segments) = self.segments {
            let keep_from = segments.at(t);
            let mut pending = self.pending.borrow_mut();
            let expired: Vec<i64> = pending.groups.range(..keep_from).map(|(s, _)| *s).collect();
            for s in expired {
                let group = pending.groups.remove(&s).expect("listed");
                pending.len -= group.len();
                pending.bytes -= group.iter().map(|(k, w)| Pending::cost(k, &w.value)).sum::<usize>();
            }
        }
        self.inner.expire_before(t)
    }
    /// At a commit: writes made before the previous flush go to sled (all of them at a clean close).
    fn flush(&mut self) -> Result<()> {
        let (epoch, all) = {
            let mut p = self.pending.borrow_mut();
            let all = std::mem::take(&mut p.write_all_at_flush);
            p.epoch += 1;
            (p.epoch - 1, all)
        };
        self.write_down(if all { u64::MAX } else { epoch })?;
        self.inner.flush()
    }
    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len() + self.pending.borrow().len as u64
    }
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let segment = self.segment_of(key);
        self.pending.borrow_mut().remove(segment, key);
        self.inner.restore(key, value)
    }
    fn wipe(&mut self) -> Result<()> {
        let epoch = self.pending.borrow().epoch;
        *self.pending.borrow_mut() = Pending { epoch, ..Pending::default() };
        self.inner.wipe()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::state::layers::tests::Map;

    fn layer(max_bytes: usize) -> (WriteBehind, Rc<RefCell<Pending>>, Rc<Cell<u64>>) {
        let writes = Rc::new(Cell::new(0));
        let map = Map(BTreeMap::new(), writes.clone());
        let (wb, pending) = WriteBehind::new(Box::new(map), max_bytes, None);
        (wb, pending, writes)
    }

    #[test]
    fn writes_reach_the_store_one_flush_late_and_new_keys_deleted_before_never_do() {
        let (mut wb, pending, writes) = layer(1 << 20);
        wb.put(b"a", b"1".to_vec()).unwrap();
        wb.put_new(b"w", b"1".to_vec()).unwrap();
        wb.flush().unwrap();
        assert_eq!(writes.get(), 0, "written in the interval that just ended: still pending");
        assert_eq!(wb.get(b"a").unwrap(), Some(b"1".to_vec()), "pending writes are read");
        wb.delete(b"w").unwrap(); // a window closing before it reached the store
        wb.put(b"b", b"2".to_vec()).unwrap();
        wb.flush().unwrap();
        assert_eq!(writes.get(), 1, "only `a` went down: `w` never existed below, `b` is one interval old");
        assert!(!pending.borrow().is_empty());
        wb.flush().unwrap();
        assert_eq!(writes.get(), 2);
        assert!(pending.borrow().is_empty());
        assert_eq!(wb.get(b"w").unwrap(), None);
        assert_eq!(
            wb.range(b"", None, None).unwrap(),
            vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]
        );
    }

    #[test]
    fn reads_and_ranges_see_pending_writes_and_deletes_over_the_store() {
        let (mut wb, _, _) = layer(1 << 20);
        for k in [b"a", b"b", b"c"] {
            wb.put(k, b"old".to_vec()).unwrap();
        }
        wb.flush().unwrap();
        wb.flush().unwrap(); // all three are in the store now
        wb.put(b"b", b"new".to_vec()).unwrap();
        wb.delete(b"c").unwrap();
        wb.put(b"d", b"new".to_vec()).unwrap();
        assert_eq!(wb.get(b"c").unwrap(), None, "a pending delete hides the stored value");
        let got = wb.range(b"b", Some(b"d"), None).unwrap();
        assert_eq!(got, vec![(b"b".to_vec(), b"new".to_vec()), (b"d".to_vec(), b"new".to_vec())]);
        let mut all = Vec::new();
        wb.for_each(&mut |k, v| {
            all.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        all.sort();
        assert_eq!(
            all,
            vec![(b"a".to_vec(), b"old".to_vec()), (b"b".to_vec(), b"new".to_vec()), (b"d".to_vec(), b"new".to_vec())]
        );
    }

    #[test]
    fn beyond_the_bound_or_at_a_clean_close_everything_goes_down() {
        let (mut wb, pending, writes) = layer(3 * (ENTRY_OVERHEAD + 2));
        wb.put(b"a", b"1".to_vec()).unwrap();
        wb.put(b"b", b"1".to_vec()).unwrap();
        wb.put(b"c", b"1".to_vec()).unwrap();
        assert_eq!(writes.get(), 0);
        wb.put(b"d", b"1".to_vec()).unwrap();
        assert_eq!(writes.get(), 4, "over the bound: all pending writes went down");
        assert!(pending.borrow().is_empty());
        wb.put(b"e", b"1".to_vec()).unwrap();
        pending.borrow_mut().write_all_at_flush = true;
        wb.flush().unwrap();
        assert_eq!(writes.get(), 5);
        assert!(pending.borrow().is_empty());
    }
}
