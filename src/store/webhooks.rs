//! Webhook rows.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::Store;
use crate::error::Result;
use crate::model::{Direction, Provider, Webhook};

const COLUMNS: &str = "id, direction, target_url, provider, events, description, enabled, secret, \
    previous_secret, previous_secret_expires_at, headers, created_at, updated_at, failure_count, \
    first_failure_at, disabled_reason, forward_to";

impl Store {
    pub async fn insert_webhook(&self, w: Webhook) -> Result<()> {
        self.call(move |c| {
            c.execute(
                &format!("INSERT INTO webhooks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
                params![
                    w.id,
                    w.direction.as_str(),
                    w.target_url,
                    w.provider.as_str(),
                    serde_json::to_string(&w.events).unwrap_or_default(),
                    w.description,
                    w.enabled,
                    w.secret,
                    w.previous_secret,
                    w.previous_secret_expires_at,
                    serde_json::to_string(&w.headers).unwrap_or_default(),
                    w.created_at,
                    w.updated_at,
                    w.failure_count,
                    w.first_failure_at,
                    w.disabled_reason,
                    serde_json::to_string(&w.forward_to).unwrap_or_default(),
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Writes every mutable field of `w` back; returns false when the row is gone.
    pub async fn update_webhook(&self, w: Webhook) -> Result<bool> {
        self.call(move |c| {
            let n = c.execute(
                "UPDATE webhooks SET target_url = ?2, events = ?3, description = ?4, enabled = ?5, \
                 secret = ?6, previous_secret = ?7, previous_secret_expires_at = ?8, headers = ?9, \
                 updated_at = ?10, failure_count = ?11, first_failure_at = ?12, disabled_reason = ?13, \
                 forward_to = ?14 WHERE id = ?1",
                params![
                    w.id,
                    w.target_url,
                    serde_json::to_string(&w.events).unwrap_or_default(),
                    w.description,
                    w.enabled,
                    w.secret,
                    w.previous_secret,
                    w.previous_secret_expires_at,
                    serde_json::to_string(&w.headers).unwrap_or_default(),
                    w.updated_at,
                    w.failure_count,
                    w.first_failure_at,
                    w.disabled_reason,
                    serde_json::to_string(&w.forward_to).unwrap_or_default(),
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn get_webhook(&self, id: &str) -> Result<Option<Webhook>> {
        let id = id.to_string();
        self.read(move |c| get(c, &id)).await
    }

    pub async fn list_webhooks(
        &self,
        direction: Option<Direction>,
        enabled: Option<bool>,
    ) -> Result<Vec<Webhook>> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM webhooks \
                 WHERE (?1 IS NULL OR direction = ?1) AND (?2 IS NULL OR enabled = ?2) \
                 ORDER BY created_at, id"
            ))?;
            let rows =
                stmt.query_map(params![direction.map(Direction::as_str), enabled], from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Deletes the webhook; its events and delivery log stay (they are history).
    pub async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.call(move |c| Ok(c.execute("DELETE FROM webhooks WHERE id = ?1", [id])? == 1))
            .await
    }
}

pub(super) fn get(c: &Connection, id: &str) -> Result<Option<Webhook>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()?,
    )
}

fn from_row(r: &Row) -> rusqlite::Result<Webhook> {
    let direction: String = r.get(1)?;
    let provider: String = r.get(3)?;
    let events: String = r.get(4)?;
    let headers: String = r.get(10)?;
    Ok(Webhook {
        id: r.get(0)?,
        direction: Direction::parse(&direction).ok_or_else(|| bad_column(1, &direction))?,
        target_url: r.get(2)?,
        provider: Provider::parse(&provider).ok_or_else(|| bad_column(3, &provider))?,
        events: serde_json::from_str(&events).map_err(|_| bad_column(4, &events))?,
        description: r.get(5)?,
        enabled: r.get(6)?,
        secret: r.get(7)?,
        previous_secret: r.get(8)?,
        previous_secret_expires_at: r.get(9)?,
        headers: serde_json::from_str(&headers).map_err(|_| bad_column(10, &headers))?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        failure_count: r.get(13)?,
        first_failure_at: r.get(14)?,
        disabled_reason: r.get(15)?,
        forward_to: {
            let f: String = r.get(16)?;
            serde_json::from_str(&f).map_err(|_| bad_column(16, &f))?
        },
    })
}

pub(super) fn bad_column(index: usize, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("unexpected stored value {value:?}").into(),
    )
}
