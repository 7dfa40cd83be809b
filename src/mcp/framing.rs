//! JSON-RPC framing that answers every request, below rmcp's own parsing.
//!
//! rmcp drops a line it cannot parse without a word (by design: replying to garbage can start
//! an echo storm between two peers), so a request nested too deeply for serde_json, or holding a
//! lone UTF-16 surrogate (`"\ud800"`), left its client waiting for ever. Here every line is
//! classified first ([`classify`]): a message rmcp can take is passed on; anything else that
//! looks like a request gets a JSON-RPC error carrying its id when the id can be read, so the
//! client's call ends at once with a reason. Replies to replies cannot happen: an error response
//! is itself a valid message, which a peer never answers.
//!
//! The stdio transport ([`GuardedStdio`]) reads bounded lines and writes both rmcp's messages
//! and these errors through one writer; the HTTP transport runs the same `classify` on each POST
//! body (`http.rs`).

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{ClientRequest, ErrorCode, ErrorData, JsonRpcError, JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleServer;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// Deepest nesting of arrays and objects accepted. serde_json stops at 128; real MCP
/// messages stay far below this.
pub const MAX_DEPTH: usize = 64;
/// Longest line (one message) read from stdin; longer lines are refused and skipped.
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// How much of a parse error's text is returned (it may quote the input).
const MAX_REASON: usize = 200;

/// The MCP methods this server implements: a request for one of them whose params do not fit
/// the specification is refused with -32602 (rmcp would take it for an unknown custom method
/// and answer -32601, which misleads).
const STANDARD_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

/// What to do with one incoming line or body.
#[derive(Debug)]
pub enum Verdict {
    /// A message for rmcp.
    Pass(Box<RxJsonRpcMessage<RoleServer>>),
    /// Nothing to answer (an empty line, or a malformed notification: notifications are never
    /// answered).
    Skip,
    /// Answer with this error.
    Refuse(Box<JsonRpcError>),
}

/// Classifies one message's bytes (without its line ending).
pub fn classify(bytes: &[u8]) -> Verdict {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Skip;
    }
    let scan = scan(bytes);
    if scan.too_deep {
        return refuse(
            scan.id,
            ErrorCode::INVALID_REQUEST,
            format!("nesting deeper than {MAX_DEPTH} levels is not accepted"),
        );
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let text = e.to_string();
            // serde_json words a lone surrogate as a bad or unfinished hex escape.
            let reason = if text.contains("surrogate") || text.contains("hex escape") {
                "a string holds a lone UTF-16 surrogate (e.g. \\ud800), which is not Unicode text"
                    .to_string()
            } else {
                format!("not valid JSON: {e}")
            };
            // The id is returned when it could be read, so that the caller's request ends.
            return refuse(scan.id, ErrorCode::PARSE_ERROR, reason);
        }
    };
    let id = match value.get("id") {
        None => None,
        Some(v) => match request_id(v) {
            Some(id) => Some(id),
            None if value.get("method").is_some() => {
                return refuse(
                    None,
                    ErrorCode::INVALID_REQUEST,
                    "id must be a string or an integer".into(),
                )
            }
            None => None,
        },
    };
    if value.is_array() {
        return refuse(
            None,
            ErrorCode::INVALID_REQUEST,
            "JSON-RPC batches are not supported by MCP; send one message per line".into(),
        );
    }
    if value.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        if id.is_none() && value.get("method").is_some() {
            return Verdict::Skip; // a notification, never answered
        }
        return refuse(
            id,
            ErrorCode::INVALID_REQUEST,
            "\"jsonrpc\": \"2.0\" is required".into(),
        );
    }
    let method = value
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value) {
        Ok(JsonRpcMessage::Request(req))
            if matches!(&req.request, ClientRequest::CustomRequest(c)
                if STANDARD_METHODS.contains(&c.method.as_str())) =>
        {
            refuse(
                Some(req.id.clone()),
                ErrorCode::INVALID_PARAMS,
                format!(
                    "the params of {} do not match the MCP specification",
                    req.request.method()
                ),
            )
        }
        Ok(msg) => Verdict::Pass(Box::new(msg)),
        Err(e) => match (id, method) {
            // A notification is never answered, even when malformed.
            (None, Some(_)) => Verdict::Skip,
            (id, Some(method)) if STANDARD_METHODS.contains(&method.as_str()) => refuse(
                id,
                ErrorCode::INVALID_PARAMS,
                format!("invalid params for {}: {e}", bounded(&method)),
            ),
            (id, _) => refuse(
                id,
                ErrorCode::INVALID_REQUEST,
                format!("not a JSON-RPC 2.0 message: {e}"),
            ),
        },
    }
}

