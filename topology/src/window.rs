//! Window specifications and windowed keys.
//!
//! [`TimeWindows`] are tumbling or hopping (aligned to the epoch), [`SlidingWindows`] follow Kafka Streams'
//! `SlidingWindows`, [`SessionWindows`] grow and merge by an inactivity gap, and [`JoinWindows`] bound a
//! stream–stream join. Every spec has a grace period: a window closes when stream time reaches its end plus
//! grace, and a record for a closed window is late (counted and routed, never silently dropped).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).expect("duration fits in i64 milliseconds")
}

/// A window `[start, end)` (time windows) or `[start, end]` (sliding and session windows), epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First millisecond in the window.
    pub start: i64,
    /// End of the window (exclusive for time windows, inclusive for sliding and session windows).
    pub end: i64,
}

/// A key together with the window it was aggregated in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Windowed<K> {
    /// The grouping key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K: fmt::Display> fmt::Display for Windowed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}@{}/{}]", self.key, self.window.start, self.window.end)
    }
}

/// When a windowed aggregation forwards results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmitStrategy {
    /// Every update of a window is forwarded (Kafka Streams' default).
    #[default]
    OnWindowUpdate,
    /// Only a window's final result, once it has closed (`EmitStrategy.onWindowClose`).
    OnWindowClose,
}

/// Tumbling (`advance == size`) or hopping windows, aligned to the epoch.
///
/// ```
/// use std::time::Duration;
/// use topology::TimeWindows;
/// let w = TimeWindows::of(Duration::from_secs(60)).grace(Duration::from_secs(5));
/// assert_eq!(w.windows_for(61_000).count(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    /// Window length, ms.
    pub size: i64,
    /// Distance between window starts, ms.
    pub advance: i64,
    /// Grace period, ms.
    pub grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` with no grace.
    pub fn of(size: Duration) -> Self {
        let size = ms(size);
        assert!(size > 0, "window size must be positive");
        TimeWindows { size, advance: size, grace: 0 }
    }
    /// Makes the windows hop by `advance` (`0 < advance <= size`).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        let advance = ms(advance);
        assert!(advance > 0 && advance <= self.size, "advance must be in (0, size]");
        self.advance = advance;
        self
    }
    /// Sets the grace period for out-of-order records.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = ms(grace);
        self
    }
    /// The windows that contain `ts`, oldest first.
    pub fn windows_for(&self, ts: i64) -> impl Iterator<Item = Window> + use<> {
        let (size, advance) = (self.size, self.advance);
        let last_start = ts - ts.rem_euclid(advance);
        // The oldest window containing ts starts at the first multiple of `advance` after ts - size.
        let span = (last_start - (ts - size) - 1).div_euclid(advance);
        let first_start = last_start - span * advance;
        (0..=span).map(move |i| {
            let start = first_start + i * advance;
            Window { start, end: start + size }
        })
    }
    /// How long a window's data must be kept: size + grace.
    pub fn retention(&self) -> i64 {
        self.size + self.grace
    }
}

/// Kafka Streams' sliding windows: a window of `time_difference` ending at every record, inclusive at both
/// ends, so each distinct set of records within `time_difference` of each other is aggregated once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    /// Maximum time difference between two records in one window, ms.
    pub time_difference: i64,
    /// Grace period, ms.
    pub grace: i64,
}

impl SlidingWindows {
    /// Sliding windows with the given maximum time difference and grace.
    pub fn with_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows { time_difference: ms(difference), grace: ms(grace) }
    }
}

/// Session windows: records of a key closer than `gap` belong to one session; a record that bridges two
/// sessions merges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    /// Inactivity gap, ms.
    pub gap: i64,
    /// Grace period, ms.
    pub grace: i64,
}

impl SessionWindows {
    /// Sessions split by `gap` of inactivity, no grace.
    pub fn with_inactivity_gap(gap: Duration) -> Self {
        SessionWindows { gap: ms(gap), grace: 0 }
    }
    /// Sets the grace period.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = ms(grace);
        self
    }
}

/// Bounds of a stream–stream join: a left record at `t` joins right records in `[t - before, t + after]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    /// How far back from a left record right records may lie, ms.
    pub before: i64,
    /// How far ahead of a left record right records may lie, ms.
    pub after: i64,
    /// Grace period, ms.
    pub grace: i64,
}

impl JoinWindows {
    /// Records join when their timestamps differ by at most `difference`.
    pub fn of(difference: Duration) -> Self {
        JoinWindows { before: ms(difference), after: ms(difference), grace: 0 }
    }
    /// Sets how far back a right record may lie.
    pub fn before(mut self, before: Duration) -> Self {
        self.before = ms(before);
        self
    }
    /// Sets how far ahead a right record may lie.
    pub fn after(mut self, after: Duration) -> Self {
        self.after = ms(after);
        self
    }
    /// Sets the grace period.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = ms(grace);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopping_windows_for_a_timestamp() {
        let w = TimeWindows::of(Duration::from_millis(10)).advance_by(Duration::from_millis(5));
        let starts = |t| w.windows_for(t).map(|w| w.start).collect::<Vec<i64>>();
        assert_eq!(starts(12), vec![5, 10]);
        assert_eq!(starts(10), vec![5, 10]);
        assert_eq!(starts(9), vec![0, 5]);
        assert_eq!(starts(-3), vec![-10, -5]);
        let tumbling = TimeWindows::of(Duration::from_millis(10));
        assert_eq!(tumbling.windows_for(19).collect::<Vec<_>>(), vec![Window { start: 10, end: 20 }]);
        let odd = TimeWindows::of(Duration::from_millis(10)).advance_by(Duration::from_millis(3));
        assert_eq!(odd.windows_for(10).map(|w| w.start).collect::<Vec<_>>(), vec![3, 6, 9]);
    }
}
