//! The store conformance suite: written once against the `Store` trait, run against every
//! backend. Each check takes a fresh, empty store from the backend's factory. A backend passes
//! when every check passes unchanged; add a backend by adding one `conformance!` line below.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use webhook_mcp::model::{
    now_millis, Attempt, Delivery, DeliveryId, DeliveryStatus, Direction, Event, EventId,
    EventSubscription, MessageId, Principal, Provider, Receipt, Secret, Trigger, Webhook,
    WebhookId,
};
use webhook_mcp::store::{
    ChangeCursor, Completion, DeliveryQuery, EventQuery, HealthChange, Ingest, InsertOutcome,
    InstanceId, Message, Outgoing, PruneCutoffs, Pruned, SharedStore, WebhookChange, WebhookFilter,
};

#[path = "common/pg.rs"]
mod pg;

/// One `#[tokio::test]` per check, for one backend: `conformance!(module, async factory)`. A
/// factory returns `None` when its backend is not available here (it says so, visibly).
macro_rules! conformance {
    ($backend:ident, $make:path) => {
        mod $backend {
            use super::*;
            conformance!(@tests $make;
                webhooks_round_trip_every_field,
                updates_set_only_the_fields_given,
                rotation_is_atomic_and_keeps_the_grace,
                expired_previous_secrets_are_found_and_forgotten_once,
                deletes_and_never_serves_a_stale_row,
                events_store_once_per_provider_id,
                concurrent_ingest_commits_every_event_once,
                events_list_by_filter_and_cursor,
                receipts_of_stored_events_read_back_their_body,
                the_log_is_filtered_and_paged_newest_first,
                stored_events_are_their_own_receipts_in_a_paged_log,
                changes_since_reports_events_and_webhook_changes,
                the_queue_claims_leases_and_completes,
                concurrent_claims_never_share_an_attempt,
                health_changes_count_disable_and_reset,
                redelivery_reads_finally_failed_messages,
                dead_instances_lose_their_leases_live_ones_keep_them,
                a_job_lock_has_one_holder_at_a_time,
                the_change_cursor_starts_at_now,
                concurrent_edits_lose_nothing,
                prune_deletes_old_history_and_keeps_the_rest,
                prune_takes_events_in_arrival_order,
                an_idempotency_key_queues_once_even_concurrently,
                subscriptions_advance_once_hide_from_lists_and_expire,
                rows_belong_to_their_owner_also_after_a_delete,
            );
        }
    };
    (@tests $make:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((store, _guard)) = $make(stringify!($check)).await else {
                    return;
                };
                checks::$check(store).await;
            }
        )*
    };
}

conformance!(sqlite, sqlite_store);
conformance!(postgres, postgres_store);

/// A fresh SQLite store in its own temporary directory (kept alive by the guard).
async fn sqlite_store(_test: &str) -> Option<(SharedStore, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().unwrap();
    let store =
        webhook_mcp::store::sqlite::SqliteStore::open(&dir.path().join("webhook-mcp.db")).unwrap();
    Some((Arc::new(store), Box::new(dir)))
}

/// A fresh PostgreSQL store in a schema of its own (dropped with the guard).
async fn postgres_store(test: &str) -> Option<(SharedStore, Box<dyn std::any::Any>)> {
    let schema = pg::TestSchema::create(&format!("store_conformance::postgres::{test}")).await?;
    let store = webhook_mcp::store::postgres::PgStore::connect(&schema.url, pg::keyring())
        .await
        .unwrap();
    Some((Arc::new(store), Box::new(schema)))
}

// --- fixtures ---------------------------------------------------------------------------------

/// The lease owner of the checks that use one.
fn me() -> InstanceId {
    InstanceId("conformance".into())
}

fn inbound(id: &str) -> Webhook {
    let mut w = Webhook::new(
        id.into(),
        Direction::Inbound,
        Secret::new("inbound-secret"),
        now_millis(),
    );
    w.provider = Provider::Github;
    w.required_headers
        .insert("x-api-key".into(), Secret::new("key-123"));
    w
}

fn outbound(id: &str) -> Webhook {
    let mut w = Webhook::new(
        id.into(),
        Direction::Outbound,
        Secret::new("outbound-secret"),
        now_millis(),
    );
    w.target_url = "https://example.com/hook".into();
    w.extra_headers.insert("x-team".into(), "growth".into());
    w
}

fn event(webhook: &str, provider_id: &str) -> Event {
    Event {
        seq: 0,
        id: EventId::generate(),
        webhook_id: webhook.into(),
        provider_event_id: Some(provider_id.into()),
        event: "order.paid".into(),
        received_at: now_millis(),
        headers: BTreeMap::from([("x-github-event".into(), "order.paid".into())]),
        payload: json!({ "id": provider_id, "amount": 42 }),
    }
}

/// Which of `ids` are still stored.
async fn stored(s: &SharedStore, ids: &[EventId]) -> Vec<bool> {
    let mut kept = vec![];
    for id in ids {
        kept.push(s.get_event(id).await.unwrap().is_some());
    }
    kept
}

fn ingest(e: Event) -> Ingest {
    let body = e.payload.to_string();
    let mut receipt = Receipt::new(e.webhook_id.clone(), "http://x/hooks".into());
    // What the service does: a stored event is its own receipt, under the event's id.
    receipt.id = DeliveryId::from(e.id.as_str());
    receipt.event_id = Some(e.id.clone());
    receipt.event = Some(e.event.clone());
    receipt.status = DeliveryStatus::Succeeded;
    receipt.status_code = Some(200);
    receipt.request_headers = e.headers.clone();
    receipt.request_body = Some(body.clone());
    Ingest {
        event: e,
        body,
        receipt: Some(receipt),
        relays: vec![],
    }
}

fn outgoing(w: &Webhook, due: i64) -> Outgoing {
    let id = MessageId::generate();
    let mut first = Attempt::new(
        w.id.clone(),
        id.clone(),
        "order.paid".into(),
        Trigger::Scheduled,
        w.target_url.clone(),
    );
    first.next_attempt_at = Some(due);
    Outgoing {
        message: Message {
            id,
            webhook_id: w.id.clone(),
            event: "order.paid".into(),
            event_id: None,
            body: r#"{"n":1}"#.into(),
            created_at: due,
        },
        first,
    }
}

fn finished(mut a: Attempt, status: DeliveryStatus) -> Attempt {
    a.status = status;
    a.status_code = Some(if status == DeliveryStatus::Succeeded {
        200
    } else {
        500
    });
    a.next_attempt_at = None;
    a
}

mod checks {
    use super::*;

