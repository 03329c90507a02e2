//! The typed front of a persistent window or session store: the values a task changes stay decoded
//! until they are written down through the byte layers, as Flink's heap state keeps objects. A window
//! updated by every record of its key is then encoded once per commit, not decoded and encoded once
//! per record; a session that grows is moved from key to key in a hash map, not through the cache's
//! bookkeeping.
//!
//! The front holds only changed entries (a value, or a tombstone for a key the layers below may
//! have), at most `max_entries` of them; when it is full, new keys go to the layers below. Everything
//! is written down — and the front emptied — at commit and before any range read (which the byte
//! layers serve), so the layers below are exactly as they would be without it whenever they are
//! read in order. Expiry drops the entries of expired time segments, as the cache below does.

use rustc_hash::FxHashMap;

use super::Segmenting;

/// Changed entries by encoded key (see the module docs).
pub(crate) struct Front<V> {
    entries: FxHashMap<Box<[u8]>, Slot<V>>,
    max_entries: usize,
    /// How keys fall into time segments (window and session stores).
    segments: Option<Segmenting>,
    /// At or below the segment of every entry: an expiry of segments before it drops nothing (kept
    /// so that expiry, which runs as stream time advances, looks at the entries only when it can
    /// drop some).
    lowest_segment: i64,
    /// The key of the entry last taken out, reused for the next new entry of the same length (a
    /// session that grows moves from one key to another of the same length: no allocation).
    spare_key: Option<Box<[u8]>>,
}

/// A changed entry.
pub(crate) struct Slot<V> {
    /// `None`: deleted (a tombstone to write down).
    pub(crate) value: Option<V>,
    /// The layers below do not have the key: deleting it needs no tombstone, and writing it down is
    /// a put of a new key (see `BytesStore::put_new`).
    pub(crate) new: bool,
}

/// What the front knows of a key.
pub(crate) enum Lookup<V> {
    /// Not in the front: ask the layers below.
    Below,
    /// Changed here: this value (`None`: deleted).
    Here(Option<V>),
}

impl<V> Front<V> {
    /// A front of at most `max_entries` entries (0: off, every operation goes below), its keys in
    /// time segments by `segments`.
    pub(crate) fn new(max_entries: usize, segments: Option<Segmenting>) -> Self {
        Front { entries: FxHashMap::default(), max_entries, segments, lowest_segment: i64::MAX, spare_key: None }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether a new key may come in: below the bound. A full front sends new keys to the layers
    /// below (the keys already in it stay until it is written down), so a working set larger than
    /// the front costs what it cost without one, not a write-down and refill per overflow.
    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < self.max_entries
    }

    pub(crate) fn get(&self, key: &[u8]) -> Lookup<&V> {
        match self.entries.get(key) {
            Some(slot) => Lookup::Here(slot.value.as_ref()),
            None => Lookup::Below,
        }
    }

    /// The slot of a key in the front, to change in place.
    pub(crate) fn slot(&mut self, key: &[u8]) -> Option<&mut Slot<V>> {
        self.entries.get_mut(key)
    }

    /// Adds `key`, not in the front yet (see `has_room`); `new` says whether the layers below lack it.
    pub(crate) fn insert(&mut self, key: &[u8], value: V, new: bool) {
        debug_assert!(self.has_room() && !self.entries.contains_key(key));
        if let Some(s) = self.segments {
            self.lowest_segment = self.lowest_segment.min(s.of(key));
        }
        let owned = match self.spare_key.take() {
            Some(mut spare) if spare.len() == key.len() => {
                spare.copy_from_slice(key);
                spare
            }
            _ => key.into(),
        };
        self.entries.insert(owned, Slot { value: Some(value), new });
    }

