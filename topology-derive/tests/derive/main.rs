//! The derive macros: behaviour through the test driver, and compile errors (trybuild).

mod aggregate;
mod processor;
mod record;

/// Each file under `tests/ui/<macro>/` is one mistake; its `.stderr` is the expected error.
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/record/*.rs");
    t.compile_fail("tests/ui/aggregate/*.rs");
    t.compile_fail("tests/ui/processor/*.rs");
    t.compile_fail("tests/ui/topology/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
