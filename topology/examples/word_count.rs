//! Word count over stdin (or a built-in sample) on the deterministic test driver, with two partitions per
//! topic so the re-keyed words really cross a repartition topic. Prints the topology, then the counts.
//!
//! `cargo run -p topology --example word_count < some.txt`

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};

use topology::{Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder, TestDriver};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::with(Serdes::unit(), Serdes::string()))
        .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .select_key(|_, word| word.clone())
        .group_by_key(Grouped::as_("words"))
        .count(Materialized::as_("word-counts"))
        .to_stream()
        .to("counts", Produced::with(Serdes::string(), Serdes::optional(Serdes::json::<u64>())));
    let topology = builder.build()?;
    println!("{}", topology.describe());

    let mut text = String::new();
    if !std::io::stdin().is_terminal() {
        std::io::stdin().read_to_string(&mut text)?;
    }
    if text.trim().is_empty() {
        text.push_str("the quick brown fox jumps over the lazy dog\nthe dog sleeps");
    }
    let driver = TestDriver::builder(topology).partitions(2).build()?;
    let lines = driver.input_topic("lines", Serdes::unit(), Serdes::string());
    for (i, line) in text.lines().enumerate() {
        lines.pipe((), line.to_string(), i as i64);
    }
    let mut counts = BTreeMap::new();
    let out = driver.output_topic("counts", Serdes::string(), Serdes::optional(Serdes::json::<u64>()));
    for (word, n) in out.read_key_values() {
        counts.insert(word, n.unwrap_or(0));
    }
    for (word, n) in counts {
        println!("{word}\t{n}");
    }
    Ok(())
}
