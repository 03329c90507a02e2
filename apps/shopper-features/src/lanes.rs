//! The four user-keyed lanes: which events each takes, its pane, its metrics, and its processor
//! (declared with `#[processor]`: its stores and the once-a-second stream-time punctuation that
//! closes ticks; the rolling windows themselves are [`Rolling`]).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use topology::{processor, ProcessorContext, Punctuation, Record};

use crate::event::ShopperEvent;
use crate::features::{decimal2, Feature};
use crate::rolling::{pane_retention, Lane, Rolling, RollingWindow, BUFFER_RETENTION, FIVE_MINUTES, ONE_DAY, ONE_HOUR};

/// A lane without memory or reorder buffer over its two stores.
macro_rules! user_lane {
    ($(#[$doc:meta])* $process:ident, $stores:ident, $tick:ident, $lane:ident, $pane:ident) => {
        $(#[$doc])*
        #[processor(
            stores(panes: window<String, $pane>(retention_ms = pane_retention($lane::WINDOWS)), progress: key_value<u8, i64>),
            punctuate(stream_time = 1000, call = $tick)
        )]
        pub fn $process(ctx: &mut ProcessorContext<'_, String, Feature>, stores: &$stores, record: Record<String, ShopperEvent>) {
            stores.rolling().on_event(ctx, record)
        }

        fn $tick(ctx: &mut ProcessorContext<'_, String, Feature>, stores: &$stores, _: Punctuation) {
            stores.rolling().on_tick(ctx)
        }

        impl $stores {
            fn rolling(&self) -> Rolling<'_, $lane> {
                Rolling { panes: &self.panes, progress: &self.progress, buffer: None, memory: None, lane: PhantomData }
            }
        }
    };
}

user_lane!(
    /// The product lane's processor.
    product_lane, ProductLaneStores, product_tick, ProductViews, ProductPane
);
user_lane!(
    /// The category lane's processor.
    category_lane, CategoryLaneStores, category_tick, Categories, CategoryPane
);
user_lane!(
    /// The cart lane's processor.
    cart_lane, CartLaneStores, cart_tick, CartActions, CartPane
);

/// The purchase lane's processor: besides panes and progress, the reorder buffer and each user's
/// latest cart value.
#[processor(
    stores(
        panes: window<String, PurchasePane>(retention_ms = pane_retention(Purchases::WINDOWS)),
        progress: key_value<u8, i64>,
        buffer: window<(String, String), ShopperEvent>(retention_ms = BUFFER_RETENTION),
        memory: key_value<String, Option<f64>>
    ),
    punctuate(stream_time = 1000, call = purchase_tick)
)]
pub fn purchase_lane(
    ctx: &mut ProcessorContext<'_, String, Feature>,
    stores: &PurchaseLaneStores,
    record: Record<String, ShopperEvent>,
) {
    stores.rolling().on_event(ctx, record)
}

fn purchase_tick(ctx: &mut ProcessorContext<'_, String, Feature>, stores: &PurchaseLaneStores, _: Punctuation) {
    stores.rolling().on_tick(ctx)
}

impl PurchaseLaneStores {
    fn rolling(&self) -> Rolling<'_, Purchases> {
        Rolling {
            panes: &self.panes,
            progress: &self.progress,
            buffer: Some(&self.buffer),
            memory: Some(&self.memory),
            lane: PhantomData,
        }
    }
}

/// product_view → product_view_count, avg_viewed_price, return_view_count, price_range_viewed.
pub struct ProductViews;

/// What a pane knows of one product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Viewed {
    /// Event time of the earliest view, and the price seen then.
    pub first: (i64, f64),
    pub views: u64,
}

/// The product lane's pane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductPane {
    pub products: BTreeMap<String, Viewed>,
    /// Lowest and highest price viewed.
    pub range: Option<(f64, f64)>,
}

fn widen(range: &mut Option<(f64, f64)>, lo: f64, hi: f64) {
    *range = Some(match *range {
        Some((a, b)) => (a.min(lo), b.max(hi)),
        None => (lo, hi),
    });
}

impl Lane for ProductViews {
    const NAME: &'static str = "product";
    const WINDOWS: &'static [RollingWindow] = &[FIVE_MINUTES, ONE_HOUR];
    type Pane = ProductPane;
    type Memory = ();

    fn add(_: &mut (), pane: &mut ProductPane, e: &ShopperEvent) {
        for p in &e.products {
            let seen = pane.products.entry(p.id.clone()).or_insert(Viewed { first: (e.time, p.price), views: 0 });
            seen.views += 1;
            if e.time < seen.first.0 {
                seen.first = (e.time, p.price);
            }
            widen(&mut pane.range, p.price, p.price);
        }
    }

    fn merge(into: &mut ProductPane, other: &ProductPane) {
        for (id, v) in &other.products {
            match into.products.get_mut(id) {
                Some(seen) => {
                    seen.views += v.views;
                    if v.first.0 < seen.first.0 {
                        seen.first = v.first;
                    }
                }
                None => {
                    into.products.insert(id.clone(), v.clone());
                }
            }
        }
        if let Some((lo, hi)) = other.range {
            widen(&mut into.range, lo, hi);
        }
    }

    fn metrics(w: &ProductPane) -> Vec<(&'static str, String)> {
        let n = w.products.len();
        let avg = if n == 0 { 0.0 } else { w.products.values().map(|v| v.first.1).sum::<f64>() / n as f64 };
        let views: serde_json::Map<String, serde_json::Value> =
            w.products.iter().map(|(id, v)| (id.clone(), v.views.into())).collect();
        vec![
            ("product_view_count", n.to_string()),
            ("avg_viewed_price", decimal2(avg)),
            ("return_view_count", serde_json::Value::Object(views).to_string()),
            (
                "price_range_viewed",
                w.range.map(|(lo, hi)| format!("{}-{}", decimal2(lo), decimal2(hi))).unwrap_or_default(),
            ),
        ]
    }
}

