//! One shopper event, whichever format it came in: a Snowplow enriched TSV line (through
//! [`crate::enriched`]) or the accelerator's transformed JSON document. Detected per record.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::enriched::{self, JsonOptions};

/// A product entity (iglu `com.snowplowanalytics.snowplow.ecommerce/product`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: Option<String>,
    pub category: Option<String>,
    pub price: f64,
    pub currency: Option<String>,
}

/// A cart entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    pub total_value: f64,
    pub currency: Option<String>,
}

/// What the lanes need of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShopperEvent {
    pub event_id: String,
    /// `page_view`, the ecommerce action's `type` (`product_view`, `add_to_cart`, …), else the raw event.
    pub event_type: String,
    /// Event time, epoch ms: derived_tstamp, else collector_tstamp.
    pub time: i64,
    /// user_id, else domain_userid.
    pub user_key: String,
    /// The client_session entity's sessionId, else domain_sessionid.
    pub session_key: String,
    pub products: Vec<Product>,
    pub cart: Option<Cart>,
    pub checkout_step: Option<i64>,
    /// The list name of a list_view.
    pub list_name: Option<String>,
    pub page_url: Option<String>,
    pub useragent: Option<String>,
    pub platform: Option<String>,
    pub mkt_campaign: Option<String>,
    /// The event carried marketing fields (campaign, source or medium).
    pub has_marketing: bool,
}

impl ShopperEvent {
    /// Checks that the event has what its lanes need: a user key; a product for product views and cart
    /// events, a cart for cart events, the step of a checkout_step, the name of a list_view, and a
    /// session key for the session lane's events.
    pub fn check(&self) -> Result<(), EventError> {
        let missing = |what: &str| Err(EventError::Missing(format!("{} without {what}", self.event_type)));
        if self.user_key.is_empty() {
            return missing("user_id or domain_userid");
        }
        let t = self.event_type.as_str();
        if matches!(t, "product_view" | "add_to_cart" | "remove_from_cart") && self.products.is_empty() {
            return missing("a product entity");
        }
        if matches!(t, "add_to_cart" | "remove_from_cart") && self.cart.is_none() {
            return missing("a cart entity");
        }
        if t == "checkout_step" && self.checkout_step.is_none() {
            return missing("a checkout_step entity");
        }
        if t == "list_view" && self.list_name.is_none() {
            return missing("a list name");
        }
        if crate::lanes::in_session_lane(self) && self.session_key.is_empty() {
            return missing("a client_session entity or domain_sessionid");
        }
        Ok(())
    }
}

/// Why a record is not a shopper event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A TSV line that is not an enriched event.
    #[error("enriched TSV: {0}")]
    Tsv(#[from] enriched::EnrichedError),
    /// Neither TSV nor a JSON object.
    #[error("neither an enriched TSV line nor a JSON document: {0}")]
    Format(String),
    /// A required part is missing or malformed.
    #[error("{0}")]
    Missing(String),
    /// An event time that cannot be true.
    #[error("{0}")]
    Time(String),
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

fn time_of(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_str).and_then(|s| topology::parse_timestamp(s).ok())
}

/// How far an event's own time may run ahead of the collector's clock, ms: Snowplow derives it from
/// collector time minus the device's send delay, so only a broken device clock puts it later.
const AHEAD_OF_COLLECTOR_MS: i64 = 60_000;
/// How far past the wall clock an event time may be, ms. One record from a device clock years ahead
/// would move stream time on and make every later event late, so it is refused instead.
const AHEAD_OF_NOW_MS: i64 = 24 * 3_600_000;

/// The event time: the event's own (derived_tstamp, the accelerator's `timestamp`) unless it is ahead
/// of the collector's, then the collector's; never more than a day past the wall clock.
fn event_time(own: Option<i64>, collector: Option<i64>, now: i64) -> Result<i64, EventError> {
    let time = match (own, collector) {
        (Some(t), Some(c)) if t > c + AHEAD_OF_COLLECTOR_MS => c,
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => {
            return Err(EventError::Missing("no event time (derived_tstamp, timestamp or collector_tstamp)".into()))
        }
    };
    if time > now + AHEAD_OF_NOW_MS {
        return Err(EventError::Time(format!(
            "event time {} is more than a day ahead of the wall clock ({})",
            topology::format_timestamp(time),
            topology::format_timestamp(now)
        )));
    }
    Ok(time)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn product(v: &Value) -> Option<Product> {
    let id = match v.get("id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(Product {
        id,
        name: text(v.get("name")),
        category: text(v.get("category")),
        price: v.get("price")?.as_f64()?,
        currency: text(v.get("currency")),
    })
}

