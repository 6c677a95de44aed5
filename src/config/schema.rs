//! The shape of the configuration, read from the `Raw*` types themselves,
//! and the check of a loose configuration tree against it.
//!
//! Why: serde stops at the first value of the wrong type, and a key list
//! written by hand goes stale. `shape_of` drives a type's own `Deserialize`
//! with a probing deserializer that answers every request with an empty
//! value and writes down what was asked for (the field names serde passes
//! to `deserialize_struct`, the element of a `Vec`, the type of a leaf).
//! `check` then walks the merged file + environment tree against that
//! shape, names every wrong type and unknown key by its dotted path, and
//! hands back a tree that typed deserialization accepts.
//!
//! Owns: the shape and the type check. Must not: judge values (ranges,
//! URLs, durations); that is `validate`'s work.

use std::collections::BTreeMap;

use serde::de::value::Error as ProbeError;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;

use super::Problem;

/// What a configuration key holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Bool,
    /// A whole number in `0..=max` (the Rust type's range).
    UInt {
        max: u64,
    },
    /// A whole number in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    Float,
    Str,
    /// A table with fixed keys (a struct).
    Table(BTreeMap<String, Shape>),
    /// An array whose elements share one shape (`[[groups]]`, `to = [...]`).
    Array(Box<Shape>),
    /// A table of free keys whose values share one shape (`headers`).
    Map(Box<Shape>),
    /// Not asked for (only while probing).
    Unknown,
}

/// The shape of `T`, as its `Deserialize` implementation asks for it.
/// Fails for types that need a self-describing format (`deserialize_any`):
/// a configuration key must have one type.
pub fn shape_of<T: DeserializeOwned>() -> Result<Shape, String> {
    let mut shape = Shape::Unknown;
    T::deserialize(Probe(&mut shape)).map_err(|e| e.to_string())?;
    Ok(shape)
}

/// Every key of `shape` as a dotted path, tables of arrays without an
/// index (`beacon_nodes.url`), in sorted order. A free-key table counts as
/// one key (`beacon_nodes.headers`).
pub fn keys(shape: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    collect_keys(shape, "", &mut out);
    out
}

fn collect_keys(shape: &Shape, path: &str, out: &mut Vec<String>) {
    match shape {
        Shape::Table(fields) => {
            for (name, field) in fields {
                collect_keys(field, &join(path, name), out);
            }
        }
        Shape::Array(element) if matches!(**element, Shape::Table(_)) => {
            collect_keys(element, path, out)
        }
        _ if !path.is_empty() => out.push(path.to_owned()),
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

struct Probe<'a>(&'a mut Shape);

impl Probe<'_> {
    fn record(self, shape: Shape) {
        *self.0 = shape;
    }
}

macro_rules! probe_uint {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
            self.record(Shape::UInt { max: <$ty>::MAX as u64 });
            visitor.visit_u64(0)
        }
    )*};
}

macro_rules! probe_int {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
            self.record(Shape::Int { min: <$ty>::MIN as i64, max: <$ty>::MAX as i64 });
            visitor.visit_i64(0)
        }
    )*};
}

