//! Who an HTTP request is and what it may do. Owns the bearer credentials the HTTP transport
//! accepts — the operator's `--auth-token`, the named tokens of `--auth-tokens-file`, and OAuth
//! 2.1 access tokens of `--oauth-issuer` ([`oauth`]) — the principal and scopes each grants,
//! the protected-resource metadata (RFC 9728) and the answers a refused request gets: 401 or
//! 403 with `WWW-Authenticate` (RFC 6750), always with a JSON body.
//!
//! Principals (`model::Principal`): `local` for the operator's `--auth-token` (as for stdio),
//! `token:<NAME>` for a line of the tokens file, `oauth:<iss>#<sub>` for an OAuth token.
//! A [`Grant`] is a request's [`Caller`]: the operator sees every principal's rows.

pub mod oauth;

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::model::{Caller, Principal};
use crate::signing;

/// What a token may do with the webhooks of its principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// List, get, query and wait: the read tools, resources, MCP Events poll and push.
    Read,
    /// Everything else: create, change, delete, rotate, send, redeliver, webhook-mode events.
    Write,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Read, Scope::Write];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "webhooks:read",
            Scope::Write => "webhooks:write",
        }
    }
}

/// The scopes a credential carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes {
    read: bool,
    write: bool,
}

impl Scopes {
    pub const ALL: Scopes = Scopes {
        read: true,
        write: true,
    };

    /// The webhook scopes among `names` (others, such as `openid`, are ignored).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Scopes {
        let mut s = Scopes::default();
        for n in names {
            s.read |= n == Scope::Read.as_str();
            s.write |= n == Scope::Write.as_str();
        }
        s
    }

    pub fn allows(self, scope: Scope) -> bool {
        match scope {
            Scope::Read => self.read,
            Scope::Write => self.write,
        }
    }
}

/// An authenticated request: who, what it may do, and whether it is the operator (the
/// `--auth-token` holder, who also reaches `/metrics`).
#[derive(Debug, Clone)]
pub struct Grant {
    pub principal: String,
    pub scopes: Scopes,
    pub operator: bool,
}

impl Grant {
    /// Who the service sees: the operator, or the principal seeing its own.
    pub fn caller(&self) -> Caller {
        if self.operator {
            Caller::operator()
        } else {
            Caller::of(Principal::new(self.principal.clone()))
        }
    }
}

/// A named static token.
struct NamedToken {
    principal: String,
    token: String,
    scopes: Scopes,
    operator: bool,
}

/// Every credential the HTTP listener accepts.
pub struct Auth {
    tokens: Vec<NamedToken>,
    oauth: Option<oauth::Verifier>,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("this server needs a bearer token: send Authorization: Bearer <token>")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unavailable(oauth::VerifyError),
    #[error("this token lacks the scope {} that {what} needs; get a token with it", needed.as_str())]
    InsufficientScope { needed: Scope, what: String },
    #[error("only the operator's token (--auth-token) may read this")]
    NotOperator,
}

/// The token of an `Authorization: Bearer <token>` header. The scheme name is case-insensitive
/// (RFC 7235): `bearer` and `BEARER` are `Bearer`.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Shortest token accepted in the tokens file.
const MIN_TOKEN_LEN: usize = 16;

