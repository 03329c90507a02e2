//! Snowplow enriched events: the 131-field tab-separated lines Snowplow Enrich writes, turned into the
//! JSON object the Snowplow analytics SDKs produce (the Go SDK's `ToJson`, which Snowbridge's
//! `spEnrichedToJson` uses): empty fields left out, numbers, booleans and timestamps typed, and the
//! self-describing JSON of `contexts`, `derived_contexts` and `unstruct_event` shredded into one key per
//! schema (`contexts_<vendor>_<name>_<major>`: an array of the entities' data;
//! `unstruct_event_<vendor>_<name>_<major>`: the event's data). A reusable module: it knows nothing of
//! the shopper features.

use serde_json::{Map, Value};

/// The fields, in order (the Go SDK's names: field 121 is `refr_device_tstamp`).
pub const FIELDS: [&str; 131] = [
    "app_id",
    "platform",
    "etl_tstamp",
    "collector_tstamp",
    "dvce_created_tstamp",
    "event",
    "event_id",
    "txn_id",
    "name_tracker",
    "v_tracker",
    "v_collector",
    "v_etl",
    "user_id",
    "user_ipaddress",
    "user_fingerprint",
    "domain_userid",
    "domain_sessionidx",
    "network_userid",
    "geo_country",
    "geo_region",
    "geo_city",
    "geo_zipcode",
    "geo_latitude",
    "geo_longitude",
    "geo_region_name",
    "ip_isp",
    "ip_organization",
    "ip_domain",
    "ip_netspeed",
    "page_url",
    "page_title",
    "page_referrer",
    "page_urlscheme",
    "page_urlhost",
    "page_urlport",
    "page_urlpath",
    "page_urlquery",
    "page_urlfragment",
    "refr_urlscheme",
    "refr_urlhost",
    "refr_urlport",
    "refr_urlpath",
    "refr_urlquery",
    "refr_urlfragment",
    "refr_medium",
    "refr_source",
    "refr_term",
    "mkt_medium",
    "mkt_source",
    "mkt_term",
    "mkt_content",
    "mkt_campaign",
    "contexts",
    "se_category",
    "se_action",
    "se_label",
    "se_property",
    "se_value",
    "unstruct_event",
    "tr_orderid",
    "tr_affiliation",
    "tr_total",
    "tr_tax",
    "tr_shipping",
    "tr_city",
    "tr_state",
    "tr_country",
    "ti_orderid",
    "ti_sku",
    "ti_name",
    "ti_category",
    "ti_price",
    "ti_quantity",
    "pp_xoffset_min",
    "pp_xoffset_max",
    "pp_yoffset_min",
    "pp_yoffset_max",
    "useragent",
    "br_name",
    "br_family",
    "br_version",
    "br_type",
    "br_renderengine",
    "br_lang",
    "br_features_pdf",
    "br_features_flash",
    "br_features_java",
    "br_features_director",
    "br_features_quicktime",
    "br_features_realplayer",
    "br_features_windowsmedia",
    "br_features_gears",
    "br_features_silverlight",
    "br_cookies",
    "br_colordepth",
    "br_viewwidth",
    "br_viewheight",
    "os_name",
    "os_family",
    "os_manufacturer",
    "os_timezone",
    "dvce_type",
    "dvce_ismobile",
    "dvce_screenwidth",
    "dvce_screenheight",
    "doc_charset",
    "doc_width",
    "doc_height",
    "tr_currency",
    "tr_total_base",
    "tr_tax_base",
    "tr_shipping_base",
    "ti_currency",
    "ti_price_base",
    "base_currency",
    "geo_timezone",
    "mkt_clickid",
    "mkt_network",
    "etl_tags",
    "dvce_sent_tstamp",
    "refr_domain_userid",
    "refr_device_tstamp",
    "derived_contexts",
    "domain_sessionid",
    "derived_tstamp",
    "event_vendor",
    "event_name",
    "event_format",
    "event_version",
    "event_fingerprint",
    "true_tstamp",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Float,
    Bool,
    Timestamp,
    Contexts,
    Unstruct,
}

