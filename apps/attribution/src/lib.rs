//! First-click attribution of checkouts, enriched with user names.
//!
//! ```text
//!  clicks ─┐                                            ┌─ attributed ─▶ by user ─▶ ⟕ users ─▶ attributed_checkouts
//!          ├─ by (user, product) ─▶ attribute (stores) ─┤
//!  checkouts┘                                           └─ rejected ─▶ attribution_dlq
//!  users ─▶ by id ─▶ latest username (a KTable; a tombstone deletes)
//! ```
//!
//! A click qualifies for a checkout when user and product are equal and
//! `click_time ≤ checkout_time ≤ click_time + 1 h`; the earliest qualifying click wins (ties: the smaller
//! click id). A checkout is emitted once stream time reaches `checkout_time + grace` (15 s), so clicks
//! up to the grace late still count, or at the final flush of a replay. Exactly one output per checkout
//! id: a duplicate arriving while its bookkeeping is kept (1 h + grace after its time) is dropped, and
//! one arriving later is late by construction and goes to the dead-letter topic with the reason.
//! Clicks leave the store 1 h + grace after their time. The user name is the user's latest name when
//! the checkout is emitted.

pub mod generator;

use serde::{Deserialize, Serialize};
use topology::{
    processor, topology, Consumed, DeserializationPolicy, Named, ProcessorContext, Produced, Punctuation, Record,
    Repartitioned, Serdes, StreamsBuilder,
};

/// Out-of-orderness bound.
pub const GRACE_MS: i64 = 15_000;
/// How long before a checkout a click may be.
pub const WINDOW_MS: i64 = 3_600_000;
/// The dead-letter topic (undecodable records, late and rejected checkouts).
pub const DLQ: &str = "attribution_dlq";

/// A click, as on topic `clicks`.
#[derive(Record, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[record(topic = "clicks")]
pub struct Click {
    pub click_id: String,
    pub user_id: i64,
    pub product_id: String,
    pub product: String,
    pub price: f64,
    pub url: String,
    pub user_agent: String,
    pub ip_address: String,
    #[timestamp]
    pub datetime_occured: String,
}

/// A checkout, as on topic `checkouts`.
#[derive(Record, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[record(topic = "checkouts")]
pub struct Checkout {
    pub checkout_id: String,
    pub user_id: i64,
    pub product_id: String,
    pub payment_method: String,
    pub total_amount: f64,
    pub shipping_address: String,
    pub billing_address: String,
    pub user_agent: String,
    pub ip_address: String,
    #[timestamp]
    pub datetime_occured: String,
}

/// A user, as on the compacted topic `users` (keyed by id; a null value deletes the user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: Option<String>,
}

/// The output, on topic `attributed_checkouts`, keyed by checkout id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributedCheckout {
    pub checkout_id: String,
    pub user_name: Option<String>,
    pub click_id: Option<String>,
    pub product_id: String,
    pub payment_method: String,
    pub total_amount: f64,
    pub shipping_address: String,
    pub billing_address: String,
    pub user_agent: String,
    pub ip_address: String,
    pub checkout_time: String,
    pub click_time: Option<String>,
}

/// Clicks and checkouts on their way to the attribution step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Click(Click),
    Checkout(Checkout),
}

/// A click as remembered: id and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickRef {
    pub click_id: String,
    pub time: String,
}

/// What the attribution step emits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Attributed (without the user name yet), keyed by user id.
    Attributed(AttributedCheckout),
    /// A checkout that cannot be emitted, with the reason (to the dead-letter topic).
    Rejected { reason: String, checkout: Checkout },
}

/// A rejected checkout as written to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub reason: String,
    pub checkout: Checkout,
}

fn group_key(user_id: i64, product_id: &str) -> String {
    format!("{user_id}|{product_id}")
}

