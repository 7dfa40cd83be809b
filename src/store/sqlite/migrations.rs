//! Schema migrations, versioned in the binary and tracked with `PRAGMA user_version`, and the
//! schema they lead to (`schema.sql`), which makes a new store in one go.
//!
//! To change the schema: append a new entry to `MIGRATIONS` (never edit a released one) and make
//! `schema.sql` what the migrations now leave; `the_baseline_is_what_the_migrations_make` fails
//! until the two agree. A store's pending steps run in one transaction together with the version
//! bump, so a crash or a failed step leaves the previous version intact.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// SQL for column `$x` as its 16 bytes when it holds a UUID in canonical form (lowercase,
/// hyphenated: what `canonical_uuid` in the SQLite backend stores as bytes), else unchanged.
macro_rules! uuid_bytes {
    ($x:literal) => {
        concat!(
            "CASE WHEN length(",
            $x,
            ") = 36 AND ",
            $x,
            " = lower(",
            $x,
            ") AND substr(",
            $x,
            ", 9, 1) = '-' AND substr(",
            $x,
            ", 14, 1) = '-' AND substr(",
            $x,
            ", 19, 1) = '-' AND substr(",
            $x,
            ", 24, 1) = '-' AND length(unhex(replace(",
            $x,
            ", '-', ''))) = 16 THEN unhex(replace(",
            $x,
            ", '-', '')) ELSE ",
            $x,
            " END"
        )
    };
}

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: webhooks, events, delivery log.
    r#"
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        target_url TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL,
        events TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_secret_expires_at INTEGER,
        headers TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        failure_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        webhook_id TEXT NOT NULL,
        provider_event_id TEXT,
        event TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        headers TEXT NOT NULL,
        payload TEXT NOT NULL,
        UNIQUE (webhook_id, provider_event_id)
    );
    CREATE INDEX events_by_webhook ON events (webhook_id, seq);
    CREATE INDEX events_by_type ON events (event, seq);
    CREATE TABLE deliveries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        webhook_id TEXT NOT NULL,
        event_id TEXT,
        event TEXT,
        direction TEXT NOT NULL,
        trigger TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        url TEXT NOT NULL,
        status TEXT NOT NULL,
        status_code INTEGER,
        duration_ms INTEGER,
        error TEXT,
        request_headers TEXT NOT NULL DEFAULT '{}',
        request_body TEXT,
        response_headers TEXT NOT NULL DEFAULT '{}',
        response_body TEXT,
        created_at INTEGER NOT NULL,
        next_attempt_at INTEGER
    );
    CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, seq);
    CREATE INDEX deliveries_by_status ON deliveries (status, next_attempt_at);
    "#,
    // 2: the outbound queue. A message is one event for one outbound webhook, its body fixed at
    // creation; each attempt to send it is a delivery row, written (pending) before it is sent.
    r#"
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        event TEXT NOT NULL,
        event_id TEXT,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE deliveries ADD COLUMN message_id TEXT;
    ALTER TABLE deliveries ADD COLUMN lease_until INTEGER;
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX deliveries_by_message ON deliveries (message_id);
    ALTER TABLE webhooks ADD COLUMN forward_to TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE webhooks ADD COLUMN first_failure_at INTEGER;
    ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;
    "#,
    // 3: the delivery log's common query, one webhook's failures newest first, by index.
    r#"
    CREATE INDEX deliveries_by_webhook_status ON deliveries (webhook_id, status, seq);
    "#,
    // 4: the webhook change log, read by the change feed (`Cluster::changes_since`): one row per
    // committed change to a webhook (create, update, rotate, health, delete). Receipts written
    // from now on say `received` as their trigger: they have none.
    r#"
    CREATE TABLE webhook_changes (
        rev INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook_id TEXT NOT NULL,
        changed_at INTEGER NOT NULL
    );
    UPDATE deliveries SET trigger = 'received' WHERE direction = 'inbound';
    "#,
    // 5: many processes on one store. The store's identity (siblings recognise each other by
    // it), the live instances (heartbeats) and who holds each lease, and locks for singleton
    // periodic jobs.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        heartbeat_at INTEGER NOT NULL
    );
    ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
    CREATE TABLE job_locks (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until INTEGER NOT NULL
    );
    "#,
    // 6: retention. Pruning finds old rows by time through these indexes, and an event's
    // receipts by event id.
    r#"
    CREATE INDEX events_by_received ON events (received_at);
    CREATE INDEX deliveries_by_created ON deliveries (created_at);
    CREATE INDEX deliveries_by_event ON deliveries (event_id) WHERE event_id IS NOT NULL;
    CREATE INDEX messages_by_created ON messages (created_at);
    "#,
    // 7: send_event's idempotency keys, with the result of the first call.
    r#"
    CREATE TABLE idempotency_keys (
        key TEXT PRIMARY KEY,
        result TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX idempotency_by_created ON idempotency_keys (created_at);
    "#,
    // 8: MCP Events webhook subscriptions. Each has an outbound webhook row with the same id.
    r#"
    CREATE TABLE event_subscriptions (
        id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        name TEXT NOT NULL,
        arguments TEXT NOT NULL,
        cursor INTEGER NOT NULL,
        not_before INTEGER,
        expires_at INTEGER,
        created_at INTEGER NOT NULL,
        refreshed_at INTEGER NOT NULL
    );
    "#,
    // 9: an accepted request is one row, its event. `request` marks events a request brought
    // (operational events have none); the receipts those requests wrote before are dropped,
    // since the log now reads them from the events (their ids become the events' ids).
    r#"
    ALTER TABLE events ADD COLUMN request INTEGER NOT NULL DEFAULT 0;
    UPDATE events SET request = 1 WHERE id IN (SELECT event_id FROM deliveries
        WHERE direction = 'inbound' AND event_id IS NOT NULL AND error IS NULL);
    DELETE FROM deliveries WHERE direction = 'inbound' AND error IS NULL
        AND event_id IN (SELECT id FROM events);
    "#,
    // 10: an inbound webhook may refuse signatures over a re-serialised body.
    r#"
    ALTER TABLE webhooks ADD COLUMN accept_compact_signatures INTEGER NOT NULL DEFAULT 1;
    "#,
    // 11: compact event rows. An event names its webhook by an integer key (`webhook_keys`:
    // never reused nor deleted, since events outlive their webhook) instead of a 36-character
    // text id repeated in the row and two of its indexes, and its id is its UUID's 16 bytes
    // (in `deliveries.event_id` and `messages.event_id` too; an id that is not a UUID in
    // canonical form stays text). Retention walks `seq`, so the `received_at` index goes
    // (`store::retention`). `event_rows` is what readers see: the row with its webhook's id.
    // The table is rebuilt (a column in a UNIQUE constraint cannot be dropped) keeping every
    // seq and the highest seq ever handed out.
    concat!(
        r#"
    CREATE TABLE webhook_keys (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);
    INSERT INTO webhook_keys (id) SELECT id FROM webhooks UNION SELECT webhook_id FROM events;
    CREATE TABLE events_compact (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id BLOB NOT NULL UNIQUE,
        webhook INTEGER NOT NULL,
        provider_event_id TEXT,
        event TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        headers TEXT NOT NULL,
        payload TEXT NOT NULL,
        request INTEGER NOT NULL DEFAULT 0,
        UNIQUE (webhook, provider_event_id)
    );
    INSERT INTO events_compact (seq, id, webhook, provider_event_id, event, received_at,
            headers, payload, request)
        SELECT e.seq, "#,
        uuid_bytes!("e.id"),
        r#", k.key, e.provider_event_id, e.event, e.received_at, e.headers,
            e.payload, e.request
        FROM events e JOIN webhook_keys k ON k.id = e.webhook_id ORDER BY e.seq;
    CREATE TEMP TABLE events_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'events';
    DROP TABLE events;
    ALTER TABLE events_compact RENAME TO events;
    DELETE FROM sqlite_sequence WHERE name IN ('events', 'events_compact');
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'events', MAX(COALESCE((SELECT MAX(seq) FROM events), 0),
                             COALESCE((SELECT seq FROM temp.events_seq), 0));
    DROP TABLE temp.events_seq;
    CREATE INDEX events_by_webhook ON events (webhook, seq);
    CREATE INDEX events_by_type ON events (event, seq);
    CREATE VIEW event_rows AS
        SELECT e.seq, e.id, k.id AS webhook_id, e.provider_event_id, e.event, e.received_at,
            e.headers, e.payload, e.request
        FROM events e JOIN webhook_keys k ON k.key = e.webhook;
    UPDATE deliveries SET event_id = "#,
        uuid_bytes!("event_id"),
        r#" WHERE event_id IS NOT NULL;
    UPDATE messages SET event_id = "#,
        uuid_bytes!("event_id"),
        r#" WHERE event_id IS NOT NULL;
    "#
    ),
    // 12: an outbound webhook's content filter (`model::Filter` as JSON; NULL: none).
    r#"
    ALTER TABLE webhooks ADD COLUMN filter TEXT;
    "#,
    // 13: principals own their data (`store::webhooks::OWNERS_MIGRATION`, PostgreSQL's 9).
    crate::store::webhooks::OWNERS_MIGRATION,
    // 14: retention marks how far it pruned (`store::events::PRUNED_MIGRATION`, PostgreSQL's
    // 10), instead of readers taking the lowest kept `seq` for it.
    crate::store::events::PRUNED_MIGRATION,
    // 15: one index less on every attempt. Each query of pending attempts (claims, the next due
    // time, the queue's depth, leases freed) uses `deliveries_due`, which holds only pending
    // rows; a page of the log by status alone reads newest first by `seq` (as on PostgreSQL,
    // which never had this index) instead of sorting every row of that status. Every attempt's
    // insert and completion (status and due time both change) updated this index too.
    r#"
    DROP INDEX IF EXISTS deliveries_by_status;
    "#,
];

