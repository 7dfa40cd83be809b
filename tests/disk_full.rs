//! Storage faults: a full disk, and a data dir that turns read-only under the running server.
//! The receiver answers 503 (so the sender retries), never 2xx for an event it did not store,
//! logs why, keeps every event it did acknowledge, keeps serving, and stores the retried event
//! once the disk is writable again.
//!
//! The data dir is a tmpfs mounted for the test, which needs root (CI runs as root). Where
//! mounting is not permitted the test says so on stderr and checks nothing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{hex_hmac, Era, Server};
use serde_json::json;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount("3m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let s = Server::start_with(Era::Legacy, Some(&disk.0), &[]).await;
    let (_, url, secret) = s.inbound(json!({})).await;
    let pad = "x".repeat(60_000);
    let mut acked = vec![];
    let mut refused = None;
    for i in 0..200 {
        let body = json!({ "id": format!("big-{i}"), "event": "message_received", "data": { "pad": pad } }).to_string();
        let (st, ans) = s
            .post(
                &url,
                &body,
                &[("x-webhook-signature", &hex_hmac(&secret, body.as_bytes()))],
            )
            .await;
        match st {
            200 => acked.push(ans["event_id"].as_str().unwrap().to_string()),
            _ => {
                refused = Some((st, ans));
                break;
            }
        }
    }
    let (st, ans) = refused.expect("3 MiB filled up without a refusal");
    assert_eq!(st, 503, "{ans}");
    assert!(
        ans["error"].as_str().unwrap().contains("retry later"),
        "{ans}"
    );
    assert!(!acked.is_empty());
    assert!(
        s.logged(&["ERROR", "could not store event", "503"]),
        "no error line in the server's log"
    );
    // The writer's failure reaches the line with its cause, not just "storage error".
    assert!(
        s.logged(&["could not store event", "the batch was not committed: "]),
        "the error line lost the batch's cause"
    );
    // Every acknowledged event is there; the refused one is not.
    for id in &acked {
        s.call("get_event", json!({ "id": id })).await;
    }
    assert_eq!(s.event_count().await, acked.len());
    // Still serving.
    let health = url.split("/hooks/").next().unwrap().to_string() + "/healthz";
    assert_eq!(s.http.get(health).send().await.unwrap().status(), 200);
    s.stop().await;
    drop(disk);
}

/// Makes the store's files and the data dir unwritable under the running server (the immutable
/// attribute: writes through already-open descriptors fail too, as on a file system remounted
/// read-only after an error). The shared-memory index (`-shm`) stays writable: it is mapped
/// into memory, where a write cannot fail gracefully.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(dir: &std::path::Path) -> Option<Immutable> {
        let paths = vec![
            dir.join("webhook-mcp.db"),
            dir.join("webhook-mcp.db-wal"),
            dir.to_path_buf(),
        ];
        let ok = Command::new("chattr")
            .arg("+i")
            .args(&paths)
            .status()
            .is_ok_and(|s| s.success());
        let guard = Immutable(paths);
        ok.then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

#[tokio::test]
async fn a_read_only_data_dir_answers_503_and_the_retry_is_stored_later() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(Era::Legacy, Some(dir.path()), &[]).await;
    let (_, url, secret) = s.inbound(json!({})).await;
    let signed = |id: &str| {
        let body = json!({ "id": id, "event": "message_received", "data": {} }).to_string();
        let sig = hex_hmac(&secret, body.as_bytes());
        (body, sig)
    };
    let (body, sig) = signed("before");
    let (st, _) = s.post(&url, &body, &[("x-webhook-signature", &sig)]).await;
    assert_eq!(st, 200);

    let Some(read_only) = Immutable::set(dir.path()) else {
        eprintln!("SKIPPED: cannot set the immutable attribute here (needs root on ext4/xfs)");
        return;
    };
    let (body, sig) = signed("while-read-only");
    let (st, ans) = s.post(&url, &body, &[("x-webhook-signature", &sig)]).await;
    assert_eq!(st, 503, "{ans}");
    assert!(
        ans["error"].as_str().unwrap().contains("retry later"),
        "{ans}"
    );
    assert!(
        s.logged(&["ERROR", "could not store event", "503"]),
        "no error line in the server's log"
    );
    // The writer's failure reaches the line with its cause, not just "storage error".
    assert!(
        s.logged(&["could not store event", "the batch was not committed: "]),
        "the error line lost the batch's cause"
    );
    // Reads still work, and the refused event is not there.
    assert_eq!(s.event_count().await, 1);
    let v = common::healthz(&s.http, &url).await;
    assert_eq!(v["stats"]["store_failures"], 1, "{v}");
    // A monitor sees what senders see: not ok, 503, and why.
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["store"].as_str().unwrap().starts_with("cannot write"),
        "{v}"
    );
    let health_url = format!("{}/healthz", url.split("/hooks/").next().unwrap());
    let status = s.http.get(&health_url).send().await.unwrap().status();
    assert_eq!(status, 503);

    // The disk is writable again; the sender's retry of the same request is stored, once.
    drop(read_only);
    let (st, ans) = s.post(&url, &body, &[("x-webhook-signature", &sig)]).await;
    assert_eq!(st, 200, "{ans}");
    assert_eq!(ans["duplicate"], serde_json::Value::Null, "{ans}");
    assert_eq!(s.event_count().await, 2);
    let v = common::healthz(&s.http, &url).await;
    assert_eq!(
        (v["ok"].as_bool(), v["store"].as_str()),
        (Some(true), Some("writable")),
        "{v}"
    );
    s.stop().await;
}
