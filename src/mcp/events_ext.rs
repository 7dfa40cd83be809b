//! The MCP Events extension as JSON-RPC, following **SEP-3415 "Events Extension"** (draft of
//! 2026-10-05, head `c47fd24`; extension id `io.modelcontextprotocol/events`): `events/list`,
//! `events/poll`, `events/stream`, `events/subscribe` and `events/unsubscribe`. This module owns
//! the SEP's wire shapes, its error codes (the Error Handling table) and which era and delivery
//! modes are offered; the engine behind them (reading after a cursor, webhook subscriptions and
//! their delivery) is `service::subscriptions`. A revision of the SEP is a change here.
//!
//! Mapping onto webhook-mcp:
//! - declared in `server/discover` under `capabilities.extensions` and served on 2026-07-28
//!   requests only (the SEP is defined for that revision and later); a legacy (`initialize`)
//!   session neither sees the declaration nor reaches the methods (-32601);
//! - event types: one per event type of the catalogue (its example gives the `payloadSchema`),
//!   and `webhook.received`, every verified event of every inbound webhook whatever its type;
//!   arguments filter by `webhook_id` (and, for `webhook.received`, `event`). An occurrence's
//!   `name` is the subscribed type's name; the sender's own type is in `_meta`;
//! - cursor: the event `seq` as a string; `truncated` when retention (or `maxAgeMs`) cut
//!   events out of the range asked for;
//! - `eventId`: the provider's event id where the sender gave one (our own id otherwise; both
//!   are in `_meta`), so a client de-duplicates across paths;
//! - webhook mode needs an authenticated principal allowed to write: a bearer token with
//!   `webhooks:write` over HTTP (a server that checks no token offers poll and push only) and the local user on stdio (the process
//!   runs as the user who started it); deliveries go through the outbound engine.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CustomNotification, CustomRequest, CustomResult, ErrorCode, JsonObject, ServerNotification,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{Grant, Scope};
use crate::catalog;
use crate::model::{rfc3339, Secret};
use crate::model::{Caller, Principal};
use crate::service::{
    occurrence, EventFilter, Service, Subscribe, SubscribeError, Subscribed, SubscriptionArgs, Ttl,
    ALL_EVENTS,
};

/// The extension's identifier: its key in `capabilities.extensions`.
pub const EXTENSION_ID: &str = "io.modelcontextprotocol/events";
/// Every verified event of every inbound webhook.
pub const ALL: &str = ALL_EVENTS;
/// The first protocol revision the SEP is defined for.
const FIRST_REVISION: &str = "2026-07-28";
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// What a quiet poller is told to wait.
const NEXT_POLL_MS: u64 = 2000;
/// The SEP asks for a heartbeat at least every 30 s.
const HEARTBEAT: Duration = Duration::from_secs(25);
const DEFAULT_MAX_EVENTS: usize = 50;
const MAX_EVENTS: usize = 199;
/// How long a stream waits before reading again after the store failed (doubling to the cap).
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(10);

/// The SEP's errors (its Error Handling table), each with its typed `data`; mapped to JSON-RPC
/// in one place (`From<EventsError> for McpError`).
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{0}")]
    InvalidParams(String),
    /// An unknown event name, or no subscription with the key (`data.kind`).
    #[error("{message}")]
    NotFound { kind: &'static str, message: String },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{message}")]
    ResourceExhausted { max: usize, message: String },
    #[error("{message}")]
    Unsupported {
        feature: &'static str,
        value: &'static str,
        message: &'static str,
    },
    /// The callback failed verification; `reason` is a `lastError` category.
    #[error("the callback endpoint failed verification ({reason}): it must answer the signed verification POST with 2xx and {{\"challenge\": <the challenge>}}")]
    CallbackEndpoint { reason: &'static str },
    #[error("the store failed: {0}")]
    Internal(#[source] crate::error::Error),
}

impl EventsError {
    /// The SEP's numbers (provisional in the draft: the next five of the specification's range).
    pub const NOT_FOUND: i32 = -32023;
    pub const FORBIDDEN: i32 = -32024;
    pub const RESOURCE_EXHAUSTED: i32 = -32025;
    pub const UNSUPPORTED: i32 = -32026;
    pub const CALLBACK_ENDPOINT: i32 = -32027;
}

impl From<EventsError> for McpError {
    fn from(e: EventsError) -> Self {
        let message = crate::error::bounded(&e.to_string(), 500);
        let (code, data) = match &e {
            EventsError::InvalidParams(_) => (ErrorCode::INVALID_PARAMS.0, None),
            EventsError::NotFound { kind, .. } => {
                (EventsError::NOT_FOUND, Some(json!({ "kind": kind })))
            }
            EventsError::Forbidden(_) => (EventsError::FORBIDDEN, None),
            EventsError::ResourceExhausted { max, .. } => (
                EventsError::RESOURCE_EXHAUSTED,
                Some(json!({ "limit": "subscriptions", "max": max })),
            ),
            EventsError::Unsupported { feature, value, .. } => (
                EventsError::UNSUPPORTED,
                Some(json!({ "feature": feature, "value": value })),
            ),
            EventsError::CallbackEndpoint { reason } => (
                EventsError::CALLBACK_ENDPOINT,
                Some(json!({ "reason": reason })),
            ),
            EventsError::Internal(_) => (ErrorCode::INTERNAL_ERROR.0, None),
        };
        McpError::new(ErrorCode(code), message, data)
    }
}

impl From<crate::error::Error> for EventsError {
    fn from(e: crate::error::Error) -> Self {
        match e {
            crate::error::Error::InvalidArgument(m) => EventsError::InvalidParams(m),
            other => EventsError::Internal(other),
        }
    }
}

impl From<SubscribeError> for EventsError {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::Callback { reason } => EventsError::CallbackEndpoint { reason },
            SubscribeError::Exhausted { what, max } => EventsError::ResourceExhausted {
                max,
                message: format!(
                    "{what} has {max} live subscriptions, the most allowed; unsubscribe some first"
                ),
            },
            SubscribeError::Service(e) => e.into(),
        }
    }
}

