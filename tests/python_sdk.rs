//! The official Python MCP SDK (`mcp` on PyPI) as a third-party client, in both its legacy and
//! default modes. The SDK lives in `.venv` at the repository root; this test creates it on
//! first use (`WEBHOOK_MCP_PYTHON` points at another interpreter that has `mcp`).

mod common;

use std::path::Path;
use std::process::Command;

use common::python;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_webhook-mcp");

fn run(mode: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_client.py");
    let out = Command::new(python())
        .arg(script)
        .arg(BIN)
        .arg(dir.path())
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client ({mode}) failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.lines().last().unwrap()).unwrap()
}

#[test]
fn python_sdk_legacy_mode() {
    let r = run("legacy");
    assert_eq!(r["protocol_version"], "2025-11-25");
    assert_eq!(r["tools"], 14);
    assert!(r["updated"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == "webhook://events"));
}

#[test]
fn python_sdk_default_mode() {
    let r = run("auto");
    assert_eq!(r["protocol_version"], "2026-07-28");
    assert_eq!(r["tools"], 14);
    assert!(r["updated"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == "webhook://events"));
}

/// Every tool declares an outputSchema, and every result's structuredContent matches it, as
/// the official Python SDK (and the `jsonschema` library) check it; no schema uses a construct
/// strict clients reject (a list as `type`, an array without `items`).
#[test]
fn every_tool_result_matches_its_output_schema() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/output_schemas.py");
    let out = Command::new(python())
        .arg(script)
        .arg(BIN)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "output schema check failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(r["called"].as_array().unwrap().len(), 14, "{r}");
    assert_eq!(r["missing"], serde_json::json!([]), "{r}");
    assert_eq!(r["lint"], serde_json::json!([]), "schema findings: {r}");
}
