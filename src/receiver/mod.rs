//! The bundled HTTP receiver: `POST /hooks/{webhook_id}` for providers, `GET /healthz`.
//!
//! Handlers only frame HTTP: they bound the body, hand it to `Service::receive`, and turn the
//! outcome into a JSON response (`answer`, the one place that says what a provider is told).
//! The pipeline itself lives in the service layer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::BoxError;
use axum::{Extension, Json, Router};
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Value};
use tower::ServiceBuilder;

use crate::service::{InboundRequest, ReceiveOutcome, Service};

/// The receiver's routes. `metrics_auth`: when the receiver shares the MCP listener and that
/// listener checks credentials, `/metrics` takes the operator's token (it tells traffic,
/// webhook counts and failures of every principal); on a receiver port of its own it stays
/// open for scrapers.
pub fn router(svc: Arc<Service>, metrics_auth: Option<Arc<crate::auth::Auth>>) -> Router {
    let metrics_route = match metrics_auth {
        Some(auth) => get(metrics).layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::require_operator,
        )),
        None => get(metrics),
    };
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        // Beyond the concurrency limit a request is refused at once (503), not queued: a flood
        // cannot pile up memory, and a real sender retries.
        .load_shed()
        .concurrency_limit(svc.settings().receiver_concurrency)
        // A sender that stalls (slow headers or body) gives its slot back.
        .timeout(svc.settings().receiver_timeout);
    Router::new()
        .route("/hooks/{webhook_id}", post(receive))
        .route("/healthz", get(healthz))
        .route("/metrics", metrics_route)
        // The handler enforces the limit itself so that an oversize request is logged too.
        .layer(DefaultBodyLimit::disable())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(svc)
        .layer(limits)
}

/// The answers of the limits: 408 for a request that took too long, 503 with Retry-After when
/// the receiver is at its concurrency limit.
async fn overloaded(err: BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!("inbound request timed out (slow sender)");
        return (
            StatusCode::REQUEST_TIMEOUT,
            [(axum::http::header::CONNECTION, "close")],
            Json(json!({ "received": false, "error": "the request took too long; send it again" })),
        )
            .into_response();
    }
    if err.is::<tower::load_shed::error::Overloaded>() {
        return busy("the receiver is at its concurrency limit; retry shortly");
    }
    tracing::error!(error = %err, "receiver middleware failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "received": false, "error": "internal error; retry later" })),
    )
        .into_response()
}

fn busy(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        Json(json!({ "received": false, "error": why })),
    )
        .into_response()
}

/// Prometheus text exposition (version 0.0.4).
async fn metrics(State(svc): State<Arc<Service>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        svc.metrics_text().await,
    )
        .into_response()
}

async fn receive(
    State(svc): State<Arc<Service>>,
    Path(webhook_id): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The TCP peer (behind a tunnel, the tunnel): forwarded-for headers can be forged.
    let source = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let limit = svc.settings().max_body_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = declared.is_some_and(|n| n > limit as u64);
    // The webhook first: a URL that names none costs no body buffered.
    let webhook = match svc.inbound_webhook(&webhook_id, &headers, source).await {
        Ok(webhook) => webhook,
        Err(refused) if too_large => return closing(respond(&refused)),
        Err(refused) => return discard(body, limit, respond(&refused)).await,
    };
    if too_large {
        return closing(respond(
            &svc.reject_oversize(&webhook, &headers, source).await,
        ));
    }
    let bytes: Bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return closing(respond(
                &svc.reject_oversize(&webhook, &headers, source).await,
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read request body");
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "received": false, "error": "could not read the request body" })),
            )
                .into_response();
        }
    };
    let request = InboundRequest {
        headers: &headers,
        body: &bytes,
        source,
    };
    respond(&svc.receive_for(webhook, request).await)
}

/// Reads a refused request's body to its end without keeping it (within the size limit and
/// the receiver's timeout), so the sender reads the answer on a connection that stays usable;
/// a body over the limit closes the connection instead.
async fn discard(body: Body, limit: usize, answer: Response) -> Response {
    let mut body = Limited::new(body, limit);
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return closing(answer);
        }
    }
    answer
}

/// An answer sent before the body was read: the rest of the body stays unread, so this
/// connection cannot carry another request. Say so, or a pooling client would send its next
/// request into a closing socket.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

fn respond(outcome: &ReceiveOutcome) -> Response {
    let (status, body) = answer(outcome);
    let mut resp = (status, Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Nothing was stored: tell the sender when to try again.
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    resp
}

/// What the provider is told: the outcome's status and a JSON body. `test_webhook` shows the
/// same answer to the agent.
pub fn answer(outcome: &ReceiveOutcome) -> (StatusCode, Value) {
    let status =
        StatusCode::from_u16(outcome.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match outcome {
        ReceiveOutcome::Stored {
            event_id,
            delivery_id,
        } => json!({ "received": true, "event_id": event_id, "delivery_id": delivery_id }),
        ReceiveOutcome::Duplicate { event_id } => {
            json!({ "received": true, "duplicate": true, "event_id": event_id })
        }
        ReceiveOutcome::Filtered { reason } => {
            json!({ "received": true, "stored": false, "reason": reason })
        }
        ReceiveOutcome::Challenge(challenge) => json!({ "challenge": challenge }),
        ReceiveOutcome::Refused(why) => json!({ "received": false, "error": why.to_string() }),
    };
    (status, body)
}

/// 200 with `ok: true` while the store takes writes; 503 with `ok: false` and the reason while
/// it cannot (disk full, read-only, database unreachable), so a monitor sees what senders see.
async fn healthz(State(svc): State<Arc<Service>>) -> Response {
    let store = svc.check_store().await;
    let status = if store.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ok": store.is_ok(),
        "store": match &store {
            Ok(()) => "writable".to_string(),
            Err(e) => format!("cannot write: {e}"),
        },
        "service": "webhook-mcp",
        "version": env!("CARGO_PKG_VERSION"),
        // Processes sharing a store recognise each other by it (see cli::serve).
        "store_id": svc.store_id(),
        "stats": svc.stats().snapshot(),
    });
    (status, Json(body)).into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "method not allowed; providers POST to /hooks/{webhook_id}" })),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "not found; providers POST to /hooks/{webhook_id}" })),
    )
        .into_response()
}
