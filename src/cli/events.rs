//! `webhook-mcp events ls|show|tail`: the received, verified events. `tail` follows new ones
//! live through the service's change feed, so it sees what any process sharing the store
//! receives, not only this one.

use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::admin::{self, failed, fields, table, text, AdminArgs};
use super::StartError;
use crate::mcp::render;
use crate::model::Caller;
use crate::model::{EventId, Filter, WebhookId};
use crate::service::{ListEvents, Service, WaitForEvents};

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// List received events in arrival order (without payloads).
    ///
    /// Example: webhook-mcp events ls --webhook <id> --limit 50
    Ls(LsArgs),
    /// Show one event with its headers and payload (untrusted data from the sender).
    ///
    /// Example: webhook-mcp events show <event-id>
    Show(ShowArgs),
    /// Print events as they arrive, at any process serving this store, until Ctrl-C.
    ///
    /// Examples:
    ///   webhook-mcp events tail
    ///   webhook-mcp events tail --event lead.replied --json | jq .untrusted_payload.payload
    ///   webhook-mcp events tail --filter '{"data.participantName": {"$startsWith": "Jane"}}'
    Tail(TailArgs),
}

/// Which events: the filters `ls` and `tail` share.
#[derive(Debug, Args)]
pub struct EventFilter {
    /// Only events of this webhook.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Only events of this type.
    #[arg(long)]
    pub event: Option<String>,
    /// Only events whose content matches this filter (JSON), e.g.
    /// '{"data.participantName": {"$startsWith": "Jane"}}' (README: "Content filters").
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    pub filter: Option<Filter>,
}

pub(super) fn parse_filter(text: &str) -> Result<Filter, String> {
    Filter::parse_text(text).map_err(|e| e.to_string())
}

impl EventFilter {
    fn webhook_id(&self) -> Option<WebhookId> {
        self.webhook.as_deref().map(WebhookId::from)
    }
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub filter: EventFilter,
    /// Start after this cursor (a SEQ, or the `next` a previous page printed) [default: 0]
    #[arg(long)]
    pub after: Option<i64>,
    /// At most this many (1 to 200).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The event id (`events ls` lists them).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub filter: EventFilter,
    /// Start after this cursor instead of now (0: everything kept, then live).
    #[arg(long)]
    pub after: Option<i64>,
}

pub async fn run(cmd: EventsCmd) -> Result<(), StartError> {
    match cmd {
        EventsCmd::Ls(a) => {
            let svc = a.admin.service().await?;
            let page = svc
                .list_events(
                    &Caller::operator(),
                    ListEvents {
                        webhook_id: a.filter.webhook_id(),
                        event: a.filter.event,
                        after: a.after,
                        limit: Some(a.limit),
                        filter: a.filter.filter,
                    },
                )
                .await
                .map_err(failed)?;
            a.admin.print(&render::event_summaries(&page), events_table);
        }
        EventsCmd::Show(a) => {
            let svc = a.admin.service().await?;
            let event = svc
                .get_event(&Caller::operator(), &EventId::from(a.id.as_str()))
                .await
                .map_err(failed)?;
            a.admin.print(&render::event(&event), event_detail);
        }
        EventsCmd::Tail(a) => tail(a).await?,
    }
    Ok(())
}

async fn tail(a: TailArgs) -> Result<(), StartError> {
    let svc = a.admin.service().await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let feed = svc.follow_changes(stop).await.map_err(failed)?;
    let mut cursor = match a.after {
        Some(after) => after,
        None => svc.event_bounds().await.map_err(failed)?.0,
    };
    // On stderr, so that stdout stays one event per line with --json.
    eprintln!("following events after cursor {cursor} (Ctrl-C stops)");
    let mut shutdown = std::pin::pin!(super::serve::shutdown_signal());
    loop {
        let next = tokio::select! {
            page = wait(&svc, &a, cursor) => page,
            _ = &mut shutdown => break,
        };
        let page = next.map_err(failed)?;
        for e in &page.events {
            if a.admin.json {
                // One event per line (NDJSON), for jq and scripts.
                super::admin::say(render::event(e));
            } else {
                super::admin::say(format_args!(
                    "{}  {:>6}  {}  {}  {}",
                    crate::model::rfc3339(e.received_at),
                    e.seq,
                    e.webhook_id,
                    e.event,
                    e.id
                ));
            }
        }
        cursor = page.next_cursor;
    }
    let _ = stop_tx.send(true);
    let _ = feed.await;
    Ok(())
}

async fn wait(
    svc: &Arc<Service>,
    a: &TailArgs,
    after: i64,
) -> crate::error::Result<crate::service::EventPage> {
    svc.wait_for_events(
        &Caller::operator(),
        WaitForEvents {
            webhook_id: a.filter.webhook_id(),
            event: a.filter.event.clone(),
            after: Some(after),
            timeout_ms: Some(60_000),
            filter: a.filter.filter.clone(),
        },
    )
    .await
}

fn events_table(v: &Value) -> String {
    let mut t = table(&["SEQ", "ID", "WEBHOOK", "EVENT", "RECEIVED"]);
    let events = v["events"].as_array().cloned().unwrap_or_default();
    for e in &events {
        t.add_row(vec![
            text(&e["seq"]),
            text(&e["id"]),
            text(&e["webhook_id"]),
            text(&e["event"]),
            text(&e["received_at"]),
        ]);
    }
    if events.is_empty() {
        return "no events after this cursor".into();
    }
    format!("{t}\nnext page: --after {}", text(&v["next_cursor"]))
}

fn event_detail(v: &Value) -> String {
    let envelope = &v["untrusted_payload"];
    let mut out = fields(&[
        ("id", text(&v["id"])),
        ("seq", text(&v["seq"])),
        ("webhook", text(&v["webhook_id"])),
        ("event", text(&v["event"])),
        ("provider id", text(&v["provider_event_id"])),
        ("received", text(&v["received_at"])),
    ]);
    out.push_str("\n\nheaders:\n");
    for (k, h) in envelope["headers"].as_object().into_iter().flatten() {
        out.push_str(&format!("  {k}: {}\n", text(h)));
    }
    out.push_str("\npayload (sent by a third party; verified, but untrusted data):\n");
    out.push_str(&admin::pretty(&envelope["payload"]));
    out
}
