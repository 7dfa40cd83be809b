//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]`, HMAC over
//! `t.body`. Several `v1` entries appear while Stripe rolls a secret. The event type and id are
//! in the body (`type`, `id`).

use super::{check_timestamp, header, mac_matches, sign_hex, Check, Rejection, Verified};

/// The timestamp and the decoded `v1` signatures of a `Stripe-Signature` value.
pub fn parse_header(value: &str) -> (Option<&str>, Vec<Vec<u8>>) {
    let mut t = None;
    let mut v1 = vec![];
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", ts)) => t = Some(ts),
            Some(("v1", sig)) => {
                if let Ok(bytes) = hex::decode(sig) {
                    v1.push(bytes);
                }
            }
            _ => {}
        }
    }
    (t, v1)
}

pub fn verify(c: &Check) -> Result<Verified, Rejection> {
    let Some(raw) = header(c.headers, "stripe-signature") else {
        return Err(Rejection(
            "missing header Stripe-Signature (the 'stripe' scheme expects t=<timestamp>,v1=<hex>)"
                .into(),
        ));
    };
    let (t, signatures) = parse_header(raw);
    let t = t.ok_or_else(|| Rejection("Stripe-Signature has no t=<timestamp>".into()))?;
    let timestamp = check_timestamp(t, c, "Stripe-Signature t")?;
    if signatures.is_empty() {
        return Err(Rejection(
            "Stripe-Signature has no v1=<hex> signature".into(),
        ));
    }
    let ts = timestamp.to_string();
    let ok = c.secrets.iter().any(|s| {
        signatures
            .iter()
            .any(|sig| mac_matches(s.as_bytes(), &[ts.as_bytes(), b".", c.body], sig))
    });
    if !ok {
        return Err(Rejection(
            "Stripe-Signature does not match: no v1 is an HMAC of t.body under this endpoint's signing secret (whsec_..., from the Stripe dashboard)".into(),
        ));
    }
    Ok(Verified::default())
}

pub fn sign(secret: &str, body: &[u8], now: i64) -> Vec<(String, String)> {
    let mut signed = now.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    vec![(
        "stripe-signature".into(),
        format!("t={now},v1={}", sign_hex(secret, &signed)),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    #[test]
    fn parses_stripes_documented_header_format() {
        // The header from Stripe's documentation, verbatim.
        let doc = "t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";
        let (t, v1) = parse_header(doc);
        assert_eq!(t, Some("1492774577"));
        assert_eq!(v1.len(), 1, "v0 is ignored");
        assert_eq!(
            hex::encode(&v1[0]),
            "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
        );
    }

    #[test]
    fn verifies_any_v1_and_rejects_stale_or_tampered() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let good = headers_from(sign("whsec_test", body, 1_700_000_000));
        assert!(verify(&check(&good, body, &["whsec_test"], 1_700_000_100)).is_ok());
        // Two v1 (during Stripe's secret roll), only the second valid.
        let value = good["stripe-signature"]
            .to_str()
            .unwrap()
            .replace("v1=", "v1=00,v1=");
        let two = headers_of(&[("stripe-signature", &value)]);
        assert!(verify(&check(&two, body, &["whsec_test"], 1_700_000_000)).is_ok());
        let stale = verify(&check(&good, body, &["whsec_test"], 1_700_000_000 + 400)).unwrap_err();
        assert!(stale.0.contains("stale"));
        assert!(verify(&check(&good, b"{}", &["whsec_test"], 1_700_000_000)).is_err());
        let e = verify(&check(
            &headers_of(&[("stripe-signature", "v1=00")]),
            body,
            &["s"],
            0,
        ))
        .unwrap_err();
        assert!(e.0.contains("t=<timestamp>"));
    }
}
