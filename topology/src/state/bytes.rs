//! The byte-level store interface that the persistence layers stack on:
//! `Metered(Caching(ChangeLogging(WriteBehind(sled))))`, as Kafka Streams layers RocksDB (window and
//! session stores keep a typed front above it, see `front`).
//!
//! Keys are the encoded keys of the typed stores (window and session keys carry the window); values are
//! version-stamped encodings. Every layer implements [`BytesStore`].

use crate::error::Result;

/// Which time segments a range scan needs (window starts or session ends); `None` = all.
pub(crate) type TimeHint = Option<(i64, i64)>;

/// Writes a key's new value (into the buffer) from its current one.
pub(crate) type UpdateFn<'a> = dyn FnMut(Option<&[u8]>, &mut Vec<u8>) + 'a;

/// An ordered byte-key store.
pub(crate) trait BytesStore {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Reads without copying where the layer can: `f` sees the value (or `None`).
    fn get_with(&mut self, key: &[u8], f: &mut dyn FnMut(Option<&[u8]>)) -> Result<()> {
        let v = self.get(key)?;
        f(v.as_deref());
        Ok(())
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>) -> Result<()>;
    /// A put of a key the caller knows is in no layer (a new session window): the cache can then drop
    /// it without a tombstone if it is deleted before being written down.
    fn put_new(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.put(key, value)
    }
    /// Read-modify-write of one key: `f` sees the current value and returns the new one.
    /// `f` writes the new value into the (empty) buffer it is given, so a layer can hand it a reused one.
    fn update(&mut self, key: &[u8], f: &mut UpdateFn<'_>) -> Result<()> {
        let old = self.get(key)?;
        let mut new = Vec::new();
        f(old.as_deref(), &mut new);
        self.put(key, new)
    }
    fn delete(&mut self, key: &[u8]) -> Result<()>;
    /// Deletes `key` and returns its value (`None`, and nothing written, when it has none): a read and a
    /// delete in one step, so the cache can hand the value over instead of copying it.
    fn take(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let v = self.get(key)?;
        if v.is_some() {
            self.delete(key)?;
        }
        Ok(v)
    }
    /// Calls `f` for every entry (for rewriting a changelog from the store, after a commit).
    fn for_each(&mut self, f: &mut super::changelog::EntrySink<'_>) -> Result<()> {
        for (k, v) in self.range(&[], None, None)? {
            f(&k, &v)?;
        }
        Ok(())
    }
    /// Entries with `lo <= key` and (if given) `key <= hi`, in key order.
    fn range(&mut self, lo: &[u8], hi: Option<&[u8]>, time: TimeHint) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Drops time segments wholly before `t` (a no-op for key-value stores).
    fn expire_before(&mut self, t: i64) -> Result<()>;
    /// Writes everything buffered down through the layers (cache → changelog → store).
    fn flush(&mut self) -> Result<()>;
    fn approximate_len(&self) -> u64;
    /// Applies a write during restore: straight to the bottom layer, no changelog, no cache.
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()>;
    /// Removes everything (before a full restore).
    fn wipe(&mut self) -> Result<()>;
}
