//! Resource URIs and their contents:
//! `webhook://events`, `webhook://events/{event_id}`, `webhook://webhooks/{webhook_id}/events`,
//! `webhook://deliveries/{delivery_id}`.

use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};
use rmcp::ErrorData as McpError;
use serde_json::{json, Value};

use super::render;
use crate::error::Error;
use crate::model::{Caller, DeliveryId, Direction, Event, EventId, WebhookId};
use crate::service::{ListWebhooks, Service};

pub const EVENTS: &str = "webhook://events";
const JSON: &str = "application/json";
/// How many events a feed resource shows, and how many are listed one by one.
const FEED_LEN: usize = 50;

/// The inbox URI of one webhook.
pub fn inbox_uri(webhook_id: &WebhookId) -> String {
    format!("webhook://webhooks/{webhook_id}/events")
}

pub fn event_uri(id: &EventId) -> String {
    format!("webhook://events/{id}")
}

pub fn delivery_uri(id: &DeliveryId) -> String {
    format!("webhook://deliveries/{id}")
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

/// Resources listed per page.
const LIST_PAGE: usize = 100;

/// The feed and one inbox per inbound webhook, `LIST_PAGE` at a time. Single events are not
/// listed (the list would grow with the store); they are read through the
/// `webhook://events/{event_id}` template, and the feeds name the newest.
pub async fn list(
    svc: &Service,
    caller: &Caller,
    cursor: Option<&str>,
) -> Result<ListResourcesResult, McpError> {
    let start: usize = match cursor {
        None => 0,
        Some(c) => c.parse().map_err(|_| {
            McpError::invalid_params(
                "invalid cursor: pass nextCursor from the previous page",
                None,
            )
        })?,
    };
    let mut all = vec![Resource::new(EVENTS, "events")
        .with_title("Newest webhook events")
        .with_description("The newest verified events from every inbound webhook. Subscribe to be notified of each new event.")
        .with_mime_type(JSON)];
    let hooks = svc
        .list_webhooks(
            caller,
            ListWebhooks {
                direction: Some(Direction::Inbound),
                enabled: None,
                principal: None,
            },
        )
        .await
        .map_err(internal)?;
    for view in &hooks {
        let w = &view.webhook;
        let label = if w.description.is_empty() {
            w.id.as_str()
        } else {
            w.description.as_str()
        };
        all.push(
            Resource::new(inbox_uri(&w.id), format!("inbox {label}"))
                .with_description(format!(
                    "Events received by inbound webhook {}. Subscribable.",
                    w.id
                ))
                .with_mime_type(JSON),
        );
    }
    let next = (start + LIST_PAGE < all.len()).then(|| (start + LIST_PAGE).to_string());
    let page: Vec<Resource> = all.into_iter().skip(start).take(LIST_PAGE).collect();
    let mut result = ListResourcesResult::with_all_items(page);
    result.next_cursor = next;
    Ok(result)
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

pub async fn read(
    svc: &Service,
    caller: &Caller,
    uri: &str,
) -> Result<ReadResourceResult, McpError> {
    let body: Value = match parse(uri) {
        None => return Err(not_found(uri, "unknown resource URI")),
        Some(Uri::Events) => render::feed(&newest(svc, caller, None).await?),
        Some(Uri::Inbox(id)) => {
            let id = WebhookId::from(id);
            let events = newest(svc, caller, Some(&id)).await?;
            if events.is_empty() && !svc.webhook_exists(caller, &id).await.map_err(internal)? {
                return Err(not_found(uri, "no such webhook"));
            }
            let mut v = render::feed(&events);
            v["webhook_id"] = json!(id);
            v
        }
        Some(Uri::Event(id)) => svc
            .get_event(caller, &EventId::from(id))
            .await
            .map(|e| render::event(&e))
            .map_err(|e| map(uri, e))?,
        Some(Uri::Delivery(id)) => svc
            .get_delivery(caller, &DeliveryId::from(id))
            .await
            .map(|d| render::delivery(&d, true))
            .map_err(|e| map(uri, e))?,
    };
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    Ok(ReadResourceResult::new(vec![ResourceContents::text(
        text, uri,
    )
    .with_mime_type(JSON)]))
}

async fn newest(
    svc: &Service,
    caller: &Caller,
    webhook_id: Option<&WebhookId>,
) -> Result<Vec<Event>, McpError> {
    svc.newest_events(caller, webhook_id, FEED_LEN)
        .await
        .map_err(internal)
}

fn map(uri: &str, e: Error) -> McpError {
    match e {
        Error::NotFound { .. } => not_found(uri, &e.to_string()),
        other => internal(other),
    }
}

fn not_found(uri: &str, why: &str) -> McpError {
    let uri = crate::error::bounded(uri, crate::error::QUOTE_CHARS);
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
