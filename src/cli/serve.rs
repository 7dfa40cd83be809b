//! The `serve` command: opens the store, binds the listeners, starts the delivery worker, runs
//! MCP (stdio, or Streamable HTTP with `--http`), and shuts everything down on stdin EOF (stdio),
//! SIGTERM or Ctrl-C.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rmcp::service::ServerInitializeError;
use rmcp::ServiceExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ReceiverAt, ServeArgs};
use crate::auth::{self, Auth};
use crate::dispatcher::policy::{parse_schedule, Policy};
use crate::mcp::{http, McpServer};
use crate::service::{Service, Settings, WorkerSettings};
use crate::{dashboard, receiver};

pub use super::StartError;

pub async fn run(args: ServeArgs) -> Result<(), StartError> {
    let receiver_at = args.receiver().map_err(StartError)?;
    if args
        .auth_token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        // An empty token would mean "no auth" while looking configured: refuse it.
        return Err(StartError(
            "--auth-token (WEBHOOK_MCP_AUTH_TOKEN) is set but empty; give a long random token, \
             or leave it unset to serve loopback without one"
                .into(),
        ));
    }
    let schedule = parse_schedule(&args.retry_schedule)
        .map_err(|e| StartError(format!("--retry-schedule: {e}")))?;
    if let Some(addr) = args.http {
        let credentials = args.auth_token.is_some()
            || args.auth_tokens_file.is_some()
            || args.oauth_issuer.is_some();
        if !addr.ip().is_loopback() && !credentials {
            return Err(StartError(format!(
                "--http {addr} is reachable from other machines, so it needs credentials: \
                 --auth-token <secret> (or WEBHOOK_MCP_AUTH_TOKEN; clients then send \
                 Authorization: Bearer <secret>), --auth-tokens-file or --oauth-issuer. \
                 Bind 127.0.0.1 to serve this machine only."
            )));
        }
    }
    // Installed before anything can answer a client (see `shutdown_signal`).
    let shutdown = shutdown_signal();
    let store = args.store.open().await?;

    // Bind everything before announcing anything, so a taken port fails the start cleanly.
    // A receiver port held by another process on the same store is not a failure: that process
    // receives for both (every process sees every event), and this one takes the port over
    // when it frees (several desktop clients, each starting its own server).
    let mut standby = None;
    let receiver_listener = match receiver_at {
        ReceiverAt::Own(configured) => {
            // Port 0 picks a free port once; later starts ask for the same one, so that receive
            // URLs (derived from it without --public-url) survive a restart.
            let remembered = (configured.port() == 0 && args.public_url.is_none())
                .then(|| remembered_port(&args))
                .flatten();
            let addr = remembered.map_or(configured, |p| SocketAddr::new(configured.ip(), p));
            match TcpListener::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(e)
                    if e.kind() == ErrorKind::AddrInUse
                        && addr.port() != 0
                        && held_by_sibling(addr, store.store_id()).await =>
                {
                    standby = Some(addr);
                    None
                }
                Err(_) if remembered.is_some() => {
                    tracing::warn!(%addr, "the receiver's previous port is taken by another program: picking a new one (receive URLs change; set --public-url or a fixed --receiver-addr to keep them)");
                    Some(bind(configured, "receiver", "--receiver-addr").await?)
                }
                Err(e) => return Err(bind_error(addr, e, "receiver", "--receiver-addr")),
            }
        }
        _ => None,
    };
    if let (ReceiverAt::Own(configured), Some(listener)) = (receiver_at, &receiver_listener) {
        if configured.port() == 0 {
            remember_port(&args, listener);
        }
    }
    let http_listener = match args.http {
        Some(addr) => Some(bind(addr, "MCP HTTP", "--http").await?),
        None => None,
    };
    // After the bind: OAuth's default audience names the port actually bound.
    let auth = match http_listener.as_ref().map(TcpListener::local_addr) {
        Some(Ok(addr)) => http_auth(&args, addr, receiver_at)?,
        Some(Err(e)) => return Err(StartError(format!("--http: {e}"))),
        None => None,
    };
    let receiver_bound = match receiver_at {
        ReceiverAt::Own(_) if standby.is_some() => standby,
        ReceiverAt::Own(_) => receiver_listener.as_ref().and_then(|l| l.local_addr().ok()),
        ReceiverAt::SameAsHttp => http_listener.as_ref().and_then(|l| l.local_addr().ok()),
        ReceiverAt::Off => None,
    };
    let settings = Settings {
        public_url: args.public_url(receiver_bound),
        receiver_addr: receiver_bound,
        delivery_timeout: args.delivery_timeout(),
        max_body_bytes: args.max_body_bytes,
        receiver_concurrency: args.receiver_concurrency.max(1),
        receiver_timeout: Duration::from_secs(args.receiver_timeout.max(1)),
        allow_private_targets: args.allow_private_targets,
        timestamp_tolerance: args.timestamp_tolerance as i64,
        retention: args.retention.retention(),
        read_only: args.read_only,
        http_callbacks: args.dangerously_allow_http_callbacks,
        token_principals: args.http.map(|_| {
            auth.as_ref()
                .map(|a| a.token_principals())
                .unwrap_or_default()
        }),
    };
    if args.dangerously_allow_http_callbacks {
        tracing::warn!("--dangerously-allow-http-callbacks: MCP Events subscriptions may deliver over plain http; never use this outside local development");
    }
    let svc = Arc::new(Service::new(store, settings));

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = Arc::new(svc.worker(WorkerSettings {
        policy: Policy {
            schedule,
            disable_after: Duration::from_secs(args.disable_after),
            subscription: false,
        },
        concurrency: args.delivery_concurrency,
        lease: args.delivery_timeout() + Duration::from_secs(60),
        drain: args.delivery_timeout().min(Duration::from_secs(10)),
    }));
    let background = svc
        .start_background(stop_rx.clone())
        .await
        .map_err(|e| StartError(format!("cannot start on the store: {e}")))?;
    let worker_task = tokio::spawn(worker.run(stop_rx.clone()));
    let mut servers = vec![];
    if let Some(listener) = receiver_listener {
        tracing::info!(addr = ?receiver_bound, public_url = %svc.settings().public_url, "receiver listening");
        servers.push(spawn_http(
            listener,
            receiver::router(svc.clone(), None),
            stop_rx.clone(),
        ));
    }
    if let Some(addr) = standby {
        tracing::warn!(
            %addr,
            "the receiver port is held by another webhook-mcp on this store: serving MCP without \
             a receiver for now (that process receives, and its events reach this session too); \
             taking the port over when it frees"
        );
        servers.push(tokio::spawn(take_over_receiver(
            addr,
            svc.clone(),
            stop_rx.clone(),
        )));
    }

    tokio::pin!(shutdown);
    let mut failure = None;
    match http_listener {
        Some(listener) => {
            let cancel = CancellationToken::new();
            // A page of the server's own origin may call it (the dashboard; the MCP rule is
            // to refuse foreign origins, not our own): its loopback spellings at its port.
            let mut origins = args.allowed_origins.clone();
            if let Ok(addr) = listener.local_addr() {
                let port = addr.port();
                origins.extend(
                    ["localhost", "127.0.0.1", "[::1]"].map(|h| format!("http://{h}:{port}")),
                );
            }
            let mut app: Router = http::router(
                svc.clone(),
                http::HttpOptions {
                    auth: auth.clone(),
                    allowed_hosts: http_hosts(&args),
                    allowed_origins: origins,
                    session_idle_timeout: Duration::from_secs(args.session_idle_timeout.max(1)),
                    max_sessions: args.max_sessions,
                    // The receiver's request timeout bounds uploads to /mcp too.
                    body_timeout: Duration::from_secs(args.receiver_timeout.max(1)),
                    cancel: cancel.clone(),
                },
            );
            app = app.merge(dashboard::router(
                svc.clone(),
                dashboard::DashboardOptions {
                    auth_token: args.auth_token.clone().filter(|t| !t.is_empty()),
                    locked: auth.is_some() && args.auth_token.is_none(),
                    allowed_hosts: http_hosts(&args),
                    allowed_origins: args.allowed_origins.clone(),
                    cancel: cancel.clone(),
                },
            ));
            if receiver_at == ReceiverAt::SameAsHttp {
                // Sharing the MCP listener: /metrics takes the operator's token there.
                app = app.merge(receiver::router(svc.clone(), auth.clone()));
            }
            if let Some(verifier) = auth.as_ref().and_then(|a| a.oauth()) {
                match verifier.load().await {
                    Ok(keys) => tracing::info!(
                        issuer = verifier.issuer(),
                        audience = verifier.audience(),
                        keys,
                        "OAuth resource server"
                    ),
                    Err(e) => {
                        tracing::warn!(issuer = verifier.issuer(), error = %e, "cannot fetch the OAuth issuer's keys yet; tokens are refused with 503 until it answers")
                    }
                }
            }
            tracing::info!(addr = ?listener.local_addr().ok(), auth = auth.is_some(), "MCP over Streamable HTTP at /mcp");
            servers.push(spawn_http(listener, app, stop_rx.clone()));
            shutdown.await;
            tracing::info!("signal received; shutting down");
            cancel.cancel();
        }
        None => {
            failure = serve_stdio(svc.clone(), &mut shutdown).await.err();
        }
    }

    let _ = stop_tx.send(true);
    // Bounded by the worker's own drain time.
    let _ = worker_task.await;
    svc.retire().await;
    for task in background {
        let _ = task.await;
    }
    for task in servers {
        // In-flight requests finish; a stuck client cannot hold the exit hostage.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    failure.map_or(Ok(()), Err)
}

