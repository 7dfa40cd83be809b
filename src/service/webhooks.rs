//! Webhook management: create, list, get, update, delete, rotate secrets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::Service;
use crate::error::{quote, Error, Result};
use crate::model::{
    now_millis, Caller, Direction, Filter, Principal, Provider, Secret, Webhook, WebhookId,
};
use crate::store::{WebhookChange, WebhookFilter};

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
    pub secret: Option<Secret>,
    #[serde(default)]
    pub description: Option<String>,
    /// Outbound only: extra static headers sent with every delivery.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Inbound only: outbound webhook ids to relay each verified event to (re-signed with
    /// each target's secret).
    #[serde(default)]
    pub forward_to: Option<Vec<WebhookId>>,
    /// Inbound only: header values every request must carry besides a valid signature, e.g.
    /// {"Authorization": "Bearer ..."} as ConnectSafely's optional auth header.
    #[serde(default)]
    pub require_headers: Option<BTreeMap<String, Secret>>,
    /// Must be true to create a webhook with provider `none` (no signature check at all).
    #[serde(default)]
    pub allow_unsigned: Option<bool>,
    /// Inbound, `generic` and `kakiyo` only: accept a signature over the compact
    /// re-serialisation of the JSON body (what senders that sign `JSON.stringify(payload)`
    /// send; default true). The signed bytes are then what is stored. false: the raw body only,
    /// for a sender that signs exactly what it sends.
    #[serde(default)]
    pub accept_compact_signatures: Option<bool>,
    /// Outbound only: a content filter; only events whose content matches are delivered
    /// (send_event matches its {"event", "data"}; a relay, the inbound event's payload and
    /// headers.<name>), e.g. {"data.amount": {"$gte": 100}}. Events filtered out are not sent
    /// and leave no delivery-log row.
    #[serde(default)]
    pub filter: Option<Filter>,
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
    /// The operator only: only this principal's webhooks (`local`, `token:<name>`,
    /// `oauth:<issuer>#<subject>`). Everyone else sees only their own anyway.
    #[serde(default)]
    pub principal: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// The webhook id (from create_webhook or list_webhooks).
    pub id: WebhookId,
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
    pub forward_to: Option<Vec<WebhookId>>,
    /// Inbound only: replaces the header values every request must carry ({} removes them).
    #[serde(default)]
    pub require_headers: Option<BTreeMap<String, Secret>>,
    /// Inbound, `generic` and `kakiyo` only: accept a signature over the compact
    /// re-serialisation of the JSON body (what senders that sign `JSON.stringify(payload)`
    /// send; default true). The signed bytes are then what is stored. false: the raw body only,
    /// for a sender that signs exactly what it sends.
    #[serde(default)]
    pub accept_compact_signatures: Option<bool>,
    /// Outbound only: a content filter; only events whose content matches are delivered
    /// (send_event matches its {"event", "data"}; a relay, the inbound event's payload and
    /// headers.<name>), e.g. {"data.amount": {"$gte": 100}}. Events filtered out are not sent
    /// and leave no delivery-log row. {} removes the filter.
    #[serde(default)]
    pub filter: Option<Filter>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// The webhook id.
    pub id: WebhookId,
    /// How long the old secret keeps verifying, in seconds (default 86400 = 24 h; 0 ends it now).
    #[serde(default)]
    pub grace_seconds: Option<u64>,
    /// Use this secret instead of generating one: for providers that generate their own secret
    /// (ConnectSafely, Voxagent), paste theirs here.
    #[serde(default)]
    pub secret: Option<Secret>,
}

/// A webhook as shown to a client: the row, and the URL that goes with it (outbound: the
/// target; inbound: the receive URL, derived from the public URL so that changing
/// `--public-url` changes every URL).
#[derive(Debug, Clone)]
pub struct WebhookView {
    pub webhook: Webhook,
    pub url: String,
}

/// A new webhook. Its secret is shown to the creator this once.
#[derive(Debug, Clone)]
pub struct Created {
    pub view: WebhookView,
    /// Inbound: where the URL and secret go at the sending platform.
    pub setup: Option<String>,
}

/// A rotated secret. The new secret is shown this once; the old one verifies for the grace.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub view: WebhookView,
    pub grace_seconds: u64,
}

const DEFAULT_GRACE_SECONDS: u64 = 86_400;
const MAX_GRACE_SECONDS: u64 = 30 * 86_400;

