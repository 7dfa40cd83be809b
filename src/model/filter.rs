//! Content filters: "tell me when Jane replies". One small language, used wherever events flow
//! (`wait_for_events`, `list_events`, MCP Events subscriptions, outbound webhooks and relays,
//! the CLI's `--filter`).
//!
//! A filter is a JSON object of dot paths to conditions, all of which must hold:
//!
//! ```json
//! {"event": "message_received", "data.participantName": {"$startsWith": "Jane"}}
//! ```
//!
//! - A path goes into the event's payload (`data.participantName`, `items.0.sku`: a number
//!   indexes an array). `headers.<name>` is a kept request header (names are lowercase);
//!   `payload.<path>` reaches a payload key named `headers` or `payload`.
//! - A condition is a literal (equality; numbers compare by value, `1` equals `1.0`), an
//!   operator object (`{"$gte": 100}`; several operators must all hold), or a nested filter
//!   (`{"data": {"participantName": "Jane Smith"}}`, an object without `$` keys).
//! - `$and` / `$or` take arrays of filters, `$not` one filter; `$not` also negates an
//!   operator object or literal inside a condition.
//! - A missing path matches only `$ne`, `$nin`, `$exists: false` and negations.
//!
//! A filter is parsed once ([`Filter::parse`], which says what to fix in terms a model can
//! act on), bounded in size, depth and tests, and evaluated in memory on an event already
//! parsed: there are no regular expressions and evaluation is linear in the filter.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// At most this many bytes of JSON.
const MAX_BYTES: usize = 4096;
/// At most this deep (`$and`/`$or`/`$not`, nested filters and operator objects).
const MAX_DEPTH: usize = 8;
/// At most this many path tests in all.
const MAX_TESTS: usize = 32;
/// A path: at most this many bytes and segments.
const MAX_PATH_BYTES: usize = 200;
const MAX_SEGMENTS: usize = 16;
/// `$in` / `$nin`: at most this many values.
const MAX_LIST: usize = 100;

/// The operators a condition may use, in the order error messages list them.
pub const OPERATORS: &[&str] = &[
    "$eq",
    "$ne",
    "$in",
    "$nin",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$exists",
    "$contains",
    "$startsWith",
    "$not",
];
/// The keys that combine filters.
pub const COMBINATORS: &[&str] = &["$and", "$or", "$not"];

/// The example every description shows.
pub const EXAMPLE: &str = r#"{"data.participantName": {"$startsWith": "Jane"}}"#;

/// A parsed, validated filter. It serialises as the JSON it was parsed from, keys sorted (its
/// canonical form: two filters that say the same thing the same way compare equal).
#[derive(Clone)]
pub struct Filter {
    source: Value,
    root: Node,
}

/// Why a filter was refused: a sentence a model can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(String);

/// What a filter is evaluated against: an event's payload and, for received events, its kept
/// request headers.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub payload: &'a Value,
    pub headers: Option<&'a BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Test(Path, Cond),
}

