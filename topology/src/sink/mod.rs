//! Sinks outside Kafka that runtimes write to at commit: [`redis`].

pub mod redis;
