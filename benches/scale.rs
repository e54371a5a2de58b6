//! Scale benchmark: the daemon with a small and a large number of endpoints.
//!
//! Each size starts the release daemon on loopback with endpoints whose hour-long interval keeps
//! every probe away, waits for `/-/ready`, reads its memory from `/proc`, and scrapes `/metrics`
//! a few times. It prints the cost per endpoint at each size and the ratio of the large size to
//! the small one. Both sizes run in the same process, so the speed of a shared machine mostly
//! cancels out. A ratio near 1 means the cost grows linearly.
//!
//! With `RATEWATCH_BENCH_BASELINE=PATH` naming another ratewatch binary (for example one built
//! from an earlier commit), every size also runs on that binary, and the benchmark prints the
//! ratio of this build to the baseline.
//!
//! `cargo bench --bench scale` runs 1,000 and 10,000 endpoints. Under `cargo test
//! --all-targets` the same code runs with 50 and 500 endpoints as a smoke test. Only counts are
//! asserted, never times.

#[path = "../tests/common/mod.rs"]
mod common;
mod endpoints;

use std::time::{Duration, Instant};

use common::{Process, free_port, get, wait_for};

/// Scrapes per size; the median time is reported.
const SCRAPES: usize = 5;

/// The measurements of one daemon run.
struct Sample {
    endpoints: usize,
    ready: Duration,
    rss_ready: u64,
    scrape: Duration,
    scrape_bytes: usize,
    /// The median time of a scrape that requests gzip, and its compressed size.
    gzip_scrape: Duration,
    gzip_bytes: usize,
    series: usize,
    rss_after: u64,
    peak: u64,
}

impl Sample {
    fn per_endpoint(&self, value: f64) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "endpoint counts are small")]
        let n = self.endpoints as f64;
        value / n
    }
}

/// Reads a `/proc/PID/status` field in kB and returns bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("field {field} missing from /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("invalid /proc status line {line:?}"));
    kb * 1024
}