/// MCP over stdin/stdout until EOF or a signal.
async fn serve_stdio(
    svc: Arc<Service>,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<(), StartError> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        // Started by hand: say what it is waiting for instead of sitting there silently.
        eprintln!(
            "webhook-mcp is serving MCP over stdio: it expects an MCP client (Claude Desktop, an \
             SDK, the MCP Inspector) to write JSON-RPC to its stdin, not a person. The receiver \
             runs meanwhile. Ctrl-C stops it; `webhook-mcp --help` lists the other commands."
        );
    }
    let session = tokio::select! {
        // Non-blocking pipes when the client launched us with pipes (the usual case): reads and
        // writes run on the reactor, not a blocking-pool hand-off per message (a notification
        // per stored event adds up). Anything else falls back to blocking stdio.
        started = McpServer::new(svc).serve(stdio_transport()) => match started {
            Ok(running) => running,
            // EOF before any client spoke (e.g. `serve < /dev/null`): nothing to serve.
            Err(ServerInitializeError::ConnectionClosed(_)) => {
                tracing::info!("stdin closed before a client connected; shutting down");
                return Ok(());
            }
            Err(e) => return Err(StartError(format!("MCP over stdio failed to start: {e}"))),
        },
        _ = shutdown.as_mut() => {
            tracing::info!("signal received; shutting down");
            return Ok(());
        }
    };
    let cancel = session.cancellation_token();
    tokio::select! {
        r = session.waiting() => {
            if let Err(e) = r { tracing::warn!(error = %e, "MCP session ended with an error"); }
            tracing::info!("stdin closed; shutting down");
        }
        _ = shutdown.as_mut() => {
            tracing::info!("signal received; shutting down");
            cancel.cancel();
        }
    }
    Ok(())
}

