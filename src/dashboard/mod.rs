//! The dashboard at `/ui` on the HTTP listener: one page (HTML, JS and CSS built into the
//! binary; nothing fetched at run time) over a small JSON API under `/ui/api/`, which returns
//! the same documents the MCP tools do (`mcp::render`) from the same service calls.
//!
//! Access follows the `/mcp` rules: the Host must be a loopback name or an allowed host; a
//! browser Origin must be the page's own or an allowed one (no other site can drive it); and
//! with `--auth-token`, the first visit carries `?token=`, which is exchanged for an HttpOnly,
//! SameSite=Strict cookie holding a MAC of the token (never the token itself) and redirected
//! away so the token leaves the address bar.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::mcp::render;
use crate::model::Caller;
use crate::model::{DeliveryId, DeliveryStatus, Direction, EventId, WebhookId};
use crate::service::{QueryDeliveries, Redeliver, Service, WaitForEvents};

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

const COOKIE: &str = "webhook_mcp_ui";
/// How long the dashboard cookie lasts, in seconds (12 h): then the tokenised link again.
const COOKIE_MAX_AGE: u64 = 12 * 3600;
/// Scripts, styles and API calls from this origin only; no frames, no plugins, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub struct DashboardOptions {
    pub auth_token: Option<String>,
    /// Other principals' credentials are accepted but no operator token is set: the dashboard
    /// (which shows every principal's data) refuses everyone.
    pub locked: bool,
    /// Host names accepted besides the loopback ones.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted besides the page's own.
    pub allowed_origins: Vec<String>,
    /// Ends open event streams at shutdown.
    pub cancel: CancellationToken,
}

struct Ui {
    svc: Arc<Service>,
    hosts: Vec<String>,
    origins: Vec<String>,
    /// The cookie value that proves the token was shown: HMAC(token, purpose), hex.
    session: Option<String>,
    locked: bool,
    cancel: CancellationToken,
}

/// The `/ui` router, to merge into the HTTP listener's.
pub fn router(svc: Arc<Service>, opts: DashboardOptions) -> Router {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    hosts.extend(opts.allowed_hosts);
    let ui = Arc::new(Ui {
        svc,
        hosts,
        origins: opts.allowed_origins,
        session: opts.auth_token.as_deref().map(session_mac),
        locked: opts.locked,
        cancel: opts.cancel,
    });
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route(
            "/ui/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/ui/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/ui/api/webhooks", get(webhooks))
        .route("/ui/api/events", get(events))
        .route("/ui/api/events/stream", get(stream))
        .route("/ui/api/events/{id}", get(event))
        .route("/ui/api/deliveries", get(deliveries))
        .route("/ui/api/deliveries/{id}", get(delivery))
        .route("/ui/api/deliveries/{id}/redeliver", post(redeliver))
        .layer(middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui)
}

