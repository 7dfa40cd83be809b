//! The MCP Events extension (the draft `experimental-ext-triggers-events`, design sketch of
//! 2026-02-19) as JSON-RPC: `events/list`, `events/poll`, `events/stream`, `events/subscribe`
//! and `events/unsubscribe`. This module owns the draft's wire shapes and error codes; the
//! engine behind them (reading after a cursor, webhook subscriptions and their delivery) is
//! `service::subscriptions`. A revision of the draft is a change here.
//!
//! Mapping onto webhook-mcp:
//! - event types: one per event type of the catalogue (its example gives the `payloadSchema`),
//!   and `webhook.received`, every verified event of every inbound webhook whatever its type;
//!   arguments filter by `webhook_id` (and, for `webhook.received`, `event`);
//! - cursor: the event `seq` as a string; `truncated` when retention (or `maxAgeMs`) cut
//!   events out of the range asked for;
//! - `eventId`: the provider's event id where the sender gave one (our own id otherwise; both
//!   are in `_meta`), so a client de-duplicates across paths;
//! - webhook mode: the principal is the bearer token over HTTP (a server without
//!   `--auth-token` refuses with -32012) and the local user on stdio (the process runs as the
//!   user who started it); deliveries go through the outbound engine.

use std::time::Duration;

use rmcp::model::{CustomNotification, CustomRequest, CustomResult, ErrorCode, ServerNotification};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast::error::RecvError;

use super::http::HttpPrincipal;
use crate::catalog;
use crate::model::{rfc3339, Secret};
use crate::service::{
    occurrence, EventFilter, Service, Subscribe, SubscribeError, Subscribed, SubscriptionArgs, Ttl,
    ALL_EVENTS,
};

/// Every verified event of every inbound webhook.
pub const ALL: &str = ALL_EVENTS;
const NOT_FOUND: ErrorCode = ErrorCode(-32011);
const FORBIDDEN: ErrorCode = ErrorCode(-32012);
const RESOURCE_EXHAUSTED: ErrorCode = ErrorCode(-32013);
const CALLBACK_ENDPOINT: ErrorCode = ErrorCode(-32015);
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// What a quiet poller is told to wait.
const NEXT_POLL_MS: u64 = 2000;
/// The draft asks for a heartbeat at least every 30 s.
const HEARTBEAT: Duration = Duration::from_secs(25);
const DEFAULT_MAX_EVENTS: usize = 50;
const MAX_EVENTS: usize = 199;
const UNSUPPORTED: ErrorCode = ErrorCode(-32014);

/// The delivery modes offered: webhook mode writes (a stored subscription, POSTs to its URL),
/// so a `--read-only` server leaves it out.
fn delivery(svc: &Service) -> &'static [&'static str] {
    if svc.settings().read_only {
        &["poll", "push"]
    } else {
        &["poll", "push", "webhook"]
    }
}

/// The capability this server declares (under `experimental.events`: rmcp's capabilities have
/// no slot for a top-level `events` key). The set of types is the fixed catalogue.
pub fn capability() -> serde_json::Map<String, Value> {
    let mut m = Map::new();
    m.insert("listChanged".into(), Value::Bool(false));
    m
}

/// Whether `method` belongs to this extension.
pub fn handles(method: &str) -> bool {
    method.starts_with("events/")
}

pub async fn handle(
    svc: &Service,
    request: CustomRequest,
    context: RequestContext<RoleServer>,
) -> Result<CustomResult, McpError> {
    let params = request.params.unwrap_or(Value::Null);
    match request.method.as_str() {
        "events/list" => Ok(CustomResult(json!({ "events": types(delivery(svc)) }))),
        "events/poll" => poll(svc, parse(params)?).await.map(CustomResult),
        "events/stream" => stream(svc, parse(params)?, context).await.map(CustomResult),
        "events/subscribe" | "events/unsubscribe" if svc.settings().read_only => {
            Err(McpError::new(
                UNSUPPORTED,
                "this server runs with --read-only: webhook delivery (a subscription stored and POSTed from) is not offered; use events/poll or events/stream",
                Some(json!({ "feature": "deliveryMode", "value": "webhook" })),
            ))
        }
        "events/subscribe" => {
            let principal = principal(&context)?;
            subscribe(svc, principal, params).await.map(CustomResult)
        }
        "events/unsubscribe" => {
            let principal = principal(&context)?;
            unsubscribe(svc, principal, params).await.map(CustomResult)
        }
        other => Err(McpError::new(
            ErrorCode::METHOD_NOT_FOUND,
            crate::error::bounded(other, 100),
            None,
        )),
    }
}

