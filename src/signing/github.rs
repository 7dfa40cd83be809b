//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body; the event type in
//! `X-GitHub-Event`, the delivery id in `X-GitHub-Delivery`, which
//! the signature does not cover (so events are de-duplicated by the body's hash).

use super::{header, mac_matches, sign_hex, Check, Rejection, Verified};

pub fn verify(c: &Check) -> Result<Verified, Rejection> {
    let Some(raw) = header(c.headers, "x-hub-signature-256") else {
        let hint = if header(c.headers, "x-hub-signature").is_some() {
            " (only the SHA-1 X-Hub-Signature was sent; GitHub sends X-Hub-Signature-256 when the webhook has a secret)"
        } else {
            ""
        };
        return Err(Rejection(format!(
            "missing header X-Hub-Signature-256 (the 'github' scheme expects sha256=<hex HMAC of the body>){hint}"
        )));
    };
    let signature = raw
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| Rejection("X-Hub-Signature-256 is not sha256=<64 hex characters>".into()))?;
    if !c
        .secrets
        .iter()
        .any(|s| mac_matches(s.as_bytes(), &[c.body], &signature))
    {
        return Err(Rejection(
            "X-Hub-Signature-256 does not match the body under this webhook's secret; check the secret in the GitHub webhook settings".into(),
        ));
    }
    Ok(Verified {
        header_event_type: header(c.headers, "x-github-event").map(str::to_string),
        ..Verified::default()
    })
}

pub fn sign(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        (
            "x-hub-signature-256".into(),
            format!("sha256={}", sign_hex(secret, body)),
        ),
        ("x-github-event".into(), "ping".into()),
        ("x-github-delivery".into(), uuid::Uuid::new_v4().to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    #[test]
    fn githubs_documented_test_values() {
        // From GitHub's "Validating webhook deliveries": secret, payload and signature verbatim.
        let h = headers_of(&[
            (
                "x-hub-signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            ),
            ("x-github-event", "push"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ]);
        let v = verify(&check(
            &h,
            b"Hello, World!",
            &["It's a Secret to Everybody"],
            0,
        ))
        .unwrap();
        assert_eq!(v.header_event_type.as_deref(), Some("push"));
        // X-GitHub-Delivery is not signed: it never identifies the event.
        assert_eq!(v.signed_id, None);
        assert!(verify(&check(
            &h,
            b"Hello, World?",
            &["It's a Secret to Everybody"],
            0
        ))
        .is_err());
        assert!(verify(&check(&h, b"Hello, World!", &["another secret"], 0)).is_err());
    }

    #[test]
    fn missing_or_sha1_only_is_explained() {
        let e = verify(&check(
            &headers_of(&[("x-hub-signature", "sha1=abc")]),
            b"x",
            &["s"],
            0,
        ))
        .unwrap_err();
        assert!(
            e.0.contains("X-Hub-Signature-256") && e.0.contains("SHA-1"),
            "{e}"
        );
        let e = verify(&check(
            &headers_of(&[("x-hub-signature-256", "abc")]),
            b"x",
            &["s"],
            0,
        ))
        .unwrap_err();
        assert!(e.0.contains("sha256="));
    }
}
