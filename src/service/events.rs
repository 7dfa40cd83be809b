//! Inbound events: the receive pipeline (verify, de-duplicate, commit, announce), and reading
//! events back (list, get, wait).

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::{rejections, EventNotice, Service, Stats};
use crate::error::{Error, Result};
use crate::model::{
    excerpt, log_excerpt, now_millis, Caller, DeliveryId, DeliveryStatus, Event, EventId, Filter,
    Provider, Receipt, Webhook, WebhookId,
};
use crate::signing;
use crate::store::{EventQuery, Ingest, InsertOutcome, Outgoing};

/// One request to the receiver, after its body was read within the size limit. Headers are
/// part of a webhook's content (signatures, event types, delivery ids), so they come as the
/// `http` crate's map; nothing about the connection does.
pub struct InboundRequest<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The peer's address, when known: rejections are rate limited per source.
    pub source: Option<std::net::IpAddr>,
}

/// What became of a request to the receiver.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiveOutcome {
    /// Verified and durably stored.
    Stored {
        event_id: EventId,
        delivery_id: DeliveryId,
    },
    /// A repeat of an event already stored (same provider event id): acknowledged, not stored.
    Duplicate { event_id: EventId },
    /// Verified, but its type is not in the webhook's events filter: acknowledged, not stored.
    Filtered { reason: String },
    /// Slack's url_verification handshake: answered with the challenge, not stored.
    Challenge(Value),
    /// Not accepted.
    Refused(Refusal),
}

/// Why a request was not accepted. The webhook protocol answers each with its own status: a
/// sender retries a 5xx, and gives up on a 4xx.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    TooLarge(String),
    /// The store could not commit (disk full, read-only): retry later, nothing was kept.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The store could not be read to look the webhook up.
    #[error("{0}")]
    LookupFailed(String),
}

impl Refusal {
    /// The metrics label of the refusal's kind.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotFound(_) => "not_found",
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::Malformed(_) => "malformed",
            Refusal::TooLarge(_) => "too_large",
            Refusal::StoreUnavailable(_) => "store_unavailable",
            Refusal::LookupFailed(_) => "lookup_failed",
        }
    }

    /// The status the receiver answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            Refusal::NotFound(_) => 404,
            Refusal::Unauthorized(_) => 401,
            Refusal::Malformed(_) => 400,
            Refusal::TooLarge(_) => 413,
            Refusal::StoreUnavailable(_) => 503,
            Refusal::LookupFailed(_) => 500,
        }
    }
}

impl Service {
    fn count_refusal(&self, reason: &'static str) {
        self.metrics
            .events_rejected
            .get_or_create(&super::metrics::Reason { reason })
            .inc();
    }
}

impl ReceiveOutcome {
    /// The status the receiver answers with, and that the receipt records.
    pub fn status_code(&self) -> u16 {
        match self {
            ReceiveOutcome::Stored { .. }
            | ReceiveOutcome::Duplicate { .. }
            | ReceiveOutcome::Filtered { .. }
            | ReceiveOutcome::Challenge(_) => 200,
            ReceiveOutcome::Refused(r) => r.status_code(),
        }
    }
}

