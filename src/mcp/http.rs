//! MCP over Streamable HTTP (SSE): the rmcp service at `/mcp`, behind Host/Origin validation,
//! a request body limit and, when configured, a bearer token.
//!
//! Both protocol eras are served: session-based clients (<= 2025-11-25, `Mcp-Session-Id`) get
//! one `McpServer` per session; 2026-07-28 clients are stateless and get one per request. All
//! of them share the one `Service`, so every session sees every event.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::McpServer;
use crate::service::Service;
use crate::signing;

pub struct HttpOptions {
    pub auth_token: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub session_idle_timeout: Duration,
    pub cancel: CancellationToken,
}

/// Largest JSON-RPC request body accepted.
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// SSE comment pings keep idle streams open through proxies.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The `/mcp` router.
pub fn router(svc: Arc<Service>, opts: HttpOptions) -> Router {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    hosts.extend(opts.allowed_hosts);
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(SSE_KEEP_ALIVE))
        .with_cancellation_token(opts.cancel)
        .with_allowed_hosts(hosts)
        .with_max_request_body_bytes(MAX_REQUEST_BYTES);
    // No browser origin is trusted unless named: a page cannot drive a local server.
    let config = if opts.allowed_origins.is_empty() {
        config.enforce_origin_validation()
    } else {
        config.with_allowed_origins(opts.allowed_origins)
    };
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(opts.session_idle_timeout);
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(svc.clone())),
        Arc::new(sessions),
        config,
    );
    let mcp = Router::new().nest_service("/mcp", service);
    match opts.auth_token {
        Some(token) => mcp.layer(middleware::from_fn_with_state(
            Arc::new(token),
            require_bearer,
        )),
        None => mcp,
    }
}

/// `Authorization: Bearer <token>`, compared in constant time; 401 otherwise.
async fn require_bearer(State(token): State<Arc<String>>, req: Request, next: Next) -> Response {
    // The scheme name is case-insensitive (RFC 7235): `bearer` and `BEARER` are `Bearer`.
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    if signing::constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return next.run(req).await;
    }
    tracing::warn!(path = %req.uri().path(), "MCP request without a valid bearer token refused");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(
            json!({ "error": "missing or wrong bearer token: send Authorization: Bearer <token>" }),
        ),
    )
        .into_response()
}
