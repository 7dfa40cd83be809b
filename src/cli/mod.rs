//! The command line: flags and environment (flag > `WEBHOOK_MCP_*` env > default) as clap
//! types, and one module per subcommand (`serve`).

pub mod admin;
pub mod connect;
pub mod deliveries;
pub mod doctor;
pub mod events;
pub mod logging;
pub mod prune;
pub mod secrets;
pub mod serve;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::store::postgres::PgStore;
use crate::store::sealing::{KeySource, Keyring};
use crate::store::sqlite::SqliteStore;
use crate::store::SharedStore;

#[derive(Debug, Parser)]
#[command(
    name = "webhook-mcp",
    version,
    about = "An MCP server that gives AI agents webhooks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdio, with the bundled receiver (the default command).
    Serve(Box<ServeArgs>),
    /// Bridge a stdio-only MCP client to a running `webhook-mcp serve --http`.
    ///
    /// Example, in a client's server list: {"command": "/usr/local/bin/webhook-mcp",
    /// "args": ["connect", "http://127.0.0.1:8848/mcp"], "env": {"WEBHOOK_MCP_AUTH_TOKEN": "..."}}
    Connect(ConnectArgs),
    /// Delete history older than the retention now (serving processes also do it in the
    /// background), and let the store file shrink.
    ///
    /// Example: webhook-mcp prune --retain-events 7d --retain-deliveries 48h
    Prune(PruneArgs),
    /// Create, list, change, test and delete webhooks.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCmd),
    /// Received events: list, show one, follow live.
    #[command(subcommand)]
    Events(events::EventsCmd),
    /// The delivery log: inbound requests and outbound attempts.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCmd),
    /// Queue a delivery again: one by id, or a webhook's failed ones in a window.
    Redeliver(deliveries::RedeliverArgs),
    /// Send an event to the matching outbound webhooks.
    Send(deliveries::SendArgs),
    /// Check the data directory, store, receiver, public URL and clock; say what to fix.
    Doctor(doctor::DoctorArgs),
    /// The key that seals stored secrets.
    #[command(subcommand)]
    Secrets(secrets::SecretsCmd),
}

/// Where the store is: a PostgreSQL URL, or the SQLite file in a data directory.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where the SQLite store lives [default: $XDG_DATA_HOME/webhook-mcp or ~/.local/share/webhook-mcp]
    #[arg(long, env = "WEBHOOK_MCP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// A PostgreSQL database to share with other instances (any number, on any hosts) instead of
    /// the SQLite file in --data-dir, e.g. postgres://user:password@db.internal:5432/webhooks
    /// (add ?sslmode=require for TLS).
    #[arg(long, env = "WEBHOOK_MCP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The key(s) that seal webhook secrets and credential headers at rest: 32 random bytes in
    /// base64 (`openssl rand -base64 32`), comma-separated during a rotation (the first seals,
    /// each opens). Required with --database-url, the same on every instance; for SQLite it
    /// replaces the key file <data-dir>/secrets.key.
    #[arg(long, env = "WEBHOOK_MCP_SECRETS_KEY", hide_env_values = true,
          value_parser = |s: &str| Ok::<_, String>(crate::model::Secret::new(s)))]
    pub secrets_key: Option<crate::model::Secret>,
}

// `StoreArgs` derives Debug: the key is a `Secret`, so it prints as `***`.
impl StoreArgs {
    fn given_keys(&self) -> Option<&str> {
        self.secrets_key
            .as_ref()
            .map(|k| k.expose())
            .filter(|k| !k.trim().is_empty())
    }
}

