//! Operators: one concern per file, each a typed [`Downstream`](crate::task::Downstream) built by a
//! factory in the DSL.

pub(crate) mod aggregate;
pub(crate) mod branch;
pub(crate) mod change_forward;
pub(crate) mod process;
pub(crate) mod session_aggregate;
pub(crate) mod sink;
pub(crate) mod sliding_aggregate;
pub(crate) mod source;
pub(crate) mod stateless;
pub(crate) mod stream_stream_join;
pub(crate) mod stream_table_join;
pub(crate) mod table;
pub(crate) mod table_aggregate;
pub(crate) mod table_table_join;
pub(crate) mod window_aggregate;