macro_rules! probe_unsupported {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ProbeError> {
            Err(de::Error::custom(concat!(
                "a configuration type asked for `", stringify!($method),
                "`, which a configuration file cannot express with one fixed type"
            )))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    probe_uint!(deserialize_u8: u8, deserialize_u16: u16, deserialize_u32: u32, deserialize_u64: u64);
    probe_int!(deserialize_i8: i8, deserialize_i16: i16, deserialize_i32: i32, deserialize_i64: i64);
    probe_unsupported!(
        deserialize_any,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_identifier
    );

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Bool);
        visitor.visit_bool(false)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Float);
        visitor.visit_f32(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Float);
        visitor.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Str);
        visitor.visit_char(' ')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Str);
        visitor.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Str);
        visitor.visit_str("")
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        // An optional key has the shape of its value.
        visitor.visit_some(self)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_unit(visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let mut element = Shape::Unknown;
        let value = visitor.visit_seq(OneElement(Some(&mut element)))?;
        self.record(Shape::Array(Box::new(element)));
        Ok(value)
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_unit(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_unit(visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let mut value_shape = Shape::Unknown;
        let value = visitor.visit_map(OneEntry {
            key_given: false,
            value: Some(&mut value_shape),
        })?;
        self.record(Shape::Map(Box::new(value_shape)));
        Ok(value)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let mut table = BTreeMap::new();
        let value = visitor.visit_map(Fields {
            fields,
            next: 0,
            table: &mut table,
        })?;
        self.record(Shape::Table(table));
        Ok(value)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_unit(visitor)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
}

/// Offers every field of a struct once, each with a probe for its value.
struct Fields<'a> {
    fields: &'static [&'static str],
    next: usize,
    table: &'a mut BTreeMap<String, Shape>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        match self.fields.get(self.next) {
            None => Ok(None),
            Some(name) => seed.deserialize((*name).into_deserializer()).map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        let Some(name) = self.fields.get(self.next) else {
            return Err(de::Error::custom("value asked for before its key"));
        };
        self.next += 1;
        let slot = self
            .table
            .entry((*name).to_owned())
            .or_insert(Shape::Unknown);
        seed.deserialize(Probe(slot))
    }
}

/// A sequence of exactly one element, probed.
struct OneElement<'a>(Option<&'a mut Shape>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ProbeError> {
        match self.0.take() {
            None => Ok(None),
            Some(slot) => seed.deserialize(Probe(slot)).map(Some),
        }
    }
}

/// A map of exactly one entry; the key's shape is not kept (TOML keys are
/// strings), the value's is.
struct OneEntry<'a> {
    key_given: bool,
    value: Option<&'a mut Shape>,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        if self.key_given || self.value.is_none() {
            return Ok(None);
        }
        self.key_given = true;
        let mut key = Shape::Unknown;
        seed.deserialize(Probe(&mut key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        match self.value.take() {
            Some(slot) => seed.deserialize(Probe(slot)),
            None => Err(de::Error::custom("value asked for twice")),
        }
    }
}

