//! Attribute names, as constants.

pub(crate) const RECORD: &str = "record";
pub(crate) const KEY: &str = "key";
pub(crate) const TIMESTAMP: &str = "timestamp";
pub(crate) const TOPIC: &str = "topic";
pub(crate) const FORMAT: &str = "format";
pub(crate) const AGGREGATE: &str = "aggregate";
pub(crate) const INPUT: &str = "input";
pub(crate) const MERGE: &str = "merge";

/// Aggregate kinds, in the order error messages list them.
pub(crate) const AGGREGATE_KINDS: &[&str] =
    &["count", "sum", "min", "max", "mean", "count_distinct", "first", "last", "custom"];
