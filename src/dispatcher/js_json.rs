//! Compact JSON exactly as JavaScript's `JSON.stringify(JSON.parse(text))` writes it.
//!
//! The seeds' receivers verify `HMAC(secret, JSON.stringify(req.body))`: the body they sign
//! over is what JavaScript writes after parsing ours. Outbound bodies are therefore written the
//! JavaScript way, or a payload such as `{"amount": 10.0}` (as the Python SDK sends it) would be
//! signed as `10.0` and verified as `10`. The differences from serde_json's compact output:
//!
//! - numbers are JavaScript doubles: `10.0` → `10`, `-0` → `0`, `1e21` → `1e+21`,
//!   `0.000001` → `0.000001`, integers beyond 2^53 lose their low digits as `JSON.parse` does;
//! - object keys that are array indices (`"0"`, `"42"`) come first, in numeric order, then the
//!   other keys in their order (JavaScript's property order).
//!
//! Strings are escaped identically by both (quote, backslash, control characters), so serde_json
//! writes them.

use serde_json::{Number, Value};

/// `value` as `JSON.stringify` writes it.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            // Array-index keys first, ascending; the others keep their order (stable sort).
            keys.sort_by_key(|k| array_index(k).map_or((1, 0), |i| (0, i)));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// A canonical array index (`"0"`, `"17"`; not `"017"`, not 2^32 - 1 or more).
fn array_index(key: &str) -> Option<u64> {
    let n: u64 = key.parse().ok()?;
    (n < u32::MAX as u64 && n.to_string() == key).then_some(n)
}

/// A number as JavaScript's `Number.prototype.toString` writes it.
fn number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        // Exact as a double: written as the integer.
        if i.unsigned_abs() <= 1 << 53 {
            return i.to_string();
        }
    }
    if let Some(u) = n.as_u64() {
        if u <= 1 << 53 {
            return u.to_string();
        }
    }
    js_double(n.as_f64().unwrap_or(0.0))
}

/// ECMAScript Number::toString(x) for a finite double: the shortest digits that round-trip
/// (Rust's `{:e}` gives them), laid out by JavaScript's rules.
fn js_double(x: f64) -> String {
    if x == 0.0 {
        return "0".into(); // -0 too
    }
    if !x.is_finite() {
        return "null".into(); // JSON.stringify writes NaN and Infinity as null
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let sci = format!("{:e}", x.abs()); // e.g. "1.2345e-7", "1e21"
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    // n: the decimal point sits after n digits (x = 0.digits × 10^n).
    let n = exp.parse::<i32>().expect("{:e} exponent is an integer") + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e = if e >= 0 {
            format!("+{e}")
        } else {
            e.to_string()
        };
        if k == 1 {
            format!("{digits}e{e}")
        } else {
            format!("{}.{}e{e}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_written_as_javascript_does() {
        let cases: [(&str, &str); 12] = [
            ("10.0", "10"),
            ("-0.0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("1.5e-7", "1.5e-7"),
            ("123.456", "123.456"),
            ("12345678901234567890", "12345678901234567000"),
            ("9007199254740993", "9007199254740992"),
            ("-42", "-42"),
            ("2.5E+3", "2500"),
        ];
        for (input, js) in cases {
            let v: Value = serde_json::from_str(input).unwrap();
            assert_eq!(to_string(&v), js, "{input}");
        }
    }

    #[test]
    fn array_index_keys_come_first() {
        let v: Value = serde_json::from_str(r#"{"b":1,"10":2,"a":3,"2":4,"01":5}"#).unwrap();
        assert_eq!(to_string(&v), r#"{"2":4,"10":2,"b":1,"a":3,"01":5}"#);
        assert_eq!(
            to_string(&json!({"s": "é\"\n\u{1}", "l": [1.0, null, true]})),
            r#"{"s":"é\"\n\u0001","l":[1,null,true]}"#
        );
    }
}
