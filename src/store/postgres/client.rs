//! Connections and statements: the pool's TLS, statements prepared once per connection
//! (`Cached`), shared statements (`store::sql`) bound and run, rows read by column name, and
//! backend errors kept with their source.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, ManagerConfig, RecyclingMethod};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::store::rows;
use crate::store::sql::{Arg, Statement};

pub(super) type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// Statements run by their text, each prepared once per connection and then only bound: one
/// round trip a run instead of two (parse and describe, then bind and execute).
#[async_trait]
pub(super) trait Cached: GenericClient {
    async fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn execute_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<u64, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }

    async fn query_one_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Row, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }

    async fn query_opt_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }
}

impl<C: GenericClient> Cached for C {}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        Error::backend(message, e)
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::backend(format!("no database connection: {e}"), e)
    }
}

pub(super) fn manager_config() -> ManagerConfig {
    ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    }
}

#[derive(Clone)]
pub(super) enum Tls {
    Plain,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Tls {
    pub(super) fn for_mode(mode: SslMode) -> Result<Tls> {
        if mode != SslMode::Require {
            return Ok(Tls::Plain);
        }
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(
            config,
        )))
    }
}

// --- reading rows by column name (the decoders are shared with every backend: store::rows) ----

impl rows::Columns for Row {
    fn text(&self, name: &str) -> Result<Option<String>> {
        col(self, name)
    }
    fn int(&self, name: &str) -> Result<Option<i64>> {
        col(self, name)
    }
    fn flag(&self, name: &str) -> Result<bool> {
        col(self, name)
    }
}

pub(super) fn col<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    row: &Row,
    name: &str,
) -> Result<T> {
    row.try_get(name)
        .map_err(|e| Error::backend(format!("column `{name}`: {e}"), e))
}

/// Binds a shared statement's arguments.
pub(super) fn bind(s: &Statement) -> Params<'_> {
    s.args
        .iter()
        .map(|a| match a {
            Arg::Int(i) => i as &(dyn ToSql + Sync),
            Arg::Text(t) | Arg::EventId(t) => t as &(dyn ToSql + Sync),
            Arg::Bool(b) => b as &(dyn ToSql + Sync),
            Arg::OptInt(i) => i as &(dyn ToSql + Sync),
            Arg::OptText(t) | Arg::OptEventId(t) => t as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Runs a shared statement (`store::sql`) rendered for PostgreSQL.
pub(super) async fn query(c: &impl GenericClient, s: &Statement) -> Result<Vec<Row>> {
    Ok(c.query_cached(&s.numbered(), &bind(s)).await?)
}

pub(super) async fn execute(c: &impl GenericClient, s: &Statement) -> Result<u64> {
    Ok(c.execute_cached(&s.numbered(), &bind(s)).await?)
}

pub(super) async fn query_opt(c: &impl GenericClient, s: &Statement) -> Result<Option<Row>> {
    Ok(c.query_opt_cached(&s.numbered(), &bind(s)).await?)
}
