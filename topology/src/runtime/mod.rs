//! Runtimes that execute a [`Topology`](crate::Topology). All share the same task code; today:
//! the deterministic [`TestDriver`].

mod engine;
mod partitioner;
mod test_driver;

pub use test_driver::{TestDriver, TestDriverBuilder, TestInputTopic, TestOutputTopic, TestRecord};