// --- events/list ----------------------------------------------------------------------------

fn types(delivery: &[&str]) -> Vec<Value> {
    let arguments = |with_event: bool| {
        let mut props = json!({
            "webhook_id": { "type": "string", "description": "Only events received by this inbound webhook." }
        });
        if with_event {
            props["event"] =
                json!({ "type": "string", "description": "Only events of this type." });
        }
        json!({ "type": "object", "properties": props, "additionalProperties": false })
    };
    let mut out = vec![json!({
        "name": ALL,
        "description": "Every verified event any inbound webhook receives, whatever its type. The payload is the sender's, untrusted.",
        "delivery": delivery,
        "inputSchema": arguments(true),
        "payloadSchema": { "type": "object", "description": "The sender's JSON payload (untrusted third-party data)." },
    })];
    let mut seen = std::collections::BTreeSet::new();
    for t in catalog::list(None) {
        if !seen.insert(t.event) {
            continue;
        }
        let platforms: Vec<&str> = catalog::list(None)
            .into_iter()
            .filter(|o| o.event == t.event)
            .map(|o| o.platform.as_str())
            .collect();
        out.push(json!({
            "name": t.event,
            "description": format!("{} (sent by {}). Untrusted third-party data.", t.description, platforms.join(", ")),
            "delivery": delivery,
            "inputSchema": arguments(false),
            "payloadSchema": schema_of(&t.example),
        }));
    }
    out
}

/// A JSON Schema describing the shape of an example payload.
fn schema_of(example: &Value) -> Value {
    match example {
        Value::Object(m) => {
            let props: Map<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), schema_of(v))).collect();
            json!({ "type": "object", "properties": props })
        }
        Value::Array(items) => match items.first() {
            Some(first) => json!({ "type": "array", "items": schema_of(first) }),
            None => json!({ "type": "array" }),
        },
        Value::String(_) => json!({ "type": "string" }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "type": "integer" }),
        Value::Number(_) => json!({ "type": "number" }),
        Value::Bool(_) => json!({ "type": "boolean" }),
        Value::Null => json!({}),
    }
}

// --- the parameters every mode shares -------------------------------------------------------

/// `{name, arguments, cursor, maxAgeMs, maxEvents}`: what poll and stream carry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listen {
    name: String,
    #[serde(default)]
    arguments: SubscriptionArgs,
    /// `null` (or absent): from now.
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    max_age_ms: Option<u64>,
    #[serde(default)]
    max_events: Option<usize>,
}

impl Listen {
    fn filter(&self) -> EventFilter {
        EventFilter {
            name: self.name.clone(),
            args: self.arguments.clone(),
        }
    }

    fn start(&self) -> Result<Option<i64>, McpError> {
        parse_cursor(self.cursor.as_deref())
    }

    /// The `maxAgeMs` floor as an instant, fixed when the request arrives.
    fn floor(&self) -> Option<i64> {
        self.max_age_ms
            .map(|ms| crate::model::now_millis() - ms.min(i64::MAX as u64) as i64)
    }
}

fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, McpError> {
    match cursor {
        None => Ok(None),
        Some(c) => c.parse::<i64>().map(Some).map_err(|_| {
            McpError::invalid_params(
                "invalid cursor: pass back a cursor this server returned, or null",
                None,
            )
        }),
    }
}

fn invalid(e: impl std::fmt::Display) -> McpError {
    McpError::invalid_params(
        crate::error::bounded(&format!("invalid params: {e}"), 300),
        None,
    )
}

fn parse(params: Value) -> Result<Listen, McpError> {
    let listen: Listen = serde_json::from_value(params).map_err(invalid)?;
    check_name(&listen.name, &listen.arguments)?;
    Ok(listen)
}

/// The name must be a type `events/list` names; `event` filters only `webhook.received`.
fn check_name(name: &str, args: &SubscriptionArgs) -> Result<(), McpError> {
    if name != ALL && !catalog::list(None).iter().any(|t| t.event == name) {
        return Err(McpError::new(
            NOT_FOUND,
            format!(
                "no event type {}; events/list names them",
                crate::error::quote(name)
            ),
            Some(json!({ "kind": "event" })),
        ));
    }
    if name != ALL && args.event.is_some() {
        return Err(McpError::invalid_params(
            "`event` filters only webhook.received; the type is already the name",
            None,
        ));
    }
    Ok(())
}

// --- events/poll ----------------------------------------------------------------------------