fn measure(binary: &str, endpoints: usize) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("ratewatch.yml");
    std::fs::write(&config_path, endpoints::config(endpoints)).unwrap();
    let port = free_port();
    let args = [
        format!("--config.file={}", config_path.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--storage.path={}", dir.path().join("state").display()),
        "--log.level=warn".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let daemon = Process::start(binary, &args, &[]);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("/-/ready to answer 200", Duration::from_secs(300), || {
        let (code, _) = get(&format!("{base}/-/ready"))?;
        if code == 200 {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(20));
        None
    });
    let ready = started.elapsed();
    let pid = daemon.id();
    let rss_ready = proc_status(pid, "VmRSS:");

    // No automatic decompression: the plain scrapes send no Accept-Encoding, and the gzip
    // scrapes measure the compressed bytes as they arrive.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .no_gzip()
        .build()
        .unwrap();
    let mut times = Vec::with_capacity(SCRAPES);
    let mut body = String::new();
    for _ in 0..SCRAPES {
        let start = Instant::now();
        body = client
            .get(format!("{base}/metrics"))
            .send()
            .and_then(reqwest::blocking::Response::text)
            .unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    let mut gzip_times = Vec::with_capacity(SCRAPES);
    let mut gzip_bytes = 0;
    for _ in 0..SCRAPES {
        let start = Instant::now();
        let response = client
            .get(format!("{base}/metrics"))
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .send()
            .unwrap();
        // A baseline built before gzip support sends plain text, which these numbers
        // then show.
        gzip_bytes = response.bytes().unwrap().len();
        gzip_times.push(start.elapsed());
    }
    gzip_times.sort();
    let series = body
        .lines()
        .filter(|line| line.starts_with("ratewatch_") && line.contains("endpoint=\""))
        .count();
    Sample {
        endpoints,
        ready,
        rss_ready,
        scrape: times[SCRAPES / 2],
        scrape_bytes: body.len(),
        gzip_scrape: gzip_times[SCRAPES / 2],
        gzip_bytes,
        series,
        rss_after: proc_status(pid, "VmRSS:"),
        peak: proc_status(pid, "VmHWM:"),
    }
}

#[allow(clippy::cast_precision_loss, reason = "sizes are far below 2^52")]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

fn print_sample(label: &str, s: &Sample) {
    #[allow(clippy::cast_precision_loss, reason = "sizes are far below 2^52")]
    let kib = |bytes: u64| s.per_endpoint(bytes as f64) / 1024.0;
    println!(
        "{label:<9} {:>6} endpoints: ready {:>7.2?}, RSS {:>7.1} MiB ({:>5.1} KiB/endpoint), \
         scrape {:>8.2?} for {:>6.1} MiB (gzip {:>8.2?} for {:>5.1} MiB) and {} endpoint series, \
         RSS after scrapes {:>7.1} MiB, peak {:>7.1} MiB ({:>5.1} KiB/endpoint)",
        s.endpoints,
        s.ready,
        mib(s.rss_ready),
        kib(s.rss_ready),
        s.scrape,
        mib(s.scrape_bytes as u64),
        s.gzip_scrape,
        mib(s.gzip_bytes as u64),
        s.series,
        mib(s.rss_after),
        mib(s.peak),
        kib(s.peak),
    );
}

/// The costs compared between two samples, each as a function of one sample.
type Cost = (&'static str, fn(&Sample) -> f64);

#[allow(clippy::cast_precision_loss, reason = "sizes are far below 2^52")]
const COSTS: [Cost; 7] = [
    ("ready time", |s| s.ready.as_secs_f64()),
    ("RSS when ready", |s| s.rss_ready as f64),
    ("scrape time", |s| s.scrape.as_secs_f64()),
    ("scrape bytes", |s| s.scrape_bytes as f64),
    ("gzip scrape time", |s| s.gzip_scrape.as_secs_f64()),
    ("gzip scrape bytes", |s| s.gzip_bytes as f64),
    ("peak RSS", |s| s.peak as f64),
];

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let sizes: [usize; 2] = if full { [1_000, 10_000] } else { [50, 500] };
    let candidate = common::ratewatch_bin();
    let baseline = std::env::var("RATEWATCH_BENCH_BASELINE").ok();

    let mut runs: Vec<(&str, &str)> = vec![("this", candidate)];
    if let Some(path) = baseline.as_deref() {
        runs.push(("baseline", path));
    }
    let mut results: Vec<(&str, Vec<Sample>)> = Vec::new();
    for (label, binary) in &runs {
        let samples: Vec<Sample> = sizes.iter().map(|&n| measure(binary, n)).collect();
        for sample in &samples {
            print_sample(label, sample);
        }
        let [small, large] = &samples[..] else {
            unreachable!("two sizes")
        };
        // Every endpoint has the same series, so the count must grow exactly with the size.
        assert_eq!(
            small.series * large.endpoints,
            large.series * small.endpoints,
            "{label}: endpoint series do not grow linearly: {} at {}, {} at {}",
            small.series,
            small.endpoints,
            large.series,
            large.endpoints
        );
        assert!(small.series > 0, "{label}: no endpoint series scraped");
        results.push((label, samples));
    }

    println!(
        "\ncost per endpoint at {} divided by cost per endpoint at {} (1.00 = linear growth):",
        sizes[1], sizes[0]
    );
    for (label, samples) in &results {
        let line: Vec<String> = COSTS
            .iter()
            .map(|(name, cost)| {
                let small = samples[0].per_endpoint(cost(&samples[0]));
                let large = samples[1].per_endpoint(cost(&samples[1]));
                format!("{name} {:.2}", large / small)
            })
            .collect();
        println!("  {label:<9} {}", line.join(", "));
    }
    if let [(_, this), (_, base)] = &results[..] {
        println!("\nthis build divided by the baseline (below 1.00 = this build costs less):");
        for (ours, theirs) in this.iter().zip(base) {
            let line: Vec<String> = COSTS
                .iter()
                .map(|(name, cost)| format!("{name} {:.2}", cost(ours) / cost(theirs)))
                .collect();
            println!("  {:>6} endpoints: {}", ours.endpoints, line.join(", "));
        }
    }
}
