//! The session lane: session windows (30 min of inactivity) per session id.
//!
//! Events within the gap of a session join it (an event that bridges two sessions merges them); a
//! session closes when stream time passes its last event + gap + grace, and an id seen again after that
//! starts a fresh session. Every open session's features are emitted at each 60 s tick of stream time
//! (ticks close like the rolling windows': at tick + grace) and once more when it closes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use topology::{processor, ProcessorContext, Punctuation, Record, Window};

use crate::event::ShopperEvent;
use crate::features::{decimal2, device_class, Feature, GRACE_MS};

/// Inactivity gap.
pub const GAP_MS: i64 = 30 * 60_000;
/// Emission period of open sessions.
pub const TICK_MS: i64 = 60_000;

/// The aggregate of one session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionAgg {
    pub page_views: u64,
    pub product_views: u64,
    pub adds: u64,
    pub searches: u64,
    /// Event time and campaign of the earliest event with marketing fields.
    pub campaign: Option<(i64, String)>,
    pub devices: BTreeSet<String>,
    /// Event time and platform of the latest event.
    pub platform: Option<(i64, String)>,
}

fn earliest(a: &mut Option<(i64, String)>, b: Option<(i64, String)>) {
    if let Some(b) = b {
        if a.as_ref().is_none_or(|a| b.0 < a.0) {
            *a = Some(b);
        }
    }
}

fn latest(a: &mut Option<(i64, String)>, b: Option<(i64, String)>) {
    if let Some(b) = b {
        if a.as_ref().is_none_or(|a| b.0 >= a.0) {
            *a = Some(b);
        }
    }
}

impl SessionAgg {
    /// One event's contribution.
    pub fn of(e: &ShopperEvent) -> SessionAgg {
        let page_view = e.event_type == "page_view";
        SessionAgg {
            page_views: page_view as u64,
            product_views: (e.event_type == "product_view") as u64,
            adds: (e.event_type == "add_to_cart") as u64,
            searches: (page_view && e.page_url.as_deref().is_some_and(|u| u.contains("/search?q="))) as u64,
            campaign: e.has_marketing.then(|| (e.time, e.mkt_campaign.clone().unwrap_or_default())),
            devices: e.useragent.as_deref().map(|ua| device_class(ua).to_string()).into_iter().collect(),
            platform: e.platform.clone().map(|p| (e.time, p)),
        }
    }

    /// Both sessions' events as one.
    pub fn merge(&mut self, other: SessionAgg) {
        self.page_views += other.page_views;
        self.product_views += other.product_views;
        self.adds += other.adds;
        self.searches += other.searches;
        earliest(&mut self.campaign, other.campaign);
        self.devices.extend(other.devices);
        latest(&mut self.platform, other.platform);
    }

    /// The features of a session spanning `window`.
    pub fn metrics(&self, window: Window) -> Vec<(&'static str, String)> {
        let ratio = if self.product_views == 0 { 0.0 } else { self.adds as f64 / self.product_views as f64 };
        vec![
            ("session_duration", (window.end - window.start).to_string()),
            ("session_page_count", self.page_views.to_string()),
            ("session_bounce", (self.page_views < 2).to_string()),
            ("session_marketing_campaign", self.campaign.as_ref().map(|c| c.1.clone()).unwrap_or_default()),
            ("session_cart_ratio", decimal2(ratio)),
            ("session_search_count", self.searches.to_string()),
            ("shopper_device_types", serde_json::to_string(&self.devices).expect("strings serialize")),
            ("shopper_latest_platform", self.platform.as_ref().map(|p| p.1.clone()).unwrap_or_default()),
        ]
    }
}

/// The session lane's processor: sessions per id, and the next tick to emit.
#[processor(
    stores(windows: session<String, SessionAgg>(retention_ms = GAP_MS + GRACE_MS + TICK_MS), progress: key_value<u8, i64>),
    punctuate(stream_time = 1000, call = session_tick)
)]
pub fn session_lane(
    ctx: &mut ProcessorContext<'_, String, Feature>,
    stores: &SessionLaneStores,
    record: Record<String, ShopperEvent>,
) {
    let t = record.value.time;
    if t < ctx.stream_time().saturating_sub(GRACE_MS) {
        ctx.late(&format!("older than stream time − grace ({GRACE_MS} ms)"), &record);
        return;
    }
    if stores.progress.borrow().get(&0).is_none() {
        stores.progress.borrow_mut().put(&0, t - t.rem_euclid(TICK_MS) + TICK_MS);
    }
    let id = record.key;
    let mut window = Window { start: t, end: t };
    let mut agg = SessionAgg::of(&record.value);
    // A session that stream time has closed cannot be within the gap of a record that is not late.
    let overlapping = stores.windows.borrow().find_sessions(&id, t - GAP_MS, t + GAP_MS);
    for (w, other) in overlapping {
        window = Window { start: window.start.min(w.start), end: window.end.max(w.end) };
        agg.merge(other);
        stores.windows.borrow_mut().remove(&id, w);
    }
    stores.windows.borrow_mut().put(&id, window, agg);
}

fn emit(ctx: &mut ProcessorContext<'_, String, Feature>, id: &str, window: Window, agg: &SessionAgg, at: i64) {
    for (metric, value) in agg.metrics(window) {
        ctx.forward(Record::new(format!("session:{id}:{metric}"), Feature::new(value), at));
    }
}

/// Emits, once more, and forgets the sessions whose end + gap is before `before`.
fn close(ctx: &mut ProcessorContext<'_, String, Feature>, stores: &SessionLaneStores, before: i64) {
    let closed = stores.windows.borrow().fetch_ending(i64::MIN, before.saturating_sub(GAP_MS + 1));
    for (id, window, agg) in closed {
        emit(ctx, &id, window, &agg, window.end.saturating_add(GAP_MS));
        stores.windows.borrow_mut().remove(&id, window);
    }
}

/// Once per second of stream time (closes and ticks are whole seconds): closes what stream time has
/// closed and emits the open sessions at every due tick.
fn session_tick(ctx: &mut ProcessorContext<'_, String, Feature>, stores: &SessionLaneStores, _: Punctuation) {
    let now = ctx.stream_time();
    let Some(mut tick) = stores.progress.borrow().get(&0) else { return };
    if now == i64::MAX {
        // End of input: every session closes.
        close(ctx, stores, i64::MAX);
        return;
    }
    while tick + GRACE_MS <= now {
        close(ctx, stores, tick);
        let open = stores.windows.borrow().fetch_ending(i64::MIN, i64::MAX);
        for (id, window, agg) in open.iter().filter(|(_, w, _)| w.start < tick) {
            emit(ctx, id, *window, agg, tick);
        }
        tick = if open.is_empty() {
            (now - GRACE_MS) - (now - GRACE_MS).rem_euclid(TICK_MS) + TICK_MS
        } else {
            tick + TICK_MS
        };
    }
    stores.progress.borrow_mut().put(&0, tick);
    // A session closes as soon as stream time passes its end + gap + grace.
    close(ctx, stores, now - GRACE_MS);
}
