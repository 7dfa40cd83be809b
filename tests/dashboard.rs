//! The dashboard at /ui: its access rules over real HTTP, and the page itself in a real
//! headless chromium (Debian's, driven by playwright-core from tests/browser) against the real
//! binary, a real target and the real receiver. Screenshots land in target/screenshots.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::HttpServer;
use common::sink::{Reply, Sink};
use common::BIN;
use serde_json::Value;

const TOKEN: &str = "dashboard-token-0123456789";

/// A server that requires the bearer token `TOKEN`.
fn serve(extra: &[&str]) -> HttpServer {
    let mut args = vec!["--auth-token", TOKEN];
    args.extend_from_slice(extra);
    HttpServer::start(&args)
}

/// `webhook-mcp <args> --json` on a server's store; the parsed answer.
fn cli(s: &HttpServer, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .args(["--json", "--public-url", &s.base(), "--data-dir"])
        .arg(s.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_keeps_the_mcp_access_rules() {
    let s = serve(&[]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{}{path}", s.base()));

    // No token: 401 with a JSON body that says how to get in; the page's security headers.
    let resp = get("/ui").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("?token="));
    assert_eq!(get("/ui/api/webhooks").send().await.unwrap().status(), 401);
    assert_eq!(get("/ui?token=wrong").send().await.unwrap().status(), 401);

    // The token is exchanged for an HttpOnly cookie that does not hold it, and a redirect.
    let resp = get(&format!("/ui?token={TOKEN}")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/ui");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // It expires, and is Secure only where the page is reached over https.
    assert!(cookie.contains("Max-Age=43200"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    let behind_tls = get(&format!("/ui?token={TOKEN}"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let tls_cookie = behind_tls.headers()["set-cookie"].to_str().unwrap();
    assert!(tls_cookie.contains("; Secure"), "{tls_cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the cookie must not carry the token itself"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let page = get("/ui").header("cookie", &session).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Delivery log"));
    let api = get("/ui/api/webhooks")
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let bearer = get("/ui/api/webhooks")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    // DNS rebinding and cross-site requests are refused even with the cookie.
    let rebound = get("/ui/api/webhooks")
        .header("cookie", &session)
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let cross = http
        .post(format!("{}/ui/api/deliveries/x/redeliver", s.base()))
        .header("cookie", &session)
        .header("origin", "http://attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let same = http
        .post(format!("{}/ui/api/deliveries/x/redeliver", s.base()))
        .header("cookie", &session)
        .header("origin", s.base())
        .send()
        .await
        .unwrap();
    assert_eq!(
        same.status(),
        404,
        "same origin passes the guard; the id does not exist"
    );
    let body: Value = serde_json::from_slice(&same.bytes().await.unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("not found"));
}

/// Debian's chromium, or None with a SKIPPED line (CI installs it and fails on SKIPPED).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: the dashboard browser test needs chromium (apt-get install chromium, or set CHROMIUM)"
    );
    None
}

/// tests/browser with playwright-core installed (npm ci on first use).
fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed for the browser test");
        assert!(ok.success(), "npm ci in tests/browser failed");
    }
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_live_events_and_redelivers_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let browser = browser_dir();
    let sink = Sink::start().await;
    sink.script([Reply::status(500), Reply::status(500)]);
    // Two attempts half a second apart, both refused: the message has finally failed, and only
    // the Redeliver button sends it again.
    let s = serve(&["--allow-private-targets", "--retry-schedule", "0.5"]);

    let inbound = cli(&s, &["webhooks", "create", "--description", "provider"]);
    let outbound = cli(
        &s,
        &[
            "webhooks",
            "create",
            "--direction",
            "outbound",
            "--url",
            &sink.url("hook"),
            "--allow-private-targets",
            "--description",
            "subscriber",
        ],
    );
    let inbound_id = inbound["webhook"]["id"].as_str().unwrap().to_string();
    let outbound_id = outbound["webhook"]["id"].as_str().unwrap().to_string();
    cli(
        &s,
        &["send", "lead.replied", "--data", r#"{"lead": "ada"}"#],
    );
    sink.wait_for(2, 20).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while cli(&s, &["deliveries", "ls", "--status", "failed"])["count"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the two attempts were never logged as failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let out = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&browser)
        .env("CHROMIUM", &chromium)
        .env("UI_URL", format!("{}/ui?token={TOKEN}", s.base()))
        .env("RECEIVE_URL", inbound["webhook"]["url"].as_str().unwrap())
        .env(
            "INBOUND_SECRET",
            inbound["webhook"]["secret"].as_str().unwrap(),
        )
        .env("INBOUND_ID", &inbound_id)
        .env("OUTBOUND_ID", &outbound_id)
        .env("SCREENSHOTS", &shots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the browser run finished within 120 s")
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{log}");
    assert!(out.status.success(), "the browser steps failed:\n{log}");
    assert_eq!(
        sink.received().len(),
        3,
        "Redeliver reached the target once more"
    );
    for shot in ["dashboard-live-event.png", "dashboard-redelivered.png"] {
        let size = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "{shot} was not saved ({size} bytes)");
    }
}
