//! A local append-only log of records: the storage of changelogs (and of the embedded runtime's topics).
//!
//! One file per log. Each entry is framed as `[len: u32][crc32: u32][payload]`; the payload holds the
//! timestamp, the key and the value (either may be null). Offsets count entries from 0. Opening a log
//! scans it once, rebuilding a sparse offset index and cutting off a torn tail (a crash mid-write), so a
//! reader never sees half a record. [`LocalLog::truncate`] drops everything from an offset on, which is
//! how uncommitted records are discarded on restart.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::Result;

/// One record of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogRecord {
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
}

/// Every `INDEX_EVERY` entries the file position is remembered.
const INDEX_EVERY: u64 = 1024;
const NULL: u32 = u32::MAX;

pub(crate) struct LocalLog {
    path: PathBuf,
    writer: BufWriter<File>,
    /// File position of entry `i * INDEX_EVERY`.
    index: Vec<u64>,
    next_offset: u64,
    /// File length including buffered writes.
    len: u64,
}

impl std::fmt::Debug for LocalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLog").field("path", &self.path).field("next_offset", &self.next_offset).finish()
    }
}

fn encode_payload(buf: &mut Vec<u8>, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
    buf.extend_from_slice(&timestamp.to_le_bytes());
    for part in [key, value] {
        match part {
            Some(b) => {
                buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
                buf.extend_from_slice(b);
            }
            None => buf.extend_from_slice(&NULL.to_le_bytes()),
        }
    }
}

fn decode_payload(p: &[u8], offset: u64) -> Option<LogRecord> {
    let timestamp = i64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let mut at = 8;
    let mut part = || -> Option<Option<Vec<u8>>> {
        let n = u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if n == NULL {
            return Some(None);
        }
        let b = p.get(at..at + n as usize)?.to_vec();
        at += n as usize;
        Some(Some(b))
    };
    let key = part()?;
    let value = part()?;
    Some(LogRecord { offset, timestamp, key, value })
}

/// Reads one framed entry; `None` at the end or at a torn/corrupt entry.
fn read_entry(r: &mut impl Read, buf: &mut Vec<u8>) -> Option<u64> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    if len > 256 << 20 {
        return None;
    }
    buf.resize(len, 0);
    r.read_exact(buf).ok()?;
    (crc32fast::hash(buf) == crc).then_some(8 + len as u64)
}