impl Service {
    pub async fn create_webhook(&self, caller: &Caller, req: CreateWebhook) -> Result<Created> {
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
        let required_headers = match (req.direction, req.require_headers) {
            (Direction::Outbound, Some(_)) => {
                return Err(Error::invalid(
                    "`require_headers` applies to inbound webhooks only",
                ))
            }
            (Direction::Inbound, Some(required)) => {
                validate_required_headers(&required)?;
                required
            }
            (_, None) => BTreeMap::new(),
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
            Some(ids) => self.checked_forward_targets(caller, ids).await?,
            None => vec![],
        };
        if let Some(accept) = req.accept_compact_signatures {
            check_compact_signatures(req.direction, provider, accept)?;
        }
        let secret = match req.secret {
            Some(s) => validate_secret(s)?,
            None => Secret::generate(),
        };
        let mut webhook = Webhook::new(WebhookId::generate(), req.direction, secret, now);
        webhook.target_url = target_url;
        webhook.provider = provider;
        webhook.events = events;
        webhook.description = validate_description(req.description)?.unwrap_or_default();
        webhook.extra_headers = headers;
        webhook.required_headers = required_headers;
        webhook.forward_to = forward_to;
        webhook.accept_compact_signatures = req.accept_compact_signatures.unwrap_or(true);
        webhook.filter = checked_filter(req.direction, req.filter)?.flatten();
        webhook.owner = caller.principal().clone();
        self.store.insert_webhook(&webhook).await?;
        tracing::info!(webhook_id = %webhook.id, direction = ?webhook.direction, owner = %webhook.owner, "webhook created");
        let setup =
            (webhook.direction == Direction::Inbound).then(|| self.setup_instructions(&webhook));
        Ok(Created {
            view: self.view(webhook),
            setup,
        })
    }

    /// A valid http(s) URL whose host is not a private address (unless allowed).
    pub(super) async fn checked_target(&self, url: &str) -> Result<String> {
        let url = validate_target_url(url)?;
        let parsed = reqwest::Url::parse(&url).map_err(|e| Error::invalid(e.to_string()))?;
        crate::dispatcher::ssrf::check_target(&parsed, self.settings.allow_private_targets)
            .await
            .map_err(Error::InvalidArgument)?;
        Ok(url)
    }

    /// Relay targets: outbound webhooks the caller sees (so, for anyone but the operator,
    /// its own).
    async fn checked_forward_targets(
        &self,
        caller: &Caller,
        ids: Vec<WebhookId>,
    ) -> Result<Vec<WebhookId>> {
        validate_forward_to(&ids)?;
        for id in &ids {
            let target = self.webhook(caller, id).await?;
            if target.direction != Direction::Outbound {
                return Err(Error::invalid(format!(
                    "forward_to names {id}, which is inbound; name outbound webhooks (create them first)"
                )));
            }
        }
        Ok(ids)
    }

    pub(super) fn view(&self, webhook: Webhook) -> WebhookView {
        let url = match webhook.direction {
            Direction::Inbound => self.receive_url(&webhook.id),
            Direction::Outbound => webhook.target_url.clone(),
        };
        WebhookView { webhook, url }
    }

    pub async fn list_webhooks(
        &self,
        caller: &Caller,
        req: ListWebhooks,
    ) -> Result<Vec<WebhookView>> {
        let owner = match (caller.only(), req.principal) {
            (Some(own), Some(asked)) if asked != own.as_str() => {
                return Err(Error::invalid(
                    "`principal` is the operator's filter; you see only your own webhooks, so leave it out",
                ))
            }
            (Some(own), _) => Some(own.clone()),
            (None, asked) => asked.map(Principal::new),
        };
        let hooks = self
            .store
            .list_webhooks(WebhookFilter {
                direction: req.direction,
                enabled: req.enabled,
                owner,
            })
            .await?;
        Ok(hooks.into_iter().map(|w| self.view(w)).collect())
    }

    /// The webhook, or a not-found error a caller can act on: another principal's answers
    /// exactly as an unknown id does (nothing tells a stranger it exists).
    /// An MCP Events subscription's engine row is not one: it is made and removed with
    /// `events/subscribe` and `events/unsubscribe`, never with the webhook tools.
    pub(super) async fn webhook(&self, caller: &Caller, id: &WebhookId) -> Result<Webhook> {
        if crate::model::EventSubscription::is_subscription_id(id) {
            return Err(Error::NotFound {
                kind: "webhook",
                id: crate::error::bounded(id.as_str(), crate::error::QUOTE_CHARS),
                hint: "Ids starting with sub_ are MCP Events subscriptions, managed with events/subscribe and events/unsubscribe; call list_webhooks to see webhooks.",
            });
        }
        self.store
            .get_webhook(id)
            .await?
            .filter(|w| caller.sees(&w.owner))
            .ok_or_else(|| Error::webhook_not_found(id))
    }

