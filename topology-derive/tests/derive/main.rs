//! The derive macros: behaviour through the test driver, and compile errors (trybuild).

mod aggregate;
mod record;

/// Each file under `tests/ui/<macro>/` is one mistake; its `.stderr` is the expected error.
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/record/*.rs");
    t.compile_fail("tests/ui/aggregate/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