impl LocalLog {
    /// Opens (or creates) the log at `path`, dropping a torn tail.
    pub(crate) fn open(path: &Path) -> Result<LocalLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).read(true).append(true).open(path)?;
        let mut reader = BufReader::new(file.try_clone()?);
        reader.seek(SeekFrom::Start(0))?;
        let (mut pos, mut offset, mut index, mut buf) = (0u64, 0u64, Vec::new(), Vec::new());
        loop {
            if offset.is_multiple_of(INDEX_EVERY) {
                index.push(pos);
            }
            match read_entry(&mut reader, &mut buf) {
                Some(n) => {
                    pos += n;
                    offset += 1;
                }
                None => {
                    if offset.is_multiple_of(INDEX_EVERY) {
                        index.pop();
                    }
                    break;
                }
            }
        }
        if file.metadata()?.len() != pos {
            file.set_len(pos)?; // torn or corrupt tail from a crash
            file.sync_all()?;
        }
        Ok(LocalLog { path: path.to_path_buf(), writer: BufWriter::new(file), index, next_offset: offset, len: pos })
    }

    /// Appends a record; returns its offset. Buffered until [`flush`](Self::flush).
    pub(crate) fn append(&mut self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<u64> {
        let mut payload = Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        encode_payload(&mut payload, timestamp, key, value);
        let offset = self.next_offset;
        if offset.is_multiple_of(INDEX_EVERY) {
            self.index.push(self.len);
        }
        self.writer.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.writer.write_all(&crc32fast::hash(&payload).to_le_bytes())?;
        self.writer.write_all(&payload)?;
        self.len += 8 + payload.len() as u64;
        self.next_offset += 1;
        Ok(offset)
    }

    /// Writes buffered records and syncs them to disk.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        Ok(())
    }

    /// The offset the next record will get.
    pub(crate) fn end_offset(&self) -> u64 {
        self.next_offset
    }

    /// Calls `f` for every record from `from` on, in order; returns the end offset.
    pub(crate) fn read_from(&mut self, from: u64, f: &mut dyn FnMut(LogRecord) -> Result<()>) -> Result<u64> {
        self.writer.flush()?;
        if from >= self.next_offset {
            return Ok(self.next_offset);
        }
        let slot = (from / INDEX_EVERY) as usize;
        let mut reader = BufReader::with_capacity(1 << 16, File::open(&self.path)?);
        reader.seek(SeekFrom::Start(self.index[slot]))?;
        let mut offset = slot as u64 * INDEX_EVERY;
        let mut buf = Vec::new();
        while offset < self.next_offset {
            if read_entry(&mut reader, &mut buf).is_none() {
                break;
            }
            if offset >= from {
                let rec = decode_payload(&buf, offset)
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed log entry"))?;
                f(rec)?;
            }
            offset += 1;
        }
        Ok(self.next_offset)
    }

    /// Replaces the whole log with the records `fill` appends to a fresh one (written to a temporary
    /// file, synced, then renamed over this one): compaction. Offsets start again from 0.
    pub(crate) fn replace_with(&mut self, fill: &mut dyn FnMut(&mut LocalLog) -> Result<()>) -> Result<()> {
        let tmp = self.path.with_extension("compacting");
        let _ = std::fs::remove_file(&tmp); // left by a crash during an earlier compaction
        let mut next = LocalLog::open(&tmp)?;
        fill(&mut next)?;
        next.flush()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        next.path = self.path.clone();
        *self = next;
        Ok(())
    }

    /// Drops every record at or after `offset` (no-op if the log is shorter).
    pub(crate) fn truncate(&mut self, offset: u64) -> Result<()> {
        if offset >= self.next_offset {
            return Ok(());
        }
        self.writer.flush()?;
        let slot = (offset / INDEX_EVERY) as usize;
        let mut reader = BufReader::new(File::open(&self.path)?);
        reader.seek(SeekFrom::Start(self.index[slot]))?;
        let (mut pos, mut at, mut buf) = (self.index[slot], slot as u64 * INDEX_EVERY, Vec::new());
        while at < offset {
            pos += read_entry(&mut reader, &mut buf).expect("entries before the end are intact");
            at += 1;
        }
        let file = self.writer.get_ref();
        file.set_len(pos)?;
        file.sync_all()?;
        self.index.truncate(slot + usize::from(!offset.is_multiple_of(INDEX_EVERY)));
        self.next_offset = offset;
        self.len = pos;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(log: &mut LocalLog, from: u64) -> Vec<LogRecord> {
        let mut out = Vec::new();
        log.read_from(from, &mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn append_read_reopen_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t/0.log");
        let mut log = LocalLog::open(&path).unwrap();
        for i in 0..3000u32 {
            let v = i.to_le_bytes();
            log.append(i as i64, Some(b"k"), if i % 7 == 0 { None } else { Some(&v) }).unwrap();
        }
        log.flush().unwrap();
        drop(log);
        let mut log = LocalLog::open(&path).unwrap();
        assert_eq!(log.end_offset(), 3000);
        let tail = all(&mut log, 2047);
        assert_eq!(tail.len(), 953);
        assert_eq!(tail[0].offset, 2047);
        assert_eq!(tail[0].value, Some(2047u32.to_le_bytes().to_vec()));
        assert_eq!(all(&mut log, 2051)[0].value, None);
        assert_eq!(log.append(9, None, None).unwrap(), 3000);
    }

    #[test]
    fn a_torn_tail_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = LocalLog::open(&path).unwrap();
        log.append(1, Some(b"a"), Some(b"1")).unwrap();
        log.append(2, Some(b"b"), Some(b"2")).unwrap();
        log.flush().unwrap();
        let good = log.len;
        drop(log);
        // Half of a third entry, as after a crash mid-write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
        drop(f);
        let mut log = LocalLog::open(&path).unwrap();
        assert_eq!(log.end_offset(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        assert_eq!(log.append(3, None, Some(b"3")).unwrap(), 2);
        log.flush().unwrap();
        assert_eq!(all(&mut log, 0).len(), 3);
    }

    #[test]
    fn truncate_drops_records_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LocalLog::open(&dir.path().join("0.log")).unwrap();
        for i in 0..2500i64 {
            log.append(i, None, Some(b"x")).unwrap();
        }
        log.truncate(2048).unwrap();
        assert_eq!(log.end_offset(), 2048);
        assert_eq!(log.append(7, None, None).unwrap(), 2048);
        log.flush().unwrap();
        let recs = all(&mut log, 2040);
        assert_eq!(recs.len(), 9);
        assert_eq!(recs[8].timestamp, 7);
        log.truncate(5).unwrap();
        assert_eq!(all(&mut log, 0).len(), 5);
    }
}
