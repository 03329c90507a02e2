//! Typed stores over a byte-store stack: keys encoded as in the in-memory stores, values as
//! `[format version][bincode]`. A value written by an incompatible format is a clear error, not garbage.
//!
//! The typed traits do not return `Result` (operators would drown in it); a failure is recorded in the
//! task's [`ErrorSlot`] and the task stops with it after the current record. Window and session stores
//! keep changed values decoded in a typed front (see `front`): a value of theirs that cannot be encoded
//! fails when it is written down, at the latest by the commit, which then fails.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::rc::Rc;

use super::bytes::BytesStore;
use super::front::{Front, Lookup};
use super::memory::{decode_key, KeyBuf};
use super::Segmenting;
use super::{read_ts, Data, KeyValueStore, SessionStore, StateStore, WindowStore};
use crate::error::{Error, Result};
use crate::serdes::decode;
use crate::window::Window;

/// The format of stored values this build writes and reads.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// The first store error of a task, checked after every record.
pub(crate) type ErrorSlot = Rc<RefCell<Option<Error>>>;

/// A value's stored form, into `buf` (cleared first): the format version, then its bincode; an error
/// names the store when serde refuses the value (a failing `Serialize`, a sequence of unknown length):
/// the task stops with it, rather than panicking.
fn encode_value_into<V: Data>(store: &str, v: &V, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    buf.push(FORMAT_VERSION);
    try_encode_into(store, v, buf)
}

fn try_encode_into<V: Data>(store: &str, v: &V, buf: &mut Vec<u8>) -> Result<()> {
    crate::serdes::try_encode_into(v, buf)
        .map_err(|e| Error::State { store: store.to_string(), message: format!("value cannot be stored: {e}") })
}

pub(crate) fn decode_value<V: Data>(store: &str, bytes: &[u8]) -> Result<V> {
    match bytes.first() {
        Some(&FORMAT_VERSION) => decode(&bytes[1..]).map_err(|e| Error::State {
            store: store.to_string(),
            message: format!("stored value does not decode: {e}"),
        }),
        other => Err(Error::State {
            store: store.to_string(),
            message: format!(
                "stored value has format version {}; this build reads version {FORMAT_VERSION} (restore from the changelog or migrate the state directory)",
                other.map_or("none".to_string(), u8::to_string)
            ),
        }),
    }
}

/// Shared by the three typed stores: the stack (in a `RefCell`: the cache counts hits on reads), its name
/// and the error slot.
struct Inner {
    name: String,
    stack: RefCell<Box<dyn BytesStore>>,
    errors: ErrorSlot,
    buf: KeyBuf,
    /// The buffer of the last value taken out of the store, reused for the next value put in (a
    /// session that grows is taken and put back each record: no allocation for it).
    spare: RefCell<Vec<u8>>,
}

