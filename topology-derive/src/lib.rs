//! Derive macros for the `topology` crate. Users read their documentation on the re-exports there:
//! `topology::Record` and `topology::Aggregate`.
//!
//! Each entry point parses, hands off to `expand`, and turns errors into `compile_error!`s that point
//! at the offending tokens; every mistake of an item is reported at once.

mod expand;
mod internals;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput, ItemFn};

/// Binds a struct to a topic and generates `topology::TopicRecord`.
///
/// - `#[record(topic = "...")]` names the topic (required); `format = "json"` is the default wire format.
/// - `#[key]` on one field makes it the key; on several, the key is a tuple of them (in field order); with
///   none the key is `()`. Keys are strings or integers on the wire.
/// - `#[timestamp]` on at most one field gives the event time: integers are epoch ms, strings may be epoch
///   ms, RFC 3339 or `YYYY-MM-DD HH:MM:SS.fff` (UTC). Without it the record's own timestamp is used.
///
/// Derive `Clone`, `serde::Serialize` and `serde::Deserialize` alongside. A record whose timestamp does
/// not parse goes to the dead-letter topic.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use topology::{Produced, Record, Serdes, StreamsBuilder, TestDriver};
///
/// #[derive(Record, Clone, Serialize, Deserialize)]
/// #[record(topic = "clicks")]
/// struct Click {
///     #[key]
///     user_id: i64,
///     url: String,
///     #[timestamp]
///     datetime_occured: String,
/// }
///
/// let mut builder = StreamsBuilder::new();
/// builder.stream_of::<Click>().map_values(|c| c.url).to("urls", Produced::with(Serdes::i64(), Serdes::string()));
/// let driver = TestDriver::new(builder.build().unwrap());
/// let json = r#"{"user_id": 7, "url": "/a", "datetime_occured": "2024-01-01 00:00:01.000"}"#;
/// driver.input_topic("clicks", Serdes::string(), Serdes::string()).pipe("7".into(), json.into(), 0);
/// let out = driver.output_topic("urls", Serdes::i64(), Serdes::string()).read_records();
/// assert_eq!((out[0].key, out[0].timestamp), (7, 1_704_067_201_000));
/// ```
#[proc_macro_derive(Record, attributes(record, key, timestamp))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::record::derive(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Declares an aggregate over an input type and generates `topology::Aggregator` (add, merge) and,
/// when every field allows it, `topology::Subtractable`.
///
/// `#[aggregate(input = Type)]` on the struct; one of these on every field (`src` is a field of the input):
///
/// | attribute | field type | subtractable |
/// |---|---|---|
/// | `count` | an integer | yes |
/// | `sum = src` | the numeric type of `src` | yes |
/// | `min = src`, `max = src` | `Option<T>` | no |
/// | `mean = src` | `topology::agg::Mean` (numerically stable) | yes |
/// | `count_distinct = src` | `topology::agg::Distinct<T>` (exact: keeps each distinct value) | no |
/// | `first = src`, `last = src` | `topology::agg::First<T>` / `Last<T>`, by event time | no |
/// | `custom = add_fn, merge = merge_fn` | any `T`; `add_fn(&mut T, &Input, i64)`, `merge_fn(&mut T, T)` | no |
///
/// Derive `Default`, `Clone`, `serde::Serialize` and `serde::Deserialize` alongside, then use
/// `aggregate_into::<YourType>(...)` on a grouped, windowed or session-windowed stream.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use topology::agg::Mean;
/// use topology::{Aggregate, Aggregator};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Order { amount: f64 }
///
/// #[derive(Aggregate, Clone, Default, Serialize, Deserialize)]
/// #[aggregate(input = Order)]
/// struct OrderStats {
///     #[aggregate(count)]
///     orders: u64,
///     #[aggregate(max = amount)]
///     largest: Option<f64>,
///     #[aggregate(mean = amount)]
///     average: Mean,
/// }
///
/// let mut stats = OrderStats::default();
/// stats.add(&Order { amount: 10.0 }, 0);
/// stats.add(&Order { amount: 30.0 }, 1);
/// assert_eq!((stats.orders, stats.largest, stats.average.value()), (2, Some(30.0), Some(20.0)));
/// ```
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::aggregate::derive(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Turns a function into a processor that declares its stores and punctuations.
///
/// The function takes `(ctx: &mut ProcessorContext<'_, KOut, VOut>, stores: &NameStores, record: Record<K, V>)`;
/// the macro keeps it and adds `struct Name` (the processor, `Name` = the function's name in
/// UpperCamelCase), `struct NameStores` with one typed handle per declared store, and the impls that
/// [`KStream::process_declared`] uses to add the stores to the topology. Using a store that was not
/// declared is a compile error at the use. Stores are named `<fn-name>-<store>`.
///
/// - `stores(name: key_value<K, V>, name: window<K, V>(retention_ms = N), name: session<K, V>(retention_ms = N))`
///   (`N`: any `i64` expression, e.g. a constant)
/// - `punctuate(stream_time = <ms> | wall_clock = <ms>, call = f)` with `f(ctx, stores, Punctuation)`
///
/// ```
/// use topology::{processor, Consumed, Named, ProcessorContext, Produced, Punctuation, Record, Serdes, StreamsBuilder, TestDriver};
///
/// /// Forwards the first record of every key, drops repeats.
/// #[processor(stores(seen: key_value<String, i64>))]
/// fn first_only(ctx: &mut ProcessorContext<'_, String, String>, stores: &FirstOnlyStores, record: Record<String, String>) {
///     if stores.seen.borrow().get(&record.key).is_none() {
///         stores.seen.borrow_mut().put(&record.key, record.timestamp);
///         ctx.forward(record);
///     }
/// }
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream("in", Consumed::with(Serdes::string(), Serdes::string()))
///     .process_declared::<FirstOnly>(Named::as_("first-only"))
///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
/// let driver = TestDriver::new(builder.build().unwrap());
/// let input = driver.input_topic("in", Serdes::string(), Serdes::string());
/// input.pipe("a".into(), "1".into(), 0);
/// input.pipe("a".into(), "2".into(), 1);
/// assert_eq!(driver.output_topic("out", Serdes::string(), Serdes::string()).read_values(), vec!["1"]);
/// ```
///
/// [`KStream::process_declared`]: https://docs.rs/topology
#[proc_macro_attribute]
pub fn processor(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as ItemFn);
    expand::processor::expand(args.into(), item).into()
}

/// Names an application and generates `NameApp: topology::Application` (its id and topology) from a
/// function that declares the topology, so an app's `main.rs` is a line or two.
///
/// ```
/// use topology::{topology, Application, Consumed, Produced, Serdes, StreamsBuilder};
///
/// #[topology(application_id = "uppercase")]
/// fn uppercase(builder: &mut StreamsBuilder) {
///     builder
///         .stream("in", Consumed::with(Serdes::string(), Serdes::string()))
///         .map_values(|v| v.to_uppercase())
///         .to("out", Produced::with(Serdes::string(), Serdes::string()));
/// }
///
/// assert_eq!(UppercaseApp::ID, "uppercase");
/// assert!(UppercaseApp::topology().unwrap().describe().to_string().contains("(topic: out)"));
/// ```
#[proc_macro_attribute]
pub fn topology(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as ItemFn);
    expand::topology::expand(args.into(), item).into()
}
