//! Sliding-window aggregate with Kafka Streams' `SlidingWindows` semantics.
//!
//! Windows are `[start, start + d]`, inclusive at both ends, and exist only where records are: each record
//! at `t` gets a left window `[t - d, t]`, and a right window `[t + 1, t + 1 + d]` once a later record falls
//! into it. So every distinct set of records within `d` of each other is aggregated exactly once. The
//! store keeps, per window, the aggregate and the largest record timestamp in it. A window is closed once
//! its last millisecond lies before `stream time - grace`; a record is late when all its windows are.

use super::change_forward::ChangeForward;
use crate::record::{Change, Record};
use crate::state::{Data, WindowStoreHandle};
use crate::task::{Downstream, Punctuator, TaskCtx};
use crate::window::{EmitStrategy, SlidingWindows, Window, Windowed};

use super::aggregate::{Aggregator, First};

pub(crate) struct SlidingAggregate<K, V, A> {
    pub(crate) name: String,
    pub(crate) windows: SlidingWindows,
    pub(crate) emit: EmitStrategy,
    /// (aggregate, max record timestamp) per window start.
    pub(crate) store: WindowStoreHandle<K, (A, i64)>,
    pub(crate) first: First<K, V, A>,
    pub(crate) aggregator: Aggregator<K, V, A>,
    pub(crate) forward: ChangeForward<Windowed<K>, A>,
    pub(crate) done_upto: i64,
    pub(crate) _v: std::marker::PhantomData<fn(V)>,
}

impl<K: Data, V: Data, A: Data> SlidingAggregate<K, V, A> {
    /// Window `[s, s + d]` is closed once its last millisecond is before `stream time - grace`.
    fn last_closed_start(&self, stream_time: i64) -> i64 {
        stream_time.saturating_sub(self.windows.grace).saturating_sub(self.windows.time_difference).saturating_sub(1)
    }

    fn window(&self, start: i64) -> Window {
        Window { start, end: start + self.windows.time_difference }
    }

    /// Adds the record to the window at `start` whose current state is `state` (if open) and forwards it.
    fn update(
        &mut self,
        ctx: &mut TaskCtx,
        r: &Record<K, V>,
        start: i64,
        state: (Option<A>, i64),
        old: Option<A>,
        close: i64,
    ) -> bool {
        let w = self.window(start);
        if w.end < close {
            return false;
        }
        let agg = match state.0 {
            Some(a) => (self.aggregator)(&r.key, &r.value, r.timestamp, a),
            None => (self.first)(&r.key, &r.value, r.timestamp),
        };
        let max_ts = state.1.max(r.timestamp);
        self.put_and_forward(ctx, r, w, agg, max_ts, old);
        true
    }

    fn put_and_forward(&mut self, ctx: &mut TaskCtx, r: &Record<K, V>, w: Window, agg: A, max_ts: i64, old: Option<A>) {
        self.store.borrow_mut().put(&r.key, w.start, (agg.clone(), max_ts));
        if self.emit == EmitStrategy::OnWindowUpdate {
            let key = Windowed { key: r.key.clone(), window: w };
            self.forward.push(ctx, Record::new(key, Change { new: Some(agg), old }, max_ts));
        }
    }
}

impl<K: Data, V: Data, A: Data> Downstream<K, V> for SlidingAggregate<K, V, A> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V>) {
        let d = self.windows.time_difference;
        let t = r.timestamp;
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        if t.saturating_add(d) < close {
            let reason = format!("every sliding window containing {t} closed at stream time {}", ctx.stream_time);
            ctx.late(&self.name, &reason, &r);
            return;
        }
        let existing = self.store.borrow().fetch_range(&r.key, t.saturating_sub(2 * d), t.saturating_add(1));
        let mut starts = std::collections::HashSet::new();
        let mut left_agg: Option<(A, i64)> = None;
        let mut right_agg: Option<(A, i64)> = None;
        let (mut left_exists, mut right_exists) = (false, false);
        let mut previous: Option<i64> = None;
        for (start, (agg, max_ts)) in existing {
            starts.insert(start);
            let end = start + d;
            if end < t {
                // A window wholly before the record: the latest one is the left window's basis.
                left_agg = Some((agg, max_ts));
                previous = Some(max_ts);
            } else if end == t {
                left_exists = true;
                if max_ts < t {
                    previous = Some(max_ts);
                }
                self.update(ctx, &r, start, (Some(agg.clone()), max_ts), Some(agg), close);
            } else if start <= t {
                right_agg = Some((agg.clone(), max_ts));
                self.update(ctx, &r, start, (Some(agg.clone()), max_ts), Some(agg), close);
            } else if start == t + 1 {
                right_exists = true;
            }
        }
        // The right window of the previous record, if this record falls into it and it does not exist yet.
        if let Some(prev) = previous {
            let s = prev + 1;
            if !starts.contains(&s) && s <= t && s + d >= t {
                let w = self.window(s);
                if w.end >= close {
                    let agg = (self.first)(&r.key, &r.value, r.timestamp);
                    self.put_and_forward(ctx, &r, w, agg, t, None);
                }
            }
        }
        // The record's own left window [t - d, t].
        if !left_exists {
            let basis = match (left_agg, previous) {
                (Some((agg, _)), Some(p)) if t - d <= p => Some(agg),
                _ => None,
            };
            if !self.update(ctx, &r, t - d, (basis, t), None, close) {
                let reason = format!("sliding window [{}, {t}] closed at stream time {}", t - d, ctx.stream_time);
                ctx.late(&self.name, &reason, &r);
            }
        }
        // The record's right window [t + 1, t + 1 + d], when a later record already falls into it.
        if !right_exists {
            if let Some((agg, max_ts)) = right_agg {
                if max_ts > t {
                    let w = self.window(t + 1);
                    // Seeded with the largest overlapping window as it was before this record: by
                    // construction it holds exactly the records in (t, t + 1 + d].
                    self.put_and_forward(ctx, &r, w, agg, max_ts, None);
                }
            }
        }
    }
}

impl<K: Data, V: Data, A: Data> Punctuator for SlidingAggregate<K, V, A> {
    fn stream_time_advanced(&mut self, ctx: &mut TaskCtx) {
        // Window [s, s + d] is closed once s + d <= stream time - grace.
        let last_closed_start = self.last_closed_start(ctx.stream_time);
        if last_closed_start <= self.done_upto {
            return;
        }
        if self.emit == EmitStrategy::OnWindowClose {
            let closed = self.store.borrow().fetch_all(self.done_upto.saturating_add(1), last_closed_start);
            // Closed windows stay in the store (until retention): they seed later records' left windows.
            for (key, start, (agg, _)) in closed {
                let window = self.window(start);
                self.forward.push_now(
                    ctx,
                    Record::new(Windowed { key, window }, Change { new: Some(agg), old: None }, window.end),
                );
            }
        }
        self.done_upto = last_closed_start;
        // Keep the windows a new record may still need as its left-window basis (up to 2d back).
        let keep = last_closed_start.saturating_sub(self.windows.time_difference);
        self.store.borrow_mut().expire_before(keep);
    }

    fn commit(&mut self, ctx: &mut TaskCtx) {
        self.forward.flush(ctx);
    }

    fn resume(&mut self, ctx: &mut TaskCtx) {
        // Closed windows stay in the store; those closed by the committed stream time were emitted.
        self.done_upto = self.last_closed_start(ctx.stream_time);
    }
}