async fn poll(svc: &Service, sub: Listen) -> Result<Value, McpError> {
    let Some(after) = sub.start()? else {
        let (now, _) = svc.event_bounds().await.map_err(internal)?;
        return Ok(json!({
            "events": [], "cursor": now.to_string(), "truncated": false,
            "hasMore": false, "nextPollMs": NEXT_POLL_MS,
        }));
    };
    let limit = sub
        .max_events
        .unwrap_or(DEFAULT_MAX_EVENTS)
        .clamp(1, MAX_EVENTS);
    let batch = svc
        .read_after(&sub.filter(), after, limit, sub.floor())
        .await
        .map_err(internal)?;
    let events: Vec<Value> = batch.events.iter().map(|e| occurrence(e, None)).collect();
    Ok(json!({
        "events": events,
        "cursor": batch.cursor.to_string(),
        "truncated": batch.truncated,
        "hasMore": batch.more,
        "nextPollMs": NEXT_POLL_MS,
    }))
}

// --- events/stream --------------------------------------------------------------------------

/// One open `events/stream` request: catch up from the cursor, then push each new event,
/// with heartbeats, until the client cancels (stdio: `notifications/cancelled`; HTTP: closing
/// the request) or the session ends.
async fn stream(
    svc: &Service,
    sub: Listen,
    context: RequestContext<RoleServer>,
) -> Result<Value, McpError> {
    let id = serde_json::to_value(&context.id).unwrap_or(Value::Null);
    let peer = context.peer.clone();
    let send = |method: &'static str, mut params: Value| {
        params["_meta"] = json!({ SUBSCRIPTION_ID: id });
        let peer = peer.clone();
        async move {
            peer.send_notification(ServerNotification::CustomNotification(
                CustomNotification::new(method, Some(params)),
            ))
            .await
            .is_ok()
        }
    };
    let filter = sub.filter();
    let floor = sub.floor();
    // Subscribed before the catch-up read, so nothing falls between the two.
    let mut bus = svc.subscribe_events();
    let mut cursor = match sub.start()? {
        Some(c) => c,
        None => svc.event_bounds().await.map_err(internal)?.0,
    };
    let mut truncated = false;
    let mut announced = false;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    loop {
        // Catch up: everything after the cursor, page by page.
        loop {
            let batch = svc
                .read_after(&filter, cursor, MAX_EVENTS, floor)
                .await
                .map_err(internal)?;
            truncated |= batch.truncated;
            if !announced || batch.truncated {
                let active = json!({ "cursor": cursor.to_string(), "truncated": truncated });
                if !send("notifications/events/active", active).await {
                    return Ok(json!({ "_meta": {} }));
                }
                announced = true;
                truncated = false;
            }
            for e in &batch.events {
                if !send("notifications/events/event", occurrence(e, Some(e.seq))).await {
                    return Ok(json!({ "_meta": {} }));
                }
            }
            cursor = batch.cursor;
            if !batch.more {
                break;
            }
        }
        // Wait for a matching notice (or a lag: re-read), a heartbeat, or the end.
        loop {
            tokio::select! {
                _ = context.ct.cancelled() => return Ok(json!({ "_meta": {} })),
                _ = heartbeat.tick() => {
                    let beat = json!({ "cursor": cursor.to_string() });
                    if !send("notifications/events/heartbeat", beat).await {
                        return Ok(json!({ "_meta": {} }));
                    }
                }
                notice = bus.recv() => match notice {
                    Ok(n) if n.seq <= cursor => {}
                    Ok(n) if !filter.matches(&n.webhook_id, &n.event) => {}
                    Ok(_) | Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        let _ = send("notifications/events/terminated", json!({})).await;
                        return Ok(json!({ "_meta": {} }));
                    }
                }
            }
        }
    }
}

// --- events/subscribe, events/unsubscribe (webhook mode) ------------------------------------