    /// Deletes `key` if the front has it: its value, or `Below` to delete it in the layers below.
    pub(crate) fn take(&mut self, key: &[u8]) -> Lookup<V> {
        let Some(slot) = self.entries.get_mut(key) else { return Lookup::Below };
        if slot.new {
            // Never written down: nothing below to delete.
            let (key, slot) = self.entries.remove_entry(key).expect("just seen");
            self.spare_key = Some(key);
            Lookup::Here(slot.value)
        } else {
            Lookup::Here(slot.value.take())
        }
    }

    /// Empties the front, handing each entry to `write` (in no particular order: the byte layers
    /// order what they write).
    pub(crate) fn drain(&mut self, mut write: impl FnMut(&[u8], Slot<V>)) {
        for (key, slot) in self.entries.drain() {
            write(&key, slot);
        }
        self.lowest_segment = i64::MAX;
    }

    /// Drops the entries of the segments before the one holding `t`, which the layers below drop at
    /// the same expiry (expired segments are not logged: a restore drops them by the same retention).
    pub(crate) fn expire_before(&mut self, t: i64) {
        let Some(s) = self.segments else { return };
        let first_kept = s.at(t);
        if self.lowest_segment >= first_kept {
            return;
        }
        let mut lowest = i64::MAX;
        self.entries.retain(|key, _| {
            let seg = s.of(key);
            lowest = lowest.min(seg);
            seg >= first_kept
        });
        self.lowest_segment = lowest.max(first_kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_taken_before_it_is_written_down_leaves_nothing_and_an_old_one_leaves_a_tombstone() {
        let mut f = Front::new(10, None);
        f.insert(b"new", 1, true);
        f.insert(b"old", 2, false);
        f.slot(b"new").unwrap().value = Some(3);
        assert!(matches!(f.take(b"new"), Lookup::Here(Some(3))));
        assert!(f.spare_key.is_some(), "the taken key's allocation is kept…");
        f.insert(b"nwe", 4, true);
        assert!(f.spare_key.is_none(), "…for the next new key of its length");
        assert!(matches!(f.take(b"nwe"), Lookup::Here(Some(4))));
        assert!(matches!(f.take(b"old"), Lookup::Here(Some(2))));
        assert!(matches!(f.take(b"old"), Lookup::Here(None)), "a tombstone has nothing to take");
        assert!(matches!(f.take(b"other"), Lookup::Below));
        let mut written = Vec::new();
        f.drain(|k, slot| written.push((k.to_vec(), slot.value, slot.new)));
        assert_eq!(written, vec![(b"old".to_vec(), None, false)]);
        assert!(f.is_empty());
    }

    #[test]
    fn the_front_has_room_below_its_bound_and_none_at_zero() {
        let mut f = Front::new(2, None);
        for k in [b"a", b"b"] {
            assert!(f.has_room());
            f.insert(k, 0u8, true);
        }
        assert!(!f.has_room());
        assert!(!Front::<u8>::new(0, None).has_room());
    }

    #[test]
    fn expiry_drops_the_entries_of_expired_segments_and_looks_at_them_only_when_it_can() {
        // Keys are their time as 8 bytes (as the stores append it); segments of 60 s.
        let key = |t: i64| {
            let mut k = Vec::new();
            crate::state::push_ts(&mut k, t);
            k
        };
        let mut f = Front::new(10, Some(Segmenting::new(crate::state::window_time, 0)));
        for t in [10_000, 70_000, 130_000] {
            f.insert(&key(t), t, true);
        }
        f.expire_before(59_999);
        assert_eq!(f.len(), 3, "segment 0 is still kept");
        f.expire_before(60_000);
        assert_eq!(f.len(), 2);
        assert!(matches!(f.get(&key(10_000)), Lookup::Below));
        assert!(matches!(f.get(&key(70_000)), Lookup::Here(Some(70_000))));
        assert_eq!(f.lowest_segment, 1);
        // An entry put back into an older segment lowers the mark again.
        f.insert(&key(5_000), 5_000, true);
        f.expire_before(120_000);
        assert_eq!(f.len(), 1);
        assert_eq!(f.lowest_segment, 2);
    }
}