/// Where a verified request goes next.
enum Step {
    /// Store the event (with the signed bytes when a re-serialisation verified rather than
    /// the body as sent) and queue its relayed copies.
    Store(Box<Event>, Option<Vec<u8>>, Vec<Outgoing>),
    /// Acknowledge without storing (filtered out, or a provider handshake).
    Ack(ReceiveOutcome),
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEvents {
    /// Only events received by this inbound webhook.
    #[serde(default)]
    pub webhook_id: Option<WebhookId>,
    /// Only events of this type (e.g. `message_received`).
    #[serde(default)]
    pub event: Option<String>,
    /// Cursor: only events after this `seq` (pass the previous answer's `next_cursor`).
    #[serde(default)]
    pub after: Option<i64>,
    /// At most this many events (default 20, at most 200).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only events whose content matches, e.g. {"data.participantName": {"$startsWith": "Jane"}}.
    /// A filtered page scans at most 5000 events; `next_cursor` is where the scan stopped.
    #[serde(default)]
    pub filter: Option<Filter>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForEvents {
    /// Only events received by this inbound webhook.
    #[serde(default)]
    pub webhook_id: Option<WebhookId>,
    /// Only events of this type.
    #[serde(default)]
    pub event: Option<String>,
    /// Cursor: return events after this `seq` (0: from the oldest kept). Leave out to continue
    /// where this session's previous call ended, or from the session's start on its first call:
    /// an event that arrived after you connected (a test you just triggered) is returned.
    #[serde(default)]
    pub after: Option<i64>,
    /// How long to wait, in milliseconds (default 30000, at most 60000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Only events whose content matches, e.g. {"data.participantName": {"$startsWith": "Jane"}}:
    /// waits until one arrives, skipping the others.
    #[serde(default)]
    pub filter: Option<Filter>,
}

/// Events in cursor order, and the cursor to continue from.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub next_cursor: i64,
    /// `wait_for_events` only: nothing arrived before the timeout.
    pub timed_out: bool,
    /// A content filter's scan stopped at its bound before the newest event: more may match
    /// after `next_cursor`.
    pub partial: bool,
}

const MAX_WAIT_MS: u64 = 60_000;
/// How much of a refused request's body the log keeps.
const REFUSED_EXCERPT: usize = 512;
/// How many characters of a refusal's reason the log keeps.
const REFUSED_ERROR: usize = 300;
/// How many bytes of header names and values a refusal's row keeps, and of one value.
const REFUSED_HEADER_BYTES: usize = 1024;
const REFUSED_HEADER_VALUE: usize = 200;
const MAX_LIST: usize = 200;
/// A content-filtered read scans at most this many events, in pages of `SCAN_PAGE`.
const MAX_SCAN: usize = 5_000;
const SCAN_PAGE: usize = 500;

/// Headers a sender sends that hold credentials or signatures: not kept with the event.
const HIDDEN_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

impl Service {
    /// The receiver's pipeline for `POST /hooks/{webhook_id}`: [`Self::inbound_webhook`], then
    /// [`Self::receive_for`]. The HTTP receiver calls the two itself, so that it reads no body
    /// for a URL that names no webhook.
    pub async fn receive(&self, webhook_id: &str, req: InboundRequest<'_>) -> ReceiveOutcome {
        match self
            .inbound_webhook(webhook_id, req.headers, req.source)
            .await
        {
            Ok(webhook) => self.receive_for(webhook, req).await,
            Err(refused) => refused,
        }
    }

    /// The enabled inbound webhook a receive URL names, or the refusal (recorded as any refusal
    /// is, keeping nothing the sender chose: it has not shown it knows any secret).
    pub async fn inbound_webhook(
        &self,
        webhook_id: &str,
        headers: &HeaderMap,
        source: Option<std::net::IpAddr>,
    ) -> Result<Webhook, ReceiveOutcome> {
        let found = self.store.get_webhook(&WebhookId::from(webhook_id)).await;
        let why = match found {
            Ok(Some(w)) if w.may_receive() => return Ok(w),
            Ok(None) => "unknown webhook id",
            Ok(Some(w)) if !w.enabled => "webhook is disabled",
            Ok(Some(_)) => "webhook is outbound, not inbound",
            Err(e) => {
                tracing::error!(error = %e, "store unavailable");
                let refusal = Refusal::LookupFailed("store unavailable; retry later".into());
                return Err(self
                    .refuse(webhook_id, None, headers, None, source, refusal)
                    .await);
            }
        };
        // Ids are random UUIDs, so saying why does not help anyone probe; it does help the
        // person reading the sender's dashboard.
        let refusal = Refusal::NotFound(format!("no enabled inbound webhook at this URL ({why})"));
        Err(self
            .refuse(webhook_id, None, headers, None, source, refusal)
            .await)
    }

