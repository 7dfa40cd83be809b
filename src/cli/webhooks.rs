//! `webhook-mcp webhooks ls|create|show|update|rm|rotate|test`: the webhook tools of the MCP
//! surface, for a person at a shell. Each parses its flags into the service request the tool
//! takes and prints the tool's JSON (`--json`) or a table of it.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::admin::{self, failed, fields, key_value, status_cell, table, text, AdminArgs};
use super::StartError;
use crate::mcp::render;
use crate::model::Caller;
use crate::model::{Direction, Filter, Provider, Secret, WebhookId};
use crate::service::{CreateWebhook, ListWebhooks, RotateSecret, TestWebhook, UpdateWebhook};

#[derive(Debug, Subcommand)]
pub enum WebhooksCmd {
    /// List webhooks (secrets are never shown).
    ///
    /// Example: webhook-mcp webhooks ls --direction outbound
    Ls(LsArgs),
    /// Create a webhook; its secret is shown this once.
    ///
    /// Examples:
    ///   webhook-mcp webhooks create --provider stripe --description "Stripe live"
    ///   webhook-mcp webhooks create --direction outbound --url https://example.com/hook --events lead.replied
    Create(CreateArgs),
    /// Show one webhook: its receive or target URL, filter and health.
    ///
    /// Example: webhook-mcp webhooks show <id>
    Show(IdArgs),
    /// Change a webhook; what is not given stays as it is.
    ///
    /// Example: webhook-mcp webhooks update <id> --disable
    Update(UpdateArgs),
    /// Delete a webhook (its events and delivery log stay readable).
    ///
    /// Example: webhook-mcp webhooks rm <id>
    Rm(IdArgs),
    /// Replace a webhook's secret; the old one keeps verifying for the grace period.
    ///
    /// Example: webhook-mcp webhooks rotate <id> --grace 1h
    Rotate(RotateArgs),
    /// Send a signed sample event: inbound through the receive pipeline, outbound to the target.
    ///
    /// Example: webhook-mcp webhooks test <id> --event lead.replied
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Only this direction: inbound or outbound.
    #[arg(long, value_parser = admin::serde_name::<Direction>)]
    pub direction: Option<Direction>,
    /// Only enabled (true) or disabled (false) webhooks.
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Only this principal's: `local`, `token:<NAME>`, `oauth:<issuer>#<subject>` (the
    /// `owner` column of the list).
    #[arg(long)]
    pub principal: Option<String>,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The webhook id (`webhooks ls` lists them).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// inbound (providers POST here) or outbound (this server POSTs to --url).
    #[arg(long, default_value = "inbound", value_parser = admin::serde_name::<Direction>)]
    pub direction: Direction,
    /// Outbound: the subscriber's http(s) URL.
    #[arg(long)]
    pub url: Option<String>,
    /// Inbound: the sender's signature scheme (generic, kakiyo, standard, github, stripe,
    /// slack, shopify).
    #[arg(long, value_parser = admin::serde_name::<Provider>)]
    pub provider: Option<Provider>,
    /// Event types to accept or send, comma-separated [default: *]
    #[arg(long, value_delimiter = ',')]
    pub events: Option<Vec<String>>,
    /// The signing secret, when the provider generates it [default: a strong generated one]
    #[arg(long, env = "WEBHOOK_MCP_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Outbound: an extra header sent with every delivery, NAME=VALUE (repeatable).
    #[arg(long = "header", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// Inbound: an outbound webhook id to relay each verified event to (repeatable).
    #[arg(long = "forward-to")]
    pub forward_to: Vec<String>,
    /// Inbound: a header value every request must carry, NAME=VALUE (repeatable).
    #[arg(long = "require-header", value_parser = key_value)]
    pub require_headers: Vec<(String, String)>,
    /// Needed with --provider none: accept requests without any signature check.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Inbound generic/kakiyo: verify the raw body only, not its compact JSON re-serialisation
    /// (for a sender that signs exactly the bytes it sends).
    #[arg(long)]
    pub raw_signatures_only: bool,
    /// Outbound: deliver only events whose content matches this filter (JSON), e.g.
    /// '{"data.amount": {"$gte": 100}}' (README: "Content filters").
    #[arg(long, value_name = "JSON", value_parser = super::events::parse_filter)]
    pub filter: Option<Filter>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The webhook id (`webhooks ls` lists them).
    pub id: String,
    /// Outbound: a new target URL.
    #[arg(long)]
    pub url: Option<String>,
    /// A new event-type filter, comma-separated (`*` for all).
    #[arg(long, value_delimiter = ',')]
    pub events: Option<Vec<String>>,
    #[arg(long)]
    pub description: Option<String>,
    /// Resume a paused or auto-disabled webhook.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Pause it: inbound requests get 404, nothing is sent.
    #[arg(long)]
    pub disable: bool,
    /// Outbound: replaces the extra headers, NAME=VALUE (repeatable).
    #[arg(long = "header", value_parser = key_value)]
    pub headers: Option<Vec<(String, String)>>,
    /// Inbound: replaces the relay targets (repeatable).
    #[arg(long = "forward-to")]
    pub forward_to: Option<Vec<String>>,
    /// Inbound: replaces the required headers, NAME=VALUE (repeatable).
    #[arg(long = "require-header", value_parser = key_value)]
    pub require_headers: Option<Vec<(String, String)>>,
    /// Outbound: replaces the content filter (JSON; '{}' removes it).
    #[arg(long, value_name = "JSON", value_parser = super::events::parse_filter)]
    pub filter: Option<Filter>,
    /// Inbound generic/kakiyo: whether a signature over the body's compact JSON
    /// re-serialisation verifies (true, the default) or only one over the raw body (false).
    #[arg(long, value_name = "BOOL")]
    pub accept_compact_signatures: Option<bool>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The webhook id (`webhooks ls` lists them).
    pub id: String,
    /// How long the old secret keeps verifying, e.g. 24h, 30m, 0s [default: 24h]
    #[arg(long, value_parser = humantime::parse_duration)]
    pub grace: Option<Duration>,
    /// Use this secret instead of generating one (providers that generate their own).
    #[arg(long, env = "WEBHOOK_MCP_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The webhook id (`webhooks ls` lists them).
    pub id: String,
    /// The event type to send [default: the first of its filter, or of its catalogue]
    #[arg(long)]
    pub event: Option<String>,
    /// The sample's `data`, as a JSON object (`-` reads it from stdin).
    #[arg(long, value_parser = admin::json_object)]
    pub data: Option<Value>,
}

