//! The typed shapes of every tool result. `render` builds these; their JSON Schemas are the
//! tools' `outputSchema` (see `schema_for_tool`), so what a tool returns and what it declares
//! come from one definition and cannot drift. Fields a result may not have are left out, not
//! `null`: a schema can then say `"type": "string"` where a union with null would trip clients
//! that read `type` as one string (`portable` makes every schema follow that rule).

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::model::{DeliveryStatus, Direction, EventId, MessageId, Provider, Trigger, WebhookId};

/// A webhook. `secret` is the real value only in the answers that create or rotate it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WebhookOut {
    pub id: WebhookId,
    pub direction: Direction,
    /// Inbound: the receive URL to give the sender. Outbound: the target (credentials masked).
    pub url: String,
    /// The signature scheme.
    pub provider: Provider,
    /// The event-type filter; `*` means all.
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// The signing secret in create_webhook and rotate_secret answers; `***` everywhere else.
    pub secret: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Outbound: the extra headers sent with each delivery, names only (values `***`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Outbound: consecutive failed deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_count: Option<i64>,
    /// Outbound: when the current run of failures began (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    /// Inbound: the outbound webhooks each verified event is relayed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_to: Option<Vec<WebhookId>>,
    /// Inbound: headers every request must carry, names only (values `***`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_headers: Option<BTreeMap<String, String>>,
    /// Inbound `generic`/`kakiyo`: whether a signature over the body's compact JSON
    /// re-serialisation verifies (false: the raw body only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_compact_signatures: Option<bool>,
    /// Outbound: the content filter events must match to be delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<crate::model::Filter>,
    /// Why it was disabled, when it was (e.g. the target answered 410).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// The principal it belongs to (`local`, `token:<name>`, `oauth:<issuer>#<subject>`):
    /// only they and the operator see it, its events and its log.
    pub owner: crate::model::Principal,
    /// During a rotation's grace: until when the previous secret still verifies (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedOut {
    pub webhook: WebhookOut,
    pub secret_notice: String,
    /// Inbound: where the URL and secret go at the sending platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RotatedOut {
    pub webhook: WebhookOut,
    pub secret_notice: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OneWebhookOut {
    pub webhook: WebhookOut,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WebhooksOut {
    pub count: usize,
    pub webhooks: Vec<WebhookOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeletedOut {
    pub deleted: bool,
    pub id: WebhookId,
    pub note: String,
}

/// An event in its envelope: metadata, then the payload fenced off as untrusted data.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventOut {
    pub id: EventId,
    /// The event's position in arrival order: the cursor (`after`) of list_events and
    /// wait_for_events.
    pub seq: i64,
    pub webhook_id: WebhookId,
    pub event: String,
    /// The sender's own id for the event (used to drop its retries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_event_id: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    /// Always true: only events whose signature verified are stored.
    pub verified: bool,
    pub resource_uri: String,
    pub untrusted_payload: UntrustedOut,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UntrustedOut {
    pub notice: String,
    /// The request headers kept (credentials removed).
    pub headers: BTreeMap<String, String>,
    /// The sender's JSON body, as sent. Left out of lists when larger than 16 KiB (see
    /// `payload_bytes`); get_event or the event's resource_uri returns it whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub payload: Option<Value>,
    /// Present when the payload was left out: its size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
}

/// An event without its payload, for lists.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventSummaryOut {
    pub id: EventId,
    pub seq: i64,
    pub webhook_id: WebhookId,
    pub event: String,
    /// RFC 3339.
    pub received_at: String,
    pub resource_uri: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EventSummariesOut {
    /// Event types and ids are the sender's (kept to short identifiers); payloads are
    /// untrusted data.
    pub notice: String,
    pub count: usize,
    pub events: Vec<EventSummaryOut>,
    /// Pass as `after` to continue.
    pub next_cursor: i64,
    /// Present (true) when a content filter's scan stopped at its bound (5000 events) before the
    /// newest event: more may match after `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<bool>,
    pub hint: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsOut {
    pub count: usize,
    pub events: Vec<EventOut>,
    /// Pass as `after` to continue.
    pub next_cursor: i64,
    /// Present (true) when the wait ended without a new event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
}

/// One row of the delivery log: an inbound request (`direction: inbound`) or one outbound
/// attempt (`direction: outbound`, with trigger, attempt, duration, message id).
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveryOut {
    pub id: String,
    pub webhook_id: WebhookId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub direction: Direction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Outbound: the attempt's number for its message (1 = first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    pub url: String,
    pub status: DeliveryStatus,
    /// The HTTP status answered (by this receiver inbound, by the target outbound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Why it failed or was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Outbound, pending: when it is due (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    pub resource_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveriesOut {
    pub count: usize,
    pub deliveries: Vec<DeliveryOut>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub hint: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct QueuedOut {
    pub webhook_id: WebhookId,
    pub message_id: MessageId,
    pub delivery_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SentOut {
    pub event: String,
    pub queued: usize,
    pub deliveries: Vec<QueuedOut>,
    /// Outbound webhooks whose content filter this event did not match (nothing queued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered_out: Option<Vec<WebhookId>>,
    /// True when an earlier call with the same idempotency_key is being answered again.
    pub replayed: bool,
    pub hint: String,
}

/// One redelivery (`delivery_id`, `message_id`, `attempt`) or a bulk one (`webhook_id`,
/// `note`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct RedeliveredOut {
    pub queued: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<WebhookId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a test delivery did. Inbound: whether the sample arrived (`arrived`, `event_id`, the
/// receiver's answer). Outbound: the target's answer (`status_code`, `response_excerpt`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct TestReportOut {
    pub ok: bool,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Inbound: the JSON the receiver answered, as a provider would have seen it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver_answer: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrived: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_resource_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Outbound: the first 500 characters of the target's response body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EventTypesOut {
    pub count: usize,
    pub event_types: Vec<crate::catalog::EventType>,
}

/// Any JSON value, said without a type union (a sender's payload is usually an object).
pub fn any_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Any JSON value, as the sender sent it (untrusted data)."
    })
}

/// The `outputSchema` of a tool, by name.
pub fn schema_for_tool(tool: &str) -> Option<Arc<JsonObject>> {
    use rmcp::handler::server::tool::schema_for_type as s;
    let schema = match tool {
        "create_webhook" => s::<CreatedOut>(),
        "list_webhooks" => s::<WebhooksOut>(),
        "get_webhook" | "update_webhook" => s::<OneWebhookOut>(),
        "delete_webhook" => s::<DeletedOut>(),
        "rotate_secret" => s::<RotatedOut>(),
        "test_webhook" => s::<TestReportOut>(),
        "send_event" => s::<SentOut>(),
        "redeliver" => s::<RedeliveredOut>(),
        "query_deliveries" => s::<DeliveriesOut>(),
        "list_events" => s::<EventSummariesOut>(),
        "get_event" => s::<EventOut>(),
        "wait_for_events" => s::<EventsOut>(),
        "list_event_types" => s::<EventTypesOut>(),
        _ => return None,
    };
    let mut value = Value::Object((*schema).clone());
    portable(&mut value);
    match value {
        Value::Object(map) => Some(Arc::new(map)),
        _ => None,
    }
}

/// Rewrites a schema into the subset every MCP client reads: a `type` is one string (an
/// optional field's `["string", "null"]` becomes `"string"`: leaving it out is how to say
/// nothing), `anyOf: [X, {type: null}]` becomes X, and every array says what its items are.
pub fn portable(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::Array(types)) = map.get("type") {
        let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if non_null.len() == 1 {
            map.insert("type".into(), non_null[0].clone());
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get(key) {
            let kept: Vec<Value> = branches
                .iter()
                .filter(|b| b.get("type") != Some(&json!("null")))
                .cloned()
                .collect();
            if kept.len() == 1 && kept.len() < branches.len() {
                map.remove(key);
                if let Value::Object(only) = &kept[0] {
                    for (k, v) in only {
                        map.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
    }
    // schemars marks nullable enums and defaults with `null` members and defaults.
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if map.get("default") == Some(&Value::Null) {
        map.remove("default");
    }
    if map.get("type") == Some(&json!("array")) && !map.contains_key("items") {
        map.insert("items".into(), json!({}));
    }
    for value in map.values_mut() {
        match value {
            Value::Object(_) => portable(value),
            Value::Array(items) => items.iter_mut().for_each(portable),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_lose_their_null_type() {
        let mut s = json!({
            "type": "object",
            "properties": {
                "a": { "type": ["string", "null"] },
                "b": { "anyOf": [{ "$ref": "#/$defs/Direction" }, { "type": "null" }], "description": "d" },
                "c": { "type": "array" },
                "d": { "enum": ["x", null], "default": null }
            }
        });
        portable(&mut s);
        assert_eq!(s["properties"]["a"], json!({ "type": "string" }));
        assert_eq!(
            s["properties"]["b"],
            json!({ "$ref": "#/$defs/Direction", "description": "d" })
        );
        assert_eq!(s["properties"]["c"]["items"], json!({}));
        assert_eq!(s["properties"]["d"], json!({ "enum": ["x"] }));
    }

    #[test]
    fn every_tool_has_an_object_output_schema() {
        for tool in [
            "create_webhook",
            "list_webhooks",
            "get_webhook",
            "update_webhook",
            "delete_webhook",
            "rotate_secret",
            "test_webhook",
            "send_event",
            "redeliver",
            "query_deliveries",
            "list_events",
            "get_event",
            "wait_for_events",
            "list_event_types",
        ] {
            let s = schema_for_tool(tool).unwrap_or_else(|| panic!("{tool}: no schema"));
            assert_eq!(s.get("type"), Some(&json!("object")), "{tool}");
            assert!(
                !serde_json::to_string(&*s).unwrap().contains("\"null\""),
                "{tool}: {s:?}"
            );
        }
    }
}
