//! Slack incoming webhooks get a Slack message instead of the raw event, as Voyager does:
//! `text` for notifications plus blocks naming the event type and the key fields of `data`.

use serde_json::{json, Value};

pub fn is_slack(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.host_str() == Some("hooks.slack.com"))
}

/// A URL as shown to clients and in logs. A chat platform's incoming-webhook URL is its own
/// credential (anyone who has it can post to the channel): Slack's, Discord's, Microsoft
/// Teams' (Office connectors and Power Automate workflows) and Google Chat's show as their
/// host and `/***`; a password in a URL shows as `***`.
pub fn shown_url(url: &str) -> String {
    if is_slack(url) {
        return "https://hooks.slack.com/services/***".into();
    }
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    if parsed.host_str().is_some_and(is_chat_credential_host) {
        return format!(
            "{}://{}/***",
            parsed.scheme(),
            parsed.host_str().unwrap_or("")
        );
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
        return parsed.to_string();
    }
    url.to_string()
}

/// Hosts whose webhook URLs carry their credential in the path or query.
fn is_chat_credential_host(host: &str) -> bool {
    let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    under("discord.com")
        || under("discordapp.com")
        || under("webhook.office.com")
        || under("logic.azure.com")
        || host == "outlook.office.com"
        || host == "chat.googleapis.com"
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

#[cfg(test)]
mod shown_url_tests {
    use super::shown_url;

    #[test]
    fn chat_webhook_urls_show_no_credential() {
        for (url, shown) in [
            ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/services/***"),
            ("https://discord.com/api/webhooks/123/tok-abc", "https://discord.com/***"),
            ("https://ptb.discord.com/api/webhooks/1/t", "https://ptb.discord.com/***"),
            ("https://acme.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d", "https://acme.webhook.office.com/***"),
            ("https://prod-1.westus.logic.azure.com:443/workflows/x/triggers/manual/paths/invoke?sig=s", "https://prod-1.westus.logic.azure.com/***"),
            ("https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t", "https://chat.googleapis.com/***"),
            ("https://user:pw@example.com/hook", "https://user:***@example.com/hook"),
            ("https://example.com/hook?x=1", "https://example.com/hook?x=1"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }
}
