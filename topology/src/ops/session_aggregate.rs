//! Session aggregate: per key, records closer than the inactivity gap share a session; a record that
//! bridges sessions merges them (on update, the merged-away sessions are forwarded as tombstones).
//!
//! A session `[start, end]` can still grow while a record at `end + gap` would be accepted, so it closes
//! when stream time passes `end + gap + grace`. A record is late when its own (possibly merged) session
//! ends before `stream time - grace`.

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
    /// On close: every open session as (end, encoded key, start), so closing takes exactly the
    /// sessions that end before the close point instead of scanning the store (its segments are by
    /// end time but ordered by key). Built from the store on first use (after restore), then kept
    /// with every put and remove.
    pub(crate) open: Option<std::collections::BTreeSet<(i64, Vec<u8>, i64)>>,
    pub(crate) _v: std::marker::PhantomData<fn(V)>,
}

impl<K: Data, V: Data, A: Data> SessionAggregate<K, V, A> {
    fn open(&mut self) -> &mut std::collections::BTreeSet<(i64, Vec<u8>, i64)> {
        let store = &self.store;
        self.open.get_or_insert_with(|| {
            let all = store.borrow().fetch_ending(i64::MIN, i64::MAX);
            all.into_iter().map(|(k, w, _)| (w.end, crate::serdes::encode(&k), w.start)).collect()
        })
    }
}

impl<K: Data, V: Data, A: Data> Downstream<K, V> for SessionAggregate<K, V, A> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        let t = r.timestamp;
        let gap = self.windows.gap;
        let found = self.store.borrow().find_sessions(&r.key, t.saturating_sub(gap), t.saturating_add(gap));
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
        // On close, the index of open sessions follows every remove and put (the key encoded once).
        let encoded = (self.emit == EmitStrategy::OnWindowClose).then(|| crate::serdes::encode(&r.key));
        for (w, v) in found {
            self.store.borrow_mut().remove(&r.key, w);
            if let Some(key) = &encoded {
                self.open().remove(&(w.end, key.clone(), w.start));
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
        self.store.borrow_mut().put(&r.key, merged, agg.clone());
        if let Some(key) = encoded {
            self.open().insert((merged.end, key, merged.start));
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
            while let Some((end, key, start)) = self.open().first().cloned() {
                if end > last_closed_end {
                    break;
                }
                self.open().pop_first();
                let key: K = crate::state::decode_key(&key);
                let window = Window { start, end };
                let found = self.store.borrow().find_sessions(&key, end, start);
                let Some((_, agg)) = found.into_iter().find(|(w, _)| *w == window) else { continue };
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
