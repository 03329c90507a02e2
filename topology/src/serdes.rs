//! Serdes: how typed keys and values become bytes on topics and back.
//!
//! A [`Serde<T>`] works on `Option<&[u8]>` so that Kafka's `null` (no key, or a tombstone value) has a
//! typed meaning: `()` keys and `Option<V>` values map to it. Start with [`Serdes`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::DecodeError;

/// Turns a `T` into the bytes of a record's key or value and back. `None` is Kafka's `null`.
pub trait Serde<T>: Send + Sync + 'static {
    /// Encodes `value`; `None` writes a `null`. Panics where [`try_serialize`](Self::try_serialize)
    /// fails.
    fn serialize(&self, value: &T) -> Option<Vec<u8>>;
    /// Encodes `value`, or says why it cannot be (a JSON map with non-string keys, a `Serialize` impl
    /// that fails): what sinks use, so such a record is dead-lettered instead of stopping the app.
    fn try_serialize(&self, value: &T) -> Result<Option<Vec<u8>>, DecodeError> {
        Ok(self.serialize(value))
    }
    /// Decodes bytes (`None` for `null`).
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, DecodeError>;
    /// Whether every encoding is one compact JSON text: the embedded runtime then embeds it in its
    /// output lines as it is, without checking.
    fn is_json(&self) -> bool {
        false
    }
}

/// A shared serde, as stored in [`Consumed`](crate::Consumed) and friends.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// Constructors of the serdes the crate ships.
///
/// ```
/// use topology::Serdes;
/// let s = Serdes::string();
/// assert_eq!(s.serialize(&"hi".to_string()), Some(b"hi".to_vec()));
/// ```
#[derive(Debug)]
pub struct Serdes;

impl Serdes {
    /// UTF-8 text, as Kafka's `StringSerde`.
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    /// JSON through serde_json.
    pub fn json<T: Serialize + DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(Json { last_len: AtomicUsize::new(0), _t: PhantomData })
    }
    /// Compact binary through bincode 2 (the default for internal topics and stores).
    pub fn bincode<T: Serialize + DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(Bincode(PhantomData))
    }
    /// 8-byte big-endian integers, as Kafka's `LongSerde`.
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(I64Serde)
    }
    /// Raw bytes, unchanged.
    pub fn bytes() -> SerdeRef<Vec<u8>> {
        Arc::new(BytesSerde)
    }
    /// The unit key: always `null`.
    pub fn unit() -> SerdeRef<()> {
        Arc::new(UnitSerde)
    }
    /// `Option<T>` where `None` is `null` (a tombstone) and `Some` uses `inner`.
    pub fn optional<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(OptionSerde(inner))
    }
}

fn require(bytes: Option<&[u8]>) -> Result<&[u8], DecodeError> {
    bytes.ok_or_else(|| DecodeError::new("unexpected null"))
}

struct StringSerde;
impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Option<Vec<u8>> {
        Some(value.as_bytes().to_vec())
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<String, DecodeError> {
        String::from_utf8(require(bytes)?.to_vec()).map_err(|e| DecodeError::new(format!("invalid UTF-8: {e}")))
    }
}

struct Json<T> {
    /// The length of the last encoding (a size hint for the next).
    last_len: AtomicUsize,
    _t: PhantomData<fn() -> T>,
}
impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for Json<T> {
    fn serialize(&self, value: &T) -> Option<Vec<u8>> {
        self.try_serialize(value).unwrap_or_else(|e| panic!("{e}"))
    }
    fn try_serialize(&self, value: &T) -> Result<Option<Vec<u8>>, DecodeError> {
        // Sized like the last encoding: no reallocations as the text grows.
        let mut buf = Vec::with_capacity(self.last_len.load(Ordering::Relaxed) + 16);
        serde_json::to_writer(&mut buf, value).map_err(|e| DecodeError::new(format!("cannot encode as JSON: {e}")))?;
        self.last_len.store(buf.len(), Ordering::Relaxed);
        Ok(Some(buf))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, DecodeError> {
        let bytes = bytes.unwrap_or(b"null");
        // UTF-8 checked once for the whole text: parsing from bytes checks every string on its own
        // (6 % of E1's instructions).
        let parsed = match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        };
        parsed.map_err(|e| DecodeError::new(format!("invalid JSON: {e}")))
    }
    fn is_json(&self) -> bool {
        true
    }
}

