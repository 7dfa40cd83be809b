//! MCP over Streamable HTTP (SSE): the rmcp service at `/mcp`, behind Host/Origin validation,
//! a request body limit and, when configured, bearer credentials (`auth`): each message is
//! checked against its token's scopes here, before rmcp sees it, so that a call beyond them
//! gets the HTTP 403 an OAuth client steps up from.
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

use super::framing::{self, Verdict};
use super::McpServer;
use crate::auth::{self, Auth, Grant, Refusal, Scope};
use crate::service::Service;

pub struct HttpOptions {
    pub auth: Option<Arc<Auth>>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub session_idle_timeout: Duration,
    /// Most sessions (protocol <= 2025-11-25) open at once; an `initialize` beyond it gets 503.
    pub max_sessions: usize,
    /// How long a client may take to send a POST's body (408 after): a stalled upload does not
    /// hold its connection and buffer for ever.
    pub body_timeout: Duration,
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
    let sessions = Arc::new(sessions);
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(svc.clone())),
        sessions.clone(),
        config,
    );
    let guard = Arc::new(Guard {
        sessions,
        max_sessions: opts.max_sessions.max(1),
        body_timeout: opts.body_timeout,
        auth: opts.auth.clone(),
    });
    let mcp = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(guard, guard_messages));
    let mcp = match opts.auth.clone() {
        Some(auth) => mcp.layer(middleware::from_fn_with_state(auth, auth::require)),
        None => mcp,
    };
    // RFC 9728 metadata, open to anyone (it is how a client learns where to get a token).
    let metadata = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            axum::routing::get(auth::protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            axum::routing::get(auth::protected_resource),
        )
        .with_state(opts.auth);
    mcp.merge(metadata)
}

/// What `guard_messages` needs: the open sessions and their cap.
struct Guard {
    sessions: Arc<LocalSessionManager>,
    max_sessions: usize,
    body_timeout: Duration,
    /// Present when requests carry grants whose scopes are checked.
    auth: Option<Arc<Auth>>,
}

/// Runs `framing::classify` on each POSTed message: one rmcp would drop or answer wrongly
/// (too deeply nested, a lone surrogate, not JSON, bad params of a known method) gets a
/// JSON-RPC error as a JSON body with 400, carrying its id when it could be read. An
/// `initialize` beyond `max_sessions` open sessions gets 503 with Retry-After: memory stays
/// bounded under a flood of handshakes.
async fn guard_messages(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        guard.body_timeout,
        axum::body::to_bytes(body, MAX_REQUEST_BYTES),
    )
    .await;
    let bytes = match read {
        Ok(Ok(b)) => b,
        Err(_) => {
            tracing::warn!("an MCP request body took too long to arrive; answered 408");
            let error = json!({
                "jsonrpc": "2.0",
                "error": { "code": -32600, "message": format!(
                    "the request body did not arrive within {} s; send it again",
                    guard.body_timeout.as_secs()
                ) }
            });
            return (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                Json(error),
            )
                .into_response();
        }
        Ok(Err(_)) => {
            let error = json!({
                "jsonrpc": "2.0",
                "error": { "code": -32600, "message": format!("request body larger than {MAX_REQUEST_BYTES} bytes") }
            });
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(error)).into_response();
        }
    };
    if let Some(answer) = removed_in_2026(&bytes, &parts.headers) {
        return answer;
    }
    let verdict = framing::classify(&bytes);
    if let (Some(auth), Some(grant), Verdict::Pass(msg)) =
        (&guard.auth, parts.extensions.get::<Grant>(), &verdict)
    {
        if let Some((needed, what)) = required_scope(msg).filter(|(s, _)| !grant.scopes.allows(*s))
        {
            tracing::info!(principal = %grant.principal, scope = needed.as_str(), %what, "MCP request beyond the token's scopes refused");
            let id = match &**msg {
                rmcp::model::JsonRpcMessage::Request(r) => serde_json::to_value(&r.id).ok(),
                _ => None,
            };
            return auth.refuse(Refusal::InsufficientScope { needed, what }, id);
        }
    }
    match verdict {
        Verdict::Refuse(error) => {
            tracing::debug!(code = error.error.code.0, reason = %error.error.message, "refused an MCP request");
            let error = rmcp::model::JsonRpcMessage::<(), (), ()>::Error(*error);
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
        Verdict::Pass(msg) if is_initialize(&msg) => {
            let open = guard.sessions.sessions.read().await.len();
            if open >= guard.max_sessions {
                tracing::warn!(
                    open,
                    max = guard.max_sessions,
                    "MCP session limit reached; initialize refused"
                );
                let id = match *msg {
                    rmcp::model::JsonRpcMessage::Request(r) => Some(r.id),
                    _ => None,
                };
                let error = json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "error": { "code": -32000, "message": format!(
                        "the server has {open} open sessions, its limit (--max-sessions); retry later or close idle sessions"
                    ) }
                });
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "5")],
                    Json(error),
                )
                    .into_response();
            }
        }
        _ => {}
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The methods the 2026-07-28 revision removed (the lifecycle and the session-scoped ones): a
/// request that speaks that revision (its `_meta` or its `MCP-Protocol-Version` header) gets
/// 404 with -32601, as the revision requires, whatever its params (which would otherwise be
/// judged against the old method's shape).
const REMOVED_IN_2026: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