/// Parses a tokens file: one `NAME TOKEN [SCOPE…]` per line (scopes default to both), `#`
/// comments and blank lines skipped. Errors name the line, never the token.
pub fn parse_tokens_file(text: &str) -> Result<Vec<(String, String, Scopes)>, String> {
    let mut out: Vec<(String, String, Scopes)> = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = n + 1;
        let mut words = line.split_ascii_whitespace();
        let (Some(name), Some(token)) = (words.next(), words.next()) else {
            return Err(format!("line {at}: expected `NAME TOKEN [SCOPE…]`"));
        };
        let name_ok = name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
        if !name_ok {
            return Err(format!(
                "line {at}: a name is 1 to 64 letters, digits, `.`, `_`, `@` or `-`"
            ));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "line {at} ({name}): the token is shorter than {MIN_TOKEN_LEN} characters; use a long random one"
            ));
        }
        let rest: Vec<&str> = words.collect();
        let scopes = if rest.is_empty() {
            Scopes::ALL
        } else {
            if let Some(bad) = rest
                .iter()
                .find(|s| !Scope::ALL.iter().any(|k| k.as_str() == **s))
            {
                return Err(format!(
                    "line {at} ({name}): unknown scope {}; use webhooks:read and/or webhooks:write",
                    crate::error::bounded(bad, 40)
                ));
            }
            Scopes::from_names(rest)
        };
        if out.iter().any(|(n, _, _)| n == name) {
            return Err(format!("line {at}: the name {name} appears twice"));
        }
        if out.iter().any(|(_, t, _)| t == token) {
            return Err(format!(
                "line {at} ({name}): this token is another line's too"
            ));
        }
        out.push((name.to_string(), token.to_string(), scopes));
    }
    Ok(out)
}