struct Bincode<T>(PhantomData<fn() -> T>);
impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for Bincode<T> {
    fn serialize(&self, value: &T) -> Option<Vec<u8>> {
        self.try_serialize(value).unwrap_or_else(|e| panic!("{e}"))
    }
    fn try_serialize(&self, value: &T) -> Result<Option<Vec<u8>>, DecodeError> {
        let mut buf = Vec::new();
        try_encode_into(value, &mut buf)?;
        Ok(Some(buf))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, DecodeError> {
        decode(require(bytes)?)
    }
}

struct I64Serde;
impl Serde<i64> for I64Serde {
    fn serialize(&self, value: &i64) -> Option<Vec<u8>> {
        Some(value.to_be_bytes().to_vec())
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<i64, DecodeError> {
        let b: [u8; 8] = require(bytes)?.try_into().map_err(|_| DecodeError::new("an i64 needs exactly 8 bytes"))?;
        Ok(i64::from_be_bytes(b))
    }
}

struct BytesSerde;
impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Option<Vec<u8>> {
        Some(value.clone())
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Vec<u8>, DecodeError> {
        Ok(require(bytes)?.to_vec())
    }
}

struct UnitSerde;
impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &()) -> Option<Vec<u8>> {
        None
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<(), DecodeError> {
        Ok(())
    }
}

struct OptionSerde<T>(SerdeRef<T>);
impl<T: 'static> Serde<Option<T>> for OptionSerde<T> {
    fn serialize(&self, value: &Option<T>) -> Option<Vec<u8>> {
        value.as_ref().and_then(|v| self.0.serialize(v))
    }
    fn try_serialize(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, DecodeError> {
        match value {
            Some(v) => self.0.try_serialize(v),
            None => Ok(None),
        }
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<T>, DecodeError> {
        match bytes {
            None => Ok(None),
            Some(b) => self.0.deserialize(Some(b)).map(Some),
        }
    }
    fn is_json(&self) -> bool {
        self.0.is_json()
    }
}

impl fmt::Debug for dyn Serde<String> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Serde")
    }
}

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Encodes with bincode 2's standard configuration (self-delimiting, so encodings are prefix-free).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(value, &mut buf);
    buf
}

/// Appends the bincode encoding of `value` to `buf`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) {
    try_encode_into(value, buf).unwrap_or_else(|e| panic!("{e}"));
}

/// [`encode_into`], or why serde refused the value.
pub(crate) fn try_encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), DecodeError> {
    bincode::serde::encode_into_std_write(value, buf, CONFIG)
        .map(|_| ())
        .map_err(|e| DecodeError::new(format!("cannot encode with bincode: {e}")))
}

/// Decodes a whole bincode value.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    bincode::serde::decode_from_slice(bytes, CONFIG)
        .map(|(v, _)| v)
        .map_err(|e| DecodeError::new(format!("invalid bincode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_serde_maps_none_to_null() {
        let s = Serdes::optional(Serdes::string());
        assert_eq!(s.serialize(&None), None);
        assert_eq!(s.deserialize(None).unwrap(), None);
        assert_eq!(s.deserialize(Some(b"x")).unwrap(), Some("x".to_string()));
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        let s = Serdes::json::<u32>();
        assert!(s.deserialize(Some(b"{oops")).unwrap_err().0.contains("invalid JSON"));
    }

    #[test]
    fn bincode_encodings_are_prefix_free_for_strings() {
        let a = encode(&"a".to_string());
        let ab = encode(&"ab".to_string());
        assert!(!ab.starts_with(&a));
    }
}
