//! Credentials stay secret: at every log level (the server runs at `trace` here) no secret, no
//! required inbound header value and no outbound header value appears in the server's output;
//! stored events keep no required header value; views mask outbound header values and Slack
//! URLs; an empty auth token is refused; the bearer scheme is case-insensitive.

mod common;

use webhook_mcp::store::sealing::SecretsKey;

use common::sink::Sink;
use common::{hex_hmac, voyager_body, Era, Server, BIN};
use serde_json::json;

#[tokio::test]
async fn no_log_level_prints_a_secret() {
    let s = Server::start_with(Era::Legacy, None, &["--allow-private-targets", "log=trace"]).await;
    let sink = Sink::start().await;
    let (inbound_secret, api_key) = ("inbound-secret-A1b2C3d4", "api-key-Z9y8X7w6");
    let (outbound_secret, bearer) = ("outbound-secret-Q1w2E3r4", "bearer-token-M5n6B7v8");
    let created = s
        .call(
            "create_webhook",
            json!({ "direction": "inbound", "secret": inbound_secret,
                    "require_headers": { "X-Api-Key": api_key } }),
        )
        .await;
    let (id, url) = (
        created["webhook"]["id"].as_str().unwrap().to_string(),
        created["webhook"]["url"].as_str().unwrap().to_string(),
    );
    let out = s
        .call(
            "create_webhook",
            json!({ "direction": "outbound", "url": sink.url("hook"), "secret": outbound_secret,
                    "headers": { "Authorization": format!("Bearer {bearer}") } }),
        )
        .await;
    let out_id = out["webhook"]["id"].as_str().unwrap().to_string();
    let rotated = s
        .call("rotate_secret", json!({ "id": id, "grace_seconds": 60 }))
        .await;
    let new_secret = rotated["webhook"]["secret"].as_str().unwrap().to_string();
    let rotated_out = s.call("rotate_secret", json!({ "id": out_id })).await;
    let new_out_secret = rotated_out["webhook"]["secret"]
        .as_str()
        .unwrap()
        .to_string();

    // Receive (with the required header), test both ways, deliver.
    let body = voyager_body("trace-1", "x");
    let (status, ans) = s
        .post(
            &url,
            &body,
            &[
                (
                    "x-webhook-signature",
                    &hex_hmac(&new_secret, body.as_bytes()),
                ),
                ("x-api-key", api_key),
            ],
        )
        .await;
    assert_eq!(status, 200, "{ans}");
    s.call("test_webhook", json!({ "id": id })).await;
    s.call("test_webhook", json!({ "id": out_id })).await;
    s.call(
        "send_event",
        json!({ "event": "e", "data": {}, "webhook_ids": [out_id] }),
    )
    .await;
    sink.wait_for(2, 10).await;

    // Stored events keep no required header value; views mask outbound header values.
    let event = s.call("get_event", json!({ "id": ans["event_id"] })).await;
    assert!(
        event["untrusted_payload"]["headers"]
            .get("x-api-key")
            .is_none(),
        "{event}"
    );
    let shown = s.call("get_webhook", json!({ "id": out_id })).await;
    assert_eq!(
        shown["webhook"]["headers"]["Authorization"], "***",
        "{shown}"
    );
    let listed = s.call("list_webhooks", json!({})).await.to_string();
    let log = s
        .call("query_deliveries", json!({ "limit": 100 }))
        .await
        .to_string();

    let logs = s.logs.lock().unwrap().join("\n");
    assert!(logs.len() > 1000, "the server logged at trace level");
    for secret in [
        inbound_secret,
        api_key,
        outbound_secret,
        bearer,
        &new_secret,
        &new_out_secret,
    ] {
        assert!(!logs.contains(secret), "the log shows {secret}");
        assert!(!listed.contains(secret), "list_webhooks shows {secret}");
        assert!(!log.contains(secret), "the delivery log shows {secret}");
    }
    s.stop().await;
}

#[tokio::test]
async fn slack_urls_are_masked_in_views() {
    // The SSRF check resolves the target's host; this sandbox has no DNS.
    let s = Server::start_with(Era::Legacy, None, &["--allow-private-targets"]).await;
    let created = s
        .call(
            "create_webhook",
            json!({ "direction": "outbound",
                    "url": "https://hooks.slack.com/services/T000/B000/secretpath123" }),
        )
        .await;
    let shown = created.to_string();
    assert!(!shown.contains("secretpath123"), "{shown}");
    assert_eq!(
        created["webhook"]["url"],
        "https://hooks.slack.com/services/***"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_empty_auth_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--no-receiver",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("WEBHOOK_MCP_AUTH_TOKEN", "")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set but empty"), "{err}");
}

/// The store is private on disk whatever the umask: a new data dir is 0700 and the database
/// with its -wal/-shm 0600; a store an older release left readable by all is tightened at the
/// next open.
#[cfg(unix)]
#[test]
fn the_data_dir_and_the_store_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let open_with_umask_022 = |dir: &std::path::Path| {
        common::succeed(
            std::process::Command::new("sh")
                .args(["-c", "umask 022; exec \"$0\" webhooks ls --data-dir \"$1\""])
                .arg(BIN)
                .arg(dir),
        )
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new").join("data");
    open_with_umask_022(&dir);
    assert_eq!(mode(&dir), 0o700);
    let db = dir.join("webhook-mcp.db");
    assert_eq!(mode(&db), 0o600);
    for companion in ["webhook-mcp.db-wal", "webhook-mcp.db-shm"] {
        if dir.join(companion).exists() {
            assert_eq!(mode(&dir.join(companion)), 0o600, "{companion}");
        }
    }

    // As an older release left it: everything readable by all.
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    set(&dir, 0o755);
    set(&db, 0o644);
    // A -wal left by the last process may hold committed pages: keep its bytes, loosen its mode.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("webhook-mcp.db-wal"))
        .unwrap();
    set(&dir.join("webhook-mcp.db-wal"), 0o644);
    open_with_umask_022(&dir);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&db), 0o600);
    if dir.join("webhook-mcp.db-wal").exists() {
        assert_eq!(mode(&dir.join("webhook-mcp.db-wal")), 0o600);
    }
}