fn refuse(id: Option<RequestId>, code: ErrorCode, reason: String) -> Verdict {
    Verdict::Refuse(Box::new(JsonRpcError {
        jsonrpc: Default::default(),
        id,
        error: ErrorData {
            code,
            message: Cow::Owned(bounded(&reason)),
            data: None,
        },
    }))
}

fn bounded(s: &str) -> String {
    crate::error::bounded(s, MAX_REASON)
}

fn request_id(v: &Value) -> Option<RequestId> {
    match v {
        Value::String(s) => Some(RequestId::String(s.as_str().into())),
        Value::Number(n) => n.as_i64().map(RequestId::Number),
        _ => None,
    }
}

/// What a raw pass over the bytes found: whether the nesting is too deep, and the top-level
/// `id` when it is a plain string or integer (readable even when the rest is not).
#[derive(Debug, Default)]
struct Scan {
    too_deep: bool,
    id: Option<RequestId>,
}

fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut string_start = 0;
    // At depth 1: the last key read, and where the value of an `id` key starts.
    let mut last_string: Option<(usize, usize)> = None;
    let mut id_start: Option<usize> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    in_string = false;
                    if depth == 1 {
                        last_string = Some((string_start, i + 1));
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    out.too_deep = true;
                }
            }
            b'}' | b']' | b',' => {
                if depth == 1 {
                    if let Some(start) = id_start.take() {
                        if out.id.is_none() {
                            out.id = serde_json::from_slice::<Value>(&bytes[start..i])
                                .ok()
                                .as_ref()
                                .and_then(request_id);
                        }
                    }
                }
                if b != b',' {
                    depth = depth.saturating_sub(1);
                }
            }
            b':' if depth == 1 => {
                if let Some((s, e)) = last_string.take() {
                    if &bytes[s..e] == b"\"id\"" {
                        id_start = Some(i + 1);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// MCP over stdin/stdout with [`classify`] in front of rmcp: every request gets an answer.
pub struct GuardedStdio<R, W> {
    read: BufReader<R>,
    line: Vec<u8>,
    /// Dropping the rest of a line that was too long (kept across cancelled reads).
    discarding: bool,
    write: Arc<Mutex<Option<W>>>,
}

impl<R, W> GuardedStdio<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(read: R, write: W) -> Self {
        GuardedStdio {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            write: Arc::new(Mutex::new(Some(write))),
        }
    }

    /// Reads one line into `self.line`, never letting it grow past `MAX_LINE`. Cancellation
    /// safe: a partial line stays in `self.line` for the next call, and nothing awaits between
    /// a whole line's arrival and its classification. `Ok(false)` at EOF;
    /// `Err(())` for a line that was too long (skipped).
    async fn read_line(&mut self) -> std::io::Result<Result<bool, ()>> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(Ok(false));
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let mut too_long = false;
            if self.discarding {
                if newline.is_some() {
                    self.discarding = false;
                }
            } else if self.line.len() + take > MAX_LINE {
                self.line.clear();
                self.discarding = newline.is_none();
                too_long = true;
            } else {
                self.line.extend_from_slice(&available[..take]);
            }
            self.read.consume(take);
            if too_long {
                return Ok(Err(()));
            }
            if newline.is_some() && !self.discarding && !self.line.is_empty() {
                return Ok(Ok(true));
            }
        }
    }
}

impl<R, W: AsyncWrite + Unpin + Send + 'static> GuardedStdio<R, W> {
    /// Sends an error answer on a task of its own: `receive` runs inside rmcp's `select!` and
    /// may be dropped at any await, which must neither lose the answer nor cut a line in half.
    fn answer(&self, error: JsonRpcError) {
        let lock = self.write.clone();
        tokio::spawn(async move {
            let error = JsonRpcMessage::<(), (), ()>::Error(error);
            if let Err(e) = write_line(&lock, &error).await {
                tracing::debug!(error = %e, "could not answer a refused message");
            }
        });
    }
}

