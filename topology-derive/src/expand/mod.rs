//! Code generation, one file per macro. Generated impls go inside `const _: () = { ... };`.

pub(crate) mod aggregate;
pub(crate) mod processor;
pub(crate) mod record;
pub(crate) mod topology;