/// Whether the database has no table, index or view yet: a new file.
pub(super) fn is_empty(c: &Connection) -> Result<bool> {
    let objects: i64 = c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    Ok(objects == 0)
}

/// The schema every step of `MIGRATIONS` leads to, for a new store.
const SCHEMA: &str = include_str!("schema.sql");

/// Brings the schema up to date in one IMMEDIATE transaction that reads the version inside it,
/// so that of several processes opening a new store at once one makes it and the others, waiting
/// on the write lock, find it made. An empty database gets `SCHEMA` (one step instead of every
/// table rebuild and column added since the first release: this is most of a first start's
/// time); a store gets its pending steps, and an upgrade that fails at any step leaves it as it
/// was.
pub fn apply(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > MIGRATIONS.len() as i64 {
        return Err(Error::Internal(format!(
            "the store's schema version {current} is newer than this binary knows ({}); \
             upgrade webhook-mcp or point --data-dir elsewhere",
            MIGRATIONS.len()
        )));
    }
    let pending = &MIGRATIONS[current as usize..];
    if pending.is_empty() {
        return Ok(());
    }
    let empty = current == 0 && is_empty(&tx)?;
    if empty {
        tx.execute_batch(SCHEMA)?;
    } else {
        for sql in pending {
            tx.execute_batch(sql)?;
        }
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    if empty {
        tracing::info!(version = MIGRATIONS.len(), "made a new store");
    } else {
        tracing::info!(
            from = current,
            to = MIGRATIONS.len(),
            "applied store migrations"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    /// Migration 11's SQL turns into bytes exactly the ids the backend stores as bytes.
    #[test]
    fn the_migration_and_the_backend_agree_on_which_ids_are_bytes() {
        let c = Connection::open_in_memory().unwrap();
        let made = crate::model::EventId::generate().as_str().to_string();
        let mut no_hyphens = made.replace('-', "");
        no_hyphens.push_str("abcd");
        for text in [
            made.clone(),
            made.to_uppercase(),
            "e1".into(),
            no_hyphens,
            format!("{}-", &made[..35]),
            made.replacen('-', "g", 1),
        ] {
            let (ty, bytes): (String, Option<Vec<u8>>) = c
                .query_row(
                    concat!(
                        "SELECT typeof(",
                        uuid_bytes!("?1"),
                        "), ",
                        uuid_bytes!("?1")
                    ),
                    [&text],
                    |r| Ok((r.get(0)?, r.get(1).ok())),
                )
                .unwrap();
            let rust = super::super::canonical_uuid(&text);
            assert_eq!(ty == "blob", rust.is_some(), "{text}");
            if let Some(u) = rust {
                assert_eq!(bytes.unwrap(), u.as_bytes().to_vec());
            }
        }
    }

    /// The schema as a reader of the database sees it: every table, index and view with its SQL
    /// (whitespace, quotes and the layout `ALTER TABLE … ADD COLUMN` leaves aside), the rows the
    /// steps put in `meta` and `sqlite_sequence`, and the version.
    fn shape(c: &Connection) -> Vec<String> {
        let normal = |sql: &str| {
            let mut out = sql
                .replace('"', "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            for p in ["(", ")", ","] {
                out = out
                    .replace(&format!(" {p}"), p)
                    .replace(&format!("{p} "), p);
            }
            out
        };
        let rows = |sql: &str| -> Vec<String> {
            let mut q = c.prepare(sql).unwrap();
            q.query_map([], |r| {
                let n = r.as_ref().column_count();
                (0..n)
                    .map(|i| r.get::<_, Option<String>>(i).map(|v| v.unwrap_or_default()))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap()
            .map(|r| normal(&r.unwrap().join(" | ")))
            .collect()
        };
        let mut shape = rows(
            "SELECT type, name, tbl_name, sql FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        );
        shape.extend(rows("SELECT 'meta', key FROM meta ORDER BY key"));
        shape.extend(rows(
            "SELECT 'sequence', name, CAST(seq AS TEXT) FROM sqlite_sequence WHERE seq > 0",
        ));
        shape.extend(rows(
            "SELECT 'version', CAST(user_version AS TEXT) FROM pragma_user_version",
        ));
        shape
    }

    /// `schema.sql` is what the migrations make, step by step from an empty database.
    #[test]
    fn the_baseline_is_what_the_migrations_make() {
        let mut stepped = Connection::open_in_memory().unwrap();
        for (n, sql) in MIGRATIONS.iter().enumerate() {
            let tx = stepped.transaction().unwrap();
            tx.execute_batch(sql)
                .unwrap_or_else(|e| panic!("migration {}: {e}", n + 1));
            tx.pragma_update(None, "user_version", n as i64 + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let mut fresh = Connection::open_in_memory().unwrap();
        apply(&mut fresh).unwrap();
        let (stepped, fresh) = (shape(&stepped), shape(&fresh));
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|x| !b.contains(x)).cloned().collect()
        };
        assert!(
            stepped.len() > 20 && stepped == fresh,
            "schema.sql differs from what MIGRATIONS make.\nonly in the migrated store:\n  {}\n\
             only in a new store:\n  {}",
            only(&stepped, &fresh).join("\n  "),
            only(&fresh, &stepped).join("\n  ")
        );
    }

    /// A store at an older version gets the pending steps, not the baseline.
    #[test]
    fn an_older_store_gets_its_pending_steps() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO events (id, webhook_id, event, received_at, headers, payload) \
             VALUES ('e1', 'w1', 't', 1, '{}', '{}')",
            [],
        )
        .unwrap();
        apply(&mut c).unwrap();
        let (webhook, version): (String, i64) = c
            .query_row(
                "SELECT webhook_id, (SELECT user_version FROM pragma_user_version) FROM event_rows",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((webhook.as_str(), version), ("w1", MIGRATIONS.len() as i64));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(apply(&mut conn).is_err());
    }
}