/// How long history is kept.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// How long received events are kept (with their receipts), e.g. 30d, 12h, 90s, or `off`.
    /// A provider's event id is de-duplicated for this long.
    #[arg(long, env = "WEBHOOK_MCP_RETAIN_EVENTS", default_value = "30d", value_parser = retain_for)]
    pub retain_events: RetainFor,

    /// How long the delivery log (receipts, finished attempts) is kept, e.g. 30d, or `off`.
    /// Pending attempts are never pruned.
    #[arg(long, env = "WEBHOOK_MCP_RETAIN_DELIVERIES", default_value = "30d", value_parser = retain_for)]
    pub retain_deliveries: RetainFor,
}

/// A retention flag's value: a duration, or `None` for `off` (a newtype, because clap reads an
/// `Option` field as "flag may be absent").
#[derive(Debug, Clone, Copy)]
pub struct RetainFor(pub Option<Duration>);

fn retain_for(s: &str) -> Result<RetainFor, String> {
    crate::service::parse_retention(s).map(RetainFor)
}

impl RetentionArgs {
    pub fn retention(&self) -> crate::service::Retention {
        crate::service::Retention {
            events: self.retain_events.0,
            deliveries: self.retain_deliveries.0,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The service's MCP endpoint.
    #[arg(default_value = "http://127.0.0.1:8848/mcp")]
    pub url: String,

    /// The bearer token the service requires (its --auth-token).
    #[arg(long, env = "WEBHOOK_MCP_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Address of the bundled receiver that providers POST to (port 0 picks a free port), or
    /// `same` to serve it on the --http listener under /hooks/.
    #[arg(
        long,
        env = "WEBHOOK_MCP_RECEIVER_ADDR",
        default_value = "127.0.0.1:8787"
    )]
    pub receiver_addr: String,

    /// Serve MCP over Streamable HTTP (SSE) at http://<addr>/mcp instead of stdio.
    #[arg(long, env = "WEBHOOK_MCP_HTTP")]
    pub http: Option<SocketAddr>,

    /// Bearer token HTTP clients must send (required when --http is not on loopback).
    #[arg(long, env = "WEBHOOK_MCP_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// A file of named bearer tokens, one `NAME TOKEN [SCOPE…]` per line (scopes
    /// webhooks:read, webhooks:write; both when none is given): each name is a principal that
    /// sees only its own webhooks.
    #[arg(long, env = "WEBHOOK_MCP_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<std::path::PathBuf>,

    /// An OAuth 2.1 / OpenID Connect issuer whose JWT access tokens the HTTP transport accepts
    /// (https; plain http only on loopback). Its metadata names the keys.
    #[arg(long, env = "WEBHOOK_MCP_OAUTH_ISSUER")]
    pub oauth_issuer: Option<String>,

    /// The audience OAuth tokens must carry (RFC 8707 resource) [default: the public URL of
    /// /mcp: --public-url + /mcp with --receiver-addr same, else http://<--http>/mcp]
    #[arg(long, env = "WEBHOOK_MCP_OAUTH_AUDIENCE")]
    pub oauth_audience: Option<String>,

    /// Extra Host values the HTTP transport accepts (loopback names are always accepted),
    /// comma-separated.
    #[arg(long, env = "WEBHOOK_MCP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Browser origins allowed to call the HTTP transport (e.g. https://app.example.com:443);
    /// requests with any other Origin are refused. Comma-separated.
    #[arg(long, env = "WEBHOOK_MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Seconds an HTTP session (protocol <= 2025-11-25) may stay silent before it is closed.
    #[arg(long, env = "WEBHOOK_MCP_SESSION_IDLE_TIMEOUT", default_value_t = 3600)]
    pub session_idle_timeout: u64,

    /// Most HTTP sessions (protocol <= 2025-11-25) open at once; an initialize beyond it gets
    /// 503 with Retry-After (a flood of handshakes cannot exhaust memory).
    #[arg(long, env = "WEBHOOK_MCP_MAX_SESSIONS", default_value_t = 256)]
    pub max_sessions: usize,

