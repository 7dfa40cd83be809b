//! A webhook: an inbound endpoint providers POST to, or an outbound target this server POSTs to.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Filter, Millis, Principal, Secret, Subject, WebhookId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A provider POSTs signed events to this server's receiver.
    Inbound,
    /// This server POSTs signed events to a subscriber URL.
    Outbound,
}

/// The signature scheme an inbound webhook expects (see `signing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Hex HMAC-SHA256 of the body in `X-Webhook-Signature` (optional `sha256=` prefix):
    /// Voyager, LeadShark, ConnectSafely, Voxagent and this server's own outbound deliveries.
    #[default]
    Generic,
    /// Hex HMAC-SHA256 of the body in `X-Kakiyo-Signature`.
    Kakiyo,
    /// Standard Webhooks / Svix: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard,
    /// GitHub: `X-Hub-Signature-256`, `X-GitHub-Event`, `X-GitHub-Delivery`.
    Github,
    /// Stripe: `Stripe-Signature: t=..,v1=..`.
    Stripe,
    /// Slack: `X-Slack-Signature: v0=..`, `X-Slack-Request-Timestamp`.
    Slack,
    /// Shopify: base64 `X-Shopify-Hmac-Sha256`, `X-Shopify-Topic`.
    Shopify,
    /// No signature at all: only with `allow_unsigned: true`.
    None,
}

impl Provider {
    pub const ALL: [Provider; 8] = [
        Provider::Generic,
        Provider::Kakiyo,
        Provider::Standard,
        Provider::Github,
        Provider::Stripe,
        Provider::Slack,
        Provider::Shopify,
        Provider::None,
    ];
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::enum_text(self))
    }
}

/// The secret a rotation replaced, still accepted until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousSecret {
    pub secret: Secret,
    pub expires_at: Millis,
}

/// `Debug` is written by hand (below): it never prints a credential.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub direction: Direction,
    /// Outbound: the target URL. Inbound: empty (the receive URL is derived from the public URL).
    pub target_url: String,
    pub provider: Provider,
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub secret: Secret,
    pub previous_secret: Option<PreviousSecret>,
    /// Outbound only: extra static headers sent with every delivery.
    pub extra_headers: BTreeMap<String, String>,
    /// Inbound only: header values every request must carry besides a valid signature. They are
    /// credentials, so they are `Secret`s.
    pub required_headers: BTreeMap<String, Secret>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Consecutive failed delivery attempts (outbound); reset by a success.
    pub failure_count: i64,
    /// When the current run of failures began (outbound); cleared by a success.
    pub first_failure_at: Option<Millis>,
    /// Why the server disabled it (410 Gone, days of failures), if it did.
    pub disabled_reason: Option<String>,
    /// Inbound only: outbound webhooks that each verified event is relayed to.
    pub forward_to: Vec<WebhookId>,
    /// Inbound, `generic` and `kakiyo` only: whether a signature over the compact
    /// re-serialisation of a JSON body verifies (what senders that sign `JSON.stringify` of the
    /// payload send); the signed bytes are then what is stored. Off: the raw body only.
    pub accept_compact_signatures: bool,
    /// Outbound only: a content filter; only events whose content matches are delivered or
    /// relayed (`send_event` matches its `{event, data}`, a relay the inbound event).
    pub filter: Option<Filter>,
    /// Who made it (`model::principal`): only they, and the operator, see it and its history.
    pub owner: Principal,
}

/// Prints no credential: secrets print as `***` (`Secret`), extra header values as `***`, and
/// of the target URL only its scheme and host (a Slack, Discord, Teams or Google Chat URL's
/// path or query is its credential).
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked: BTreeMap<&str, &str> = self
            .extra_headers
            .keys()
            .map(|k| (k.as_str(), "***"))
            .collect();
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("direction", &self.direction)
            .field("target_url", &url_origin(&self.target_url))
            .field("provider", &self.provider)
            .field("events", &self.events)
            .field("description", &self.description)
            .field("enabled", &self.enabled)
            .field("secret", &self.secret)
            .field("previous_secret", &self.previous_secret)
            .field("extra_headers", &masked)
            .field("required_headers", &self.required_headers)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("failure_count", &self.failure_count)
            .field("first_failure_at", &self.first_failure_at)
            .field("disabled_reason", &self.disabled_reason)
            .field("forward_to", &self.forward_to)
            .field("accept_compact_signatures", &self.accept_compact_signatures)
            .field("filter", &self.filter)
            .finish()
    }
}

/// `scheme://host[:port]` (user info as `***@`), and `/***` when anything followed it.
fn url_origin(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let rest = if end < url.len() { "/***" } else { "" };
    format!("{}{host}{rest}", &url[..start])
}

/// Why a webhook may not send right now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotSendable {
    #[error("webhook {0} is inbound; only outbound webhooks send")]
    Inbound(WebhookId),
    #[error("webhook {id} is disabled{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Disabled {
        id: WebhookId,
        reason: Option<String>,
    },
}

