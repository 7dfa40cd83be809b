//! Signed JSON bodies: the one strict parse every inbound body goes through, and the compact
//! re-serialisations that senders signing `JSON.stringify(payload)` or Python's `json.dumps`
//! actually sign instead of the bytes they send.
//!
//! A duplicate key is refused: `{"amount":999999,"amount":1}` reads as 999999 to one consumer
//! and 1 to another, and its compact form (1) is what a signature over different bytes
//! matched. A re-serialisation that verified is what gets stored (see `Verified::reserialised`),
//! so the stored bytes are exactly the signed ones.

use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses a JSON body, refusing a duplicate key at any depth.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The compact re-serialisations a sender may have signed, besides `raw` itself: compact JSON
/// with key order kept (`JSON.stringify`), then with non-ASCII `\u`-escaped (`json.dumps`).
pub fn reserialisations(value: &Value, raw: &[u8]) -> Vec<Vec<u8>> {
    let compact = value.to_string();
    let ascii = escape_non_ascii(&compact);
    let mut out = vec![];
    if compact.as_bytes() != raw {
        out.push(compact.clone().into_bytes());
    }
    if ascii != compact && ascii.as_bytes() != raw {
        out.push(ascii.into_bytes());
    }
    out
}

/// `\uXXXX`-escapes every non-ASCII character (surrogate pairs above U+FFFF), as Python's
/// `ensure_ascii` does. Safe on serialised JSON: non-ASCII only occurs inside strings.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Builds a `Value` as serde_json's own visitor does, but a map refuses a key it already holds.
/// (serde_json's recursion limit applies: it lives in the deserializer.)
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Strict.deserialize(d).map(StrictValue)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {}",
                    crate::error::quote(&key)
                )));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_serde_json_parses_in_the_same_key_order() {
        let body =
            br#"{"z":[1,-2,3.5,1e400,null,true,"s\u00e9"],"a":{"b":{}},"n":18446744073709551615}"#;
        let ours = parse_strict(body);
        // 1e400 is out of range for both.
        assert!(ours.is_err() && serde_json::from_slice::<Value>(body).is_err());
        let body =
            br#"{"z":[1,-2,3.5,0.1,null,true,"s\u00e9"],"a":{"b":{}},"n":18446744073709551615}"#;
        let ours = parse_strict(body).unwrap();
        assert_eq!(ours, serde_json::from_slice::<Value>(body).unwrap());
        assert_eq!(
            ours.to_string(),
            serde_json::from_slice::<Value>(body).unwrap().to_string()
        );
    }

    #[test]
    fn a_duplicate_key_is_refused_at_any_depth() {
        let e = parse_strict(br#"{"event":"payment","amount":999999,"amount":1}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key"), "{e}");
        assert!(parse_strict(br#"{"a":[{"x":1,"x":2}]}"#).is_err());
        assert!(parse_strict(br#"{"a":{"x":1},"b":{"x":2}}"#).is_ok());
        assert!(parse_strict(br#"{"a":1} trailing"#).is_err());
    }

    #[test]
    fn reserialisations_cover_js_and_python() {
        let body = r#"{ "b": 1, "a": "café / naïve" }"#.as_bytes();
        let c = reserialisations(&parse_strict(body).unwrap(), body);
        assert_eq!(c[0], r#"{"b":1,"a":"café / naïve"}"#.as_bytes());
        assert_eq!(c[1], r#"{"b":1,"a":"caf\u00e9 / na\u00efve"}"#.as_bytes());
        let compact = br#"{"b":1}"#;
        assert!(reserialisations(&parse_strict(compact).unwrap(), compact).is_empty());
        assert_eq!(escape_non_ascii("😀"), "\\ud83d\\ude00");
    }
}