    /// The base URL providers reach the receiver at (e.g. a tunnel) [default: http://<receiver-addr>]
    #[arg(long, env = "WEBHOOK_MCP_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Offer agents only the tools that read (lists, gets, the delivery log, waiting for
    /// events): the tools that create, change, delete, rotate or send are left out of
    /// tools/list and refused if called. The receiver still stores events.
    #[arg(long, env = "WEBHOOK_MCP_READ_ONLY")]
    pub read_only: bool,

    /// Do not start the receiver (MCP only).
    #[arg(long, env = "WEBHOOK_MCP_NO_RECEIVER")]
    pub no_receiver: bool,

    /// Seconds before an outbound request is abandoned.
    #[arg(long, env = "WEBHOOK_MCP_DELIVERY_TIMEOUT", default_value_t = 15)]
    pub delivery_timeout: u64,

    /// Requests the receiver serves at once; beyond it, 503 with Retry-After.
    #[arg(long, env = "WEBHOOK_MCP_RECEIVER_CONCURRENCY", default_value_t = 512)]
    pub receiver_concurrency: usize,

    /// Seconds a request to the receiver may take, body upload included (408 after); also how
    /// long a POST to /mcp may take to send its body.
    #[arg(long, env = "WEBHOOK_MCP_RECEIVER_TIMEOUT", default_value_t = 30)]
    pub receiver_timeout: u64,

    /// Largest inbound body accepted, in bytes (larger gets 413).
    #[arg(long, env = "WEBHOOK_MCP_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds between delivery attempts after the first, comma-separated.
    #[arg(long, env = "WEBHOOK_MCP_RETRY_SCHEDULE", default_value = crate::dispatcher::policy::DEFAULT_SCHEDULE)]
    pub retry_schedule: String,

    /// Allow outbound targets on loopback and private networks (turns the SSRF guard off).
    #[arg(long, env = "WEBHOOK_MCP_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,

    /// DEVELOPMENT ONLY: accept `http://` callback URLs in MCP Events `events/subscribe`
    /// (SEP-3415 requires https: over http, events travel in clear). Loopback callbacks also need
    /// --allow-private-targets.
    #[arg(long, env = "WEBHOOK_MCP_DANGEROUSLY_ALLOW_HTTP_CALLBACKS")]
    pub dangerously_allow_http_callbacks: bool,

    /// How many deliveries may be in flight at once.
    #[arg(long, env = "WEBHOOK_MCP_DELIVERY_CONCURRENCY", default_value_t = 64)]
    pub delivery_concurrency: usize,

    /// Seconds a signed timestamp (standard, stripe, slack) may be off before the request is
    /// refused as a replay.
    #[arg(long, env = "WEBHOOK_MCP_TIMESTAMP_TOLERANCE", default_value_t = 300)]
    pub timestamp_tolerance: u64,

    /// Seconds of consecutive failure after which an outbound webhook is disabled.
    #[arg(long, env = "WEBHOOK_MCP_DISABLE_AFTER", default_value_t = crate::dispatcher::policy::DEFAULT_DISABLE_AFTER_SECS)]
    pub disable_after: u64,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Cli::parse_from(["webhook-mcp", "serve"])
            .command
            .and_then(|c| match c {
                Command::Serve(a) => Some(*a),
                _ => None,
            })
            .expect("serve parses with defaults")
    }
}

/// A store opened as its concrete backend (for commands that need more than `Store`).
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Backend {
    pub fn keyring(&self) -> &Keyring {
        match self {
            Backend::Sqlite(s) => s.keyring(),
            Backend::Postgres(s) => s.keyring(),
        }
    }

    pub async fn reseal(&self) -> crate::error::Result<usize> {
        match self {
            Backend::Sqlite(s) => s.reseal().await,
            Backend::Postgres(s) => s.reseal().await,
        }
    }
}

/// Something that stops a command from starting, worded for the person running it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

