//! Webhook signatures: HMAC-SHA256 primitives, inbound verification per provider preset, and
//! the headers this server puts on its own outbound deliveries.
//!
//! Everything here is pure (bytes and headers in, verdict out) so it can be tested with fixed
//! vectors. Comparisons go through `Mac::verify_slice`, which is constant-time.

mod generic;
mod github;
mod json;
mod shopify;
mod slack;
mod standard;
mod stripe;

pub use json::parse_strict;
pub use standard::parse_signatures as parse_standard_signatures;
pub use stripe::parse_header as parse_stripe_header;

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use serde_json::Value;
use sha2::Digest;

use crate::model::Provider;

type HmacSha256 = Hmac<Sha256>;

/// What a successful verification learned besides "the signature matched".
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Verified {
    /// The event type a header names (`X-Webhook-Event`, `X-GitHub-Event`, `X-Shopify-Topic`).
    /// No scheme's signature covers it, so a type in the signed body wins (see [`identity`]).
    pub header_event_type: Option<String>,
    /// The sender's id for the delivery when the signature covers it (Standard Webhooks'
    /// `webhook-id`). Ids in unsigned headers are never used: a replay would pass as new.
    pub signed_id: Option<String>,
    /// The signature matched a compact re-serialisation of the body, not its raw bytes: those
    /// bytes are what was signed, so they are what is stored and hashed.
    pub reserialised: Option<Vec<u8>>,
}

/// What the signed bytes say an event is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The event type: the signed body's, else the header's, else `unknown`.
    pub event_type: String,
    /// The id that de-duplicates retries: the signed id, else the body's own event id, else
    /// `sha256:<hex>` of the signed bytes (an identical signed body is a replay). An id that is
    /// not [`crate::model::is_plain_id`] is replaced by `sha256:<hex>` of it.
    pub id: String,
}

/// The identity of a verified event from `signed` (the bytes the signature covers, as stored)
/// and its parsed payload.
pub fn identity(
    provider: Provider,
    verified: &Verified,
    payload: &Value,
    signed: &[u8],
) -> Identity {
    let event_type = body_event_type(provider, payload)
        .or_else(|| verified.header_event_type.clone())
        .unwrap_or_else(|| "unknown".to_string());
    let id = match verified
        .signed_id
        .clone()
        .or_else(|| body_event_id(provider, payload))
    {
        Some(id) if crate::model::is_plain_id(&id) => id,
        // Shown outside the envelope, so not as the sender wrote it; still one id per id.
        Some(id) => format!("sha256:{}", hex::encode(Sha256::digest(id.as_bytes()))),
        None => format!("sha256:{}", hex::encode(Sha256::digest(signed))),
    };
    Identity { event_type, id }
}

/// The event type a provider puts in the body. GitHub and Shopify name it only in a header.
fn body_event_type(provider: Provider, payload: &Value) -> Option<String> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    match provider {
        // Events API: the envelope's type is event_callback; the event's own type says more.
        Provider::Slack => text(&payload["event"]["type"]).or_else(|| text(&payload["type"])),
        Provider::Stripe | Provider::Standard => {
            text(&payload["type"]).or_else(|| text(&payload["event"]))
        }
        Provider::Github | Provider::Shopify => None,
        Provider::Generic | Provider::Kakiyo | Provider::None => {
            text(&payload["event"]).or_else(|| text(&payload["type"]))
        }
    }
}

/// The sender's id for the event in the body. A GitHub or Shopify body's `id` names the
/// resource (an order, a hook), not the delivery: those are de-duplicated by hash.
fn body_event_id(provider: Provider, payload: &Value) -> Option<String> {
    let field = match provider {
        Provider::Slack => &payload["event_id"],
        Provider::Github | Provider::Shopify => return None,
        _ => &payload["id"],
    };
    match field {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Why a request was refused. The text names the header and scheme, never a secret or the
/// signature that would have been expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

/// One inbound request to verify.
pub struct Check<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Every secret valid now (the current one, and the previous one during a rotation).
    pub secrets: &'a [&'a str],
    /// Unix seconds.
    pub now: i64,
    /// How far a signed timestamp may be from `now`, in seconds.
    pub tolerance: i64,
    /// The body parsed (strictly), when it is JSON: schemes that accept a compact
    /// re-serialisation make theirs from it.
    pub json: Option<&'a Value>,
    /// Whether a compact re-serialisation of the body may verify (the webhook's choice).
    pub reserialised: bool,
}

