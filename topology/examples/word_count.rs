//! Word count as an application on the shared app runner (embedded runtime by default).
//!
//! ```text
//! cargo run -p topology --example word_count -- run --state-dir "$(mktemp -d)" \
//!     --input lines=topology/examples/lines.txt --output word-counts=-
//! cargo run -p topology --example word_count -- describe --format mermaid
//! ```

use topology::{topology, Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder};

/// Lines (keyless, one per input line) → lower-case words → a count per word.
#[topology(application_id = "word-count")]
fn word_count(builder: &mut StreamsBuilder) {
    builder
        .stream("lines", Consumed::with(Serdes::unit(), Serdes::string()))
        .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .select_key(|_, word| word.clone())
        .group_by_key(Grouped::as_("words"))
        .count(Materialized::as_("word-counts"))
        .to_stream()
        .to("word-counts", Produced::with(Serdes::string(), Serdes::optional(Serdes::json::<u64>())));
}

fn main() -> std::process::ExitCode {
    topology::app::main::<WordCountApp>()
}
