//! Webhook rows' statements, written once for both backends (`store::sql`): insert, read by id,
//! list, update only the fields given, rotate in one statement, record a change. Each backend
//! runs them in its own transaction with its own locks (SQLite: the write connection;
//! PostgreSQL: the change-log lock, then `NOTIFY`), and decodes rows with `rows::webhook`.

use std::collections::BTreeMap;

use super::rows::{headers_json, Sealed};
use super::sealing::Keyring;
use super::sql::{Arg, Statement};
use super::{json_text, WebhookChange, WebhookFilter};
use crate::model::{enum_text, Direction, Millis, Secret, Webhook, WebhookId};

/// The columns `rows::webhook` reads, in both schemas.
pub(crate) const COLUMNS: &str = "id, direction, target_url, provider, events, description, \
    enabled, secret, previous_secret, previous_secret_expires_at, headers, created_at, \
    updated_at, failure_count, first_failure_at, disabled_reason, forward_to, \
    accept_compact_signatures, filter, owner";

fn text(s: impl Into<String>) -> Arg {
    Arg::Text(s.into())
}

/// A new row, its secrets and headers sealed with `keys`.
pub(crate) fn insert(w: &Webhook, keys: &Keyring) -> Statement {
    let sealed = Sealed::of(w, keys);
    let args = vec![
        text(w.id.as_str()),
        text(enum_text(&w.direction)),
        text(&w.target_url),
        text(enum_text(&w.provider)),
        text(json_text(&w.events)),
        text(&w.description),
        Arg::Bool(w.enabled),
        text(sealed.secret),
        Arg::OptText(sealed.previous_secret),
        Arg::OptInt(w.previous_secret.as_ref().map(|p| p.expires_at)),
        text(sealed.headers),
        Arg::Int(w.created_at),
        Arg::Int(w.updated_at),
        Arg::Int(w.failure_count),
        Arg::OptInt(w.first_failure_at),
        Arg::OptText(w.disabled_reason.clone()),
        text(json_text(&w.forward_to)),
        Arg::Bool(w.accept_compact_signatures),
        Arg::OptText(w.filter.as_ref().map(|f| f.to_text())),
        text(w.owner.as_str()),
    ];
    let marks = vec!["?"; args.len()].join(", ");
    Statement {
        sql: format!("INSERT INTO webhooks ({COLUMNS}) VALUES ({marks})"),
        args,
    }
}

/// The schema step that made principals own their data (`model::principal`), the same text
/// for both backends (SQLite's migration 13, PostgreSQL's 9): a webhook's owner, kept on its
/// key too so its events and log stay its owner's after it is deleted. Every webhook gets its
/// key now (events made them lazily), as does each id in the log; rows from before are the
/// local principal's. (`WHERE true` keeps SQLite from reading `ON CONFLICT` as a join's.)
pub(crate) const OWNERS_MIGRATION: &str = r#"
    ALTER TABLE webhooks ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE webhook_keys ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
    INSERT INTO webhook_keys (id)
        SELECT id FROM webhooks UNION SELECT webhook_id FROM deliveries WHERE true
        ON CONFLICT (id) DO NOTHING;
    CREATE INDEX webhooks_by_owner ON webhooks (owner);
    CREATE INDEX webhook_keys_by_owner ON webhook_keys (owner);
    DROP VIEW event_rows;
    CREATE VIEW event_rows AS
        SELECT e.seq, e.id, k.id AS webhook_id, e.provider_event_id, e.event, e.received_at,
            e.headers, e.payload, e.request, k.owner
        FROM events e JOIN webhook_keys k ON k.key = e.webhook;
    "#;

/// The webhook's key for its events (`webhook_keys`, kept after the webhook is deleted) with its
/// owner, so that its history stays its owner's.
pub(crate) fn key(w: &Webhook) -> Statement {
    Statement {
        sql: "INSERT INTO webhook_keys (id, owner) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
            .into(),
        args: vec![text(w.id.as_str()), text(w.owner.as_str())],
    }
}

/// The owner of a webhook's history, whether or not the webhook still exists; no row for an
/// id that never held one.
pub(crate) fn owner_of(id: &WebhookId) -> Statement {
    Statement {
        sql: "SELECT owner FROM webhook_keys WHERE id = ?".into(),
        args: vec![text(id.as_str())],
    }
}

/// Every webhook's secret columns as stored, as `rows::StoredSecrets::read` reads them
/// (re-sealing).
pub(crate) const ALL_SECRETS: &str = "SELECT id, secret, previous_secret, headers FROM webhooks";

pub(crate) fn by_id(id: &WebhookId) -> Statement {
    Statement {
        sql: format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?"),
        args: vec![text(id.as_str())],
    }
}

/// The webhooks people made (an MCP Events subscription's engine row is not one), oldest first.
pub(crate) fn list(f: &WebhookFilter) -> Statement {
    let mut filters = super::sql::Filters::default();
    filters
        .fixed("id NOT IN (SELECT id FROM event_subscriptions)")
        .add("direction = ?", f.direction.map(|d| text(enum_text(&d))))
        .add("enabled = ?", f.enabled.map(Arg::Bool))
        .add("owner = ?", f.owner.as_ref().map(|o| text(o.as_str())));
    filters.statement(
        &format!("SELECT {COLUMNS} FROM webhooks"),
        "ORDER BY created_at, id",
        vec![],
    )
}

