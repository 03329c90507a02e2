//! Session aggregate: per key, records closer than the inactivity gap share a session; a record that
//! bridges sessions merges them (on update, the merged-away sessions are forwarded as tombstones).
//!
//! A session `[start, end]` can still grow while a record at `end + gap` would be accepted, so it closes
//! when stream time passes `end + gap + grace`. A record is late when its own (possibly merged) session
//! ends before `stream time - grace`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;

use rustc_hash::FxHashMap;

use super::change_forward::ChangeForward;
use crate::record::{Change, Record};
use crate::state::{Data, SessionStoreHandle};
use crate::task::{Downstream, Punctuator, TaskCtx};
use crate::window::{EmitStrategy, SessionWindows, Window, Windowed};

use super::aggregate::{Aggregator, First, Merger};

pub(crate) struct SessionAggregate<K, V, A> {
    pub(crate) name: String,
    pub(crate) windows: SessionWindows,
    pub(crate) emit: EmitStrategy,
    pub(crate) store: SessionStoreHandle<K, A>,
    pub(crate) first: First<K, V, A>,
    pub(crate) aggregator: Aggregator<K, V, A>,
    pub(crate) merger: Merger<K, A>,
    pub(crate) forward: ChangeForward<Windowed<K>, A>,
    /// Every session ending at or before this has been emitted (on-close) or may be expired.
    pub(crate) done_upto: i64,
    /// On close: the open sessions (see [`OpenSessions`]). Built from the store on first use (after
    /// restore), then kept with every put and remove.
    pub(crate) open: Option<OpenSessions>,
    pub(crate) _v: std::marker::PhantomData<fn(V)>,
}

/// A session in `OpenSessions::by_end`: (end, key, start).
type EndEntry = (i64, Rc<[u8]>, i64);

/// Every open session, by end and by key, so that closing takes exactly the sessions that end before
/// the close point and a record finds its key's sessions without a range scan of the store (whose
/// segments are by end time but ordered by key): the store is read by point lookups only, as Flink
/// keeps a merging-window set per key.
#[derive(Default)]
pub(crate) struct OpenSessions {
    /// The open sessions of each key (the truth).
    by_key: FxHashMap<Rc<[u8]>, Vec<Window>>,
    /// Every session added, earliest end first (then key, then start). Removing a session leaves its
    /// entry here (no search, no allocation); `pop_ending_by` skips entries `by_key` no longer has,
    /// and the heap is rebuilt from `by_key` when such stale entries outnumber the live ones.
    by_end: BinaryHeap<Reverse<EndEntry>>,
    live: usize,
}

impl OpenSessions {
    fn insert(&mut self, key: &[u8], w: Window) {
        let key = match self.by_key.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => Rc::from(key),
        };
        self.by_end.push(Reverse((w.end, key.clone(), w.start)));
        self.by_key.entry(key).or_default().push(w);
        self.live += 1;
        if self.by_end.len() > 2 * self.live + 1024 {
            self.by_end = self
                .by_key
                .iter()
                .flat_map(|(k, list)| list.iter().map(move |w| Reverse((w.end, k.clone(), w.start))))
                .collect();
        }
    }

    fn remove(&mut self, key: &[u8], w: Window) {
        if let Some(list) = self.by_key.get_mut(key) {
            let before = list.len();
            list.retain(|x| *x != w);
            self.live -= before - list.len();
            if list.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// `key`'s sessions with `end >= earliest_end` and `start <= latest_start`, by end.
    fn find(&self, key: &[u8], earliest_end: i64, latest_start: i64) -> Vec<Window> {
        let mut found: Vec<Window> = self
            .by_key
            .get(key)
            .map(|list| list.iter().filter(|w| w.end >= earliest_end && w.start <= latest_start).copied().collect())
            .unwrap_or_default();
        found.sort_by_key(|w| (w.end, w.start));
        found
    }

    /// The open session that ends first, if it ends at or before `end`; removed.
    fn pop_ending_by(&mut self, end: i64) -> Option<(Vec<u8>, Window)> {
        while self.by_end.peek().is_some_and(|Reverse((e, _, _))| *e <= end) {
            let Reverse((end, key, start)) = self.by_end.pop().expect("peeked");
            let w = Window { start, end };
            if self.by_key.get(&*key).is_some_and(|list| list.contains(&w)) {
                self.remove(&key, w);
                return Some((key.to_vec(), w));
            }
        }
        None
    }
}

impl<K: Data, V: Data, A: Data> SessionAggregate<K, V, A> {
    fn open(&mut self) -> &mut OpenSessions {
        let store = &self.store;
        self.open.get_or_insert_with(|| {
            let mut open = OpenSessions::default();
            for (k, w, _) in store.borrow().fetch_ending(i64::MIN, i64::MAX) {
                open.insert(&crate::serdes::encode(&k), w);
            }
            open
        })
    }

    /// `key`'s sessions that a record at `t` joins: from the index on close (point reads), by a range
    /// scan of the store on update.
    fn sessions_near(&mut self, key: &K, encoded: Option<&[u8]>, t: i64) -> Vec<(Window, A)> {
        let (from, to) = (t.saturating_sub(self.windows.gap), t.saturating_add(self.windows.gap));
        match encoded {
            Some(encoded) => {
                let windows = self.open().find(encoded, from, to);
                let store = self.store.borrow();
                windows.into_iter().filter_map(|w| Some((w, store.fetch_session(key, w)?))).collect()
            }
            None => self.store.borrow().find_sessions(key, from, to),
        }
    }
}

impl<K: Data, V: Data, A: Data> Downstream<K, V> for SessionAggregate<K, V, A> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        let t = r.timestamp;
        // On close, the index of open sessions finds and follows them (the key encoded once).
        let encoded = (self.emit == EmitStrategy::OnWindowClose).then(|| crate::serdes::encode(&r.key));
        let found = self.sessions_near(&r.key, encoded.as_deref(), t);
        let mut merged = Window { start: t, end: t };
        let mut agg: Option<A> = None;
        for (w, v) in &found {
            agg = Some(match agg {
                None => v.clone(),
                Some(a) => (self.merger)(&r.key, a, v.clone()),
            });
            merged = Window { start: merged.start.min(w.start), end: merged.end.max(w.end) };
        }
        if merged.end < close {
            let reason =
                format!("session [{}, {}] closed at stream time {}", merged.start, merged.end, ctx.stream_time);
            ctx.late(&self.name, &reason, &r);
            return;
        }
        for (w, v) in found {
            self.store.borrow_mut().remove(&r.key, w);
            if let Some(key) = &encoded {
                self.open().remove(key, w);
            }
            if self.emit == EmitStrategy::OnWindowUpdate && w != merged {
                let key = Windowed { key: r.key.clone(), window: w };
                self.forward.push(ctx, Record::new(key, Change { new: None, old: Some(v) }, t));
            }
        }
        let agg = match agg {
            Some(a) => (self.aggregator)(&r.key, &r.value, r.timestamp, a),
            None => (self.first)(&r.key, &r.value, r.timestamp),
        };
        match encoded {
            // The index holds every stored session of the key, and `merged` replaces those found: it
            // is stored nowhere now.
            Some(key) => {
                self.store.borrow_mut().put_new(&r.key, merged, agg.clone());
                self.open().insert(&key, merged);
            }
            None => self.store.borrow_mut().put(&r.key, merged, agg.clone()),
        }
        if self.emit == EmitStrategy::OnWindowUpdate {
            let key = Windowed { key: r.key, window: merged };
            self.forward.push(
                ctx,
                Record { key, value: Change { new: Some(agg), old: None }, timestamp: t, headers: r.headers },
            );
        }
    }
}

