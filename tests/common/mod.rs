//! Test harness: starts the real `webhook-mcp` binary on a fresh data dir and speaks MCP to it
//! over its real stdio, with the receiver on a free 127.0.0.1 port.
#![allow(dead_code)]

pub mod http;
pub mod pg;
pub mod pty;
pub mod sink;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use rmcp::model::{
    CallToolRequestParams, ClientConfig, ProtocolVersion, ReadResourceRequestParams,
    ResourceContents,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientHandler, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_webhook-mcp");

/// A client that forwards every `resources/updated` URI and `list_changed` to a channel.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<String>,
}

impl ClientHandler for Recorder {
    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        let _ = self.tx.send(params.uri);
    }
    async fn on_resource_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        let _ = self.tx.send("list_changed".into());
    }
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

pub struct Server {
    pub client: RunningService<RoleClient, Recorder>,
    pub pid: u32,
    pub notes: mpsc::UnboundedReceiver<String>,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
    /// The server's stderr (its logs), line by line; also echoed to this test's stderr.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub enum Era {
    /// initialize handshake, protocol <= 2025-11-25, resources/subscribe.
    Legacy,
    /// server/discover, protocol 2026-07-28, subscriptions/listen.
    Modern,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Era::Legacy, None, &[]).await
    }

    pub async fn start_with(era: Era, data_dir: Option<&Path>, extra: &[&str]) -> Server {
        let tmp = if data_dir.is_none() {
            Some(tempfile::tempdir().unwrap())
        } else {
            None
        };
        let dir = data_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| tmp.as_ref().unwrap().path().to_path_buf());
        let mut args: Vec<String> = vec!["serve".into(), "--data-dir".into()];
        args.push(dir.to_string_lossy().into_owned());
        // A free port of its own unless the test chose the receiver's address.
        if !extra.contains(&"--receiver-addr") {
            args.extend(["--receiver-addr".into(), "127.0.0.1:0".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(era, &args, dir, tmp).await
    }

    /// Starts `webhook-mcp connect <url>` (the stdio bridge to a `serve --http` service) and
    /// speaks MCP to it.
    pub async fn connect(era: Era, url: &str, token: &str) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let args = [
            "connect".to_string(),
            url.to_string(),
            "--auth-token".into(),
            token.into(),
        ];
        Self::spawn(era, &args, tmp.path().to_path_buf(), Some(tmp)).await
    }

    async fn spawn(
        era: Era,
        args: &[String],
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
    ) -> Server {
        // WEBHOOK_MCP_LOG in `args`' place: a test may ask for another level ("log=trace").
        let level = args
            .iter()
            .find_map(|a| a.strip_prefix("log="))
            .unwrap_or("warn")
            .to_string();
        // "env:NAME=VALUE" in `args` sets an environment variable of the server's instead.
        let env: Vec<(&str, &str)> = args
            .iter()
            .filter_map(|a| a.strip_prefix("env:")?.split_once('='))
            .collect();
        let args: Vec<&String> = args
            .iter()
            .filter(|a| !a.starts_with("log=") && !a.starts_with("env:"))
            .collect();
        let (transport, stderr) =
            TokioChildProcess::builder(tokio::process::Command::new(BIN).configure(|c| {
                c.args(args).env("WEBHOOK_MCP_LOG", &level).envs(env);
            }))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(stderr) = stderr {
            let logs = logs.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("{line}");
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let pid = transport.id().expect("the server process started");
        let (tx, notes) = mpsc::unbounded_channel();
        let handler = Recorder { tx };
        let client = match era {
            Era::Legacy => handler.serve(transport).await.unwrap(),
            Era::Modern => handler
                .serve_with_lifecycle(
                    transport,
                    rmcp::ClientLifecycleMode::Discover {
                        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    },
                )
                .await
                .unwrap(),
        };
        Server {
            client,
            pid,
            notes,
            data_dir: dir,
            _tmp: tmp,
            http: reqwest::Client::new(),
            logs,
        }
    }

    /// Calls a tool and returns the raw result (content + is_error).
    pub async fn call_raw(&self, tool: &str, args: Value) -> rmcp::model::CallToolResult {
        let args = args.as_object().cloned().unwrap_or_default();
        self.client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
            .await
            .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
    }

    /// Calls a tool that must succeed and returns its JSON.
    pub async fn call(&self, tool: &str, args: Value) -> Value {
        let r = self.call_raw(tool, args).await;
        assert_ne!(
            r.is_error,
            Some(true),
            "{tool} returned an error: {:?}",
            r.content
        );
        r.structured_content
            .expect("tools answer with structured JSON")
    }

    /// Calls a tool that must fail and returns its error text.
    pub async fn call_err(&self, tool: &str, args: Value) -> String {
        let r = self.call_raw(tool, args).await;
        assert_eq!(
            r.is_error,
            Some(true),
            "{tool} should have failed: {:?}",
            r.content
        );
        r.content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn read(&self, uri: &str) -> Result<Value, rmcp::ServiceError> {
        let r = self
            .client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await?;
        match &r.contents[0] {
            ResourceContents::TextResourceContents { text, .. } => {
                Ok(serde_json::from_str(text).unwrap())
            }
            other => panic!("expected text contents, got {other:?}"),
        }
    }

    /// Creates an inbound webhook; returns (id, receive URL, secret).
    pub async fn inbound(&self, extra: Value) -> (String, String, String) {
        let mut args = json!({ "direction": "inbound" });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            args[k] = v;
        }
        let created = self.call("create_webhook", args).await;
        let w = &created["webhook"];
        (
            w["id"].as_str().unwrap().to_string(),
            w["url"].as_str().unwrap().to_string(),
            w["secret"].as_str().unwrap().to_string(),
        )
    }

    /// POSTs `body` to `url` signed the generic way; returns status and JSON answer.
    pub async fn post_signed(&self, url: &str, secret: &str, body: &str) -> (u16, Value) {
        self.post(
            url,
            body,
            &[("x-webhook-signature", &hex_hmac(secret, body.as_bytes()))],
        )
        .await
    }

    pub async fn post(&self, url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "receiver answered non-JSON: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, v)
    }

    /// Waits for the next notification, failing the test after 10 s.
    pub async fn next_note(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.notes.recv())
            .await
            .expect("no notification within 10 s")
            .expect("notification channel closed")
    }

    /// Collects notifications for `window`, returning what arrived.
    pub async fn drain_notes(&mut self, window: Duration) -> Vec<String> {
        let mut out = vec![];
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(n)) = tokio::time::timeout_at(deadline, self.notes.recv()).await {
            out.push(n);
        }
        out
    }

    /// Whether the server has logged a line containing every one of `parts`.
    pub fn logged(&self, parts: &[&str]) -> bool {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| parts.iter().all(|p| l.contains(p)))
    }

    pub async fn event_count(&self) -> usize {
        let v = self.call("list_events", json!({ "limit": 200 })).await;
        v["count"].as_u64().unwrap() as usize
    }

    pub async fn stop(self) {
        let _ = self.client.cancel().await;
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(&self) {
        signal(self.pid, "-KILL");
    }

    /// Polls `tool` until `done` holds for its answer, failing after `secs` seconds.
    pub async fn wait_for(
        &self,
        tool: &str,
        args: Value,
        secs: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.call(tool, args.clone()).await;
            if done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{tool} never satisfied the condition; last: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates an outbound webhook; returns (id, secret).
    pub async fn outbound(&self, url: &str, extra: Value) -> (String, String) {
        let mut args = json!({ "direction": "outbound", "url": url });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            args[k] = v;
        }
        let created = self.call("create_webhook", args).await;
        (
            created["webhook"]["id"].as_str().unwrap().to_string(),
            created["webhook"]["secret"].as_str().unwrap().to_string(),
        )
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig} {pid} failed");
}