/// The principal of a webhook-mode call: the bearer token's on HTTP (only when the server
/// checks one), the local user on stdio.
fn principal(context: &RequestContext<RoleServer>) -> Result<String, McpError> {
    match context.extensions.get::<axum::http::request::Parts>() {
        Some(parts) => parts
            .extensions
            .get::<HttpPrincipal>()
            .map(|p| p.0.clone())
            .ok_or_else(|| {
                McpError::new(
                    FORBIDDEN,
                    "webhook delivery needs an authenticated principal: start the server with --auth-token (or use events/poll or events/stream)",
                    None,
                )
            }),
        None => {
            let user = std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "user".into());
            Ok(format!("local:{user}"))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeParams {
    name: String,
    #[serde(default)]
    arguments: SubscriptionArgs,
    delivery: Delivery,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    max_age_ms: Option<u64>,
    /// Absent: the server's default; `null`: no expiry; a number: a suggestion.
    #[serde(default, deserialize_with = "present")]
    ttl_ms: Option<Option<u64>>,
}

/// Tells an explicit `null` (Some(None)) from an absent field (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
struct Delivery {
    #[serde(default)]
    mode: Option<String>,
    url: String,
    #[serde(default)]
    secret: Option<Secret>,
}

async fn subscribe(svc: &Service, principal: String, params: Value) -> Result<Value, McpError> {
    let p: SubscribeParams = serde_json::from_value(params).map_err(invalid)?;
    check_name(&p.name, &p.arguments)?;
    if let Some(mode) = p.delivery.mode.as_deref().filter(|m| *m != "webhook") {
        return Err(McpError::invalid_params(
            format!(
                "delivery.mode {} is not webhook: events/subscribe is webhook mode only (use events/poll or events/stream)",
                crate::error::quote(mode)
            ),
            None,
        ));
    }
    let secret = p.delivery.secret.ok_or_else(|| {
        McpError::invalid_params("`delivery.secret` is required (whsec_...)", None)
    })?;
    let req = Subscribe {
        principal,
        filter: EventFilter {
            name: p.name,
            args: p.arguments,
        },
        url: p.delivery.url,
        secret,
        cursor: parse_cursor(p.cursor.as_deref())?,
        max_age_ms: p.max_age_ms,
        ttl: match p.ttl_ms {
            None => Ttl::ServerDefault,
            Some(None) => Ttl::NoExpiry,
            Some(Some(ms)) => Ttl::Millis(ms),
        },
    };
    match svc.subscribe(req).await {
        Ok(s) => Ok(subscribed(s)),
        Err(SubscribeError::Callback { reason }) => Err(McpError::new(
            CALLBACK_ENDPOINT,
            format!("the callback endpoint failed verification ({reason}): it must answer the signed verification POST with 2xx and {{\"challenge\": <the challenge>}}"),
            Some(json!({ "reason": reason })),
        )),
        Err(SubscribeError::Exhausted { what, max }) => Err(McpError::new(
            RESOURCE_EXHAUSTED,
            format!("{what} has {max} live subscriptions, the most allowed; unsubscribe some first"),
            Some(json!({ "limit": "subscriptions", "max": max })),
        )),
        Err(SubscribeError::Service(e)) => Err(service_error(e)),
    }
}

fn subscribed(s: Subscribed) -> Value {
    let mut out = json!({
        "id": s.id,
        "refreshBefore": s.refresh_before.map(rfc3339),
        "cursor": s.cursor.to_string(),
        "truncated": s.truncated,
    });
    if let Some(h) = s.status {
        let mut status = json!({
            "active": h.active,
            "lastDeliveryAt": h.last_delivery_at.map(rfc3339),
            "lastError": h.last_error,
        });
        if let Some(since) = h.failed_since {
            status["failedSince"] = json!(rfc3339(since));
        }
        out["deliveryStatus"] = status;
    }
    out
}

#[derive(Debug, Deserialize)]
struct UnsubscribeParams {
    name: String,
    #[serde(default)]
    arguments: SubscriptionArgs,
    delivery: UnsubscribeDelivery,
}

#[derive(Debug, Deserialize)]
struct UnsubscribeDelivery {
    url: String,
}

async fn unsubscribe(svc: &Service, principal: String, params: Value) -> Result<Value, McpError> {
    let p: UnsubscribeParams = serde_json::from_value(params).map_err(invalid)?;
    check_name(&p.name, &p.arguments)?;
    let filter = EventFilter {
        name: p.name,
        args: p.arguments,
    };
    match svc.unsubscribe(&principal, &filter, &p.delivery.url).await {
        Ok(true) => Ok(json!({})),
        Ok(false) => Err(McpError::new(
            NOT_FOUND,
            "no subscription has this (name, arguments, delivery.url) for you",
            Some(json!({ "kind": "subscription" })),
        )),
        Err(e) => Err(service_error(e)),
    }
}

fn service_error(e: crate::error::Error) -> McpError {
    match e {
        crate::error::Error::InvalidArgument(m) => {
            McpError::invalid_params(crate::error::bounded(&m, 500), None)
        }
        other => internal(other),
    }
}

fn internal(e: crate::error::Error) -> McpError {
    McpError::internal_error(e.to_string(), None)
}
