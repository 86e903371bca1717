//! The subset of JSON Schema that `openapi.json` uses, read by the contract tests: `$ref`,
//! `oneOf`/`anyOf`/`allOf`, `enum`, objects, arrays, strings with lengths and patterns,
//! integers with bounds. [`Doc::generate`] makes a value the document calls valid; every string
//! it makes is checked against its pattern first, so a pattern it cannot satisfy (one without an
//! `example`) fails the test instead of being skipped.

use regex_lite::Regex;
use serde_json::{Map, Value};

/// Byte strings as hex.
pub const HEX: &str = "^([0-9a-fA-F]{2})*$";

/// How a generated value is chosen where the schema leaves a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Which `oneOf`/`anyOf` branch and which `enum` value (modulo their count).
    pub pick: usize,
    /// What optional parts hold.
    pub optional: Optional,
}

/// What a generated value's optional parts hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optional {
    /// Left out; arrays as short, strings as short and integers as small as allowed.
    Omitted,
    /// Present; arrays with at least one item, strings as long and integers as large as allowed.
    Included,
    /// Present, and `null` where the schema is nullable.
    Null,
}

impl Variant {
    /// Every variant the contract test sends: `picks` picks (every branch and every enum value,
    /// with [`Doc::most_choices`]), each with optional parts omitted, included and null.
    pub fn all(picks: usize) -> Vec<Variant> {
        let mut v = Vec::new();
        for pick in 0..picks {
            for optional in [Optional::Omitted, Optional::Included, Optional::Null] {
                v.push(Variant { pick, optional });
            }
        }
        v
    }
}

/// The OpenAPI document.
pub struct Doc {
    /// Its JSON.
    pub root: Value,
}

impl Doc {
    /// Parses the document.
    pub fn parse(text: &str) -> Self {
        Self {
            root: serde_json::from_str(text).expect("openapi.json is JSON"),
        }
    }

    /// `schema` with its `$ref` (and the `$ref`s that leads to) followed.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("local references only");
            schema = self
                .root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{r} does not resolve"));
        }
        schema
    }

    /// A named component schema.
    pub fn schema(&self, name: &str) -> &Value {
        let s = &self.root["components"]["schemas"][name];
        assert!(s.is_object(), "no schema {name}");
        s
    }

    /// The schema at `pointer` (from the document's root), its `$ref`s followed.
    pub fn at(&self, pointer: &str) -> &Value {
        self.resolve(
            self.root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("openapi.json has nothing at {pointer}")),
        )
    }

    /// Every schema a request may carry (its parameters and bodies, and their parts), each
    /// once, `$ref`s followed.
    pub fn request_schemas(&self) -> Vec<&Value> {
        let mut todo: Vec<&Value> = Vec::new();
        for ops in self.root["paths"].as_object().expect("paths").values() {
            for op in ops.as_object().expect("operations").values() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    todo.push(&self.resolve(p)["schema"]);
                }
                if let Some(body) = op.get("requestBody") {
                    todo.push(&body["content"]["application/json"]["schema"]);
                }
            }
        }
        let mut out: Vec<&Value> = Vec::new();
        while let Some(s) = todo.pop() {
            let s = self.resolve(s);
            if out.iter().any(|seen| std::ptr::eq(*seen, s)) {
                continue;
            }
            out.push(s);
            for key in ["oneOf", "anyOf", "allOf"] {
                todo.extend(s.get(key).and_then(Value::as_array).into_iter().flatten());
            }
            todo.extend(s.get("items"));
            todo.extend(
                s.get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|m| m.values()),
            );
        }
        out
    }

    /// The most choices one request schema offers: `enum` values or `oneOf`/`anyOf` branches.
    pub fn most_choices(&self) -> usize {
        self.request_schemas()
            .into_iter()
            .flat_map(|s| ["enum", "oneOf", "anyOf"].map(|k| s.get(k).and_then(Value::as_array)))
            .flatten()
            .map(Vec::len)
            .max()
            .unwrap_or(1)
    }

    /// A value `schema` calls valid, chosen by `v`.
    pub fn generate(&self, schema: &Value, v: Variant) -> Value {
        let s = self.resolve(schema);
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                return self.generate(&branches[v.pick % branches.len()], v);
            }
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            assert_eq!(all.len(), 1, "allOf of one schema only: {s}");
            return self.generate(&all[0], v);
        }
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            return values[v.pick % values.len()].clone();
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => self.object(s, v),
            Some("array") => {
                let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let max = s
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX);
                let n = match v.optional {
                    Optional::Omitted => min,
                    _ => min.max(1).min(max),
                };
                Value::Array((0..n).map(|_| self.generate(&s["items"], v)).collect())
            }
            Some("string") => Value::String(string(s, v)),
            Some("integer") => Value::from(integer(s, v)),
            Some("boolean") => Value::Bool(false),
            other => panic!("no value for a schema of type {other:?}: {s}"),
        }
    }

    fn object(&self, s: &Value, v: Variant) -> Value {
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let empty = Map::new();
        let properties = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for name in &required {
            assert!(
                properties.contains_key(*name),
                "required {name} is not a property: {s}"
            );
        }
        let mut out = Map::new();
        for (name, property) in properties {
            if !required.contains(&name.as_str()) {
                let nullable = self.resolve(property).get("nullable") == Some(&Value::Bool(true));
                match v.optional {
                    Optional::Omitted => continue,
                    Optional::Null if nullable => {
                        out.insert(name.clone(), Value::Null);
                        continue;
                    }
                    _ => {}
                }
            }
            out.insert(name.clone(), self.generate(property, v));
        }
        Value::Object(out)
    }
}

