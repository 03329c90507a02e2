//! Window aggregate: tumbling and hopping windows in a window store, emitting on update or on close.
//!
//! A window `[start, end)` accepts records until stream time reaches `end + grace`; a record for a closed
//! window is late (counted, routed). With [`EmitStrategy::OnWindowClose`] each window is forwarded once,
//! when it closes, and then leaves the store; on update, closed windows expire segment by segment.

use std::collections::BTreeMap;

use super::change_forward::ChangeForward;
use crate::record::{Change, Record};
use crate::state::{Data, WindowStoreHandle};
use crate::task::{Downstream, Punctuator, TaskCtx};
use crate::window::{EmitStrategy, TimeWindows, Window, Windowed};

use super::aggregate::{Aggregator, First};

pub(crate) struct WindowAggregate<K, V, A> {
    pub(crate) name: String,
    pub(crate) windows: TimeWindows,
    pub(crate) emit: EmitStrategy,
    pub(crate) store: WindowStoreHandle<K, A>,
    pub(crate) first: First<K, V, A>,
    pub(crate) aggregator: Aggregator<K, V, A>,
    pub(crate) forward: ChangeForward<Windowed<K>, A>,
    /// Every window starting at or before this has been emitted (on-close) or expired.
    pub(crate) done_upto: i64,
    /// On close: the windows in the store, by start then encoded key, so closing takes exactly the
    /// closed ones by point reads instead of scanning the store (built from the store on first use, so
    /// after a restart too; as the session aggregate keeps its open sessions).
    pub(crate) open: Option<OpenWindows<K>>,
    pub(crate) _v: std::marker::PhantomData<fn(V)>,
}

/// Open windows by start, then encoded key (the store's order).
pub(crate) type OpenWindows<K> = BTreeMap<i64, BTreeMap<Vec<u8>, K>>;

impl<K: Data, V: Data, A: Data> WindowAggregate<K, V, A> {
    fn open(&mut self) -> &mut OpenWindows<K> {
        let store = &self.store;
        self.open.get_or_insert_with(|| {
            let mut open = OpenWindows::new();
            for (k, start, _) in store.borrow().fetch_all(i64::MIN, i64::MAX) {
                open.entry(start).or_default().insert(crate::serdes::encode(&k), k);
            }
            open
        })
    }
}

impl<K: Data, V: Data, A: Data> Downstream<K, V> for WindowAggregate<K, V, A> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        for w in self.windows.windows_for(r.timestamp) {
            if w.end <= close {
                let reason = format!("window [{}, {}) closed at stream time {}", w.start, w.end, ctx.stream_time);
                ctx.late(&self.name, &reason, &r);
                continue;
            }
            let mut new: Option<A> = None;
            let mut created = false;
            let mut fold = |old: Option<A>| {
                created = old.is_none();
                let a = match old {
                    Some(a) => (self.aggregator)(&r.key, &r.value, r.timestamp, a),
                    None => (self.first)(&r.key, &r.value, r.timestamp),
                };
                if self.emit == EmitStrategy::OnWindowUpdate {
                    new = Some(a.clone());
                }
                a
            };
            // On close nothing is forwarded now: the old aggregate is not needed (nor cloned).
            let old = match self.emit {
                EmitStrategy::OnWindowUpdate => self.store.borrow_mut().update(&r.key, w.start, &mut fold),
                EmitStrategy::OnWindowClose => {
                    self.store.borrow_mut().upsert(&r.key, w.start, &mut fold);
                    if created {
                        let key = r.key.clone();
                        self.open().entry(w.start).or_default().insert(crate::serdes::encode(&key), key);
                    }
                    None
                }
            };
            if let Some(new) = new {
                let key = Windowed { key: r.key.clone(), window: w };
                let rec = Record {
                    key,
                    value: Change { new: Some(new), old },
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                };
                self.forward.push(ctx, rec);
            }
        }
    }
}

impl<K: Data, V: Data, A: Data> Punctuator for WindowAggregate<K, V, A> {
    fn stream_time_advanced(&mut self, ctx: &mut TaskCtx) {
        // Windows with end <= close, i.e. start <= close - size, are closed.
        let last_closed_start = ctx.stream_time.saturating_sub(self.windows.grace).saturating_sub(self.windows.size);
        // Window starts are multiples of `advance`: nothing new closes until one more start is passed.
        let last_closed_start = last_closed_start - last_closed_start.rem_euclid(self.windows.advance);
        if last_closed_start <= self.done_upto {
            return;
        }
        match self.emit {
            EmitStrategy::OnWindowClose => {
                let open = self.open();
                let still_open = open.split_off(&last_closed_start.saturating_add(1));
                let closed = std::mem::replace(open, still_open);
                for (start, keys) in closed {
                    for key in keys.into_values() {
                        let Some(agg) = self.store.borrow().fetch(&key, start) else { continue };
                        self.store.borrow_mut().remove(&key, start);
                        let window = Window { start, end: start + self.windows.size };
                        let rec =
                            Record::new(Windowed { key, window }, Change { new: Some(agg), old: None }, window.end - 1);
                        self.forward.push_now(ctx, rec);
                    }
                }
            }
            EmitStrategy::OnWindowUpdate => {}
        }
        self.done_upto = last_closed_start;
        self.store.borrow_mut().expire_before(last_closed_start.saturating_add(1));
    }

    fn commit(&mut self, ctx: &mut TaskCtx) {
        self.forward.flush(ctx);
    }
}