/// The errors of the dashboard API, mapped to statuses in one place.
enum UiError {
    Service(Error),
    Forbidden(&'static str),
    Unauthorized,
}

impl From<Error> for UiError {
    fn from(e: Error) -> Self {
        UiError::Service(e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            UiError::Service(e) => {
                let status = match &e {
                    Error::NotFound { .. } => StatusCode::NOT_FOUND,
                    Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
                    Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    Error::Store(_) | Error::Backend { .. } | Error::Internal(_) => {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                };
                (status, e.to_string())
            }
            UiError::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_string()),
            UiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "open the dashboard as /ui?token=<the service's --auth-token>".to_string(),
            ),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

type UiResult = Result<Response, UiError>;

/// Host, Origin and token checks for every `/ui` request, and the security headers of every
/// answer.
async fn guard(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    // The page and its assets decide for themselves (`index` exchanges the token); the API
    // answers only a session.
    let api = req.uri().path().starts_with("/ui/api/");
    let verdict = check(&ui, req.headers()).and_then(|()| {
        if api && !authorized(&ui, req.headers()) {
            Err(UiError::Unauthorized)
        } else {
            Ok(())
        }
    });
    let mut resp = match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(path = %crate::error::bounded(req.uri().path(), 200), "dashboard request refused");
            e.into_response()
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn check(ui: &Ui, headers: &HeaderMap) -> Result<(), UiError> {
    if ui.locked {
        return Err(UiError::Forbidden(
            "the dashboard shows every principal's webhooks, so it needs the operator's token: start the server with --auth-token and open /ui?token=<it>",
        ));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ui
        .hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host_name(host)))
    {
        return Err(UiError::Forbidden(
            "Host not allowed (add it with --allowed-hosts)",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let own = [format!("http://{host}"), format!("https://{host}")];
        if !own.iter().any(|o| o == origin) && !ui.origins.iter().any(|o| o == origin) {
            return Err(UiError::Forbidden(
                "Origin not allowed (add it with --allowed-origins)",
            ));
        }
    }
    Ok(())
}

/// `host[:port]` or `[v6]:port` without the port and brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn session_mac(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(b"webhook-mcp dashboard session");
    hex::encode(mac.finalize().into_bytes())
}

/// Whether the request may see data: no token configured, the session cookie, or the bearer.
fn authorized(ui: &Ui, headers: &HeaderMap) -> bool {
    let Some(expected) = &ui.session else {
        return true;
    };
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .unwrap_or_default();
    let bearer = crate::auth::bearer_token(headers).map(session_mac);
    crate::signing::constant_time_eq(cookie.as_bytes(), expected.as_bytes())
        || bearer
            .is_some_and(|b| crate::signing::constant_time_eq(b.as_bytes(), expected.as_bytes()))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn index(
    State(ui): State<Arc<Ui>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> UiResult {
    if let (Some(expected), Some(token)) = (&ui.session, q.token.as_deref()) {
        if !crate::signing::constant_time_eq(session_mac(token).as_bytes(), expected.as_bytes()) {
            return Err(UiError::Unauthorized);
        }
        // It expires (a shared browser does not keep the dashboard open for ever), and is
        // Secure when the page is reached over https (the public URL, or a TLS proxy saying so).
        let https = ui.svc.settings().public_url.starts_with("https://")
            || headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
        let secure = if https { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={expected}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={COOKIE_MAX_AGE}{secure}"
        );
        return Ok((
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/ui".to_string()),
            ],
        )
            .into_response());
    }
    if !authorized(&ui, &headers) {
        return Err(UiError::Unauthorized);
    }
    Ok(asset(INDEX, "text/html; charset=utf-8").await)
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn webhooks(State(ui): State<Arc<Ui>>) -> UiResult {
    let list = ui
        .svc
        .list_webhooks(&Caller::operator(), Default::default())
        .await?;
    Ok(Json(render::webhooks(&list)).into_response())
}

/// The newest events, newest first, with the cursor the live stream continues from.
async fn events(State(ui): State<Arc<Ui>>) -> UiResult {
    let (cursor, _) = ui.svc.event_bounds().await?;
    let newest = ui.svc.newest_events(&Caller::operator(), None, 50).await?;
    let list: Vec<Value> = newest.iter().map(render::event_summary).collect();
    Ok(Json(json!({ "events": list, "cursor": cursor })).into_response())
}

async fn event(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> UiResult {
    let e = ui
        .svc
        .get_event(&Caller::operator(), &EventId::from(id.as_str()))
        .await?;
    Ok(Json(render::event(&e)).into_response())
}

#[derive(Deserialize)]
struct StreamQuery {
    after: Option<i64>,
}

/// Server-sent events: one `event` message (an event summary) per stored event after the
/// cursor, from any process on the store; ends at shutdown.
async fn stream(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> UiResult {
    // A reconnecting EventSource says where it stopped (each message's id is its seq).
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let after = match resumed.or(q.after) {
        Some(a) => a,
        None => ui.svc.event_bounds().await?.0,
    };
    let state = (ui, after, VecDeque::new());
    let events = futures_util::stream::unfold(state, |(ui, mut after, mut ready)| async move {
        loop {
            if let Some(e) = ready.pop_front() {
                return Some((Ok::<_, Infallible>(e), (ui, after, ready)));
            }
            let operator = Caller::operator();
            let wait = ui.svc.wait_for_events(
                &operator,
                WaitForEvents {
                    after: Some(after),
                    timeout_ms: Some(30_000),
                    ..Default::default()
                },
            );
            let page = tokio::select! {
                page = wait => page.ok()?,
                _ = ui.cancel.cancelled() => return None,
            };
            after = page.next_cursor;
            ready.extend(page.events.iter().map(|e| {
                SseEvent::default()
                    .event("event")
                    .id(e.seq.to_string())
                    .data(render::event_summary(e).to_string())
            }));
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[derive(Deserialize)]
struct DeliveryFilter {
    webhook_id: Option<String>,
    direction: Option<Direction>,
    status: Option<DeliveryStatus>,
    event: Option<String>,
    cursor: Option<String>,
}

async fn deliveries(State(ui): State<Arc<Ui>>, Query(f): Query<DeliveryFilter>) -> UiResult {
    let page = ui
        .svc
        .query_deliveries(
            &Caller::operator(),
            QueryDeliveries {
                webhook_id: f.webhook_id.filter(|s| !s.is_empty()).map(WebhookId::from),
                direction: f.direction,
                status: f.status,
                event: f.event.filter(|s| !s.is_empty()),
                cursor: f.cursor.filter(|s| !s.is_empty()),
                limit: Some(50),
                since: None,
                until: None,
            },
        )
        .await?;
    Ok(Json(render::deliveries(&page)).into_response())
}

async fn delivery(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> UiResult {
    let row = ui
        .svc
        .get_delivery(&Caller::operator(), &DeliveryId::from(id.as_str()))
        .await?;
    Ok(Json(render::delivery(&row, true)).into_response())
}

async fn redeliver(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> UiResult {
    if ui.svc.settings().read_only {
        return Err(UiError::Forbidden(
            "this service runs --read-only: nothing can be sent",
        ));
    }
    let done = ui
        .svc
        .redeliver(
            &Caller::operator(),
            Redeliver {
                delivery_id: Some(DeliveryId::from(id.as_str())),
                ..Default::default()
            },
        )
        .await?;
    Ok(Json(render::redelivered(&done)).into_response())
}
