//! Webhook management: create, list, get, update, delete, rotate secrets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Service;
use crate::error::{Error, Result};
use crate::model::{now_millis, receive_url, Direction, Provider, Webhook};
use crate::signing::generate_secret;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `inbound`: providers POST events to this server (you get a receive URL to paste into the
    /// provider). `outbound`: this server POSTs signed events to `url`.
    pub direction: Direction,
    /// Outbound only: the subscriber's http(s) URL. Leave out for inbound webhooks.
    #[serde(default)]
    pub url: Option<String>,
    /// Inbound only: the signature scheme of the sender. `generic` (default) fits Voyager,
    /// LeadShark, ConnectSafely and Voxagent; `kakiyo` fits Kakiyo.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Event types to accept (inbound) or send (outbound); `["*"]` (default) means all.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// The signing secret. Leave out to have a strong one generated. For inbound webhooks
    /// whose provider generates the secret (e.g. ConnectSafely shows it once), pass it here.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Outbound only: extra static headers sent with every delivery.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Inbound only: outbound webhook ids to relay each verified event to (re-signed with
    /// each target's secret).
    #[serde(default)]
    pub forward_to: Option<Vec<String>>,
    /// Inbound only: header values every request must carry besides a valid signature, e.g.
    /// {"Authorization": "Bearer ..."} as ConnectSafely's optional auth header.
    #[serde(default)]
    pub require_headers: Option<BTreeMap<String, String>>,
    /// Must be true to create a webhook with provider `none` (no signature check at all).
    #[serde(default)]
    pub allow_unsigned: Option<bool>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListWebhooks {
    /// Only webhooks of this direction.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// Only enabled (true) or disabled (false) webhooks.
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// The webhook id (from create_webhook or list_webhooks).
    pub id: String,
    /// Outbound only: a new target URL.
    #[serde(default)]
    pub url: Option<String>,
    /// A new event-type filter; `["*"]` means all.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// false pauses the webhook (inbound requests get 404, nothing is sent); true resumes it.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Outbound only: replaces the extra static headers.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Inbound only: replaces the outbound webhook ids each verified event is relayed to.
    #[serde(default)]
    pub forward_to: Option<Vec<String>>,
    /// Inbound only: replaces the header values every request must carry ({} removes them).
    #[serde(default)]
    pub require_headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// The webhook id.
    pub id: String,
    /// How long the old secret keeps verifying, in seconds (default 86400 = 24 h; 0 ends it now).
    #[serde(default)]
    pub grace_seconds: Option<u64>,
    /// Use this secret instead of generating one: for providers that generate their own secret
    /// (ConnectSafely, Voxagent), paste theirs here.
    #[serde(default)]
    pub secret: Option<String>,
}

const DEFAULT_GRACE_SECONDS: u64 = 86_400;
const MAX_GRACE_SECONDS: u64 = 30 * 86_400;

impl Service {
    pub async fn create_webhook(&self, req: CreateWebhook) -> Result<Value> {
        let now = now_millis();
        let events = validate_events(req.events)?;
        let headers = req.headers.unwrap_or_default();
        validate_headers(&headers)?;
        let target_url = match (req.direction, req.url) {
            (Direction::Outbound, Some(url)) => self.checked_target(&url).await?,
            (Direction::Outbound, None) => {
                return Err(Error::invalid(
                    "an outbound webhook needs `url`: the http(s) address to deliver events to",
                ))
            }
            (Direction::Inbound, Some(_)) => return Err(Error::invalid(
                "an inbound webhook takes no `url`: its receive URL is generated; leave `url` out",
            )),
            (Direction::Inbound, None) => String::new(),
        };
        if req.direction == Direction::Inbound && !headers.is_empty() {
            return Err(Error::invalid(
                "`headers` apply to outbound webhooks; for inbound ones use `require_headers`",
            ));
        }
        let provider = req.provider.unwrap_or_default();
        let headers = match (req.direction, req.require_headers) {
            (Direction::Outbound, Some(_)) => {
                return Err(Error::invalid(
                    "`require_headers` applies to inbound webhooks only",
                ))
            }
            (Direction::Inbound, Some(required)) => {
                validate_required_headers(&required)?;
                required
            }
            (_, None) => headers,
        };
        if provider == Provider::None && req.allow_unsigned != Some(true) {
            return Err(Error::invalid(
                "provider `none` accepts requests without any signature; pass allow_unsigned: true to confirm, or pick a signed scheme",
            ));
        }
        if req.direction == Direction::Outbound
            && req.provider.is_some_and(|p| p != Provider::Generic)
        {
            return Err(Error::invalid(
                "`provider` is the signature scheme of an inbound sender; outbound deliveries are always signed the generic and Standard Webhooks ways",
            ));
        }
        let forward_to = match req.forward_to {
            Some(_) if req.direction == Direction::Outbound => {
                return Err(Error::invalid(
                    "`forward_to` applies to inbound webhooks only",
                ))
            }
            Some(ids) => self.checked_forward_targets(ids).await?,
            None => vec![],
        };
        let secret = match req.secret {
            Some(s) => validate_secret(s)?,
            None => generate_secret(),
        };
        let webhook = Webhook {
            id: uuid::Uuid::new_v4().to_string(),
            direction: req.direction,
            target_url,
            provider,
            events,
            description: req.description.unwrap_or_default(),
            enabled: true,
            secret,
            previous_secret: None,
            previous_secret_expires_at: None,
            headers,
            created_at: now,
            updated_at: now,
            failure_count: 0,
            first_failure_at: None,
            disabled_reason: None,
            forward_to,
        };
        self.store.insert_webhook(webhook.clone()).await?;
        tracing::info!(webhook_id = %webhook.id, direction = webhook.direction.as_str(), "webhook created");
        let mut out = json!({ "webhook": webhook.to_json(&self.settings.public_url, true) });
        out["secret_notice"] = json!(
            "This is the only time the secret is shown; store it now. Later reads show \"***\"."
        );
        if webhook.direction == Direction::Inbound {
            out["setup"] = json!(self.setup_hint(&webhook));
        }
        Ok(out)
    }

    /// One line on where the receive URL and secret go at the sending platform.
    fn setup_hint(&self, w: &Webhook) -> String {
        let url = receive_url(&self.settings.public_url, &w.id);
        let mut hint = match w.provider {
            Provider::Generic => format!(
                "Give the sender the URL {url} and this secret. Voyager: POST /api/webhooks with \
                 {{\"url\": \"{url}\", \"secret\": \"<secret>\", \"events\": [...]}}. LeadShark: Dashboard \
                 Settings, webhook endpoint. Voxagent (Webhooks > + Create Webhook) and ConnectSafely \
                 (Webhooks > Create Webhook) generate their own secret: paste the URL there, then call \
                 rotate_secret with id={id} and secret=<their secret>. Voyager polls every 5 minutes and \
                 its first poll after a session sync only takes a snapshot (no events for what already \
                 existed); a session_expired event means its LinkedIn cookies need re-syncing.",
                id = w.id
            ),
            Provider::Kakiyo => format!(
                "In Kakiyo, register {url} as a webhook endpoint with the events you want (or *), using this secret; Kakiyo signs with X-Kakiyo-Signature."
            ),
            Provider::Standard => format!(
                "At the Standard Webhooks / Svix sender, add the endpoint {url}; if it shows its own whsec_ signing secret, call rotate_secret with id={} and secret=<that secret>.",
                w.id
            ),
            Provider::Github => format!(
                "GitHub: repository or organisation Settings > Webhooks > Add webhook: Payload URL {url}, Content type application/json, Secret = this secret."
            ),
            Provider::Stripe => format!(
                "Stripe: Developers > Webhooks > Add endpoint {url}; then reveal its signing secret (whsec_...) and call rotate_secret with id={} and secret=<that secret>.",
                w.id
            ),
            Provider::Slack => format!(
                "Slack: app settings > Event Subscriptions > Request URL {url} (the url_verification challenge is answered automatically); call rotate_secret with id={} and secret=<Basic Information > Signing Secret>.",
                w.id
            ),
            Provider::Shopify => format!(
                "Shopify: Settings > Notifications > Webhooks (or the app's webhook subscription) with URL {url}, JSON format; call rotate_secret with id={} and secret=<the app's client secret or the shown signing key>.",
                w.id
            ),
            Provider::None => format!(
                "Unsigned: anyone who knows {url} can post events to it. Keep the URL secret, or prefer a signed scheme."
            ),
        };
        if self.settings.public_url.contains("127.0.0.1")
            || self.settings.public_url.contains("localhost")
        {
            hint.push_str(" The receive URL is local: a provider on the internet needs a tunnel (ngrok, cloudflared) and --public-url set to it.");
        }
        hint
    }

    /// A valid http(s) URL whose host is not a private address (unless allowed).
    async fn checked_target(&self, url: &str) -> Result<String> {
        let url = validate_target_url(url)?;
        let parsed = reqwest::Url::parse(&url).map_err(|e| Error::invalid(e.to_string()))?;
        crate::dispatcher::ssrf::check_target(&parsed, self.settings.allow_private_targets)
            .await
            .map_err(Error::InvalidArgument)?;
        Ok(url)
    }

    async fn checked_forward_targets(&self, ids: Vec<String>) -> Result<Vec<String>> {
        for id in &ids {
            let target = self.webhook(id).await?;
            if target.direction != Direction::Outbound {
                return Err(Error::invalid(format!(
                    "forward_to names {id}, which is inbound; name outbound webhooks (create them first)"
                )));
            }
        }
        Ok(ids)
    }

    pub async fn list_webhooks(&self, req: ListWebhooks) -> Result<Value> {
        let hooks = self.store.list_webhooks(req.direction, req.enabled).await?;
        let list: Vec<Value> = hooks
            .iter()
            .map(|w| w.to_json(&self.settings.public_url, false))
            .collect();
        Ok(json!({ "count": list.len(), "webhooks": list }))
    }

    pub async fn webhook(&self, id: &str) -> Result<Webhook> {
        self.store
            .get_webhook(id)
            .await?
            .ok_or_else(|| Error::webhook_not_found(id))
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Value> {
        let w = self.webhook(id).await?;
        Ok(json!({ "webhook": w.to_json(&self.settings.public_url, false) }))
    }

    pub async fn update_webhook(&self, req: UpdateWebhook) -> Result<Value> {
        let mut w = self.webhook(&req.id).await?;
        if let Some(url) = req.url {
            if w.direction == Direction::Inbound {
                return Err(Error::invalid(
                    "an inbound webhook's URL is generated and cannot be changed",
                ));
            }
            w.target_url = self.checked_target(&url).await?;
        }
        if let Some(events) = req.events {
            w.events = validate_events(Some(events))?;
        }
        if let Some(d) = req.description {
            w.description = d;
        }
        if let Some(e) = req.enabled {
            w.enabled = e;
            if e {
                // Re-enabled by hand: the server's reason and failure streak no longer apply.
                w.disabled_reason = None;
                w.first_failure_at = None;
                w.failure_count = 0;
            }
        }
        if let Some(ids) = req.forward_to {
            if w.direction == Direction::Outbound {
                return Err(Error::invalid(
                    "`forward_to` applies to inbound webhooks only",
                ));
            }
            w.forward_to = self.checked_forward_targets(ids).await?;
        }
        if let Some(h) = req.headers {
            if w.direction == Direction::Inbound {
                return Err(Error::invalid(
                    "`headers` apply to outbound webhooks; for inbound ones use `require_headers`",
                ));
            }
            validate_headers(&h)?;
            w.headers = h;
        }
        if let Some(required) = req.require_headers {
            if w.direction == Direction::Outbound {
                return Err(Error::invalid(
                    "`require_headers` applies to inbound webhooks only",
                ));
            }
            validate_required_headers(&required)?;
            w.headers = required;
        }
        w.updated_at = now_millis();
        if !self.store.update_webhook(w.clone()).await? {
            return Err(Error::webhook_not_found(&req.id));
        }
        tracing::info!(webhook_id = %w.id, enabled = w.enabled, "webhook updated");
        Ok(json!({ "webhook": w.to_json(&self.settings.public_url, false) }))
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<Value> {
        if !self.store.delete_webhook(id).await? {
            return Err(Error::webhook_not_found(id));
        }
        tracing::info!(webhook_id = %id, "webhook deleted");
        Ok(json!({
            "deleted": true,
            "id": id,
            "note": "Its stored events and delivery log remain readable; its receive URL now answers 404."
        }))
    }

    pub async fn rotate_secret(&self, req: RotateSecret) -> Result<Value> {
        let grace = req.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
        if grace > MAX_GRACE_SECONDS {
            return Err(Error::invalid(format!(
                "grace_seconds is at most {MAX_GRACE_SECONDS} (30 days)"
            )));
        }
        let mut w = self.webhook(&req.id).await?;
        let now = now_millis();
        let new_secret = match req.secret {
            Some(s) => validate_secret(s)?,
            None => generate_secret(),
        };
        let old = std::mem::replace(&mut w.secret, new_secret);
        if grace > 0 {
            w.previous_secret = Some(old);
            w.previous_secret_expires_at = Some(now + grace as i64 * 1000);
        } else {
            w.previous_secret = None;
            w.previous_secret_expires_at = None;
        }
        w.updated_at = now;
        if !self.store.update_webhook(w.clone()).await? {
            return Err(Error::webhook_not_found(&req.id));
        }
        tracing::info!(webhook_id = %w.id, grace_seconds = grace, "secret rotated");
        Ok(json!({
            "webhook": w.to_json(&self.settings.public_url, true),
            "secret_notice": format!(
                "New secret shown once. The previous secret keeps verifying for {grace} s; update the sender before then."
            ),
        }))
    }
}

fn validate_events(events: Option<Vec<String>>) -> Result<Vec<String>> {
    let events = events.unwrap_or_else(|| vec!["*".to_string()]);
    if events.is_empty() {
        return Err(Error::invalid(
            "`events` must name at least one event type, or [\"*\"] for all (see list_event_types)",
        ));
    }
    for e in &events {
        if e.trim().is_empty() || e.len() > 200 {
            return Err(Error::invalid(format!(
                "event type {e:?} is empty or longer than 200 characters"
            )));
        }
    }
    Ok(events)
}

fn validate_required_headers(headers: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in headers {
        axum::http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::invalid(format!("{k:?} is not a valid HTTP header name")))?;
        if v.is_empty() {
            return Err(Error::invalid(format!(
                "required header {k:?} needs a value"
            )));
        }
    }
    Ok(())
}

fn validate_secret(secret: String) -> Result<String> {
    if secret.len() < 8 || secret.len() > 512 {
        return Err(Error::invalid(
            "`secret` must be 8 to 512 characters; leave it out to have one generated",
        ));
    }
    Ok(secret)
}

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in headers {
        let name = axum::http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::invalid(format!("{k:?} is not a valid HTTP header name")))?;
        axum::http::HeaderValue::from_str(v)
            .map_err(|_| Error::invalid(format!("the value of header {k:?} is not valid")))?;
        let lower = name.as_str();
        if lower == "content-type"
            || lower == "host"
            || lower == "content-length"
            || lower.starts_with("webhook-")
            || lower.starts_with("x-webhook-")
        {
            return Err(Error::invalid(format!(
                "header {k:?} is set by the server and cannot be overridden"
            )));
        }
    }
    Ok(())
}

/// An outbound target must be an absolute http(s) URL.
pub(crate) fn validate_target_url(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        Error::invalid(format!(
            "`url` {url:?} is not an absolute URL ({e}); give e.g. https://example.com/webhook"
        ))
    })?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(Error::invalid(format!(
            "`url` must use http or https, not {}",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none() {
        return Err(Error::invalid("`url` has no host"));
    }
    Ok(parsed.to_string())
}
