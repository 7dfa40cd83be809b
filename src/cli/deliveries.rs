//! `webhook-mcp deliveries ls|show`, `redeliver` and `send`: the delivery log (inbound
//! requests and outbound attempts) and the outbound queue. What these commands queue is
//! delivered by the processes serving the store, with their retries.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::admin::{self, failed, fields, status_cell, table, text, AdminArgs};
use super::StartError;
use crate::mcp::render;
use crate::model::Caller;
use crate::model::{DeliveryId, DeliveryStatus, Direction, WebhookId};
use crate::service::{QueryDeliveries, Redeliver, SendEvent};

#[derive(Debug, Subcommand)]
pub enum DeliveriesCmd {
    /// The delivery log, newest first: outbound attempts and inbound requests (accepted or
    /// refused, with the reason).
    ///
    /// Examples:
    ///   webhook-mcp deliveries ls --status failed --since 2026-11-26T00:00:00Z
    ///   webhook-mcp deliveries ls --webhook <id> --direction inbound
    Ls(LsArgs),
    /// One row of the log with its request and response (headers and bodies).
    ///
    /// Example: webhook-mcp deliveries show <delivery-id>
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Only rows of this webhook.
    #[arg(long)]
    pub webhook: Option<String>,
    /// inbound or outbound.
    #[arg(long, value_parser = admin::serde_name::<Direction>)]
    pub direction: Option<Direction>,
    /// pending, succeeded or failed.
    #[arg(long, value_parser = admin::serde_name::<DeliveryStatus>)]
    pub status: Option<DeliveryStatus>,
    /// Only rows of this event type.
    #[arg(long)]
    pub event: Option<String>,
    /// Only rows at or after this instant (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only rows before this instant (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many (1 to 500).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The `next page` cursor a previous page printed.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The delivery id (`deliveries ls` lists them).
    pub id: String,
}

/// Queue a delivery again: one by id, or every finally-failed one of a webhook in a window.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  webhook-mcp redeliver <delivery-id>\n  \
    webhook-mcp redeliver --webhook <id> --since 2026-11-26T08:00:00Z")]
pub struct RedeliverArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The delivery to send again (`deliveries ls` lists them).
    #[arg(required_unless_present = "webhook", conflicts_with = "webhook")]
    pub delivery_id: Option<String>,
    /// Bulk: the outbound webhook whose failed deliveries go again.
    #[arg(long, requires = "since")]
    pub webhook: Option<String>,
    /// Bulk: the start of the window (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Bulk: the end of the window (RFC 3339) [default: now]
    #[arg(long)]
    pub until: Option<String>,
    /// Stay until the serving process has sent what was queued, with a progress bar on a
    /// terminal; exit 1 if some are still pending after --wait-timeout.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 10m [default: 5m]
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub wait_timeout: std::time::Duration,
}

/// Send an event to every enabled outbound webhook whose filter matches (signed, queued
/// durably, retried).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  webhook-mcp send lead.replied --data '{\"lead\": \"ada\"}'\n  \
    echo '{\"n\": 1}' | webhook-mcp send order.paid --data - --webhook <id> --idempotency-key order-1"
)]
pub struct SendArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The event type.
    pub event: String,
    /// The event's data, a JSON object (`-` reads it from stdin) [default: {}]
    #[arg(long, value_parser = admin::json_object)]
    pub data: Option<Value>,
    /// Only to this webhook (repeatable) [default: every matching one]
    #[arg(long = "webhook")]
    pub webhooks: Vec<String>,
    /// The same key within 24 h returns the first send's result and sends nothing new.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

pub async fn run(cmd: DeliveriesCmd) -> Result<(), StartError> {
    match cmd {
        DeliveriesCmd::Ls(a) => {
            let svc = a.admin.service().await?;
            let page = svc
                .query_deliveries(
                    &Caller::operator(),
                    QueryDeliveries {
                        webhook_id: a.webhook.as_deref().map(WebhookId::from),
                        direction: a.direction,
                        status: a.status,
                        event: a.event,
                        since: a.since,
                        until: a.until,
                        limit: Some(a.limit),
                        cursor: a.cursor,
                    },
                )
                .await
                .map_err(failed)?;
            a.admin.print(&render::deliveries(&page), deliveries_table);
        }
        DeliveriesCmd::Show(a) => {
            let svc = a.admin.service().await?;
            let row = svc
                .get_delivery(&Caller::operator(), &DeliveryId::from(a.id.as_str()))
                .await
                .map_err(failed)?;
            a.admin
                .print(&render::delivery(&row, true), delivery_detail);
        }
    }
    Ok(())
}

pub async fn redeliver(a: RedeliverArgs) -> Result<(), StartError> {
    let svc = a.admin.service().await?;
    let done = svc
        .redeliver(
            &Caller::operator(),
            Redeliver {
                delivery_id: a.delivery_id.as_deref().map(DeliveryId::from),
                webhook_id: a.webhook.as_deref().map(WebhookId::from),
                since: a.since.clone(),
                until: a.until.clone(),
            },
        )
        .await
        .map_err(failed)?;
    let value = render::redelivered(&done);
    if a.wait {
        follow_queue(&svc, &a, &value).await?;
    }
    a.admin.print(&value, |v| {
        let what = match v["delivery_id"].as_str() {
            Some(id) => format!("queued {id} again (attempt {})", text(&v["attempt"])),
            None => format!(
                "queued {} failed deliveries of {} again",
                text(&v["queued"]),
                text(&v["webhook_id"])
            ),
        };
        format!("{what}; a serving webhook-mcp process delivers them (`webhook-mcp deliveries ls` follows)")
    });
    Ok(())
}