/// Checks `value` (the key `key`) against `shape`. Every value of the
/// wrong type and every unknown key becomes a problem named by its dotted
/// path, and is left out of the result (an array element is replaced by an
/// empty value of its shape instead, so the indices in later messages stay
/// those of the file). Strings that stand for numbers or booleans (all
/// environment variables are strings) become numbers or booleans; numbers
/// given for a text key become text (`chat_id = -100123`). The result
/// deserializes into the probed type without error.
pub fn check(value: Value, shape: &Shape, key: &str, problems: &mut Vec<Problem>) -> Option<Value> {
    let complain = |problems: &mut Vec<Problem>, message: String| {
        problems.push(Problem {
            key: key.to_owned(),
            message,
        })
    };
    match (shape, value) {
        // Nothing given (an empty environment variable is not nothing: it
        // is an empty string).
        (_, Value::Null) => None,
        (Shape::Unknown, v) => Some(v),
        (Shape::Bool, Value::Bool(b)) => Some(Value::Bool(b)),
        // The words the `config` crate has always taken for a boolean
        // (environment variables included): kept, so no working setup breaks.
        (Shape::Bool, Value::String(s)) if boolean_word(&s).is_some() => {
            boolean_word(&s).map(Value::Bool)
        }
        (Shape::Bool, v) => {
            complain(
                problems,
                format!("expected true or false, found {}", describe(&v)),
            );
            None
        }
        (Shape::UInt { max }, v) => match whole_number(&v) {
            Some(n) if n >= 0 && n <= i128::from(*max) => Some(Value::from(n as u64)),
            Some(_) => {
                complain(
                    problems,
                    format!("{} is out of range: use 0 to {max}", describe(&v)),
                );
                None
            }
            None => {
                complain(
                    problems,
                    format!("expected a whole number, found {}", describe(&v)),
                );
                None
            }
        },
        (Shape::Int { min, max }, v) => match whole_number(&v) {
            Some(n) if (*min as i128..=*max as i128).contains(&n) => Some(Value::from(n as i64)),
            Some(_) => {
                complain(
                    problems,
                    format!("{} is out of range: use {min} to {max}", describe(&v)),
                );
                None
            }
            None => {
                complain(
                    problems,
                    format!("expected a whole number, found {}", describe(&v)),
                );
                None
            }
        },
        (Shape::Float, v) => {
            let n = match &v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match n.and_then(serde_json::Number::from_f64) {
                Some(n) => Some(Value::Number(n)),
                None => {
                    complain(
                        problems,
                        format!("expected a number, found {}", describe(&v)),
                    );
                    None
                }
            }
        }
        (Shape::Str, Value::String(s)) => Some(Value::String(s)),
        (Shape::Str, Value::Number(n)) => Some(Value::String(n.to_string())),
        (Shape::Str, v) => {
            // The value is not shown: a text key may hold a secret.
            complain(
                problems,
                format!("expected a text in quotes, found {}", kind(&v)),
            );
            None
        }
        (Shape::Table(fields), Value::Object(map)) => {
            let mut out = serde_json::Map::new();
            for (name, v) in map {
                let path = join(key, &name);
                match fields.get(&name) {
                    Some(field) => {
                        if let Some(v) = check(v, field, &path, problems) {
                            out.insert(name, v);
                        }
                    }
                    None => problems.push(Problem {
                        key: path,
                        message: unknown_key_message(&name, fields),
                    }),
                }
            }
            Some(Value::Object(out))
        }
        (Shape::Table(_), v) => {
            complain(problems, format!("expected a table, found {}", kind(&v)));
            None
        }
        (Shape::Array(element), Value::Array(items)) => Some(Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    check(v, element, &format!("{key}[{i}]"), problems)
                        .unwrap_or_else(|| empty(element))
                })
                .collect(),
        )),
        (Shape::Array(_), v) => {
            complain(
                problems,
                format!("expected an array [ … ], found {}", kind(&v)),
            );
            None
        }
        (Shape::Map(element), Value::Object(map)) => {
            let mut out = serde_json::Map::new();
            for (name, v) in map {
                let path = join(key, &name);
                if let Some(v) = check(v, element, &path, problems) {
                    out.insert(name, v);
                }
            }
            Some(Value::Object(out))
        }
        (Shape::Map(_), v) => {
            complain(problems, format!("expected a table, found {}", kind(&v)));
            None
        }
    }
}

fn boolean_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A whole number from a number or a string of digits; `None` for
/// anything else (fractions included).
fn whole_number(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "a whole number",
        Value::String(_) => "a text",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// The kind and, for scalars, the value (only used where a number or a
/// boolean was expected, so the value is never a secret).
fn describe(v: &Value) -> String {
    match v {
        Value::Bool(_) | Value::Number(_) => format!("{} ({v})", kind(v)),
        Value::String(s) => format!("the text {s:?}"),
        _ => kind(v).to_owned(),
    }
}

fn unknown_key_message(name: &str, fields: &BTreeMap<String, Shape>) -> String {
    // A typo is the usual cause; name the nearest key when it is close.
    let nearest = fields
        .keys()
        .map(|k| (edit_distance(name, k), k))
        .min()
        .filter(|(d, _)| *d <= 2);
    match nearest {
        Some((_, k)) => format!("unknown key (did you mean `{k}`?)"),
        None => "unknown key".to_owned(),
    }
}

/// Levenshtein distance, for the "did you mean" hint.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(here).min(row[j])
            };
            prev = here;
        }
    }
    row[b.len()]
}

