//! "A cursor never skips a late commit", with several instances writing at once: every reader
//! of events by `seq` cursor (the change feed, `list_events`, the MCP Events engine) relies on
//! it. Run against real stores: instances are separate store handles on one SQLite file or one
//! PostgreSQL schema, each with its own writer.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::pg;
use serde_json::json;
use webhook_mcp::model::{now_millis, Event, EventId};
use webhook_mcp::store::{ChangeCursor, Ingest, SharedStore};

fn ingest(n: usize) -> Ingest {
    let e = Event {
        seq: 0,
        id: EventId::generate(),
        webhook_id: "w".into(),
        provider_event_id: Some(format!("p{n}")),
        event: "t".into(),
        received_at: now_millis(),
        headers: BTreeMap::new(),
        payload: json!({ "n": n }),
    };
    Ingest {
        body: e.payload.to_string(),
        event: e,
        receipt: None,
        relays: vec![],
    }
}

/// Three writer instances, four tasks each, while a reader follows the change feed: it sees
/// every event once, in increasing `seq`.
async fn concurrent_writers_and_a_follower(writers: Vec<SharedStore>, reader: SharedStore) {
    const PER_TASK: usize = 60;
    let mut tasks = vec![];
    for (w, store) in writers.iter().enumerate() {
        for t in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    store
                        .insert_event(ingest((w * 4 + t) * PER_TASK + i))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    let total = tasks.len() * PER_TASK;
    let (mut cursor, mut seen, mut last) = (ChangeCursor::default(), HashSet::new(), 0i64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "saw {} of {total}",
            seen.len()
        );
        let changes = reader.changes_since(cursor, 37).await.unwrap();
        for e in &changes.events {
            assert!(e.seq > last, "seq went backwards: {} after {last}", e.seq);
            last = e.seq;
            assert!(seen.insert(e.id.clone()), "{} reported twice", e.id);
        }
        cursor = changes.cursor;
        if changes.events.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rest = reader.changes_since(cursor, 100).await.unwrap();
    assert!(
        rest.events.is_empty(),
        "events after all were seen: {rest:?}"
    );
    assert_eq!(seen.len(), total, "every committed event was reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_instances_writing_at_once_skip_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-mcp.db");
    let open = || -> SharedStore {
        Arc::new(webhook_mcp::store::sqlite::SqliteStore::open(&path).unwrap())
    };
    concurrent_writers_and_a_follower(vec![open(), open(), open()], open()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_instances_writing_at_once_skip_nothing() {
    let Some(schema) = pg::TestSchema::create("cursor::postgres_writers").await else {
        return;
    };
    let mut stores: Vec<SharedStore> = vec![];
    for _ in 0..4 {
        stores.push(Arc::new(
            webhook_mcp::store::postgres::PgStore::connect(&schema.url, common::pg::keyring())
                .await
                .unwrap(),
        ));
    }
    let reader = stores.pop().unwrap();
    concurrent_writers_and_a_follower(stores, reader).await;
}
