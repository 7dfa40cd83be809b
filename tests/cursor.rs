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

/// `tasks` tasks per store, each storing `per_task` events with provider ids from `first` on;
/// the tasks and the number of events they store.
fn spawn_writers(
    stores: &[SharedStore],
    tasks: usize,
    per_task: usize,
    first: usize,
) -> (Vec<tokio::task::JoinHandle<()>>, usize) {
    let mut handles = vec![];
    for (w, store) in stores.iter().enumerate() {
        for t in 0..tasks {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let n = first + (w * tasks + t) * per_task + i;
                    store.insert_event(ingest(n)).await.unwrap();
                }
            }));
        }
    }
    let total = handles.len() * per_task;
    (handles, total)
}

/// Three writer instances, four tasks each, while a reader follows the change feed: it sees
/// every event once, in increasing `seq`.
async fn concurrent_writers_and_a_follower(writers: Vec<SharedStore>, reader: SharedStore) {
    let (tasks, total) = spawn_writers(&writers, 4, 60, 0);
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

/// `n` store instances on one PostgreSQL schema, each with its own writer.
async fn pg_instances(schema: &pg::TestSchema, n: usize) -> Vec<SharedStore> {
    let mut stores: Vec<SharedStore> = vec![];
    for _ in 0..n {
        stores.push(Arc::new(
            webhook_mcp::store::postgres::PgStore::connect(&schema.url, common::pg::keyring())
                .await
                .unwrap(),
        ));
    }
    stores
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
    let mut stores = pg_instances(&schema, 4).await;
    let reader = stores.pop().unwrap();
    concurrent_writers_and_a_follower(stores, reader).await;
}

/// On PostgreSQL `seq` follows transaction ids, not commit order: an event committed while an
/// older ingest transaction is still open must wait for it, and then come after it. The open
/// transaction stands for another instance's batch, caught between insert and commit (it holds
/// the store's ingest lock, as every batch does). Any other open transaction on the server
/// holds nothing back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_later_commit_waits_for_an_earlier_open_transaction() {
    let Some(schema) = pg::TestSchema::create("cursor::postgres_open_transaction").await else {
        return;
    };
    let store = pg_instances(&schema, 1).await.pop().unwrap();
    let (client, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // Some other open transaction with an id (another application's, say): no wait.
    let (other, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    other
        .batch_execute("BEGIN; CREATE TABLE unrelated (x INT); INSERT INTO unrelated VALUES (1)")
        .await
        .unwrap();
    store.insert_event(ingest(1)).await.unwrap();
    let start = store
        .changes_since(ChangeCursor::default(), 10)
        .await
        .unwrap();
    assert_eq!(
        start.events.len(),
        1,
        "an unrelated transaction held an event back"
    );
    assert!(!start.settling);
    let cursor = start.cursor;

    client
        .batch_execute(
            "BEGIN; SELECT pg_advisory_xact_lock_shared(2003133032, \
               (SELECT value::int4 FROM meta WHERE key = 'ingest_lock')); \
             INSERT INTO events (seq, id, webhook, provider_event_id, event, headers, \
             payload, received_at, request) SELECT event_seq(1), 'from-the-open-transaction', \
             key, 'open', 't', '{}', '{}', 0, false FROM webhook_keys WHERE id = 'w'",
        )
        .await
        .unwrap();
    let later = ingest(2);
    let later_id = later.event.id.clone();
    let webhook_mcp::store::InsertOutcome::Stored(later_seq) =
        store.insert_event(later).await.unwrap()
    else {
        panic!("not stored")
    };

    // Committed, readable by id, but not yet past any cursor.
    assert!(store.get_event(&later_id).await.unwrap().is_some());
    let held = store.changes_since(cursor, 10).await.unwrap();
    assert!(
        held.events.is_empty(),
        "read past an open transaction: {held:?}"
    );
    assert!(held.settling, "the feed was not told to look again");
    assert_eq!(held.cursor, cursor);
    let listed = store
        .list_events(webhook_mcp::store::EventQuery {
            after: Some(cursor.event_seq),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.is_empty(), "listed past an open transaction");
    assert!(store.max_event_seq().await.unwrap() < later_seq);

    client.batch_execute("COMMIT").await.unwrap();
    other.batch_execute("ROLLBACK").await.unwrap();
    let both = store.changes_since(cursor, 10).await.unwrap();
    let ids: Vec<String> = both.events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "from-the-open-transaction".to_string(),
            later_id.to_string()
        ],
        "the earlier transaction's event comes first, and nothing is skipped"
    );
    assert!(!both.settling);
    assert_eq!(store.max_event_seq().await.unwrap(), later_seq);
}

/// Readers by cursor through `list_events` (what `wait_for_events` and the MCP Events engine
/// read) see every event once, in order, while three instances write at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_list_readers_skip_nothing_while_instances_write() {
    let Some(schema) = pg::TestSchema::create("cursor::postgres_list_readers").await else {
        return;
    };
    let mut stores = pg_instances(&schema, 4).await;
    let reader = stores.pop().unwrap();
    let (tasks, total) = spawn_writers(&stores, 3, 50, 10_000);
    let (mut after, mut seen) = (0i64, HashSet::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "saw {} of {total}",
            seen.len()
        );
        let page = reader
            .list_events(webhook_mcp::store::EventQuery {
                after: Some(after),
                limit: 23,
                ..Default::default()
            })
            .await
            .unwrap();
        for e in &page {
            assert!(e.seq > after, "seq went backwards: {} after {after}", e.seq);
            after = e.seq;
            assert!(seen.insert(e.id.clone()), "{} listed twice", e.id);
        }
        if page.is_empty() {
            // "Now" is a cursor too: moving to it skips nothing.
            let now = reader.max_event_seq().await.unwrap();
            let between = reader
                .list_events(webhook_mcp::store::EventQuery {
                    after: Some(after),
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .unwrap();
            for e in between.iter().filter(|e| e.seq <= now) {
                assert!(seen.insert(e.id.clone()), "{} listed twice", e.id);
                after = after.max(e.seq);
            }
            after = after.max(now);
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(seen.len(), total);
}

/// Each instance's change feed (the bus its sessions, waits and pumps are woken by) while
/// every instance writes: it announces every event of every instance once, in increasing
/// `seq`, its own commits without reading them back where they follow on, the others' after
/// a read.
async fn every_feed_announces_every_event_once_in_order(stores: Vec<SharedStore>) {
    use webhook_mcp::service::{Service, Settings};
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut buses = vec![];
    let mut feeds = vec![];
    for store in &stores {
        let svc = Arc::new(Service::new(store.clone(), Settings::default()));
        buses.push(svc.subscribe_events());
        feeds.push(svc.follow_changes(stop.clone()).await.unwrap());
    }
    let (tasks, total) = spawn_writers(&stores, 4, 50, 10_000);
    for t in tasks {
        t.await.unwrap();
    }
    for (i, bus) in buses.iter_mut().enumerate() {
        let (mut seen, mut last) = (HashSet::new(), 0i64);
        while seen.len() < total {
            let notice = tokio::time::timeout(std::time::Duration::from_secs(20), bus.recv())
                .await
                .unwrap_or_else(|_| panic!("feed {i} announced {} of {total}", seen.len()))
                .unwrap();
            assert!(notice.seq > last, "feed {i}: {} after {last}", notice.seq);
            last = notice.seq;
            assert!(
                seen.insert(notice.id.clone()),
                "feed {i}: {} twice",
                notice.id
            );
        }
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), bus.recv())
                .await
                .is_err(),
            "feed {i} announced more than was stored"
        );
    }
    stop_tx.send(true).unwrap();
    for f in feeds {
        f.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_every_feed_announces_every_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-mcp.db");
    let stores: Vec<SharedStore> = (0..3)
        .map(|_| -> SharedStore {
            Arc::new(webhook_mcp::store::sqlite::SqliteStore::open(&path).unwrap())
        })
        .collect();
    every_feed_announces_every_event_once_in_order(stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_every_feed_announces_every_event_once_in_order() {
    let Some(schema) = pg::TestSchema::create("cursor::postgres_feeds").await else {
        return;
    };
    every_feed_announces_every_event_once_in_order(pg_instances(&schema, 3).await).await;
    // One instance alone: its commits follow on from each other and are announced as written.
    let schema = pg::TestSchema::create("cursor::postgres_feed_alone")
        .await
        .unwrap();
    every_feed_announces_every_event_once_in_order(pg_instances(&schema, 1).await).await;
}

/// A writer alone says what each commit follows on from (so that its feed needs no read): the
/// one before it. Committed events are announced to the store's subscribers.
async fn a_lone_writer_s_commits_follow_on(store: SharedStore) {
    let mut commits = store.subscribe_commits();
    let mut last = None;
    for n in 0..5 {
        store.insert_event(ingest(20_000 + n)).await.unwrap();
        let commit = commits.recv().await.unwrap();
        assert_eq!(commit.events.len(), 1);
        if let Some(last) = last {
            assert_eq!(commit.follows, Some(last), "commit {n}");
        }
        last = Some(commit.events[0].seq);
    }
}

#[tokio::test]
async fn sqlite_a_lone_writer_s_commits_follow_on() {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(
        webhook_mcp::store::sqlite::SqliteStore::open(&dir.path().join("webhook-mcp.db")).unwrap(),
    );
    a_lone_writer_s_commits_follow_on(store).await;
}

#[tokio::test]
async fn postgres_a_lone_writer_s_commits_follow_on() {
    let Some(schema) = pg::TestSchema::create("cursor::postgres_lone_writer").await else {
        return;
    };
    let store = pg_instances(&schema, 1).await.pop().unwrap();
    a_lone_writer_s_commits_follow_on(store).await;
}

/// On PostgreSQL an instance hears of the others' commits, spelled out in their `NOTIFY`
/// (`announce_commit`, schema 15), with what each follows on from: its change feed announces
/// them without reading the store. A batch whose notices do not fit one `NOTIFY` is told in
/// several, each following on from the one before; an event too large to tell goes as a bare
/// wake-up (the feed reads), and the next one follows on from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_instances_hear_each_others_commits_spelled_out() {
    use webhook_mcp::store::InsertOutcome;
    let Some(schema) = pg::TestSchema::create("cursor::postgres_heard").await else {
        return;
    };
    let stores = pg_instances(&schema, 2).await;
    let (writer, listener) = (stores[0].clone(), stores[1].clone());
    let mut heard = listener.subscribe_commits();
    // One event: heard with what it follows on from (nothing before it).
    let one = ingest(40_000);
    let id = one.event.id.clone();
    let InsertOutcome::Stored(first) = writer.insert_event(one).await.unwrap() else {
        panic!("stored")
    };
    let c = heard_next(&mut heard).await;
    assert_eq!(c.follows, Some(0));
    assert_eq!(c.events.len(), 1);
    assert_eq!((c.events[0].seq, &c.events[0].id), (first, &id));
    assert_eq!(
        (c.events[0].webhook_id.as_str(), c.events[0].event.as_str()),
        ("w", "t")
    );

    // An event whose type alone is too long for a NOTIFY: not spelled out. The next follows
    // on from it.
    let mut big = ingest(40_001);
    big.event.event = "x".repeat(7_500);
    let InsertOutcome::Stored(big_seq) = writer.insert_event(big).await.unwrap() else {
        panic!("stored")
    };
    let InsertOutcome::Stored(after_big) = writer.insert_event(ingest(40_002)).await.unwrap()
    else {
        panic!("stored")
    };
    let c = heard_next(&mut heard).await;
    assert_eq!(c.follows, Some(big_seq), "{c:?}");
    assert_eq!(c.events.len(), 1);
    assert_eq!(c.events[0].seq, after_big);

    // Many at once, with long event types: batches told in several NOTIFYs. Every stored
    // event is heard once, and each heard commit follows on from the one before it.
    let mut tasks = vec![];
    for n in 0..300 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = ingest(41_000 + n);
            i.event.event = format!("{n:0>200}");
            match writer.insert_event(i).await.unwrap() {
                InsertOutcome::Stored(seq) => seq,
                InsertOutcome::Duplicate(_) => panic!("not a duplicate"),
            }
        }));
    }
    let mut stored = vec![];
    for t in tasks {
        stored.push(t.await.unwrap());
    }
    stored.sort_unstable();
    let (mut seen, mut last, mut commits) = (vec![], after_big, 0);
    while seen.len() < stored.len() {
        let c = heard_next(&mut heard).await;
        commits += 1;
        assert_eq!(c.follows, Some(last), "commit {commits} follows on");
        for e in c.events.iter() {
            assert_eq!(e.event.len(), 200);
            seen.push(e.seq);
        }
        last = c.events.last().unwrap().seq;
    }
    assert_eq!(seen, stored, "every event heard once, in order");
    assert!(
        commits >= 300 * 260 / 7_000,
        "{commits} NOTIFYs for 300 notices of about 260 bytes"
    );
}

