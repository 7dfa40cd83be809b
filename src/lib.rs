//! webhook-mcp: an MCP server that gives AI agents webhooks.
//!
//! Layers, outermost first (see ARCHITECTURE.md): `cli` / `mcp` / `receiver` adapt transports
//! to the `service` API; `service` holds the product's operations; `store` (an interface with
//! a SQLite backend), `signing`, `dispatcher` and `catalog` are the pieces it is built from;
//! `model` is the shared vocabulary. Dependencies point one way: front ends → service →
//! store / signing / dispatcher → model.

pub mod auth;
pub mod catalog;
pub mod cli;
pub mod dashboard;
pub mod dispatcher;
pub mod error;
pub mod mcp;
pub mod model;
pub mod receiver;
pub mod service;
pub mod signing;
pub mod store;