type Reply = Result<Value, EventsError>;

/// The settings object this server declares under `capabilities.extensions`: the set of types
/// is the fixed catalogue, so no `notifications/events/list_changed` is ever sent.
pub fn capability() -> JsonObject {
    let mut m = Map::new();
    m.insert("listChanged".into(), Value::Bool(false));
    m
}

/// Whether `method` belongs to this extension.
pub fn handles(method: &str) -> bool {
    method.starts_with("events/")
}

/// Whether a request speaks a revision the extension is defined for.
pub fn offered(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= FIRST_REVISION)
}

/// The delivery modes offered to this caller: webhook mode needs an authenticated principal
/// (the SEP), and writes (a stored subscription, POSTs to its URL), so a `--read-only` server
/// leaves it out too.
fn delivery(svc: &Service, context: &RequestContext<RoleServer>) -> &'static [&'static str] {
    let may_write = match context.extensions.get::<axum::http::request::Parts>() {
        Some(parts) => parts
            .extensions
            .get::<Grant>()
            .is_some_and(|g| g.scopes.allows(Scope::Write)),
        None => true,
    };
    if svc.settings().read_only || !may_write {
        &["poll", "push"]
    } else {
        &["poll", "push", "webhook"]
    }
}

/// Every result of the extension is a standard `Result` with `resultType: "complete"`.
fn complete(mut v: Value) -> CustomResult {
    v["resultType"] = json!("complete");
    CustomResult(v)
}

/// `waiting`: the session's open waits and streams (an `events/stream` holds one while open).
pub async fn handle(
    svc: &Service,
    request: CustomRequest,
    context: RequestContext<RoleServer>,
    waiting: &Arc<tokio::sync::Semaphore>,
) -> Result<CustomResult, McpError> {
    if !offered(&context) {
        return Err(McpError::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!(
                "{}: MCP Events (SEP-3415) is defined for protocol {FIRST_REVISION} and later; this session negotiated an earlier one",
                crate::error::bounded(&request.method, 100)
            ),
            None,
        ));
    }
    let params = request.params.unwrap_or(Value::Null);
    let reply = match request.method.as_str() {
        "events/list" => list(svc, &context, params),
        "events/poll" => match parse(params) {
            Ok(p) => poll(svc, &super::caller(&context), p).await,
            Err(e) => Err(e),
        },
        "events/stream" => {
            let listen = parse(params)?;
            let Ok(_slot) = waiting.clone().try_acquire_owned() else {
                return Err(EventsError::ResourceExhausted {
                    max: super::MAX_WAITS_PER_SESSION,
                    message: super::too_many_waits(),
                }
                .into());
            };
            return Ok(complete(stream(svc, listen, context).await?));
        }
        "events/subscribe" | "events/unsubscribe" if svc.settings().read_only => {
            Err(EventsError::Unsupported {
                feature: "deliveryMode",
                value: "webhook",
                message: "this server runs with --read-only: webhook delivery (a subscription stored and POSTed from) is not offered; use events/poll or events/stream",
            })
        }
        "events/subscribe" => match principal(&context) {
            Ok(p) => subscribe(svc, p, params).await,
            Err(e) => Err(e),
        },
        "events/unsubscribe" => match principal(&context) {
            Ok(p) => unsubscribe(svc, p, params).await,
            Err(e) => Err(e),
        },
        other => {
            return Err(McpError::new(
                ErrorCode::METHOD_NOT_FOUND,
                crate::error::bounded(other, 100),
                None,
            ))
        }
    };
    reply.map(complete).map_err(Into::into)
}