fn kind(i: usize) -> Kind {
    match FIELDS[i] {
        "txn_id" | "domain_sessionidx" | "page_urlport" | "refr_urlport" | "ti_quantity" | "pp_xoffset_min"
        | "pp_xoffset_max" | "pp_yoffset_min" | "pp_yoffset_max" | "br_viewwidth" | "br_viewheight"
        | "dvce_screenwidth" | "dvce_screenheight" | "doc_width" | "doc_height" => Kind::Int,
        "geo_latitude" | "geo_longitude" | "se_value" | "tr_total" | "tr_tax" | "tr_shipping" | "ti_price"
        | "tr_total_base" | "tr_tax_base" | "tr_shipping_base" | "ti_price_base" => Kind::Float,
        "br_cookies" | "dvce_ismobile" => Kind::Bool,
        f if f.starts_with("br_features_") => Kind::Bool,
        f if f.ends_with("_tstamp") => Kind::Timestamp,
        "contexts" | "derived_contexts" => Kind::Contexts,
        "unstruct_event" => Kind::Unstruct,
        _ => Kind::Text,
    }
}

/// Why a line is not an enriched event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrichedError {
    /// Not 131 tab-separated fields.
    #[error("expected 131 tab-separated fields, found {0}")]
    FieldCount(usize),
    /// A field that cannot be read as its type.
    #[error("field `{field}`: {message}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn bad(i: usize, message: impl Into<String>) -> EnrichedError {
    EnrichedError::Field { field: FIELDS[i], message: message.into() }
}

/// Options of [`to_json`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Add `geo_location` ("lat,lon") as the Python SDK does (Snowbridge and the Go SDK do not).
    pub geo_location: bool,
}

/// `YYYY-MM-DD HH:MM:SS[.fff]` → `YYYY-MM-DDTHH:MM:SS[.fff]Z`, checked.
fn timestamp(i: usize, v: &str) -> Result<Value, EnrichedError> {
    topology::parse_timestamp(v).map_err(|e| bad(i, e))?;
    Ok(Value::String(format!("{}Z", v.replacen(' ', "T", 1))))
}

