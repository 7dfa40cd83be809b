//! Resource URIs and their contents:
//! `webhook://events`, `webhook://events/{event_id}`, `webhook://webhooks/{webhook_id}/events`,
//! `webhook://deliveries/{delivery_id}`.

use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};

use crate::error::Error;
use crate::model::{Direction, Event, UNTRUSTED_NOTICE};
use crate::service::{ListWebhooks, Service};
use crate::store::EventQuery;

pub const EVENTS: &str = "webhook://events";
const JSON: &str = "application/json";
/// How many events a feed resource shows, and how many are listed one by one.
const FEED_LEN: usize = 50;

/// The inbox URI of one webhook.
pub fn inbox_uri(webhook_id: &str) -> String {
    format!("webhook://webhooks/{webhook_id}/events")
}

enum Uri<'a> {
    Events,
    Event(&'a str),
    Inbox(&'a str),
    Delivery(&'a str),
}

fn parse(uri: &str) -> Option<Uri<'_>> {
    if uri == EVENTS {
        return Some(Uri::Events);
    }
    if let Some(id) = uri.strip_prefix("webhook://events/") {
        return (!id.is_empty() && !id.contains('/')).then_some(Uri::Event(id));
    }
    if let Some(id) = uri.strip_prefix("webhook://deliveries/") {
        return (!id.is_empty() && !id.contains('/')).then_some(Uri::Delivery(id));
    }
    let id = uri
        .strip_prefix("webhook://webhooks/")?
        .strip_suffix("/events")?;
    (!id.is_empty() && !id.contains('/')).then_some(Uri::Inbox(id))
}

pub fn is_subscribable(uri: &str) -> bool {
    matches!(parse(uri), Some(Uri::Events | Uri::Inbox(_)))
}

pub async fn list(svc: &Service) -> Result<ListResourcesResult, McpError> {
    let mut out = vec![Resource::new(EVENTS, "events")
        .with_title("Newest webhook events")
        .with_description("The newest verified events from every inbound webhook. Subscribe to be notified of each new event.")
        .with_mime_type(JSON)];
    let hooks = svc
        .list_webhooks(ListWebhooks {
            direction: Some(Direction::Inbound),
            enabled: None,
        })
        .await
        .map_err(internal)?;
    for w in hooks["webhooks"].as_array().into_iter().flatten() {
        let id = w["id"].as_str().unwrap_or_default();
        let label = w["description"]
            .as_str()
            .filter(|d| !d.is_empty())
            .unwrap_or(id);
        out.push(
            Resource::new(inbox_uri(id), format!("inbox {label}"))
                .with_description(format!(
                    "Events received by inbound webhook {id}. Subscribable."
                ))
                .with_mime_type(JSON),
        );
    }
    for e in newest(svc, None).await? {
        out.push(
            Resource::new(
                format!("webhook://events/{}", e.id),
                format!("event {} #{}", e.event, e.seq),
            )
            .with_description(format!("{} received by webhook {}", e.event, e.webhook_id))
            .with_mime_type(JSON),
        );
    }
    Ok(ListResourcesResult::with_all_items(out))
}

pub fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new("webhook://events/{event_id}", "event")
            .with_description("One received event with its payload (untrusted third-party data).")
            .with_mime_type(JSON),
        ResourceTemplate::new("webhook://webhooks/{webhook_id}/events", "webhook inbox")
            .with_description("The newest events of one inbound webhook. Subscribable.")
            .with_mime_type(JSON),
        ResourceTemplate::new("webhook://deliveries/{delivery_id}", "delivery")
            .with_description("One delivery-log row with request and response headers and bodies.")
            .with_mime_type(JSON),
    ])
}

pub async fn read(svc: &Service, uri: &str) -> Result<ReadResourceResult, McpError> {
    let body: Value = match parse(uri) {
        None => return Err(not_found(uri, "unknown resource URI")),
        Some(Uri::Events) => feed(&newest(svc, None).await?),
        Some(Uri::Inbox(id)) => {
            let events = newest(svc, Some(id)).await?;
            if events.is_empty() && svc.store.get_webhook(id).await.map_err(internal)?.is_none() {
                return Err(not_found(uri, "no such webhook"));
            }
            let mut v = feed(&events);
            v["webhook_id"] = json!(id);
            v
        }
        Some(Uri::Event(id)) => svc.get_event(id).await.map_err(|e| map(uri, e))?,
        Some(Uri::Delivery(id)) => svc.get_delivery(id).await.map_err(|e| map(uri, e))?,
    };
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    Ok(ReadResourceResult::new(vec![ResourceContents::text(
        text, uri,
    )
    .with_mime_type(JSON)]))
}

async fn newest(svc: &Service, webhook_id: Option<&str>) -> Result<Vec<Event>, McpError> {
    svc.store
        .list_events(EventQuery {
            webhook_id: webhook_id.map(str::to_string),
            limit: FEED_LEN,
            newest_first: true,
            ..Default::default()
        })
        .await
        .map_err(internal)
}

fn feed(events: &[Event]) -> Value {
    json!({
        "notice": UNTRUSTED_NOTICE,
        "count": events.len(),
        "order": "newest first",
        "events": events.iter().map(Event::to_json).collect::<Vec<_>>(),
    })
}

fn map(uri: &str, e: Error) -> McpError {
    match e {
        Error::NotFound { .. } => not_found(uri, &e.to_string()),
        other => internal(other),
    }
}

fn not_found(uri: &str, why: &str) -> McpError {
    McpError::resource_not_found(format!("{uri}: {why}"), Some(json!({ "uri": uri })))
}

fn internal(e: Error) -> McpError {
    tracing::error!(error = %e, "resource read failed");
    McpError::internal_error(e.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_uri_shapes() {
        assert!(matches!(parse("webhook://events"), Some(Uri::Events)));
        assert!(matches!(
            parse("webhook://events/abc"),
            Some(Uri::Event("abc"))
        ));
        assert!(matches!(
            parse("webhook://webhooks/w1/events"),
            Some(Uri::Inbox("w1"))
        ));
        assert!(matches!(
            parse("webhook://deliveries/d1"),
            Some(Uri::Delivery("d1"))
        ));
        assert!(parse("webhook://events/").is_none());
        assert!(parse("webhook://webhooks//events").is_none());
        assert!(parse("webhook://webhooks/a/b/events").is_none());
        assert!(parse("file:///etc/passwd").is_none());
        assert!(is_subscribable("webhook://webhooks/w1/events"));
        assert!(!is_subscribable("webhook://events/abc"));
    }
}
