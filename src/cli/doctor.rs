//! `webhook-mcp doctor`: checks what a working setup needs — the data directory, the store
//! (writable, size, queue, serving processes), the database round trip, the receiver port,
//! the public URL and the clock — and says what to fix. Exits 1 when a check fails.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use super::admin::{status_cell, table, AdminArgs};
use super::StartError;
use crate::model::now_millis;
use crate::service::Service;
use crate::store::sealing::KeySource;

/// Check a setup and say what to fix.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  webhook-mcp doctor\n  \
    webhook-mcp doctor --database-url postgres://app@db.internal/webhooks --json")]
pub struct DoctorArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The receiver address `serve` uses (as its --receiver-addr).
    #[arg(
        long,
        env = "WEBHOOK_MCP_RECEIVER_ADDR",
        default_value = "127.0.0.1:8787"
    )]
    pub receiver_addr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Level,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn check(check: &'static str, status: Level, detail: impl Into<String>) -> Check {
    Check {
        check,
        status,
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Signed timestamps (Stripe, Slack, Standard Webhooks) further off than this are refused.
const SKEW_WARN_MS: i64 = 5_000;

pub async fn run(a: DoctorArgs) -> Result<(), StartError> {
    let mut checks = Vec::new();
    let postgres = a.admin.store.database_url.is_some();
    if !postgres {
        checks.push(data_dir(&a.admin));
    }
    checks.push(secrets_key(&a.admin));
    let svc = match a.admin.service().await {
        Ok(svc) => Some(svc),
        Err(e) => {
            checks.push(check("store", Level::Fail, e.0).fix(if postgres {
                "check --database-url (host, port, user, password, database) and that the server accepts connections from here"
            } else {
                "check the data directory's permissions and free space, or pick another with --data-dir"
            }));
            None
        }
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .map_err(|e| StartError(format!("cannot build an HTTP client: {e}")))?;
    if let Some(svc) = &svc {
        checks.extend(store(svc, postgres).await);
        checks.push(receiver(svc, &http, &a.receiver_addr).await);
        checks.push(public_url(svc, &http).await);
    }
    print(&a.admin, &checks);
    match checks.iter().filter(|c| c.status == Level::Fail).count() {
        0 => Ok(()),
        n => Err(StartError(format!("{n} check(s) failed"))),
    }
}

fn data_dir(admin: &AdminArgs) -> Check {
    let dir = admin.store.data_dir();
    let shown = dir.display().to_string();
    if !dir.exists() {
        return check(
            "data dir",
            Level::Warn,
            format!("{shown} does not exist yet"),
        )
        .fix("nothing to do: `serve` creates it (this check created it too, to open the store)");
    }
    // A real file, written, synced and removed: permission bits say nothing to root, a
    // read-only mount or a full disk.
    let written = tempfile::NamedTempFile::new_in(&dir).and_then(|mut f| {
        use std::io::Write;
        f.write_all(b"webhook-mcp doctor")?;
        f.as_file().sync_all()
    });
    match written {
        Ok(()) => check("data dir", Level::Ok, format!("{shown}, writable")),
        Err(e) => check(
            "data dir",
            Level::Fail,
            format!("{shown} cannot be written: {e}"),
        )
        .fix("make it writable or free space, or pick another with --data-dir"),
    }
}

/// Where the key that seals stored secrets is, and whether only its owner can read it.
fn secrets_key(admin: &AdminArgs) -> Check {
    let keys = match admin.store.keyring() {
        Ok(k) => k,
        Err(e) => {
            return check("secrets key", Level::Fail, e.0)
                .fix("give --secrets-key (WEBHOOK_MCP_SECRETS_KEY), the same on every instance")
        }
    };
    let ids = keys.key_ids();
    let held = if ids.len() > 1 {
        format!(
            "sealing key {} (and {} older, to open what it sealed)",
            ids[0],
            ids.len() - 1
        )
    } else {
        format!("sealing key {}", ids[0])
    };
    let detail = format!("{held}, from {}", keys.source());
    let KeySource::File(path) = keys.source() else {
        return check("secrets key", Level::Ok, detail);
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o777);
        if let Some(mode) = mode.filter(|m| m & 0o077 != 0) {
            return check(
                "secrets key",
                Level::Warn,
                format!("{detail}: mode {mode:o}, readable by others"),
            )
            .fix(format!("chmod 600 {}", path.display()));
        }
    }
    check(
        "secrets key",
        Level::Ok,
        format!("{detail} (mode 600; back it up with the database: without it no stored secret can be read)"),
    )
}

async fn store(svc: &Service, postgres: bool) -> Vec<Check> {
    let mut out = Vec::new();
    let started = Instant::now();
    let writable = svc.check_store().await;
    let round_trip = started.elapsed();
    let backend = if postgres { "PostgreSQL" } else { "SQLite" };
    match writable {
        Ok(()) => {
            let size = match svc.store_size().await {
                Ok(Some(bytes)) => format!(", {:.1} MiB", bytes as f64 / 1048576.0),
                _ => String::new(),
            };
            out.push(check(
                "store",
                Level::Ok,
                format!("{backend}, writable{size} (store id {})", svc.store_id()),
            ));
        }
        Err(e) => out.push(
            check(
                "store",
                Level::Fail,
                format!("{backend} does not take writes: {e}"),
            )
            .fix("free disk space, or fix the database's permissions"),
        ),
    }
    if postgres {
        let ms = round_trip.as_secs_f64() * 1000.0;
        let level = if ms > 50.0 { Level::Warn } else { Level::Ok };
        let c = check(
            "database",
            level,
            format!("a committed write took {ms:.1} ms"),
        );
        out.push(if level == Level::Warn {
            c.fix("every received event waits for a commit: put the database closer, or check its load")
        } else {
            c
        });
    }
    match svc.store_health().await {
        Ok(h) => {
            let alive = h.live_instances;
            // Overdue: due more than a minute ago and still not attempted.
            let late = h
                .next_due_at
                .map(|t| (now_millis() - t) / 1000)
                .filter(|s| *s > 60);
            let detail = format!(
                "{} pending deliveries{}; {alive} serving process(es) on this store",
                h.queue_depth,
                late.map(|s| format!(", the next was due {s} s ago"))
                    .unwrap_or_default(),
            );
            let stuck = late.is_some();
            out.push(match (alive, stuck) {
                (0, _) if h.queue_depth > 0 => check("queue", Level::Warn, detail)
                    .fix("no process is delivering: run `webhook-mcp serve` on this store"),
                (_, true) => check("queue", Level::Warn, detail).fix(
                    "deliveries are late: check `webhook-mcp deliveries ls --status pending` and the targets' health",
                ),
                _ => check("queue", Level::Ok, detail),
            });
            if let Some(server) = h.server_time {
                out.push(clock(now_millis() - server, "the database server"));
            }
        }
        Err(e) => out.push(check(
            "queue",
            Level::Fail,
            format!("cannot read the queue: {e}"),
        )),
    }
    out
}

fn clock(skew_ms: i64, against: &str) -> Check {
    let detail = format!("{:+.1} s against {against}", skew_ms as f64 / 1000.0);
    if skew_ms.abs() > SKEW_WARN_MS {
        check("clock", Level::Warn, detail).fix(
            "synchronise the clock (NTP): signed timestamps further off than --timestamp-tolerance (300 s) are refused as replays",
        )
    } else {
        check("clock", Level::Ok, detail)
    }
}

async fn receiver(svc: &Service, http: &reqwest::Client, addr: &str) -> Check {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return check(
            "receiver",
            Level::Fail,
            format!("{addr:?} is not host:port"),
        )
        .fix("set --receiver-addr (or WEBHOOK_MCP_RECEIVER_ADDR) to e.g. 127.0.0.1:8787");
    };
    match healthz(http, &format!("http://{addr}")).await {
        Ok(body) if body["service"] == "webhook-mcp" && body["store_id"] == svc.store_id() => {
            check("receiver", Level::Ok, format!("a webhook-mcp receiver on this store answers at {addr}"))
        }
        Ok(body) if body["service"] == "webhook-mcp" => check(
            "receiver",
            Level::Warn,
            format!("the webhook-mcp receiver at {addr} serves another store"),
        )
        .fix("give this command the serving process's --data-dir or --database-url"),
        Ok(_) => check("receiver", Level::Fail, format!("something other than webhook-mcp answers at {addr}"))
            .fix("give `serve` another port with --receiver-addr"),
        Err(_) => match std::net::TcpListener::bind(addr) {
            Ok(_) => check("receiver", Level::Warn, format!("nothing listens at {addr}; providers' requests fail until a `webhook-mcp serve` runs"))
                .fix("start one: your MCP client starts `serve`, or run `webhook-mcp serve --http 127.0.0.1:8848` long-running"),
            Err(e) => check("receiver", Level::Fail, format!("{addr} cannot be used: {e}"))
                .fix("give `serve` another port with --receiver-addr"),
        },
    }
}

async fn public_url(svc: &Service, http: &reqwest::Client) -> Check {
    let base = svc.settings().public_url.clone();
    let url =
        match reqwest::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            _ => return check(
                "public url",
                Level::Fail,
                format!("{base:?} is not an http(s) URL"),
            )
            .fix("set --public-url (or WEBHOOK_MCP_PUBLIC_URL) to e.g. https://hooks.example.com"),
        };
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let local = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    };
    let reaches_us = matches!(
        healthz(http, &base).await,
        Ok(body) if body["store_id"] == svc.store_id()
    );
    match (reaches_us, local) {
        (true, false) => check("public url", Level::Ok, format!("{base} reaches this store's receiver")),
        (true, true) => check("public url", Level::Warn, format!("{base} works, but only from this machine or network"))
            .fix("for providers on the internet, put a tunnel (cloudflared, ngrok) in front of the receiver and set --public-url to it"),
        (false, _) => check("public url", Level::Warn, format!("{base} does not reach a receiver of this store now"))
            .fix("receive URLs are built from it: point --public-url at the receiver (or a tunnel to it), and keep a `serve` running"),
    }
}

async fn healthz(http: &reqwest::Client, base: &str) -> Result<Value, reqwest::Error> {
    let resp = http
        .get(format!("{}/healthz", base.trim_end_matches('/')))
        .send()
        .await?;
    let body = resp.bytes().await?;
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn print(admin: &AdminArgs, checks: &[Check]) {
    let value = json!({
        "ok": checks.iter().all(|c| c.status != Level::Fail),
        "checks": checks,
    });
    admin.print(&value, |_| {
        let mut t = table(&["CHECK", "STATUS", "DETAIL"]);
        for c in checks {
            let status = serde_json::to_value(c.status).unwrap_or_default();
            t.add_row(vec![
                c.check.into(),
                status_cell(status.as_str().unwrap_or_default()),
                c.detail.clone().into(),
            ]);
        }
        let fixes: Vec<String> = checks
            .iter()
            .filter_map(|c| c.fix.as_ref().map(|f| format!("  {}: {f}", c.check)))
            .collect();
        if fixes.is_empty() {
            return t.to_string();
        }
        format!("{t}\n\nwhat to do:\n{}", fixes.join("\n"))
    });
}
