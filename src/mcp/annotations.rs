//! What each tool does to the world, said once: its title and the MCP annotations clients use
//! to decide when to ask the user first (`readOnlyHint`, `destructiveHint`, `idempotentHint`,
//! `openWorldHint`), and which tools `--read-only` leaves out. A unit test fails when a tool
//! is added without its entry here.

use rmcp::model::{Tool, ToolAnnotations};

/// What calling a tool does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only; calling it again changes nothing.
    Read,
    /// Changes this server's state (and, when `open_world`, reaches other systems).
    Write {
        /// May overwrite or remove what exists (not only add).
        destructive: bool,
        /// Calling it again with the same arguments has no further effect.
        idempotent: bool,
        /// Sends requests to systems outside this server (webhook targets, receivers).
        open_world: bool,
    },
}

pub struct ToolKind {
    pub name: &'static str,
    pub title: &'static str,
    pub effect: Effect,
}

const fn write(destructive: bool, idempotent: bool, open_world: bool) -> Effect {
    Effect::Write {
        destructive,
        idempotent,
        open_world,
    }
}

pub const TOOLS: &[ToolKind] = &[
    ToolKind {
        name: "create_webhook",
        title: "Create a webhook",
        effect: write(false, false, false),
    },
    ToolKind {
        name: "list_webhooks",
        title: "List webhooks",
        effect: Effect::Read,
    },
    ToolKind {
        name: "get_webhook",
        title: "Show one webhook",
        effect: Effect::Read,
    },
    // Changing a URL or disabling replaces what was there; the same edit twice is one edit.
    ToolKind {
        name: "update_webhook",
        title: "Change a webhook",
        effect: write(true, true, false),
    },
    ToolKind {
        name: "delete_webhook",
        title: "Delete a webhook",
        effect: write(true, true, false),
    },
    // The old secret stops verifying after its grace period; each call makes a new secret.
    ToolKind {
        name: "rotate_secret",
        title: "Rotate a webhook's secret",
        effect: write(true, false, false),
    },
    ToolKind {
        name: "test_webhook",
        title: "Send a test event",
        effect: write(false, false, true),
    },
    ToolKind {
        name: "send_event",
        title: "Send an event to outbound webhooks",
        effect: write(false, false, true),
    },
    ToolKind {
        name: "redeliver",
        title: "Redeliver failed deliveries",
        effect: write(false, false, true),
    },
    ToolKind {
        name: "query_deliveries",
        title: "Query the delivery log",
        effect: Effect::Read,
    },
    ToolKind {
        name: "list_events",
        title: "List received events",
        effect: Effect::Read,
    },
    ToolKind {
        name: "get_event",
        title: "Show one received event",
        effect: Effect::Read,
    },
    ToolKind {
        name: "wait_for_events",
        title: "Wait for new events",
        effect: Effect::Read,
    },
    ToolKind {
        name: "list_event_types",
        title: "Event type catalogue",
        effect: Effect::Read,
    },
];

pub fn kind(name: &str) -> Option<&'static ToolKind> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Whether `--read-only` leaves the tool out (every tool that is not a pure read).
pub fn is_write(name: &str) -> bool {
    kind(name).is_none_or(|k| k.effect != Effect::Read)
}

/// The tool with its title and annotations.
pub fn annotate(tool: Tool) -> Tool {
    let Some(k) = kind(&tool.name) else {
        return tool;
    };
    let annotations = match k.effect {
        Effect::Read => ToolAnnotations::with_title(k.title)
            .read_only(true)
            .idempotent(true)
            .open_world(false),
        Effect::Write {
            destructive,
            idempotent,
            open_world,
        } => ToolAnnotations::with_title(k.title)
            .read_only(false)
            .destructive(destructive)
            .idempotent(idempotent)
            .open_world(open_world),
    };
    let mut tool = tool.with_title(k.title).with_annotations(annotations);
    if let Some(d) = &tool.description {
        if d.contains("{providers}") {
            tool.description = Some(d.replace("{providers}", &providers()).into());
        }
    }
    tool
}

/// Every signature preset, from the `Provider` type itself (its JSON Schema enum): the
/// description cannot fall behind the presets.
fn providers() -> String {
    let schema = schemars::schema_for!(crate::model::Provider);
    let value = serde_json::to_value(&schema).unwrap_or_default();
    let names: Vec<String> = value["enum"]
        .as_array()
        .or_else(|| value["oneOf"].as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| {
                    i.as_str()
                        .or_else(|| i["const"].as_str())
                        .or_else(|| i["enum"][0].as_str())
                })
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    names.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_list_is_every_preset() {
        let list = providers();
        for p in [
            "generic", "kakiyo", "standard", "github", "stripe", "slack", "shopify", "none",
        ] {
            assert!(list.split('|').any(|x| x == p), "{p} missing from {list}");
        }
    }

    #[test]
    fn every_tool_has_exactly_one_entry() {
        let router = crate::mcp::McpServer::router();
        let names: Vec<String> = router
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        for name in &names {
            assert!(kind(name).is_some(), "tool {name} has no entry in TOOLS");
        }
        for k in TOOLS {
            assert!(
                names.iter().any(|n| n == k.name),
                "TOOLS names {} which is no tool",
                k.name
            );
            assert_eq!(TOOLS.iter().filter(|o| o.name == k.name).count(), 1);
        }
    }
}