#[derive(Debug, Clone, PartialEq)]
enum Root {
    Payload,
    Header(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Path {
    root: Root,
    segments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    All(Vec<Cond>),
    Not(Box<Cond>),
    Eq(Value),
    In(Vec<Value>),
    Order(Order, Value),
    Exists(bool),
    Contains(Value),
    StartsWith(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Order {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Filter {
    /// Parses and validates a filter.
    pub fn parse(value: &Value) -> Result<Filter, FilterError> {
        let size = serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
        if size > MAX_BYTES {
            return Err(FilterError(format!(
                "it is {size} bytes of JSON; a filter may be at most {MAX_BYTES}"
            )));
        }
        let mut parser = Parser { tests: 0 };
        let root = parser.filter(value, &[], 0, "")?;
        Ok(Filter {
            source: canonical(value),
            root,
        })
    }

    /// Parses a filter written as JSON text (the CLI's `--filter`, a stored column).
    pub fn parse_text(text: &str) -> Result<Filter, FilterError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| FilterError(format!("it is not JSON ({e}); e.g. {EXAMPLE}")))?;
        Filter::parse(&value)
    }

    /// Whether the event matches.
    pub fn matches(&self, subject: Subject<'_>) -> bool {
        self.root.eval(subject)
    }

    /// The filter as JSON (keys sorted).
    pub fn as_json(&self) -> &Value {
        &self.source
    }

    /// The filter as compact JSON text (what the store keeps).
    pub fn to_text(&self) -> String {
        self.source.to_string()
    }

    /// The JSON Schema of a filter, with `description` as its description.
    pub fn schema(description: &str) -> Value {
        json!({
            "type": "object",
            "description": description,
            "properties": {
                "$and": { "type": "array", "items": { "type": "object" }, "description": "Every one of these filters matches." },
                "$or": { "type": "array", "items": { "type": "object" }, "description": "At least one of these filters matches." },
                "$not": { "type": "object", "description": "This filter does not match." }
            },
            "additionalProperties": {
                "description": "A dot path's condition: a literal (equality), an operator object ($eq $ne $in $nin $gt $gte $lt $lte $exists $contains $startsWith $not), or a nested filter."
            },
            "examples": [
                { "data.participantName": { "$startsWith": "Jane" } },
                { "event": "ConversationComplete", "data.durationSeconds": { "$gt": 60 } },
                { "$or": [{ "data.amount": { "$gte": 100 } }, { "headers.x-github-event": "push" }] }
            ]
        })
    }
}

/// Filters are equal when their canonical forms are.
impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({})", self.source)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)
    }
}

impl Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Filter::parse(&value).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Filter {
    fn schema_name() -> Cow<'static, str> {
        "Filter".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let description = format!(
            "Only events whose content matches: dot paths into the payload (or headers.<name>) to a literal (equality) or an operator object, e.g. {EXAMPLE}. Operators: $eq $ne $in $nin $gt $gte $lt $lte $exists $contains $startsWith $not; combine filters with $and, $or, $not."
        );
        let Value::Object(map) = Filter::schema(&description) else {
            unreachable!("a schema is an object")
        };
        schemars::Schema::from(map)
    }
}

/// Keys sorted at every level.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

// --- parsing ---------------------------------------------------------------------------------

struct Parser {
    tests: usize,
}

/// `at` is where in the filter, as the keys that lead there (empty: the whole filter).
fn fail<T>(at: &str, what: impl fmt::Display) -> Result<T, FilterError> {
    match at {
        "" => Err(FilterError(what.to_string())),
        at => Err(FilterError(format!("at {}: {what}", quoted(at)))),
    }
}

/// A key of the filter as an error message quotes it: in backticks, bounded.
fn quoted(s: &str) -> String {
    format!("`{}`", crate::error::bounded(s, 80))
}

/// Where a key lies below `at`.
fn below(at: &str, key: &str) -> String {
    match at {
        "" => key.to_string(),
        at => format!("{at}.{key}"),
    }
}

