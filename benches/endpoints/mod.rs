//! The config of the scale benchmark, shared with `examples/scrape_profile.rs` so that both
//! measure the same endpoints.

use std::fmt::Write as _;

/// Returns a config of `endpoints` endpoints of one API, with a rate limit of 10/hour and an
/// interval of one hour.
pub(crate) fn config(endpoints: usize) -> String {
    // Port 9 on loopback (discard) is never probed: the hour-long interval keeps every first
    // slot far away.
    let mut text = String::from(
        "global: { interval: 1h }\napis:\n  - name: big\n    base_url: http://127.0.0.1:9/\n    endpoints:\n",
    );
    for i in 0..endpoints {
        writeln!(
            text,
            "      - {{ name: e{i}, path: p{i}, rate_limit: 10/hour }}"
        )
        .unwrap();
    }
    text
}
