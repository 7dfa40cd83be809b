//! `webhook-mcp connect [URL]`: a stdio MCP server for clients that only start servers as child
//! processes (Claude Desktop), relaying every message to a long-running
//! `webhook-mcp serve --http` and back. The long-running service keeps receiving while no agent
//! is open; this bridge lives as long as its client.
//!
//! It relays JSON-RPC messages as they are, in both directions: rmcp's Streamable HTTP client
//! transport handles sessions, SSE streams and reconnection on the HTTP side, its stdio
//! transport the framing on the other. Nothing here interprets MCP, so every method and both
//! protocol eras pass through.

use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, Transport};
use rmcp::{RoleClient, RoleServer};

use super::serve::StartError;
use super::ConnectArgs;

/// One message on its way to the service; the error as text.
type Sending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// Sends the client's messages to the service in the order they came, without holding up the
/// stdio loop. A request is sent and left to finish on its own task (a long one, such as
/// wait_for_events, must not hold up the next message); anything else is finished before the
/// next message goes, so order holds where it matters: rmcp's HTTP client takes the first
/// message after the initialize response for `notifications/initialized`, and a request that
/// overtook it (two spawned sends racing) ended the session.
fn relay_in_order() -> tokio::sync::mpsc::UnboundedSender<(bool, Sending)> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, Sending)>();
    tokio::spawn(async move {
        while let Some((is_request, send)) = rx.recv().await {
            let relay = async move {
                if let Err(e) = send.await {
                    tracing::warn!(error = %e, "could not relay a message to the service");
                }
            };
            if is_request {
                tokio::spawn(relay);
            } else {
                relay.await;
            }
        }
    });
    tx
}

pub async fn run(args: ConnectArgs) -> Result<(), StartError> {
    // reqwest inside rmcp is built without a default crypto provider: use ring, as the rest of
    // the binary does. (Fails only if one is installed already, which is fine.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = StreamableHttpClientTransportConfig::with_uri(args.url.clone());
    if let Some(token) = args.auth_token.filter(|t| !t.is_empty()) {
        config = config.auth_header(token);
    }
    let mut remote = StreamableHttpClientTransport::from_config(config);
    let mut local = IntoTransport::<RoleServer, _, _>::into_transport(rmcp::transport::stdio());
    let outbox = relay_in_order();
    tracing::info!(url = %args.url, "relaying stdio to the webhook-mcp service");
    loop {
        tokio::select! {
            from_client = Transport::<RoleServer>::receive(&mut local) => {
                let Some(message) = from_client else {
                    tracing::info!("stdin closed; bridge stopping");
                    break;
                };
                let is_request = matches!(message, rmcp::model::JsonRpcMessage::Request(_));
                let send = Transport::<RoleClient>::send(&mut remote, message);
                let send: Sending = Box::pin(async move { send.await.map_err(|e| e.to_string()) });
                if outbox.send((is_request, send)).is_err() {
                    break;
                }
            }
            from_service = Transport::<RoleClient>::receive(&mut remote) => {
                let Some(message) = from_service else {
                    return Err(StartError(format!(
                        "the webhook-mcp service at {} closed the connection (is `webhook-mcp serve --http` running, and is the token right?)",
                        args.url
                    )));
                };
                if let Err(e) = Transport::<RoleServer>::send(&mut local, message).await {
                    tracing::info!(error = %e, "stdout closed; bridge stopping");
                    break;
                }
            }
        }
    }
    let _ = Transport::<RoleClient>::close(&mut remote).await;
    Ok(())
}
