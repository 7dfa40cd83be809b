//! A PostgreSQL schema of its own for one test, dropped when the test ends. The database comes
//! from `WEBHOOK_MCP_TEST_DATABASE_URL`; without it, `TestSchema::create` prints a visible
//! SKIPPED line and returns `None` (CI sets it, and fails when the database is unreachable).
#![allow(dead_code)]

pub const ENV: &str = "WEBHOOK_MCP_TEST_DATABASE_URL";
/// The secrets key every test instance on PostgreSQL is given (`--secrets-key`).
pub const SECRETS_KEY: &str = "d2ViaG9vay1tY3AgdGVzdCBzZWNyZXRzIGtleSAzMmI=";

/// The keyring of [`SECRETS_KEY`], for stores opened in the test process.
#[allow(dead_code)]
pub fn keyring() -> webhook_mcp::store::sealing::Keyring {
    webhook_mcp::store::sealing::Keyring::from_text(
        SECRETS_KEY,
        webhook_mcp::store::sealing::KeySource::Given,
    )
    .unwrap()
}

pub struct TestSchema {
    base: String,
    pub name: String,
    /// The database URL with this schema as the search path: what the store is given.
    pub url: String,
}

impl TestSchema {
    pub async fn create(test: &str) -> Option<TestSchema> {
        let Ok(base) = std::env::var(ENV) else {
            // Straight to stderr: libtest captures the print macros, not the stream itself.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test} needs PostgreSQL; set {ENV} (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            return None;
        };
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{ENV} is set but the database is unreachable: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Some(TestSchema { base, name, url })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop may run inside a runtime: clean up on a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&base, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}