impl Inner {
    fn new(name: &str, stack: Box<dyn BytesStore>, errors: ErrorSlot) -> Inner {
        Inner {
            name: name.to_string(),
            stack: RefCell::new(stack),
            errors,
            buf: KeyBuf::new(),
            spare: RefCell::new(Vec::new()),
        }
    }
    fn ok<T: Default>(&self, r: Result<T>) -> T {
        r.unwrap_or_else(|e| {
            let mut slot = self.errors.borrow_mut();
            if slot.is_none() {
                *slot = Some(e);
            }
            T::default()
        })
    }
    fn value<V: Data>(&self, raw: &[u8]) -> Option<V> {
        self.ok(decode_value(&self.name, raw).map(Some))
    }
    fn get<V: Data>(&self, key: &[u8]) -> Option<V> {
        let mut out = None;
        let r = self.stack.borrow_mut().get_with(key, &mut |raw| out = raw.map(|raw| decode_value(&self.name, raw)));
        self.ok(r);
        self.ok(out.transpose())
    }
    /// `v`'s stored form, in the spare buffer.
    fn encode<V: Data>(&self, v: &V) -> Result<Vec<u8>> {
        let mut buf = std::mem::take(&mut *self.spare.borrow_mut());
        encode_value_into(&self.name, v, &mut buf)?;
        Ok(buf)
    }
    /// Stores `v`; `new` when the caller knows no layer has the key (see `BytesStore::put_new`).
    fn put<V: Data>(&self, key: &[u8], v: &V, new: bool) {
        let r = self.encode(v).and_then(|v| {
            let mut stack = self.stack.borrow_mut();
            if new {
                stack.put_new(key, v)
            } else {
                stack.put(key, v)
            }
        });
        self.ok(r)
    }
    /// Deletes `key`, returning its value; its buffer becomes the spare.
    fn take<V: Data>(&self, key: &[u8]) -> Option<V> {
        let r = self.stack.borrow_mut().take(key);
        let raw = self.ok(r)?;
        let v = self.value(&raw);
        *self.spare.borrow_mut() = raw;
        v
    }
    /// Runs `f` on the encoded `key ++ suffix` without allocating.
    fn with_key<K: Data, R>(&self, key: &K, suffix: &[i64], f: impl FnOnce(&[u8]) -> R) -> R {
        self.buf.with(key, suffix, f)
    }
    fn delete(&self, key: &[u8]) {
        let r = self.stack.borrow_mut().delete(key);
        self.ok(r)
    }
    fn range(&self, lo: &[u8], hi: Option<&[u8]>, time: Option<(i64, i64)>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let r = self.stack.borrow_mut().range(lo, hi, time);
        self.ok(r)
    }
    fn expire_before(&self, t: i64) {
        let r = self.stack.borrow_mut().expire_before(t);
        self.ok(r)
    }
    /// Replaces the value of `key` with `f(old)` in one pass through the stack; a stored value that
    /// does not decode is the task's error (and `f` sees `None`).
    fn update_value<V: Data>(&self, key: &[u8], f: &mut dyn FnMut(Option<V>) -> V) {
        let mut failed = None;
        let r = self.stack.borrow_mut().update(key, &mut |raw, buf| {
            let prev = match raw.map(|raw| decode_value::<V>(&self.name, raw)).transpose() {
                Ok(v) => v,
                Err(e) => {
                    failed = Some(e);
                    None
                }
            };
            if let Err(e) = encode_value_into(&self.name, &f(prev), buf) {
                // The task stops with the error; the old value stays.
                failed = Some(e);
                buf.clear();
                buf.extend_from_slice(raw.unwrap_or(&[]));
            }
        });
        self.ok(r);
        if let Some(e) = failed {
            self.ok::<()>(Err(e));
        }
    }
    fn encoded<K: Data>(&self, key: &K, suffix: &[i64]) -> Vec<u8> {
        self.buf.with(key, suffix, <[u8]>::to_vec)
    }
}

/// A typed store's byte stack and its typed front (see `front`): what reads and writes of one key go
/// through. Every read in key order (a range) and every flush writes the front down first; expiry
/// drops the front's entries of expired segments, as the layers below drop theirs.
struct Stack<V> {
    inner: Inner,
    front: RefCell<Front<V>>,
    /// The time segments of the layers (window and session stores), and the first segment the last
    /// expiry kept: the layers drop whole segments, so expiry goes down only when that one moves.
    segments: Option<Segmenting>,
    first_kept: Cell<i64>,
}