    pub async fn webhooks_round_trip_every_field(s: SharedStore) {
        let mut i = inbound("i1");
        i.previous_secret = Some(webhook_mcp::model::PreviousSecret {
            secret: Secret::new("old-secret"),
            expires_at: now_millis() + 60_000,
        });
        i.forward_to = vec!["o1".into()];
        i.events = vec!["a".into(), "b".into()];
        i.description = "from GitHub".into();
        let mut o = outbound("o1");
        o.filter = Some(
            webhook_mcp::model::Filter::parse(
                &serde_json::json!({"data.amount": {"$gte": 100}, "$or": [{"a": 1}, {"b": "x"}]}),
            )
            .unwrap(),
        );
        s.insert_webhook(&i).await.unwrap();
        s.insert_webhook(&o).await.unwrap();
        assert_eq!(s.get_webhook(&i.id).await.unwrap().as_ref(), Some(&i));
        assert_eq!(s.get_webhook(&o.id).await.unwrap().as_ref(), Some(&o));
        assert_eq!(s.get_webhook(&"nope".into()).await.unwrap(), None);

        let all = s.list_webhooks(WebhookFilter::default()).await.unwrap();
        assert_eq!(all.len(), 2);
        let only_out = s
            .list_webhooks(WebhookFilter {
                direction: Some(Direction::Outbound),
                enabled: None,
                owner: None,
            })
            .await
            .unwrap();
        assert_eq!(only_out, vec![o.clone()]);
        let disabled = s
            .list_webhooks(WebhookFilter {
                direction: None,
                enabled: Some(false),
                owner: None,
            })
            .await
            .unwrap();
        assert!(disabled.is_empty());
        // An id is unique.
        assert!(s.insert_webhook(&i).await.is_err());
    }

