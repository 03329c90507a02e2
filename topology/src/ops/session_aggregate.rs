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
    /// The windows a record's session replaces (reused, on close).
    pub(crate) scratch: Vec<Window>,
    /// The sessions a record joins (reused, on update).
    pub(crate) found: Vec<(Window, A)>,
    /// The record's encoded key (reused, on close).
    pub(crate) key_buf: Vec<u8>,
    pub(crate) _v: std::marker::PhantomData<fn(V)>,
}

/// Every open session, by key, and when to look at each key next, so that closing takes exactly the
/// sessions that end before the close point and a record finds its key's sessions without a range
/// scan of the store (whose segments are by end time but ordered by key): the store is read by point
/// lookups only, as Flink keeps a merging-window set per key.
///
/// A key is looked at by its end no earlier than its earliest session ends. Sessions only grow (a
/// record extends one, a merge spans several), so a key's check time stays valid as its sessions
/// change: a growing session costs no reordering, only a key's new, earlier-ending session adds a
/// check. When a key is looked at, its closed sessions are taken and it gets its next check.
#[derive(Default)]
pub(crate) struct OpenSessions {
    by_key: FxHashMap<Rc<[u8]>, KeySessions>,
    /// (time, key): every key's check at its `check_at`; an entry whose time is no longer its key's
    /// `check_at` (or whose key has no sessions left) is stale and skipped.
    checks: BinaryHeap<Reverse<(i64, Rc<[u8]>)>>,
}

struct KeySessions {
    windows: Vec<Window>,
    /// At or before the earliest end of `windows`.
    check_at: i64,
}

impl KeySessions {
    /// The sessions with `end >= earliest_end` and `start <= latest_start`, by end, into `found`.
    fn near(&self, earliest_end: i64, latest_start: i64, found: &mut Vec<Window>) {
        found.extend(self.windows.iter().filter(|w| w.end >= earliest_end && w.start <= latest_start));
        found.sort_by_key(|w| (w.end, w.start));
    }

    /// Replaces the sessions `old` with `new`; whether `new` ends before the key's check time (it is
    /// then the new one, and needs a check of its own).
    fn replace(&mut self, old: &[Window], new: Window) -> bool {
        self.windows.retain(|w| !old.contains(w));
        self.windows.push(new);
        let earlier = new.end < self.check_at;
        if earlier {
            self.check_at = new.end;
        }
        earlier
    }
}

/// The session spanning `a` and `b`.
fn span(a: Window, b: &Window) -> Window {
    Window { start: a.start.min(b.start), end: a.end.max(b.end) }
}

impl OpenSessions {
    /// Adds a session of `key` (stored nowhere in the index yet).
    fn insert(&mut self, key: &[u8], w: Window) {
        self.replace(key, &[], w);
    }

    /// Replaces `key`'s sessions `old` with `new`: a session that grew or merged, or (no `old`) a new
    /// one.
    fn replace(&mut self, key: &[u8], old: &[Window], new: Window) {
        let check = match self.by_key.get_mut(key) {
            Some(k) => k.replace(old, new).then(|| self.by_key.get_key_value(key).expect("present").0.clone()),
            None => {
                let rc: Rc<[u8]> = Rc::from(key);
                self.by_key.insert(rc.clone(), KeySessions { windows: vec![new], check_at: new.end });
                Some(rc)
            }
        };
        if let Some(key) = check {
            self.checks.push(Reverse((new.end, key)));
        }
    }

    /// `key`'s sessions with `end >= earliest_end` and `start <= latest_start`, by end, into `found`.
    #[cfg(test)]
    fn find(&self, key: &[u8], earliest_end: i64, latest_start: i64, found: &mut Vec<Window>) {
        found.clear();
        if let Some(k) = self.by_key.get(key) {
            k.near(earliest_end, latest_start, found);
        }
    }

    /// A record at `t` joins `key`'s sessions that end at or after `earliest_end` and start at or
    /// before `latest_start` (into `joined`, by end): their merged session, which replaces them in
    /// the index — unless it ends before `close` (the record is late): then `Err` with it, and
    /// nothing changes. One lookup of the key for both.
    fn join(
        &mut self,
        key: &[u8],
        t: i64,
        (earliest_end, latest_start): (i64, i64),
        close: i64,
        joined: &mut Vec<Window>,
    ) -> Result<Window, Window> {
        joined.clear();
        let sessions = self.by_key.get_mut(key);
        if let Some(k) = &sessions {
            k.near(earliest_end, latest_start, joined);
        }
        let merged = joined.iter().fold(Window { start: t, end: t }, span);
        if merged.end < close {
            return Err(merged);
        }
        match sessions {
            None => self.insert(key, merged),
            Some(k) => {
                if k.replace(joined, merged) {
                    let key = self.by_key.get_key_value(key).expect("present").0.clone();
                    self.checks.push(Reverse((merged.end, key)));
                }
            }
        }
        Ok(merged)
    }