/// Keeps clicks per (user, product) and checkouts until their grace has passed, then emits each
/// checkout with its first qualifying click.
#[processor(
    stores(
        clicks: window<String, Vec<ClickRef>>(retention_ms = 3615000),
        seen: window<String, bool>(retention_ms = 3615000),
        pending: key_value<u8, Vec<(i64, Checkout)>>,
        next_due: key_value<u8, i64>
    ),
    punctuate(stream_time = 1000, call = emit_due_on_tick)
)]
fn attribute(ctx: &mut ProcessorContext<'_, i64, Outcome>, stores: &AttributeStores, record: Record<String, Event>) {
    let now = ctx.stream_time();
    match record.value {
        Event::Click(click) => {
            let t = record.timestamp;
            if t < now - WINDOW_MS - GRACE_MS {
                return; // no checkout that is still open can use it (counted by the source's late metric)
            }
            let key = group_key(click.user_id, &click.product_id);
            let entry = ClickRef { click_id: click.click_id, time: click.datetime_occured };
            stores.clicks.borrow_mut().update(&key, t, &mut |old| {
                let mut v = old.unwrap_or_default();
                if !v.contains(&entry) {
                    v.push(entry.clone());
                }
                v
            });
        }
        Event::Checkout(checkout) => {
            let t = record.timestamp;
            let id = checkout.checkout_id.clone();
            // A redelivered checkout is the same record: same id, same time.
            if stores.seen.borrow().fetch(&id, t).is_some() {
                return; // exactly one output per checkout id
            }
            if t < now - WINDOW_MS - GRACE_MS {
                let reason = format!("late: checkout time {t} is more than 1 h + grace behind stream time {now}");
                ctx.forward(Record::new(checkout.user_id, Outcome::Rejected { reason, checkout }, t));
                return;
            }
            stores.seen.borrow_mut().put(&id, t, true);
            // Checkouts waiting for their grace are few (those of the last 15 s of stream time): one
            // list, ordered by time, under a single key; emission takes from its front.
            let mut pending = stores.pending.borrow().get(&0).unwrap_or_default();
            let at = pending.partition_point(|(pt, pc)| (*pt, &pc.checkout_id) <= (t, &id));
            pending.insert(at, (t, checkout));
            stores.next_due.borrow_mut().put(&0, pending[0].0.saturating_add(GRACE_MS));
            stores.pending.borrow_mut().put(&0, pending);
        }
    }
    emit_due(ctx, stores, now);
}

/// Every second of stream time: emits what is due and drops clicks and checkout ids older than
/// 1 h + grace (no checkout still to be emitted can use them; a checkout that old is rejected as late).
fn emit_due_on_tick(ctx: &mut ProcessorContext<'_, i64, Outcome>, stores: &AttributeStores, _: Punctuation) {
    let now = ctx.stream_time();
    emit_due(ctx, stores, now);
    let horizon = now.saturating_sub(WINDOW_MS + GRACE_MS);
    stores.clicks.borrow_mut().expire_before(horizon);
    stores.seen.borrow_mut().expire_before(horizon);
}