fn cart(v: &Value) -> Option<Cart> {
    Some(Cart { total_value: v.get("total_value")?.as_f64()?, currency: text(v.get("currency")) })
}

/// Parses one record: a tab in it means TSV, a leading `{` JSON.
pub fn parse(record: &str) -> Result<ShopperEvent, EventError> {
    let trimmed = record.trim_end_matches(['\n', '\r']);
    if trimmed.contains('\t') {
        from_enriched(&enriched::to_json(trimmed, JsonOptions::default())?)
    } else if trimmed.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(trimmed).map_err(|e| EventError::Format(e.to_string()))?;
        from_accelerator(&v)
    } else {
        Err(EventError::Format(format!("`{}`", trimmed.chars().take(40).collect::<String>())))
    }
}

const ECOM: &str = "com_snowplowanalytics_snowplow_ecommerce";

/// From the SDK JSON of an enriched event.
pub fn from_enriched(e: &Map<String, Value>) -> Result<ShopperEvent, EventError> {
    let event = text(e.get("event")).ok_or_else(|| EventError::Missing("no `event`".into()))?;
    let action = e.get(&format!("unstruct_event_{ECOM}_snowplow_ecommerce_action_1"));
    let event_type = if event == "page_view" {
        event
    } else if let Some(t) = action.and_then(|a| text(a.get("type"))) {
        t
    } else {
        text(e.get("event_name")).unwrap_or(event)
    };
    let time = event_time(time_of(e.get("derived_tstamp")), time_of(e.get("collector_tstamp")), now_ms())?;
    let user_key = text(e.get("user_id")).or_else(|| text(e.get("domain_userid"))).unwrap_or_default();
    let entity = |name: &str| e.get(&format!("contexts_{ECOM}_{name}_1")).and_then(Value::as_array);
    let session = e
        .get("contexts_com_snowplowanalytics_snowplow_client_session_1")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|s| text(s.get("sessionId")));
    Ok(ShopperEvent {
        event_id: text(e.get("event_id")).unwrap_or_default(),
        list_name: if event_type == "list_view" { action.and_then(|a| text(a.get("name"))) } else { None },
        event_type,
        time,
        user_key,
        session_key: session.or_else(|| text(e.get("domain_sessionid"))).unwrap_or_default(),
        products: entity("product").map(|a| a.iter().filter_map(product).collect()).unwrap_or_default(),
        cart: entity("cart").and_then(|a| a.first()).and_then(cart),
        checkout_step: entity("checkout_step").and_then(|a| a.first()).and_then(|c| c.get("step")?.as_i64()),
        page_url: text(e.get("page_url")),
        useragent: text(e.get("useragent")),
        platform: text(e.get("platform")),
        mkt_campaign: text(e.get("mkt_campaign")),
        has_marketing: ["mkt_campaign", "mkt_source", "mkt_medium"].iter().any(|f| text(e.get(*f)).is_some()),
    })
}