/// Issue 21, step 5: secrets, previous secrets, required inbound header values and outbound
/// credential headers are sealed at rest under `<data-dir>/secrets.key` (0600): none of them is
/// in the database's bytes. `secrets rotate-key` re-seals under a new key that the restarted
/// server opens; `doctor` says where the key is; PostgreSQL refuses to start without one.
#[tokio::test]
async fn secrets_are_sealed_at_rest_and_the_key_rotates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_with(Era::Legacy, Some(&dir), &["--allow-private-targets"]).await;
    let (secret, api_key, bearer) = (
        "inbound-secret-R4t5Y6u7",
        "required-value-P0o9I8u7",
        "outbound-bearer-L1k2J3h4",
    );
    let created = s
        .call(
            "create_webhook",
            json!({ "direction": "inbound", "secret": secret,
                    "require_headers": { "X-Api-Key": api_key } }),
        )
        .await;
    let (id, url) = (
        created["webhook"]["id"].as_str().unwrap().to_string(),
        created["webhook"]["url"].as_str().unwrap().to_string(),
    );
    s.call(
        "create_webhook",
        json!({ "direction": "outbound", "url": "http://127.0.0.1:9/x",
                "headers": { "Authorization": format!("Bearer {bearer}") } }),
    )
    .await;
    // The old secret becomes the previous one (kept, sealed, for the grace period).
    let rotated = s
        .call("rotate_secret", json!({ "id": id, "grace_seconds": 3600 }))
        .await;
    let new_secret = rotated["webhook"]["secret"].as_str().unwrap().to_string();
    s.stop().await;

    let raw = || {
        let mut bytes = vec![];
        for name in ["webhook-mcp.db", "webhook-mcp.db-wal"] {
            bytes.extend(std::fs::read(dir.join(name)).unwrap_or_default());
        }
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let stored = raw();
    for plain in [secret, new_secret.as_str(), api_key, bearer] {
        assert!(
            !stored.contains(plain),
            "{plain} is in the database's bytes"
        );
    }
    assert!(stored.contains("sealed:v1:"));
    let key_file = dir.join("secrets.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let keys = |path: &std::path::Path| -> Vec<SecretsKey> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| SecretsKey::parse(l).unwrap())
            .collect()
    };
    let first = keys(&key_file);
    assert_eq!(first.len(), 1);
    assert!(stored.contains(&format!("sealed:v1:{}:", first[0].id())));

    let out = common::succeed(
        std::process::Command::new(BIN)
            .args(["secrets", "rotate-key", "--data-dir"])
            .arg(&dir),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    let now = keys(&key_file);
    assert_eq!(now.len(), 2, "the new key first, the previous one kept");
    assert_eq!(now[1].id(), first[0].id());
    assert!(said.contains(&now[0].id()), "{said}");
    // Every live row is sealed under the new key (old bytes may linger in free pages).
    let c = rusqlite::Connection::open(dir.join("webhook-mcp.db")).unwrap();
    let columns: Vec<Option<String>> = c
        .prepare("SELECT secret, previous_secret, headers FROM webhooks")
        .unwrap()
        .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))
        .unwrap()
        .flat_map(|r| r.unwrap())
        .collect();
    let sealed_new = format!("sealed:v1:{}:", now[0].id());
    assert_eq!(columns.iter().flatten().count(), 5, "{columns:?}");
    assert!(
        columns.iter().flatten().all(|v| v.starts_with(&sealed_new)),
        "{columns:?}"
    );
    drop(c);

    // The restarted server opens the re-sealed secrets: the request verifies with the new
    // secret, the old one (within its grace) and the required header.
    let s = Server::start_with(Era::Legacy, Some(&dir), &["--allow-private-targets"]).await;
    for key in [new_secret.as_str(), secret] {
        let body = voyager_body(&format!("sealed-{key}"), "x");
        let (status, ans) = s
            .post(
                &url,
                &body,
                &[
                    ("x-webhook-signature", &hex_hmac(key, body.as_bytes())),
                    ("x-api-key", api_key),
                ],
            )
            .await;
        assert_eq!(status, 200, "{ans}");
    }
    assert!(!s.logged(&[&now[0].to_text()]) && !s.logged(&[&first[0].to_text()]));
    s.stop().await;

    let doctor = std::process::Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("secrets.key") && report.contains(&now[0].id()),
        "{report}"
    );
    assert!(!report.contains(&now[0].to_text()), "{report}");

    let pg = std::process::Command::new(BIN)
        .args([
            "webhooks",
            "ls",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/none",
        ])
        .env_remove("WEBHOOK_MCP_SECRETS_KEY")
        .output()
        .unwrap();
    assert!(!pg.status.success());
    let why = String::from_utf8_lossy(&pg.stderr);
    assert!(why.contains("--secrets-key"), "{why}");
}