/// stdin/stdout with `framing` in front of rmcp, so that every request gets an answer.
fn stdio_transport() -> crate::mcp::framing::GuardedStdio<
    rmcp::transport::io::StdioReader,
    rmcp::transport::io::StdioWriter,
> {
    let (read, write) = rmcp::transport::stdio_pipes();
    crate::mcp::framing::GuardedStdio::new(read, write)
}

/// Host values the HTTP transport accepts beyond loopback: the configured ones, and the bound
/// IP itself when it is a specific address.
fn http_hosts(args: &ServeArgs) -> Vec<String> {
    let mut hosts: Vec<String> = args
        .allowed_hosts
        .iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if let Some(addr) = args.http {
        if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
            hosts.push(addr.ip().to_string());
        }
    }
    hosts
}

/// Returns once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// How long a client may take to send a request's headers. hyper enforces it only with a timer,
/// which `axum::serve` does not set: a sender dribbling header bytes held its connection for
/// ever. Bodies are bounded by each router's own timeout (`--receiver-timeout`).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` over HTTP/1.1 until `stop`, with a header-read timeout and the
/// peer address as a `ConnectInfo` extension (the receiver rate-limits refusals per source).
/// Connections finish their requests on stop (graceful).
fn spawn_http(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "could not accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped(&mut stop) => break,
            };
            let service = app
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer)))
                .map_request(|req: axum::http::Request<hyper::body::Incoming>| {
                    req.map(axum::body::Body::new)
                });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn =
                http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        // In-flight requests finish; long-lived streams (SSE) are cut after a grace period.
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    })
}