/// From the accelerator's transformed JSON (`{id, type, timestamp, payload, enrich, session, metadata}`).
pub fn from_accelerator(v: &Value) -> Result<ShopperEvent, EventError> {
    let event_type = text(v.get("type")).ok_or_else(|| EventError::Missing("no `type`".into()))?;
    let metadata = v.get("metadata");
    let collector = time_of(metadata.and_then(|m| m.get("collector_tstamp")));
    let time = event_time(time_of(v.get("timestamp")), collector, now_ms())?;
    let enrich = v.get("enrich");
    let user = enrich.and_then(|e| e.get("user"));
    let user_key = text(user.and_then(|u| u.get("user_id")))
        .or_else(|| text(user.and_then(|u| u.get("domain_userid"))))
        .unwrap_or_default();
    let payload = v.get("payload");
    let mut products: Vec<Product> = payload.and_then(|p| p.get("product")).and_then(product).into_iter().collect();
    if let Some(list) = payload.and_then(|p| p.get("products")).and_then(Value::as_array) {
        products.extend(list.iter().filter_map(product));
    }
    let marketing = enrich.and_then(|e| e.get("marketing")).filter(|m| m.is_object());
    Ok(ShopperEvent {
        event_id: text(v.get("id")).unwrap_or_default(),
        list_name: if event_type == "list_view" { text(payload.and_then(|p| p.get("list_name"))) } else { None },
        event_type,
        time,
        user_key,
        session_key: text(v.get("session").and_then(|s| s.get("sessionId"))).unwrap_or_default(),
        products,
        cart: payload.and_then(|p| p.get("cart")).and_then(cart),
        checkout_step: payload.and_then(|p| p.get("checkout_step")).and_then(|c| c.get("step")?.as_i64()),
        page_url: text(enrich.and_then(|e| e.pointer("/client/page/page_url"))),
        useragent: text(enrich.and_then(|e| e.pointer("/client/useragent"))),
        platform: text(enrich.and_then(|e| e.get("platform"))),
        // The transformer writes the enriched field names (`mkt_campaign`); older ones wrote `campaign`.
        mkt_campaign: text(marketing.and_then(|m| m.get("mkt_campaign").or_else(|| m.get("campaign")))),
        has_marketing: marketing
            .and_then(|m| m.as_object())
            .is_some_and(|m| m.values().any(|v| v.as_str().is_some_and(|s| !s.is_empty()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn the_accelerators_session_reads_as_26_shopper_events_with_the_login_changing_the_user_key() {
        let events: Vec<ShopperEvent> =
            fixture("successful_checkout.jsonl").lines().map(|l| parse(l).unwrap()).collect();
        assert_eq!(events.len(), 26);
        let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
        let counts: Vec<usize> =
            ["list_view", "page_view", "promo_view", "list_click", "product_view", "add_to_cart", "checkout_step"]
                .iter()
                .map(|t| count(t))
                .collect();
        assert_eq!(counts, vec![9, 8, 3, 1, 1, 1, 3]);
        let users: Vec<&str> = events.iter().map(|e| e.user_key.as_str()).collect();
        assert_eq!(users[0], "67430c52-68fb-4277-baeb-b6033403094a", "domain_userid before the login");
        assert_eq!(*users.last().unwrap(), "trent@snowplowanalytics.com", "user_id after it");
        assert!(events.iter().all(|e| e.session_key == events[0].session_key && !e.session_key.is_empty()));
        let view = events.iter().find(|e| e.event_type == "product_view").unwrap();
        assert_eq!(view.products[0].id, "5");
        assert_eq!(view.products[0].price, 42.99);
        assert_eq!(view.products[0].category.as_deref(), Some("Kid shoes"));
        let add = events.iter().find(|e| e.event_type == "add_to_cart").unwrap();
        assert_eq!(add.cart.as_ref().map(|c| c.total_value), Some(0.0));
        let steps: Vec<i64> = events.iter().filter_map(|e| e.checkout_step).collect();
        assert_eq!(*steps.last().unwrap(), 2);
        let list = events.iter().find(|e| e.event_type == "list_view").unwrap();
        assert_eq!(list.list_name.as_deref(), Some("New series"));
        assert!(list.products.is_empty(), "the older transformer's empty product object is no product");
        // Real traffic: about two minutes, and not in event-time order (7 steps back in time).
        let (first, last) =
            (events.iter().map(|e| e.time).min().unwrap(), events.iter().map(|e| e.time).max().unwrap());
        assert_eq!(last - first, 127_419);
        assert_eq!(events.windows(2).filter(|w| w[1].time < w[0].time).count(), 7);
    }

    #[test]
    fn enriched_tsv_lines_read_as_shopper_events() {
        let micro: Vec<ShopperEvent> = fixture("micro-media-events.tsv").lines().map(|l| parse(l).unwrap()).collect();
        assert_eq!(micro.iter().filter(|e| e.event_type == "page_view").count(), 2);
        assert!(micro.iter().all(|e| !e.user_key.is_empty()), "domain_userid when there is no user_id");
        let go = parse(&fixture("go-sdk-full-event.tsv")).unwrap();
        assert_eq!(go.event_type, "page_view");
        assert_eq!(go.user_key, "jon.doe@email.com");
        assert_eq!(go.session_key, "2b15e5c8-d3b1-11e4-b9d6-1681e6b88ec1");
        assert_eq!(go.time, topology::parse_timestamp("2013-11-26T00:03:57.885Z").unwrap());
    }

    #[test]
    fn an_ecommerce_action_in_tsv_takes_its_type_entities_and_session() {
        let mut fields: Vec<String> = vec![String::new(); 131];
        let set = |f: &mut Vec<String>, name: &str, v: &str| {
            let i = crate::enriched::FIELDS.iter().position(|n| *n == name).unwrap();
            f[i] = v.to_string();
        };
        set(&mut fields, "event", "unstruct");
        set(&mut fields, "event_name", "snowplow_ecommerce_action");
        set(&mut fields, "collector_tstamp", "2025-03-26 10:56:46.033");
        set(&mut fields, "domain_userid", "d-1");
        set(&mut fields, "domain_sessionid", "ds-1");
        set(&mut fields, "mkt_campaign", "winter-sale");
        set(
            &mut fields,
            "unstruct_event",
            r#"{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.snowplowanalytics.snowplow.ecommerce/snowplow_ecommerce_action/jsonschema/1-0-2","data":{"type":"add_to_cart"}}}"#,
        );
        set(
            &mut fields,
            "contexts",
            r#"{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[{"schema":"iglu:com.snowplowanalytics.snowplow.ecommerce/product/jsonschema/1-0-0","data":{"id":"p1","category":"Shoes","price":10.5,"currency":"USD"}},{"schema":"iglu:com.snowplowanalytics.snowplow.ecommerce/cart/jsonschema/1-0-0","data":{"total_value":10.5,"currency":"USD"}},{"schema":"iglu:com.snowplowanalytics.snowplow/client_session/jsonschema/1-0-2","data":{"sessionId":"s-9","userId":"d-1","sessionIndex":1,"storageMechanism":"COOKIE_1","previousSessionId":null}}]}"#,
        );
        let e = parse(&fields.join("\t")).unwrap();
        assert_eq!(e.event_type, "add_to_cart");
        assert_eq!((e.user_key.as_str(), e.session_key.as_str()), ("d-1", "s-9"), "client_session wins");
        assert_eq!(e.products[0].id, "p1");
        assert_eq!(e.cart.unwrap().total_value, 10.5);
        assert_eq!((e.mkt_campaign.as_deref(), e.has_marketing), (Some("winter-sale"), true));
    }

    #[test]
    fn an_event_time_ahead_of_the_collector_or_far_in_the_future_is_not_taken() {
        let (t, now) = (1_700_000_000_000, 1_800_000_000_000);
        assert_eq!(event_time(Some(t), Some(t + 5_000), now), Ok(t), "derived is before collector time");
        assert_eq!(event_time(Some(t + 3_600_000), Some(t), now), Ok(t), "a broken device clock: the collector's");
        assert_eq!(event_time(None, Some(t), now), Ok(t));
        let far = event_time(Some(now + 2 * 86_400_000), None, now).unwrap_err().to_string();
        assert!(far.contains("more than a day ahead of the wall clock"), "{far}");
        assert!(matches!(event_time(None, None, now), Err(EventError::Missing(_))));
    }

    #[test]
    fn records_in_neither_format_are_clear_errors() {
        assert!(matches!(parse("hello"), Err(EventError::Format(_))));
        assert!(matches!(parse("{nope"), Err(EventError::Format(_))));
        assert!(matches!(parse("a\tb"), Err(EventError::Tsv(_))));
        assert_eq!(parse(r#"{"id":"x"}"#), Err(EventError::Missing("no `type`".into())));
    }
}