    /// Verifies, de-duplicates and stores a request to an inbound webhook. Every outcome is
    /// written to the delivery log; a stored event is announced on the bus only after its
    /// commit.
    pub async fn receive_for(&self, webhook: Webhook, req: InboundRequest<'_>) -> ReceiveOutcome {
        let mut receipt = self.receipt(&webhook, req.headers);
        // The body excerpt is made once, by outcome.
        let outcome = match self.verify(&webhook, &req, &mut receipt).await {
            Ok(Step::Store(event, signed, relays)) => {
                // The bytes the signature covers are the event's body.
                let body = signed.as_deref().unwrap_or(req.body);
                // Kept only if it turns out a duplicate (the event holds the body otherwise).
                receipt.request_body = Some(log_excerpt(body));
                return self.store_event(*event, body, receipt, relays).await;
            }
            Ok(Step::Ack(answer)) => {
                receipt.request_body = Some(log_excerpt(req.body));
                answer
            }
            Err(refusal) => {
                return self
                    .refuse(
                        webhook.id.as_str(),
                        Some(&webhook),
                        req.headers,
                        Some(req.body),
                        req.source,
                        refusal,
                    )
                    .await
            }
        };
        receipt.status_code = Some(outcome.status_code() as i64);
        if let Err(e) = self.store.log_receipt(receipt).await {
            tracing::error!(error = %e, "could not log an inbound request");
        }
        outcome
    }

    /// Refuses a request whose body is over the size limit, before reading it.
    pub async fn reject_oversize(
        &self,
        webhook: &Webhook,
        headers: &HeaderMap,
        source: Option<std::net::IpAddr>,
    ) -> ReceiveOutcome {
        let limit = self.settings.max_body_bytes;
        let refusal = Refusal::TooLarge(format!("body larger than the {limit}-byte limit"));
        self.refuse(
            webhook.id.as_str(),
            Some(webhook),
            headers,
            None,
            source,
            refusal,
        )
        .await
    }

    /// Counts a refusal and, within the source's budget (see `rejections`), logs it and writes
    /// its delivery-log row. Unauthenticated traffic is cheap to keep: the row holds no headers
    /// when the URL named no webhook, and at most about 2 KiB in all otherwise (some headers and
    /// an excerpt of the body to debug a sender by; anyone can POST megabytes to a receive URL).
    async fn refuse(
        &self,
        webhook_id: &str,
        webhook: Option<&Webhook>,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        source: Option<std::net::IpAddr>,
        refusal: Refusal,
    ) -> ReceiveOutcome {
        Stats::add(&self.stats.rejected, 1);
        self.count_refusal(refusal.reason());
        if self.rejections.check(source, std::time::Instant::now())
            == rejections::Record::Suppressed
        {
            Stats::add(&self.stats.rejections_suppressed, 1);
            return ReceiveOutcome::Refused(refusal);
        }
        // The id comes from the URL: keep the log readable even when it is garbage.
        let webhook_id = WebhookId::from(crate::error::bounded(webhook_id, 100));
        let mut receipt = Receipt::new(webhook_id.clone(), self.receive_url(&webhook_id));
        if let Some(webhook) = webhook {
            receipt.request_headers = refused_headers(headers, webhook);
        }
        receipt.request_body = body.map(|b| excerpt(b, REFUSED_EXCERPT));
        receipt.status = DeliveryStatus::Failed;
        receipt.status_code = Some(refusal.status_code() as i64);
        let reason = crate::error::bounded(&refusal.to_string(), REFUSED_ERROR);
        tracing::warn!(webhook_id = %receipt.webhook_id, reason = %reason, "inbound request rejected");
        receipt.error = Some(reason);
        if let Err(e) = self.store.log_receipt(receipt).await {
            tracing::error!(error = %e, "could not log a rejected request");
        }
        ReceiveOutcome::Refused(refusal)
    }

