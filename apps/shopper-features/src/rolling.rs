//! Rolling windows per user, computed from tick-sized panes.
//!
//! A lane ([`Lane`]) says how one event changes a pane (an aggregate of the events of one user in
//! `[p, p + PANE)`) and how panes combine. Its `#[processor]` (in [`crate::lanes`]) hands its stores
//! to [`Rolling`], which keeps the panes in a window store and, each time
//! stream time passes a tick plus the grace period, emits for every user with events in a window the
//! metrics of `tick − size ≤ time < tick` — a hopping window of that size advancing by the tick, emitted
//! when it closes. So an event costs one pane update, whatever the window sizes (24 h windows would
//! otherwise cost 1,440 window updates per event). A user whose window has just become empty gets the
//! zero values once ([`Lane::metrics`] of an empty pane), then nothing until new events.
//!
//! Records older than stream time − grace are late: counted against the lane and routed as the
//! topology's late-records policy says. Lanes that need their events in event-time order
//! ([`Lane::IN_ORDER`]) get them from a buffer that holds each event for the grace period. At the end of
//! a finite input (final flush) the windows that hold the last events are closed; nothing is zeroed.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use topology::{Data, KeyValueStoreHandle, ProcessorContext, Record, WindowStoreHandle};

use crate::event::ShopperEvent;
use crate::features::{Feature, GRACE_MS};

/// One rolling window of a lane: its label in metric names (`5m`), size and tick, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingWindow {
    pub label: &'static str,
    pub size: i64,
    pub tick: i64,
}

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;

/// 5 minutes, every 30 s.
pub const FIVE_MINUTES: RollingWindow = RollingWindow { label: "5m", size: 5 * MINUTE, tick: 30 * SECOND };
/// 1 hour, every 60 s.
pub const ONE_HOUR: RollingWindow = RollingWindow { label: "1h", size: 60 * MINUTE, tick: MINUTE };
/// 24 hours, every 60 s.
pub const ONE_DAY: RollingWindow = RollingWindow { label: "24h", size: 24 * 60 * MINUTE, tick: MINUTE };

/// A user-keyed feature lane.
pub trait Lane: 'static {
    /// The lane's name: its processor is `{NAME}-lane`, its stores `{NAME}-…`.
    const NAME: &'static str;
    /// Its windows.
    const WINDOWS: &'static [RollingWindow];
    /// Whether [`add`](Self::add) must see a user's events in event-time order (then they wait the
    /// grace period in a buffer first).
    const IN_ORDER: bool = false;
    /// The aggregate of one pane (and, combined, of one window).
    type Pane: Data + Default + std::fmt::Debug;
    /// Per-user state that outlives panes (only for in-order lanes).
    type Memory: Data + Default;
    /// Folds one event into its pane.
    fn add(memory: &mut Self::Memory, pane: &mut Self::Pane, event: &ShopperEvent);
    /// Folds a later-or-earlier pane into `into` (order must not matter).
    fn merge(into: &mut Self::Pane, other: &Self::Pane);
    /// The metrics of a window; of an empty pane: the zero values.
    fn metrics(window: &Self::Pane) -> Vec<(&'static str, String)>;
}

/// Pane width: the smallest tick (every tick is a multiple of it).
fn pane_width<L: Lane>() -> i64 {
    L::WINDOWS.iter().map(|w| w.tick).min().expect("a lane has windows")
}

fn align_down(t: i64, width: i64) -> i64 {
    t - t.rem_euclid(width)
}

/// How long lane `L`'s panes are kept: its longest window and tick, a pane and the grace period.
pub const fn pane_retention(windows: &[RollingWindow]) -> i64 {
    let (mut longest, mut i) = (0, 0);
    while i < windows.len() {
        let reach = windows[i].size + 2 * windows[i].tick;
        if reach > longest {
            longest = reach;
        }
        i += 1;
    }
    longest + GRACE_MS
}

/// How long the reorder buffer of an in-order lane keeps an event at most (it holds each for the
/// grace period; the rest is slack for its time segments).
pub const BUFFER_RETENTION: i64 = 10 * MINUTE;

const NEXT_TICK: u8 = 0;
const LATEST_EVENT: u8 = 1;

/// Lane `L`'s rolling windows over the stores its processor declared: the panes, the progress (next
/// tick; latest event time) and, for in-order lanes, the reorder buffer and per-user memory.
pub struct Rolling<'a, L: Lane> {
    pub panes: &'a WindowStoreHandle<String, L::Pane>,
    pub progress: &'a KeyValueStoreHandle<u8, i64>,
    pub buffer: Option<&'a WindowStoreHandle<(String, String), ShopperEvent>>,
    pub memory: Option<&'a KeyValueStoreHandle<String, L::Memory>>,
    pub lane: PhantomData<L>,
}