/// list_view (label = list name) and product_view (label = product category) → top_category,
/// unique_categories.
pub struct Categories;

/// Label → events.
pub type CategoryPane = BTreeMap<String, u64>;

impl Lane for Categories {
    const NAME: &'static str = "category";
    const WINDOWS: &'static [RollingWindow] = &[FIVE_MINUTES, ONE_HOUR, ONE_DAY];
    type Pane = CategoryPane;
    type Memory = ();

    fn add(_: &mut (), pane: &mut BTreeMap<String, u64>, e: &ShopperEvent) {
        let labels: Vec<&str> = match e.event_type.as_str() {
            "list_view" => e.list_name.as_deref().into_iter().collect(),
            _ => e.products.iter().filter_map(|p| p.category.as_deref()).collect(),
        };
        for label in labels {
            *pane.entry(label.to_string()).or_default() += 1;
        }
    }

    fn merge(into: &mut BTreeMap<String, u64>, other: &BTreeMap<String, u64>) {
        for (label, n) in other {
            *into.entry(label.clone()).or_default() += n;
        }
    }

    fn metrics(w: &BTreeMap<String, u64>) -> Vec<(&'static str, String)> {
        // Most frequent; ties go to the lexicographically smallest (the first in map order).
        let top = w.iter().fold(None::<(&String, u64)>, |best, (label, n)| match best {
            Some((_, m)) if m >= *n => best,
            _ => Some((label, *n)),
        });
        vec![
            ("top_category", top.map(|(l, _)| l.clone()).unwrap_or_default()),
            ("unique_categories", w.len().to_string()),
        ]
    }
}

/// add_to_cart, remove_from_cart → cart_add_count, cart_remove_count, cart_update_frequency.
pub struct CartActions;

/// Adds and removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartPane {
    pub adds: u64,
    pub removes: u64,
}

impl Lane for CartActions {
    const NAME: &'static str = "cart";
    const WINDOWS: &'static [RollingWindow] = &[FIVE_MINUTES, ONE_HOUR];
    type Pane = CartPane;
    type Memory = ();

    fn add(_: &mut (), pane: &mut CartPane, e: &ShopperEvent) {
        match e.event_type.as_str() {
            "add_to_cart" => pane.adds += 1,
            "remove_from_cart" => pane.removes += 1,
            _ => {}
        }
    }

    fn merge(into: &mut CartPane, other: &CartPane) {
        into.adds += other.adds;
        into.removes += other.removes;
    }

    fn metrics(w: &CartPane) -> Vec<(&'static str, String)> {
        vec![
            ("cart_add_count", w.adds.to_string()),
            ("cart_remove_count", w.removes.to_string()),
            ("cart_update_frequency", (w.adds + w.removes).to_string()),
        ]
    }
}

/// add_to_cart, remove_from_cart, checkout_step → orders_count, order_value, avg_order_value.
///
/// An order is a checkout_step with step 2 preceded, in event-time order, by a cart event of the same
/// user; its value is that cart event's cart total_value plus its products' price (minus, for a
/// remove). The lane sees events in event-time order (they wait the grace period first).
pub struct Purchases;

/// Orders and their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PurchasePane {
    pub orders: u64,
    pub value: f64,
}

impl Lane for Purchases {
    const NAME: &'static str = "purchase";
    const WINDOWS: &'static [RollingWindow] = &[ONE_DAY];
    const IN_ORDER: bool = true;
    type Pane = PurchasePane;
    /// The value an order would have after the user's latest cart event.
    type Memory = Option<f64>;

    fn add(last_cart: &mut Option<f64>, pane: &mut PurchasePane, e: &ShopperEvent) {
        let price: f64 = e.products.iter().map(|p| p.price).sum();
        let total = e.cart.as_ref().map_or(0.0, |c| c.total_value);
        match e.event_type.as_str() {
            "add_to_cart" => *last_cart = Some(total + price),
            "remove_from_cart" => *last_cart = Some(total - price),
            "checkout_step" if e.checkout_step == Some(2) => {
                if let Some(value) = *last_cart {
                    pane.orders += 1;
                    pane.value += value;
                }
            }
            _ => {}
        }
    }

    fn merge(into: &mut PurchasePane, other: &PurchasePane) {
        into.orders += other.orders;
        into.value += other.value;
    }

    fn metrics(w: &PurchasePane) -> Vec<(&'static str, String)> {
        let avg = if w.orders == 0 { 0.0 } else { w.value / w.orders as f64 };
        vec![
            ("orders_count", w.orders.to_string()),
            ("order_value", decimal2(w.value)),
            ("avg_order_value", decimal2(avg)),
        ]
    }
}

/// Which lanes an event type feeds.
pub fn in_product_lane(e: &ShopperEvent) -> bool {
    e.event_type == "product_view"
}
pub fn in_category_lane(e: &ShopperEvent) -> bool {
    matches!(e.event_type.as_str(), "list_view" | "product_view")
}
pub fn in_cart_lane(e: &ShopperEvent) -> bool {
    matches!(e.event_type.as_str(), "add_to_cart" | "remove_from_cart")
}
pub fn in_purchase_lane(e: &ShopperEvent) -> bool {
    matches!(e.event_type.as_str(), "add_to_cart" | "remove_from_cart" | "checkout_step")
}
pub fn in_session_lane(e: &ShopperEvent) -> bool {
    matches!(e.event_type.as_str(), "page_view" | "product_view" | "add_to_cart" | "remove_from_cart")
}