    /// Takes every session that ends at or before `end` into `closed`, by (end, key, start).
    fn take_ending_by(&mut self, end: i64, closed: &mut Vec<(Rc<[u8]>, Window)>) {
        while self.checks.peek().is_some_and(|Reverse((t, _))| *t <= end) {
            let Reverse((t, key)) = self.checks.pop().expect("peeked");
            let Some(k) = self.by_key.get_mut(&key) else { continue };
            if k.check_at != t {
                continue;
            }
            k.windows.retain(|w| {
                let done = w.end <= end;
                if done {
                    closed.push((key.clone(), *w));
                }
                !done
            });
            match k.windows.iter().map(|w| w.end).min() {
                None => {
                    self.by_key.remove(&key);
                }
                Some(next) => {
                    k.check_at = next;
                    self.checks.push(Reverse((next, key)));
                }
            }
        }
        closed.sort_by(|a, b| (a.1.end, &a.0, a.1.start).cmp(&(b.1.end, &b.0, b.1.start)));
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

    /// The sessions that a record at `t` joins are those ending at or after `t - gap` and starting at
    /// or before `t + gap`.
    fn reach(&self, t: i64) -> (i64, i64) {
        (t.saturating_sub(self.windows.gap), t.saturating_add(self.windows.gap))
    }

    fn late(&self, ctx: &mut TaskCtx, merged: Window, r: &Record<K, V>) {
        let reason = format!("session [{}, {}] closed at stream time {}", merged.start, merged.end, ctx.stream_time);
        ctx.late(&self.name, &reason, r);
    }

    /// On close: the index of open sessions finds the key's sessions (the key encoded once, into a
    /// reused buffer), so the merged window is known before the store is read: a late record reads
    /// nothing, and each joined session is taken out of the store (read and removed in one step) for
    /// the merged one, forwarded only when it closes.
    fn push_on_close(&mut self, ctx: &mut TaskCtx, r: Record<K, V>, close: i64) {
        let t = r.timestamp;
        let reach = self.reach(t);
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        crate::serdes::encode_into(&r.key, &mut key);
        let mut joined = std::mem::take(&mut self.scratch);
        match self.open().join(&key, t, reach, close, &mut joined) {
            Err(merged) => self.late(ctx, merged, &r),
            Ok(merged) => {
                let mut agg: Option<A> = None;
                {
                    let mut store = self.store.borrow_mut();
                    for &w in &joined {
                        let Some(v) = store.take_session(&r.key, w) else { continue };
                        agg = Some(match agg {
                            None => v,
                            Some(a) => (self.merger)(&r.key, a, v),
                        });
                    }
                }
                let agg = match agg {
                    Some(a) => (self.aggregator)(&r.key, &r.value, t, a),
                    None => (self.first)(&r.key, &r.value, t),
                };
                // The index held every stored session of the key, and `merged` replaces those
                // joined: it is stored nowhere now.
                self.store.borrow_mut().put_new(&r.key, merged, agg);
            }
        }
        self.scratch = joined;
        self.key_buf = key;
    }

    /// On update: the key's sessions come from a range scan of the store; merged-away sessions are
    /// forwarded as tombstones, the merged one as the new value.
    fn push_on_update(&mut self, ctx: &mut TaskCtx, r: Record<K, V>, close: i64) {
        let t = r.timestamp;
        let (from, to) = self.reach(t);
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        found.extend(self.store.borrow().find_sessions(&r.key, from, to));
        let mut merged = Window { start: t, end: t };
        let mut agg: Option<A> = None;
        for (w, v) in &found {
            agg = Some(match agg {
                None => v.clone(),
                Some(a) => (self.merger)(&r.key, a, v.clone()),
            });
            merged = span(merged, w);
        }
        if merged.end < close {
            self.late(ctx, merged, &r);
            self.found = found;
            return;
        }
        for (w, v) in found.drain(..) {
            self.store.borrow_mut().remove(&r.key, w);
            if w != merged {
                let key = Windowed { key: r.key.clone(), window: w };
                self.forward.push(ctx, Record::new(key, Change { new: None, old: Some(v) }, t));
            }
        }
        self.found = found;
        let agg = match agg {
            Some(a) => (self.aggregator)(&r.key, &r.value, t, a),
            None => (self.first)(&r.key, &r.value, t),
        };
        self.store.borrow_mut().put(&r.key, merged, agg.clone());
        let key = Windowed { key: r.key, window: merged };
        self.forward
            .push(ctx, Record { key, value: Change { new: Some(agg), old: None }, timestamp: t, headers: r.headers });
    }
}

impl<K: Data, V: Data, A: Data> Downstream<K, V> for SessionAggregate<K, V, A> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        match self.emit {
            EmitStrategy::OnWindowClose => self.push_on_close(ctx, r, close),
            EmitStrategy::OnWindowUpdate => self.push_on_update(ctx, r, close),
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
            let mut closed = Vec::new();
            self.open().take_ending_by(last_closed_end, &mut closed);
            for (key, window) in closed {
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
    fn a_join_merges_what_the_record_reaches_and_a_late_one_changes_nothing() {
        let mut open = OpenSessions::default();
        let mut joined = Vec::new();
        // A new key: the record's own session.
        assert_eq!(open.join(b"k", 100, (90, 110), 0, &mut joined), Ok(w(100, 100)));
        assert_eq!(open.join(b"k", 200, (190, 210), 0, &mut joined), Ok(w(200, 200)));
        // A record between both (gap 60) bridges them: one session replaces the two.
        assert_eq!(open.join(b"k", 150, (90, 210), 0, &mut joined), Ok(w(100, 200)));
        assert_eq!(joined, vec![w(100, 100), w(200, 200)]);
        open.find(b"k", i64::MIN, i64::MAX, &mut joined);
        assert_eq!(joined, vec![w(100, 200)]);
        // Late: the merged session would end before the close point; the index stays as it was.
        assert_eq!(open.join(b"k", 40, (30, 50), 60, &mut joined), Err(w(40, 40)));
        assert_eq!(open.join(b"other", 40, (30, 50), 60, &mut joined), Err(w(40, 40)));
        open.find(b"k", i64::MIN, i64::MAX, &mut joined);
        assert_eq!(joined, vec![w(100, 200)]);
        assert!(!open.by_key.contains_key(b"other".as_slice()));
    }

    #[test]
    fn open_sessions_close_by_end_then_key_and_a_growing_session_adds_no_check() {
        let mut open = OpenSessions::default();
        // A session per key that grows 1,000 times: each key keeps the one check of its first window.
        for step in 0..1_000i64 {
            for key in [b"b".as_slice(), b"a"] {
                if step == 0 {
                    open.insert(key, w(0, 0));
                } else {
                    open.replace(key, &[w(0, step - 1)], w(0, step));
                }
            }
        }
        assert_eq!(open.checks.len(), 2, "no check per growth");
        open.insert(b"c", w(1_500, 2_000));
        let mut found = Vec::new();
        open.find(b"a", 500, 1_000, &mut found);
        assert_eq!(found, vec![w(0, 999)]);
        let mut closed = Vec::new();
        open.take_ending_by(998, &mut closed);
        assert!(closed.is_empty(), "looked at a and b, whose sessions end at 999: {closed:?}");
        assert_eq!(open.checks.len(), 3, "a and b are checked again at 999");
        // A new session that ends before a key's check moves the check earlier.
        open.insert(b"c", w(10, 990));
        open.take_ending_by(1_000, &mut closed);
        let names: Vec<(&[u8], Window)> = closed.iter().map(|(k, w)| (&**k, *w)).collect();
        assert_eq!(names, vec![(b"c".as_slice(), w(10, 990)), (b"a", w(0, 999)), (b"b", w(0, 999))]);
        closed.clear();
        // Merging c's remaining session with a new one keeps c's check valid.
        open.replace(b"c", &[w(1_500, 2_000)], w(1_200, 2_500));
        open.take_ending_by(2_000, &mut closed);
        assert!(closed.is_empty());
        open.take_ending_by(2_500, &mut closed);
        assert_eq!(closed.len(), 1);
        assert_eq!((&*closed[0].0, closed[0].1), (b"c".as_slice(), w(1_200, 2_500)));
        assert!(open.by_key.is_empty());
    }
}
