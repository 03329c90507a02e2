//! Engine tests on the test driver: every operator, event time, windows, joins, bad input, describe.

mod app;
mod bad_input;
mod broker;
mod compile_fail;
mod crash;
mod describe;
mod embedded;
mod joins;
mod kafka;
mod processor;
mod redis;
mod state;
mod stateless;
mod tables;
mod windows;

use topology::{SerdeRef, Serdes};

pub(crate) fn s() -> SerdeRef<String> {
    Serdes::string()
}

pub(crate) fn i() -> SerdeRef<i64> {
    Serdes::i64()
}

pub(crate) fn json<T: serde::Serialize + serde::de::DeserializeOwned + 'static>() -> SerdeRef<T> {
    Serdes::json()
}
