//! The hex HMAC-SHA256 family: a signature over the body in one header, hex-encoded, with an
//! optional `sha256=` prefix. Voyager, LeadShark, ConnectSafely and Voxagent use
//! `X-Webhook-Signature` (and `X-Webhook-Event` for the type); Kakiyo uses `X-Kakiyo-Signature`.

use super::{header, json, mac_matches, sign_hex, Check, Rejection, Verified};

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

/// The raw body first; then, when the webhook allows it, the compact re-serialisations of the
/// parsed body (see `signing::json`), which become the stored bytes when one matches.
pub fn verify(scheme: Scheme, c: &Check) -> Result<Verified, Rejection> {
    let (headers, body, secrets) = (c.headers, c.body, c.secrets);
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
    let matches = |bytes: &[u8]| {
        secrets
            .iter()
            .any(|s| mac_matches(s.as_bytes(), &[bytes], &signature))
    };
    let header_event_type = header(headers, "x-webhook-event").map(str::to_string);
    if matches(body) {
        return Ok(Verified {
            header_event_type,
            ..Verified::default()
        });
    }
    let reserialised = match c.json {
        Some(value) if c.reserialised => json::reserialisations(value, body)
            .into_iter()
            .find(|candidate| matches(candidate)),
        _ => None,
    };
    if reserialised.is_none() {
        let tried = if c.reserialised {
            "the raw body, or its compact JSON"
        } else {
            "the raw body (this webhook accepts no re-serialisation)"
        };
        return Err(Rejection(format!(
            "{} does not match: not an HMAC-SHA256 of {tried} under this webhook's secret; \
             check the secret configured at the sender",
            scheme.signature_header
        )));
    }
    Ok(Verified {
        header_event_type,
        reserialised,
        ..Verified::default()
    })
}

pub fn sign(scheme: Scheme, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(scheme.signature_header.to_string(), sign_hex(secret, body))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::tests_support::check;
    use axum::http::{HeaderMap, HeaderValue};

    fn verify(
        scheme: Scheme,
        h: &HeaderMap,
        body: &[u8],
        secrets: &[&str],
    ) -> Result<Verified, Rejection> {
        super::verify(scheme, &check(h, body, secrets, 0))
    }

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

    #[test]
    fn a_compact_reserialisation_verifies_and_is_what_is_stored_unless_turned_off() {
        let sent = br#"{ "event": "payment", "amount": 1 }"#;
        let signed = br#"{"event":"payment","amount":1}"#;
        let h = headers(&[("x-webhook-signature", &sign_hex("s", signed))]);
        let value = crate::signing::parse_strict(sent).unwrap();
        let mut c = check(&h, sent, &["s"], 0);
        c.json = Some(&value);
        let v = super::verify(GENERIC, &c).unwrap();
        assert_eq!(v.reserialised.as_deref(), Some(&signed[..]));
        c.reserialised = false;
        let refused = super::verify(GENERIC, &c).unwrap_err();
        assert!(
            refused.0.contains("accepts no re-serialisation"),
            "{refused}"
        );
        // The raw bytes verify whatever the setting, and are stored as they are.
        let h = headers(&[("x-webhook-signature", &sign_hex("s", sent))]);
        let c = check(&h, sent, &["s"], 0);
        assert_eq!(super::verify(GENERIC, &c).unwrap().reserialised, None);
    }
}