impl<V: Data> Stack<V> {
    fn new(name: &str, stack: Box<dyn BytesStore>, errors: ErrorSlot, front: FrontSpec) -> Self {
        let segments = front.segments;
        let front = RefCell::new(Front::new(front.max_entries, segments));
        Stack { inner: Inner::new(name, stack, errors), front, segments, first_kept: Cell::new(i64::MIN) }
    }
    fn get(&self, key: &[u8]) -> Option<V> {
        if let Lookup::Here(v) = self.front.borrow().get(key) {
            return v.cloned();
        }
        self.inner.get(key)
    }
    /// Stores `value`; `new` when the caller knows no layer has the key (see `BytesStore::put_new`).
    fn put(&self, key: &[u8], value: &V, new: bool) {
        let mut front = self.front.borrow_mut();
        if let Some(slot) = front.slot(key) {
            slot.value = Some(value.clone());
        } else if front.has_room() {
            front.insert(key, value.clone(), new);
        } else {
            drop(front);
            self.inner.put(key, value, new)
        }
    }
    /// Replaces the value of `key` with `f(old)`.
    fn update(&self, key: &[u8], f: &mut dyn FnMut(Option<V>) -> V) {
        let mut front = self.front.borrow_mut();
        if let Some(slot) = front.slot(key) {
            let old = slot.value.take();
            slot.value = Some(f(old));
            return;
        }
        let room = front.has_room();
        drop(front);
        if !room {
            return self.inner.update_value(key, f);
        }
        let old = self.inner.get(key);
        // Absent from every layer below when they have no value for it (a cached tombstone above a
        // value below stays what the cache knows it is: see `Caching::put_new`).
        let new = old.is_none();
        let value = f(old);
        self.front.borrow_mut().insert(key, value, new);
    }
    /// Deletes `key`, returning its value.
    fn take(&self, key: &[u8]) -> Option<V> {
        match self.front.borrow_mut().take(key) {
            Lookup::Here(v) => v,
            Lookup::Below => self.inner.take(key),
        }
    }
    fn delete(&self, key: &[u8]) {
        if let Lookup::Below = self.front.borrow_mut().take(key) {
            self.inner.delete(key)
        }
    }
    /// Writes every entry of the front down through the byte layers and empties it.
    fn write_down(&self) {
        let mut front = self.front.borrow_mut();
        if front.is_empty() {
            return;
        }
        front.drain(|key, slot| match slot.value {
            Some(v) => self.inner.put(key, &v, slot.new),
            None => self.inner.delete(key),
        });
    }
    fn range(&self, lo: &[u8], hi: Option<&[u8]>, time: Option<(i64, i64)>) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.write_down();
        self.inner.range(lo, hi, time)
    }
    fn expire_before(&self, t: i64) {
        if let Some(segments) = self.segments {
            let first_kept = segments.at(t);
            if first_kept <= self.first_kept.get() {
                return;
            }
            self.first_kept.set(first_kept);
        }
        self.front.borrow_mut().expire_before(t);
        self.inner.expire_before(t)
    }
}

/// The typed front a store gets (see `front`): at most `max_entries` entries (0: none), in the time
/// segments of the layers below.
#[derive(Clone, Copy, Default)]
pub(crate) struct FrontSpec {
    pub(crate) max_entries: usize,
    pub(crate) segments: Option<Segmenting>,
}

