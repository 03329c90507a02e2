//! Stream–stream join within join windows.
//!
//! Both sides are buffered per key and timestamp. A left record at `t` joins right records in
//! `[t - before, t + after]`; a right record at `t` joins left records in `[t - after, t + before]`. Inner
//! results are forwarded as soon as both sides are there. A left record's window closes when stream time
//! passes `t + after + grace` (a right record's when it passes `t + before + grace`): only then, and only if
//! it never matched, does a left (or outer) join forward it with `None` — never spuriously early. Records
//! whose own window has already closed on arrival are late.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::state::{Data, WindowStoreHandle};
use crate::task::{Downstream, Forward, Punctuator, TaskCtx};
use crate::window::JoinWindows;

/// Joins the two sides; `None` for a side that had no match (left and outer joins only).
pub(crate) type OuterJoiner<V1, V2, R> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> R + Send + Sync>;

/// A buffered record and whether it has joined anything yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Buffered<V> {
    pub(crate) value: V,
    pub(crate) matched: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
    Outer,
}

pub(crate) struct StreamStreamJoin<K, V1, V2, R> {
    pub(crate) name: String,
    pub(crate) windows: JoinWindows,
    pub(crate) kind: JoinKind,
    pub(crate) left_store: WindowStoreHandle<K, Vec<Buffered<V1>>>,
    pub(crate) right_store: WindowStoreHandle<K, Vec<Buffered<V2>>>,
    pub(crate) joiner: OuterJoiner<V1, V2, R>,
    pub(crate) forward: Forward<K, R>,
    pub(crate) left_done: i64,
    pub(crate) right_done: i64,
}

/// Input port 0 of the join (the left stream).
pub(crate) struct LeftInput<K, V1, V2, R>(pub(crate) std::rc::Rc<std::cell::RefCell<StreamStreamJoin<K, V1, V2, R>>>);
/// Input port 1 of the join (the right stream).
pub(crate) struct RightInput<K, V1, V2, R>(pub(crate) std::rc::Rc<std::cell::RefCell<StreamStreamJoin<K, V1, V2, R>>>);

/// Buffers `value` at (`key`, `t`) and returns whether other side's matches were found.
fn buffer<K: Data, V: Data>(store: &WindowStoreHandle<K, Vec<Buffered<V>>>, key: &K, t: i64, value: V, matched: bool) {
    let mut s = store.borrow_mut();
    let mut list = s.fetch(key, t).unwrap_or_default();
    list.push(Buffered { value, matched });
    s.put(key, t, list);
}

/// Marks every buffered record of `key` in `[from, to]` as matched and returns them with their times.
fn match_range<K: Data, V: Data>(
    store: &WindowStoreHandle<K, Vec<Buffered<V>>>,
    key: &K,
    from: i64,
    to: i64,
) -> Vec<(i64, V)> {
    let mut s = store.borrow_mut();
    let mut out = Vec::new();
    for (t, mut list) in s.fetch_range(key, from, to) {
        let mut changed = false;
        for b in &mut list {
            out.push((t, b.value.clone()));
            changed |= !std::mem::replace(&mut b.matched, true);
        }
        if changed {
            s.put(key, t, list);
        }
    }
    out
}

impl<K: Data, V1: Data, V2: Data, R: Clone + 'static> Downstream<K, V1> for LeftInput<K, V1, V2, R> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V1>) {
        let j = self.0.borrow_mut();
        let w = j.windows;
        if r.timestamp.saturating_add(w.after).saturating_add(w.grace) < ctx.stream_time {
            let name = j.name.clone();
            ctx.late(&name, "left join window closed", &r);
            return;
        }
        let matches = match_range(&j.right_store, &r.key, r.timestamp - w.before, r.timestamp + w.after);
        for (t2, v2) in &matches {
            let v = (j.joiner)(Some(&r.value), Some(v2));
            j.forward.push(ctx, Record::new(r.key.clone(), v, r.timestamp.max(*t2)));
        }
        buffer(&j.left_store, &r.key, r.timestamp, r.value, !matches.is_empty());
    }
}

impl<K: Data, V1: Data, V2: Data, R: Clone + 'static> Downstream<K, V2> for RightInput<K, V1, V2, R> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, V2>) {
        let j = self.0.borrow_mut();
        let w = j.windows;
        if r.timestamp.saturating_add(w.before).saturating_add(w.grace) < ctx.stream_time {
            let name = j.name.clone();
            ctx.late(&name, "right join window closed", &r);
            return;
        }
        let matches = match_range(&j.left_store, &r.key, r.timestamp - w.after, r.timestamp + w.before);
        for (t1, v1) in &matches {
            let v = (j.joiner)(Some(v1), Some(&r.value));
            j.forward.push(ctx, Record::new(r.key.clone(), v, r.timestamp.max(*t1)));
        }
        buffer(&j.right_store, &r.key, r.timestamp, r.value, !matches.is_empty());
    }
}

impl<K: Data, V1: Data, V2: Data, R: Clone + 'static> Punctuator for LeftInput<K, V1, V2, R> {
    fn stream_time_advanced(&mut self, ctx: &mut TaskCtx) {
        let mut guard = self.0.borrow_mut();
        let j = &mut *guard;
        let w = j.windows;
        // Left records with t + after + grace < stream time can match nothing more.
        let left_closed = ctx.stream_time.saturating_sub(w.after).saturating_sub(w.grace).saturating_sub(1);
        if left_closed > j.left_done {
            let expired = j.left_store.borrow().fetch_all(j.left_done.saturating_add(1), left_closed);
            for (key, t, list) in expired {
                j.left_store.borrow_mut().remove(&key, t);
                if j.kind != JoinKind::Inner {
                    for b in list.iter().filter(|b| !b.matched) {
                        let v = (j.joiner)(Some(&b.value), None);
                        j.forward.push(ctx, Record::new(key.clone(), v, t));
                    }
                }
            }
            j.left_done = left_closed;
        }
        let right_closed = ctx.stream_time.saturating_sub(w.before).saturating_sub(w.grace).saturating_sub(1);
        if right_closed > j.right_done {
            let expired = j.right_store.borrow().fetch_all(j.right_done.saturating_add(1), right_closed);
            for (key, t, list) in expired {
                j.right_store.borrow_mut().remove(&key, t);
                if j.kind == JoinKind::Outer {
                    for b in list.iter().filter(|b| !b.matched) {
                        let v = (j.joiner)(None, Some(&b.value));
                        j.forward.push(ctx, Record::new(key.clone(), v, t));
                    }
                }
            }
            j.right_done = right_closed;
        }
    }
}
