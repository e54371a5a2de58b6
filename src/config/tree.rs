//! A second reading of a config file that serde-saphyr rejected, to report every problem in its
//! layout at once: unknown keys, keys given twice, missing keys and values of the wrong shape.
//!
//! serde stops at the first error, so the file is read again into a tree of YAML nodes with
//! their locations, and the tree is compared with the [`Shape`] of the raw structs. This pass
//! never decides whether a config is accepted: it runs only after the typed parse failed, and
//! it reports only what that parse would also reject. Values that it cannot judge, such as null
//! where a mapping is expected or the untagged header and share values, are left to the typed
//! parse, which reports the first of them.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Location, Options, Spanned};

use super::Problem;
use super::raw::RawConfig;
use super::schema::{Field, Shape};
use super::shape;
use crate::yaml_keys;

/// A YAML node and the location where it is written.
type Node = Spanned<Value>;

/// The value of a YAML node, as far as the layout check needs it.
#[derive(Debug)]
enum Value {
    Null,
    Bool,
    /// A number, as Rust formats the parsed value.
    Number(String),
    Text(String),
    Seq(Vec<Node>),
    Map(Vec<(Spanned<Key>, Node)>),
}

/// A mapping key: its text, or `None` for a list or mapping used as a key.
#[derive(Debug)]
struct Key(Option<String>);

/// Returns the layout problems in `text`, in file order, or the problem that stopped this
/// reading. That can be a YAML syntax error after the problem where the typed parse stopped.
/// It can also be a limit of the YAML parser, because this reading builds every node that
/// aliases expand to, while the typed parse stops at its first problem.
pub(super) fn check(text: &str) -> Result<Vec<Problem>, Problem> {
    let mut options = Options::default();
    // Every entry reaches the tree, so each repeated key is reported, not only the first.
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    let root = serde_saphyr::from_str_with_options::<Node>(text, options)
        .map_err(|error| shape::explain(text, super::syntax_problem(&error)))?;
    let mut walk = Walk {
        text,
        problems: Vec::new(),
    };
    walk.duplicates(&root);
    walk.node(&root, &Shape::of::<RawConfig>(), None);
    walk.problems.sort_by_key(|p| (p.line, p.column));
    walk.problems.dedup();
    Ok(walk.problems)
}

