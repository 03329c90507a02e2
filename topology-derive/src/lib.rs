//! Derive macros for the `topology` crate. Users read their documentation on the re-exports there:
//! `topology::Record` and `topology::Aggregate`.
//!
//! Each entry point parses, hands off to `expand`, and turns errors into `compile_error!`s that point
//! at the offending tokens; every mistake of an item is reported at once.

mod expand;
mod internals;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

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
