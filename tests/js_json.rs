//! Outbound bodies equal `JSON.stringify(JSON.parse(body))` as real Node.js computes it, for
//! generated payloads (integral floats, -0, exponents, integers beyond 2^53, unicode and control
//! characters, integer-like keys), and end to end: a `send_event` with `{"amount": 10.0}` is
//! signed over exactly what a seed-style receiver re-serialises.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::sink::{hex_ok, Sink};
use common::{Era, Server};
use serde_json::{json, Value};
use webhook_mcp::dispatcher::js_json;

/// A small deterministic generator (no seed crate needed for a test).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next() as usize % from.len()]
    }
    fn number(&mut self) -> String {
        match self.next() % 8 {
            0 => format!("{}.0", self.next() % 100_000),
            1 => format!("-{}.{}", self.next() % 1000, self.next() % 1000),
            2 => format!("{}e{}", self.next() % 10 + 1, self.next() % 40),
            3 => format!(
                "{}.{}e-{}",
                self.next() % 10,
                self.next() % 1000,
                self.next() % 12
            ),
            4 => format!("{}{:010}", self.next() % 100_000, self.next()),
            5 => self
                .pick(&[
                    "-0",
                    "-0.0",
                    "0.0",
                    "1E21",
                    "1e-7",
                    "0.000001",
                    "9007199254740993",
                ])
                .to_string(),
            6 => format!("{}", self.next() as i64 - (1 << 30)),
            _ => format!("{}.{}", self.next() % 10, self.next()),
        }
    }
    fn text(&mut self) -> String {
        let part = self.pick(&[
            "a", "é", "\\n", "\\\"", "\\u0001", "😀", "\\u2028", "/", "b c",
        ]);
        Value::String(String::new())
            .to_string()
            .replace("\"\"", &format!("\"{part}{}\"", self.next() % 10))
    }
    fn value(&mut self, depth: u32) -> String {
        match if depth > 3 {
            self.next() % 4
        } else {
            self.next() % 7
        } {
            0 | 1 => self.number(),
            2 => self.text(),
            3 => self.pick(&["true", "false", "null"]).to_string(),
            4 => {
                let n = self.next() % 4;
                let items: Vec<String> = (0..n).map(|_| self.value(depth + 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => {
                let n = self.next() % 5;
                let fields: Vec<String> = (0..n)
                    .map(|i| {
                        let key = match self.next() % 3 {
                            0 => format!("\"{}\"", self.next() % 20),
                            1 => format!("\"0{i}\""),
                            _ => format!("\"k{i}\""),
                        };
                        format!("{key}:{}", self.value(depth + 1))
                    })
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
        }
    }
}

/// JSON.stringify(JSON.parse(line)) for each line, by Node.js.
fn node_restringify(lines: &[String]) -> Vec<String> {
    let mut child = Command::new("node")
        .args([
            "-e",
            "const rl=require('readline').createInterface({input:process.stdin});\
             rl.on('line',l=>console.log(JSON.stringify(JSON.parse(l))));",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (Node.js) is needed for this test: it is what the seeds' receivers run");
    let mut stdin = child.stdin.take().unwrap();
    let input = lines.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn generated_payloads_are_written_as_json_stringify_writes_them() {
    let mut g = Gen(0x5eed);
    let texts: Vec<String> = (0..2000).map(|_| g.value(0)).collect();
    let ours: Vec<String> = texts
        .iter()
        .map(|t| {
            js_json::to_string(&serde_json::from_str(t).unwrap_or_else(|e| panic!("{t}: {e}")))
        })
        .collect();
    let node = node_restringify(&texts);
    assert_eq!(node.len(), texts.len());
    let mut differ = 0;
    for ((text, ours), node) in texts.iter().zip(&ours).zip(&node) {
        if ours != node {
            differ += 1;
            eprintln!("input {text}\n ours {ours}\n node {node}");
        }
    }
    assert_eq!(
        differ,
        0,
        "{differ} of {} payloads differ from Node.js",
        texts.len()
    );
    // The generator does produce the cases this is about.
    assert!(texts.iter().any(|t| t.contains(".0,") || t.ends_with(".0")));
    assert!(ours.iter().any(|o| o.contains("e+")));
}

#[tokio::test]
async fn a_float_payload_is_signed_over_what_a_seed_receiver_verifies() {
    let s = Server::start_with(Era::Legacy, None, &["--allow-private-targets"]).await;
    let sink = Sink::start().await;
    let (id, secret) = s.outbound(&sink.url("seed"), json!({})).await;
    // As the Python SDK sends it: an integral float.
    let data: Value =
        serde_json::from_str(r#"{"amount": 10.0, "rate": 1e21, "1": "first"}"#).unwrap();
    s.call(
        "send_event",
        json!({ "event": "order.paid", "data": data, "webhook_ids": [id] }),
    )
    .await;
    let got = sink.wait_for(1, 10).await;
    let body = String::from_utf8(got[0].body.to_vec()).unwrap();
    let restringified = node_restringify(std::slice::from_ref(&body));
    assert_eq!(
        body, restringified[0],
        "a seed receiver would verify other bytes"
    );
    assert!(
        body.contains(r#""data":{"1":"first","amount":10,"rate":1e+21}"#),
        "{body}"
    );
    assert!(hex_ok(&secret, &got[0]));
    s.stop().await;
}