/// Verifies an inbound request for `provider`.
pub fn verify_inbound(provider: Provider, check: &Check) -> Result<Verified, Rejection> {
    match provider {
        Provider::Generic => generic::verify(generic::GENERIC, check),
        Provider::Kakiyo => generic::verify(generic::KAKIYO, check),
        Provider::Standard => standard::verify(check),
        Provider::Github => github::verify(check),
        Provider::Stripe => stripe::verify(check),
        Provider::Slack => slack::verify(check),
        Provider::Shopify => shopify::verify(check),
        Provider::None => Ok(Verified::default()),
    }
}

/// Headers that make a request verify under `provider`, for `test_webhook` and tests.
pub fn sign_inbound(
    provider: Provider,
    secret: &str,
    body: &[u8],
    now: i64,
) -> Vec<(String, String)> {
    match provider {
        Provider::Generic => generic::sign(generic::GENERIC, secret, body),
        Provider::Kakiyo => generic::sign(generic::KAKIYO, secret, body),
        Provider::Standard => standard::sign(secret, body, now),
        Provider::Github => github::sign(secret, body),
        Provider::Stripe => stripe::sign(secret, body, now),
        Provider::Slack => slack::sign(secret, body, now),
        Provider::Shopify => shopify::sign(secret, body),
        Provider::None => vec![],
    }
}

/// Parses a signed timestamp and refuses one outside the tolerance; says by how much.
fn check_timestamp(value: &str, c: &Check, name: &str) -> Result<i64, Rejection> {
    let ts: i64 = value
        .trim()
        .parse()
        .map_err(|_| Rejection(format!("{name} is not a Unix timestamp in seconds")))?;
    let skew = c.now - ts;
    if skew.abs() > c.tolerance {
        let (dir, by) = if skew > 0 {
            ("old", skew)
        } else {
            ("in the future", -skew)
        };
        return Err(Rejection(format!(
            "stale timestamp: {name} is {by} s {dir}, beyond the {} s tolerance (replay protection; check the sender's clock)",
            c.tolerance
        )));
    }
    Ok(ts)
}

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time check that `signature` is the HMAC of `parts` under `key`.
pub fn mac_matches(key: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(signature).is_ok()
}

/// Equality of two secrets without a timing side channel (both are MACed under a fixed key and
/// the MACs compared with `verify_slice`).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    const KEY: &[u8] = b"webhook-mcp constant-time comparison";
    mac_matches(KEY, &[a], &hmac_sha256(KEY, &[b]))
}

pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
}

/// The key a Standard Webhooks signer uses: the base64 part of a `whsec_` secret, or the raw
/// bytes of any other secret.
pub fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `v1,<base64>` over `id.timestamp.body`, as Standard Webhooks defines it.
pub fn sign_standard(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(
        &standard_key(secret),
        &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// Reads a header as text, treating an absent or non-UTF-8 header as missing.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
pub(crate) mod tests_support {
    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    use super::Check;

    pub fn headers_of(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    pub fn headers_from(pairs: Vec<(String, String)>) -> HeaderMap {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers_of(&refs)
    }

    pub fn check<'a>(
        headers: &'a HeaderMap,
        body: &'a [u8],
        secrets: &'a [&'a str],
        now: i64,
    ) -> Check<'a> {
        Check {
            headers,
            body,
            secrets,
            now,
            tolerance: 300,
            json: None,
            reserialised: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsers_never_panic_on_arbitrary_input() {
        // A cheap stand-in for the fuzz target in fuzz/: pseudo-random printable and binary junk.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let s: String = (0..len)
                .map(|i| {
                    let b = (seed >> (i % 8 * 8)) as u8;
                    [',', '=', ' ', 't', 'v', '1', 'a', '0', char::from(b % 128)][(b % 9) as usize]
                })
                .collect();
            let _ = parse_stripe_header(&s);
            let _ = parse_standard_signatures(&s);
        }
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_webhooks_spec_example() {
        // The example from the Standard Webhooks specification.
        let sig = sign_standard(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
