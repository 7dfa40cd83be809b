//! Standard Webhooks (and Svix, which sends the same headers as `svix-*`): `webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64> [v1,<base64> ...]` over
//! `id.timestamp.body`, keyed with the base64-decoded part of a `whsec_` secret.

use base64::Engine;

use super::{
    check_timestamp, header, mac_matches, sign_standard, standard_key, Check, Rejection, Verified,
};

/// The three headers, under either prefix.
fn headers<'a>(c: &'a Check) -> Result<(&'a str, &'a str, &'a str), Rejection> {
    for prefix in ["webhook", "svix"] {
        let get = |n: &str| header(c.headers, &format!("{prefix}-{n}"));
        if let (Some(id), Some(ts), Some(sig)) = (get("id"), get("timestamp"), get("signature")) {
            return Ok((id, ts, sig));
        }
    }
    let missing: Vec<&str> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .filter(|n| header(c.headers, n).is_none())
        .collect();
    Err(Rejection(format!(
        "missing header(s) {} (the 'standard' scheme expects webhook-id, webhook-timestamp and webhook-signature, or their svix-* forms)",
        missing.join(", ")
    )))
}

/// The `v1` signatures of a `webhook-signature` value, decoded; other versions are skipped.
pub fn parse_signatures(value: &str) -> Vec<Vec<u8>> {
    value
        .split_whitespace()
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect()
}

pub fn verify(c: &Check) -> Result<Verified, Rejection> {
    let (id, ts, sig) = headers(c)?;
    let timestamp = check_timestamp(ts, c, "webhook-timestamp")?;
    let signatures = parse_signatures(sig);
    if signatures.is_empty() {
        return Err(Rejection(
            "webhook-signature holds no v1,<base64> signature".into(),
        ));
    }
    let ts_text = timestamp.to_string();
    let ok = c.secrets.iter().any(|s| {
        let key = standard_key(s);
        signatures.iter().any(|sig| {
            mac_matches(
                &key,
                &[id.as_bytes(), b".", ts_text.as_bytes(), b".", c.body],
                sig,
            )
        })
    });
    if !ok {
        return Err(Rejection(
            "webhook-signature does not match: no v1 signature is an HMAC of id.timestamp.body under this webhook's secret (a whsec_ secret is used base64-decoded)".into(),
        ));
    }
    Ok(Verified {
        signed_id: Some(id.to_string()),
        ..Verified::default()
    })
}

pub fn sign(secret: &str, body: &[u8], now: i64) -> Vec<(String, String)> {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    vec![
        (
            "webhook-signature".into(),
            sign_standard(secret, &id, now, body),
        ),
        ("webhook-id".into(), id),
        ("webhook-timestamp".into(), now.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    // The example of the Standard Webhooks specification, verbatim.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn spec_example_verifies_and_tampering_does_not() {
        let h = headers_of(&[
            ("webhook-id", ID),
            ("webhook-timestamp", TS),
            ("webhook-signature", SIG),
        ]);
        let v = verify(&check(&h, BODY, &[SECRET], 1614265330)).unwrap();
        assert_eq!(v.signed_id.as_deref(), Some(ID));
        // Several signatures, one valid; the svix-* spelling.
        let many = format!("v1,AAAA {SIG} v2,zzz");
        let h = headers_of(&[
            ("svix-id", ID),
            ("svix-timestamp", TS),
            ("svix-signature", &many),
        ]);
        assert!(verify(&check(&h, BODY, &[SECRET], 1614265330)).is_ok());
        for (i, _) in BODY.iter().enumerate() {
            let mut t = BODY.to_vec();
            t[i] ^= 1;
            let h = headers_of(&[
                ("webhook-id", ID),
                ("webhook-timestamp", TS),
                ("webhook-signature", SIG),
            ]);
            assert!(
                verify(&check(&h, &t, &[SECRET], 1614265330)).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn stale_wrong_secret_and_missing_headers_are_named() {
        let h = headers_of(&[
            ("webhook-id", ID),
            ("webhook-timestamp", TS),
            ("webhook-signature", SIG),
        ]);
        let stale = verify(&check(&h, BODY, &[SECRET], 1614265330 + 301)).unwrap_err();
        assert!(
            stale.0.contains("stale") && stale.0.contains("301"),
            "{stale}"
        );
        let wrong = verify(&check(
            &h,
            BODY,
            &["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
            1614265330,
        ))
        .unwrap_err();
        assert!(wrong.0.contains("does not match"));
        let h = headers_of(&[("webhook-id", ID), ("webhook-signature", SIG)]);
        let missing = verify(&check(&h, BODY, &[SECRET], 1614265330)).unwrap_err();
        assert!(missing.0.contains("webhook-timestamp"), "{missing}");
    }

    #[test]
    fn signs_what_it_verifies() {
        let h = headers_from(sign(SECRET, BODY, 1_700_000_000));
        assert!(verify(&check(&h, BODY, &[SECRET], 1_700_000_000)).is_ok());
    }
}