/// Writes one message as a line.
async fn write_line<W: AsyncWrite + Unpin>(
    lock: &Mutex<Option<W>>,
    item: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(item).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut guard = lock.lock().await;
    let Some(w) = guard.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the transport is closed",
        ));
    };
    w.write_all(&bytes).await?;
    w.flush().await
}

impl<R, W> Transport<RoleServer> for GuardedStdio<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let lock = self.write.clone();
        async move { write_line(&lock, &item).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            match self.read_line().await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return None,
                Ok(Err(())) => {
                    tracing::warn!(max = MAX_LINE, "refused a message longer than the limit");
                    self.answer(JsonRpcError {
                        jsonrpc: Default::default(),
                        id: None,
                        error: ErrorData::invalid_request(
                            format!("message longer than {MAX_LINE} bytes"),
                            None,
                        ),
                    });
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stdin failed");
                    return None;
                }
            }
            let line = std::mem::take(&mut self.line);
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            match classify(body) {
                Verdict::Pass(msg) => {
                    self.line = reuse(line);
                    return Some(*msg);
                }
                Verdict::Skip => {}
                Verdict::Refuse(error) => {
                    tracing::debug!(
                        code = error.error.code.0,
                        reason = %error.error.message,
                        "refused an incoming message"
                    );
                    self.answer(*error);
                }
            }
            self.line = reuse(line);
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        drop(self.write.lock().await.take());
        Ok(())
    }
}

/// Keeps a line buffer's capacity for the next line, unless one huge line made it large.
fn reuse(mut line: Vec<u8>) -> Vec<u8> {
    line.clear();
    if line.capacity() > 64 * 1024 {
        line.shrink_to(64 * 1024);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(bytes: &str) -> (Option<RequestId>, i32, String) {
        match classify(bytes.as_bytes()) {
            Verdict::Refuse(e) => (e.id, e.error.code.0, e.error.message.into_owned()),
            other => panic!("{bytes} was not refused: {other:?}"),
        }
    }

    #[test]
    fn deep_nesting_is_refused_with_the_id() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"x","arguments":{{"a":{}{}}}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let (id, code, _) = refused(&deep);
        assert_eq!(id, Some(RequestId::Number(7)));
        assert_eq!(code, -32600);
    }

    #[test]
    fn a_lone_surrogate_is_refused_with_the_id() {
        let (id, code, msg) = refused(
            r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"get_webhook","arguments":{"id":"\ud800"}}}"#,
        );
        assert_eq!(id, Some(RequestId::String("abc".into())));
        assert_eq!(code, -32700);
        assert!(msg.contains("surrogate"), "{msg}");
    }

    #[test]
    fn bad_params_of_a_known_method_are_invalid_params() {
        let (id, code, _) =
            refused(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":5}}"#);
        assert_eq!((id, code), (Some(RequestId::Number(3)), -32602));
        let (id, code, _) =
            refused(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":"x"}"#);
        assert_eq!((id, code), (Some(RequestId::Number(4)), -32602));
    }

    #[test]
    fn garbage_is_a_parse_error_and_batches_are_refused() {
        assert_eq!(refused("hello").1, -32700);
        // Truncated, yet its id can be read: the caller is answered.
        assert_eq!(
            refused(r#"{"id": 9, "method": "ping""#).0,
            Some(RequestId::Number(9))
        );
        assert_eq!(
            refused(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).1,
            -32600
        );
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#).1,
            -32600
        );
    }

    #[test]
    fn good_messages_and_notifications_pass_or_are_skipped() {
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":1,"method":"events/list","params":{}}"#),
            Verdict::Pass(_)
        ));
        assert!(matches!(classify(b"  "), Verdict::Skip));
        // A nested "id" is not the request's id.
        let (id, code, _) = refused(r#"{"params":{"id":5},"id":6,"method":"x","jsonrpc":"1.0"}"#);
        assert_eq!((id, code), (Some(RequestId::Number(6)), -32600));
    }
}