fn removed_in_2026(bytes: &[u8], headers: &axum::http::HeaderMap) -> Option<Response> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let method = value.get("method")?.as_str()?;
    if !REMOVED_IN_2026.contains(&method) {
        return None;
    }
    let id = value.get("id")?;
    let revision = value
        .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
        .and_then(serde_json::Value::as_str)
        .or_else(|| {
            headers
                .get("mcp-protocol-version")
                .and_then(|v| v.to_str().ok())
        })?;
    if revision < "2026-07-28" {
        return None;
    }
    let error = json!({
        "jsonrpc": "2.0", "id": id,
        "error": { "code": -32601, "message": format!("{method} is not a method of protocol {} (removed in 2026-07-28)", crate::error::bounded(revision, 20)) },
    });
    Some((StatusCode::NOT_FOUND, Json(error)).into_response())
}

fn is_initialize(msg: &rmcp::service::RxJsonRpcMessage<rmcp::RoleServer>) -> bool {
    matches!(msg, rmcp::model::JsonRpcMessage::Request(r)
        if matches!(r.request, rmcp::model::ClientRequest::InitializeRequest(_)))
}

/// The scope a message needs, and what to call it in the refusal: a tool by its effect
/// (`annotations`), resources and MCP Events poll and push reading, webhook-mode MCP Events
/// writing (they make the server send). The lifecycle, lists of tools and prompts, and
/// notifications need only a valid token.
fn required_scope(
    msg: &rmcp::service::RxJsonRpcMessage<rmcp::RoleServer>,
) -> Option<(Scope, String)> {
    use rmcp::model::ClientRequest as R;
    let rmcp::model::JsonRpcMessage::Request(r) = msg else {
        return None;
    };
    let method = match &r.request {
        R::CallToolRequest(call) => {
            let name = call.params.name.as_ref();
            let scope = if super::annotations::is_write(name) {
                Scope::Write
            } else {
                Scope::Read
            };
            return Some((
                scope,
                format!("the tool {}", crate::error::bounded(name, 64)),
            ));
        }
        R::CustomRequest(c) => c.method.as_str(),
        other => other.method(),
    };
    let scope = match method {
        "resources/list"
        | "resources/templates/list"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "subscriptions/listen"
        | "events/list"
        | "events/poll"
        | "events/stream" => Scope::Read,
        "events/subscribe" | "events/unsubscribe" => Scope::Write,
        _ => return None,
    };
    Some((scope, method.to_string()))
}