    /// The owner of a webhook's history: the webhook's (cached), else its key's after a
    /// delete; an id never seen is the local principal's, as everything from before owners.
    pub(super) async fn owner_of(&self, id: &WebhookId) -> Result<Principal> {
        if let Some(w) = self.store.get_webhook(id).await? {
            return Ok(w.owner);
        }
        Ok(self
            .store
            .owner_of(id)
            .await?
            .unwrap_or_else(Principal::local))
    }

    pub async fn get_webhook(&self, caller: &Caller, id: &WebhookId) -> Result<WebhookView> {
        Ok(self.view(self.webhook(caller, id).await?))
    }

    pub async fn update_webhook(&self, caller: &Caller, req: UpdateWebhook) -> Result<WebhookView> {
        let w = self.webhook(caller, &req.id).await?;
        let inbound = w.direction == Direction::Inbound;
        let mut change = WebhookChange {
            updated_at: now_millis(),
            ..Default::default()
        };
        if let Some(url) = req.url {
            if inbound {
                return Err(Error::invalid(
                    "an inbound webhook's URL is generated and cannot be changed",
                ));
            }
            change.target_url = Some(self.checked_target(&url).await?);
        }
        if let Some(events) = req.events {
            change.events = Some(validate_events(Some(events))?);
        }
        change.description = validate_description(req.description)?;
        if let Some(e) = req.enabled {
            change.enabled = Some(e);
            // Re-enabled by hand: the server's reason and failure streak no longer apply.
            change.reset_health = e;
        }
        if let Some(ids) = req.forward_to {
            if !inbound {
                return Err(Error::invalid(
                    "`forward_to` applies to inbound webhooks only",
                ));
            }
            change.forward_to = Some(self.checked_forward_targets(caller, ids).await?);
        }
        if let Some(h) = req.headers {
            if inbound {
                return Err(Error::invalid(
                    "`headers` apply to outbound webhooks; for inbound ones use `require_headers`",
                ));
            }
            validate_headers(&h)?;
            change.extra_headers = Some(h);
        }
        change.filter = checked_filter(w.direction, req.filter)?;
        if let Some(accept) = req.accept_compact_signatures {
            check_compact_signatures(w.direction, w.provider, accept)?;
            change.accept_compact_signatures = Some(accept);
        }
        if let Some(required) = req.require_headers {
            if !inbound {
                return Err(Error::invalid(
                    "`require_headers` applies to inbound webhooks only",
                ));
            }
            validate_required_headers(&required)?;
            change.required_headers = Some(required);
        }
        let updated = self
            .store
            .update_webhook(&req.id, change)
            .await?
            .ok_or_else(|| Error::webhook_not_found(&req.id))?;
        tracing::info!(webhook_id = %updated.id, enabled = updated.enabled, "webhook updated");
        Ok(self.view(updated))
    }

    pub async fn delete_webhook(&self, caller: &Caller, id: &WebhookId) -> Result<()> {
        // A subscription's delivery row is not a webhook: only events/unsubscribe and its TTL
        // end it (`webhook` answers not-found for it).
        self.webhook(caller, id).await?;
        if !self.store.delete_webhook(id).await? {
            return Err(Error::webhook_not_found(id));
        }
        tracing::info!(webhook_id = %id, "webhook deleted");
        Ok(())
    }

    pub async fn rotate_secret(&self, caller: &Caller, req: RotateSecret) -> Result<Rotated> {
        let grace = req.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
        if grace > MAX_GRACE_SECONDS {
            return Err(Error::invalid(format!(
                "grace_seconds is at most {MAX_GRACE_SECONDS} (30 days)"
            )));
        }
        let secret = match req.secret {
            Some(s) => validate_secret(s)?,
            None => Secret::generate(),
        };
        self.webhook(caller, &req.id).await?; // never a subscription's row, nor another's
        let now = now_millis();
        let grace_until = (grace > 0).then(|| now + grace as i64 * 1000);
        let w = self
            .store
            .rotate_secret(&req.id, secret, grace_until, now)
            .await?
            .ok_or_else(|| Error::webhook_not_found(&req.id))?;
        tracing::info!(webhook_id = %w.id, grace_seconds = grace, "secret rotated");
        Ok(Rotated {
            view: self.view(w),
            grace_seconds: grace,
        })
    }
}

/// Limits on what a caller may store: every list answer carries these fields.
const MAX_DESCRIPTION: usize = 1000;
const MAX_EVENT_TYPES: usize = 100;
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 4096;
const MAX_FORWARD_TO: usize = 32;

