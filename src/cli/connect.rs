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
    tracing::info!(url = %args.url, "relaying stdio to the webhook-mcp service");
    loop {
        tokio::select! {
            from_client = Transport::<RoleServer>::receive(&mut local) => {
                let Some(message) = from_client else {
                    tracing::info!("stdin closed; bridge stopping");
                    break;
                };
                // Not awaited in the loop: a long request (wait_for_events) must not hold up
                // the next message.
                let send = Transport::<RoleClient>::send(&mut remote, message);
                tokio::spawn(async move {
                    if let Err(e) = send.await {
                        tracing::warn!(error = %e, "could not relay a message to the service");
                    }
                });
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
