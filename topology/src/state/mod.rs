//! State stores: the traits operators and processors use, and [`Stores`] to declare them.
//!
//! Keys are encoded with bincode (prefix-free), composite keys append an order-preserving timestamp, so the
//! same layout serves the in-memory stores here and persistent stores behind a cache and a changelog.
//! Values are kept typed in memory. Window and session stores are split into time segments and drop whole
//! segments once they fall out of retention, so state stays bounded on an unbounded stream.

mod bytes;
mod changelog;
mod front;
mod layers;
mod memory;
mod persistent;
mod sled_store;
mod write_behind;

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) use bytes::BytesStore;
pub use changelog::{Changelog, EntriesFn, EntrySink, LogChangelog, ReplayFn};
pub(crate) use layers::{Caching, ChangeLogging, Metered, SharedChangelog, StoreStats};
pub(crate) use memory::{decode_key, InMemoryKeyValueStore, InMemorySessionStore, InMemoryWindowStore};
pub(crate) use persistent::{ErrorSlot, FrontSpec};
pub(crate) use sled_store::Segmenting;
pub(crate) use sled_store::{SledKv, SledSegmented};
pub(crate) use write_behind::{for_each_over, Pending, WriteBehind};

use crate::window::Window;

/// Values that can live in stores and internal topics: cloneable and serde-serializable.
pub trait Data: Clone + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Serialize + DeserializeOwned + 'static> Data for T {}

/// What every store can do regardless of its shape.
pub trait StateStore {
    /// The store's name (also the base of its changelog topic).
    fn name(&self) -> &str;
    /// Writes buffered state down (a no-op for in-memory stores).
    fn flush(&mut self) -> crate::Result<()>;
    /// Number of entries, approximately.
    fn approximate_num_entries(&self) -> u64;
}

/// A key-value store.
pub trait KeyValueStore<K, V>: StateStore {
    /// The value for `key`.
    fn get(&self, key: &K) -> Option<V>;
    /// Inserts or replaces.
    fn put(&mut self, key: &K, value: V);
    /// Removes and returns the old value.
    fn delete(&mut self, key: &K) -> Option<V>;
    /// Every entry, ordered by encoded key.
    fn all(&self) -> Vec<(K, V)>;
}

/// A store of values per (key, window start).
pub trait WindowStore<K, V>: StateStore {
    /// The value of `key`'s window starting at `start`.
    fn fetch(&self, key: &K, start: i64) -> Option<V>;
    /// `key`'s windows whose start is in `[from, to]`, by start.
    fn fetch_range(&self, key: &K, from: i64, to: i64) -> Vec<(i64, V)>;
    /// Every key's windows whose start is in `[from, to]`, by (start, encoded key).
    fn fetch_all(&self, from: i64, to: i64) -> Vec<(K, i64, V)>;
    /// Inserts or replaces a window's value.
    fn put(&mut self, key: &K, start: i64, value: V);
    /// Removes one window.
    fn remove(&mut self, key: &K, start: i64);
    /// Replaces a window's value with `f(old)` in one step; returns the old value.
    fn update(&mut self, key: &K, start: i64, f: &mut dyn FnMut(Option<V>) -> V) -> Option<V>
    where
        V: Clone,
    {
        let old = self.fetch(key, start);
        let new = f(old.clone());
        self.put(key, start, new);
        old
    }
    /// [`update`](Self::update) for a caller that does not need the old value back (it is then not
    /// cloned).
    fn upsert(&mut self, key: &K, start: i64, f: &mut dyn FnMut(Option<V>) -> V)
    where
        V: Clone,
    {
        self.update(key, start, f);
    }
    /// Drops every window that starts before `start` (whole segments at a time, at least).
    fn expire_before(&mut self, start: i64);
}