impl Parser {
    /// A filter object: paths (relative to `prefix`) and combinators.
    fn filter(
        &mut self,
        value: &Value,
        prefix: &[String],
        depth: usize,
        at: &str,
    ) -> Result<Node, FilterError> {
        if depth > MAX_DEPTH {
            return fail(at, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let Value::Object(map) = value else {
            return fail(
                at,
                format!("a filter is a JSON object of dot paths to conditions, e.g. {EXAMPLE}"),
            );
        };
        let mut all = Vec::with_capacity(map.len());
        for (key, v) in map {
            let here = below(at, key);
            match key.as_str() {
                "$and" | "$or" => {
                    let Value::Array(items) = v else {
                        return fail(&here, format!("{key} takes an array of filters, e.g. {{\"{key}\": [{{\"data.a\": 1}}, {{\"data.b\": 2}}]}}"));
                    };
                    if items.is_empty() {
                        return fail(&here, format!("{key} needs at least one filter"));
                    }
                    let nodes = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            self.filter(item, prefix, depth + 1, &format!("{here}[{i}]"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    all.push(if key == "$and" {
                        Node::All(nodes)
                    } else {
                        Node::Any(nodes)
                    });
                }
                "$not" => {
                    all.push(Node::Not(Box::new(self.filter(
                        v,
                        prefix,
                        depth + 1,
                        &here,
                    )?)));
                }
                k if k.starts_with('$') => {
                    let hint = if OPERATORS.contains(&k) {
                        format!("{k} applies to a path: write {{\"data.field\": {{\"{k}\": …}}}}")
                    } else {
                        format!(
                            "{} is not a combinator; a filter's keys are dot paths or one of {}",
                            quoted(k),
                            COMBINATORS.join(", ")
                        )
                    };
                    return fail(at, hint);
                }
                path => {
                    let mut segments = prefix.to_vec();
                    segments.extend(split_path(path, &here)?);
                    all.push(self.condition_node(v, segments, depth + 1, &here)?);
                }
            }
        }
        Ok(match all.len() {
            1 => all.pop().expect("one node"),
            _ => Node::All(all),
        })
    }

    /// What a path maps to: an operator object, a nested filter, or a literal.
    fn condition_node(
        &mut self,
        value: &Value,
        segments: Vec<String>,
        depth: usize,
        at: &str,
    ) -> Result<Node, FilterError> {
        if let Value::Object(map) = value {
            let dollars = map.keys().filter(|k| k.starts_with('$')).count();
            if map.is_empty() {
                return fail(
                    at,
                    "an empty object; give a literal, an operator object like {\"$exists\": true}, or a nested filter",
                );
            }
            if dollars == 0 {
                // A nested filter: its paths continue this one.
                return self.filter(value, &segments, depth, at);
            }
            if dollars < map.len() {
                return fail(
                    at,
                    "mixes operators ($…) with plain keys; use either an operator object or a nested filter",
                );
            }
        }
        self.tests += 1;
        if self.tests > MAX_TESTS {
            return fail(at, format!("a filter may test at most {MAX_TESTS} paths"));
        }
        if segments.len() > MAX_SEGMENTS {
            return fail(
                at,
                format!("a path may have at most {MAX_SEGMENTS} segments"),
            );
        }
        let path = Path::of(segments, at)?;
        Ok(Node::Test(path, self.condition(value, depth, at)?))
    }

    /// An operator object or a literal.
    fn condition(&mut self, value: &Value, depth: usize, at: &str) -> Result<Cond, FilterError> {
        if depth > MAX_DEPTH {
            return fail(at, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let Value::Object(ops) = value else {
            return Ok(Cond::Eq(value.clone()));
        };
        if ops.is_empty() || ops.keys().any(|k| !k.starts_with('$')) {
            return fail(
                at,
                "an operator object has only $ keys, e.g. {\"$gte\": 100}; to compare with an object use {\"$eq\": {…}}",
            );
        }
        let mut all = Vec::with_capacity(ops.len());
        for (op, operand) in ops {
            let here = below(at, op);
            all.push(match op.as_str() {
                "$eq" => Cond::Eq(operand.clone()),
                "$ne" => Cond::Not(Box::new(Cond::Eq(operand.clone()))),
                "$in" => Cond::In(list(operand, &here)?),
                "$nin" => Cond::Not(Box::new(Cond::In(list(operand, &here)?))),
                "$gt" => Cond::Order(Order::Gt, bound(operand, &here)?),
                "$gte" => Cond::Order(Order::Gte, bound(operand, &here)?),
                "$lt" => Cond::Order(Order::Lt, bound(operand, &here)?),
                "$lte" => Cond::Order(Order::Lte, bound(operand, &here)?),
                "$exists" => match operand {
                    Value::Bool(b) => Cond::Exists(*b),
                    _ => return fail(&here, "takes true or false"),
                },
                "$contains" => match operand {
                    Value::Object(_) => {
                        return fail(&here, "takes a string (substring) or a literal (array member)")
                    }
                    v => Cond::Contains(v.clone()),
                },
                "$startsWith" => match operand {
                    Value::String(s) => Cond::StartsWith(s.clone()),
                    _ => return fail(&here, "takes a string"),
                },
                "$not" => Cond::Not(Box::new(self.condition(operand, depth + 1, &here)?)),
                "$and" | "$or" => {
                    return fail(
                        &here,
                        format!("{op} combines whole filters: write {{\"{op}\": [{{\"data.a\": 1}}, {{\"data.b\": 2}}]}} at the filter's level"),
                    )
                }
                other => {
                    return fail(
                        at,
                        format!(
                            "{} is not an operator; use one of {}",
                            quoted(other),
                            OPERATORS.join(", ")
                        ),
                    )
                }
            });
        }
        Ok(match all.len() {
            1 => all.pop().expect("one condition"),
            _ => Cond::All(all),
        })
    }
}

fn list(operand: &Value, at: &str) -> Result<Vec<Value>, FilterError> {
    match operand {
        Value::Array(items) if items.len() <= MAX_LIST => Ok(items.clone()),
        Value::Array(_) => fail(at, format!("takes at most {MAX_LIST} values")),
        _ => fail(at, "takes an array of values, e.g. [\"a\", \"b\"]"),
    }
}

fn bound(operand: &Value, at: &str) -> Result<Value, FilterError> {
    match operand {
        Value::Number(_) | Value::String(_) => Ok(operand.clone()),
        _ => fail(
            at,
            "takes a number or a string (strings compare in byte order: ISO timestamps work)",
        ),
    }
}

fn split_path(path: &str, at: &str) -> Result<Vec<String>, FilterError> {
    if path.len() > MAX_PATH_BYTES {
        return fail(at, format!("a path may be at most {MAX_PATH_BYTES} bytes"));
    }
    let segments: Vec<String> = path.split('.').map(str::to_string).collect();
    if segments.iter().any(String::is_empty) {
        return fail(
            at,
            "a path is dot-separated keys with none empty, e.g. data.participantName",
        );
    }
    Ok(segments)
}

impl Path {
    fn of(mut segments: Vec<String>, at: &str) -> Result<Path, FilterError> {
        match segments.first().map(String::as_str) {
            Some("headers") => {
                if segments.len() < 2 {
                    return fail(
                        at,
                        "name a header: headers.<name>, e.g. headers.x-github-event",
                    );
                }
                // Header names may hold dots: the rest of the path is the name.
                let name = segments[1..].join(".").to_ascii_lowercase();
                Ok(Path {
                    root: Root::Header(name),
                    segments: vec![],
                })
            }
            Some("payload") => {
                segments.remove(0);
                Ok(Path {
                    root: Root::Payload,
                    segments,
                })
            }
            _ => Ok(Path {
                root: Root::Payload,
                segments,
            }),
        }
    }

    fn resolve<'a>(&self, subject: Subject<'a>) -> Option<Cow<'a, Value>> {
        match &self.root {
            Root::Header(name) => subject
                .headers?
                .get(name)
                .map(|v| Cow::Owned(Value::String(v.clone()))),
            Root::Payload => {
                let mut at = subject.payload;
                for s in &self.segments {
                    at = match at {
                        Value::Object(m) => m.get(s)?,
                        Value::Array(items) => items.get(s.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(Cow::Borrowed(at))
            }
        }
    }
}

// --- evaluation ------------------------------------------------------------------------------

impl Node {
    fn eval(&self, subject: Subject<'_>) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.eval(subject)),
            Node::Any(nodes) => nodes.iter().any(|n| n.eval(subject)),
            Node::Not(n) => !n.eval(subject),
            Node::Test(path, cond) => cond.eval(path.resolve(subject).as_deref()),
        }
    }
}

impl Cond {
    fn eval(&self, value: Option<&Value>) -> bool {
        match self {
            Cond::All(conds) => conds.iter().all(|c| c.eval(value)),
            Cond::Not(c) => !c.eval(value),
            Cond::Exists(want) => value.is_some() == *want,
            _ => value.is_some_and(|v| self.test(v)),
        }
    }

    /// A condition on a value that is there.
    fn test(&self, v: &Value) -> bool {
        match self {
            Cond::Eq(want) => same(v, want),
            Cond::In(wants) => wants.iter().any(|w| same(v, w)),
            Cond::Order(order, bound) => {
                let ord = match (v, bound) {
                    (Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
                    (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
                    _ => None,
                };
                ord.is_some_and(|o| match order {
                    Order::Gt => o.is_gt(),
                    Order::Gte => o.is_ge(),
                    Order::Lt => o.is_lt(),
                    Order::Lte => o.is_le(),
                })
            }
            Cond::Contains(want) => match (v, want) {
                (Value::String(s), Value::String(part)) => s.contains(part.as_str()),
                (Value::Array(items), w) => items.iter().any(|i| same(i, w)),
                _ => false,
            },
            Cond::StartsWith(prefix) => v.as_str().is_some_and(|s| s.starts_with(prefix.as_str())),
            Cond::All(_) | Cond::Not(_) | Cond::Exists(_) => self.eval(Some(v)),
        }
    }
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y).is_some_and(|o| o.is_eq()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<std::cmp::Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(v: Value) -> Filter {
        Filter::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    fn refused(v: Value) -> String {
        Filter::parse(&v).unwrap_err().to_string()
    }

    fn jane() -> Value {
        json!({
            "event": "message_received",
            "data": {
                "participantName": "Jane Smith", "amount": 120, "score": 0.5,
                "tags": ["vip", "warm"], "items": [{"sku": "a1"}, {"sku": "b2"}],
                "nothing": null, "at": "2026-12-02T10:00:00Z"
            }
        })
    }

    fn on(f: &Filter, payload: &Value) -> bool {
        f.matches(Subject {
            payload,
            headers: None,
        })
    }

    #[test]
    fn every_operator_matches_and_misses() {
        let p = jane();
        let cases = [
            (json!({"event": "message_received"}), true),
            (json!({"event": "message_sent"}), false),
            (json!({"data.participantName": {"$eq": "Jane Smith"}}), true),
            (
                json!({"data.participantName": {"$ne": "Jane Smith"}}),
                false,
            ),
            (json!({"data.missing": {"$ne": "x"}}), true),
            (json!({"data.amount": {"$in": [100, 120.0]}}), true),
            (json!({"data.amount": {"$nin": [100, 120]}}), false),
            (json!({"data.missing": {"$nin": [1]}}), true),
            (json!({"data.amount": {"$gt": 119.5}}), true),
            (json!({"data.amount": {"$gt": 120}}), false),
            (json!({"data.amount": {"$gte": 120}}), true),
            (json!({"data.score": {"$lt": 1}}), true),
            (json!({"data.score": {"$lte": 0.4}}), false),
            (json!({"data.amount": {"$gte": 100, "$lt": 200}}), true),
            (json!({"data.amount": {"$gt": "100"}}), false),
            (json!({"data.at": {"$gte": "2026-12-01"}}), true),
            (json!({"data.nothing": {"$exists": true}}), true),
            (json!({"data.nothing": null}), true),
            (json!({"data.missing": {"$exists": false}}), true),
            (json!({"data.missing": {"$exists": true}}), false),
            (
                json!({"data.participantName": {"$contains": "Smith"}}),
                true,
            ),
            (json!({"data.tags": {"$contains": "vip"}}), true),
            (json!({"data.tags": {"$contains": "cold"}}), false),
            (
                json!({"data.participantName": {"$startsWith": "Jane"}}),
                true,
            ),
            (
                json!({"data.participantName": {"$startsWith": "jane"}}),
                false,
            ),
            (json!({"data.items.1.sku": "b2"}), true),
            (json!({"data.items.2.sku": "b2"}), false),
            (json!({"data.items.x": "b2"}), false),
            (
                json!({"data": {"participantName": "Jane Smith", "amount": 120}}),
                true,
            ),
            (json!({"data": {"participantName": "Jane Doe"}}), false),
            (json!({"data.tags": ["vip", "warm"]}), true),
            (
                json!({"data.items": {"$eq": [{"sku": "a1"}, {"sku": "b2"}]}}),
                true,
            ),
            (json!({"$or": [{"event": "x"}, {"data.amount": 120}]}), true),
            (
                json!({"$and": [{"event": "message_received"}, {"data.amount": 1}]}),
                false,
            ),
            (json!({"$not": {"data.amount": 120}}), false),
            (json!({"data.amount": {"$not": {"$gt": 500}}}), true),
            (json!({"data.missing": {"$not": {"$gt": 500}}}), true),
            (json!({"payload.event": "message_received"}), true),
            (json!({}), true),
        ];
        for (f, want) in cases {
            assert_eq!(on(&filter(f.clone()), &p), want, "{f}");
        }
    }

    #[test]
    fn the_documented_examples_match_the_seed_platforms_payloads() {
        use crate::catalog::find;
        use crate::model::Provider;
        let voyager = find("message_received", Provider::Generic)
            .unwrap()
            .example
            .clone();
        let jane =
            json!({"event": "message_received", "data.participantName": {"$startsWith": "Jane"}});
        assert!(on(&filter(jane), &voyager));
        assert!(on(&Filter::parse_text(EXAMPLE).unwrap(), &voyager));
        let kakiyo = find("linkedin.message.received", Provider::Kakiyo)
            .unwrap()
            .example
            .clone();
        let interested = json!({"event": "linkedin.message.received", "data.message": {"$contains": "interested"}});
        assert!(on(&filter(interested), &kakiyo));
        let call = find("ConversationComplete", Provider::Generic)
            .unwrap()
            .example
            .clone();
        let long = json!({"event": "ConversationComplete", "data.durationSeconds": {"$gt": 60}});
        assert!(on(&filter(long.clone()), &call));
        let mut not_hung_up = long;
        not_hung_up["data.endReason"] = json!({"$ne": "caller_hangup"});
        assert!(
            !on(&filter(not_hung_up), &call),
            "this one the caller ended"
        );
    }

    #[test]
    fn headers_are_looked_up_by_lowercase_name() {
        let headers = BTreeMap::from([("x-github-event".to_string(), "push".to_string())]);
        let payload = json!({"headers": {"x-github-event": "fake"}});
        let subject = Subject {
            payload: &payload,
            headers: Some(&headers),
        };
        assert!(filter(json!({"headers.X-GitHub-Event": "push"})).matches(subject));
        assert!(filter(json!({"payload.headers.x-github-event": "fake"})).matches(subject));
        assert!(!filter(json!({"headers.x-other": {"$exists": true}})).matches(subject));
        let without = Subject {
            payload: &payload,
            headers: None,
        };
        assert!(!filter(json!({"headers.x-github-event": "push"})).matches(without));
    }

    #[test]
    fn mistakes_are_explained() {
        let e = refused(json!({"data.amount": {"$gtt": 5}}));
        assert!(
            e.contains("`$gtt` is not an operator; use one of $eq, $ne"),
            "{e}"
        );
        assert!(e.contains("data.amount"), "{e}");
        assert!(refused(json!({"$eq": 1})).contains("applies to a path"));
        assert!(refused(json!({"$where": "x"})).contains("is not a combinator"));
        assert!(refused(json!(["a"])).contains("JSON object of dot paths"));
        assert!(refused(json!({"$or": {"a": 1}})).contains("array of filters"));
        assert!(refused(json!({"$or": []})).contains("at least one"));
        assert!(refused(json!({"a": {"$in": 3}})).contains("array of values"));
        assert!(refused(json!({"a": {"$gt": true}})).contains("number or a string"));
        assert!(refused(json!({"a": {"$exists": 1}})).contains("true or false"));
        assert!(refused(json!({"a": {"$startsWith": 1}})).contains("takes a string"));
        assert!(refused(json!({"a": {"$gt": 1, "b": 2}})).contains("mixes operators"));
        assert!(refused(json!({"a": {}})).contains("empty object"));
        assert!(refused(json!({"a..b": 1})).contains("none empty"));
        assert!(refused(json!({"headers": 1})).contains("name a header"));
        assert!(refused(json!({"a": {"$or": [{"b": 1}]}})).contains("combines whole filters"));
    }

    #[test]
    fn filters_are_bounded() {
        let big = json!({"a": {"$in": (0..2000).collect::<Vec<_>>()}});
        assert!(refused(big).contains("bytes of JSON"));
        let many = json!({"a": {"$in": (0..101).collect::<Vec<_>>()}});
        assert!(refused(many).contains("at most 100 values"));
        let tests: Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(refused(Value::Object(tests)).contains("at most 32 paths"));
        let mut deep = json!({"a": 1});
        for _ in 0..10 {
            deep = json!({ "$not": deep });
        }
        assert!(refused(deep).contains("deeper than 8"));
        let long = "a.".repeat(20) + "z";
        assert!(refused(json!({ long: 1 })).contains("at most 16 segments"));
    }

    #[test]
    fn canonical_form_sorts_keys_and_round_trips() {
        let a = filter(json!({"b": 1, "a": {"$lt": 5, "$gt": 1}}));
        let b = filter(json!({"a": {"$gt": 1, "$lt": 5}, "b": 1}));
        assert_eq!(a.to_text(), b.to_text());
        assert_eq!(a.to_text(), r#"{"a":{"$gt":1,"$lt":5},"b":1}"#);
        let again = Filter::parse_text(&a.to_text()).unwrap();
        assert_eq!(again, a);
        assert!(Filter::parse_text("{nope")
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        let err = serde_json::from_value::<Filter>(json!({"a": {"$gtt": 1}})).unwrap_err();
        assert!(err.to_string().contains("is not an operator"), "{err}");
    }
}