/// Whether `value` meets the string schema `s` (its pattern and lengths, in characters).
pub fn string_ok(s: &Value, value: &str) -> bool {
    let chars = value.chars().count() as u64;
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0);
    let max = s
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let pattern = s
        .get("pattern")
        .and_then(Value::as_str)
        .map(|p| Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}")));
    (min..=max).contains(&chars) && pattern.is_none_or(|p| p.is_match(value))
}

/// A string the schema calls valid: its `example`, zeros for a hex pattern, else letters.
fn string(s: &Value, v: Variant) -> String {
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = s
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|m| m as usize);
    let long = v.optional != Optional::Omitted;
    let text = if let Some(example) = s.get("example").and_then(Value::as_str) {
        example.to_string()
    } else {
        match s.get("pattern").and_then(Value::as_str) {
            Some(HEX) => {
                let n = if long { max.unwrap_or(min.max(2)) } else { min };
                "0".repeat(n)
            }
            Some(p) => match fixed_hex(p) {
                Some(n) => "0".repeat(n),
                None => panic!("pattern {p} has no example: give its schema one"),
            },
            None => "x".repeat(if long {
                max.unwrap_or(min.max(1))
            } else {
                min.max(1)
            }),
        }
    };
    assert!(
        string_ok(s, &text),
        "`{text}` does not meet its own schema {s}"
    );
    text
}

/// N, for the pattern `^[0-9a-fA-F]{N}$`.
fn fixed_hex(p: &str) -> Option<usize> {
    p.strip_prefix("^[0-9a-fA-F]{")?
        .strip_suffix("}$")?
        .parse()
        .ok()
}

/// An integer the schema allows: its minimum, or its maximum (by `maximum` or `format`) when
/// optional parts are included.
fn integer(s: &Value, v: Variant) -> u64 {
    let min = s.get("minimum").and_then(Value::as_u64).unwrap_or(0);
    let max = upper_bound(s);
    match (v.optional, max) {
        (Optional::Omitted, _) | (_, None) => min,
        (_, Some(max)) => max,
    }
}

/// An integer schema's upper bound: `maximum`, else what its `format` holds.
pub fn upper_bound(s: &Value) -> Option<u64> {
    s.get("maximum").and_then(Value::as_u64).or_else(|| {
        match s.get("format").and_then(Value::as_str)? {
            "uint64" => Some(u64::MAX),
            "uint32" => Some(u32::MAX.into()),
            "uint16" => Some(u16::MAX.into()),
            "uint8" => Some(u8::MAX.into()),
            _ => None,
        }
    })
}
