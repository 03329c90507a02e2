//! Changelogs: every write to a logged store is mirrored to `<application-id>-<store>-changelog`
//! (partition = task partition), so any instance can rebuild the store. The embedded runtime and the
//! test driver keep changelogs as local logs ([`LogChangelog`]); the Kafka runtime uses a compacted topic.

use std::path::Path;

use crate::error::Result;
use crate::log::LocalLog;

/// Receives replayed changelog records: key, value (`None` = delete) and timestamp (the writing task's
/// stream time, which a restore takes up again).
pub type ReplayFn<'a> = dyn FnMut(&[u8], Option<&[u8]>, i64) -> Result<()> + 'a;

/// The changelog of one store partition.
pub trait Changelog {
    /// Appends a write (`None` = delete). May be buffered until [`flush`](Self::flush).
    fn append(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<()>;
    /// Makes appended records durable; returns the end offset (the offset the next record will get).
    fn flush(&mut self) -> Result<u64>;
    /// Replays records from `from` to the end (later records win); returns the end offset.
    fn read_from(&mut self, from: u64, f: &mut ReplayFn<'_>) -> Result<u64>;
    /// Drops records from `offset` on: records of an uncommitted transaction, on restart.
    fn truncate(&mut self, offset: u64) -> Result<()>;
    /// Whether [`compact`](Self::compact) rewrites this changelog (a local log does; a Kafka topic is
    /// compacted by the broker).
    fn compactable(&self) -> bool {
        false
    }
    /// Rewrites the changelog as just the records `entries` produces — the store's live contents at a
    /// commit — stamped with `timestamp`; returns the new end offset.
    fn compact(&mut self, _entries: &mut EntriesFn<'_>, _timestamp: i64) -> Result<u64> {
        Err(crate::error::Error::State {
            store: "changelog".into(),
            message: "this changelog is compacted by its broker".into(),
        })
    }
}

/// Receives a store's entries: key and value.
pub type EntrySink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// Produces a store's entries into the sink it is given.
pub type EntriesFn<'a> = dyn FnMut(&mut EntrySink<'_>) -> Result<()> + 'a;

/// A changelog kept as a local log file.
#[derive(Debug)]
pub struct LogChangelog {
    log: LocalLog,
}

impl LogChangelog {
    /// Opens (or creates) the changelog at `path`.
    pub fn open(path: &Path) -> Result<LogChangelog> {
        Ok(LogChangelog { log: LocalLog::open(path)? })
    }
}

impl Changelog for LogChangelog {
    fn append(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<()> {
        self.log.append(timestamp, Some(key), value).map(|_| ())
    }
    fn flush(&mut self) -> Result<u64> {
        self.log.flush()?;
        Ok(self.log.end_offset())
    }
    fn read_from(&mut self, from: u64, f: &mut ReplayFn<'_>) -> Result<u64> {
        self.log.read_from(from, &mut |r| f(r.key.as_deref().unwrap_or_default(), r.value.as_deref(), r.timestamp))
    }
    fn truncate(&mut self, offset: u64) -> Result<()> {
        self.log.truncate(offset)
    }
    fn compactable(&self) -> bool {
        true
    }
    fn compact(&mut self, entries: &mut EntriesFn<'_>, timestamp: i64) -> Result<u64> {
        self.log.replace_with(&mut |log| entries(&mut |k, v| log.append(timestamp, Some(k), Some(v)).map(|_| ())))?;
        Ok(self.log.end_offset())
    }
}
