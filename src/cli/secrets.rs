//! `webhook-mcp secrets rotate-key`: seals every stored secret under a new key (see
//! `store::sealing` for what is sealed and how).

use clap::{Args, Subcommand};
use serde_json::json;

use super::{StartError, StoreArgs};
use crate::store::sealing::{self, KeySource};

#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// Seal every stored secret under a new key.
    ///
    /// SQLite with its key file: a new key is made and put first in <data-dir>/secrets.key;
    /// the older ones stay after it (a process still running seals with the key it started
    /// with until it re-reads the file, and that must still open).
    ///
    /// With --secrets-key NEW,OLD (PostgreSQL, or SQLite given a key): re-seals under NEW.
    /// Restart every instance with NEW,OLD first, run this, then restart them with NEW alone.
    ///
    /// Example: webhook-mcp secrets rotate-key --data-dir ~/.local/share/webhook-mcp
    RotateKey(RotateKeyArgs),
}

#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: SecretsCmd) -> Result<(), StartError> {
    let SecretsCmd::RotateKey(args) = cmd;
    if args.store.secrets_key.is_none() && args.store.database_url.is_none() {
        // The key file: a new key first, the older ones kept after it.
        let KeySource::File(path) = args.store.keyring()?.source().clone() else {
            unreachable!("no --secrets-key means the key file")
        };
        sealing::rotate_key_file(&path).map_err(|e| StartError(e.to_string()))?;
    }
    // Opening the store seals every secret not sealed under the first key.
    let backend = args.store.open_backend().await?;
    let resealed = backend
        .reseal()
        .await
        .map_err(|e| StartError(format!("could not re-seal the stored secrets: {e}")))?;
    let keys = backend.keyring();
    let ids = keys.key_ids();
    if args.json {
        super::admin::say(
            json!({ "sealing_key": ids[0], "keys": ids, "source": keys.source().to_string(), "resealed_now": resealed }),
        );
    } else {
        super::admin::say(format_args!(
            "every stored secret is sealed under key {} ({}); keys held: {}",
            ids[0],
            keys.source(),
            ids.join(", ")
        ));
    }
    Ok(())
}
