//! The delivery log: outbound attempts and inbound receipts.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::webhooks::bad_column;
use super::Store;
use crate::error::Result;
use crate::model::{log_excerpt, Delivery, DeliveryStatus, Direction, Millis, Trigger};

pub(super) const COLUMNS: &str =
    "seq, id, webhook_id, event_id, event, direction, trigger, attempt, url, \
    status, status_code, duration_ms, error, request_headers, request_body, response_headers, \
    response_body, created_at, next_attempt_at, message_id";

/// Filters for the delivery log, newest first. `before` is a `seq` cursor.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub webhook_id: Option<String>,
    pub direction: Option<Direction>,
    pub status: Option<DeliveryStatus>,
    pub event: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub before: Option<i64>,
    pub limit: usize,
}

impl Store {
    pub async fn insert_delivery(&self, d: Delivery) -> Result<()> {
        self.call(move |c| insert_delivery(c, &d)).await
    }

    pub async fn get_delivery(&self, id: &str) -> Result<Option<Delivery>> {
        let id = id.to_string();
        self.read(move |c| {
            let mut found = c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM deliveries WHERE id = ?1"),
                    [id],
                    from_row,
                )
                .optional()?;
            fill_from_events(c, found.as_mut_slice())?;
            Ok(found)
        })
        .await
    }

    pub async fn query_deliveries(&self, q: DeliveryQuery) -> Result<Vec<Delivery>> {
        self.read(move |c| {
            let mut rows = query(c, &q)?;
            fill_from_events(c, &mut rows)?;
            Ok(rows)
        })
        .await
    }
}

pub(super) fn insert_delivery(c: &Connection, d: &Delivery) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO deliveries (id, webhook_id, event_id, event, direction, trigger, attempt, url, \
         status, status_code, duration_ms, error, request_headers, request_body, response_headers, \
         response_body, created_at, next_attempt_at, message_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )?
    .execute(params![
        d.id,
        d.webhook_id,
        d.event_id,
        d.event,
        d.direction.as_str(),
        d.trigger.as_str(),
        d.attempt,
        d.url,
        d.status.as_str(),
        d.status_code,
        d.duration_ms,
        d.error,
        serde_json::to_string(&d.request_headers).unwrap_or_default(),
        d.request_body,
        serde_json::to_string(&d.response_headers).unwrap_or_default(),
        d.response_body,
        d.created_at,
        d.next_attempt_at,
        d.message_id,
    ])?;
    Ok(())
}

/// Gives receipts of stored events the request headers and body their event keeps (such a row
/// is written without a copy of them: inbound, linked to an event, no error, no body).
fn fill_from_events(c: &Connection, rows: &mut [Delivery]) -> Result<()> {
    for d in rows.iter_mut() {
        let Some(event_id) = &d.event_id else {
            continue;
        };
        if d.direction != Direction::Inbound || d.request_body.is_some() || d.error.is_some() {
            continue;
        }
        let found: Option<(String, String)> = c
            .prepare_cached("SELECT headers, payload FROM events WHERE id = ?1")?
            .query_row([event_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((headers, body)) = found {
            d.request_headers =
                serde_json::from_str(&headers).map_err(|_| bad_column(6, &headers))?;
            d.request_body = Some(log_excerpt(body.as_bytes()));
        }
    }
    Ok(())
}

fn query(c: &Connection, q: &DeliveryQuery) -> Result<Vec<Delivery>> {
    // Only the filters given appear in the SQL, so SQLite can pick the matching index
    // (`x IS NULL OR col = x` would hide every index from the planner).
    let mut clauses: Vec<&str> = vec![];
    let mut args: Vec<Value> = vec![];
    let mut filter = |clause: &'static str, value: Option<Value>| {
        if let Some(v) = value {
            clauses.push(clause);
            args.push(v);
        }
    };
    filter("webhook_id = ?", q.webhook_id.clone().map(Value::Text));
    filter(
        "direction = ?",
        q.direction.map(|d| Value::Text(d.as_str().into())),
    );
    filter(
        "status = ?",
        q.status.map(|s| Value::Text(s.as_str().into())),
    );
    filter("event = ?", q.event.clone().map(Value::Text));
    filter("created_at >= ?", q.since.map(Value::Integer));
    filter("created_at <= ?", q.until.map(Value::Integer));
    filter("seq < ?", q.before.map(Value::Integer));
    let where_clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    args.push(Value::Integer(q.limit as i64));
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM deliveries {where_clause} ORDER BY seq DESC LIMIT ?"
    ))?;
    let rows = stmt.query_map(params_from_iter(args), from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn from_row(r: &Row) -> rusqlite::Result<Delivery> {
    let direction: String = r.get(5)?;
    let trigger: String = r.get(6)?;
    let status: String = r.get(9)?;
    let req_headers: String = r.get(13)?;
    let resp_headers: String = r.get(15)?;
    Ok(Delivery {
        seq: r.get(0)?,
        id: r.get(1)?,
        webhook_id: r.get(2)?,
        event_id: r.get(3)?,
        event: r.get(4)?,
        direction: Direction::parse(&direction).ok_or_else(|| bad_column(5, &direction))?,
        trigger: Trigger::parse(&trigger).ok_or_else(|| bad_column(6, &trigger))?,
        attempt: r.get(7)?,
        url: r.get(8)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| bad_column(9, &status))?,
        status_code: r.get(10)?,
        duration_ms: r.get(11)?,
        error: r.get(12)?,
        request_headers: serde_json::from_str(&req_headers)
            .map_err(|_| bad_column(13, &req_headers))?,
        request_body: r.get(14)?,
        response_headers: serde_json::from_str(&resp_headers)
            .map_err(|_| bad_column(15, &resp_headers))?,
        response_body: r.get(16)?,
        created_at: r.get(17)?,
        next_attempt_at: r.get(18)?,
        message_id: r.get(19)?,
    })
}