/// Emits every pending checkout whose time + grace has been reached, oldest first.
fn emit_due(ctx: &mut ProcessorContext<'_, i64, Outcome>, stores: &AttributeStores, now: i64) {
    // The earliest due time is kept apart, so most records cost one small lookup.
    if now == i64::MIN || stores.next_due.borrow().get(&0).is_none_or(|due| now < due) {
        return;
    }
    let Some(mut pending) = stores.pending.borrow().get(&0) else { return };
    let cut = pending.partition_point(|(t, _)| t.saturating_add(GRACE_MS) <= now);
    if cut == 0 {
        return;
    }
    let due: Vec<(i64, Checkout)> = pending.drain(..cut).collect();
    if pending.is_empty() {
        stores.pending.borrow_mut().delete(&0);
        stores.next_due.borrow_mut().delete(&0);
    } else {
        stores.next_due.borrow_mut().put(&0, pending[0].0.saturating_add(GRACE_MS));
        stores.pending.borrow_mut().put(&0, pending);
    }
    for (t, checkout) in due {
        let key = group_key(checkout.user_id, &checkout.product_id);
        let candidates = stores.clicks.borrow().fetch_range(&key, t - WINDOW_MS, t);
        // Earliest time first (the store orders by time); ties: the smaller click id.
        let first = candidates.into_iter().next().and_then(|(_, mut clicks)| {
            clicks.sort_by(|a, b| a.click_id.cmp(&b.click_id));
            clicks.into_iter().next()
        });
        let out = AttributedCheckout {
            checkout_id: checkout.checkout_id,
            user_name: None,
            click_id: first.as_ref().map(|c| c.click_id.clone()),
            product_id: checkout.product_id,
            payment_method: checkout.payment_method,
            total_amount: checkout.total_amount,
            shipping_address: checkout.shipping_address,
            billing_address: checkout.billing_address,
            user_agent: checkout.user_agent,
            ip_address: checkout.ip_address,
            checkout_time: checkout.datetime_occured,
            click_time: first.map(|c| c.time),
        };
        // Stamped with the moment it became due: the user table is joined as of then.
        ctx.forward(Record::new(checkout.user_id, Outcome::Attributed(out), t + GRACE_MS));
    }
}

/// The application: see the module docs.
#[topology(application_id = "attribution")]
pub fn attribution(builder: &mut StreamsBuilder) {
    builder.deserialization_policy(DeserializationPolicy::DeadLetter { topic: Some(DLQ.to_string()) });
    let users = builder
        .stream(
            "users",
            // A tombstone is a null value (Kafka) or a JSON `null` (a line in a file).
            Consumed::with(Serdes::optional(Serdes::string()), Serdes::optional(Serdes::json::<Option<User>>())),
        )
        .flat_map(|key: Option<String>, user: Option<Option<User>>| {
            let user = user.flatten();
            // The id is the record key (a tombstone has nothing else) or the value's `id`.
            let id = key.as_deref().and_then(|k| k.trim().parse::<i64>().ok()).or(user.as_ref().map(|u| u.id));
            id.map(|id| (id, user.and_then(|u| u.username)))
        })
        .group_by_key(topology::Grouped::as_("users-by-id"))
        .reduce(|_, latest| latest.clone(), topology::Materialized::as_("users"));
    let clicks = builder.stream_of::<Click>().map_values(Event::Click);
    let checkouts = builder.stream_of::<Checkout>().map_values(Event::Checkout);
    let outcomes = clicks
        .merge(&checkouts)
        .select_key(|_, e| match e {
            Event::Click(c) => group_key(c.user_id, &c.product_id),
            Event::Checkout(c) => group_key(c.user_id, &c.product_id),
        })
        .repartition(Repartitioned::as_("events-by-user-product"))
        .process_declared::<Attribute>(Named::as_("attribute"));
    let branches = outcomes
        .split("outcome-")
        .branch("attributed", |_, o| matches!(o, Outcome::Attributed(_)))
        .default_branch("rejected");
    branches["outcome-rejected"]
        .flat_map(|_, o| match o {
            Outcome::Rejected { reason, checkout } => {
                Some((checkout.checkout_id.clone(), Rejection { reason, checkout }))
            }
            Outcome::Attributed(_) => None,
        })
        .to(DLQ, Produced::with(Serdes::string(), Serdes::json::<Rejection>()));
    branches["outcome-attributed"]
        .flat_map_values(|o| match o {
            Outcome::Attributed(a) => Some(a),
            Outcome::Rejected { .. } => None,
        })
        .left_join(
            &users,
            |a: &AttributedCheckout, name: Option<&Option<String>>| AttributedCheckout {
                user_name: name.cloned().flatten(),
                ..a.clone()
            },
            Named::as_("with-user-name"),
        )
        .select_key(|_, a| a.checkout_id.clone())
        .to("attributed_checkouts", Produced::with(Serdes::string(), Serdes::json::<AttributedCheckout>()));
}

#[cfg(test)]
mod tests;
