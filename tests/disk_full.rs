//! A full disk: the receiver answers 503 (so the sender retries), never 2xx for an event it did
//! not store, keeps every event it did acknowledge, and keeps serving.
//!
//! The data dir is a 3 MiB tmpfs mounted for the test, which needs root (CI runs as root).
//! Where mounting is not permitted the test says so on stderr and checks nothing.

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
