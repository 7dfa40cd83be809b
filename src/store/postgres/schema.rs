//! The PostgreSQL schema, versioned in the binary like the SQLite one. Applied under a
//! session advisory lock, so that of several instances starting at once one migrates and the
//! others wait and find it done.
//!
//! Types mirror the SQLite schema so that both backends read and write the same domain values:
//! instants are BIGINT milliseconds, maps and lists are JSON text (TEXT, not JSONB: an event's
//! payload is kept byte for byte, key order and all).

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: everything, at the SQLite schema's version 5.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('store_id', md5(random()::text || clock_timestamp()::text));
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        target_url TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL,
        events TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_secret_expires_at BIGINT,
        headers TEXT NOT NULL DEFAULT '{}',
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        failure_count BIGINT NOT NULL DEFAULT 0,
        first_failure_at BIGINT,
        disabled_reason TEXT,
        forward_to TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE webhook_changes (
        rev BIGSERIAL PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        changed_at BIGINT NOT NULL
    );
    CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        webhook_id TEXT NOT NULL,
        provider_event_id TEXT,
        event TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        headers TEXT NOT NULL,
        payload TEXT NOT NULL,
        UNIQUE (webhook_id, provider_event_id)
    );
    CREATE INDEX events_by_webhook ON events (webhook_id, seq);
    CREATE INDEX events_by_type ON events (event, seq);
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        event TEXT NOT NULL,
        event_id TEXT,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE deliveries (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        webhook_id TEXT NOT NULL,
        event_id TEXT,
        event TEXT,
        direction TEXT NOT NULL,
        trigger TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        url TEXT NOT NULL,
        status TEXT NOT NULL,
        status_code BIGINT,
        duration_ms BIGINT,
        error TEXT,
        request_headers TEXT NOT NULL DEFAULT '{}',
        request_body TEXT,
        response_headers TEXT NOT NULL DEFAULT '{}',
        response_body TEXT,
        created_at BIGINT NOT NULL,
        next_attempt_at BIGINT,
        message_id TEXT,
        lease_until BIGINT,
        lease_owner TEXT
    );
    CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, seq);
    CREATE INDEX deliveries_by_webhook_status ON deliveries (webhook_id, status, seq);
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX deliveries_by_message ON deliveries (message_id);
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        heartbeat_at BIGINT NOT NULL
    );
    CREATE TABLE job_locks (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until BIGINT NOT NULL
    );
    "#,
    // 2: retention. Pruning finds old rows by time through these indexes, and an event's
    // receipts by event id.
    r#"
    CREATE INDEX events_by_received ON events (received_at);
    CREATE INDEX deliveries_by_created ON deliveries (created_at);
    CREATE INDEX deliveries_by_event ON deliveries (event_id) WHERE event_id IS NOT NULL;
    CREATE INDEX messages_by_created ON messages (created_at);
    "#,
    // 3: send_event's idempotency keys, with the result of the first call.
    r#"
    CREATE TABLE idempotency_keys (
        key TEXT PRIMARY KEY,
        result TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX idempotency_by_created ON idempotency_keys (created_at);
    "#,
    // 4: MCP Events webhook subscriptions. Each has an outbound webhook row with the same id.
    r#"
    CREATE TABLE event_subscriptions (
        id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        name TEXT NOT NULL,
        arguments TEXT NOT NULL,
        cursor BIGINT NOT NULL,
        not_before BIGINT,
        expires_at BIGINT,
        created_at BIGINT NOT NULL,
        refreshed_at BIGINT NOT NULL
    );
    "#,
    // 5: an accepted request is one row, its event (as SQLite's migration 9). `request` marks
    // events a request brought; the receipts those requests wrote before are dropped, since
    // the log now reads them from the events (their ids become the events' ids).
    r#"
    ALTER TABLE events ADD COLUMN request BOOLEAN NOT NULL DEFAULT FALSE;
    UPDATE events SET request = TRUE WHERE id IN (SELECT event_id FROM deliveries
        WHERE direction = 'inbound' AND event_id IS NOT NULL AND error IS NULL);
    DELETE FROM deliveries WHERE direction = 'inbound' AND error IS NULL
        AND event_id IN (SELECT id FROM events);
    "#,
    // 6: an inbound webhook may refuse signatures over a re-serialised body (SQLite's 10).
    r#"
    ALTER TABLE webhooks ADD COLUMN accept_compact_signatures BOOLEAN NOT NULL DEFAULT TRUE;
    "#,
    // 7: compact event rows (SQLite's 11): an event names its webhook by an integer key
    // (`webhook_keys`, never reused nor deleted) instead of its text id; readers see
    // `event_rows`, the row with its webhook's id; retention walks `seq` (no `received_at`
    // index). Dropping the column drops its unique
    // constraint and index, made again on the key.
    r#"
    CREATE TABLE webhook_keys (key BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE);
    INSERT INTO webhook_keys (id) SELECT id FROM webhooks UNION SELECT webhook_id FROM events;
    ALTER TABLE events ADD COLUMN webhook BIGINT;
    UPDATE events e SET webhook = k.key FROM webhook_keys k WHERE k.id = e.webhook_id;
    ALTER TABLE events ALTER COLUMN webhook SET NOT NULL;
    ALTER TABLE events DROP COLUMN webhook_id;
    ALTER TABLE events ADD CONSTRAINT events_webhook_provider_event_id_key
        UNIQUE (webhook, provider_event_id);
    CREATE INDEX events_by_webhook ON events (webhook, seq);
    DROP INDEX events_by_received;
    CREATE VIEW event_rows AS
        SELECT e.seq, e.id, k.id AS webhook_id, e.provider_event_id, e.event, e.received_at,
            e.headers, e.payload, e.request
        FROM events e JOIN webhook_keys k ON k.key = e.webhook;
    "#,
    // 8: an outbound webhook's content filter (SQLite's 12).
    r#"
    ALTER TABLE webhooks ADD COLUMN filter TEXT;
    "#,
    // 9: principals own their data (`store::webhooks::OWNERS_MIGRATION`, SQLite's 13).
    crate::store::webhooks::OWNERS_MIGRATION,
    // 10: retention marks how far it pruned (`store::events::PRUNED_MIGRATION`, SQLite's 14).
    crate::store::events::PRUNED_MIGRATION,
    // 11: ingest without a cluster-wide lock (see the backend's module doc). An event's `seq`
    // is `event_seq(place)`: its transaction's id × 1024 + its place in the transaction's one
    // insert (1 to 1023; `MAX_BATCH` stays below), plus a base that puts every new `seq` above
    // those the sequence handed out, so `seq` order is transaction order. Every ingest
    // transaction holds the store's `ingest_lock` (advisory, shared: writers never wait for
    // each other) from before it has an id. `settled_seq()`: no seq below it can be committed
    // any more (the lowest id among the holders, or the next id to be handed out); a reader
    // reads it in one statement and the events below it in a later one.
    r#"
    ALTER TABLE events ALTER COLUMN seq DROP DEFAULT;
    DROP SEQUENCE IF EXISTS events_seq_seq;
    INSERT INTO meta (key, value) VALUES ('ingest_lock', floor(random() * 2147483647)::int4::text);
    DO $migration$
    DECLARE
        base BIGINT;
        lock INT4 := (SELECT value::int4 FROM meta WHERE key = 'ingest_lock');
    BEGIN
        SELECT GREATEST(0, COALESCE(MAX(seq), 0) + 1 - pg_current_xact_id()::text::bigint * 1024)
            INTO base FROM events;
        EXECUTE format(
            'CREATE FUNCTION event_seq(place BIGINT) RETURNS BIGINT LANGUAGE sql VOLATILE AS %L',
            format('SELECT %s + pg_current_xact_id()::text::bigint * 1024 + place', base));
        -- The holders' ids are 32-bit in pg_locks: widened against the snapshot's next id
        -- (within 2^31 of it either way; a running id can be above it).
        EXECUTE format(
            'CREATE FUNCTION settled_seq() RETURNS BIGINT LANGUAGE sql VOLATILE AS %L',
            format($body$
                WITH next AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS x),
                locks AS MATERIALIZED (
                    SELECT pid, locktype, transactionid FROM pg_locks
                    WHERE granted AND ((locktype = 'advisory' AND classid = 2003133032
                            AND objid = %s AND objsubid = 2)
                        OR (locktype = 'transactionid' AND mode = 'ExclusiveLock'))),
                holders AS (
                    SELECT t.transactionid::text::bigint AS x32 FROM locks a
                    JOIN locks t ON t.pid = a.pid AND t.locktype = 'transactionid'
                    WHERE a.locktype = 'advisory')
                SELECT %s + 1024 * LEAST(next.x, MIN(next.x
                    + (h.x32 - next.x %% 4294967296 + 6442450944) %% 4294967296 - 2147483648))
                FROM next LEFT JOIN holders h ON TRUE GROUP BY next.x
            $body$, lock::oid, base));
    END
    $migration$;
    "#,
    // 12: `settled_seq()` in PL/pgSQL, same body. A SQL function that cannot be inlined (its
    // body is a query with a CTE) is parsed and planned again on every call; PL/pgSQL keeps
    // the plan for the session. Every reader by cursor calls it, the change feed once per
    // commit: it took a fifth of PostgreSQL's CPU under ingest load.
    r#"
    DO $migration$
    DECLARE
        body TEXT := (SELECT prosrc FROM pg_proc WHERE oid = 'settled_seq()'::regprocedure);
    BEGIN
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION settled_seq() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS %L',
            format('BEGIN RETURN (%s); END', body));
    END
    $migration$;
    "#,
    // 13: `settled_seq_others()`, for the ingest writer inside its own open batch, after its
    // insert: no other batch can commit a seq below it any more. Read first, it tells whether
    // any other batch can still commit below the batch's events; if none can, the newest event
    // below its first, read next, is what the batch follows on from, and this process's change
    // feed announces it without reading it back (`CommittedEvents::follows`). Another holder of
    // the ingest lock bounds it by its id; one whose id is not (yet) seen in `pg_locks` makes
    // it 0 (unknown); with none it is as high as it goes. A batch that takes the lock later
    // gets an id above this one's (which is assigned), so it never matters.
    r#"
    DO $migration$
    DECLARE
        lock INT4 := (SELECT value::int4 FROM meta WHERE key = 'ingest_lock');
        base BIGINT := (SELECT event_seq(0) - pg_current_xact_id()::text::bigint * 1024);
    BEGIN
        EXECUTE format(
            'CREATE FUNCTION settled_seq_others() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS %L',
            format($body$ BEGIN RETURN (
                WITH me AS (SELECT pg_current_xact_id()::text::bigint AS x),
                locks AS MATERIALIZED (
                    SELECT pid, locktype, transactionid FROM pg_locks
                    WHERE granted AND pid <> pg_backend_pid()
                        AND ((locktype = 'advisory' AND classid = 2003133032
                            AND objid = %s AND objsubid = 2)
                        OR (locktype = 'transactionid' AND mode = 'ExclusiveLock'))),
                others AS (
                    SELECT t.transactionid::text::bigint AS x32 FROM locks a
                    LEFT JOIN locks t ON t.pid = a.pid AND t.locktype = 'transactionid'
                    WHERE a.locktype = 'advisory')
                SELECT CASE
                    WHEN NOT EXISTS (SELECT 1 FROM others) THEN 9223372036854775807
                    WHEN EXISTS (SELECT 1 FROM others WHERE x32 IS NULL) THEN 0
                    ELSE %s + 1024 * (SELECT MIN(me.x
                        + (o.x32 - me.x %% 4294967296 + 6442450944) %% 4294967296 - 2147483648)
                        FROM me, others o)
                    END
            ); END $body$, lock::oid, base));
    END
    $migration$;
    "#,
    // 14: both bounds first from the reader's snapshot, without `pg_locks`. Every transaction
    // with an id below the snapshot's xmin has ended, and every later one gets a higher id, so
    // no seq below `event_seq` of xmin can be committed any more, whatever the transaction. When
    // that bound already lies above every committed event (the reader has nothing to wait for),
    // it is the answer; only when an older transaction is still open are the lock holders read
    // (`…_by_locks`, schemas 12 and 13), so that only this store's batches hold readers back.
    // Reading `pg_locks` takes every lock-table partition and scans the table: at two instances
    // it was the largest part of PostgreSQL's rise in CPU per event.
    r#"
    DO $migration$
    DECLARE
        base BIGINT := (SELECT event_seq(0) - pg_current_xact_id()::text::bigint * 1024);
    BEGIN
        ALTER FUNCTION settled_seq() RENAME TO settled_seq_by_locks;
        EXECUTE format(
            'CREATE FUNCTION settled_seq() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS %L',
            format($body$
            DECLARE
                low BIGINT := %s + 1024 * pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
            BEGIN
                IF low > (SELECT COALESCE(MAX(seq), 0) FROM events) THEN
                    RETURN low;
                END IF;
                RETURN settled_seq_by_locks();
            END $body$, base));
        ALTER FUNCTION settled_seq_others() RENAME TO settled_seq_others_by_locks;
        EXECUTE format(
            'CREATE FUNCTION settled_seq_others() RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS %L',
            format($body$
            DECLARE
                me BIGINT := pg_current_xact_id()::text::bigint;
            BEGIN
                IF pg_snapshot_xmin(pg_current_snapshot())::text::bigint >= me THEN
                    RETURN %s + 1024 * (me + 1);
                END IF;
                RETURN settled_seq_others_by_locks();
            END $body$, base));
    END
    $migration$;
    "#,
    // 15: an ingest batch tells the other instances what it committed (`announce_commit`, run
    // right after its commit on the same connection). The batch marks where its `seq`s begin
    // (`event_seq(0)`, in the session setting `webhook_mcp.batch`, which a rollback undoes).
    // The function says what the batch's events follow on from (read after the commit:
    // `settled_seq()` above the newest of them, then the newest event below the first, in a
    // later statement) and, when every event of the batch was stored (so event `place` has
    // `seq` low + place), sends the writer's notices in one `NOTIFY` per part:
    // `<tag> <follows or -> <low> <part>`, each part following on from the one before. Else
    // (duplicates skipped, or notices too large) it sends the tag alone, and the listeners
    // read the store. Returns what the batch follows on from (NULL: unknown, or nothing
    // stored), for this process's own feed.
    r#"
    CREATE FUNCTION announce_commit(channel TEXT, tag TEXT, events INT, parts TEXT[],
        starts INT[]) RETURNS BIGINT
    LANGUAGE plpgsql VOLATILE AS $fn$
    DECLARE
        low BIGINT := NULLIF(current_setting('webhook_mcp.batch', true), '')::bigint;
        first_seq BIGINT;
        newest BIGINT;
        stored BIGINT;
        follows BIGINT;
    BEGIN
        IF low IS NULL THEN
            RETURN NULL;
        END IF;
        PERFORM set_config('webhook_mcp.batch', '', false);
        SELECT MIN(seq), MAX(seq), COUNT(*) INTO first_seq, newest, stored
            FROM events WHERE seq > low AND seq < low + 1024;
        IF stored = 0 THEN
            RETURN NULL;
        END IF;
        IF settled_seq() > newest THEN
            follows := (SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq < first_seq);
        END IF;
        IF stored = events AND newest = low + events AND parts IS NOT NULL THEN
            FOR i IN 1 .. COALESCE(array_length(parts, 1), 0) LOOP
                PERFORM pg_notify(channel, tag || ' ' || CASE WHEN i = 1
                    THEN COALESCE(follows::text, '-') ELSE (low + starts[i] - 1)::text END
                    || ' ' || low || ' ' || parts[i]);
            END LOOP;
        ELSE
            PERFORM pg_notify(channel, tag);
        END IF;
        RETURN follows;
    END
    $fn$;
    "#,
    // 16: a batch's lock, mark and insert in one statement (`ingest_batch`), so that a batch
    // without relays is two statements, each answered with one write to the socket: this one
    // (committed on its own, an implicit transaction) and `announce_commit`. Six statements
    // each ended by a Sync cost six flushes and as many wake-ups of the writer on each side,
    // a third of an ingest backend's CPU at two instances. The lock comes first, before the
    // transaction has an id; the mark (`event_seq(0)`) gives it one; the insert is
    // `store::events::INSERT_COLUMNS` at this version, one array per column, as before. A
    // later change to those columns replaces this function in a new step.
    r#"
    CREATE FUNCTION ingest_batch(lock_class INT, lock_key INT, ids TEXT[], webhooks BIGINT[],
        provider_event_ids TEXT[], types TEXT[], headerses TEXT[], payloads TEXT[],
        received BIGINT[], requests BOOL[]) RETURNS TABLE (id TEXT, seq BIGINT)
    LANGUAGE plpgsql VOLATILE AS $fn$
    #variable_conflict use_column
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(lock_class, lock_key);
        PERFORM set_config('webhook_mcp.batch', event_seq(0)::text, false);
        RETURN QUERY
        INSERT INTO events AS e (seq, id, webhook, provider_event_id, event, headers, payload,
            received_at, request)
        SELECT event_seq(u.place), u.id, u.webhook, u.provider_event_id, u.event, u.headers,
            u.payload, u.received_at, u.request
        FROM unnest($3, $4, $5, $6, $7, $8, $9, $10) WITH ORDINALITY
            AS u(id, webhook, provider_event_id, event, headers, payload, received_at, request,
                place)
        ORDER BY u.webhook, u.provider_event_id, u.place
        ON CONFLICT (webhook, provider_event_id) DO NOTHING
        RETURNING e.id, e.seq;
    END
    $fn$;
    "#,
];