/// Sets only the fields `ch` carries, so that a concurrent change to the others (an
/// auto-disable by the delivery worker, a rotation) is not written over with stale values.
/// `direction` is the row's: one column holds either kind of header map.
pub(crate) fn update(
    id: &WebhookId,
    direction: Direction,
    ch: &WebhookChange,
    keys: &Keyring,
) -> Statement {
    let mut sets: Vec<&str> = vec!["updated_at = ?"];
    let mut args = vec![Arg::Int(ch.updated_at)];
    let mut set = |clause: &'static str, v: Arg| {
        sets.push(clause);
        args.push(v);
    };
    if let Some(u) = &ch.target_url {
        set("target_url = ?", text(u));
    }
    if let Some(e) = &ch.events {
        set("events = ?", text(json_text(e)));
    }
    if let Some(d) = &ch.description {
        set("description = ?", text(d));
    }
    if let Some(e) = ch.enabled {
        set("enabled = ?", Arg::Bool(e));
    }
    if ch.reset_health {
        set("failure_count = ?", Arg::Int(0));
        set("first_failure_at = ?", Arg::OptInt(None));
        set("disabled_reason = ?", Arg::OptText(None));
    }
    let headers = match (direction, &ch.extra_headers, &ch.required_headers) {
        (Direction::Outbound, Some(h), _) => Some(headers_json(direction, h, &BTreeMap::new())),
        (Direction::Inbound, _, Some(h)) => Some(headers_json(direction, &BTreeMap::new(), h)),
        _ => None,
    };
    if let Some(h) = headers {
        set("headers = ?", text(keys.seal(id.as_str(), &h)));
    }
    if let Some(f) = &ch.forward_to {
        set("forward_to = ?", text(json_text(f)));
    }
    if let Some(a) = ch.accept_compact_signatures {
        set("accept_compact_signatures = ?", Arg::Bool(a));
    }
    if let Some(f) = &ch.filter {
        set("filter = ?", Arg::OptText(f.as_ref().map(|f| f.to_text())));
    }
    args.push(text(id.as_str()));
    Statement {
        sql: format!("UPDATE webhooks SET {} WHERE id = ?", sets.join(", ")),
        args,
    }
}

/// A new secret in one statement, so the secret moved to `previous_secret` is the one current
/// at that instant, whatever another writer did just before (the sealed value moves as it is:
/// both columns are bound to the row). No grace: no previous secret.
pub(crate) fn rotate(
    id: &WebhookId,
    secret: &Secret,
    grace_until: Option<Millis>,
    now: Millis,
    keys: &Keyring,
) -> Statement {
    Statement {
        sql: "UPDATE webhooks SET \
                previous_secret = CASE WHEN ? THEN secret ELSE NULL END, \
                previous_secret_expires_at = ?, secret = ?, updated_at = ? \
              WHERE id = ?"
            .into(),
        args: vec![
            Arg::Bool(grace_until.is_some()),
            Arg::OptInt(grace_until),
            text(keys.seal(id.as_str(), secret.expose())),
            Arg::Int(now),
            text(id.as_str()),
        ],
    }
}

/// One row of the change log the change feed reads (`webhook_changes`).
pub(crate) fn record_change(id: &WebhookId, at: Millis) -> Statement {
    Statement {
        sql: "INSERT INTO webhook_changes (webhook_id, changed_at) VALUES (?, ?)".into(),
        args: vec![text(id.as_str()), Arg::Int(at)],
    }
}

pub(crate) fn delete(id: &WebhookId) -> Statement {
    Statement {
        sql: "DELETE FROM webhooks WHERE id = ?".into(),
        args: vec![text(id.as_str())],
    }
}

/// `(id, previous_secret_expires_at)` of every webhook whose rotation grace ended by `now`.
pub(crate) fn expired_previous_secrets(now: Millis) -> Statement {
    Statement {
        sql: "SELECT id, previous_secret_expires_at FROM webhooks \
              WHERE previous_secret_expires_at IS NOT NULL AND previous_secret_expires_at <= ?"
            .into(),
        args: vec![Arg::Int(now)],
    }
}

/// Forgets the previous secret whose grace ended at `expired_at`, unless a newer rotation
/// replaced it meanwhile (then the row no longer matches).
pub(crate) fn forget_previous_secret(id: &WebhookId, expired_at: Millis) -> Statement {
    Statement {
        sql: "UPDATE webhooks SET previous_secret = NULL, previous_secret_expires_at = NULL \
              WHERE id = ? AND previous_secret_expires_at = ?"
            .into(),
        args: vec![text(id.as_str()), Arg::Int(expired_at)],
    }
}

/// `(rev, webhook_id)` of the change log after revision `after`, oldest first.
pub(crate) fn changes_after(after: i64, limit: usize) -> Statement {
    Statement {
        sql: "SELECT rev, webhook_id FROM webhook_changes WHERE rev > ? ORDER BY rev LIMIT ?"
            .into(),
        args: vec![Arg::Int(after), Arg::Int(limit as i64)],
    }
}

/// Writes a row's re-sealed secret columns (`secrets rotate-key`, sealing at open).
pub(crate) fn reseal(new: &super::rows::StoredSecrets) -> Statement {
    Statement {
        sql: "UPDATE webhooks SET secret = ?, previous_secret = ?, headers = ? WHERE id = ?".into(),
        args: vec![
            text(&new.secret),
            Arg::OptText(new.previous_secret.clone()),
            text(&new.headers),
            text(&new.id),
        ],
    }
}