/// A value of `shape` that stands for "given, but unusable": keeps an
/// array's later indices where the file has them.
fn empty(shape: &Shape) -> Value {
    match shape {
        Shape::Bool => Value::Bool(false),
        Shape::UInt { .. } | Shape::Int { .. } => Value::from(0),
        Shape::Float => Value::from(0.0),
        Shape::Str => Value::String(String::new()),
        Shape::Array(_) => Value::Array(Vec::new()),
        Shape::Table(_) | Shape::Map(_) | Shape::Unknown => Value::Object(serde_json::Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        name: Option<String>,
        #[serde(default)]
        to: Vec<String>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        limit: Option<u32>,
        share: Option<f64>,
        on: Option<bool>,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        inner: Option<Inner>,
    }

    #[test]
    fn the_shape_is_read_from_the_type() {
        let shape = shape_of::<Outer>().unwrap();
        assert_eq!(
            keys(&shape),
            [
                "headers",
                "inner.name",
                "inner.to",
                "items.name",
                "items.to",
                "limit",
                "on",
                "share"
            ]
        );
        let Shape::Table(fields) = &shape else {
            panic!("{shape:?}")
        };
        assert_eq!(
            fields["limit"],
            Shape::UInt {
                max: u32::MAX as u64
            }
        );
        assert_eq!(fields["headers"], Shape::Map(Box::new(Shape::Str)));
    }

    fn run(value: Value) -> (Option<Value>, Vec<String>) {
        let shape = shape_of::<Outer>().unwrap();
        let mut problems = Vec::new();
        let out = check(value, &shape, "", &mut problems);
        (out, problems.into_iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn every_wrong_type_and_unknown_key_is_named_and_left_out() {
        let cases: &[(&str, Value, &[&str], Value)] = &[
            (
                "all good, strings from the environment converted",
                json!({"limit": "7", "share": "0.5", "on": "Yes", "inner": {"name": 3}}),
                &[],
                json!({"limit": 7, "share": 0.5, "on": true, "inner": {"name": "3"}}),
            ),
            (
                "three wrong types in three places",
                json!({"limit": "many", "on": 1, "items": [{"name": "a"}, {"to": "x"}]}),
                &[
                    "limit: expected a whole number, found the text \"many\"",
                    "on: expected true or false, found a whole number (1)",
                    "items[1].to: expected an array [ … ], found a text",
                ],
                json!({"items": [{"name": "a"}, {}]}),
            ),
            (
                "out of range and negative",
                json!({"limit": 5_000_000_000u64, "inner": {"to": ["a", -1, true]}}),
                &[
                    "limit: a whole number (5000000000) is out of range: use 0 to 4294967295",
                    "inner.to[2]: expected a text in quotes, found a boolean",
                ],
                json!({"inner": {"to": ["a", "-1", ""]}}),
            ),
            (
                "unknown keys, with a hint when close",
                json!({"limt": 1, "colour": "red", "inner": {"nme": "x"}}),
                &[
                    "colour: unknown key",
                    "inner.nme: unknown key (did you mean `name`?)",
                    "limt: unknown key (did you mean `limit`?)",
                ],
                json!({"inner": {}}),
            ),
            (
                "an array element that is not a table keeps its index",
                json!({"items": ["x", {"name": "b"}]}),
                &["items[0]: expected a table, found a text"],
                json!({"items": [{}, {"name": "b"}]}),
            ),
        ];
        for (name, input, want_problems, want) in cases {
            let (out, mut problems) = run(input.clone());
            problems.sort();
            let mut want_problems = want_problems.to_vec();
            want_problems.sort();
            assert_eq!(problems, want_problems, "{name}");
            assert_eq!(out.as_ref(), Some(want), "{name}");
            // What is left deserializes.
            if let Err(e) = serde_json::from_value::<Outer>(want.clone()) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn secrets_in_text_keys_are_never_echoed() {
        let (_, problems) = run(json!({"inner": {"name": ["hunter2"]}}));
        assert_eq!(
            problems,
            ["inner.name: expected a text in quotes, found an array"]
        );
    }
}
