//! Label selectors, evaluated without a Kubernetes client.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::enums::SelectorOperator;

/// A label selector, as in Kubernetes: every `matchLabels` entry and every
/// `matchExpressions` requirement must hold. An empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "LabelMap::is_empty")]
    pub match_labels: LabelMap,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    /// No requirement at all: selects everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// One set-based requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = crate::rules::selector_requirement)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: SelectorOperator,
    /// Values for In and NotIn; must be empty for Exists and DoesNotExist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub values: Vec<String>,
}

/// `matchLabels`: label values by key, held as a vector sorted by key.
/// A selector has one or two pairs, and a `BTreeMap` allocates a whole
/// B-tree node even for one; with two selectors per VirtualService that
/// node dominates an agent's memory on a large table. Serialized,
/// deserialized and described (JSON schema) exactly as that map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelMap(Vec<(String, String)>);

impl LabelMap {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The pairs in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Sets a key's value; returns the value it replaced.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }
}

impl FromIterator<(String, String)> for LabelMap {
    /// A later value for the same key wins, as in a map.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut m = LabelMap::default();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m.0.shrink_to_fit();
        m
    }
}

impl From<BTreeMap<String, String>> for LabelMap {
    fn from(m: BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        LabelMap(m.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a LabelMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for LabelMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for LabelMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(LabelMap::from)
    }
}

impl JsonSchema for LabelMap {
    fn inline_schema() -> bool {
        <BTreeMap<String, String>>::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        <BTreeMap<String, String>>::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        <BTreeMap<String, String>>::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <BTreeMap<String, String>>::json_schema(generator)
    }
}

impl LabelSelector {
    /// Whether the labels satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| e.matches(labels))
    }
}

impl LabelSelectorRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(LabelSelector::default().matches(&labels(&[])));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_and_expressions_all_hold() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "web")]).into(),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: SelectorOperator::In,
                    values: vec!["a".into(), "b".into()],
                },
                LabelSelectorRequirement {
                    key: "drain".into(),
                    operator: SelectorOperator::DoesNotExist,
                    values: vec![],
                },
            ],
        };
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "b")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "a"), ("drain", "")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("tier", "a")])));
        let not_in = LabelSelectorRequirement {
            key: "zone".into(),
            operator: SelectorOperator::NotIn,
            values: vec!["x".into()],
        };
        assert!(not_in.matches(&labels(&[])));
        assert!(!not_in.matches(&labels(&[("zone", "x")])));
        let exists = LabelSelectorRequirement {
            key: "zone".into(),
            operator: SelectorOperator::Exists,
            values: vec![],
        };
        assert!(exists.matches(&labels(&[("zone", "")])));
    }

    #[test]
    fn label_map_reads_writes_and_describes_itself_as_the_map_it_replaces() {
        let m: LabelMap = serde_json::from_str(r#"{"b": "2", "a": "1", "c": "3"}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("a").map(String::as_str), Some("1"));
        assert_eq!(m.get("c").map(String::as_str), Some("3"));
        assert_eq!(m.get("d"), None);
        assert_eq!(
            m.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"],
            "key order"
        );
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"a":"1","b":"2","c":"3"}"#
        );
        let mut n = m.clone();
        assert_eq!(n.insert("b".into(), "9".into()).as_deref(), Some("2"));
        assert_eq!(n.insert("0".into(), "0".into()), None);
        assert_eq!(
            n.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            ["0=0", "a=1", "b=9", "c=3"]
        );
        let later_wins: LabelMap = [("k", "1"), ("k", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(later_wins.get("k").map(String::as_str), Some("2"));
        assert!(serde_json::from_str::<LabelMap>(r#"{"a": 1}"#).is_err());
        let schema = |s: schemars::Schema| serde_json::to_value(s).unwrap();
        assert_eq!(
            schema(schemars::schema_for!(LabelMap)),
            schema(schemars::schema_for!(BTreeMap<String, String>))
        );
        let sel = LabelSelector {
            match_labels: m.clone(),
            match_expressions: vec![],
        };
        assert!(sel.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("a", "1"), ("b", "2")])));
    }
}
