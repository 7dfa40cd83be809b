//! The operator commands, run as a person runs them: the real binary on a real SQLite file (and
//! a real PostgreSQL schema), beside a real serving process where the command needs one
//! (delivery, tail), on a pipe and on a real pseudo-terminal.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::sink::{self, Reply, Sink};
use common::{voyager_body, Server, BIN};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs `webhook-mcp <args> --data-dir <dir>`; stdout and stderr captured, stdin empty.
fn cli(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("WEBHOOK_MCP_PUBLIC_URL")
        .env_remove("WEBHOOK_MCP_RECEIVER_ADDR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ webhook-mcp {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The command's `--json` answer; the command must succeed.
fn cli_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(dir, &all);
    assert!(out.status.success(), "{args:?} failed");
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn webhooks_lifecycle_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let created = cli_json(
        dir,
        &[
            "webhooks",
            "create",
            "--provider",
            "generic",
            "--description",
            "from the shell",
        ],
    );
    let id = created["webhook"]["id"].as_str().unwrap().to_string();
    let secret = created["webhook"]["secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 24, "a generated secret is shown on create");
    assert!(created["webhook"]["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/hooks/{id}")));

    // A table on a pipe: one row per webhook, never the secret.
    let ls = cli(dir, &["webhooks", "ls"]);
    assert!(ls.status.success());
    let table = stdout(&ls);
    assert!(
        table.contains("DIRECTION") && table.contains(&id) && table.contains("inbound"),
        "{table}"
    );
    assert!(!table.contains(&secret), "ls must never show a secret");
    assert!(!table.contains('\u{1b}'), "no colour on a pipe");
    let listed = cli_json(dir, &["webhooks", "ls"]);
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["webhooks"][0]["secret"], "***");

    let show = stdout(&cli(dir, &["webhooks", "show", &id]));
    assert!(
        show.contains("from the shell") && !show.contains(&secret),
        "{show}"
    );

    // Paused, a test is refused by the receive pipeline; resumed, it arrives.
    let updated = cli_json(dir, &["webhooks", "update", &id, "--disable"]);
    assert_eq!(updated["webhook"]["enabled"], false);
    let refused = cli(dir, &["webhooks", "test", &id]);
    assert!(!refused.status.success(), "a failed test exits non-zero");
    cli_json(
        dir,
        &[
            "webhooks",
            "update",
            &id,
            "--enable",
            "--events",
            "lead.replied",
        ],
    );
    let tested = cli_json(dir, &["webhooks", "test", &id]);
    assert_eq!(tested["ok"], true, "{tested}");
    assert_eq!(tested["event"], "lead.replied");
    let event_id = tested["event_id"].as_str().unwrap().to_string();

    let events = cli_json(dir, &["events", "ls"]);
    assert_eq!(events["count"], 1);
    assert_eq!(events["events"][0]["id"], event_id.as_str());
    let by_content = |filter: &str| cli_json(dir, &["events", "ls", "--filter", filter]);
    assert_eq!(
        by_content(r#"{"no.such.path": {"$exists": true}}"#)["count"],
        0
    );
    assert_eq!(
        by_content(r#"{"$not": {"no.such.path": {"$exists": true}}}"#)["count"],
        1
    );
    let bad = cli(dir, &["events", "ls", "--filter", r#"{"a": {"$gtt": 1}}"#]);
    assert!(!bad.status.success());
    let why = String::from_utf8_lossy(&bad.stderr);
    assert!(why.contains("`$gtt` is not an operator"), "{why}");
    let shown = stdout(&cli(dir, &["events", "show", &event_id]));
    assert!(
        shown.contains("lead.replied") && shown.contains("untrusted"),
        "{shown}"
    );

    let rotated = cli_json(dir, &["webhooks", "rotate", &id, "--grace", "0s"]);
    let new_secret = rotated["webhook"]["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(!stdout(&cli(dir, &["webhooks", "show", &id])).contains(new_secret));

    assert!(cli(dir, &["webhooks", "rm", &id]).status.success());
    let gone = cli(dir, &["webhooks", "show", &id]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));
}

#[test]
fn bad_flags_are_refused_with_the_accepted_names() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cli(tmp.path(), &["webhooks", "create", "--provider", "nosuch"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stripe") && err.contains("generic"), "{err}");
    let out = cli(tmp.path(), &["send", "x", "--data", "[1]"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("JSON object"));
    let out = cli(
        tmp.path(),
        &["webhooks", "create", "--direction", "outbound"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs `url`"));
}

#[test]
fn every_subcommand_has_an_example_in_its_help() {
    for cmd in [
        &["webhooks", "ls"][..],
        &["webhooks", "create"],
        &["webhooks", "show"],
        &["webhooks", "update"],
        &["webhooks", "rm"],
        &["webhooks", "rotate"],
        &["webhooks", "test"],
        &["events", "ls"],
        &["events", "show"],
        &["events", "tail"],
        &["deliveries", "ls"],
        &["deliveries", "show"],
        &["redeliver"],
        &["send"],
        &["prune"],
        &["doctor"],
        &["secrets", "rotate-key"],
        &["connect"],
    ] {
        let out = Command::new(BIN).args(cmd).arg("--help").output().unwrap();
        let help = stdout(&out);
        assert!(out.status.success(), "{cmd:?}");
        assert!(
            help.contains("Example"),
            "{cmd:?} --help has no example:\n{help}"
        );
        assert!(help.contains("--data-dir") || cmd == ["connect"], "{cmd:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn send_and_redeliver_are_delivered_by_the_serving_process() {
    let sink = Sink::start().await;
    sink.script([Reply::status(200), Reply::status(200)]);
    let server = Server::start_with(common::Era::Legacy, None, &["--allow-private-targets"]).await;
    let dir = server.data_dir.clone();

    let created = cli_json(
        &dir,
        &[
            "webhooks",
            "create",
            "--direction",
            "outbound",
            "--url",
            &sink.url("/hook"),
            "--allow-private-targets",
        ],
    );
    let id = created["webhook"]["id"].as_str().unwrap().to_string();
    let secret = created["webhook"]["secret"].as_str().unwrap().to_string();

    // A content filter set from the shell keeps other leads out.
    let filtered = cli_json(
        &dir,
        &[
            "webhooks",
            "update",
            &id,
            "--filter",
            r#"{"data.lead": "ada"}"#,
        ],
    );
    assert_eq!(filtered["webhook"]["filter"], json!({"data.lead": "ada"}));
    let other = cli_json(
        &dir,
        &["send", "lead.replied", "--data", r#"{"lead": "bob"}"#],
    );
    assert_eq!(other["queued"], 0, "{other}");
    assert_eq!(other["filtered_out"], json!([id]), "{other}");
    let sent = cli_json(
        &dir,
        &["send", "lead.replied", "--data", r#"{"lead": "ada"}"#],
    );
    assert_eq!(sent["queued"], 1, "{sent}");
    let got = sink.wait_for(1, 20).await;
    assert!(
        sink::standard_ok(&secret, &got[0]),
        "signed with the webhook's secret"
    );
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["data"], json!({"lead": "ada"}));

    // The log shows it succeeded; the table colours nothing on a pipe.
    let delivery_id = sent["deliveries"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let log = loop {
        let page = cli_json(&dir, &["deliveries", "ls", "--webhook", &id]);
        if page["deliveries"][0]["status"] == "succeeded" {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never succeeded: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(log["deliveries"][0]["id"], delivery_id.as_str());
    let table = stdout(&cli(&dir, &["deliveries", "ls", "--status", "succeeded"]));
    assert!(
        table.contains(&delivery_id) && table.contains("succeeded"),
        "{table}"
    );
    let detail = cli_json(&dir, &["deliveries", "show", &delivery_id]);
    assert!(detail["request_body"].as_str().unwrap().contains("ada"));

    // --wait returns once the serving process has sent it.
    let again = cli_json(&dir, &["redeliver", &delivery_id, "--wait"]);
    assert_eq!(again["queued"], 1);
    assert_eq!(
        sink.received().len(),
        2,
        "redelivered by the server before --wait returned"
    );

    // The same idempotency key twice: one delivery.
    let first = cli_json(
        &dir,
        &["send", "x.y", "--idempotency-key", "k1", "--webhook", &id],
    );
    let second = cli_json(
        &dir,
        &["send", "x.y", "--idempotency-key", "k1", "--webhook", &id],
    );
    assert_eq!(second["replayed"], true);
    assert_eq!(first["deliveries"], second["deliveries"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_tail_follows_what_another_process_receives() {
    let server = Server::start().await;
    let (id, url, secret) = server.inbound(json!({})).await;
    let mut tail = tokio::process::Command::new(BIN)
        .args(["events", "tail", "--json", "--data-dir"])
        .arg(&server.data_dir)
        .args([
            "--filter",
            r#"{"data.lastMessage": {"$contains": "provider"}}"#,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut err = BufReader::new(tail.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), err.next_line())
        .await
        .expect("tail says what it follows")
        .unwrap()
        .unwrap();
    assert!(ready.contains("following events"), "{ready}");

    // Filtered out: tail prints nothing for it.
    let (status, _) = server
        .post_signed(&url, &secret, &voyager_body("e-tail-0", "unrelated"))
        .await;
    assert_eq!(status, 200);
    let (status, answer) = server
        .post_signed(
            &url,
            &secret,
            &voyager_body("e-tail-1", "hello from a provider"),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut out = BufReader::new(tail.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(15), out.next_line())
        .await
        .expect("the event reaches tail within 15 s")
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["webhook_id"], id.as_str());
    assert_eq!(event["id"], answer["event_id"]);

    common::signal(tail.id().unwrap(), "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), tail.wait())
        .await
        .expect("tail stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    server.stop().await;
}

#[test]
fn tables_are_coloured_on_a_terminal_only() {
    let tmp = tempfile::tempdir().unwrap();
    cli_json(tmp.path(), &["webhooks", "create"]);
    let on_pty = |no_color: bool| {
        let mut cmd = Command::new(BIN);
        cmd.args(["webhooks", "ls", "--data-dir"]).arg(tmp.path());
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        common::pty::run(cmd, 200, None, Duration::from_secs(20))
    };
    let run = on_pty(false);
    assert!(run.status.is_some_and(|s| s.success()), "{}", run.text);
    assert!(run.text.contains("inbound"), "{}", run.text);
    assert!(
        run.text.contains("\u{1b}["),
        "colour on a terminal: {:?}",
        run.text
    );
    let plain = on_pty(true);
    assert!(
        plain.text.contains("inbound") && !plain.text.contains("\u{1b}["),
        "NO_COLOR: {:?}",
        plain.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_a_running_setup_and_says_what_to_fix() {
    let server = Server::start().await;
    let (_, url, _) = server.inbound(json!({})).await;
    let base = url.split("/hooks/").next().unwrap().to_string();
    let addr = base.trim_start_matches("http://").to_string();
    let dir = server.data_dir.clone();

    let report = cli_json(
        &dir,
        &["doctor", "--receiver-addr", &addr, "--public-url", &base],
    );
    let by_name = |r: &Value, name: &str| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check in {r}"))
    };
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(by_name(&report, "store")["status"], "ok");
    assert_eq!(by_name(&report, "receiver")["status"], "ok", "{report}");
    // Loopback works here but no provider on the internet can reach it: a warning with a fix.
    let public = by_name(&report, "public url");
    assert_eq!(public["status"], "warn");
    assert!(public["fix"].as_str().unwrap().contains("tunnel"));
    assert!(by_name(&report, "queue")["detail"]
        .as_str()
        .unwrap()
        .contains("1 serving process"));

    // A port held by something that is not webhook-mcp: the check fails, exit status 1.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().to_string();
    let out = cli(&dir, &["doctor", "--receiver-addr", &taken, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(by_name(&report, "receiver")["status"], "fail", "{report}");
    drop(squatter);
    let human = stdout(&cli(&dir, &["doctor", "--receiver-addr", &taken]));
    assert!(human.contains("what to do:"), "{human}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_commands_work_on_postgresql() {
    let Some(schema) = common::pg::TestSchema::create("the_commands_work_on_postgresql").await
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pg = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--database-url",
            &schema.url,
            "--secrets-key",
            common::pg::SECRETS_KEY,
        ]);
        cli_json(tmp.path(), &all)
    };
    let created = pg(&["webhooks", "create", "--provider", "stripe"]);
    let id = created["webhook"]["id"].as_str().unwrap().to_string();
    assert_eq!(pg(&["webhooks", "ls"])["webhooks"][0]["provider"], "stripe");
    assert_eq!(pg(&["webhooks", "test", &id])["ok"], true);
    assert_eq!(pg(&["events", "ls"])["count"], 1);
    let report = pg(&["doctor", "--receiver-addr", "127.0.0.1:1"]);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"database") && names.contains(&"clock"),
        "{report}"
    );
    assert!(!names.contains(&"data dir"));
}

/// Issue 21, step 7: a listing piped into a reader that has gone (`| head -1`) ends quietly:
/// no panic, no "Broken pipe" on stderr, success.
#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        cli_json(
            tmp.path(),
            &["webhooks", "create", "--direction", "inbound"],
        );
    }
    let out = Command::new("sh")
        .args([
            "-c",
            "\"$0\" webhooks ls --data-dir \"$1\" --json | head -c 1 >/dev/null",
        ])
        .arg(BIN)
        .arg(tmp.path())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.to_lowercase().contains("broken pipe"),
        "{err}"
    );
    // The listing itself, with its exit status, when its reader stops at once.
    let mut child = Command::new(BIN)
        .args(["webhooks", "ls", "--json", "--data-dir"])
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}