impl<L: Lane> Rolling<'_, L> {
    fn progress(&self, which: u8) -> Option<i64> {
        self.progress.borrow().get(&which)
    }
    fn set_progress(&self, which: u8, value: i64) {
        self.progress.borrow_mut().put(&which, value);
    }

    /// Folds an event into its pane (and the user's memory).
    fn apply(&self, user: &str, event: &ShopperEvent) {
        let start = align_down(event.time, pane_width::<L>());
        let user = user.to_string();
        let mut memory = match self.memory {
            Some(m) => m.borrow().get(&user).unwrap_or_default(),
            None => L::Memory::default(),
        };
        self.panes.borrow_mut().update(&user, start, &mut |pane| {
            let mut pane = pane.unwrap_or_default();
            L::add(&mut memory, &mut pane, event);
            pane
        });
        if let Some(m) = self.memory {
            m.borrow_mut().put(&user, memory);
        }
    }

    /// Hands buffered events with `time < before` to their panes, in event-time order.
    fn release(&self, before: i64) {
        let Some(buffer) = self.buffer else { return };
        let due = buffer.borrow().fetch_all(i64::MIN, before.saturating_sub(1));
        for ((user, id), time, event) in due {
            self.apply(&user, &event);
            buffer.borrow_mut().remove(&(user, id), time);
        }
    }

    /// Emits every tick that stream time has closed (tick + grace ≤ stream time); at the final flush,
    /// the ticks up to the first one after the latest event. The lane's processor calls it once per
    /// second of stream time (ticks close at whole seconds), not per record.
    pub fn on_tick(&self, ctx: &mut ProcessorContext<'_, String, Feature>) {
        let now = ctx.stream_time();
        let Some(mut tick) = self.progress(NEXT_TICK) else { return };
        let width = pane_width::<L>();
        let longest_tick = L::WINDOWS.iter().map(|w| w.tick).max().unwrap_or(width);
        let last = if now == i64::MAX {
            let latest = self.progress(LATEST_EVENT).unwrap_or(i64::MIN);
            align_down(latest, longest_tick) + longest_tick
        } else {
            now - GRACE_MS
        };
        self.release(last.min(now.saturating_sub(GRACE_MS)));
        let reach = L::WINDOWS.iter().map(|w| w.size + w.tick).max().unwrap_or(0);
        let mut emitted_any = true;
        while tick <= last {
            if !emitted_any {
                // Nothing was in any window at the last tick: skip to the tick after the next pane.
                let next = self.panes.borrow().fetch_all(tick - reach, last).first().map(|(_, start, _)| *start);
                match next {
                    None => {
                        tick = align_down(last, width) + width;
                        break;
                    }
                    Some(start) if start >= tick => tick = align_down(start, width) + width,
                    Some(_) => {}
                }
                if tick > last {
                    break;
                }
            }
            // One scan per tick serves every window that closes at it.
            let due: Vec<&RollingWindow> = L::WINDOWS.iter().filter(|w| tick % w.tick == 0).collect();
            let span = due.iter().map(|w| w.tick + w.size).max().unwrap_or(0);
            let panes = self.panes.borrow().fetch_all(tick - span, tick - 1);
            emitted_any = !panes.is_empty();
            for w in due {
                Self::emit_window(ctx, w, tick, &panes);
            }
            tick += width;
        }
        self.set_progress(NEXT_TICK, tick);
    }

    /// Emits window `w` closing at `tick` from `panes` (every user's panes in a span that covers it
    /// and the window before it, by start).
    fn emit_window(
        ctx: &mut ProcessorContext<'_, String, Feature>,
        w: &RollingWindow,
        tick: i64,
        panes: &[(String, i64, L::Pane)],
    ) {
        // user → the window's combined pane, or None if the user only had events in the previous window.
        let mut users: BTreeMap<&str, Option<L::Pane>> = BTreeMap::new();
        for (user, start, pane) in panes.iter().filter(|(_, start, _)| *start >= tick - w.tick - w.size) {
            let slot = users.entry(user.as_str()).or_insert(None);
            if *start >= tick - w.size {
                match slot {
                    Some(combined) => L::merge(combined, pane),
                    None => *slot = Some(pane.clone()),
                }
            }
        }
        for (user, window) in users {
            for (metric, value) in L::metrics(&window.unwrap_or_default()) {
                let key = format!("user:{user}:{metric}_{}", w.label);
                ctx.forward(Record::new(key, Feature::new(value), tick));
            }
        }
    }

    /// Takes one event of the lane (late ones are refused and counted).
    pub fn on_event(&self, ctx: &mut ProcessorContext<'_, String, Feature>, record: Record<String, ShopperEvent>) {
        let t = record.value.time;
        if t < ctx.stream_time().saturating_sub(GRACE_MS) {
            ctx.late(&format!("older than stream time − grace ({GRACE_MS} ms)"), &record);
            return;
        }
        if self.progress(NEXT_TICK).is_none() {
            self.set_progress(NEXT_TICK, align_down(t, pane_width::<L>()) + pane_width::<L>());
        }
        if self.progress(LATEST_EVENT).is_none_or(|latest| t > latest) {
            self.set_progress(LATEST_EVENT, t);
        }
        match self.buffer {
            Some(buffer) => buffer.borrow_mut().put(&(record.key, record.value.event_id.clone()), t, record.value),
            None => self.apply(&record.key, &record.value),
        }
    }
}