impl<K: Data, V: Data, A: Data> Punctuator for SessionAggregate<K, V, A> {
    fn stream_time_advanced(&mut self, ctx: &mut TaskCtx) {
        // Closed: end + gap + grace < stream time, i.e. end <= stream time - grace - gap - 1.
        let last_closed_end =
            ctx.stream_time.saturating_sub(self.windows.grace).saturating_sub(self.windows.gap).saturating_sub(1);
        if last_closed_end <= self.done_upto {
            return;
        }
        if self.emit == EmitStrategy::OnWindowClose {
            while let Some((key, window)) = self.open().pop_ending_by(last_closed_end) {
                let key: K = crate::state::decode_key(&key);
                let Some(agg) = self.store.borrow().fetch_session(&key, window) else { continue };
                self.store.borrow_mut().remove(&key, window);
                let rec = Record::new(Windowed { key, window }, Change { new: Some(agg), old: None }, window.end);
                self.forward.push_now(ctx, rec);
            }
        }
        self.done_upto = last_closed_end;
        self.store.borrow_mut().expire_before(last_closed_end.saturating_add(1));
    }

    fn commit(&mut self, ctx: &mut TaskCtx) {
        self.forward.flush(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: i64, end: i64) -> Window {
        Window { start, end }
    }

    #[test]
    fn open_sessions_pop_by_end_then_key_and_skip_removed_ones_across_rebuilds() {
        let mut open = OpenSessions::default();
        // A session per key that grows 1,000 times: every growth removes the old window (a stale heap
        // entry) and adds the new one, so the heap is rebuilt on the way.
        for step in 0..1_000i64 {
            for key in [b"b".as_slice(), b"a"] {
                if step > 0 {
                    open.remove(key, w(0, step - 1));
                }
                open.insert(key, w(0, step));
            }
        }
        assert_eq!(open.live, 2);
        assert!(open.by_end.len() <= 2 * open.live + 1024 + 1, "rebuilt: {}", open.by_end.len());
        open.insert(b"c", w(1_500, 2_000));
        assert_eq!(open.find(b"a", 500, 1_000), vec![w(0, 999)]);
        assert_eq!(open.pop_ending_by(998), None, "stale entries below are skipped, nothing live ends by 998");
        assert_eq!(open.pop_ending_by(1_000), Some((b"a".to_vec(), w(0, 999))));
        assert_eq!(open.pop_ending_by(1_000), Some((b"b".to_vec(), w(0, 999))));
        assert_eq!(open.pop_ending_by(1_000), None);
        assert_eq!(open.pop_ending_by(2_000), Some((b"c".to_vec(), w(1_500, 2_000))));
        assert_eq!(open.live, 0);
        assert!(open.by_key.is_empty());
    }
}
