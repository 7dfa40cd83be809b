//! Upgrades in place: a store written by the release before "one row per accepted request"
//! (SQLite schema 8, PostgreSQL schema 4) opens with its webhooks, events, log and pending
//! deliveries intact. The old store is built from that release's migrations (a prefix of the
//! binary's) and rows written with that release's statements, then opened by today's code.

mod common;

use std::sync::Arc;

use common::pg;
use webhook_mcp::model::{Delivery, DeliveryId, DeliveryStatus, Direction, Event, EventId};
use webhook_mcp::store::{
    DeliveryQuery, EventQuery, Ingest, InsertOutcome, InstanceId, SharedStore,
};

const INBOUND: &str = "11111111-1111-4111-8111-111111111111";
const OUTBOUND: &str = "22222222-2222-4222-8222-222222222222";
const EVENT: &str = "0190aaaa-0000-7000-8000-000000000001";
const RAISED: &str = "0190aaaa-0000-7000-8000-000000000002";
/// A webhook deleted before the upgrade; its event stays.
const GONE: &str = "33333333-3333-4333-8333-333333333333";
const ORPHAN: &str = "0190aaaa-0000-7000-8000-000000000009";

/// Every webhook's secret and headers column is sealed and holds no plain secret.
fn assert_sealed(raw: &[(String, String)]) {
    assert_eq!(raw.len(), 2);
    for (secret, headers) in raw {
        assert!(secret.starts_with("sealed:v1:"), "{secret}");
        assert!(headers.starts_with("sealed:v1:"), "{headers}");
        assert!(!secret.contains("whsec_"));
    }
}

/// What the old release wrote: two webhooks, a received event and an operational one, the
/// received event's receipt (pointing at it, no body), a duplicate's receipt, a refusal, and a
/// queued message with its pending attempt. One text for both databases (literals only).
fn old_rows() -> String {
    format!(
        r#"
    INSERT INTO webhooks (id, direction, target_url, provider, events, description, enabled,
        secret, headers, created_at, updated_at, failure_count, forward_to) VALUES
      ('{INBOUND}', 'inbound', '', 'github', '["*"]', 'old inbound', TRUE, 'whsec_in', '{{}}',
        1000, 1000, 0, '[]'),
      ('{OUTBOUND}', 'outbound', 'http://127.0.0.1:9/x', 'standard', '["*"]', 'old outbound',
        TRUE, 'whsec_out', '{{}}', 1000, 1000, 0, '[]');
    INSERT INTO events (id, webhook_id, provider_event_id, event, received_at, headers, payload)
      VALUES
      ('{EVENT}', '{INBOUND}', 'gh-1', 'push', 2000, '{{"x-github-event":"push"}}', '{{"n":1}}'),
      ('{RAISED}', '{OUTBOUND}', 'op-1', 'webhook_mcp.delivery.failed', 2500, '{{}}',
        '{{"n":2}}'),
      ('{ORPHAN}', '{GONE}', 'gone-1', 'push', 2550, '{{}}', '{{"n":3}}');
    INSERT INTO deliveries (id, webhook_id, event_id, event, direction, trigger, attempt, url,
        status, status_code, error, request_headers, request_body, created_at) VALUES
      ('0190bbbb-0000-7000-8000-000000000001', '{INBOUND}', '{EVENT}', 'push', 'inbound',
        'received', 1, 'http://h/hooks/{INBOUND}', 'succeeded', 200, NULL, '{{}}', NULL, 2000),
      ('0190bbbb-0000-7000-8000-000000000002', '{INBOUND}', '{EVENT}', 'push', 'inbound',
        'received', 1, 'http://h/hooks/{INBOUND}', 'succeeded', 200,
        'duplicate: provider event id already received as event {EVENT}; acknowledged, not stored again',
        '{{"x-github-event":"push"}}', '{{"n":1}}', 3000),
      ('0190bbbb-0000-7000-8000-000000000003', '{INBOUND}', NULL, NULL, 'inbound', 'received',
        1, 'http://h/hooks/{INBOUND}', 'failed', 401, 'signature rejected', '{{}}', '{{"n":9}}',
        4000);
    INSERT INTO messages (id, webhook_id, event, event_id, body, created_at) VALUES
      ('msg_0190cccc-0000-7000-8000-000000000001', '{OUTBOUND}', 'order.paid', NULL,
        '{{"type":"order.paid"}}', 5000);
    INSERT INTO deliveries (id, webhook_id, event, direction, trigger, attempt, url, status,
        created_at, next_attempt_at, message_id) VALUES
      ('0190bbbb-0000-7000-8000-000000000004', '{OUTBOUND}', 'order.paid', 'outbound',
        'scheduled', 1, 'http://127.0.0.1:9/x', 'pending', 5000, 5000,
        'msg_0190cccc-0000-7000-8000-000000000001');
    "#
    )
}

