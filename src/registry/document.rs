//! The registry document: everything the registry keeps, as one value that
//! a store reads and writes whole.
//!
//! The on-disk form is pretty-printed JSON rather than YAML: serde_json
//! writes it and reads it back exactly (no YAML type guessing for values
//! such as `NO` or `1e3`), reports a bad byte with its line and column, and
//! one key per line keeps hand inspection and `diff` of two versions easy.
//! Maps are keyed by name or id (sorted), so a name is unique by
//! construction and the file's order is stable from one write to the next.
//!
//! Values are kept as the registration wrote them (country codes as text,
//! URLs as text): the document is storage, and whoever builds mirrors from
//! it validates them again with the same rules as a registration
//! (`validate.rs`), so a hand-edited file cannot smuggle in a bad mirror.
//! This module does no I/O.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The document format this build reads and writes.
pub const DOCUMENT_VERSION: u32 = 1;

/// Audit entries kept; older ones are dropped as new ones arrive.
pub const MAX_AUDIT_ENTRIES: usize = 1000;

/// The whole registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Format version, for migrations; always [`DOCUMENT_VERSION`] here.
    pub version: u32,
    /// Bumped by the store on every committed write; 0 for a new document.
    #[serde(default)]
    pub revision: u64,
    /// Registered mirrors by name.
    #[serde(default, deserialize_with = "unique_keys")]
    pub mirrors: BTreeMap<String, RegisteredMirror>,
    /// Runtime state of config mirrors, by name (config mirrors themselves
    /// stay in the config file).
    #[serde(default, deserialize_with = "unique_keys")]
    pub overlays: BTreeMap<String, Overlay>,
    /// Operators by id.
    #[serde(default, deserialize_with = "unique_keys")]
    pub operators: BTreeMap<String, Operator>,
    /// The latest changes, oldest first, at most [`MAX_AUDIT_ENTRIES`].
    #[serde(default)]
    pub audit: VecDeque<AuditEntry>,
}

impl Default for Document {
    fn default() -> Self {
        Document {
            version: DOCUMENT_VERSION,
            revision: 0,
            mirrors: BTreeMap::new(),
            overlays: BTreeMap::new(),
            operators: BTreeMap::new(),
            audit: VecDeque::new(),
        }
    }
}

impl Document {
    /// Appends an audit entry, dropping the oldest past [`MAX_AUDIT_ENTRIES`].
    pub fn record(&mut self, entry: AuditEntry) {
        self.audit.push_back(entry);
        while self.audit.len() > MAX_AUDIT_ENTRIES {
            self.audit.pop_front();
        }
    }

    /// The latest `limit` audit entries, newest first.
    pub fn latest_audit(&self, limit: usize) -> impl Iterator<Item = &AuditEntry> {
        self.audit.iter().rev().take(limit)
    }

    /// Whether a config mirror is drained by its overlay.
    pub fn is_drained(&self, name: &str) -> bool {
        self.overlays.get(name).is_some_and(|o| o.drained)
    }
}

/// A JSON object as a map, refusing a key that appears twice: serde would
/// keep the last one and silently drop the other, and in a hand-edited
/// document that is a registration lost without a word.
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "{key:?} appears twice; each name or id may appear once"
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique(std::marker::PhantomData))
}

/// One mirror registered through the API. Its name is its key in
/// [`Document::mirrors`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredMirror {
    /// Base URL, http or https, ending in `/`.
    pub url: String,
    /// ISO 3166-1 alpha-2; none: from GeoIP, as for config mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    /// Latitude and longitude come together or not at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asn: Vec<u32>,
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries_only: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_countries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continents_only: Vec<String>,
    /// Whom to write to about this mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The operator it belongs to; none: the site's administrators'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Out of rotation (no new redirects or proxied requests), still probed.
    #[serde(default)]
    pub drained: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// Runtime state of a config mirror, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    pub drained: bool,
}

/// Someone allowed to manage their own mirrors. Its id is its key in
/// [`Document::operators`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// A human name ("Example University").
    pub name: String,
    /// SHA-256 of the token, lowercase hex (see `token.rs`); the token
    /// itself is never stored.
    pub token_hash: String,
    pub created: Timestamp,
}

/// One change, as kept in the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    pub time: Timestamp,
    /// Who: `admin` or `operator:<id>`.
    pub actor: String,
    /// What: `register`, `edit`, `remove`, `drain`, `undrain`, ...
    pub action: String,
    /// Which mirror or operator.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

/// A point in time, written as RFC 3339 UTC with whole seconds
/// (`2026-12-05T02:41:57Z`) so that the file reads without tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    /// Now, to the whole second: what the file can hold, so a value read
    /// back equals the one written.
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Timestamp(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_rfc3339_seconds(self.0).fmt(f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text)
            .map(Timestamp)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is not an RFC 3339 time such as \"2026-01-31T12:00:00Z\": {e}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> AuditEntry {
        AuditEntry {
            time: Timestamp::now(),
            actor: "admin".into(),
            action: "drain".into(),
            target: format!("m{i}"),
            before: None,
            after: Some(serde_json::json!({"drained": true})),
        }
    }

    #[test]
    fn audit_keeps_the_newest_entries() {
        let mut d = Document::default();
        for i in 0..MAX_AUDIT_ENTRIES + 5 {
            d.record(entry(i));
        }
        assert_eq!(d.audit.len(), MAX_AUDIT_ENTRIES);
        assert_eq!(d.audit.front().unwrap().target, "m5");
        let latest: Vec<_> = d.latest_audit(2).map(|e| e.target.as_str()).collect();
        assert_eq!(
            latest,
            [
                format!("m{}", MAX_AUDIT_ENTRIES + 4),
                format!("m{}", MAX_AUDIT_ENTRIES + 3)
            ]
        );
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let t = Timestamp(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"1970-01-02T00:00:00Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }

    #[test]
    fn a_name_given_twice_is_refused_not_dropped() {
        let text =
            r#"{"version": 1, "overlays": {"a": {"drained": true}, "a": {"drained": false}}}"#;
        let err = serde_json::from_str::<Document>(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"a\" appears twice"), "{err}");
        let ok = r#"{"version": 1, "overlays": {"a": {"drained": true}, "b": {"drained": false}}}"#;
        let doc = serde_json::from_str::<Document>(ok).unwrap();
        assert!(doc.is_drained("a") && !doc.is_drained("b"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Document>(r#"{"version": 1, "mirorrs": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `mirorrs`"), "{err}");
    }
}
