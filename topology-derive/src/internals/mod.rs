//! Parsing and checking, shared by the expansions.

pub(crate) mod ast;
pub(crate) mod attr;
pub(crate) mod check;
pub(crate) mod ctxt;
pub(crate) mod processor;
pub(crate) mod symbol;
