//! Request counts per endpoint, served at `GET /_sim/stats` so a test can prove that a client
//! stayed inside a limit.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::time::Instant;

use super::endpoint::Endpoint;
use super::window::PeakWindow;
use crate::ratelimit::RateLimit;

/// Counts for one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointStats {
    endpoint: Endpoint,
    limits: Vec<RateLimit>,
    total: u64,
    /// One tracker per limit, in the order of `limits`.
    peaks: Vec<PeakWindow>,
    status_counts: BTreeMap<u16, u64>,
}

/// The JSON report of one endpoint.
#[derive(Debug, Serialize)]
pub(crate) struct EndpointReport {
    path: &'static str,
    /// The first limit's request count, or null when the endpoint has no limit.
    limit: Option<u64>,
    /// The first limit's window in seconds, or null when the endpoint has no limit.
    window_seconds: Option<f64>,
    /// Every request received, whatever its status.
    total: u64,
    /// The most requests received in any window of the first limit's length, or null when
    /// the endpoint has no limit.
    max_in_window: Option<u64>,
    /// Responses by status code. A request still waiting on a `delay` fault is in `total` but
    /// not yet here.
    status_counts: BTreeMap<u16, u64>,
    /// Every limit of the endpoint, for endpoints with several.
    limits: Vec<LimitReport>,
}

/// The JSON report of one limit of one endpoint.
#[derive(Debug, Serialize)]
struct LimitReport {
    limit: u64,
    window_seconds: f64,
    max_in_window: u64,
}

impl EndpointStats {
    /// Creates empty counts for an endpoint with `limits`.
    pub(crate) fn new(endpoint: Endpoint, limits: &[RateLimit]) -> Self {
        Self {
            endpoint,
            limits: limits.to_vec(),
            total: 0,
            peaks: limits.iter().map(|l| PeakWindow::new(l.window)).collect(),
            status_counts: BTreeMap::new(),
        }
    }

    /// Counts a request arriving at `now`, before its response is known.
    pub(crate) fn record_arrival(&mut self, now: Instant) {
        self.total += 1;
        for peak in &mut self.peaks {
            peak.record(now);
        }
    }

    /// Counts a response with `status`.
    pub(crate) fn record_status(&mut self, status: u16) {
        *self.status_counts.entry(status).or_default() += 1;
    }

    /// Builds the JSON report.
    pub(crate) fn report(&self) -> EndpointReport {
        let limits: Vec<LimitReport> = self
            .limits
            .iter()
            .zip(&self.peaks)
            .map(|(limit, peak)| LimitReport {
                limit: limit.limit,
                window_seconds: limit.window.as_secs_f64(),
                max_in_window: peak.max(),
            })
            .collect();
        let first = limits.first();
        EndpointReport {
            path: self.endpoint.path(),
            limit: first.map(|l| l.limit),
            window_seconds: first.map(|l| l.window_seconds),
            total: self.total,
            max_in_window: first.map(|l| l.max_in_window),
            status_counts: self.status_counts.clone(),
            limits,
        }
    }
}
