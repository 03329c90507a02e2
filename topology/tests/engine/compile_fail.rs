/// Key or value types that do not line up in a join, an aggregation or a sink are compile errors.
#[test]
fn mistyped_joins_aggregations_and_sinks_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
