//! Slack incoming webhooks get a Slack message instead of the raw event, as Voyager does:
//! `text` for notifications plus blocks naming the event type and the key fields of `data`.

use serde_json::{json, Value};

pub fn is_slack(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.host_str() == Some("hooks.slack.com"))
}

/// A URL as shown to clients and in logs: a Slack incoming-webhook URL's path is its credential
/// (anyone who has it can post to the channel), so it is masked.
pub fn shown_url(url: &str) -> String {
    if is_slack(url) {
        "https://hooks.slack.com/services/***".into()
    } else {
        url.to_string()
    }
}

/// At most this many top-level fields of `data` are shown.
const FIELDS: usize = 10;

pub fn message(event: &str, data: &Value) -> Value {
    let fields: Vec<Value> = data
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .take(FIELDS)
        .map(|(k, v)| {
            let shown = match v {
                Value::String(s) => s.chars().take(200).collect(),
                other => {
                    let s = other.to_string();
                    s.chars().take(200).collect::<String>()
                }
            };
            json!({ "type": "mrkdwn", "text": format!("*{}*\n{}", escape(k), escape(&shown)) })
        })
        .collect();
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": format!("Webhook event: {event}") }
    })];
    if !fields.is_empty() {
        // Slack allows at most 10 fields in a section.
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    json!({ "text": format!("Webhook event: {event}"), "blocks": blocks })
}

/// Slack's mrkdwn control characters.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