/// A Python interpreter with the official MCP SDK: `WEBHOOK_MCP_PYTHON`, else `.venv` at the
/// repository root, created (python3 -m venv, pip install -r tests/python/requirements.txt) on
/// first use.
pub fn python() -> std::path::PathBuf {
    static PY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("WEBHOOK_MCP_PYTHON") {
            return std::path::PathBuf::from(p);
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let venv = root.join(".venv");
        let py = venv.join("bin/python");
        let has_sdk = |py: &std::path::Path| {
            std::process::Command::new(py)
                .args(["-c", "import mcp, sys; sys.exit(0)"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has_sdk(&py) {
            let ok = std::process::Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
                .unwrap();
            assert!(ok.success(), "python3 -m venv failed");
            let ok = std::process::Command::new(&py)
                .args(["-m", "pip", "install", "-q", "-r"])
                .arg(root.join("tests/python/requirements.txt"))
                .status()
                .unwrap();
            assert!(ok.success(), "pip install of the Python MCP SDK failed");
        }
        assert!(
            has_sdk(&py),
            "the Python MCP SDK is not importable from {}",
            py.display()
        );
        py
    })
    .clone()
}

/// The seeds' signing method: hex HMAC-SHA256 of the exact bytes, computed here independently
/// of the server's code.
pub fn hex_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The receiver's `/healthz` answer; `url` is any URL on the receiver (a `/hooks/...` URL or
/// the base).
pub async fn healthz(http: &reqwest::Client, url: &str) -> Value {
    let base = url.split("/hooks/").next().unwrap().trim_end_matches('/');
    let body = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

pub fn voyager_body(id: &str, text: &str) -> String {
    json!({
        "id": id,
        "event": "message_received",
        "tenantId": "32e365dc-e8c4-4caa-8637-0e6b48dfeccd",
        "tenantName": "Acme",
        "timestamp": "2026-03-17T10:30:00Z",
        "data": { "userId": "charis", "conversationId": "conv123", "lastMessage": text }
    })
    .to_string()
}

/// Runs `cmd` to its end and returns its output; fails the test with its stderr if it failed.
#[allow(dead_code)]
pub fn succeed(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
