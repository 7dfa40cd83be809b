-- The SQLite schema as `MIGRATIONS` leave it, made in one go for a new store (`migrations.rs`:
-- `apply` runs this on an empty database instead of every step). The test
-- `the_baseline_is_what_the_migrations_make` keeps the two the same: a migration added without
-- changing this file fails it, with the difference printed.

-- Webhooks, both directions. Secrets are sealed (`store::sealing`); `owner` is the principal.
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
    failure_count INTEGER NOT NULL DEFAULT 0,
    forward_to TEXT NOT NULL DEFAULT '[]',
    first_failure_at INTEGER,
    disabled_reason TEXT,
    accept_compact_signatures INTEGER NOT NULL DEFAULT 1,
    filter TEXT,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE INDEX webhooks_by_owner ON webhooks (owner);

-- Every webhook id that ever held events or log rows, with an integer key for its events; never
-- reused nor deleted, since history outlives its webhook.
CREATE TABLE webhook_keys (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE INDEX webhook_keys_by_owner ON webhook_keys (owner);

-- Events: the body byte for byte; `id` is its UUID's 16 bytes (text for an id that is not a
-- canonical UUID); `request` marks events a request brought (the request's receipt is the
-- event). `seq` is the change feed's cursor.
CREATE TABLE events (
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
CREATE INDEX events_by_webhook ON events (webhook, seq);
CREATE INDEX events_by_type ON events (event, seq);
CREATE VIEW event_rows AS
    SELECT e.seq, e.id, k.id AS webhook_id, e.provider_event_id, e.event, e.received_at,
        e.headers, e.payload, e.request, k.owner
    FROM events e JOIN webhook_keys k ON k.key = e.webhook;

-- The delivery log: refused and duplicate requests, and every attempt to send a message
-- (pending ones are the queue).
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
    next_attempt_at INTEGER,
    message_id TEXT,
    lease_until INTEGER,
    lease_owner TEXT
);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, seq);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_message ON deliveries (message_id);
CREATE INDEX deliveries_by_webhook_status ON deliveries (webhook_id, status, seq);
CREATE INDEX deliveries_by_created ON deliveries (created_at);
CREATE INDEX deliveries_by_event ON deliveries (event_id) WHERE event_id IS NOT NULL;

-- The outbound queue's messages: one event for one outbound webhook, its body fixed at creation.
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    event TEXT NOT NULL,
    event_id TEXT,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX messages_by_created ON messages (created_at);

-- The webhook change log the change feed reads.
CREATE TABLE webhook_changes (
    rev INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    changed_at INTEGER NOT NULL
);

-- Many processes on one store: its identity, live instances, singleton job locks.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    heartbeat_at INTEGER NOT NULL
);
CREATE TABLE job_locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL
);

-- send_event's idempotency keys, with the result of the first call.
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX idempotency_by_created ON idempotency_keys (created_at);

-- MCP Events webhook subscriptions; each has an outbound webhook row with the same id.
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