pub async fn run(cmd: WebhooksCmd) -> Result<(), StartError> {
    match cmd {
        WebhooksCmd::Ls(a) => {
            let svc = a.admin.service().await?;
            let list = svc
                .list_webhooks(
                    &Caller::operator(),
                    ListWebhooks {
                        direction: a.direction,
                        enabled: a.enabled,
                        principal: a.principal,
                    },
                )
                .await
                .map_err(failed)?;
            a.admin.print(&render::webhooks(&list), webhooks_table);
        }
        WebhooksCmd::Create(a) => {
            let svc = a.admin.service().await?;
            let created = svc
                .create_webhook(
                    &Caller::operator(),
                    CreateWebhook {
                        direction: a.direction,
                        url: a.url,
                        provider: a.provider,
                        events: a.events,
                        secret: a.secret.map(Secret::new),
                        description: a.description,
                        headers: non_empty(a.headers.into_iter().collect()),
                        forward_to: non_empty(ids(a.forward_to)),
                        require_headers: non_empty(secrets(a.require_headers)),
                        allow_unsigned: a.allow_unsigned.then_some(true),
                        accept_compact_signatures: a.raw_signatures_only.then_some(false),
                        filter: a.filter,
                    },
                )
                .await
                .map_err(failed)?;
            a.admin.print(&render::created(&created), |v| {
                let mut out = webhook_fields(&v["webhook"]);
                out.push_str(&format!(
                    "\nsecret (shown only now; store it): {}\n",
                    text(&v["webhook"]["secret"])
                ));
                if let Some(setup) = v["setup"].as_str() {
                    out.push_str(&format!("\n{setup}\n"));
                }
                out
            });
        }
        WebhooksCmd::Show(a) => {
            let svc = a.admin.service().await?;
            let view = svc
                .get_webhook(&Caller::operator(), &WebhookId::from(a.id.as_str()))
                .await
                .map_err(failed)?;
            a.admin.print(&render::one_webhook(&view), |v| {
                webhook_fields(&v["webhook"])
            });
        }
        WebhooksCmd::Update(a) => {
            let svc = a.admin.service().await?;
            let enabled = match (a.enable, a.disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let view = svc
                .update_webhook(
                    &Caller::operator(),
                    UpdateWebhook {
                        id: WebhookId::from(a.id.as_str()),
                        url: a.url,
                        events: a.events,
                        description: a.description,
                        enabled,
                        headers: a.headers.map(|h| h.into_iter().collect()),
                        forward_to: a.forward_to.map(ids),
                        require_headers: a.require_headers.map(secrets),
                        accept_compact_signatures: a.accept_compact_signatures,
                        filter: a.filter,
                    },
                )
                .await
                .map_err(failed)?;
            a.admin.print(&render::one_webhook(&view), |v| {
                webhook_fields(&v["webhook"])
            });
        }
        WebhooksCmd::Rm(a) => {
            let svc = a.admin.service().await?;
            let id = WebhookId::from(a.id.as_str());
            svc.delete_webhook(&Caller::operator(), &id)
                .await
                .map_err(failed)?;
            a.admin.print(&render::deleted(&id), |v| {
                format!("deleted {}. {}", text(&v["id"]), text(&v["note"]))
            });
        }
        WebhooksCmd::Rotate(a) => {
            let svc = a.admin.service().await?;
            let rotated = svc
                .rotate_secret(
                    &Caller::operator(),
                    RotateSecret {
                        id: WebhookId::from(a.id.as_str()),
                        grace_seconds: a.grace.map(|d| d.as_secs()),
                        secret: a.secret.map(Secret::new),
                    },
                )
                .await
                .map_err(failed)?;
            a.admin.print(&render::rotated(&rotated), |v| {
                format!(
                    "new secret for {}: {}\n{}",
                    text(&v["webhook"]["id"]),
                    text(&v["webhook"]["secret"]),
                    text(&v["secret_notice"]),
                )
            });
        }
        WebhooksCmd::Test(a) => {
            let svc = a.admin.service().await?;
            let report = svc
                .test_webhook(
                    &Caller::operator(),
                    TestWebhook {
                        id: WebhookId::from(a.id.as_str()),
                        event: a.event,
                        data: a.data,
                    },
                )
                .await
                .map_err(failed)?;
            let value = render::test_report(&report);
            a.admin.print(&value, test_fields);
            if value["ok"] != Value::Bool(true) {
                return Err(StartError("the test did not succeed (see above)".into()));
            }
        }
    }
    Ok(())
}

fn ids(v: Vec<String>) -> Vec<WebhookId> {
    v.iter().map(|s| WebhookId::from(s.as_str())).collect()
}

fn secrets(v: Vec<(String, String)>) -> BTreeMap<String, Secret> {
    v.into_iter().map(|(k, s)| (k, Secret::new(s))).collect()
}

/// A repeatable flag given zero times means "not given", not "empty".
fn non_empty<T: IntoIterator + Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

fn webhooks_table(v: &Value) -> String {
    let mut t = table(&[
        "ID",
        "DIRECTION",
        "PROVIDER",
        "ENABLED",
        "EVENTS",
        "URL",
        "DESCRIPTION",
    ]);
    for w in v["webhooks"].as_array().into_iter().flatten() {
        let enabled = if w["enabled"] == Value::Bool(true) {
            "yes"
        } else {
            "no"
        };
        t.add_row(vec![
            text(&w["id"]).into(),
            text(&w["direction"]).into(),
            text(&w["provider"]).into(),
            status_cell(enabled),
            text(&w["events"]).into(),
            text(&w["url"]).into(),
            admin::cut(&text(&w["description"]), 40).into(),
        ]);
    }
    if t.row_count() == 0 {
        return "no webhooks yet: create one with `webhook-mcp webhooks create`".into();
    }
    t.to_string()
}

fn webhook_fields(w: &Value) -> String {
    let mut rows = vec![
        ("id", text(&w["id"])),
        ("direction", text(&w["direction"])),
        ("url", text(&w["url"])),
        ("provider", text(&w["provider"])),
        ("events", text(&w["events"])),
        ("enabled", text(&w["enabled"])),
        ("description", text(&w["description"])),
        ("created", text(&w["created_at"])),
        ("updated", text(&w["updated_at"])),
    ];
    for (label, key) in [
        ("disabled because", "disabled_reason"),
        ("failures", "failure_count"),
        ("failing since", "failing_since"),
    ] {
        if !w[key].is_null() {
            rows.push((label, text(&w[key])));
        }
    }
    for (label, key) in [
        ("headers", "headers"),
        ("required headers", "require_headers"),
    ] {
        if let Some(names) = w[key].as_object().filter(|m| !m.is_empty()) {
            rows.push((label, names.keys().cloned().collect::<Vec<_>>().join(",")));
        }
    }
    if w["filter"].is_object() {
        rows.push(("content filter", w["filter"].to_string()));
    }
    if let Some(f) = w["forward_to"].as_array().filter(|f| !f.is_empty()) {
        rows.push(("forwards to", text(&Value::Array(f.clone()))));
    }
    fields(&rows)
}

fn test_fields(v: &Value) -> String {
    let mut rows = vec![
        ("ok", text(&v["ok"])),
        ("event", text(&v["event"])),
        ("status", text(&v["status_code"])),
        ("took", format!("{} ms", text(&v["duration_ms"]))),
    ];
    for (label, key) in [
        ("event id", "event_id"),
        ("delivery id", "delivery_id"),
        ("error", "error"),
        ("response", "response_excerpt"),
        ("note", "note"),
    ] {
        if !v[key].is_null() {
            rows.push((label, text(&v[key])));
        }
    }
    fields(&rows)
}