    async fn store_event(
        &self,
        event: Event,
        body: &[u8],
        mut receipt: Receipt,
        relays: Vec<Outgoing>,
    ) -> ReceiveOutcome {
        let relayed = !relays.is_empty();
        // A stored event is its own receipt (see `store::log`); the receipt below is logged
        // only if the event turns out to be a duplicate.
        let (event_id, delivery_id) = (event.id.clone(), DeliveryId::from(event.id.as_str()));
        let notice = EventNotice {
            seq: 0,
            id: event.id.clone(),
            webhook_id: event.webhook_id.clone(),
            event: event.event.clone(),
        };
        receipt.status = DeliveryStatus::Succeeded;
        receipt.status_code = Some(crate::store::log::ACCEPTED);
        let ingest = Ingest {
            event,
            body: raw_text(body),
            receipt: Some(receipt),
            relays,
        };
        let started = std::time::Instant::now();
        let inserted = self.store.insert_event(ingest).await;
        self.metrics
            .store_write_seconds
            .observe(started.elapsed().as_secs_f64());
        match inserted {
            Ok(InsertOutcome::Stored(seq)) => {
                Stats::add(&self.stats.events_stored, 1);
                self.metrics.events_received.inc();
                if relayed {
                    // Relayed copies were queued: the delivery worker has work now.
                    self.wake.notify_one();
                }
                // Per event: debug, not info. At info it was 4.5 % of the receiver's CPU at
                // c=64 (formatting and a write to stderr per event); the delivery log and the
                // metrics count every event, `WEBHOOK_MCP_LOG=debug` shows each.
                tracing::debug!(webhook_id = %notice.webhook_id, event_id = %notice.id, event = %notice.event, seq, "event received");
                ReceiveOutcome::Stored {
                    event_id,
                    delivery_id,
                }
            }
            Ok(InsertOutcome::Duplicate(existing)) => {
                Stats::add(&self.stats.duplicates, 1);
                self.metrics.events_duplicate.inc();
                tracing::debug!(webhook_id = %notice.webhook_id, event_id = %existing, "duplicate delivery acknowledged");
                ReceiveOutcome::Duplicate { event_id: existing }
            }
            Err(e) => {
                Stats::add(&self.stats.store_failures, 1);
                self.count_refusal("store_unavailable");
                // Not acknowledged: 503 tells the sender to retry, so nothing is lost.
                tracing::error!(webhook_id = %notice.webhook_id, error = %e, "could not store event (disk full or store read-only?); answered 503");
                ReceiveOutcome::Refused(Refusal::StoreUnavailable(
                    "the event could not be stored; retry later".into(),
                ))
            }
        }
    }

    /// The receipt of a request to a known webhook: headers kept, minus the values of its
    /// required headers (credentials, never kept whatever the outcome).
    fn receipt(&self, webhook: &Webhook, headers: &HeaderMap) -> Receipt {
        let mut r = Receipt::new(webhook.id.clone(), self.receive_url(&webhook.id));
        r.request_headers = kept_headers(headers);
        for name in webhook.required_headers.keys() {
            r.request_headers.remove(&name.to_ascii_lowercase());
        }
        r
    }

    /// Verifies and parses: an event to store, a request to acknowledge without storing, or
    /// a refusal.
    async fn verify(
        &self,
        webhook: &Webhook,
        req: &InboundRequest<'_>,
        receipt: &mut Receipt,
    ) -> Result<Step, Refusal> {
        let (headers, body) = (req.headers, req.body);
        let now = now_millis();
        let parsed = signing::parse_strict(body);
        // Diagnostics for the log: which scheme, and whether the body parsed, never secrets.
        let context = format!(
            "[scheme: {}; body: {}]",
            webhook.provider,
            match &parsed {
                Ok(_) => "valid JSON",
                Err(e) if e.is_data() => "JSON with a duplicate key",
                Err(_) => "not JSON",
            }
        );
        check_required_headers(webhook, headers)
            .map_err(|r| Refusal::Unauthorized(format!("{r} {context}")))?;
        let secrets: Vec<&str> = webhook
            .valid_secrets(now)
            .into_iter()
            .map(|s| s.expose())
            .collect();
        let check = signing::Check {
            headers,
            body,
            secrets: &secrets,
            now: now / 1000,
            tolerance: self.settings.timestamp_tolerance,
            json: parsed.as_ref().ok(),
            reserialised: webhook.accept_compact_signatures,
        };
        let verified = signing::verify_inbound(webhook.provider, &check)
            .map_err(|r| Refusal::Unauthorized(format!("signature rejected: {r} {context}")))?;
        let payload: Value =
            parsed.map_err(|e| Refusal::Malformed(format!("body is not valid JSON: {e}")))?;
        if webhook.provider == Provider::Slack && payload["type"] == "url_verification" {
            // Slack's one-time handshake when the URL is registered: echo the challenge.
            receipt.status = DeliveryStatus::Succeeded;
            receipt.error = Some("slack url_verification handshake answered; not stored".into());
            return Ok(Step::Ack(ReceiveOutcome::Challenge(
                payload["challenge"].clone(),
            )));
        }
        let signed = verified.reserialised.as_deref().unwrap_or(body);
        let identity = signing::identity(webhook.provider, &verified, &payload, signed);
        let event_type = identity.event_type;
        receipt.event = Some(event_type.clone());
        if !crate::model::is_event_type(&event_type) {
            return Err(Refusal::Malformed(format!(
                "event type {} is not {}",
                crate::error::quote(&event_type),
                crate::model::EVENT_TYPE_RULE
            )));
        }
        // Reserved for this server's own operational events: a sender cannot forge one.
        if event_type.starts_with("webhook_mcp.") {
            return Err(Refusal::Malformed(format!(
                "event type {} is reserved for webhook-mcp's own operational events",
                crate::error::quote(&event_type)
            )));
        }
        if !webhook.accepts_event(&event_type) {
            let reason = format!(
                "filtered: event type {event_type:?} is not in this webhook's events filter; acknowledged, not stored"
            );
            receipt.status = DeliveryStatus::Succeeded;
            receipt.error = Some(reason.clone());
            return Ok(Step::Ack(ReceiveOutcome::Filtered { reason }));
        }
        let event = Event {
            seq: 0,
            id: EventId::generate(),
            webhook_id: webhook.id.clone(),
            provider_event_id: Some(identity.id),
            event: event_type,
            received_at: now,
            headers: receipt.request_headers.clone(),
            payload,
        };
        receipt.event_id = Some(event.id.clone());
        let relays = self.relays(webhook, &event).await;
        Ok(Step::Store(Box::new(event), verified.reserialised, relays))
    }