/// Everything the old store held is there, and the accepted request is in the log once; old
/// events are found by id and by provider id (a repeat is still a duplicate). Returns the
/// `seq` a new event gets.
async fn check(s: SharedStore) -> i64 {
    assert!(s.get_webhook(&INBOUND.into()).await.unwrap().is_some());
    let out = s.get_webhook(&OUTBOUND.into()).await.unwrap().unwrap();
    assert_eq!(out.secret.expose(), "whsec_out");
    let events = s
        .list_events(EventQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].payload["n"], 1);
    // An event of a webhook deleted before the upgrade keeps naming it, and is found by it.
    let orphans = s
        .list_events(EventQuery {
            webhook_id: Some(GONE.into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(
        (orphans[0].id.as_str(), orphans[0].webhook_id.as_str()),
        (ORPHAN, GONE)
    );
    // Everything from before principals is the local principal's, deleted webhooks' history
    // included.
    let local = webhook_mcp::model::Principal::local();
    assert_eq!(out.owner, local);
    let owned = s
        .list_events(EventQuery {
            owner: Some(local.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(owned.len(), 3, "every old event is local's");
    assert_eq!(s.owner_of(&GONE.into()).await.unwrap(), Some(local.clone()));
    let everyone = |owner| DeliveryQuery {
        owner,
        limit: 50,
        ..Default::default()
    };
    assert_eq!(
        s.query_deliveries(everyone(Some(local)))
            .await
            .unwrap()
            .rows
            .len(),
        s.query_deliveries(everyone(None)).await.unwrap().rows.len(),
        "every old log row is local's"
    );

    let log = s
        .query_deliveries(DeliveryQuery {
            direction: Some(Direction::Inbound),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .rows;
    let ids: Vec<&str> = log.iter().map(|d| d.id().as_str()).collect();
    assert_eq!(
        ids,
        [
            "0190bbbb-0000-7000-8000-000000000003",
            "0190bbbb-0000-7000-8000-000000000002",
            EVENT
        ],
        "refusal, duplicate, then the accepted request (now its event), each once; the \
         operational event is no request"
    );
    let Delivery::Receipt(accepted) = &log[2] else {
        panic!("{log:?}")
    };
    assert_eq!(
        (
            accepted.status,
            accepted.status_code,
            accepted.request_body.as_deref()
        ),
        (DeliveryStatus::Succeeded, Some(200), Some(r#"{"n":1}"#))
    );
    assert_eq!(
        accepted
            .request_headers
            .get("x-github-event")
            .map(String::as_str),
        Some("push")
    );
    assert!(s
        .get_delivery(&DeliveryId::from(EVENT))
        .await
        .unwrap()
        .is_some());

    let claimed = s
        .claim_due(&InstanceId("upgrade".into()), 10_000, 10, 20_000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the pending attempt is still queued");
    assert_eq!(claimed[0].body, r#"{"type":"order.paid"}"#);

    let old = s.get_event(&EVENT.into()).await.unwrap().unwrap();
    assert_eq!(
        (old.event.as_str(), old.payload["n"].as_i64()),
        ("push", Some(1))
    );
    let repeat = event("gh-1");
    assert_eq!(
        s.insert_event(ingest(repeat)).await.unwrap(),
        InsertOutcome::Duplicate(EVENT.into()),
        "a provider id stored before the upgrade is still a duplicate"
    );
    let new = event("gh-2");
    let id = new.id.clone();
    let InsertOutcome::Stored(seq) = s.insert_event(ingest(new)).await.unwrap() else {
        panic!("a new provider id is stored")
    };
    assert_eq!(s.get_event(&id).await.unwrap().unwrap().id, id);
    seq
}

fn event(provider_id: &str) -> Event {
    Event {
        seq: 0,
        id: EventId::generate(),
        webhook_id: INBOUND.into(),
        provider_event_id: Some(provider_id.into()),
        event: "push".into(),
        received_at: 9000,
        headers: Default::default(),
        payload: serde_json::json!({ "id": provider_id }),
    }
}

fn ingest(event: Event) -> Ingest {
    Ingest {
        body: event.payload.to_string(),
        event,
        receipt: None,
        relays: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_of_the_previous_release_opens_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-mcp.db");
    let (sqlite, _) = webhook_mcp::store::migrations();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for m in &sqlite[..8] {
            conn.execute_batch(m).unwrap();
        }
        conn.pragma_update(None, "user_version", 8).unwrap();
        conn.execute_batch(&old_rows()).unwrap();
        // An event stored and deleted (seq 4): its seq is never handed out again.
        conn.execute_batch(&format!(
            "INSERT INTO events (id, webhook_id, event, received_at, headers, payload) \
             VALUES ('0190aaaa-0000-7000-8000-000000000003', '{INBOUND}', 'push', 2600, '{{}}', '{{}}'); \
             DELETE FROM events WHERE seq = 4;"
        ))
        .unwrap();
    }
    let store = webhook_mcp::store::sqlite::SqliteStore::open(&path).unwrap();
    assert_eq!(check(Arc::new(store)).await, 5);
    // The plain secrets of the old release are sealed on upgrade (issue 21, step 5).
    let raw: Vec<(String, String)> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT secret, headers FROM webhooks")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_sealed(&raw);
    assert!(dir.path().join("secrets.key").exists());
    // Event ids became their 16 bytes wherever they are stored (the lookups above found them).
    let conn = rusqlite::Connection::open(&path).unwrap();
    let text_ids: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM events WHERE typeof(id) <> 'blob') \
                  + (SELECT count(*) FROM deliveries WHERE typeof(event_id) = 'text')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(text_ids, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_of_the_previous_release_opens_intact() {
    let Some(schema) = pg::TestSchema::create("upgrade::postgres").await else {
        return;
    };
    let (_, postgres) = webhook_mcp::store::migrations();
    {
        let (client, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        for m in &postgres[..4] {
            client.batch_execute(m).await.unwrap();
        }
        client
            .batch_execute(
                "CREATE TABLE schema_version (version BIGINT NOT NULL); \
                 INSERT INTO schema_version (version) VALUES (4);",
            )
            .await
            .unwrap();
        client.batch_execute(&old_rows()).await.unwrap();
    }
    let store = webhook_mcp::store::postgres::PgStore::connect(&schema.url, common::pg::keyring())
        .await
        .unwrap();
    assert!(check(Arc::new(store)).await > 2);
    let (client, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let raw: Vec<(String, String)> = client
        .query("SELECT secret, headers FROM webhooks", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_sealed(&raw);
    // Another key opens nothing: the store refuses to start rather than serve garbage.
    let other = webhook_mcp::store::sealing::Keyring::from_text(
        &webhook_mcp::store::sealing::SecretsKey::generate().to_text(),
        webhook_mcp::store::sealing::KeySource::Given,
    )
    .unwrap();
    let refused = webhook_mcp::store::postgres::PgStore::connect(&schema.url, other)
        .await
        .err()
        .expect("a store sealed under another key");
    assert!(refused.to_string().contains("does not hold"), "{refused}");
}