impl Auth {
    /// The credentials configured, or `None` when none is (the listener then checks nothing:
    /// loopback only, `serve` enforces that).
    pub fn new(
        operator_token: Option<&str>,
        tokens_file: Option<&Path>,
        oauth: Option<oauth::Verifier>,
    ) -> Result<Option<Auth>, String> {
        let mut tokens = vec![];
        if let Some(t) = operator_token {
            tokens.push(NamedToken {
                principal: Principal::LOCAL.into(),
                token: t.to_string(),
                scopes: Scopes::ALL,
                operator: true,
            });
        }
        if let Some(path) = tokens_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--auth-tokens-file {}: {e}", path.display()))?;
            let lines = parse_tokens_file(&text)
                .map_err(|e| format!("--auth-tokens-file {}: {e}", path.display()))?;
            for (name, token, scopes) in lines {
                if operator_token == Some(token.as_str()) {
                    return Err(format!(
                        "--auth-tokens-file {}: {name}'s token is the operator's --auth-token",
                        path.display()
                    ));
                }
                tokens.push(NamedToken {
                    principal: format!("token:{name}"),
                    token,
                    scopes,
                    operator: false,
                });
            }
        }
        if tokens.is_empty() && oauth.is_none() {
            return Ok(None);
        }
        Ok(Some(Auth { tokens, oauth }))
    }

    pub fn oauth(&self) -> Option<&oauth::Verifier> {
        self.oauth.as_ref()
    }

    /// The principals of the static tokens (a subscription of a `bearer:`/`token:` principal
    /// outside this list was made with a token this server no longer accepts).
    pub fn token_principals(&self) -> Vec<String> {
        let named = self.tokens.iter().filter(|t| !t.operator);
        named.map(|t| t.principal.clone()).collect()
    }

    /// Who the request's bearer token is. Static tokens are compared in constant time, every
    /// one of them (no early exit tells which prefix matched); anything else goes to the OAuth
    /// verifier when there is one.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Grant, Refusal> {
        let Some(given) = bearer_token(headers).filter(|t| !t.is_empty()) else {
            return Err(Refusal::Missing);
        };
        let mut found = None;
        for t in &self.tokens {
            if signing::constant_time_eq(given.as_bytes(), t.token.as_bytes()) {
                found = Some(t);
            }
        }
        if let Some(t) = found {
            return Ok(Grant {
                principal: t.principal.clone(),
                scopes: t.scopes,
                operator: t.operator,
            });
        }
        let Some(verifier) = &self.oauth else {
            return Err(Refusal::Invalid("wrong bearer token".into()));
        };
        match verifier.verify(given).await {
            Ok(v) => Ok(Grant {
                principal: format!("oauth:{}#{}", verifier.issuer(), v.subject),
                scopes: Scopes::from_names(v.scopes.iter().map(String::as_str)),
                operator: false,
            }),
            Err(oauth::VerifyError::Invalid(why)) => Err(Refusal::Invalid(why)),
            Err(e) => Err(Refusal::Unavailable(e)),
        }
    }

    /// Where clients find the protected-resource metadata (RFC 9728 §3.1: the well-known path
    /// inserted before the resource's path).
    pub fn metadata_url(&self) -> Option<String> {
        let verifier = self.oauth.as_ref()?;
        let mut url = reqwest::Url::parse(verifier.audience()).ok()?;
        let path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
        url.set_query(None);
        Some(url.to_string())
    }

    /// The RFC 9728 document, or `None` without OAuth.
    pub fn protected_resource(&self) -> Option<Value> {
        let verifier = self.oauth.as_ref()?;
        Some(json!({
            "resource": verifier.audience(),
            "authorization_servers": [verifier.issuer()],
            "scopes_supported": Scope::ALL.map(Scope::as_str),
            "bearer_methods_supported": ["header"],
            "resource_name": "webhook-mcp",
        }))
    }

    /// The `WWW-Authenticate` value for a refusal.
    fn challenge(&self, refusal: &Refusal) -> String {
        let mut params: Vec<String> = vec![];
        match refusal {
            Refusal::Missing | Refusal::Unavailable(_) | Refusal::NotOperator => {}
            Refusal::Invalid(why) => {
                params.push(r#"error="invalid_token""#.into());
                params.push(format!(r#"error_description="{}""#, quoted(why)));
            }
            Refusal::InsufficientScope { needed, .. } => {
                params.push(r#"error="insufficient_scope""#.into());
                params.push(format!(r#"scope="{}""#, needed.as_str()));
            }
        }
        if !matches!(refusal, Refusal::InsufficientScope { .. }) && self.oauth.is_some() {
            params.push(format!(
                r#"scope="{}""#,
                Scope::ALL.map(Scope::as_str).join(" ")
            ));
        }
        if let Some(url) = self.metadata_url() {
            params.push(format!(r#"resource_metadata="{url}""#));
        }
        if params.is_empty() {
            "Bearer".into()
        } else {
            format!("Bearer {}", params.join(", "))
        }
    }

    /// The answer to a refused request: the status, `WWW-Authenticate`, and a JSON body (a
    /// JSON-RPC error carrying `id` when the request was one).
    pub fn refuse(&self, refusal: Refusal, id: Option<Value>) -> Response {
        let status = match &refusal {
            Refusal::Missing | Refusal::Invalid(_) => StatusCode::UNAUTHORIZED,
            Refusal::InsufficientScope { .. } | Refusal::NotOperator => StatusCode::FORBIDDEN,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let challenge = self.challenge(&refusal);
        let message = refusal.to_string();
        let body = match id {
            Some(id) => json!({
                "jsonrpc": "2.0", "id": id,
                "error": { "code": -32001, "message": message },
            }),
            None => json!({ "error": code(&refusal), "error_description": message }),
        };
        let mut resp = (status, Json(body)).into_response();
        if matches!(refusal, Refusal::Unavailable(_)) {
            let after = HeaderValue::from(oauth::REFRESH_EVERY.as_secs());
            resp.headers_mut().insert(header::RETRY_AFTER, after);
        }
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

fn code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::Missing | Refusal::Invalid(_) => "invalid_token",
        Refusal::InsufficientScope { .. } => "insufficient_scope",
        Refusal::NotOperator => "forbidden",
        Refusal::Unavailable(_) => "temporarily_unavailable",
    }
}

/// `s` fit for a quoted-string: printable ASCII without `"` or `\`, bounded.
fn quoted(s: &str) -> String {
    crate::error::bounded(s, 200)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Middleware: the request must carry a credential `auth` accepts; its [`Grant`] goes into the
/// request's extensions for the layers and handlers after it.
pub async fn require(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    match auth.authenticate(req.headers()).await {
        Ok(grant) => {
            req.extensions_mut().insert(grant);
            next.run(req).await
        }
        Err(refusal) => {
            let path = crate::error::bounded(req.uri().path(), 200);
            if matches!(refusal, Refusal::Missing) {
                // Every OAuth client's first request: how it learns where to get a token.
                tracing::debug!(%path, "HTTP request without a token refused");
            } else {
                tracing::warn!(%path, reason = %refusal, "HTTP request refused");
            }
            auth.refuse(refusal, None)
        }
    }
}

/// Middleware: only the operator's token (`/metrics` on a shared listener).
pub async fn require_operator(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    match auth.authenticate(req.headers()).await {
        Ok(grant) if grant.operator => next.run(req).await,
        Ok(_) => auth.refuse(Refusal::NotOperator, None),
        Err(refusal) => auth.refuse(refusal, None),
    }
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`.
pub async fn protected_resource(State(auth): State<Option<Arc<Auth>>>) -> Response {
    match auth.as_deref().and_then(Auth::protected_resource) {
        Some(doc) => (
            [(header::CACHE_CONTROL, "max-age=300")],
            Json(doc),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "this server is not an OAuth resource server (no --oauth-issuer)" })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_lines() {
        let lines = parse_tokens_file(
            "# team\nalice  aaaaaaaaaaaaaaaaaaaa\n\nbob bbbbbbbbbbbbbbbbbbbb webhooks:read\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, "alice");
        assert_eq!(lines[0].2, Scopes::ALL);
        assert!(lines[1].2.allows(Scope::Read) && !lines[1].2.allows(Scope::Write));
        for (text, says) in [
            ("alice", "line 1: expected"),
            (
                "al ice aaaaaaaaaaaaaaaaaaaa",
                "line 1 (al): the token is shorter",
            ),
            ("a/b aaaaaaaaaaaaaaaaaaaa", "a name is"),
            ("a short", "shorter than 16"),
            (
                "a aaaaaaaaaaaaaaaaaaaa webhooks:admin",
                "unknown scope webhooks:admin",
            ),
            (
                "a aaaaaaaaaaaaaaaaaaaa\na bbbbbbbbbbbbbbbbbbbb",
                "line 2: the name a appears twice",
            ),
            (
                "a aaaaaaaaaaaaaaaaaaaa\nb aaaaaaaaaaaaaaaaaaaa",
                "line 2 (b): this token is another",
            ),
        ] {
            let err = parse_tokens_file(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
            assert!(!err.contains("aaaaaaaaaaaaaaaa"), "a token leaked: {err}");
        }
    }

    #[test]
    fn metadata_url_inserts_the_well_known_path() {
        let v = oauth::Verifier::new("https://id.example.com", "https://hooks.example.com/mcp")
            .unwrap();
        let auth = Auth::new(None, None, Some(v)).unwrap().unwrap();
        assert_eq!(
            auth.metadata_url().unwrap(),
            "https://hooks.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let challenge = auth.challenge(&Refusal::InsufficientScope {
            needed: Scope::Write,
            what: "x".into(),
        });
        assert_eq!(
            challenge,
            r#"Bearer error="insufficient_scope", scope="webhooks:write", resource_metadata="https://hooks.example.com/.well-known/oauth-protected-resource/mcp""#
        );
    }

    #[test]
    fn issuers_must_be_https_except_loopback() {
        for ok in [
            "https://id.example.com",
            "http://127.0.0.1:9000",
            "http://localhost:1",
            "http://[::1]:2",
        ] {
            assert!(oauth::Verifier::new(ok, "https://x/mcp").is_ok(), "{ok}");
        }
        for bad in [
            "http://id.example.com",
            "ftp://127.0.0.1",
            "not a url",
            "http://10.0.0.1",
        ] {
            assert!(oauth::Verifier::new(bad, "https://x/mcp").is_err(), "{bad}");
        }
    }
}