/// A store of session windows per key.
pub trait SessionStore<K, V>: StateStore {
    /// `key`'s sessions with `end >= earliest_end` and `start <= latest_start`, by end.
    fn find_sessions(&self, key: &K, earliest_end: i64, latest_start: i64) -> Vec<(Window, V)>;
    /// The value of `key`'s session `window`, if stored (a point read).
    fn fetch_session(&self, key: &K, window: Window) -> Option<V> {
        self.find_sessions(key, window.end, window.start).into_iter().find(|(w, _)| *w == window).map(|(_, v)| v)
    }
    /// Every key's sessions whose end is in `[from, to]`, by (end, encoded key).
    fn fetch_ending(&self, from: i64, to: i64) -> Vec<(K, Window, V)>;
    /// Inserts or replaces a session.
    fn put(&mut self, key: &K, window: Window, value: V);
    /// Inserts a session the caller knows is not stored (see `BytesStore::put_new`).
    fn put_new(&mut self, key: &K, window: Window, value: V) {
        self.put(key, window, value)
    }
    /// Removes a session.
    fn remove(&mut self, key: &K, window: Window);
    /// Removes a session and returns its value (`None` when it is not stored): a read and a remove in
    /// one step, for a session that a record grows or merges away.
    fn take_session(&mut self, key: &K, window: Window) -> Option<V> {
        let v = self.fetch_session(key, window)?;
        self.remove(key, window);
        Some(v)
    }
    /// Drops sessions that end before `end` (whole segments at a time, at least).
    fn expire_before(&mut self, end: i64);
}

/// The kind of a declared store, for descriptions and runtimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// [`KeyValueStore`].
    KeyValue,
    /// [`WindowStore`].
    Window,
    /// [`SessionStore`].
    Session,
}

/// A store instance: its typed handle (as `dyn Any`) and its type-erased `StateStore`.
pub(crate) type StoreInstance = (Rc<dyn Any>, Rc<RefCell<dyn StateStore>>);
type MakeStore = dyn Fn() -> StoreInstance + Send + Sync;
/// Makes a typed store over a byte stack, with a typed front (window and session stores).
type MakePersistent = dyn Fn(Box<dyn BytesStore>, ErrorSlot, FrontSpec) -> StoreInstance + Send + Sync;

/// A declared store: its name, kind, whether it is changelogged, and how a task creates its instance.
#[derive(Clone)]
pub struct StoreBuilder {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    pub(crate) logging: bool,
    /// How long window and session stores keep data, ms (0 for key-value stores).
    pub(crate) retention: i64,
    /// An in-memory instance.
    pub(crate) make: Arc<MakeStore>,
    /// A typed instance over a persistent byte stack.
    pub(crate) make_persistent: Arc<MakePersistent>,
}

impl fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("logging", &self.logging)
            .finish()
    }
}

impl StoreBuilder {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The store's kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }
    /// Turns the changelog off (state is then lost with the task's directory).
    pub fn without_logging(mut self) -> Self {
        self.logging = false;
        self
    }
    /// True when the store is mirrored to a changelog topic.
    pub fn logging(&self) -> bool {
        self.logging
    }
}

/// A typed handle to a key-value store, as a processor gets it from [`ProcessorInit`](crate::ProcessorInit).
pub type KeyValueStoreHandle<K, V> = Rc<RefCell<dyn KeyValueStore<K, V>>>;
/// A typed handle to a window store.
pub type WindowStoreHandle<K, V> = Rc<RefCell<dyn WindowStore<K, V>>>;
/// A typed handle to a session store.
pub type SessionStoreHandle<K, V> = Rc<RefCell<dyn SessionStore<K, V>>>;

/// Declares stores for [`StreamsBuilder::add_state_store`](crate::StreamsBuilder::add_state_store).
///
/// ```
/// use topology::{Stores, StoreKind};
/// let s = Stores::key_value::<String, u64>("counts");
/// assert_eq!(s.kind(), StoreKind::KeyValue);
/// ```
#[derive(Debug)]
pub struct Stores;