/// `com.snowplowanalytics.snowplow` + `PerformanceTiming` + 1 → `com_snowplowanalytics_snowplow_performance_timing_1`.
fn schema_key(i: usize, schema: &str) -> Result<String, EnrichedError> {
    let rest = schema.strip_prefix("iglu:").ok_or_else(|| bad(i, format!("schema `{schema}` is not an iglu URI")))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [vendor, name, _format, version] = parts[..] else {
        return Err(bad(i, format!("schema `{schema}` is not vendor/name/format/version")));
    };
    let major = version.split('-').next().unwrap_or_default();
    let mut snake = String::new();
    for (n, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if n > 0 && !snake.ends_with('_') {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    Ok(format!("{}_{}_{}", vendor.replace(['.', '-'], "_").to_lowercase(), snake.replace('-', "_"), major))
}

/// The `{"schema", "data"}` pairs inside a self-describing wrapper.
fn self_describing(i: usize, v: &Value) -> Result<(&str, &Value), EnrichedError> {
    let schema =
        v.get("schema").and_then(Value::as_str).ok_or_else(|| bad(i, "self-describing JSON without `schema`"))?;
    let data = v.get("data").ok_or_else(|| bad(i, "self-describing JSON without `data`"))?;
    Ok((schema, data))
}

/// The SDK JSON of one enriched line (a trailing newline is ignored).
pub fn to_json(line: &str, options: JsonOptions) -> Result<Map<String, Value>, EnrichedError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != FIELDS.len() {
        return Err(EnrichedError::FieldCount(fields.len()));
    }
    let mut out = Map::new();
    for (i, v) in fields.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let name = FIELDS[i].to_string();
        match kind(i) {
            Kind::Text => {
                out.insert(name, Value::String(v.to_string()));
            }
            Kind::Int => {
                let n: i64 = v.parse().map_err(|_| bad(i, format!("`{v}` is not an integer")))?;
                out.insert(name, n.into());
            }
            Kind::Float => {
                let x: f64 = v.parse().map_err(|_| bad(i, format!("`{v}` is not a number")))?;
                let n = serde_json::Number::from_f64(x).ok_or_else(|| bad(i, format!("`{v}` is not finite")))?;
                out.insert(name, Value::Number(n));
            }
            Kind::Bool => {
                let b = match *v {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(bad(i, format!("`{v}` is not a boolean"))),
                };
                out.insert(name, b.into());
            }
            Kind::Timestamp => {
                out.insert(name, timestamp(i, v)?);
            }
            Kind::Contexts => {
                let wrapper: Value = serde_json::from_str(v).map_err(|e| bad(i, format!("not JSON: {e}")))?;
                let (_, items) = self_describing(i, &wrapper)?;
                let items = items.as_array().ok_or_else(|| bad(i, "`data` is not an array"))?;
                for item in items {
                    let (schema, data) = self_describing(i, item)?;
                    let key = format!("contexts_{}", schema_key(i, schema)?);
                    match out.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
                        Value::Array(a) => a.push(data.clone()),
                        _ => return Err(bad(i, "a context key clashes with a field")),
                    }
                }
            }
            Kind::Unstruct => {
                let wrapper: Value = serde_json::from_str(v).map_err(|e| bad(i, format!("not JSON: {e}")))?;
                let (_, inner) = self_describing(i, &wrapper)?;
                let (schema, data) = self_describing(i, inner)?;
                out.insert(format!("unstruct_event_{}", schema_key(i, schema)?), data.clone());
            }
        }
    }
    if options.geo_location {
        if let (Some(lat), Some(lon)) = (out.get("geo_latitude"), out.get("geo_longitude")) {
            let location = format!("{lat},{lon}");
            out.insert("geo_location".into(), Value::String(location));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn the_field_list_is_the_header_line() {
        let header = fixture("header.tsv");
        let names: Vec<&str> = header.trim_end().split('\t').collect();
        assert_eq!(names, FIELDS.to_vec());
    }

    #[test]
    fn the_go_sdk_event_gives_the_go_sdks_json() {
        let got = to_json(&fixture("go-sdk-full-event.tsv"), JsonOptions::default()).unwrap();
        let want: Map<String, Value> = serde_json::from_str(&fixture("go-sdk-full-event.expected.json")).unwrap();
        assert_eq!(Value::Object(got), Value::Object(want));
    }

    #[test]
    fn the_python_sdk_event_gives_the_python_sdks_json_with_its_geo_location() {
        let line = fixture("python-sdk-full-event.tsv");
        let got = to_json(&line, JsonOptions { geo_location: true }).unwrap();
        let want: Map<String, Value> = serde_json::from_str(&fixture("python-sdk-full-event.expected.json")).unwrap();
        assert_eq!(Value::Object(got), Value::Object(want));
    }

    #[test]
    fn every_micro_line_parses_with_its_unstruct_event_and_contexts() {
        let text = fixture("micro-media-events.tsv");
        let events: Vec<Map<String, Value>> =
            text.lines().map(|l| to_json(l, JsonOptions::default()).unwrap()).collect();
        assert_eq!(events.len(), 73);
        let count = |e: &str| events.iter().filter(|v| v["event"] == e).count();
        assert_eq!((count("page_view"), count("page_ping"), count("unstruct")), (2, 24, 47));
        for e in events.iter().filter(|v| v["event"] == "unstruct") {
            assert!(e.keys().any(|k| k.starts_with("unstruct_event_")), "{e:?}");
        }
        assert!(events.iter().all(|e| e.keys().any(|k| k.starts_with("contexts_"))));
        assert!(events.iter().all(|e| e["collector_tstamp"].as_str().unwrap().ends_with('Z')));
    }

    #[test]
    fn bad_lines_are_clear_errors() {
        assert_eq!(to_json("a\tb", JsonOptions::default()), Err(EnrichedError::FieldCount(2)));
        let good = fixture("go-sdk-full-event.tsv");
        let mut fields: Vec<String> = good.trim_end_matches('\n').split('\t').map(str::to_string).collect();
        fields[7] = "x".into();
        let err = to_json(&fields.join("\t"), JsonOptions::default()).unwrap_err().to_string();
        assert_eq!(err, "field `txn_id`: `x` is not an integer");
        fields[7] = "1".into();
        fields[3] = "yesterday".into();
        assert!(to_json(&fields.join("\t"), JsonOptions::default())
            .unwrap_err()
            .to_string()
            .starts_with("field `collector_tstamp`"));
        fields[3] = "2013-11-26 00:03:57.885".into();
        fields[52] = "{not json".into();
        assert!(to_json(&fields.join("\t"), JsonOptions::default())
            .unwrap_err()
            .to_string()
            .starts_with("field `contexts`: not JSON"));
    }
}
