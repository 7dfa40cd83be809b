//! Retention, end to end on the real binary and a real SQLite file: a serving process prunes
//! in the background so that under steady load the store levels off, and `webhook-mcp prune`
//! does it on demand (converting an older store so that its file can shrink).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Era, Server, BIN};
use serde_json::json;

fn store_bytes(dir: &Path) -> u64 {
    ["webhook-mcp.db", "webhook-mcp.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn oldest_event_age_ms(dir: &Path) -> Option<i64> {
    let c = rusqlite::Connection::open_with_flags(
        dir.join("webhook-mcp.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let oldest: Option<i64> = c
        .query_row("SELECT MIN(received_at) FROM events", [], |r| r.get(0))
        .unwrap();
    oldest.map(|t| webhook_mcp::model::now_millis() - t)
}

/// Posts `rate` events a second, each about 8 KiB, for `secs`, sampling the store's size at
/// each second; every post must be stored (200).
async fn steady_load(server: &Server, url: &str, rate: u32, secs: u64) -> Vec<u64> {
    let filler = "x".repeat(8 * 1024);
    let mut sizes = vec![];
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        n += 1;
        let body = json!({ "event": "lead.created", "n": n, "filler": filler }).to_string();
        let (status, answer) = server.post(url, &body, &[]).await;
        assert_eq!(status, 200, "post {n}: {answer}");
        if n % rate as u64 == 0 {
            sizes.push(store_bytes(&server.data_dir));
        }
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_steady_load_a_short_retention_levels_the_store_off() {
    let server = Server::start_with(
        Era::Legacy,
        None,
        &["--retain-events", "2s", "--retain-deliveries", "2s"],
    )
    .await;
    let (_, url, _) = server
        .inbound(json!({ "provider": "none", "allow_unsigned": true }))
        .await;
    // 150 events a second of ~8 KiB: about 1.2 MiB a second, 19 MiB over the run if nothing
    // were pruned.
    let sizes = steady_load(&server, &url, 150, 16).await;
    eprintln!("store size each second (bytes): {sizes:?}");
    let mid = sizes[7];
    let end = *sizes.last().unwrap();
    assert!(
        end < mid + 4 * 1024 * 1024,
        "the store kept growing: {mid} bytes at 8 s, {end} at the end ({sizes:?})"
    );
    // Nothing outlives its retention by more than the prune interval (1 s here) and a batch.
    let age = oldest_event_age_ms(&server.data_dir).expect("recent events are kept");
    assert!(age < 2_000 + 1_000 + 1_500, "oldest event is {age} ms old");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_on_demand_deletes_old_history_and_shrinks_an_older_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(Era::Legacy, Some(dir.path()), &[]).await;
    let (_, url, _) = server
        .inbound(json!({ "provider": "none", "allow_unsigned": true }))
        .await;
    let filler = "y".repeat(16 * 1024);
    for n in 0..300 {
        let body = json!({ "event": "lead.created", "n": n, "filler": filler }).to_string();
        assert_eq!(server.post(&url, &body, &[]).await.0, 200);
    }
    // A refused request: a receipt without an event, in the delivery log.
    assert_eq!(
        server
            .post(&url.replace("/hooks/", "/hooks/wh_unknown"), "{}", &[])
            .await
            .0,
        404
    );
    server.stop().await;
    // Make it a store from before incremental vacuum: `prune` must convert it once.
    {
        let c = rusqlite::Connection::open(dir.path().join("webhook-mcp.db")).unwrap();
        c.pragma_update(None, "auto_vacuum", "NONE").unwrap();
        c.execute_batch("VACUUM").unwrap();
        let mode: i64 = c
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 0);
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let before = store_bytes(dir.path());
    let out = common::succeed(
        std::process::Command::new(BIN)
            .args([
                "prune",
                "--json",
                "--retain-events",
                "1s",
                "--retain-deliveries",
                "1s",
            ])
            .arg("--data-dir")
            .arg(dir.path()),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["events"], 300, "{report}");
    // The refused request's receipt (receipts of pruned events go with them, uncounted).
    assert_eq!(report["deliveries"], 1, "{report}");
    let after = store_bytes(dir.path());
    assert!(
        after * 4 < before,
        "the file did not shrink: {before} -> {after} bytes ({report})"
    );
    let c = rusqlite::Connection::open(dir.path().join("webhook-mcp.db")).unwrap();
    let mode: i64 = c
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "prune turns incremental vacuum on");
    let (events, receipts): (i64, i64) = c
        .query_row(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((events, receipts), (0, 0));

    // Bad retention values are refused with a reason, before anything is touched.
    let bad = std::process::Command::new(BIN)
        .args(["prune", "--retain-events", "soon"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("30d"));
}