fn validate_description(d: Option<String>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(Error::invalid(format!(
            "`description` is at most {MAX_DESCRIPTION} characters (got {})",
            d.chars().count()
        ))),
        other => Ok(other),
    }
}

/// A content filter, for an outbound webhook only: `Some(None)` when the filter given is `{}`
/// (which matches everything: no filter), `None` when none was given.
fn checked_filter(direction: Direction, filter: Option<Filter>) -> Result<Option<Option<Filter>>> {
    match filter {
        None => Ok(None),
        Some(_) if direction == Direction::Inbound => Err(Error::invalid(
            "`filter` applies to outbound webhooks (what they deliver); an inbound webhook stores every verified event: pass `filter` to wait_for_events or list_events instead",
        )),
        Some(f) if f.as_json().as_object().is_some_and(|m| m.is_empty()) => Ok(Some(None)),
        Some(f) => Ok(Some(Some(f))),
    }
}

/// `accept_compact_signatures` means something only where a re-serialisation can verify.
fn check_compact_signatures(direction: Direction, provider: Provider, accept: bool) -> Result<()> {
    let applies =
        direction == Direction::Inbound && matches!(provider, Provider::Generic | Provider::Kakiyo);
    if applies || accept {
        return Ok(());
    }
    Err(Error::invalid(
        "`accept_compact_signatures` applies to inbound webhooks of the generic and kakiyo schemes; the other schemes verify the raw body only",
    ))
}

fn validate_forward_to(ids: &[WebhookId]) -> Result<()> {
    if ids.len() > MAX_FORWARD_TO {
        return Err(Error::invalid(format!(
            "`forward_to` names at most {MAX_FORWARD_TO} webhooks"
        )));
    }
    Ok(())
}

fn validate_header_count(n: usize, values: impl Iterator<Item = usize>) -> Result<()> {
    if n > MAX_HEADERS {
        return Err(Error::invalid(format!("at most {MAX_HEADERS} headers")));
    }
    for len in values {
        if len > MAX_HEADER_VALUE {
            return Err(Error::invalid(format!(
                "a header value is at most {MAX_HEADER_VALUE} bytes"
            )));
        }
    }
    Ok(())
}

fn validate_events(events: Option<Vec<String>>) -> Result<Vec<String>> {
    let events = events.unwrap_or_else(|| vec!["*".to_string()]);
    if events.len() > MAX_EVENT_TYPES {
        return Err(Error::invalid(format!(
            "`events` names at most {MAX_EVENT_TYPES} event types; use [\"*\"] for all"
        )));
    }
    if events.is_empty() {
        return Err(Error::invalid(
            "`events` must name at least one event type, or [\"*\"] for all (see list_event_types)",
        ));
    }
    for e in &events {
        if e != "*" && !crate::model::is_event_type(e) {
            return Err(Error::invalid(format!(
                "event type {} is not {}, nor \"*\" for all",
                quote(e),
                crate::model::EVENT_TYPE_RULE
            )));
        }
    }
    Ok(events)
}

fn validate_required_headers(headers: &BTreeMap<String, Secret>) -> Result<()> {
    validate_header_count(headers.len(), headers.values().map(|v| v.len()))?;
    for (k, v) in headers {
        http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::invalid(format!("{} is not a valid HTTP header name", quote(k))))?;
        if v.is_empty() {
            return Err(Error::invalid(format!(
                "required header {} needs a value",
                quote(k)
            )));
        }
    }
    Ok(())
}

fn validate_secret(secret: Secret) -> Result<Secret> {
    if secret.len() < 8 || secret.len() > 512 {
        return Err(Error::invalid(
            "`secret` must be 8 to 512 characters; leave it out to have one generated",
        ));
    }
    Ok(secret)
}

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<()> {
    validate_header_count(headers.len(), headers.values().map(String::len))?;
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::invalid(format!("{} is not a valid HTTP header name", quote(k))))?;
        http::HeaderValue::from_str(v).map_err(|_| {
            Error::invalid(format!("the value of header {} is not valid", quote(k)))
        })?;
        let lower = name.as_str();
        if lower == "content-type"
            || lower == "host"
            || lower == "content-length"
            || lower.starts_with("webhook-")
            || lower.starts_with("x-webhook-")
        {
            return Err(Error::invalid(format!(
                "header {} is set by the server and cannot be overridden",
                quote(k)
            )));
        }
    }
    Ok(())
}

/// An outbound target must be an absolute http(s) URL.
pub(crate) fn validate_target_url(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        Error::invalid(format!(
            "`url` {} is not an absolute URL ({e}); give e.g. https://example.com/webhook",
            quote(url)
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