async fn bind(addr: SocketAddr, what: &str, flag: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(addr, e, what, flag))
}

/// Where a receiver started with port 0 keeps the port it got (one line, the number).
fn port_file(args: &ServeArgs) -> std::path::PathBuf {
    args.data_dir().join("receiver-port")
}

fn remembered_port(args: &ServeArgs) -> Option<u16> {
    std::fs::read_to_string(port_file(args))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p != 0)
}

fn remember_port(args: &ServeArgs, listener: &TcpListener) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    if let Err(e) = super::private_dir(&args.data_dir())
        .and_then(|()| std::fs::write(port_file(args), format!("{}\n", addr.port())))
    {
        tracing::warn!(error = %e, "could not record the receiver's port; it may change at the next start");
    }
}

/// Is `addr` served by a webhook-mcp on the store `store_id`? (Its `/healthz` says so.)
async fn held_by_sibling(addr: SocketAddr, store_id: &str) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("the HTTP client builds with static settings");
    let answer = async {
        let resp = client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .ok()?;
        let bytes = resp.bytes().await.ok()?;
        serde_json::from_slice::<serde_json::Value>(&bytes).ok()
    };
    answer
        .await
        .is_some_and(|v| v["service"] == "webhook-mcp" && v["store_id"] == store_id)
}

/// Waits for the receiver port to free (its holder stopped), then serves the receiver on it.
async fn take_over_receiver(addr: SocketAddr, svc: Arc<Service>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PORT_RETRY) => {}
            _ = stop.changed() => return,
        }
        if let Ok(listener) = TcpListener::bind(addr).await {
            tracing::info!(%addr, "took over the receiver port");
            let _ = spawn_http(listener, receiver::router(svc, None), stop).await;
            return;
        }
    }
}

/// How often a process without the receiver port tries to take it.
const PORT_RETRY: Duration = Duration::from_millis(500);

fn bind_error(addr: SocketAddr, e: std::io::Error, what: &str, flag: &str) -> StartError {
    StartError(match e.kind() {
        ErrorKind::AddrInUse => format!(
            "the {what} address {addr} is already in use ({}). Pick another with {flag} \
                 127.0.0.1:<port> (port 0 picks a free one){}",
            if flag == "--receiver-addr" {
                "by a process that is not a webhook-mcp on this store"
            } else {
                "another webhook-mcp?"
            },
            if flag == "--receiver-addr" {
                ", or run without a receiver using --no-receiver"
            } else {
                ""
            }
        ),
        _ => format!("cannot listen on {addr} for the {what}: {e}; choose another {flag}"),
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed here, when it is called, not when
/// the future is first polled: a signal that arrives right after the first answer to a client
/// must already find them (else the default action kills the process).
pub(super) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                // No signal driver: nothing to wait for; EOF still ends a stdio session.
                _ => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The credentials of the HTTP listener at `addr`: the operator's token, the tokens file, the
/// OAuth issuer with its audience; `None` when none is configured.
fn http_auth(
    args: &ServeArgs,
    addr: SocketAddr,
    receiver_at: ReceiverAt,
) -> Result<Option<Arc<Auth>>, StartError> {
    let verifier = match &args.oauth_issuer {
        Some(issuer) => {
            let audience = match &args.oauth_audience {
                Some(a) => a.clone(),
                None if receiver_at == ReceiverAt::SameAsHttp && args.public_url.is_some() => {
                    format!("{}/mcp", args.public_url(None).trim_end_matches('/'))
                }
                None if addr.ip().is_unspecified() => {
                    return Err(StartError(format!(
                        "--oauth-issuer needs --oauth-audience: --http {addr} has no one URL \
                         clients know; give the URL they use for /mcp (e.g. https://hooks.example.com/mcp)"
                    )))
                }
                None => format!("http://{addr}/mcp"),
            };
            Some(auth::oauth::Verifier::new(issuer, &audience).map_err(StartError)?)
        }
        None => None,
    };
    Auth::new(
        args.auth_token.as_deref().filter(|t| !t.is_empty()),
        args.auth_tokens_file.as_deref(),
        verifier,
    )
    .map(|a| a.map(Arc::new))
    .map_err(StartError)
}