/// The next commit `heard` tells of, within 10 s.
async fn heard_next(
    heard: &mut tokio::sync::broadcast::Receiver<webhook_mcp::store::CommittedEvents>,
) -> webhook_mcp::store::CommittedEvents {
    tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv())
        .await
        .expect("the other instance's commit was heard")
        .unwrap()
}

/// An instance spells out its commits only while another instance is live (its heartbeat
/// counts them): alone, its `NOTIFY` is the bare tag, which a listener that heartbeats nothing
/// (`events tail`) answers with a read; with a peer, the notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commits_are_spelled_out_only_while_another_instance_is_live() {
    use webhook_mcp::store::InstanceId;
    let Some(schema) = pg::TestSchema::create("cursor::postgres_peers").await else {
        return;
    };
    let stores = pg_instances(&schema, 2).await;
    let (client, mut conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(Ok(m)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    let store_id: String = client
        .query_one("SELECT value FROM meta WHERE key = 'store_id'", &[])
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!("LISTEN \"webhook_mcp_{store_id}\""))
        .await
        .unwrap();
    let (a, b) = (InstanceId::generate(), InstanceId::generate());
    // Alone.
    stores[0].heartbeat(&a, now_millis()).await.unwrap();
    let alone = ingest(50_000);
    stores[0].insert_event(alone).await.unwrap();
    let said = tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv())
        .await
        .expect("a NOTIFY")
        .unwrap();
    assert!(said.starts_with("events:") && !said.contains(' '), "{said}");

    // With a peer.
    stores[1].heartbeat(&b, now_millis()).await.unwrap();
    stores[0].heartbeat(&a, now_millis()).await.unwrap();
    let seen = ingest(50_001);
    let id = seen.event.id.clone();
    stores[0].insert_event(seen).await.unwrap();
    let said = tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv())
        .await
        .expect("a NOTIFY")
        .unwrap();
    assert!(said.contains(&format!("\"{id}\"")), "{said}");
}