impl StoreArgs {
    /// Opens the store these flags point at, creating the data directory if needed.
    pub async fn open(&self) -> Result<SharedStore, StartError> {
        Ok(match self.open_backend().await? {
            Backend::Postgres(s) => Arc::new(s),
            Backend::Sqlite(s) => Arc::new(s),
        })
    }

    /// The keyring these flags name: `--secrets-key`, else the SQLite store's key file.
    pub fn keyring(&self) -> Result<Keyring, StartError> {
        if let Some(keys) = self.given_keys() {
            return Keyring::from_text(keys, KeySource::Given)
                .map_err(|e| StartError(format!("--secrets-key: {e}")));
        }
        if self.database_url.is_some() {
            return Err(StartError(
                "--database-url needs --secrets-key (or WEBHOOK_MCP_SECRETS_KEY): the key that \
                 seals webhook secrets at rest, the same on every instance; make one with \
                 `openssl rand -base64 32`"
                    .into(),
            ));
        }
        let data_dir = self.data_dir();
        self.private_data_dir(&data_dir)?;
        Keyring::for_data_dir(&data_dir).map_err(|e| StartError(e.to_string()))
    }

    fn private_data_dir(&self, data_dir: &std::path::Path) -> Result<(), StartError> {
        private_dir(data_dir).map_err(|e| {
            StartError(format!(
                "cannot create the data directory {} (mode 0700): {e}; pick another with --data-dir",
                data_dir.display()
            ))
        })
    }

    /// Opens the store these flags point at as its concrete backend.
    pub async fn open_backend(&self) -> Result<Backend, StartError> {
        let keys = self.keyring()?;
        if let Some(url) = &self.database_url {
            let store = PgStore::connect(url, keys).await.map_err(|e| {
                StartError(format!(
                    "cannot open the PostgreSQL store ({}): {e}",
                    redact_url(url)
                ))
            })?;
            tracing::info!(database = %redact_url(url), "store open (PostgreSQL)");
            return Ok(Backend::Postgres(store));
        }
        let data_dir = self.data_dir();
        self.private_data_dir(&data_dir)?;
        let db = data_dir.join("webhook-mcp.db");
        let store = SqliteStore::open_with(&db, keys)
            .map_err(|e| StartError(format!("cannot open the store {}: {e}", db.display())))?;
        tracing::info!(path = %db.display(), "store open");
        Ok(Backend::Sqlite(store))
    }

    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("webhook-mcp")
    }
}

impl ServeArgs {
    pub fn data_dir(&self) -> PathBuf {
        self.store.data_dir()
    }

    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_secs(self.delivery_timeout.max(1))
    }

    /// Where the receiver listens, as configured.
    pub fn receiver(&self) -> Result<ReceiverAt, String> {
        if self.no_receiver {
            return Ok(ReceiverAt::Off);
        }
        if self.receiver_addr.eq_ignore_ascii_case("same") {
            return match self.http {
                Some(_) => Ok(ReceiverAt::SameAsHttp),
                None => Err("--receiver-addr same needs --http (the listener to share)".into()),
            };
        }
        self.receiver_addr
            .parse()
            .map(ReceiverAt::Own)
            .map_err(|_| {
                format!(
                    "--receiver-addr {:?} is neither host:port (e.g. 127.0.0.1:8787) nor `same`",
                    self.receiver_addr
                )
            })
    }

    /// The public URL, defaulting to the address the receiver actually bound.
    pub fn public_url(&self, bound: Option<SocketAddr>) -> String {
        match (&self.public_url, bound) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(addr)) => format!("http://{addr}"),
            (None, None) => format!("http://{}", self.receiver_addr),
        }
    }
}

/// Where providers reach the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverAt {
    Own(SocketAddr),
    SameAsHttp,
    Off,
}

/// A database URL without its password, for logs and errors.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".into(),
    }
}

/// Creates the data directory (and its parents) if missing, and makes it the owner's only
/// (0700) whatever the umask: it holds the store, with webhook secrets and every payload.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}
