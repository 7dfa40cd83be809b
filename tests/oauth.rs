//! The HTTP transport as an OAuth 2.1 resource server and with named tokens, against a real
//! OpenID provider (npm `oidc-provider`, tests/oauth/idp.mjs) and the official TypeScript SDK
//! client (tests/oauth/sdk_client.mjs), both under node, and the real binary.
//!
//! What a client sees: 401 with `WWW-Authenticate: Bearer … resource_metadata=…`, the RFC 9728
//! document naming the issuer, tokens checked for signature, issuer, audience and lifetime,
//! and a 403 `insufficient_scope` challenge for a call beyond the token's scopes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::http::{rpc, HttpServer};
use serde_json::{json, Value};

const OPERATOR: &str = "operator-token-0123456789";

fn oauth_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oauth");
    if !dir.join("node_modules/oidc-provider").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed for the OAuth tests");
        assert!(ok.success(), "npm ci in tests/oauth failed");
    }
    dir
}

/// The OpenID provider, killed when dropped.
struct Idp {
    child: Child,
    issuer: String,
    http: reqwest::Client,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    fn start() -> Idp {
        let mut child = Command::new("node")
            .arg("idp.mjs")
            .current_dir(oauth_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs tests/oauth/idp.mjs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("idp.mjs did not start ({e}): {line:?}"));
        Idp {
            child,
            issuer: started["issuer"].as_str().unwrap().to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn test_route(&self, route: &str, body: Value) -> String {
        let r = self
            .http
            .post(format!("{}/test/{route}", self.issuer))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let json: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(status.is_success(), "/test/{route}: {json}");
        json["access_token"].as_str().unwrap().to_string()
    }

    /// A token the provider issues to `user` after login and consent, for `resource`.
    async fn login(&self, user: &str, scope: &str, resource: &str) -> String {
        self.test_route(
            "login",
            json!({"user": user, "scope": scope, "resource": resource}),
        )
        .await
    }

    /// `claims` signed with key `kid` ("rs", "es", or "stranger": one it never published).
    async fn mint(&self, claims: Value, kid: &str) -> String {
        self.test_route("mint", json!({"claims": claims, "kid": kid}))
            .await
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A server trusting `idp`, with the operator's token and `extra` flags.
fn serve(idp: &Idp, extra: &[&str]) -> HttpServer {
    let mut flags = vec!["--oauth-issuer", idp.issuer.as_str()];
    flags.extend_from_slice(extra);
    HttpServer::start(&flags)
}

async fn tool(base: &str, token: &str, name: &str, args: Value) -> (u16, Option<String>, Value) {
    rpc(
        base,
        Some(token),
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
    .await
}

fn inbound() -> Value {
    json!({"direction": "inbound", "provider": "none", "allow_unsigned": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_told_where_to_get_a_token_and_its_tokens_are_checked() {
    let idp = Idp::start();
    let s = serve(&idp, &["--auth-token", OPERATOR]);
    let base = s.base();
    let resource = format!("{base}/mcp");
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");

    // No token: 401, and the challenge says where the metadata is.
    let (st, challenge, body) = rpc(&base, None, "tools/list", json!({})).await;
    assert_eq!(st, 401, "{body}");
    let challenge = challenge.expect("a 401 carries WWW-Authenticate");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#)),
        "{challenge}"
    );
    assert!(
        body["error"].is_object() || body["error"].is_string(),
        "{body}"
    );

    // RFC 9728: the document at both well-known paths names this resource and the issuer.
    for url in [
        metadata_url.clone(),
        format!("{base}/.well-known/oauth-protected-resource"),
    ] {
        let doc: Value =
            serde_json::from_str(&reqwest::get(&url).await.unwrap().text().await.unwrap()).unwrap();
        assert_eq!(doc["resource"], resource, "{doc}");
        assert_eq!(doc["authorization_servers"], json!([idp.issuer]), "{doc}");
        assert_eq!(
            doc["scopes_supported"],
            json!(["webhooks:read", "webhooks:write"])
        );
    }

    // A real token for this resource works, for reading and writing.
    let alice = idp
        .login("alice", "webhooks:read webhooks:write", &resource)
        .await;
    let (st, _, made) = tool(&base, &alice, "create_webhook", inbound()).await;
    assert_eq!(st, 200, "{made}");
    assert!(
        made["result"]["structuredContent"]["webhook"]["id"].is_string(),
        "{made}"
    );

    // A read-only token reads, and a write is refused with the step-up challenge.
    let reader = idp.login("rita", "webhooks:read", &resource).await;
    let (st, _, listed) = tool(&base, &reader, "list_webhooks", json!({})).await;
    assert_eq!(st, 200, "{listed}");
    assert!(listed["result"]["structuredContent"]["webhooks"].is_array());
    let (st, challenge, refused) = tool(&base, &reader, "create_webhook", inbound()).await;
    assert_eq!(st, 403, "{refused}");
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="webhooks:write""#)
            && challenge.contains("resource_metadata="),
        "{challenge}"
    );
    assert_eq!(
        refused["id"], 7,
        "the refusal answers the request: {refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhooks:write"),
        "{refused}"
    );

    // Tokens that must not pass, each refused with invalid_token and a reason.
    let claims = |aud: &str, exp: u64| {
        json!({"iss": idp.issuer, "sub": "mallory", "aud": aud, "exp": exp, "iat": now(),
               "scope": "webhooks:read webhooks:write"})
    };
    let other_resource = idp
        .login(
            "alice",
            "webhooks:read webhooks:write",
            "http://127.0.0.1:1/mcp",
        )
        .await;
    let expired = idp.mint(claims(&resource, now() - 120), "rs").await;
    let stranger = idp.mint(claims(&resource, now() + 300), "stranger").await;
    let wrong_issuer = idp
        .mint(
            json!({"iss": "http://127.0.0.1:2", "sub": "m", "aud": resource, "exp": now() + 300}),
            "rs",
        )
        .await;
    let mut tampered = alice.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","kid":"rs"}"#),
        b64.encode(claims(&resource, now() + 300).to_string())
    );
    for (what, token, says) in [
        ("for another resource", &other_resource, "aud"),
        ("expired", &expired, "expired"),
        ("signed by a stranger", &stranger, "does not publish"),
        ("from another issuer", &wrong_issuer, "iss"),
        ("tampered", &tampered, ""),
        ("alg none", &unsigned, ""),
    ] {
        let (st, challenge, body) = tool(&base, token, "list_webhooks", json!({})).await;
        assert_eq!(st, 401, "a token {what} is refused: {body}");
        let challenge = challenge.unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
        assert!(
            challenge.to_lowercase().contains(says),
            "{what}: the reason names {says:?}: {challenge}"
        );
    }

    // The provider's other key (ES256) is as good as its first.
    let es = idp.mint(claims(&resource, now() + 300), "es").await;
    let (st, _, body) = tool(&base, &es, "list_webhooks", json!({})).await;
    assert_eq!(st, 200, "{body}");

    // /metrics and the dashboard are the operator's, not any valid user's.
    let metrics = |token: &str| {
        reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(metrics(&alice).await.unwrap().status(), 403);
    assert_eq!(metrics(OPERATOR).await.unwrap().status(), 200);
    // The operator's token needs no OAuth: it is still accepted on /mcp.
    let (st, _, body) = tool(&base, OPERATOR, "list_webhooks", json!({})).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_client_runs_the_whole_oauth_flow() {
    let idp = Idp::start();
    let s = serve(&idp, &[]);
    let url = format!("{}/mcp", s.base());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["sdk_client.mjs", &url, "alice"])
            .current_dir(oauth_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sdk_client.mjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    // It was refused first, then found the issuer from the server's metadata alone and asked
    // for a token for this resource with the scopes the server names.
    assert_eq!(out["first"], "unauthorized", "{out}");
    assert_eq!(
        out["authorization"]["resource"],
        format!("{}/mcp", s.base())
    );
    assert_eq!(
        out["authorization"]["scope"], "webhooks:read webhooks:write",
        "{out}"
    );
    assert_eq!(out["claims"]["sub"], "alice");
    assert_eq!(out["claims"]["aud"], format!("{}/mcp", s.base()));
    // Then its tool calls went through.
    let made = &out["created"]["structuredContent"]["webhook"];
    assert_eq!(made["description"], "made by alice", "{out}");
    assert_eq!(
        out["listed"]["structuredContent"]["webhooks"][0]["id"],
        made["id"]
    );
}

#[tokio::test]
async fn an_issuer_that_does_not_answer_gets_503_not_a_crash() {
    // Nothing listens on the issuer's port: the server starts, says so, and answers every
    // token with 503 (retry later), never 200 and never a hang.
    let port = common::http::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let s = HttpServer::start(&["--oauth-issuer", &issuer]);
    let started = std::time::Instant::now();
    let (st, _, body) = tool(
        &s.base(),
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "list_webhooks",
        json!({}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(st, 503, "{body}");
    let (st, challenge, _) = rpc(&s.base(), None, "tools/list", json!({})).await;
    assert_eq!(st, 401);
    assert!(challenge.unwrap().contains("resource_metadata="));
}

#[tokio::test]
async fn named_tokens_are_principals_with_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        "# the team\nalice alice-token-0123456789\nrita  rita-token-01234567890 webhooks:read\n",
    )
    .unwrap();
    let s = HttpServer::start(&["--auth-tokens-file", file.to_str().unwrap()]);
    let base = s.base();
    let (st, _, made) = tool(&base, "alice-token-0123456789", "create_webhook", inbound()).await;
    assert_eq!(st, 200, "{made}");
    let (st, _, listed) = tool(&base, "rita-token-01234567890", "list_webhooks", json!({})).await;
    assert_eq!(st, 200, "{listed}");
    let (st, challenge, _) =
        tool(&base, "rita-token-01234567890", "create_webhook", inbound()).await;
    assert_eq!(st, 403);
    assert!(challenge.unwrap().contains("insufficient_scope"));
    let (st, _, _) = tool(&base, "nobody-token-0123456789", "list_webhooks", json!({})).await;
    assert_eq!(st, 401);
    // Without an operator's token, /metrics and the dashboard are closed to everyone.
    let get = |path: &str| {
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth("alice-token-0123456789")
            .send()
    };
    assert_eq!(get("/metrics").await.unwrap().status(), 403);
    assert_eq!(get("/ui").await.unwrap().status(), 403);
    // Without OAuth there is no protected-resource document.
    let r = reqwest::get(format!("{base}/.well-known/oauth-protected-resource"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A bad file stops the start with the line at fault, never echoing a token.
    std::fs::write(&file, "alice tiny-secret\n").unwrap();
    let out = Command::new(common::BIN)
        .args(["serve", "--http", "127.0.0.1:0", "--receiver-addr", "same"])
        .arg("--auth-tokens-file")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1"), "{stderr}");
    assert!(
        !stderr.contains("tiny-secret"),
        "the token is not shown: {stderr}"
    );
}
