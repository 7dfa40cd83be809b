//! What the operator commands (`webhooks`, `events`, `deliveries`, `redeliver`, `send`, `doctor`)
//! share: the flags that say which store to use, the service they open on it (the same typed
//! API the MCP tools call: no second implementation), and how answers are printed — the MCP
//! tools' JSON with `--json`, a table otherwise, coloured only on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use clap::Args;
use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{StartError, StoreArgs};
use crate::service::{Service, Settings};

/// The flags of every operator command.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// The base URL providers reach the receiver at, for the receive URLs shown (set it as for
    /// `serve`) [default: http://127.0.0.1:8787]
    #[arg(long, env = "WEBHOOK_MCP_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Allow outbound targets on loopback and private networks (as `serve` does with it).
    #[arg(long, env = "WEBHOOK_MCP_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,

    /// Print JSON (the shapes the MCP tools return) instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl AdminArgs {
    /// The service over the store these flags name. It serves nothing and runs no background
    /// work: serving processes on the same store deliver what it queues.
    pub async fn service(&self) -> Result<Arc<Service>, StartError> {
        let store = self.store.open().await?;
        let mut settings = Settings {
            allow_private_targets: self.allow_private_targets,
            ..Settings::default()
        };
        if let Some(url) = &self.public_url {
            settings.public_url = url.trim_end_matches('/').to_string();
        }
        Ok(Arc::new(Service::new(store, settings)))
    }

    /// Prints `value` as JSON, or what `human` makes of it.
    pub fn print(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            say(pretty(value));
        } else {
            // Tables pad their last column: no trailing blanks for a terminal to wrap or a
            // diff to show.
            let text = human(value);
            let lines: Vec<&str> = text
                .trim_end_matches('\n')
                .lines()
                .map(str::trim_end)
                .collect();
            say(lines.join("\n"));
        }
    }
}

/// A service error, as the command's failure. A miss points at the command that lists what
/// exists (the service's own hint names the MCP tool).
pub fn failed(e: crate::error::Error) -> StartError {
    match e {
        crate::error::Error::NotFound { kind, id, .. } => {
            let list = match kind {
                "webhook" => "webhooks ls",
                "event" => "events ls",
                _ => "deliveries ls",
            };
            StartError(format!(
                "{kind} {} was not found; `webhook-mcp {list}` lists those that exist",
                crate::error::quote(&id)
            ))
        }
        other => StartError(other.to_string()),
    }
}

pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Parses a flag's value with the same serde names the MCP tools accept (`inbound`,
/// `failed`, `stripe`, ...), so the two front ends cannot disagree on a spelling.
pub fn serde_name<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(s.to_ascii_lowercase())).map_err(|e| {
        // serde's message lists the accepted names ("expected one of `a`, `b`").
        let msg = e.to_string();
        msg.split(" at line").next().unwrap_or(&msg).to_string()
    })
}

/// `KEY=VALUE`, for header flags.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// A JSON object given on the command line, or `-` to read it from stdin.
pub fn json_object(s: &str) -> Result<Value, String> {
    let text = if s == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("reading stdin: {e}"))?
    } else {
        s.to_string()
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("expected a JSON object, e.g. '{\"lead\": \"x\"}'".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// A progress bar on stderr for long work, drawn only on a terminal and never with `--json`
/// (scripts get the final answer on stdout and nothing else). `len` None: a spinner.
pub fn progress(json: bool, len: Option<u64>, what: &str) -> indicatif::ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Whether stdout shows colour: a terminal, and no `NO_COLOR` (no-color.org).
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A table with a header row and no borders, fitted to the terminal's width on a terminal and
/// never wrapped in a pipe (one row per line for grep and awk).
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_content_arrangement(if std::io::stdout().is_terminal() {
        ContentArrangement::Dynamic
    } else {
        ContentArrangement::Disabled
    });
    t.set_header(header.iter().map(Cell::new));
    t
}

/// A two-column table of labelled values, for one object.
pub fn fields(rows: &[(&str, String)]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    for (k, v) in rows {
        t.add_row(vec![Cell::new(format!("{k}:")), Cell::new(v)]);
    }
    t.to_string()
}

/// A JSON field as table text: strings bare, null empty, lists comma-joined.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `s` cut to `n` characters with an ellipsis, for free text in a table cell.
pub fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A status word, green for success, red for failure, yellow for waiting (on a terminal).
pub fn status_cell(status: &str) -> Cell {
    let cell = Cell::new(status);
    if !colour() {
        return cell;
    }
    match status {
        "succeeded" | "yes" | "ok" => cell.fg(Color::Green),
        "failed" | "rejected" | "no" | "fail" => cell.fg(Color::Red),
        "pending" | "warn" => cell.fg(Color::Yellow),
        _ => cell,
    }
}

/// Prints a line on stdout. When the reader has gone (`webhook-mcp events ls | head -1`), the
/// command ends quietly with success: there is nobody left to tell, and a panic about a broken
/// pipe would only confuse.
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("webhook-mcp: cannot write to stdout: {e}");
            std::process::exit(1)
        }
    }
}