impl Webhook {
    /// Does this webhook's event filter accept `event`? (`*` accepts every type.)
    pub fn accepts_event(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event)
    }

    /// Does this webhook's content filter (if any) let an event through?
    pub fn passes(&self, subject: Subject<'_>) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(subject))
    }

    /// The one rule for sending: an enabled outbound webhook may send; nothing else may.
    pub fn may_send(&self) -> Result<(), NotSendable> {
        match (self.direction, self.enabled) {
            (Direction::Inbound, _) => Err(NotSendable::Inbound(self.id.clone())),
            (Direction::Outbound, false) => Err(NotSendable::Disabled {
                id: self.id.clone(),
                reason: self.disabled_reason.clone(),
            }),
            (Direction::Outbound, true) => Ok(()),
        }
    }

    /// Does the receiver take requests for this webhook? (Enabled and inbound.)
    pub fn may_receive(&self) -> bool {
        self.direction == Direction::Inbound && self.enabled
    }

    /// Every secret that verifies a signature right now: the current one, then the previous
    /// one while its grace period lasts.
    pub fn valid_secrets(&self, now: Millis) -> Vec<&Secret> {
        let mut secrets = vec![&self.secret];
        if let Some(prev) = &self.previous_secret {
            if now < prev.expires_at {
                secrets.push(&prev.secret);
            }
        }
        secrets
    }

    /// A webhook with every optional part empty: the starting point for a new one, and for
    /// tests.
    pub fn new(id: WebhookId, direction: Direction, secret: Secret, now: Millis) -> Webhook {
        Webhook {
            id,
            direction,
            target_url: String::new(),
            provider: Provider::Generic,
            events: vec!["*".into()],
            description: String::new(),
            enabled: true,
            secret,
            previous_secret: None,
            extra_headers: BTreeMap::new(),
            required_headers: BTreeMap::new(),
            created_at: now,
            updated_at: now,
            failure_count: 0,
            first_failure_at: None,
            disabled_reason: None,
            forward_to: vec![],
            accept_compact_signatures: true,
            filter: None,
            owner: Principal::local(),
        }
    }
}

#[cfg(test)]
impl Webhook {
    pub(crate) fn fixture(id: &str, direction: Direction, secret: &str) -> Webhook {
        Webhook::new(id.into(), direction, Secret::new(secret), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_credential() {
        let mut w = Webhook::fixture("w", Direction::Outbound, "whsec_top-secret-value");
        w.target_url = "https://discord.com/api/webhooks/123/token-in-the-path?wait=1".into();
        w.extra_headers
            .insert("Authorization".into(), "Bearer header-credential".into());
        w.required_headers
            .insert("X-Api-Key".into(), Secret::new("required-credential"));
        w.previous_secret = Some(PreviousSecret {
            secret: Secret::new("whsec_old-secret-value"),
            expires_at: 1,
        });
        let shown = format!("{w:?}");
        for credential in [
            "top-secret-value",
            "token-in-the-path",
            "wait=1",
            "header-credential",
            "required-credential",
            "old-secret-value",
        ] {
            assert!(!shown.contains(credential), "{credential} in {shown}");
        }
        assert!(shown.contains("https://discord.com/***") && shown.contains("Authorization"));
        assert_eq!(
            url_origin("https://u:p@h.example:8443"),
            "https://***@h.example:8443"
        );
        assert_eq!(url_origin(""), "");
    }

    #[test]
    fn previous_secret_only_during_grace() {
        let mut w = Webhook::fixture("w", Direction::Inbound, "new");
        w.previous_secret = Some(PreviousSecret {
            secret: Secret::new("old"),
            expires_at: 1_000,
        });
        let shown = |v: Vec<&Secret>| v.iter().map(|s| s.expose().to_string()).collect::<Vec<_>>();
        assert_eq!(shown(w.valid_secrets(999)), vec!["new", "old"]);
        assert_eq!(shown(w.valid_secrets(1_000)), vec!["new"]);
        assert!(w.accepts_event("anything"));
    }

    #[test]
    fn only_enabled_outbound_webhooks_may_send() {
        let mut w = Webhook::fixture("w", Direction::Outbound, "s");
        assert_eq!(w.may_send(), Ok(()));
        w.enabled = false;
        w.disabled_reason = Some("410".into());
        assert_eq!(
            w.may_send().unwrap_err().to_string(),
            "webhook w is disabled (410)"
        );
        let i = Webhook::fixture("i", Direction::Inbound, "s");
        assert!(matches!(i.may_send(), Err(NotSendable::Inbound(_))));
        assert!(i.may_receive() && !w.may_receive());
    }

    #[test]
    fn debug_output_never_holds_a_secret() {
        let mut w = Webhook::fixture("w", Direction::Inbound, "top-secret-value");
        w.required_headers
            .insert("x-api-key".into(), Secret::new("key-value-123"));
        let shown = format!("{w:?}");
        assert!(!shown.contains("top-secret-value") && !shown.contains("key-value-123"));
    }
}
