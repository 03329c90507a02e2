//! Forwarding of table changes: immediately, or — when stores are cached — de-duplicated per key until
//! the next commit, like Kafka Streams' cache flush: ten updates of a hot key within a commit interval
//! reach downstream as one change (first old value → last new value).

use std::collections::BTreeMap;

use crate::record::{Change, Headers, Record};
use crate::serdes::encode;
use crate::state::Data;
use crate::task::{Forward, TaskCtx};

pub(crate) struct Pending<K, V> {
    key: K,
    old: Option<V>,
    new: Option<V>,
    timestamp: i64,
    headers: Headers,
}

pub(crate) enum ChangeForward<K, V> {
    Immediate(Forward<K, Change<V>>),
    Deduplicated { forward: Forward<K, Change<V>>, pending: BTreeMap<Vec<u8>, Pending<K, V>>, max_keys: usize },
}

impl<K: Data, V: Data> ChangeForward<K, V> {
    pub(crate) fn push(&mut self, ctx: &mut TaskCtx, r: Record<K, Change<V>>) {
        match self {
            ChangeForward::Immediate(f) => f.push(ctx, r),
            ChangeForward::Deduplicated { pending, max_keys, .. } => {
                let Record { key, value, timestamp, headers } = r;
                match pending.entry(encode(&key)) {
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let p = e.get_mut();
                        p.new = value.new;
                        p.timestamp = p.timestamp.max(timestamp);
                        p.headers = headers;
                    }
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(Pending { key, old: value.old, new: value.new, timestamp, headers });
                    }
                }
                if pending.len() > *max_keys {
                    self.flush(ctx);
                }
            }
        }
    }

    /// Forwards at once, bypassing de-duplication (final results of closed windows).
    pub(crate) fn push_now(&mut self, ctx: &mut TaskCtx, r: Record<K, Change<V>>) {
        match self {
            ChangeForward::Immediate(f) | ChangeForward::Deduplicated { forward: f, .. } => f.push(ctx, r),
        }
    }

    /// Forwards every pending change (at commit, or when the buffer is full).
    pub(crate) fn flush(&mut self, ctx: &mut TaskCtx) {
        if let ChangeForward::Deduplicated { forward, pending, .. } = self {
            for (_, p) in std::mem::take(pending) {
                if p.old.is_none() && p.new.is_none() {
                    continue; // created and deleted within one commit: nothing happened downstream
                }
                forward.push(
                    ctx,
                    Record {
                        key: p.key,
                        value: Change { new: p.new, old: p.old },
                        timestamp: p.timestamp,
                        headers: p.headers,
                    },
                );
            }
        }
    }
}
