//! `attribution gen`: users, clicks and checkouts shaped like the original pipeline's generator —
//! users click products, and some of those clicks are followed (minutes later) by a checkout of the same
//! product — so the whole app can be run on files with one command.

use std::io::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Checkout, Click, User};

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenConfig {
    /// Random seed: the same seed gives the same files.
    pub seed: u64,
    /// Number of users.
    pub users: u32,
    /// Number of clicks.
    pub clicks: u32,
    /// Probability that a click is followed by a checkout of the same product.
    pub checkout_ratio: f64,
    /// Event time of the first click, epoch ms.
    pub start_ms: i64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig { seed: 1, users: 100, clicks: 10_000, checkout_ratio: 0.3, start_ms: 1_700_000_000_000 }
    }
}

const PRODUCTS: &[(&str, f64)] = &[
    ("Laptop", 1299.0),
    ("Headphones", 199.0),
    ("Coffee Maker", 89.5),
    ("Running Shoes", 120.0),
    ("Backpack", 59.9),
    ("Smartphone", 899.0),
    ("Desk Lamp", 34.0),
    ("Water Bottle", 19.5),
];
const PAYMENTS: &[&str] = &["credit_card", "debit_card", "paypal", "gift_card"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1 Safari/605.1.15",
];

/// `YYYY-MM-DD HH:MM:SS.fff` in UTC, the original pipeline's `datetime_occured` format.
pub fn format_time(ms: i64) -> String {
    topology::format_timestamp(ms).replacen('T', " ", 1).trim_end_matches('Z').to_string()
}

/// The three files' lines: (users, clicks, checkouts), each in event-time order.
pub fn generate(cfg: &GenConfig) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let users: Vec<String> = (1..=cfg.users)
        .map(|id| serde_json::to_string(&User { id: i64::from(id), username: Some(format!("user_{id}")) }).unwrap())
        .collect();
    let mut clicks = Vec::new();
    let mut checkouts: Vec<(i64, String)> = Vec::new();
    let mut t = cfg.start_ms;
    for n in 0..cfg.clicks {
        t += rng.random_range(10..400);
        let user_id = i64::from(rng.random_range(1..=cfg.users));
        let (product, price) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
        let product_id = format!("p{}", PRODUCTS.iter().position(|(p, _)| *p == product).unwrap_or(0));
        let agent = AGENTS[rng.random_range(0..AGENTS.len())].to_string();
        let ip = format!("10.0.{}.{}", user_id % 250, rng.random_range(1..250));
        let click = Click {
            click_id: format!("click-{n:07}"),
            user_id,
            product_id: product_id.clone(),
            product: product.to_string(),
            price,
            url: format!("https://shop.example/products/{product_id}"),
            user_agent: agent.clone(),
            ip_address: ip.clone(),
            datetime_occured: format_time(t),
        };
        clicks.push(serde_json::to_string(&click).unwrap());
        if rng.random_bool(cfg.checkout_ratio) {
            let at = t + rng.random_range(1_000..1_800_000);
            let checkout = Checkout {
                checkout_id: format!("checkout-{n:07}"),
                user_id,
                product_id,
                payment_method: PAYMENTS[rng.random_range(0..PAYMENTS.len())].to_string(),
                total_amount: price,
                shipping_address: format!("{} Main St", user_id * 3),
                billing_address: format!("{} Main St", user_id * 3),
                user_agent: agent,
                ip_address: ip,
                datetime_occured: format_time(at),
            };
            checkouts.push((at, serde_json::to_string(&checkout).unwrap()));
        }
    }
    checkouts.sort_by_key(|(at, _)| *at);
    (users, clicks, checkouts.into_iter().map(|(_, l)| l).collect())
}

/// Writes `users.jsonl`, `clicks.jsonl` and `checkouts.jsonl` into `dir`.
pub fn write_files(cfg: &GenConfig, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let (users, clicks, checkouts) = generate(cfg);
    for (name, lines) in [("users", users), ("clicks", clicks), ("checkouts", checkouts)] {
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(format!("{name}.jsonl")))?);
        for l in lines {
            writeln!(f, "{l}")?;
        }
        f.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_like_the_original_and_parse_back() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_time(1_704_067_323_456), "2024-01-01 00:02:03.456");
        let t = 1_700_000_123_789;
        assert_eq!(topology::parse_timestamp(&format_time(t)), Ok(t));
    }

    #[test]
    fn the_same_seed_gives_the_same_files_and_checkouts_follow_clicks() {
        let cfg = GenConfig { clicks: 500, ..Default::default() };
        let a = generate(&cfg);
        assert_eq!(a, generate(&cfg));
        assert_ne!(a.1, generate(&GenConfig { seed: 2, ..cfg }).1);
        assert!(a.2.len() > 100 && a.2.len() < 250, "{} checkouts", a.2.len());
        let clicks: Vec<Click> = a.1.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        for line in &a.2 {
            let c: Checkout = serde_json::from_str(line).unwrap();
            let t = topology::parse_timestamp(&c.datetime_occured).unwrap();
            assert!(clicks.iter().any(|k| k.user_id == c.user_id
                && k.product_id == c.product_id
                && topology::parse_timestamp(&k.datetime_occured).unwrap() <= t));
        }
    }
}