    pub async fn updates_set_only_the_fields_given(s: SharedStore) {
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        // A failure recorded by the worker meanwhile must survive an unrelated edit.
        let a = outgoing(&o, 0);
        s.enqueue(vec![a.clone()]).await.unwrap();
        let claimed = s
            .claim_due(&me(), now_millis(), 10, now_millis() + 60_000)
            .await
            .unwrap();
        s.complete(vec![Completion {
            attempt: finished(claimed[0].attempt.clone(), DeliveryStatus::Failed),
            next: None,
            health: HealthChange::Failure {
                disable: Some("the target answered 410 Gone".into()),
            },
        }])
        .await
        .unwrap();
        let updated = s
            .update_webhook(
                &o.id,
                WebhookChange {
                    description: Some("renamed".into()),
                    updated_at: o.updated_at + 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.description, "renamed");
        assert!(!updated.enabled, "the auto-disable is kept");
        assert_eq!(updated.failure_count, 1);
        assert_eq!(updated.target_url, o.target_url);
        assert_eq!(updated.extra_headers, o.extra_headers);

        // Re-enabling by hand resets the health.
        let enabled = s
            .update_webhook(
                &o.id,
                WebhookChange {
                    enabled: Some(true),
                    reset_health: true,
                    extra_headers: Some(BTreeMap::new()),
                    updated_at: o.updated_at + 2,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(enabled.enabled);
        assert_eq!(
            (
                enabled.failure_count,
                enabled.first_failure_at,
                enabled.disabled_reason.as_deref()
            ),
            (0, None, None)
        );
        assert!(enabled.extra_headers.is_empty());
        assert_eq!(s.get_webhook(&o.id).await.unwrap().unwrap(), enabled);

        // A content filter is set, kept by an unrelated edit, and removed.
        let filter = webhook_mcp::model::Filter::parse(&serde_json::json!({"data.n": 1})).unwrap();
        let change = |filter, at| WebhookChange {
            filter,
            updated_at: o.updated_at + at,
            ..Default::default()
        };
        let set = s.update_webhook(&o.id, change(Some(Some(filter.clone())), 3));
        assert_eq!(set.await.unwrap().unwrap().filter.as_ref(), Some(&filter));
        let kept = s
            .update_webhook(&o.id, change(None, 4))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.filter.as_ref(), Some(&filter));
        let removed = s
            .update_webhook(&o.id, change(Some(None), 5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(removed.filter, None);
        assert_eq!(s.get_webhook(&o.id).await.unwrap().unwrap().filter, None);

        // Inbound required headers keep their own meaning.
        let i = inbound("i1");
        s.insert_webhook(&i).await.unwrap();
        let changed = s
            .update_webhook(
                &i.id,
                WebhookChange {
                    required_headers: Some(BTreeMap::from([(
                        "authorization".into(),
                        Secret::new("Bearer t"),
                    )])),
                    updated_at: i.updated_at + 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            changed.required_headers["authorization"].expose(),
            "Bearer t"
        );
        assert!(changed.extra_headers.is_empty());
        assert!(s
            .update_webhook(&"gone".into(), WebhookChange::default())
            .await
            .unwrap()
            .is_none());
    }

    pub async fn rotation_is_atomic_and_keeps_the_grace(s: SharedStore) {
        let i = inbound("i1");
        s.insert_webhook(&i).await.unwrap();
        let now = now_millis();
        let r = s
            .rotate_secret(&i.id, Secret::new("second"), Some(now + 1_000), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.secret.expose(), "second");
        let prev = r.previous_secret.clone().unwrap();
        assert_eq!(
            (prev.secret.expose(), prev.expires_at),
            ("inbound-secret", now + 1_000)
        );
        // The next rotation moves the then-current secret, never an older one.
        let r = s
            .rotate_secret(&i.id, Secret::new("third"), Some(now + 2_000), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.previous_secret.unwrap().secret.expose(), "second");
        // No grace: the old secret stops at once.
        let r = s
            .rotate_secret(&i.id, Secret::new("fourth"), None, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.secret.expose(), "fourth");
        assert!(r.previous_secret.is_none());
        assert_eq!(s.get_webhook(&i.id).await.unwrap().unwrap(), r);
        assert!(s
            .rotate_secret(&"gone".into(), Secret::new("x"), None, now)
            .await
            .unwrap()
            .is_none());
    }

    pub async fn expired_previous_secrets_are_found_and_forgotten_once(s: SharedStore) {
        let (a, b) = (inbound("a"), inbound("b"));
        s.insert_webhook(&a).await.unwrap();
        s.insert_webhook(&b).await.unwrap();
        let now = now_millis();
        s.rotate_secret(&a.id, Secret::new("a2"), Some(now + 1_000), now)
            .await
            .unwrap();
        s.rotate_secret(&b.id, Secret::new("b2"), Some(now + 60_000), now)
            .await
            .unwrap();
        assert!(s.expired_previous_secrets(now).await.unwrap().is_empty());
        let due = s.expired_previous_secrets(now + 1_000).await.unwrap();
        assert_eq!(
            due,
            vec![(a.id.clone(), now + 1_000)],
            "only a's grace has ended"
        );

        // A rotation after the expiry was read is not undone by forgetting the old expiry.
        s.rotate_secret(&a.id, Secret::new("a3"), Some(now + 5_000), now)
            .await
            .unwrap();
        s.forget_previous_secret(&a.id, now + 1_000).await.unwrap();
        let kept = s.get_webhook(&a.id).await.unwrap().unwrap();
        assert_eq!(kept.previous_secret.unwrap().secret.expose(), "a2");

        // Forgetting the expiry read: gone, recorded as a change, and not found again.
        let cursor = s.change_cursor().await.unwrap();
        s.forget_previous_secret(&a.id, now + 5_000).await.unwrap();
        let a_now = s.get_webhook(&a.id).await.unwrap().unwrap();
        assert!(a_now.previous_secret.is_none());
        assert_eq!(a_now.secret.expose(), "a3");
        let changes = s.changes_since(cursor, 100).await.unwrap();
        assert_eq!(changes.webhooks, vec![a.id.clone()]);
        assert!(s
            .expired_previous_secrets(now + 10_000)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            s.expired_previous_secrets(now + 60_000).await.unwrap(),
            vec![(b.id.clone(), now + 60_000)]
        );
    }

    pub async fn deletes_and_never_serves_a_stale_row(s: SharedStore) {
        let i = inbound("i1");
        s.insert_webhook(&i).await.unwrap();
        // Read (a backend may cache it), change, read again: the change shows.
        assert!(s.get_webhook(&i.id).await.unwrap().unwrap().enabled);
        s.update_webhook(
            &i.id,
            WebhookChange {
                enabled: Some(false),
                updated_at: now_millis(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(!s.get_webhook(&i.id).await.unwrap().unwrap().enabled);
        assert!(s.delete_webhook(&i.id).await.unwrap());
        assert_eq!(s.get_webhook(&i.id).await.unwrap(), None);
        assert!(!s.delete_webhook(&i.id).await.unwrap());
    }

    pub async fn events_store_once_per_provider_id(s: SharedStore) {
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        let first = event("i1", "evt_1");
        let mut with_relay = ingest(first.clone());
        with_relay.relays = vec![outgoing(&o, 0)];
        let seq = match s.insert_event(with_relay).await.unwrap() {
            InsertOutcome::Stored(seq) => seq,
            other => panic!("{other:?}"),
        };
        assert!(seq > 0);
        let mut stored = s.get_event(&first.id).await.unwrap().unwrap();
        assert_eq!(stored.seq, seq);
        stored.seq = 0;
        assert_eq!(stored, first);
        // The relay was queued with the event.
        assert_eq!(
            s.claim_due(&me(), now_millis(), 10, now_millis() + 60_000)
                .await
                .unwrap()
                .len(),
            1
        );

        // The same provider id again: a duplicate pointing at the first event, nothing new
        // stored or queued, and its receipt logged with its own body.
        let again = event("i1", "evt_1");
        let mut dup = ingest(again.clone());
        dup.relays = vec![outgoing(&o, 0)];
        assert_eq!(
            s.insert_event(dup).await.unwrap(),
            InsertOutcome::Duplicate(first.id.clone())
        );
        assert_eq!(s.get_event(&again.id).await.unwrap(), None);
        assert_eq!(s.max_event_seq().await.unwrap(), seq);
        let log = s
            .query_deliveries(DeliveryQuery {
                direction: Some(Direction::Inbound),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let Delivery::Receipt(r) = &log.rows[0] else {
            panic!("{log:?}")
        };
        assert_eq!(r.event_id.as_ref(), Some(&first.id));
        assert!(r.error.as_deref().unwrap().contains("duplicate"));
        assert!(r.request_body.is_some());
        // The same provider id at another webhook is another event.
        assert!(matches!(
            s.insert_event(ingest(event("i2", "evt_1"))).await.unwrap(),
            InsertOutcome::Stored(_)
        ));
        assert_eq!(
            s.claim_due(&me(), now_millis(), 10, now_millis() + 1)
                .await
                .unwrap()
                .len(),
            0,
            "a duplicate queues no relay"
        );
    }

    pub async fn concurrent_ingest_commits_every_event_once(s: SharedStore) {
        // 200 concurrent senders, each event sent twice: 200 stored, 200 duplicates, and every
        // stored event has its own seq.
        let mut tasks = vec![];
        for n in 0..400 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.insert_event(ingest(event("i1", &format!("evt_{}", n % 200))))
                    .await
                    .unwrap()
            }));
        }
        let mut seqs = HashSet::new();
        let mut duplicates = 0;
        for t in tasks {
            match t.await.unwrap() {
                InsertOutcome::Stored(seq) => assert!(seqs.insert(seq)),
                InsertOutcome::Duplicate(_) => duplicates += 1,
            }
        }
        assert_eq!((seqs.len(), duplicates), (200, 200));
        assert_eq!(
            s.max_event_seq().await.unwrap(),
            *seqs.iter().max().unwrap()
        );
    }

    pub async fn rows_belong_to_their_owner_also_after_a_delete(s: SharedStore) {
        let alice = Principal::new("token:alice");
        let mut a = inbound("owned-a");
        a.owner = alice.clone();
        let b = inbound("owned-b"); // the local principal's
        s.insert_webhook(&a).await.unwrap();
        s.insert_webhook(&b).await.unwrap();
        assert_eq!(s.get_webhook(&a.id).await.unwrap().unwrap().owner, alice);
        let only = |owner: &Principal| WebhookFilter {
            owner: Some(owner.clone()),
            ..Default::default()
        };
        assert_eq!(
            s.list_webhooks(only(&alice)).await.unwrap(),
            vec![a.clone()]
        );
        assert_eq!(
            s.list_webhooks(only(&Principal::local())).await.unwrap(),
            vec![b.clone()]
        );
        for (hook, n) in [("owned-a", 1), ("owned-b", 2), ("owned-a", 3)] {
            s.insert_event(ingest(event(hook, &format!("o{n}"))))
                .await
                .unwrap();
        }
        let mut refused = Receipt::new(b.id.clone(), "http://x/hooks".into());
        refused.status = DeliveryStatus::Failed;
        refused.error = Some("bad signature".into());
        s.log_receipt(refused).await.unwrap();
        let events_of = |owner: &Principal| EventQuery {
            owner: Some(owner.clone()),
            limit: 10,
            ..Default::default()
        };
        let log_of = |owner: &Principal| DeliveryQuery {
            owner: Some(owner.clone()),
            limit: 10,
            ..Default::default()
        };
        let check = |deleted: bool| {
            let (s, alice, a) = (s.clone(), alice.clone(), a.clone());
            async move {
                let theirs = s.list_events(events_of(&alice)).await.unwrap();
                assert_eq!(theirs.len(), 2, "deleted {deleted}");
                assert!(theirs.iter().all(|e| e.webhook_id == a.id));
                let mine = s.list_events(events_of(&Principal::local())).await.unwrap();
                assert_eq!(mine.len(), 1);
                let log = s.query_deliveries(log_of(&alice)).await.unwrap().rows;
                assert_eq!(log.len(), 2, "alice's two accepted requests: {log:?}");
                assert!(log.iter().all(|d| d.webhook_id() == &a.id));
                let log = s
                    .query_deliveries(log_of(&Principal::local()))
                    .await
                    .unwrap()
                    .rows;
                assert_eq!(log.len(), 2, "one accepted, one refused");
                assert_eq!(s.owner_of(&a.id).await.unwrap(), Some(alice.clone()));
            }
        };
        check(false).await;
        // History outlives the webhook and stays its owner's.
        assert!(s.delete_webhook(&a.id).await.unwrap());
        check(true).await;
        assert_eq!(s.owner_of(&"never-made".into()).await.unwrap(), None);
    }

    pub async fn events_list_by_filter_and_cursor(s: SharedStore) {
        let mut ids = vec![];
        for (n, hook) in ["a", "b", "a", "a", "b"].iter().enumerate() {
            let mut e = event(hook, &format!("p{n}"));
            if n == 3 {
                e.event = "order.refunded".into();
            }
            ids.push(e.id.clone());
            s.insert_event(ingest(e)).await.unwrap();
        }
        let q = |webhook: Option<&str>, ev: Option<&str>, after: i64, limit: usize, newest| {
            EventQuery {
                webhook_id: webhook.map(WebhookId::from),
                owner: None,
                event: ev.map(str::to_string),
                after: Some(after),
                limit,
                newest_first: newest,
            }
        };
        let all = s.list_events(q(None, None, 0, 10, false)).await.unwrap();
        assert_eq!(
            all.iter().map(|e| &e.id).collect::<Vec<_>>(),
            ids.iter().collect::<Vec<_>>()
        );
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        let of_a = s
            .list_events(q(Some("a"), None, 0, 10, false))
            .await
            .unwrap();
        assert_eq!(of_a.len(), 3);
        let refunds = s
            .list_events(q(None, Some("order.refunded"), 0, 10, false))
            .await
            .unwrap();
        assert_eq!(refunds[0].id, ids[3]);
        let page2 = s
            .list_events(q(None, None, all[1].seq, 2, false))
            .await
            .unwrap();
        assert_eq!(
            page2.iter().map(|e| &e.id).collect::<Vec<_>>(),
            vec![&ids[2], &ids[3]]
        );
        let newest = s.list_events(q(None, None, 0, 2, true)).await.unwrap();
        assert_eq!(
            newest.iter().map(|e| &e.id).collect::<Vec<_>>(),
            vec![&ids[4], &ids[3]]
        );
        assert_eq!(s.max_event_seq().await.unwrap(), all[4].seq);
    }

    pub async fn receipts_of_stored_events_read_back_their_body(s: SharedStore) {
        let e = event("i1", "evt_1");
        let i = ingest(e.clone());
        s.insert_event(i).await.unwrap();
        // A stored event is its own receipt: the receipt's id is the event's.
        let receipt_id = DeliveryId::from(e.id.as_str());
        let Some(Delivery::Receipt(r)) = s.get_delivery(&receipt_id).await.unwrap() else {
            panic!("not a receipt")
        };
        assert_eq!(r.event_id, Some(e.id.clone()));
        assert_eq!(
            r.request_body.as_deref(),
            Some(e.payload.to_string().as_str())
        );
        assert_eq!(r.request_headers, e.headers);
        assert_eq!(
            (r.status, r.status_code),
            (DeliveryStatus::Succeeded, Some(200))
        );
    }

    pub async fn stored_events_are_their_own_receipts_in_a_paged_log(s: SharedStore) {
        // Interleaved in time: stored events (accepted requests), refused requests, and an
        // event the server raised itself (no request, so no receipt).
        let base = now_millis() - 10_000;
        let mut expected = vec![];
        for n in 0..4i64 {
            let mut e = event("i1", &format!("p{n}"));
            e.received_at = base + 10 * n;
            s.insert_event(ingest(e.clone())).await.unwrap();
            expected.push((e.received_at, DeliveryId::from(e.id.as_str())));
            let mut refused = Receipt::new("i1".into(), "http://x/hooks/i1".into());
            refused.status = DeliveryStatus::Failed;
            refused.created_at = base + 10 * n + 5;
            s.log_receipt(refused.clone()).await.unwrap();
            expected.push((refused.created_at, refused.id.clone()));
        }
        let mut raised = ingest(event("i1", "raised"));
        raised.receipt = None;
        s.insert_event(raised).await.unwrap();
        expected.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        let expected: Vec<DeliveryId> = expected.into_iter().map(|(_, id)| id).collect();

        // Pages of 3 walk the whole log once, newest first, across both kinds of row.
        let (mut seen, mut before) = (vec![], None);
        loop {
            let page = s
                .query_deliveries(DeliveryQuery {
                    before,
                    limit: 3,
                    ..Default::default()
                })
                .await
                .unwrap();
            seen.extend(page.rows.iter().map(|d| d.id().clone()));
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
            assert!(seen.len() <= 8, "paging does not end: {seen:?}");
        }
        assert_eq!(seen, expected);
        // A stored event's receipt is found by the event's id, with its body and 200.
        let Some(Delivery::Receipt(r)) = s.get_delivery(&expected[1]).await.unwrap() else {
            panic!("the stored event's receipt is not found by its id")
        };
        assert_eq!(
            (
                r.status,
                r.status_code,
                r.event_id.as_ref().map(|e| e.as_str())
            ),
            (
                DeliveryStatus::Succeeded,
                Some(200),
                Some(expected[1].as_str())
            )
        );
        // Filters apply to both kinds: refused only, accepted only, outbound none.
        let count = |q: DeliveryQuery| {
            let s = s.clone();
            async move { s.query_deliveries(q).await.unwrap().rows.len() }
        };
        let q = |status, direction| DeliveryQuery {
            status,
            direction,
            limit: 50,
            ..Default::default()
        };
        assert_eq!(count(q(Some(DeliveryStatus::Failed), None)).await, 4);
        assert_eq!(count(q(Some(DeliveryStatus::Succeeded), None)).await, 4);
        assert_eq!(count(q(None, Some(Direction::Inbound))).await, 8);
        assert_eq!(count(q(None, Some(Direction::Outbound))).await, 0);
        let window = DeliveryQuery {
            since: Some(base + 10),
            until: Some(base + 20),
            limit: 50,
            ..Default::default()
        };
        assert_eq!(count(window).await, 3);
    }

    pub async fn the_log_is_filtered_and_paged_newest_first(s: SharedStore) {
        let o = outbound("o1");
        let mut refused = Receipt::new("i1".into(), "http://x/hooks/i1".into());
        refused.status = DeliveryStatus::Failed;
        refused.status_code = Some(401);
        refused.error = Some("signature rejected".into());
        refused.request_body = Some("{}".into());
        s.log_receipt(refused.clone()).await.unwrap();
        let mut test = outgoing(&o, 0).first;
        test.trigger = Trigger::Test;
        let test = finished(test, DeliveryStatus::Succeeded);
        s.log_attempt(test.clone()).await.unwrap();
        let mut later = outgoing(&o, 0).first;
        later.event = "order.shipped".into();
        let later = finished(later, DeliveryStatus::Failed);
        s.log_attempt(later.clone()).await.unwrap();

        let all = s
            .query_deliveries(DeliveryQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .rows;
        assert_eq!(
            all.iter().map(|d| d.id().clone()).collect::<Vec<_>>(),
            vec![later.id.clone(), test.id.clone(), refused.id.clone()]
        );
        let Delivery::Receipt(r) = &all[2] else {
            panic!()
        };
        assert_eq!(
            (r.status_code, r.error.as_deref()),
            (Some(401), Some("signature rejected"))
        );
        let Delivery::Attempt(t) = &all[1] else {
            panic!()
        };
        assert_eq!(
            (t.trigger, t.number, &t.message_id),
            (Trigger::Test, 1, &test.message_id)
        );

        let by = |q: DeliveryQuery| {
            let s = s.clone();
            async move { s.query_deliveries(q).await.unwrap().rows }
        };
        let failed = by(DeliveryQuery {
            status: Some(DeliveryStatus::Failed),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(failed.len(), 2);
        let outbound_only = by(DeliveryQuery {
            direction: Some(Direction::Outbound),
            webhook_id: Some(o.id.clone()),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(outbound_only.len(), 2);
        let shipped = by(DeliveryQuery {
            event: Some("order.shipped".into()),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(shipped[0].id(), &later.id);
        let first = s
            .query_deliveries(DeliveryQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(first.rows[0].id(), &later.id);
        let page = by(DeliveryQuery {
            before: first.next,
            limit: 1,
            ..Default::default()
        })
        .await;
        assert_eq!(page[0].id(), &test.id);
        let window = by(DeliveryQuery {
            since: Some(now_millis() + 60_000),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert!(window.is_empty());
        assert_eq!(s.get_delivery(&"nope".into()).await.unwrap(), None);
    }

    pub async fn changes_since_reports_events_and_webhook_changes(s: SharedStore) {
        let start = s.changes_since(ChangeCursor::default(), 100).await.unwrap();
        assert!(start.events.is_empty() && start.webhooks.is_empty());
        let o = outbound("o1");
        let i = inbound("i1");
        s.insert_webhook(&o).await.unwrap();
        s.insert_webhook(&i).await.unwrap();
        s.rotate_secret(&i.id, Secret::new("new-secret"), None, now_millis())
            .await
            .unwrap();
        let e1 = event("i1", "p1");
        let e2 = event("i1", "p2");
        s.insert_event(ingest(e1.clone())).await.unwrap();
        s.insert_event(ingest(e2.clone())).await.unwrap();

        let c = s.changes_since(start.cursor, 100).await.unwrap();
        assert_eq!(
            c.events.iter().map(|n| &n.id).collect::<Vec<_>>(),
            vec![&e1.id, &e2.id]
        );
        assert_eq!(c.events[0].webhook_id.as_str(), "i1");
        assert_eq!(c.events[0].event, "order.paid");
        // Each webhook once, in order of its latest change.
        assert_eq!(c.webhooks, vec![o.id.clone(), i.id.clone()]);

        // Nothing new after the returned cursor; then a delete shows up.
        let none = s.changes_since(c.cursor, 100).await.unwrap();
        assert!(none.events.is_empty() && none.webhooks.is_empty());
        assert_eq!(none.cursor, c.cursor);
        s.delete_webhook(&o.id).await.unwrap();
        let deleted = s.changes_since(c.cursor, 100).await.unwrap();
        assert_eq!(deleted.webhooks, vec![o.id.clone()]);

        // A limit pages through.
        let first = s.changes_since(start.cursor, 1).await.unwrap();
        assert_eq!(first.events.len(), 1);
        let rest = s.changes_since(first.cursor, 100).await.unwrap();
        assert_eq!(rest.events[0].id, e2.id);
    }

    pub async fn the_queue_claims_leases_and_completes(s: SharedStore) {
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        let now = now_millis();
        let due = outgoing(&o, now - 10);
        let later = outgoing(&o, now + 3_600_000);
        s.enqueue(vec![due.clone(), later.clone()]).await.unwrap();
        assert_eq!(s.next_due_at().await.unwrap(), Some(now - 10));

        let claimed = s.claim_due(&me(), now, 10, now + 60_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "only the due attempt");
        let c = &claimed[0];
        assert_eq!(c.attempt.id, due.first.id);
        assert_eq!(c.body, due.message.body);
        assert_eq!(c.webhook.as_ref().map(|w| &w.id), Some(&o.id));
        // Leased: nobody else gets it before the lease ends; after it, it is claimable again.
        assert!(s
            .claim_due(&me(), now, 10, now + 60_000)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.next_due_at().await.unwrap(), Some(now + 3_600_000));
        let expired = s
            .claim_due(&me(), now + 60_001, 1, now + 120_000)
            .await
            .unwrap();
        assert_eq!(expired[0].attempt.id, due.first.id);
        // The owner stops cleanly: its lease is freed, claimable at once.
        assert_eq!(s.retire_instance(&me()).await.unwrap(), 1);
        let again = s.claim_due(&me(), now, 10, now + 60_000).await.unwrap();
        assert_eq!(again.len(), 1);

        // Complete with a retry: the row is final, the retry pending and due later.
        let retry =
            again[0]
                .attempt
                .follow_up(Trigger::Scheduled, 2, o.target_url.clone(), now + 5_000);
        let mut done = finished(again[0].attempt.clone(), DeliveryStatus::Failed);
        done.next_attempt_at = retry.next_attempt_at;
        done.error = Some("HTTP 500".into());
        s.complete(vec![Completion {
            attempt: done.clone(),
            next: Some(retry.clone()),
            health: HealthChange::None,
        }])
        .await
        .unwrap();
        let Some(Delivery::Attempt(row)) = s.get_delivery(&done.id).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            (row.status, row.error.as_deref()),
            (DeliveryStatus::Failed, Some("HTTP 500"))
        );
        let state = s.message_state(&due.message.id).await.unwrap();
        assert_eq!((state.last_attempt, state.pending), (2, true));
        assert!(s
            .claim_due(&me(), now, 10, now + 1)
            .await
            .unwrap()
            .is_empty());
        let retried = s
            .claim_due(&me(), now + 5_000, 10, now + 65_000)
            .await
            .unwrap();
        assert_eq!(retried[0].attempt.id, retry.id);
        assert_eq!(retried[0].attempt.number, 2);

        // The queued attempts, newest first, a page at a time; the finished one is not among
        // them (SQLite reads these from the index of pending attempts, `store::log`).
        let pending = |before| DeliveryQuery {
            status: Some(DeliveryStatus::Pending),
            limit: 1,
            before,
            ..Default::default()
        };
        let first = s.query_deliveries(pending(None)).await.unwrap();
        let second = s.query_deliveries(pending(first.next)).await.unwrap();
        let ids = |p: &webhook_mcp::store::log::LogPage| {
            p.rows.iter().map(|r| r.id().clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            (ids(&first), ids(&second)),
            (vec![retry.id.clone()], vec![later.first.id.clone()])
        );
        let third = s.query_deliveries(pending(second.next)).await.unwrap();
        assert!(third.rows.is_empty(), "{third:?}");
        let failed = s
            .query_deliveries(DeliveryQuery {
                status: Some(DeliveryStatus::Failed),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&failed), vec![done.id.clone()]);

        // An attempt of a deleted webhook is claimed without one.
        s.delete_webhook(&o.id).await.unwrap();
        let orphans = s
            .claim_due(&me(), now + 3_600_000, 10, now + 3_700_000)
            .await
            .unwrap();
        assert!(orphans.iter().any(|c| c.attempt.id == later.first.id));
        assert!(orphans.iter().all(|c| c.webhook.is_none()));
    }

    pub async fn concurrent_claims_never_share_an_attempt(s: SharedStore) {
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        let now = now_millis();
        let items: Vec<Outgoing> = (0..300).map(|_| outgoing(&o, now - 1)).collect();
        s.enqueue(items).await.unwrap();
        let mut tasks = vec![];
        for _ in 0..6 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = vec![];
                loop {
                    let got = s.claim_due(&me(), now, 7, now + 60_000).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|c| c.attempt.id));
                }
            }));
        }
        let mut seen = HashSet::new();
        for t in tasks {
            for id in t.await.unwrap() {
                assert!(seen.insert(id), "an attempt was claimed twice");
            }
        }
        assert_eq!(seen.len(), 300);
    }

    pub async fn health_changes_count_disable_and_reset(s: SharedStore) {
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        let now = now_millis();
        s.enqueue((0..3).map(|_| outgoing(&o, now - 1)).collect())
            .await
            .unwrap();
        let c = s.claim_due(&me(), now, 3, now + 60_000).await.unwrap();
        let fail = |a: &Attempt, disable: Option<&str>| Completion {
            attempt: finished(a.clone(), DeliveryStatus::Failed),
            next: None,
            health: HealthChange::Failure {
                disable: disable.map(str::to_string),
            },
        };
        s.complete(vec![fail(&c[0].attempt, None)]).await.unwrap();
        let w = s.get_webhook(&o.id).await.unwrap().unwrap();
        assert_eq!(w.failure_count, 1);
        let since = w.first_failure_at.unwrap();
        s.complete(vec![Completion {
            attempt: finished(c[1].attempt.clone(), DeliveryStatus::Succeeded),
            next: None,
            health: HealthChange::Success,
        }])
        .await
        .unwrap();
        let w = s.get_webhook(&o.id).await.unwrap().unwrap();
        assert_eq!((w.failure_count, w.first_failure_at), (0, None));
        assert!(since > 0);
        s.complete(vec![fail(
            &c[2].attempt,
            Some("the target answered 410 Gone"),
        )])
        .await
        .unwrap();
        let w = s.get_webhook(&o.id).await.unwrap().unwrap();
        assert!(!w.enabled);
        assert_eq!(
            w.disabled_reason.as_deref(),
            Some("the target answered 410 Gone")
        );
        // The feed reports the health changes too (the cache of another process must drop them).
        let changes = s.changes_since(ChangeCursor::default(), 100).await.unwrap();
        assert_eq!(changes.webhooks, vec![o.id.clone()]);
        assert!(changes.cursor.webhook_rev >= 3);
    }

    pub async fn redelivery_reads_finally_failed_messages(s: SharedStore) {
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        let now = now_millis();
        let (a, b) = (outgoing(&o, now - 1), outgoing(&o, now - 1));
        s.enqueue(vec![a.clone(), b.clone()]).await.unwrap();
        let c = s.claim_due(&me(), now, 10, now + 60_000).await.unwrap();
        let done: Vec<Completion> = c
            .iter()
            .map(|c| Completion {
                attempt: finished(
                    c.attempt.clone(),
                    if c.attempt.id == a.first.id {
                        DeliveryStatus::Failed
                    } else {
                        DeliveryStatus::Succeeded
                    },
                ),
                next: None,
                health: HealthChange::None,
            })
            .collect();
        s.complete(done).await.unwrap();
        let failed = s
            .finally_failed(&o.id, now - 60_000, now + 60_000)
            .await
            .unwrap();
        assert_eq!(
            failed.iter().map(|f| &f.id).collect::<Vec<_>>(),
            vec![&a.first.id]
        );
        let state = s.message_state(&b.message.id).await.unwrap();
        assert_eq!((state.last_attempt, state.pending), (1, false));
        // A new manual attempt makes the message pending and no longer finally failed.
        let manual = failed[0].follow_up(Trigger::Manual, 2, o.target_url.clone(), now);
        s.enqueue_attempts(vec![manual]).await.unwrap();
        assert!(s
            .finally_failed(&o.id, now - 60_000, now + 60_000)
            .await
            .unwrap()
            .is_empty());
        assert!(s.message_state(&a.message.id).await.unwrap().pending);
    }

    pub async fn dead_instances_lose_their_leases_live_ones_keep_them(s: SharedStore) {
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        let now = now_millis();
        s.enqueue((0..4).map(|_| outgoing(&o, now - 1)).collect())
            .await
            .unwrap();
        let (alive, dead) = (InstanceId("alive".into()), InstanceId("dead".into()));
        s.heartbeat(&alive, now - 10_000).await.unwrap();
        s.heartbeat(&dead, now - 10_000).await.unwrap();
        let lease = now + 600_000;
        assert_eq!(s.claim_due(&alive, now, 2, lease).await.unwrap().len(), 2);
        assert_eq!(s.claim_due(&dead, now, 2, lease).await.unwrap().len(), 2);
        // A starting process claims nothing that a live one holds.
        assert!(s.claim_due(&me(), now, 10, lease).await.unwrap().is_empty());
        s.heartbeat(&alive, now).await.unwrap();
        // Only the silent instance's leases are freed.
        assert_eq!(s.reap_dead_instances(now - 5_000).await.unwrap(), 2);
        assert_eq!(s.reap_dead_instances(now - 5_000).await.unwrap(), 0);
        let resumed = s.claim_due(&me(), now, 10, lease).await.unwrap();
        assert_eq!(
            resumed.len(),
            2,
            "the dead instance's attempts are claimed again"
        );
        // The caller that took them over is not registered either: its leases go next time,
        // unless it heartbeats.
        s.heartbeat(&me(), now).await.unwrap();
        assert_eq!(s.reap_dead_instances(now - 5_000).await.unwrap(), 0);
    }

    pub async fn a_job_lock_has_one_holder_at_a_time(s: SharedStore) {
        let (a, b) = (InstanceId("a".into()), InstanceId("b".into()));
        let now = now_millis();
        assert!(s.try_job_lock("prune", &a, now, now + 3_000).await.unwrap());
        assert!(!s
            .try_job_lock("prune", &b, now + 1, now + 3_001)
            .await
            .unwrap());
        // The holder renews; another job is independent.
        assert!(s
            .try_job_lock("prune", &a, now + 2, now + 3_002)
            .await
            .unwrap());
        assert!(s.try_job_lock("reap", &b, now, now + 3_000).await.unwrap());
        // Expired: the next one takes it.
        assert!(s
            .try_job_lock("prune", &b, now + 3_003, now + 6_000)
            .await
            .unwrap());
        assert!(!s
            .try_job_lock("prune", &a, now + 3_004, now + 6_000)
            .await
            .unwrap());
        // Retiring releases what the owner held.
        s.retire_instance(&b).await.unwrap();
        assert!(s
            .try_job_lock("prune", &a, now + 3_005, now + 6_000)
            .await
            .unwrap());
    }

    pub async fn the_change_cursor_starts_at_now(s: SharedStore) {
        s.insert_webhook(&outbound("o1")).await.unwrap();
        s.insert_event(ingest(event("i1", "p1"))).await.unwrap();
        let now = s.change_cursor().await.unwrap();
        let nothing = s.changes_since(now, 100).await.unwrap();
        assert!(nothing.events.is_empty() && nothing.webhooks.is_empty());
        s.insert_event(ingest(event("i1", "p2"))).await.unwrap();
        let one = s.changes_since(now, 100).await.unwrap();
        assert_eq!(one.events.len(), 1);
        assert_eq!(one.cursor.event_seq, s.max_event_seq().await.unwrap());
        assert!(!s.store_id().is_empty());
        s.check_writable().await.unwrap();
    }

    pub async fn concurrent_edits_lose_nothing(s: SharedStore) {
        // An edit racing an auto-disable, and a rotation racing an edit: every change survives.
        for round in 0..10 {
            let o = outbound(&format!("o{round}"));
            s.insert_webhook(&o).await.unwrap();
            let now = now_millis();
            s.enqueue(vec![outgoing(&o, now - 1)]).await.unwrap();
            let claimed = s.claim_due(&me(), now, 1, now + 60_000).await.unwrap();
            let disable = {
                let s = s.clone();
                let attempt = finished(claimed[0].attempt.clone(), DeliveryStatus::Failed);
                tokio::spawn(async move {
                    s.complete(vec![Completion {
                        attempt,
                        next: None,
                        health: HealthChange::Failure {
                            disable: Some("the target answered 410 Gone".into()),
                        },
                    }])
                    .await
                    .unwrap()
                })
            };
            let edit = {
                let (s, id) = (s.clone(), o.id.clone());
                tokio::spawn(async move {
                    s.update_webhook(
                        &id,
                        WebhookChange {
                            description: Some(format!("edited {round}")),
                            updated_at: now,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap()
                })
            };
            let rotate = {
                let (s, id) = (s.clone(), o.id.clone());
                tokio::spawn(async move {
                    s.rotate_secret(&id, Secret::new(format!("rotated-{round}")), None, now)
                        .await
                        .unwrap()
                })
            };
            let (a, b, c) = (disable.await, edit.await, rotate.await);
            a.unwrap();
            b.unwrap();
            c.unwrap();
            let w = s.get_webhook(&o.id).await.unwrap().unwrap();
            assert!(!w.enabled, "round {round}: the auto-disable was lost");
            assert_eq!(w.description, format!("edited {round}"), "round {round}");
            assert_eq!(
                w.secret.expose(),
                format!("rotated-{round}"),
                "round {round}"
            );
            assert_eq!(w.failure_count, 1, "round {round}");
        }
    }

    /// Events are pruned as a prefix of `seq`: the oldest run past the cutoff, up to the first
    /// younger event (an old event behind it waits until it is old too).
    pub async fn prune_takes_events_in_arrival_order(s: SharedStore) {
        let now = now_millis();
        let cutoff = now - 30_000;
        let (mut ids, mut seqs) = (vec![], vec![]);
        for (n, at) in [now - 60_000, now - 59_000, now, now - 58_000]
            .iter()
            .enumerate()
        {
            let mut e = event("w", &format!("p{n}"));
            e.received_at = *at;
            ids.push(e.id.clone());
            match s.insert_event(ingest(e)).await.unwrap() {
                InsertOutcome::Stored(seq) => seqs.push(seq),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(s.events_pruned_through().await.unwrap(), 0);
        let cut = PruneCutoffs {
            events_before: Some(cutoff),
            deliveries_before: None,
            changes_before: None,
            keys_before: None,
        };
        // A batch of one takes the oldest alone; then the second; the young third stops it.
        // Each marks how far it went: a reader behind the mark has lost events.
        assert_eq!(s.prune(cut, 1).await.unwrap().events, 1);
        assert_eq!(s.events_pruned_through().await.unwrap(), seqs[0]);
        assert_eq!(s.prune(cut, 10).await.unwrap().events, 1);
        assert_eq!(s.events_pruned_through().await.unwrap(), seqs[1]);
        assert_eq!(s.prune(cut, 10).await.unwrap().events, 0);
        assert_eq!(s.events_pruned_through().await.unwrap(), seqs[1]);
        let kept: Vec<bool> = stored(&s, &ids).await;
        assert_eq!(kept, [false, false, true, true]);
    }

    pub async fn prune_deletes_old_history_and_keeps_the_rest(s: SharedStore) {
        let now = now_millis();
        let old = now - 60_000;
        let cutoff = now - 30_000;
        // Three old events and one young, each with the receipt that stored it.
        let mut old_events = vec![];
        for n in 0..3 {
            let mut e = event("i1", &format!("old_{n}"));
            e.received_at = old + n;
            let i = ingest(e.clone());
            old_events.push((e.id.clone(), i.receipt.as_ref().unwrap().id.clone()));
            s.insert_event(i).await.unwrap();
        }
        let young = event("i1", "young");
        let young_ingest = ingest(young.clone());
        let young_receipt = young_ingest.receipt.as_ref().unwrap().id.clone();
        s.insert_event(young_ingest).await.unwrap();
        // A refused request long ago: a receipt with no event.
        let mut refused = Receipt::new("i1".into(), "http://x/hooks/i1".into());
        refused.status = DeliveryStatus::Failed;
        refused.created_at = old;
        s.log_receipt(refused.clone()).await.unwrap();
        // Outbound: an old message whose only attempt finished, and an old one still pending.
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        let mut done = outgoing(&o, old);
        done.first.created_at = old;
        let mut pending = outgoing(&o, old);
        pending.first.created_at = old;
        s.enqueue(vec![done.clone(), pending.clone()])
            .await
            .unwrap();
        s.complete(vec![Completion {
            attempt: finished(done.first.clone(), DeliveryStatus::Succeeded),
            next: None,
            health: HealthChange::None,
        }])
        .await
        .unwrap();

        let cutoffs = PruneCutoffs {
            events_before: Some(cutoff),
            deliveries_before: Some(cutoff),
            changes_before: None,
            keys_before: None,
        };
        // Batches are bounded: two events at a time.
        let first = s.prune(cutoffs, 2).await.unwrap();
        assert_eq!(first.events, 2, "{first:?}");
        assert!(first.full(2));
        let mut total = first;
        loop {
            let batch = s.prune(cutoffs, 2).await.unwrap();
            total += batch;
            if !batch.full(2) {
                break;
            }
        }
        assert_eq!(
            total,
            Pruned {
                events: 3,
                // The refused receipt and the finished attempt (receipts of pruned events go
                // with their events and are not counted here).
                deliveries: 2,
                messages: 1,
                changes: 0,
                keys: 0,
            }
        );
        for (event_id, receipt_id) in &old_events {
            assert_eq!(s.get_event(event_id).await.unwrap(), None);
            assert!(
                s.get_delivery(receipt_id).await.unwrap().is_none(),
                "a pruned event's receipt must go with it"
            );
        }
        assert!(s.get_event(&young.id).await.unwrap().is_some());
        assert!(s.get_delivery(&young_receipt).await.unwrap().is_some());
        assert!(s.get_delivery(&refused.id).await.unwrap().is_none());
        assert!(s.get_delivery(&done.first.id).await.unwrap().is_none());
        // The pending attempt and its message survive, still sendable.
        let claimed = s.claim_due(&me(), now, 10, now + 60_000).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].attempt.id, pending.first.id);
        assert_eq!(claimed[0].body, pending.message.body);
        // A provider id is de-duplicated only while its event is kept.
        let again = event("i1", "old_0");
        assert!(matches!(
            s.insert_event(ingest(again)).await.unwrap(),
            InsertOutcome::Stored(_)
        ));
        assert!(matches!(
            s.insert_event(ingest(event("i1", "young"))).await.unwrap(),
            InsertOutcome::Duplicate(_)
        ));
        // Nothing left to do.
        assert_eq!(s.prune(cutoffs, 2).await.unwrap().total(), 0);
        assert!(s.size_bytes().await.unwrap().unwrap_or(1) > 0);
        s.compact(false).await.unwrap();
    }

    pub async fn an_idempotency_key_queues_once_even_concurrently(s: SharedStore) {
        let o = outbound("o1");
        s.insert_webhook(&o).await.unwrap();
        let now = now_millis();
        let window = now - 24 * 3600 * 1000;
        let calls = (0..8).map(|n| {
            let s = s.clone();
            let item = outgoing(&o, now);
            async move {
                s.enqueue_idempotent("key-1", format!("result {n}"), vec![item], now, window)
                    .await
                    .unwrap()
            }
        });
        let results = futures::future::join_all(calls).await;
        let firsts: Vec<_> = results.iter().filter(|r| r.is_none()).collect();
        assert_eq!(firsts.len(), 1, "exactly one call queues: {results:?}");
        let replayed: HashSet<_> = results.iter().flatten().collect();
        assert_eq!(
            replayed.len(),
            1,
            "every other call gets the same first result"
        );
        let claimed = s.claim_due(&me(), now, 100, now + 60_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "one message queued");
        // An expired key is a new key.
        let later = now + 25 * 3600 * 1000;
        let again = s
            .enqueue_idempotent(
                "key-1",
                "second".into(),
                vec![],
                later,
                later - 24 * 3600 * 1000,
            )
            .await
            .unwrap();
        assert_eq!(again, None);
        let third = s
            .enqueue_idempotent(
                "key-1",
                "third".into(),
                vec![],
                later,
                later - 24 * 3600 * 1000,
            )
            .await
            .unwrap();
        assert_eq!(third.as_deref(), Some("second"));
        // Retention removes keys stored before its cutoff, and only those.
        let cut = PruneCutoffs {
            keys_before: Some(later + 1),
            ..Default::default()
        };
        assert_eq!(s.prune(cut, 10).await.unwrap().keys, 1);
        assert_eq!(s.prune(cut, 10).await.unwrap().keys, 0);
    }

    pub async fn subscriptions_advance_once_hide_from_lists_and_expire(s: SharedStore) {
        let now = now_millis();
        let id = EventSubscription::derive_id("local:me", "https://example.com/cb", "a", "{}");
        let sub = EventSubscription {
            id: id.clone(),
            principal: "local:me".into(),
            name: "a".into(),
            arguments: "{}".into(),
            cursor: 0,
            not_before: None,
            expires_at: Some(now + 60_000),
            created_at: now,
            refreshed_at: now,
        };
        let mut hook = outbound(id.as_str());
        hook.target_url = "https://example.com/cb".into();
        s.insert_webhook(&outbound("o1")).await.unwrap();
        assert!(s.insert_subscription(&sub, &hook).await.unwrap());
        assert!(
            !s.insert_subscription(&sub, &hook).await.unwrap(),
            "a second insert of one id writes nothing"
        );
        assert_eq!(s.get_subscription(&id).await.unwrap().as_ref(), Some(&sub));
        assert_eq!(
            s.get_webhook(&id.delivery_row()).await.unwrap().as_ref(),
            Some(&hook)
        );
        let listed = s.list_webhooks(WebhookFilter::default()).await.unwrap();
        assert_eq!(
            listed.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
            vec!["o1"],
            "the subscription's engine row is not a webhook anyone made"
        );

        // Eight concurrent advances from one cursor: one queues, the rest find it moved.
        let e = event("i1", "p-1");
        let seq = match s.insert_event(ingest(e.clone())).await.unwrap() {
            InsertOutcome::Stored(seq) => seq,
            other => panic!("{other:?}"),
        };
        let calls = (0..8).map(|_| {
            let (s, hook, id) = (s.clone(), hook.clone(), id.clone());
            let mut item = outgoing(&hook, now);
            item.message.event_id = Some(e.id.clone());
            item.first.event_id = Some(e.id.clone());
            async move {
                s.advance_subscription(&id, 0, seq, vec![item])
                    .await
                    .unwrap()
            }
        });
        let won = futures::future::join_all(calls).await;
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        assert_eq!(s.get_subscription(&id).await.unwrap().unwrap().cursor, seq);
        assert_eq!(s.subscription_backlog(&id).await.unwrap(), Some(seq));
        let claimed = s.claim_due(&me(), now, 100, now + 60_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "one message queued");
        s.complete(vec![Completion {
            attempt: finished(claimed[0].attempt.clone(), DeliveryStatus::Succeeded),
            next: None,
            health: HealthChange::Success,
        }])
        .await
        .unwrap();
        assert_eq!(s.subscription_backlog(&id).await.unwrap(), None);

        // Refresh moves the expiry; expiry finds it; delete removes both rows.
        assert!(s.refresh_subscription(&id, None, now + 1).await.unwrap());
        assert!(s
            .expired_subscriptions(now + 3_600_000)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.list_subscriptions(now).await.unwrap().len(), 1);
        assert!(s
            .refresh_subscription(&id, Some(now + 10), now + 2)
            .await
            .unwrap());
        assert_eq!(
            s.expired_subscriptions(now + 10).await.unwrap(),
            vec![id.clone()]
        );
        assert!(s.list_subscriptions(now + 10).await.unwrap().is_empty());
        assert!(s.delete_subscription(&id).await.unwrap());
        assert_eq!(s.get_subscription(&id).await.unwrap(), None);
        assert_eq!(s.get_webhook(&id.delivery_row()).await.unwrap(), None);
        assert!(!s.delete_subscription(&id).await.unwrap());
        assert!(!s.refresh_subscription(&id, None, now).await.unwrap());
    }
}