impl Stores {
    /// A key-value store.
    pub fn key_value<K: Data, V: Data>(name: impl Into<String>) -> StoreBuilder {
        let name = name.into();
        let (n, p) = (name.clone(), name.clone());
        StoreBuilder {
            name,
            kind: StoreKind::KeyValue,
            logging: true,
            retention: 0,
            make: Arc::new(move || {
                let s = Rc::new(RefCell::new(InMemoryKeyValueStore::<K, V>::new(&n)));
                let typed: KeyValueStoreHandle<K, V> = s.clone();
                (Rc::new(typed) as Rc<dyn Any>, s as Rc<RefCell<dyn StateStore>>)
            }),
            // Key-value stores have no typed front: a value that cannot be stored stops the task at its
            // record, not at the next commit.
            make_persistent: Arc::new(move |stack, errors, _| {
                let s = Rc::new(RefCell::new(persistent::PersistentKv::<K, V>::new(
                    &p,
                    stack,
                    errors,
                    FrontSpec::default(),
                )));
                let typed: KeyValueStoreHandle<K, V> = s.clone();
                (Rc::new(typed) as Rc<dyn Any>, s as Rc<RefCell<dyn StateStore>>)
            }),
        }
    }
    /// A window store keeping windows for `retention` ms (at least window size + grace).
    pub fn window<K: Data, V: Data>(name: impl Into<String>, retention: i64) -> StoreBuilder {
        let name = name.into();
        let (n, p) = (name.clone(), name.clone());
        StoreBuilder {
            name,
            kind: StoreKind::Window,
            logging: true,
            retention,
            make: Arc::new(move || {
                let s = Rc::new(RefCell::new(InMemoryWindowStore::<K, V>::new(&n, retention)));
                let typed: WindowStoreHandle<K, V> = s.clone();
                (Rc::new(typed) as Rc<dyn Any>, s as Rc<RefCell<dyn StateStore>>)
            }),
            make_persistent: Arc::new(move |stack, errors, front| {
                let s = Rc::new(RefCell::new(persistent::PersistentWindow::<K, V>::new(&p, stack, errors, front)));
                let typed: WindowStoreHandle<K, V> = s.clone();
                (Rc::new(typed) as Rc<dyn Any>, s as Rc<RefCell<dyn StateStore>>)
            }),
        }
    }
    /// A session store keeping sessions for `retention` ms after they end.
    pub fn session<K: Data, V: Data>(name: impl Into<String>, retention: i64) -> StoreBuilder {
        let name = name.into();
        let (n, p) = (name.clone(), name.clone());
        StoreBuilder {
            name,
            kind: StoreKind::Session,
            logging: true,
            retention,
            make: Arc::new(move || {
                let s = Rc::new(RefCell::new(InMemorySessionStore::<K, V>::new(&n, retention)));
                let typed: SessionStoreHandle<K, V> = s.clone();
                (Rc::new(typed) as Rc<dyn Any>, s as Rc<RefCell<dyn StateStore>>)
            }),
            make_persistent: Arc::new(move |stack, errors, front| {
                let s = Rc::new(RefCell::new(persistent::PersistentSession::<K, V>::new(&p, stack, errors, front)));
                let typed: SessionStoreHandle<K, V> = s.clone();
                (Rc::new(typed) as Rc<dyn Any>, s as Rc<RefCell<dyn StateStore>>)
            }),
        }
    }
}

/// Length of a time segment for a store with this retention: a few segments per retention period
/// (like Kafka Streams), never tiny.
pub(crate) fn segment_interval(retention: i64) -> i64 {
    (retention / 2).max(60_000)
}

/// Window start of a window-store key (`key ++ start`).
pub(crate) fn window_time(key: &[u8]) -> i64 {
    read_ts(&key[key.len() - 8..])
}

/// Session end of a session-store key (`key ++ end ++ start`).
pub(crate) fn session_time(key: &[u8]) -> i64 {
    read_ts(&key[key.len() - 16..key.len() - 8])
}

/// Appends `ts` so that byte order equals numeric order (sign bit flipped, big-endian).
pub(crate) fn push_ts(buf: &mut Vec<u8>, ts: i64) {
    buf.extend_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
}

/// Reads a timestamp written by [`push_ts`].
pub(crate) fn read_ts(bytes: &[u8]) -> i64 {
    let b: [u8; 8] = bytes[..8].try_into().expect("8 timestamp bytes");
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_bytes() {
        let mut v: Vec<Vec<u8>> = [-5i64, 0, 3, i64::MIN, i64::MAX]
            .iter()
            .map(|&t| {
                let mut b = Vec::new();
                push_ts(&mut b, t);
                b
            })
            .collect();
        v.sort();
        let back: Vec<i64> = v.iter().map(|b| read_ts(b)).collect();
        assert_eq!(back, vec![i64::MIN, -5, 0, 3, i64::MAX]);
    }
}