struct Walk<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Walk<'_> {
    fn report(&mut self, at: Location, message: String) {
        self.problems.push(Problem {
            line: at.line(),
            column: at.column(),
            message,
        });
    }

    /// Reports every key given twice in one mapping, anywhere in the tree, at its second
    /// and later occurrences.
    fn duplicates(&mut self, node: &Node) {
        match &node.value {
            Value::Seq(items) => items.iter().for_each(|item| self.duplicates(item)),
            Value::Map(entries) => {
                let mut seen = HashSet::new();
                for (key, value) in entries {
                    if let Some(name) = &key.value.0
                        && !seen.insert(name.as_str())
                    {
                        self.report(key.referenced, shape::duplicate_key_message(name));
                    }
                    self.duplicates(value);
                }
            }
            Value::Null | Value::Bool | Value::Number(_) | Value::Text(_) => {}
        }
    }

    /// Checks `node` against `shape`. `key` is the key the node is the value of, or of the list
    /// it is an item of; the root has none.
    fn node(&mut self, node: &Node, shape: &Shape, key: Option<&str>) {
        let fits = match (shape, &node.value) {
            (Shape::Optional(_), Value::Null) | (Shape::Any, _) => true,
            (Shape::Optional(inner), _) => {
                self.node(node, inner, key);
                true
            }
            (Shape::Struct(fields), Value::Map(entries)) => {
                self.entries(node.referenced, entries, fields, key);
                true
            }
            (Shape::Map(inner), Value::Map(entries)) => {
                for (name, value) in entries {
                    let name = name.value.0.as_deref();
                    match (name, &value.value) {
                        // A header line with its colon missing, such as `Authorization Bearer
                        // sk-...`. The problem is placed where the typed parse finds the
                        // missing value, so the two reports of it are merged.
                        (Some(name), Value::Null) if name.contains(char::is_whitespace) => {
                            self.report(value.referenced, shape::spaced_header_message());
                        }
                        _ => self.node(value, inner, name),
                    }
                }
                true
            }
            (Shape::Seq(inner), Value::Seq(items)) => {
                for item in items {
                    self.node(item, inner, key);
                }
                true
            }
            // From here on null does not fit: serde-saphyr reads null, such as an empty
            // `global:` or `name:`, only into an `Option`, even for a key with a default.
            (Shape::Enum(variants), value) => enum_fits(variants, value),
            (Shape::Bool, value) => bool_fits(value),
            (Shape::Text | Shape::Number, value) => {
                matches!(value, Value::Bool | Value::Number(_) | Value::Text(_))
            }
            (Shape::Struct(_) | Shape::Map(_) | Shape::Seq(_), _) => false,
        };
        if fits {
            return;
        }
        // The root has no key to name; the typed parse reports a root of the wrong shape.
        let Some(key) = key else {
            return;
        };
        let at = node.referenced;
        let written = match node.value {
            // serde-saphyr places a missing value at the colon before it.
            Value::Null => None,
            _ => yaml_keys::key_at(self.text, at.line(), at.column()).and_then(|found| found.value),
        };
        self.report(at, shape::invalid_value_message(key, written.as_deref()));
    }

    /// Checks the entries of a mapping at `at` against the keys of a struct. `parent` is the
    /// key that the mapping is the value of, or of the list it is an item of.
    fn entries(
        &mut self,
        at: Location,
        entries: &[(Spanned<Key>, Node)],
        fields: &[Field],
        parent: Option<&str>,
    ) {
        let valid: Vec<&str> = fields.iter().map(|field| field.name).collect();
        let mut given = HashSet::new();
        for (key, value) in entries {
            let Some(name) = key.value.0.as_deref() else {
                self.report(
                    key.referenced,
                    format!(
                        "a list or mapping cannot be a key; valid keys here: {}",
                        valid.join(", ")
                    ),
                );
                continue;
            };
            if let Some(field) = fields.iter().find(|field| field.name == name) {
                given.insert(field.name);
                self.node(value, &field.shape, Some(field.name));
            } else {
                // A misspelt key counts as given, so it is not also reported as missing.
                given.extend(shape::intended_key(name, &valid));
                self.report(key.referenced, shape::unknown_key_message(name, &valid));
            }
        }
        for field in fields {
            if field.required && !given.contains(field.name) {
                self.report(at, shape::missing_key_message(field.name, parent));
            }
        }
    }
}

/// Reports whether `value` names one of `variants`, alone or as the only key of a mapping.
fn enum_fits(variants: &[&str], value: &Value) -> bool {
    match value {
        Value::Text(name) => variants.contains(&name.as_str()),
        Value::Map(entries) => match entries.as_slice() {
            [(variant, _)] => variant
                .value
                .0
                .as_deref()
                .is_some_and(|name| variants.contains(&name)),
            _ => false,
        },
        Value::Null | Value::Bool | Value::Number(_) | Value::Seq(_) => false,
    }
}

/// Reports whether `value` reads as a boolean. serde-saphyr also reads yes, no, on and off as
/// booleans where a boolean is expected, so a scalar is parsed the way the typed parse reads
/// it.
fn bool_fits(value: &Value) -> bool {
    match value {
        Value::Bool => true,
        Value::Text(text) | Value::Number(text) => serde_saphyr::from_str::<bool>(text).is_ok(),
        Value::Null | Value::Seq(_) | Value::Map(_) => false,
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, _value: bool) -> Result<Value, E> {
        Ok(Value::Bool)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.to_string()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Value, E> {
        Ok(Value::Number(value.to_string()))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Value, E> {
        Ok(Value::Number(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(Value::Number(value.to_string()))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::Text(value.to_owned()))
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Value, E> {
        Ok(Value::Text(String::from_utf8_lossy(value).into_owned()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key(Some(String::new())))
    }

    fn visit_none<E: de::Error>(self) -> Result<Key, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Key, E> {
        Ok(Key(Some(value.to_string())))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Key, E> {
        Ok(Key(Some(value.to_string())))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Key, E> {
        Ok(Key(Some(value.to_string())))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Key, E> {
        Ok(Key(Some(value.to_string())))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Key, E> {
        Ok(Key(Some(value.to_owned())))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Key, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Key(None))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Key(None))
    }
}
