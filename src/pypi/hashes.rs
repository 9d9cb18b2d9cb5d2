//! A file's hashes by algorithm: PEP 691 `hashes` and PEP 714 `core-metadata`.
//!
//! On the wire a JSON object, written in key order; in memory a short sorted list. A file
//! has one hash, seldom two, and a page holds three such maps per file: as `BTreeMap`s
//! each took a 544-byte node, 65 MB on a page of 40,000 files.

use std::borrow::Cow;
use std::fmt;

use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize};

/// The algorithm nearly every hash uses, and the one edelweiss checks.
const SHA256: &str = "sha256";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hashes(Vec<(Cow<'static, str>, String)>);

impl Hashes {
    /// Only a sha256, as lowercase hex.
    pub fn sha256(hex: String) -> Self {
        Self(vec![(Cow::Borrowed(SHA256), hex)])
    }

    /// Only `algorithm`'s hash.
    pub fn one(algorithm: &str, value: String) -> Self {
        Self(vec![(algorithm_name(algorithm), value)])
    }

    pub fn get(&self, algorithm: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == algorithm)
            .map(|(_, value)| value.as_str())
    }

    /// Sets `algorithm`'s hash, replacing the one it had.
    pub fn insert(&mut self, algorithm: &str, value: String) {
        match self.0.binary_search_by(|(name, _)| (**name).cmp(algorithm)) {
            Ok(found) => self.0[found].1 = value,
            Err(position) => self.0.insert(position, (algorithm_name(algorithm), value)),
        }
    }

    /// The sha256 alone, taken out.
    pub fn into_sha256(self) -> Option<String> {
        self.0
            .into_iter()
            .find(|(name, _)| name == SHA256)
            .map(|(_, value)| value)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each algorithm with its hash, in the algorithms' order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_str()))
    }
}

/// `sha256` without an allocation per file.
fn algorithm_name(algorithm: &str) -> Cow<'static, str> {
    match algorithm {
        SHA256 => Cow::Borrowed(SHA256),
        other => Cow::Owned(other.to_string()),
    }
}

impl Serialize for Hashes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Hashes {
    /// A JSON object of strings; a key given twice keeps its last value, as a map would.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Hashes;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map of hash algorithms to hashes")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut hashes = Hashes::default();
                while let Some((Algorithm(name), value)) = map.next_entry::<Algorithm, String>()? {
                    hashes.insert(&name, value);
                }
                Ok(hashes)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A key read where it lies: serde's `Cow` would allocate a `String` for each.
struct Algorithm(Cow<'static, str>);

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Algorithm;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a hash algorithm's name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Algorithm, E> {
                Ok(Algorithm(algorithm_name(name)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn reads_and_writes_what_a_map_would() {
        for text in [
            r#"{}"#,
            r#"{"sha256":"ab"}"#,
            r#"{"md5":"01","sha256":"ab"}"#,
            r#"{"sha256":"ab","md5":"01","blake2b_256":"cd"}"#,
            r#"{"sha256":"ab","sha256":"cd"}"#,
            r#"{"sha\u0032\u0035\u0036":"ab"}"#,
        ] {
            let hashes: Hashes = serde_json::from_str(text).unwrap();
            let map: BTreeMap<String, String> = serde_json::from_str(text).unwrap();
            assert_eq!(
                serde_json::to_string(&hashes).unwrap(),
                serde_json::to_string(&map).unwrap(),
                "{text}"
            );
            assert_eq!(hashes.get("sha256"), map.get("sha256").map(String::as_str));
        }
        for refused in [r#"[]"#, r#"{"sha256":1}"#, r#""ab""#] {
            assert!(
                serde_json::from_str::<Hashes>(refused).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn insert_replaces_and_keeps_the_order() {
        let mut hashes = Hashes::sha256("ab".into());
        hashes.insert("md5", "01".into());
        hashes.insert("sha256", "cd".into());
        let listed: Vec<(&str, &str)> = hashes.iter().collect();
        assert_eq!(listed, [("md5", "01"), ("sha256", "cd")]);
        hashes.clear();
        assert!(hashes.is_empty() && hashes.get("sha256").is_none());
    }
}
