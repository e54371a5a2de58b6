//! Writes the scrape of N endpoints in-process, in the chunks that the daemon streams, for
//! profiling a scrape. Each chunk is dropped once counted, as the server drops it once sent.
//!
//! ```sh
//! cargo build --release --example scrape_profile
//! valgrind --tool=callgrind --toggle-collect='ratewatch::metrics::scrape::Scrape::next_chunks' \
//!     target/release/examples/scrape_profile 10000
//! ```
//!
//! The endpoints are those of `benches/scale.rs`, from `benches/endpoints/mod.rs`. The daemon itself cannot run under valgrind:
//! rustix reads the clock through the vDSO, which valgrind does not map, and the process stops
//! with SIGSEGV at startup. This program never reads that clock.

use std::time::Instant;

use ratewatch::metrics::{EndpointMetrics, Metrics};
use ratewatch::secret::SecretSource;

#[path = "../benches/endpoints/mod.rs"]
mod endpoints;

/// Scrapes written after the first. Their page faults show whether the allocator reuses the
/// memory of the scrape before.
const SCRAPES: usize = 2;

fn main() {
    let endpoints: usize = std::env::args()
        .nth(1)
        .map_or(Ok(10_000), |arg| arg.parse())
        .expect("the first argument must be the number of endpoints");
    let text = endpoints::config(endpoints);
    let config = ratewatch::config::parse(&text, "scrape_profile.yml", &SecretSource::from_env())
        .expect("the generated config is valid");
    let metrics = Metrics::new().expect("the metric families register");
    let _handles: Vec<EndpointMetrics> = config
        .endpoints
        .iter()
        .map(|e| metrics.endpoint(e))
        .collect();

    for scrape in 0..=SCRAPES {
        let faults = minor_faults();
        let start = Instant::now();
        let mut writer = metrics.scrape();
        let mut bytes = 0;
        loop {
            let chunks = writer.next_chunks();
            if chunks.is_empty() {
                break;
            }
            bytes += chunks
                .iter()
                .map(|chunk| chunk.as_ref().len())
                .sum::<usize>();
        }
        let elapsed = start.elapsed();
        let faults = minor_faults() - faults;
        println!(
            "{endpoints} endpoints, scrape {scrape}: {elapsed:.2?}, {bytes} bytes, {faults} minor page faults"
        );
    }
}

/// Returns the minor page faults of this process so far, field 10 of `/proc/self/stat`.
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable");
    // The command name, field 2, is in parentheses and may contain spaces.
    let after_name = &stat[stat.rfind(')').expect("/proc/self/stat has a command name") + 2..];
    after_name
        .split(' ')
        .nth(7)
        .and_then(|field| field.parse().ok())
        .expect("field 10 of /proc/self/stat is a number")
}
