//! The `serve` command: opens the store, binds the receiver, runs MCP over stdio, and shuts
//! everything down on stdin EOF, SIGTERM or Ctrl-C.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use rmcp::service::ServerInitializeError;
use rmcp::ServiceExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServeArgs;
use crate::dispatcher::policy::{parse_schedule, Policy};
use crate::dispatcher::worker::Worker;
use crate::mcp::McpServer;
use crate::receiver;
use crate::service::{Service, Settings};
use crate::store::Store;

/// Something that stops the server from starting, worded for the person running it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

pub async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let data_dir = args.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        StartError(format!(
            "cannot create the data directory {}: {e}; pick another with --data-dir",
            data_dir.display()
        ))
    })?;
    let db = data_dir.join("webhook-mcp.db");
    let store = Store::open(&db)
        .map_err(|e| StartError(format!("cannot open the store {}: {e}", db.display())))?;
    tracing::info!(path = %db.display(), "store open");

    let listener = if args.no_receiver {
        None
    } else {
        Some(bind_receiver(&args).await?)
    };
    let bound = listener.as_ref().and_then(|l| l.local_addr().ok());
    let settings = Settings {
        public_url: args.public_url(bound),
        receiver_addr: bound,
        delivery_timeout: args.delivery_timeout(),
        max_body_bytes: args.max_body_bytes,
        allow_private_targets: args.allow_private_targets,
        timestamp_tolerance: args.timestamp_tolerance as i64,
    };
    let schedule = parse_schedule(&args.retry_schedule)
        .map_err(|e| StartError(format!("--retry-schedule: {e}")))?;
    let svc = Arc::new(Service::new(store, settings));

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = Arc::new(Worker {
        store: svc.store.clone(),
        http: svc.http.clone(),
        policy: Policy {
            schedule,
            disable_after: Duration::from_secs(args.disable_after),
        },
        wake: svc.wake.clone(),
        concurrency: args.delivery_concurrency.max(1),
        lease: args.delivery_timeout() + Duration::from_secs(60),
        drain: args.delivery_timeout().min(Duration::from_secs(10)),
    });
    let worker_task = tokio::spawn(worker.run(stop_rx.clone()));
    let receiver_task = listener.map(|listener| {
        tracing::info!(addr = ?bound, public_url = %svc.settings.public_url, "receiver listening");
        let app = receiver::router(svc.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "receiver stopped");
            }
        })
    });

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut failure = None;
    let session = tokio::select! {
        started = McpServer::new(svc.clone()).serve(rmcp::transport::stdio()) => match started {
            Ok(running) => Some(running),
            // EOF before any client spoke (e.g. `serve < /dev/null`): nothing to serve.
            Err(ServerInitializeError::ConnectionClosed(_)) => {
                tracing::info!("stdin closed before a client connected; shutting down");
                None
            }
            Err(e) => {
                failure = Some(StartError(format!("MCP over stdio failed to start: {e}")));
                None
            }
        },
        _ = &mut shutdown => {
            tracing::info!("signal received; shutting down");
            None
        }
    };
    if let Some(running) = session {
        let cancel = running.cancellation_token();
        tokio::select! {
            r = running.waiting() => {
                if let Err(e) = r { tracing::warn!(error = %e, "MCP session ended with an error"); }
                tracing::info!("stdin closed; shutting down");
            }
            _ = &mut shutdown => {
                tracing::info!("signal received; shutting down");
                cancel.cancel();
            }
        }
    }
    let _ = stop_tx.send(true);
    // Bounded by the worker's own drain time.
    let _ = worker_task.await;
    if let Some(task) = receiver_task {
        // In-flight receipts finish; a stuck client cannot hold the exit hostage.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    failure.map_or(Ok(()), Err)
}

async fn bind_receiver(args: &ServeArgs) -> Result<TcpListener, StartError> {
    TcpListener::bind(args.receiver_addr).await.map_err(|e| {
        let addr = args.receiver_addr;
        StartError(match e.kind() {
            ErrorKind::AddrInUse => format!(
                "the receiver address {addr} is already in use (another webhook-mcp?). Pick another \
                 with --receiver-addr 127.0.0.1:<port> (or WEBHOOK_MCP_RECEIVER_ADDR; port 0 picks \
                 a free one), or run without a receiver using --no-receiver"
            ),
            _ => format!("cannot listen on {addr}: {e}; choose another --receiver-addr"),
        })
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