    pub async fn list_events(&self, caller: &Caller, req: ListEvents) -> Result<EventPage> {
        let limit = req.limit.unwrap_or(20).clamp(1, MAX_LIST);
        let after = req.after.unwrap_or(0);
        let query = EventQuery {
            webhook_id: req.webhook_id,
            owner: caller.only().cloned(),
            event: req.event,
            after: Some(after),
            limit,
            newest_first: false,
        };
        match &req.filter {
            None => Ok(page(self.store.list_events(query).await?, after, false)),
            Some(filter) => self.scan_events(query, filter).await,
        }
    }

    /// The first `query.limit` events after the cursor that match `filter`, read by cursor in
    /// pages and matched in process; `next_cursor` is the last event looked at, so a caller
    /// that continues from it never reads an event twice.
    async fn scan_events(&self, mut query: EventQuery, filter: &Filter) -> Result<EventPage> {
        let limit = query.limit;
        query.limit = SCAN_PAGE;
        let mut cursor = query.after.unwrap_or(0);
        let (mut events, mut scanned) = (vec![], 0);
        // Whether the scan stopped at its bound with events left unread.
        let partial = 'scan: loop {
            query.after = Some(cursor);
            let batch = self.store.list_events(query.clone()).await?;
            let ended = batch.len() < SCAN_PAGE;
            for e in batch {
                cursor = e.seq;
                scanned += 1;
                if filter.matches(e.subject()) {
                    events.push(e);
                    if events.len() == limit {
                        break 'scan false;
                    }
                }
            }
            if ended || scanned >= MAX_SCAN {
                break !ended;
            }
        };
        Ok(EventPage {
            events,
            next_cursor: cursor,
            timed_out: false,
            partial,
        })
    }

    /// "Now" as an event cursor, and how far retention pruned (a cursor below it has lost
    /// events): `(max_seq, pruned_through)`.
    pub async fn event_bounds(&self) -> Result<(i64, i64)> {
        Ok((
            self.store.max_event_seq().await?,
            self.store.events_pruned_through().await?,
        ))
    }

    /// The newest events, newest first (feeds), of one webhook or of all.
    pub async fn newest_events(
        &self,
        caller: &Caller,
        webhook_id: Option<&WebhookId>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.store
            .list_events(EventQuery {
                webhook_id: webhook_id.cloned(),
                owner: caller.only().cloned(),
                limit: limit.clamp(1, MAX_LIST),
                newest_first: true,
                ..Default::default()
            })
            .await
    }

    /// Whether a webhook of that id exists for the caller (an inbox of a deleted webhook may
    /// still hold events).
    pub async fn webhook_exists(&self, caller: &Caller, id: &WebhookId) -> Result<bool> {
        Ok(self
            .store
            .get_webhook(id)
            .await?
            .is_some_and(|w| caller.sees(&w.owner)))
    }

