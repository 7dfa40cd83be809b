//! Delivery-log query time with 1,000,000 attempt rows, and the store's size on disk.
//!
//! Run: `cargo bench --bench store -- [rows]` (default 1000000). Rows are spread over 50
//! webhooks, one in ten failed. Measures `DeliveryLog::query_deliveries` (one webhook's failures,
//! newest first, one page of 50) beside the same query written the naive way
//! (`?x IS NULL OR col = ?x` for every optional filter), which no index can serve.
//!
//! Rows are laid out as the engine writes them: each attempt's message in `messages`, the body
//! stored there once and read by the log from it. `BENCH_BODY_PER_ATTEMPT=1` also copies the
//! body into the attempt's row, as releases before the body was stored once did (to compare the
//! two layouts' size and query time with one harness).

use std::time::{Duration, Instant};

use rusqlite::params;
use webhook_mcp::model::DeliveryStatus;
use webhook_mcp::store::sqlite::SqliteStore;
use webhook_mcp::store::{DeliveryLog, DeliveryQuery};

fn pct(v: &mut [Duration], p: usize) -> f64 {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-mcp.db");
    let store = SqliteStore::open(&path).unwrap();

    let started = Instant::now();
    {
        let mut c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "synchronous", "OFF").unwrap();
        let tx = c.transaction().unwrap();
        let body_per_attempt = std::env::var("BENCH_BODY_PER_ATTEMPT").is_ok_and(|v| v == "1");
        {
            let mut message = tx
                .prepare(
                    "INSERT INTO messages (id, webhook_id, event, body, created_at) \
                     VALUES (?1, ?2, 'order.paid', ?3, ?4)",
                )
                .unwrap();
            let mut insert = tx
                .prepare(
                    "INSERT INTO deliveries (id, webhook_id, event, direction, trigger, attempt, url, status, \
                     status_code, duration_ms, request_headers, request_body, response_headers, response_body, created_at, message_id) \
                     VALUES (?1, ?2, 'order.paid', 'outbound', 'scheduled', 1, 'https://example.com/hook', ?3, ?4, 12, \
                     '{\"content-type\":\"application/json\"}', ?5, '{}', 'ok', ?6, ?7)",
                )
                .unwrap();
            for i in 0..rows {
                let failed = (i / 50) % 10 == 0; // one in ten of every webhook's rows
                                                 // A few attempts still queued, spread through history.
                let pending = i % 50_000 == 49_999;
                let body = format!("{{\"id\":\"msg_{i}\",\"event\":\"order.paid\",\"timestamp\":\"2026-11-24T10:00:00Z\",\"data\":{{\"amount\":4200,\"customer\":\"cus_{i}\"}}}}");
                let at = 1_700_000_000_000i64 + i as i64;
                message
                    .execute(params![format!("m{i}"), format!("w{}", i % 50), body, at])
                    .unwrap();
                insert
                    .execute(params![
                        format!("d{i}"),
                        format!("w{}", i % 50),
                        if pending {
                            "pending"
                        } else if failed {
                            "failed"
                        } else {
                            "succeeded"
                        },
                        if failed { 500 } else { 200 },
                        body_per_attempt.then_some(&body),
                        at,
                        format!("m{i}"),
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let fill = started.elapsed();
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    let query = |w: usize| DeliveryQuery {
        webhook_id: Some(format!("w{w}").into()),
        status: Some(DeliveryStatus::Failed),
        limit: 50,
        ..Default::default()
    };
    let mut ours = vec![];
    for i in 0..200 {
        let t = Instant::now();
        let page = store.query_deliveries(query(i % 50)).await.unwrap();
        ours.push(t.elapsed());
        assert_eq!(page.rows.len(), 50);
    }
    // One status across every webhook (an agent asking "what failed?").
    let mut by_status = vec![];
    for _ in 0..200 {
        let t = Instant::now();
        let page = store
            .query_deliveries(DeliveryQuery {
                status: Some(DeliveryStatus::Failed),
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        by_status.push(t.elapsed());
        assert_eq!(page.rows.len(), 50);
    }
    // The queued attempts across every webhook: a few rows among a million.
    let mut pending = vec![];
    for _ in 0..200 {
        let t = Instant::now();
        let page = store
            .query_deliveries(DeliveryQuery {
                status: Some(DeliveryStatus::Pending),
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        pending.push(t.elapsed());
        assert_eq!(page.rows.len(), (rows / 50_000).min(50));
    }
    let mut newest = vec![];
    for _ in 0..200 {
        let t = Instant::now();
        let page = store
            .query_deliveries(DeliveryQuery {
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        newest.push(t.elapsed());
        assert_eq!(page.rows.len(), 50);
    }
    // One row whole, as the delivery resource shows it: with the body it sent (read from its
    // message, or its own copy).
    let mut one = vec![];
    for i in 0..200 {
        let id = webhook_mcp::model::DeliveryId::from(format!("d{}", i * 4999 % rows));
        let t = Instant::now();
        let row = store.get_delivery(&id).await.unwrap();
        one.push(t.elapsed());
        assert!(matches!(row, Some(webhook_mcp::model::Delivery::Attempt(a))
            if a.request_body.as_deref().is_some_and(|b| b.contains("msg_"))));
    }
    let naive_conn = rusqlite::Connection::open(&path).unwrap();
    let mut naive = vec![];
    for i in 0..20 {
        let t = Instant::now();
        let mut stmt = naive_conn
            .prepare_cached(
                "SELECT id FROM deliveries WHERE (?1 IS NULL OR webhook_id = ?1) AND (?2 IS NULL OR direction = ?2) \
                 AND (?3 IS NULL OR status = ?3) ORDER BY seq DESC LIMIT 50",
            )
            .unwrap();
        let n = stmt
            .query_map(
                params![format!("w{}", i % 50), Option::<String>::None, "failed"],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
            .count();
        naive.push(t.elapsed());
        assert_eq!(n, 50);
    }

    println!("| store with {rows} delivery rows | value |");
    println!("|---|---|");
    println!(
        "| size on disk (db + wal) | {:.0} MiB |",
        size as f64 / 1048576.0
    );
    println!(
        "| bulk fill (one transaction, synchronous=OFF) | {:.1} s |",
        fill.as_secs_f64()
    );
    println!("| query_deliveries {{webhook_id, status: failed}}, page of 50, p50 / p99 | {:.2} ms / {:.2} ms |", pct(&mut ours, 50), pct(&mut ours, 99));
    println!(
        "| query_deliveries {{status: failed}}, page of 50, p50 / p99 | {:.2} ms / {:.2} ms |",
        pct(&mut by_status, 50),
        pct(&mut by_status, 99)
    );
    println!(
        "| query_deliveries {{status: pending}} ({} pending), p50 / p99 | {:.2} ms / {:.2} ms |",
        rows / 50_000,
        pct(&mut pending, 50),
        pct(&mut pending, 99)
    );
    println!(
        "| query_deliveries {{}} (newest 50), p50 / p99 | {:.2} ms / {:.2} ms |",
        pct(&mut newest, 50),
        pct(&mut newest, 99)
    );
    println!(
        "| get_delivery (one row whole, with its body), p50 / p99 | {:.2} ms / {:.2} ms |",
        pct(&mut one, 50),
        pct(&mut one, 99)
    );
    println!(
        "| baseline: same filter as `?x IS NULL OR col = ?x` SQL, p50 | {:.2} ms |",
        pct(&mut naive, 50)
    );
}
