//! The hex HMAC-SHA256 family: a signature over the body in one header, hex-encoded, with an
//! optional `sha256=` prefix. Voyager, LeadShark, ConnectSafely and Voxagent use
//! `X-Webhook-Signature` (and `X-Webhook-Event` for the type); Kakiyo uses `X-Kakiyo-Signature`.

use axum::http::HeaderMap;

use super::{header, mac_matches, sign_hex, signed_body_candidates, Rejection, Verified};

pub struct Scheme {
    pub name: &'static str,
    pub signature_header: &'static str,
}

pub const GENERIC: Scheme = Scheme {
    name: "generic",
    signature_header: "x-webhook-signature",
};

pub const KAKIYO: Scheme = Scheme {
    name: "kakiyo",
    signature_header: "x-kakiyo-signature",
};

pub fn verify(
    scheme: Scheme,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> Result<Verified, Rejection> {
    let Some(raw) = header(headers, scheme.signature_header) else {
        return Err(Rejection(format!(
            "missing signature header {} (the '{}' scheme expects a hex HMAC-SHA256 of the body)",
            scheme.signature_header, scheme.name
        )));
    };
    let hex_sig = raw.strip_prefix("sha256=").unwrap_or(raw);
    let Ok(signature) = hex::decode(hex_sig) else {
        return Err(Rejection(format!(
            "{} is not hex (the '{}' scheme expects 64 hex characters, optionally prefixed sha256=)",
            scheme.signature_header, scheme.name
        )));
    };
    if signature.len() != 32 {
        return Err(Rejection(format!(
            "{} has {} bytes; an HMAC-SHA256 has 32 (64 hex characters)",
            scheme.signature_header,
            signature.len()
        )));
    }
    let verified = signed_body_candidates(body).iter().any(|candidate| {
        secrets
            .iter()
            .any(|s| mac_matches(s.as_bytes(), &[candidate], &signature))
    });
    if !verified {
        return Err(Rejection(format!(
            "{} does not match: not an HMAC-SHA256 of the body (raw, or compact JSON) under this \
             webhook's secret; check the secret configured at the sender",
            scheme.signature_header
        )));
    }
    Ok(Verified {
        event_type: header(headers, "x-webhook-event").map(str::to_string),
        provider_event_id: header(headers, "x-webhook-id").map(str::to_string),
    })
}

pub fn sign(scheme: Scheme, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(scheme.signature_header.to_string(), sign_hex(secret, body))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const BODY: &[u8] = br#"{"event":"message_received","data":{"x":1}}"#;

    #[test]
    fn accepts_hex_with_and_without_prefix() {
        let sig = sign_hex("s", BODY);
        let ok = verify(
            GENERIC,
            &headers(&[("x-webhook-signature", &sig)]),
            BODY,
            &["s"],
        );
        assert!(ok.is_ok());
        let prefixed = format!("sha256={sig}");
        let ok = verify(
            GENERIC,
            &headers(&[("x-webhook-signature", &prefixed)]),
            BODY,
            &["s"],
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn rejects_wrong_secret_tampering_and_missing_header() {
        let sig = sign_hex("s", BODY);
        let h = headers(&[("x-webhook-signature", &sig)]);
        assert!(verify(GENERIC, &h, BODY, &["other"]).is_err());
        let mut tampered = BODY.to_vec();
        tampered[12] ^= 1;
        assert!(verify(GENERIC, &h, &tampered, &["s"]).is_err());
        let missing = verify(GENERIC, &HeaderMap::new(), BODY, &["s"]).unwrap_err();
        assert!(missing
            .0
            .contains("missing signature header x-webhook-signature"));
        let bad = verify(
            GENERIC,
            &headers(&[("x-webhook-signature", "zz")]),
            BODY,
            &["s"],
        );
        assert!(bad.unwrap_err().0.contains("not hex"));
        // The Kakiyo scheme reads its own header only.
        assert!(verify(KAKIYO, &h, BODY, &["s"]).is_err());
    }

    #[test]
    fn either_secret_verifies_during_rotation() {
        let sig = sign_hex("old", BODY);
        let h = headers(&[("x-webhook-signature", &sig)]);
        assert!(verify(GENERIC, &h, BODY, &["new", "old"]).is_ok());
        assert!(verify(GENERIC, &h, BODY, &["new"]).is_err());
    }

    #[test]
    fn rejection_never_contains_the_expected_signature() {
        let expected = sign_hex("s", BODY);
        let h = headers(&[("x-webhook-signature", &"0".repeat(64))]);
        let err = verify(GENERIC, &h, BODY, &["s"]).unwrap_err();
        assert!(!err.0.contains(&expected));
    }
}
