//! Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the raw body; the topic in
//! `X-Shopify-Topic`, the delivery id in `X-Shopify-Webhook-Id`, which the
//! signature does not cover (so events are de-duplicated by the body's hash).

use base64::Engine;

use super::{header, hmac_sha256, mac_matches, Check, Rejection, Verified};

pub fn verify(c: &Check) -> Result<Verified, Rejection> {
    let Some(raw) = header(c.headers, "x-shopify-hmac-sha256") else {
        return Err(Rejection(
            "missing header X-Shopify-Hmac-Sha256 (the 'shopify' scheme expects a base64 HMAC-SHA256 of the body)".into(),
        ));
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| Rejection("X-Shopify-Hmac-Sha256 is not base64".into()))?;
    if !c
        .secrets
        .iter()
        .any(|s| mac_matches(s.as_bytes(), &[c.body], &signature))
    {
        return Err(Rejection(
            "X-Shopify-Hmac-Sha256 does not match the body under this webhook's secret (the app's client secret)".into(),
        ));
    }
    Ok(Verified {
        header_event_type: header(c.headers, "x-shopify-topic").map(str::to_string),
        ..Verified::default()
    })
}

pub fn sign(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    let mac = hmac_sha256(secret.as_bytes(), &[body]);
    vec![
        (
            "x-shopify-hmac-sha256".into(),
            base64::engine::general_purpose::STANDARD.encode(mac),
        ),
        ("x-shopify-topic".into(), "orders/create".into()),
        (
            "x-shopify-webhook-id".into(),
            uuid::Uuid::new_v4().to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    #[test]
    fn base64_hmac_over_the_body() {
        let body = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
        let h = headers_from(sign("shpss_secret", body));
        let v = verify(&check(&h, body, &["shpss_secret"], 0)).unwrap();
        assert_eq!(v.header_event_type.as_deref(), Some("orders/create"));
        assert_eq!(v.signed_id, None);
        // Independently computed: base64(HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")).
        let h = headers_of(&[(
            "x-shopify-hmac-sha256",
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=",
        )]);
        assert!(verify(&check(
            &h,
            b"The quick brown fox jumps over the lazy dog",
            &["key"],
            0
        ))
        .is_ok());
        assert!(verify(&check(
            &h,
            b"The quick brown fox jumps over the lazy cog",
            &["key"],
            0
        ))
        .is_err());
        let e = verify(&check(
            &headers_of(&[("x-shopify-hmac-sha256", "%%%")]),
            body,
            &["k"],
            0,
        ))
        .unwrap_err();
        assert!(e.0.contains("not base64"));
    }
}