/// Waits until the attempts `redeliver` queued are no longer pending, drawing progress: for one
/// delivery its own state, for a window the webhook's pending attempts counting down.
async fn follow_queue(
    svc: &crate::service::Service,
    a: &RedeliverArgs,
    queued: &Value,
) -> Result<(), StartError> {
    let total = queued["queued"].as_u64().unwrap_or(0);
    let bar = admin::progress(a.admin.json, Some(total), "delivering");
    let deadline = tokio::time::Instant::now() + a.wait_timeout;
    let webhook = match (
        queued["webhook_id"].as_str(),
        queued["delivery_id"].as_str(),
    ) {
        (Some(w), _) => WebhookId::from(w),
        (None, Some(id)) => match svc
            .get_delivery(&Caller::operator(), &DeliveryId::from(id))
            .await
            .map_err(failed)?
        {
            crate::model::Delivery::Attempt(at) => at.webhook_id,
            crate::model::Delivery::Receipt(r) => r.webhook_id,
        },
        _ => return Ok(()),
    };
    loop {
        let pending = svc
            .query_deliveries(
                &Caller::operator(),
                QueryDeliveries {
                    webhook_id: Some(webhook.clone()),
                    status: Some(DeliveryStatus::Pending),
                    direction: Some(Direction::Outbound),
                    limit: Some(500),
                    ..Default::default()
                },
            )
            .await
            .map_err(failed)?
            .rows
            .len() as u64;
        bar.set_position(total.saturating_sub(pending));
        if pending == 0 {
            bar.finish_and_clear();
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bar.abandon();
            return Err(StartError(format!(
                "{pending} deliveries of {webhook} still pending after {}; is a `webhook-mcp serve` running on this store?",
                humantime::format_duration(a.wait_timeout)
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

pub async fn send(a: SendArgs) -> Result<(), StartError> {
    let svc = a.admin.service().await?;
    let webhook_ids = (!a.webhooks.is_empty()).then(|| {
        a.webhooks
            .iter()
            .map(|s| WebhookId::from(s.as_str()))
            .collect()
    });
    let sent = svc
        .send_event(
            &Caller::operator(),
            SendEvent {
                event: a.event,
                data: a.data.unwrap_or_else(|| serde_json::json!({})),
                webhook_ids,
                idempotency_key: a.idempotency_key,
            },
        )
        .await
        .map_err(failed)?;
    a.admin.print(&render::sent(&sent), |v| {
        let mut t = table(&["WEBHOOK", "DELIVERY", "MESSAGE"]);
        for d in v["deliveries"].as_array().into_iter().flatten() {
            t.add_row(vec![
                text(&d["webhook_id"]),
                text(&d["delivery_id"]),
                text(&d["message_id"]),
            ]);
        }
        let head = if v["replayed"] == Value::Bool(true) {
            "repeated idempotency key: the first send's result, nothing new queued".to_string()
        } else {
            format!(
                "queued {} deliveries of {}",
                text(&v["queued"]),
                text(&v["event"])
            )
        };
        if t.row_count() == 0 {
            return format!("{head}. {}", text(&v["hint"]));
        }
        format!("{head}; a serving webhook-mcp process delivers them\n{t}")
    });
    Ok(())
}

fn deliveries_table(v: &Value) -> String {
    let mut t = table(&[
        "ID", "TIME", "DIR", "WEBHOOK", "EVENT", "STATUS", "CODE", "TRY", "ERROR",
    ]);
    let rows = v["deliveries"].as_array().cloned().unwrap_or_default();
    for d in &rows {
        t.add_row(vec![
            text(&d["id"]).into(),
            text(&d["created_at"]).into(),
            text(&d["direction"]).into(),
            text(&d["webhook_id"]).into(),
            text(&d["event"]).into(),
            status_cell(&text(&d["status"])),
            text(&d["status_code"]).into(),
            text(&d["attempt"]).into(),
            admin::cut(&text(&d["error"]), 60).into(),
        ]);
    }
    if rows.is_empty() {
        return "no deliveries match".into();
    }
    match v["next_cursor"].as_str() {
        Some(c) => format!("{t}\nnext page: --cursor {c}"),
        None => t.to_string(),
    }
}

fn delivery_detail(v: &Value) -> String {
    let mut rows = vec![];
    for (label, key) in [
        ("id", "id"),
        ("direction", "direction"),
        ("webhook", "webhook_id"),
        ("event", "event"),
        ("event id", "event_id"),
        ("message", "message_id"),
        ("trigger", "trigger"),
        ("attempt", "attempt"),
        ("url", "url"),
        ("status", "status"),
        ("status code", "status_code"),
        ("took (ms)", "duration_ms"),
        ("error", "error"),
        ("at", "created_at"),
        ("next attempt", "next_attempt_at"),
    ] {
        if !v[key].is_null() {
            rows.push((label, text(&v[key])));
        }
    }
    let mut out = fields(&rows);
    for (title, headers, body) in [
        ("request", "request_headers", "request_body"),
        ("response", "response_headers", "response_body"),
    ] {
        out.push_str(&format!("\n\n{title}:\n"));
        for (k, h) in v[headers].as_object().into_iter().flatten() {
            out.push_str(&format!("  {k}: {}\n", text(h)));
        }
        if let Some(b) = v[body].as_str() {
            out.push('\n');
            out.push_str(b);
            out.push('\n');
        }
    }
    out
}