// --- events/list ----------------------------------------------------------------------------

fn list(svc: &Service, context: &RequestContext<RoleServer>, params: Value) -> Reply {
    // One page holds the whole (fixed) catalogue: a cursor can only be one we never gave.
    if params.get("cursor").is_some_and(|c| !c.is_null()) {
        return Err(EventsError::InvalidParams(
            "invalid cursor: events/list has a single page here and returned no nextCursor".into(),
        ));
    }
    Ok(json!({ "events": types(delivery(svc, context)) }))
}

fn types(delivery: &[&str]) -> Vec<Value> {
    let arguments = |with_event: bool| {
        let mut props = json!({
            "webhook_id": { "type": "string", "description": "Only events received by this inbound webhook." }
        });
        if with_event {
            props["event"] = json!({ "type": "string", "description": "Only events of this type (the sender's event type, e.g. lead.created)." });
        }
        props["filter"] = crate::model::Filter::schema(&format!(
            "Only events whose content matches: dot paths into the payload (or headers.<name>) to a literal or an operator object, e.g. {}. Operators: $eq $ne $in $nin $gt $gte $lt $lte $exists $contains $startsWith $not; combine with $and, $or, $not.",
            crate::model::filter::EXAMPLE
        ));
        json!({ "type": "object", "properties": props, "additionalProperties": false })
    };
    let mut out = vec![json!({
        "name": ALL,
        "description": "Every verified event any inbound webhook receives, whatever its type (the sender's type is in _meta). The payload is the sender's, untrusted.",
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

    fn start(&self) -> Result<Option<i64>, EventsError> {
        parse_cursor(self.cursor.as_deref())
    }

    /// The `maxAgeMs` floor as an instant, fixed when the request arrives.
    fn floor(&self) -> Option<i64> {
        self.max_age_ms
            .map(|ms| crate::model::now_millis() - ms.min(i64::MAX as u64) as i64)
    }
}

fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, EventsError> {
    match cursor {
        None => Ok(None),
        Some(c) => c.parse::<i64>().map(Some).map_err(|_| {
            EventsError::InvalidParams(
                "invalid cursor: pass back a cursor this server returned, or null".into(),
            )
        }),
    }
}

fn invalid(e: impl std::fmt::Display) -> EventsError {
    EventsError::InvalidParams(crate::error::bounded(&format!("invalid params: {e}"), 300))
}

fn parse(params: Value) -> Result<Listen, EventsError> {
    let listen: Listen = serde_json::from_value(params).map_err(invalid)?;
    check_name(&listen.name, &listen.arguments)?;
    Ok(listen)
}

/// The name must be a type `events/list` names; `event` filters only `webhook.received`.
fn check_name(name: &str, args: &SubscriptionArgs) -> Result<(), EventsError> {
    if name != ALL && !catalog::list(None).iter().any(|t| t.event == name) {
        return Err(EventsError::NotFound {
            kind: "event",
            message: format!(
                "no event type {}; events/list names them",
                crate::error::quote(name)
            ),
        });
    }
    if name != ALL && args.event.is_some() {
        return Err(EventsError::InvalidParams(
            "`event` filters only webhook.received; the type is already the name".into(),
        ));
    }
    Ok(())
}

// --- events/poll ----------------------------------------------------------------------------

async fn poll(svc: &Service, caller: &Caller, sub: Listen) -> Reply {
    let Some(after) = sub.start()? else {
        let (now, _) = svc.event_bounds().await?;
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
        .read_after(caller, &sub.filter(), after, limit, sub.floor())
        .await?;
    let events: Vec<Value> = batch
        .events
        .iter()
        .map(|e| occurrence(e, &sub.name, None))
        .collect();
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
/// the request) or the server stops. A store failure after the stream opened is reported as a
/// recoverable `notifications/events/error` and retried with backoff; the stream stays open.
/// Returns the final `StreamEventsResult` (without its `resultType`).
async fn stream(svc: &Service, sub: Listen, context: RequestContext<RoleServer>) -> Reply {
    let id = serde_json::to_value(&context.id).unwrap_or(Value::Null);
    let meta = json!({ SUBSCRIPTION_ID: id });
    let end = || json!({ "_meta": meta.clone() });
    let peer = context.peer.clone();
    let send = |method: &'static str, mut params: Value| {
        params["_meta"] = meta.clone();
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
    let caller = super::caller(&context);
    // Subscribed before the catch-up read, so nothing falls between the two.
    let mut bus = svc.subscribe_events();
    // Until `active` is sent, a failure is the request's JSON-RPC error (no stream opened).
    let mut cursor = match sub.start()? {
        Some(c) => c,
        None => svc.event_bounds().await?.0,
    };
    let mut truncated = false;
    let mut announced = false;
    let mut backoff = RETRY_FIRST;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.reset();
    loop {
        // Catch up: everything after the cursor, page by page.
        loop {
            let batch = match svc
                .read_after(&caller, &filter, cursor, MAX_EVENTS, floor)
                .await
            {
                Ok(b) => {
                    backoff = RETRY_FIRST;
                    b
                }
                Err(e) if !announced => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "events/stream could not read the store; retrying");
                    let error = json!({ "error": {
                        "code": ErrorCode::INTERNAL_ERROR.0,
                        "message": "InternalError",
                        "data": { "reason": "the event store could not be read; the stream retries and resumes from its cursor" },
                    }});
                    if !send("notifications/events/error", error).await {
                        return Ok(end());
                    }
                    tokio::select! {
                        _ = context.ct.cancelled() => return Ok(end()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(RETRY_CAP);
                    continue;
                }
            };
            truncated |= batch.truncated;
            if !announced || batch.truncated {
                // A gap mid-stream is a fresh `active` with `truncated: true` (not an error).
                let active = json!({ "cursor": cursor.to_string(), "truncated": truncated });
                if !send("notifications/events/active", active).await {
                    return Ok(end());
                }
                announced = true;
                truncated = false;
            }
            for e in &batch.events {
                let event = occurrence(e, &sub.name, Some(e.seq));
                if !send("notifications/events/event", event).await {
                    return Ok(end());
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
                _ = context.ct.cancelled() => return Ok(end()),
                _ = heartbeat.tick() => {
                    let beat = json!({ "cursor": cursor.to_string() });
                    if !send("notifications/events/heartbeat", beat).await {
                        return Ok(end());
                    }
                }
                notice = bus.recv() => match notice {
                    Ok(n) if n.seq <= cursor => {}
                    Ok(n) if !filter.matches(&n.webhook_id, &n.event) => {}
                    Ok(_) | Err(RecvError::Lagged(_)) => break,
                    // The server is stopping: it closes the stream (the final frame), and the
                    // client reconnects with its cursor. Not `terminated`: the subscription
                    // itself is still valid.
                    Err(RecvError::Closed) => return Ok(end()),
                }
            }
        }
    }
}

// --- events/subscribe, events/unsubscribe (webhook mode) ------------------------------------

/// The principal of a webhook-mode call: the bearer token's on HTTP (only when the server
/// checks one; its scope was checked by `mcp::http`), the local user on stdio.
fn principal(context: &RequestContext<RoleServer>) -> Result<String, EventsError> {
    match context.extensions.get::<axum::http::request::Parts>() {
        Some(parts) => parts
            .extensions
            .get::<Grant>()
            .map(|g| g.caller().principal().to_string())
            .ok_or(EventsError::Forbidden(
                "webhook delivery needs an authenticated principal, and this server authenticates none (start it with --auth-token, --auth-tokens-file or --oauth-issuer); use events/poll or events/stream",
            )),
        None => Ok(Principal::LOCAL.to_string()),
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

async fn subscribe(svc: &Service, principal: String, params: Value) -> Reply {
    let p: SubscribeParams = serde_json::from_value(params).map_err(invalid)?;
    check_name(&p.name, &p.arguments)?;
    if let Some(mode) = p.delivery.mode.as_deref().filter(|m| *m != "webhook") {
        return Err(EventsError::InvalidParams(format!(
            "delivery.mode {} is not webhook: events/subscribe is webhook mode only (use events/poll or events/stream)",
            crate::error::quote(mode)
        )));
    }
    let secret = p.delivery.secret.ok_or_else(|| {
        EventsError::InvalidParams("`delivery.secret` is required (whsec_...)".into())
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
    Ok(subscribed(svc.subscribe(req).await?))
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

async fn unsubscribe(svc: &Service, principal: String, params: Value) -> Reply {
    let p: UnsubscribeParams = serde_json::from_value(params).map_err(invalid)?;
    check_name(&p.name, &p.arguments)?;
    let filter = EventFilter {
        name: p.name,
        args: p.arguments,
    };
    if svc
        .unsubscribe(&principal, &filter, &p.delivery.url)
        .await?
    {
        Ok(json!({}))
    } else {
        Err(EventsError::NotFound {
            kind: "subscription",
            message: "no subscription has this (name, arguments, delivery.url) for you".into(),
        })
    }
}