macro_rules! typed_store {
    ($(#[$doc:meta])* $t:ident) => {
        $(#[$doc])*
        pub(crate) struct $t<K, V>(Stack<V>, PhantomData<fn() -> K>);

        impl<K, V: Data> $t<K, V> {
            /// A typed store over `stack`, with the typed front `front`.
            pub(crate) fn new(name: &str, stack: Box<dyn BytesStore>, errors: ErrorSlot, front: FrontSpec) -> Self {
                $t(Stack::new(name, stack, errors, front), PhantomData)
            }
        }

        impl<K, V: Data> StateStore for $t<K, V> {
            fn name(&self) -> &str {
                &self.0.inner.name
            }
            fn flush(&mut self) -> Result<()> {
                self.0.write_down();
                // A value of the front that could not be stored fails the commit.
                if let Some(e) = self.0.inner.errors.borrow_mut().take() {
                    return Err(e);
                }
                self.0.inner.stack.borrow_mut().flush()
            }
            fn approximate_num_entries(&self) -> u64 {
                self.0.inner.stack.borrow().approximate_len() + self.0.front.borrow().len() as u64
            }
        }
    };
}

typed_store!(
    /// A key-value store over a byte stack.
    PersistentKv
);
typed_store!(
    /// A window store over a byte stack: keys `key ++ start`.
    PersistentWindow
);
typed_store!(
    /// A session store over a byte stack: keys `key ++ end ++ start`.
    PersistentSession
);

/// The upper bound of all composite keys starting with `prefix`.
fn prefix_end(prefix: &[u8], suffix_len: usize) -> Vec<u8> {
    let mut hi = prefix.to_vec();
    hi.extend(std::iter::repeat_n(0xff, suffix_len));
    hi
}

impl<K: Data, V: Data> KeyValueStore<K, V> for PersistentKv<K, V> {
    fn get(&self, key: &K) -> Option<V> {
        self.0.inner.with_key(key, &[], |k| self.0.get(k))
    }
    fn put(&mut self, key: &K, value: V) {
        self.0.inner.with_key(key, &[], |k| self.0.put(k, &value, false))
    }
    fn delete(&mut self, key: &K) -> Option<V> {
        self.0.inner.with_key(key, &[], |k| self.0.take(k))
    }
    fn all(&self) -> Vec<(K, V)> {
        let rows = self.0.range(&[], None, None);
        rows.into_iter().filter_map(|(k, v)| Some((decode_key(&k), self.0.inner.value(&v)?))).collect()
    }
}

impl<K: Data, V: Data> WindowStore<K, V> for PersistentWindow<K, V> {
    fn fetch(&self, key: &K, start: i64) -> Option<V> {
        self.0.inner.with_key(key, &[start], |k| self.0.get(k))
    }
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Vec<(i64, V)> {
        if from > to {
            return Vec::new();
        }
        let (lo, hi) = (self.0.inner.encoded(key, &[from]), self.0.inner.encoded(key, &[to]));
        let rows = self.0.range(&lo, Some(&hi), Some((from, to)));
        rows.into_iter().filter_map(|(k, v)| Some((read_ts(&k[k.len() - 8..]), self.0.inner.value(&v)?))).collect()
    }
    fn fetch_all(&self, from: i64, to: i64) -> Vec<(K, i64, V)> {
        let rows = self.0.range(&[], None, Some((from, to)));
        let mut out: Vec<(Vec<u8>, i64, Vec<u8>)> = rows
            .into_iter()
            .filter_map(|(k, v)| {
                let t = read_ts(&k[k.len() - 8..]);
                (t >= from && t <= to).then(|| (k[..k.len() - 8].to_vec(), t, v))
            })
            .collect();
        out.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        out.into_iter().filter_map(|(k, t, v)| Some((decode_key(&k), t, self.0.inner.value(&v)?))).collect()
    }
    fn put(&mut self, key: &K, start: i64, value: V) {
        self.0.inner.with_key(key, &[start], |k| self.0.put(k, &value, false))
    }
    fn remove(&mut self, key: &K, start: i64) {
        self.0.inner.with_key(key, &[start], |k| self.0.delete(k))
    }
    fn update(&mut self, key: &K, start: i64, f: &mut dyn FnMut(Option<V>) -> V) -> Option<V> {
        let mut old: Option<V> = None;
        self.upsert(key, start, &mut |prev| {
            let new = f(prev.clone());
            old = prev;
            new
        });
        old
    }
    fn upsert(&mut self, key: &K, start: i64, f: &mut dyn FnMut(Option<V>) -> V) {
        self.0.inner.with_key(key, &[start], |k| self.0.update(k, f))
    }
    fn expire_before(&mut self, start: i64) {
        self.0.expire_before(start)
    }
}

fn session_window(k: &[u8]) -> Window {
    let n = k.len();
    Window { start: read_ts(&k[n - 8..]), end: read_ts(&k[n - 16..n - 8]) }
}

impl<K: Data, V: Data> SessionStore<K, V> for PersistentSession<K, V> {
    fn find_sessions(&self, key: &K, earliest_end: i64, latest_start: i64) -> Vec<(Window, V)> {
        let lo = self.0.inner.encoded(key, &[earliest_end, i64::MIN]);
        let hi = prefix_end(&self.0.inner.encoded(key, &[]), 16);
        let rows = self.0.range(&lo, Some(&hi), Some((earliest_end, i64::MAX)));
        rows.into_iter()
            .filter_map(|(k, v)| {
                let w = session_window(&k);
                if w.start > latest_start {
                    return None;
                }
                Some((w, self.0.inner.value(&v)?))
            })
            .collect()
    }
    fn fetch_session(&self, key: &K, window: Window) -> Option<V> {
        self.0.inner.with_key(key, &[window.end, window.start], |k| self.0.get(k))
    }
    fn fetch_ending(&self, from: i64, to: i64) -> Vec<(K, Window, V)> {
        let rows = self.0.range(&[], None, Some((from, to)));
        let mut out: Vec<(Vec<u8>, Window, Vec<u8>)> = rows
            .into_iter()
            .filter_map(|(k, v)| {
                let w = session_window(&k);
                (w.end >= from && w.end <= to).then(|| (k[..k.len() - 16].to_vec(), w, v))
            })
            .collect();
        out.sort_by(|a, b| (a.1.end, &a.0, a.1.start).cmp(&(b.1.end, &b.0, b.1.start)));
        out.into_iter().filter_map(|(k, w, v)| Some((decode_key(&k), w, self.0.inner.value(&v)?))).collect()
    }
    fn put(&mut self, key: &K, window: Window, value: V) {
        self.0.inner.with_key(key, &[window.end, window.start], |k| self.0.put(k, &value, false))
    }
    fn put_new(&mut self, key: &K, window: Window, value: V) {
        self.0.inner.with_key(key, &[window.end, window.start], |k| self.0.put(k, &value, true))
    }
    fn remove(&mut self, key: &K, window: Window) {
        self.0.inner.with_key(key, &[window.end, window.start], |k| self.0.delete(k))
    }
    fn take_session(&mut self, key: &K, window: Window) -> Option<V> {
        self.0.inner.with_key(key, &[window.end, window.start], |k| self.0.take(k))
    }
    fn expire_before(&mut self, end: i64) {
        self.0.expire_before(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incompatible_format_version_is_a_clear_error() {
        let err = decode_value::<u64>("counts", &[7, 1, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "state store `counts` failed: stored value has format version 7; this build reads version 1 (restore from the changelog or migrate the state directory)"
        );
        let mut stored = vec![9, 9];
        encode_value_into("c", &42u64, &mut stored).unwrap();
        assert_eq!(decode_value::<u64>("c", &stored).unwrap(), 42);
    }

    /// A window store over a counting map (no cache), with a front of `front` entries.
    fn window_over_map(front: usize) -> (PersistentWindow<String, u64>, Rc<std::cell::Cell<u64>>) {
        let writes = Rc::new(std::cell::Cell::new(0));
        let below = super::super::layers::tests::Map(Default::default(), writes.clone());
        let spec = FrontSpec { max_entries: front, segments: None };
        (PersistentWindow::new("w", Box::new(below), ErrorSlot::default(), spec), writes)
    }

    #[test]
    fn the_front_writes_a_window_down_once_however_often_it_changes_and_reads_see_it_meanwhile() {
        let (mut w, writes) = window_over_map(10);
        let key = "k".to_string();
        for n in 1..=100u64 {
            w.upsert(&key, 0, &mut |old| old.unwrap_or(0) + 1);
            assert_eq!(w.fetch(&key, 0), Some(n));
        }
        assert_eq!(writes.get(), 0, "nothing reached the store below");
        w.flush().unwrap();
        assert_eq!(writes.get(), 1);
        assert_eq!(w.fetch_all(i64::MIN, i64::MAX), vec![(key.clone(), 0, 100)]);
        // Written down, the window is below: its removal is a real delete at the next write-down.
        w.remove(&key, 0);
        assert_eq!(w.fetch(&key, 0), None);
        w.flush().unwrap();
        assert_eq!(writes.get(), 2);
        assert!(w.fetch_all(i64::MIN, i64::MAX).is_empty());
        // Without a front every change goes below at once.
        let (mut w, writes) = window_over_map(0);
        for _ in 0..100 {
            w.upsert(&key, 0, &mut |old| old.unwrap_or(0) + 1);
        }
        assert_eq!(writes.get(), 100);
    }

    #[test]
    fn a_full_front_sends_new_keys_below_and_keeps_its_own() {
        let (mut w, writes) = window_over_map(3);
        let key = "k".to_string();
        for start in 0..5 {
            w.upsert(&key, start, &mut |old| old.unwrap_or(0) + 1);
        }
        assert_eq!(writes.get(), 2, "windows 3 and 4 found the front full");
        for start in 0..5 {
            w.upsert(&key, start, &mut |old| old.unwrap_or(0) + 1);
        }
        assert_eq!(writes.get(), 4, "windows 0 to 2 stayed in the front");
        assert_eq!(w.fetch(&key, 1), Some(2));
        assert_eq!(w.fetch_all(i64::MIN, i64::MAX).len(), 5);
        assert_eq!(writes.get(), 7, "the range read wrote the front down");
    }
}
