//! Snowplow ecommerce events → rolling and session-window shopper features in Redis.
//!
//! So far: [`enriched`], the reusable parser of Snowplow enriched TSV lines into the analytics SDKs'
//! JSON, and [`event`], one shopper event from either input format. The topology lands with the rest of
//! its issue.

pub mod enriched;
pub mod event;
pub mod generator;
