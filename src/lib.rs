//! ratewatch probes the endpoints of rate-limited HTTP APIs on their own schedules, spends at
//! most a configured share of each documented limit, classifies every response, and serves
//! Prometheus metrics.
//!
//! Layout, one module per concern:
//!
//! - [`config`]: the YAML config, validated into typed endpoints with their plans.
//! - [`plan`]: budgets per window and probe intervals from documented limits.
//! - [`ratelimit`]: documented limits such as `100/hour` or `5/30s`.
//! - [`secret`]: secrets by reference, never printed.
//! - [`schedule`]: one task per endpoint on a fixed grid, checking the ledger first.
//! - [`ledger`]: the sent requests of one endpoint, checked against every window.
//! - [`shared`]: the probe budget shared by several replicas, debited atomically in Redis.
//! - [`probe`]: one bounded HTTP request per slot.
//! - [`classify`]: status code or transport outcome to a bounded class.
//! - [`metrics`]: every metric family and the registries that serve them.
//! - [`status`]: the latest state of every endpoint, for the status page and JSON API.
//! - [`web`]: `/metrics`, the status page, the JSON API and the lifecycle endpoints.
//! - [`webconfig`]: the `--web.config.file` of Prometheus exporters: HTTPS, basic
//!   authentication and extra response headers.
//! - [`app`]: the daemon's lifecycle: start, reload, graceful shutdown.
//! - [`cli`] and [`commands`]: the command line and its subcommands.
//! - [`check`]: the probe plan table.
//! - [`state`]: the crash-safe local store of spent budget, pauses and last results.
//! - [`simulate`]: a loopback simulator of the documented API, with scenario-driven faults.
//! - `x509`: certificate files read with a size bound, and the X.509 version of
//!   certificates, which rustls requires to be 3.
//! - [`headroom`]: quota headroom read from responses: `Retry-After`, rate-limit headers and
//!   credit balances in JSON bodies.
//! - `yaml_keys`: the key and value at the line and column of a YAML error, read from the
//!   source text, for the messages of [`config`] and [`webconfig`].

pub mod app;
pub mod check;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod headroom;
pub mod ledger;
pub mod metrics;
pub mod plan;
pub mod probe;
pub mod ratelimit;
pub mod schedule;
pub mod secret;
pub mod shared;
pub mod simulate;
pub mod state;
pub mod status;
pub mod web;
pub mod webconfig;
mod x509;
mod yaml_keys;

/// The git revision this binary was built from, or `unknown`.
pub const REVISION: &str = env!("RATEWATCH_REVISION");