    /// Whether the caller sees the history of `id`: its events and log, also after a delete.
    pub async fn sees_history(&self, caller: &Caller, id: &WebhookId) -> Result<bool> {
        Ok(caller.is_operator() || caller.sees(&self.owner_of(id).await?))
    }

    pub async fn get_event(&self, caller: &Caller, id: &EventId) -> Result<Event> {
        match self.store.get_event(id).await? {
            Some(e) if self.sees_history(caller, &e.webhook_id).await? => Ok(e),
            _ => Err(Error::event_not_found(id)),
        }
    }

    /// Returns matching events after the cursor as soon as one is stored, or an empty page at
    /// the timeout. Waits on the event bus, not by polling the store.
    pub async fn wait_for_events(&self, caller: &Caller, req: WaitForEvents) -> Result<EventPage> {
        let timeout = Duration::from_millis(req.timeout_ms.unwrap_or(30_000).min(MAX_WAIT_MS));
        // Subscribe before reading the cursor so no event can slip between the two.
        let mut bus = self.subscribe_events();
        let mut after = match req.after {
            Some(a) => a,
            None => self.store.max_event_seq().await?,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self
                .list_events(
                    caller,
                    ListEvents {
                        webhook_id: req.webhook_id.clone(),
                        event: req.event.clone(),
                        after: Some(after),
                        limit: Some(50),
                        filter: req.filter.clone(),
                    },
                )
                .await?;
            if !found.events.is_empty() {
                return Ok(found);
            }
            // Events the content filter skipped are not read again.
            after = found.next_cursor;
            if found.partial {
                continue;
            }
            // Sleep until a notice that matches the filter (or a lag, after which the store is
            // re-read), or until the deadline. A notice carries no payload: a content filter is
            // applied when the store is read.
            loop {
                match tokio::time::timeout_at(deadline, bus.recv()).await {
                    Err(_) => return Ok(page(vec![], after, true)),
                    Ok(Ok(n)) if n.seq > after && matches(&n, &req) => break,
                    Ok(Ok(_)) => continue,
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) => {
                        return Err(Error::Unavailable("the server is shutting down".into()))
                    }
                }
            }
        }
    }
}

fn page(events: Vec<Event>, after: i64, timed_out: bool) -> EventPage {
    EventPage {
        next_cursor: events.last().map_or(after, |e| e.seq),
        events,
        timed_out,
        partial: false,
    }
}

fn matches(n: &EventNotice, req: &WaitForEvents) -> bool {
    req.webhook_id.as_ref().is_none_or(|w| *w == n.webhook_id)
        && req.event.as_ref().is_none_or(|e| *e == n.event)
}

/// An inbound webhook may demand static header values (e.g. ConnectSafely's optional
/// `Authorization`) besides the signature. Compared in constant time.
fn check_required_headers(webhook: &Webhook, headers: &HeaderMap) -> Result<(), String> {
    for (name, expected) in &webhook.required_headers {
        let got = headers
            .get(name.as_str())
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !signing::constant_time_eq(got, expected.expose().as_bytes()) {
            return Err(format!(
                "required header {name} is missing or wrong (this webhook demands a fixed value for it)"
            ));
        }
    }
    Ok(())
}

/// A stored body as text: it parsed as JSON, so it is UTF-8 (lossy only as a safety net).
fn raw_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The headers a refusal's row keeps: those worth keeping for a request that passed, minus the
/// webhook's required headers, each value cut short, until about 1 KiB in all.
fn refused_headers(headers: &HeaderMap, webhook: &Webhook) -> BTreeMap<String, String> {
    let mut budget = REFUSED_HEADER_BYTES;
    let mut kept = BTreeMap::new();
    for (k, v) in headers {
        let name = k.as_str();
        if HIDDEN_HEADERS.contains(&name)
            || webhook
                .required_headers
                .keys()
                .any(|r| r.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let value = excerpt(v.as_bytes(), REFUSED_HEADER_VALUE);
        let cost = name.len() + value.len();
        if cost > budget {
            break;
        }
        budget -= cost;
        kept.insert(name.to_string(), value);
    }
    kept
}

/// The request headers worth keeping, minus credentials; bounded in count and size.
fn kept_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| !HIDDEN_HEADERS.contains(&k.as_str()))
        .take(64)
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes());
            (k.as_str().to_string(), v.chars().take(1024).collect())
        })
        .collect()
}
