//! Branch: sends each record to the first branch whose predicate holds (or to the default branch).

use std::sync::Arc;

use crate::record::Record;
use crate::task::{Downstream, Forward, TaskCtx};

pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

pub(crate) struct Branch<K, V> {
    pub(crate) predicates: Vec<Predicate<K, V>>,
    /// Children in branch order; one more than `predicates` when there is a default branch.
    pub(crate) forward: Forward<K, V>,
}

impl<K: Clone, V: Clone> Downstream<K, V> for Branch<K, V> {
    fn push(&mut self, ctx: &mut TaskCtx, record: Record<K, V>) {
        let i = self.predicates.iter().position(|p| p(&record.key, &record.value)).unwrap_or(self.predicates.len());
        if i < self.forward.len() {
            self.forward.at(i).borrow_mut().push(ctx, record);
        }
    }
}
