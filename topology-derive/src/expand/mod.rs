//! Code generation, one file per macro. Generated impls go inside `const _: () = { ... };`.

pub(crate) mod aggregate;
pub(crate) mod record;
