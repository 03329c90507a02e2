//! What the lanes write: one feature value per Redis key, and the helpers the metrics share.

use serde::{Deserialize, Serialize};

/// Out-of-orderness bound: a tick is emitted when stream time passes it by this much.
pub const GRACE_MS: i64 = 5_000;
/// Expiry of every feature key.
pub const TTL_S: u64 = 600;

/// A feature write, as on topic `shopper_features` (the key is the Redis key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    pub value: String,
    pub ttl_s: u64,
}

impl Feature {
    /// A value with the standard expiry.
    pub fn new(value: impl Into<String>) -> Self {
        Feature { value: value.into(), ttl_s: TTL_S }
    }
}

/// Two decimals, as every ratio and amount is written.
pub fn decimal2(x: f64) -> String {
    let rounded = (x * 100.0).round() / 100.0;
    // -0.00 reads badly
    format!("{:.2}", if rounded == 0.0 { 0.0 } else { rounded })
}

/// The device class of a user agent (Desktop, Mobile, Tablet, Appliance, Robot, Unknown), through
/// woothee's category and OS.
pub fn device_class(useragent: &str) -> &'static str {
    static PARSER: std::sync::OnceLock<woothee::parser::Parser> = std::sync::OnceLock::new();
    let Some(ua) = PARSER.get_or_init(woothee::parser::Parser::new).parse(useragent) else { return "Unknown" };
    match ua.category {
        "pc" => "Desktop",
        // woothee has no tablet category: iPads, and Android devices that do not say "Mobile".
        "smartphone" if ua.os == "iPad" || (ua.os == "Android" && !useragent.contains("Mobile")) => "Tablet",
        "smartphone" | "mobilephone" => "Mobile",
        "appliance" => "Appliance",
        "crawler" => "Robot",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_classes_of_common_user_agents() {
        let cases = [
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36", "Desktop"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36 Edg/133.0.0.0", "Desktop"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Mobile"),
            ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Tablet"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36", "Mobile"),
            ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36", "Tablet"),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Robot"),
            ("curl-ish nonsense", "Unknown"),
        ];
        for (ua, class) in cases {
            assert_eq!(device_class(ua), class, "{ua}");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal2(0.0), "0.00");
        assert_eq!(decimal2(42.989), "42.99");
        assert_eq!(decimal2(-0.001), "0.00");
        assert_eq!(decimal2(1.0 / 3.0), "0.33");
    }
}
