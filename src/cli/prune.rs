//! The `prune` command: deletes history older than the retention now, with the same code the
//! serving processes run in the background, and lets the store file shrink.

use std::sync::Arc;

use super::{PruneArgs, StartError};
use crate::service::{PruneReport, Service, Settings};

pub async fn run(args: PruneArgs) -> Result<(), StartError> {
    let store = args.store.open().await?;
    let retention = args.retention.retention();
    let svc = Arc::new(Service::new(
        store,
        Settings {
            retention,
            ..Settings::default()
        },
    ));
    let bar = super::admin::progress(args.json, None, "pruning");
    let report = svc
        .prune(&retention, true, |so_far| {
            bar.set_message(format!(
                "pruning: {} events, {} deliveries, {} messages",
                so_far.events, so_far.deliveries, so_far.messages
            ));
        })
        .await
        .map_err(|e| StartError(format!("prune failed: {e}")))?;
    bar.finish_and_clear();
    if args.json {
        super::admin::say(serde_json::to_string(&report).unwrap_or_else(|_| "{}".into()));
    } else {
        super::admin::say(summary(&report));
    }
    Ok(())
}

fn summary(r: &PruneReport) -> String {
    let p = &r.pruned;
    let mut line = format!(
        "pruned {} events, {} delivery-log rows, {} messages",
        p.events, p.deliveries, p.messages
    );
    if let (Some(before), Some(after)) = (r.size_before, r.size_after) {
        line.push_str(&format!("; store {} -> {}", mib(before), mib(after)));
    }
    line
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
