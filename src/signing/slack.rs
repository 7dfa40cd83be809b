//! Slack: `X-Slack-Signature: v0=<hex>` over `v0:<X-Slack-Request-Timestamp>:<body>`.

use super::{check_timestamp, header, mac_matches, sign_hex, Check, Rejection, Verified};

pub fn verify(c: &Check) -> Result<Verified, Rejection> {
    let (Some(ts), Some(sig)) = (
        header(c.headers, "x-slack-request-timestamp"),
        header(c.headers, "x-slack-signature"),
    ) else {
        return Err(Rejection(
            "missing header X-Slack-Signature or X-Slack-Request-Timestamp (the 'slack' scheme expects both)".into(),
        ));
    };
    let timestamp = check_timestamp(ts, c, "X-Slack-Request-Timestamp")?;
    let signature = sig
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| Rejection("X-Slack-Signature is not v0=<64 hex characters>".into()))?;
    let ts = timestamp.to_string();
    let ok = c.secrets.iter().any(|s| {
        mac_matches(
            s.as_bytes(),
            &[b"v0:", ts.as_bytes(), b":", c.body],
            &signature,
        )
    });
    if !ok {
        return Err(Rejection(
            "X-Slack-Signature does not match v0:timestamp:body under this app's signing secret (Basic Information > App Credentials)".into(),
        ));
    }
    Ok(Verified::default())
}

pub fn sign(secret: &str, body: &[u8], now: i64) -> Vec<(String, String)> {
    let mut base = format!("v0:{now}:").into_bytes();
    base.extend_from_slice(body);
    vec![
        ("x-slack-request-timestamp".into(), now.to_string()),
        (
            "x-slack-signature".into(),
            format!("v0={}", sign_hex(secret, &base)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::*;

    #[test]
    fn slacks_documented_example() {
        // From Slack's "Verifying requests from Slack", verbatim.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let h = headers_of(&[
            ("x-slack-request-timestamp", "1531420618"),
            (
                "x-slack-signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        assert!(verify(&check(&h, body, &[secret], 1531420618)).is_ok());
        assert!(verify(&check(&h, &body[1..], &[secret], 1531420618)).is_err());
        let stale = verify(&check(&h, body, &[secret], 1531420618 + 600)).unwrap_err();
        assert!(stale.0.contains("stale"));
        let e = verify(&check(
            &headers_of(&[("x-slack-signature", "v0=00")]),
            body,
            &[secret],
            0,
        ))
        .unwrap_err();
        assert!(e.0.contains("X-Slack-Request-Timestamp"));
    }
}
