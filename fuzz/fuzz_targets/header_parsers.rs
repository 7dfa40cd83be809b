//! Fuzzes every inbound verification path with arbitrary header values and bodies: whatever a
//! sender puts in `Stripe-Signature`, `webhook-signature`, `X-Slack-Request-Timestamp` and the
//! rest, verification must answer Ok or Err, never panic.
#![no_main]

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use webhook_mcp::model::Provider;
use webhook_mcp::signing::{self, Check};

const HEADERS: &[&str] = &[
    "x-webhook-signature",
    "x-kakiyo-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-shopify-hmac-sha256",
];

fuzz_target!(|data: &[u8]| {
    // Split the input: one value per known header, the rest is the body.
    let mut parts = data.split(|b| *b == 0);
    let mut headers = HeaderMap::new();
    for name in HEADERS {
        if let Some(value) = parts.next() {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
    }
    let body: Vec<u8> = parts.flatten().copied().collect();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = signing::parse_stripe_header(text);
        let _ = signing::parse_standard_signatures(text);
    }
    for provider in Provider::ALL {
        let check = Check { headers: &headers, body: &body, secrets: &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain"], now: 1_700_000_000, tolerance: 300, json: None, reserialised: true };
        let _ = signing::verify_inbound(provider, &check);
    }
});
