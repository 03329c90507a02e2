//! Table–table join: a change on either side is joined with the other side's current value; the result
//! is itself a table change (old joined value → new joined value).

use std::sync::Arc;

use crate::record::{Change, Record};
use crate::state::{Data, KeyValueStoreHandle};
use crate::task::{Downstream, Forward, TaskCtx};

use super::stream_stream_join::JoinKind;

/// Joins the two sides' values; `None` for an absent side (left and outer joins only).
pub(crate) type TableJoiner<V1, V2, R> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> R + Send + Sync>;

pub(crate) struct TableTableJoin<K, V1, V2, R> {
    pub(crate) kind: JoinKind,
    pub(crate) left_store: KeyValueStoreHandle<K, V1>,
    pub(crate) right_store: KeyValueStoreHandle<K, V2>,
    pub(crate) joiner: TableJoiner<V1, V2, R>,
    pub(crate) forward: Forward<K, Change<R>>,
}

impl<K, V1, V2, R> TableTableJoin<K, V1, V2, R> {
    fn combine(&self, l: Option<&V1>, r: Option<&V2>) -> Option<R> {
        let present = match self.kind {
            JoinKind::Inner => l.is_some() && r.is_some(),
            JoinKind::Left => l.is_some(),
            JoinKind::Outer => l.is_some() || r.is_some(),
        };
        present.then(|| (self.joiner)(l, r))
    }
}

pub(crate) struct LeftTable<K, V1, V2, R>(pub(crate) std::rc::Rc<std::cell::RefCell<TableTableJoin<K, V1, V2, R>>>);
pub(crate) struct RightTable<K, V1, V2, R>(pub(crate) std::rc::Rc<std::cell::RefCell<TableTableJoin<K, V1, V2, R>>>);

fn emit<K: Clone, R: Clone>(
    fwd: &Forward<K, Change<R>>,
    ctx: &mut TaskCtx,
    key: K,
    new: Option<R>,
    old: Option<R>,
    ts: i64,
) {
    if new.is_some() || old.is_some() {
        fwd.push(ctx, Record::new(key, Change { new, old }, ts));
    }
}

impl<K: Data, V1: Data, V2: Data, R: Clone + 'static> Downstream<K, Change<V1>> for LeftTable<K, V1, V2, R> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, Change<V1>>) {
        let j = self.0.borrow();
        let other = j.right_store.borrow().get(&r.key);
        let new = j.combine(r.value.new.as_ref(), other.as_ref());
        let old = j.combine(r.value.old.as_ref(), other.as_ref());
        emit(&j.forward, ctx, r.key, new, old, r.timestamp);
    }
}

impl<K: Data, V1: Data, V2: Data, R: Clone + 'static> Downstream<K, Change<V2>> for RightTable<K, V1, V2, R> {
    fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, Change<V2>>) {
        let j = self.0.borrow();
        let other = j.left_store.borrow().get(&r.key);
        let new = j.combine(other.as_ref(), r.value.new.as_ref());
        let old = j.combine(other.as_ref(), r.value.old.as_ref());
        emit(&j.forward, ctx, r.key, new, old, r.timestamp);
    }
}
