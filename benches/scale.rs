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
//! A second part (`benches/aborts/mod.rs`) scrapes the daemon with clients that close the
//! connection after the first few KiB, and compares its memory with that after complete scrapes.
//!
//! `cargo bench --bench scale` runs 1,000 and 10,000 endpoints, and the aborted scrapes at 3,000.
//! `cargo bench --bench scale -- sizes` or `-- aborts` runs one part. Under `cargo test
//! --all-targets` the same code runs with 50 and 500 endpoints, and 12 scrapes of 100, as a smoke
//! test. Only counts are asserted, never times or memory.

mod aborts;
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

/// Reads the number in a `/proc/PID/status` field, as written there.
fn proc_status_number(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("field {field} missing from /proc/{pid}/status"));
    line.split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("invalid /proc status line {line:?}"))
}

/// Reads a `/proc/PID/status` field in kB and returns bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    proc_status_number(pid, field) * 1024
}

/// A daemon on loopback, killed when dropped.
struct Daemon {
    /// The config and state directory, removed when dropped.
    _dir: tempfile::TempDir,
    process: Process,
    /// `http://127.0.0.1:PORT`.
    base: String,
    port: u16,
    /// The time from the start of the process until `/-/ready` returned 200.
    ready: Duration,
}

impl Daemon {
    /// Starts `binary` with the benchmark's `endpoints` and waits until it is ready.
    fn start(binary: &str, endpoints: usize) -> Daemon {
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
        let process = Process::start(binary, &args, &[]);
        let base = format!("http://127.0.0.1:{port}");
        wait_for("/-/ready to answer 200", Duration::from_secs(300), || {
            let (code, _) = get(&format!("{base}/-/ready"))?;
            if code == 200 {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(20));
            None
        });
        Daemon {
            _dir: dir,
            process,
            base,
            port,
            ready: started.elapsed(),
        }
    }

    /// Reads a `/proc/PID/status` field of the daemon in kB and returns bytes.
    fn status(&self, field: &str) -> u64 {
        proc_status(self.process.id(), field)
    }
}

fn measure(binary: &str, endpoints: usize) -> Sample {
    let daemon = Daemon::start(binary, endpoints);
    let base = &daemon.base;
    let ready = daemon.ready;
    let rss_ready = daemon.status("VmRSS:");

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
    let series = endpoint_series(&body);
    Sample {
        endpoints,
        ready,
        rss_ready,
        scrape: times[SCRAPES / 2],
        scrape_bytes: body.len(),
        gzip_scrape: gzip_times[SCRAPES / 2],
        gzip_bytes,
        series,
        rss_after: daemon.status("VmRSS:"),
        peak: daemon.status("VmHWM:"),
    }
}

/// Counts the sample lines of a scrape that belong to an endpoint.
fn endpoint_series(scrape: &str) -> usize {
    scrape
        .lines()
        .filter(|line| line.starts_with("ratewatch_") && line.contains("endpoint=\""))
        .count()
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

/// Measures each binary of `runs` at two sizes and prints the costs and their ratios.
fn run_sizes(full: bool, runs: &[(&str, &str)]) {
    let sizes: [usize; 2] = if full { [1_000, 10_000] } else { [50, 500] };
    let mut results: Vec<(&str, Vec<Sample>)> = Vec::new();
    for (label, binary) in runs {
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

/// Measures aborted against complete scrapes on each binary of `runs` and prints the ratios.
fn run_aborts(full: bool, runs: &[(&str, &str)]) {
    let plan = if full {
        aborts::Plan {
            endpoints: 3_000,
            scrapes: 200,
            wave: 20,
            read_bytes: 4 * 1024,
            settle: [Duration::from_secs(2), Duration::from_secs(12)],
        }
    } else {
        aborts::Plan {
            endpoints: 100,
            scrapes: 12,
            wave: 4,
            read_bytes: 4 * 1024,
            settle: [Duration::from_millis(100), Duration::from_millis(100)],
        }
    };
    println!(
        "\n{} scrapes of {} endpoints, in waves of {} and one at a time; an aborted scrape \
         closes after {} bytes:",
        plan.scrapes, plan.endpoints, plan.wave, plan.read_bytes
    );
    let mut results = Vec::new();
    for (label, binary) in runs {
        let complete = aborts::measure(binary, &plan, aborts::Mode::Complete, plan.wave);
        aborts::print_sample(label, &plan, &complete);
        let aborted = aborts::measure(binary, &plan, aborts::Mode::Aborted, plan.wave);
        aborts::print_sample(label, &plan, &aborted);
        // One client at a time, as Prometheus scrapes.
        let sequential = aborts::measure(binary, &plan, aborts::Mode::Complete, 1);
        aborts::print_sample(label, &plan, &sequential);
        for sample in [&complete, &aborted, &sequential] {
            assert_eq!(
                sample.scrapes_done, plan.scrapes,
                "{label}: only {} of {} {:?} scrapes in waves of {} read what they meant to",
                sample.scrapes_done, plan.scrapes, sample.mode, sample.wave
            );
            assert_eq!(
                sample.series, complete.series,
                "{label}: the scrape after {:?} scrapes in waves of {} has another number of \
                 endpoint series",
                sample.mode, sample.wave
            );
        }
        assert!(complete.series > 0, "{label}: no endpoint series scraped");
        results.push((label, complete, aborted, sequential));
    }
    println!("\nmemory of aborted divided by complete scrapes in the same waves:");
    for (label, complete, aborted, _) in &results {
        println!("  {label:<9} {}", aborts::ratios(complete, aborted));
    }
    println!("memory of aborted scrapes divided by complete scrapes one at a time:");
    for (label, _, aborted, sequential) in &results {
        println!("  {label:<9} {}", aborts::ratios(sequential, aborted));
    }
    if let [(_, _, ours, _), (_, _, theirs, _)] = &results[..] {
        println!(
            "this build divided by the baseline, aborted scrapes: {}",
            aborts::ratios(theirs, ours)
        );
    }
}

/// Runs the parts named by the first argument that is not an option, `sizes` or `aborts`, or
/// both when there is none.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|arg| arg == "--bench");
    let filter = args.iter().find(|arg| !arg.starts_with("--"));
    let selected = |part: &str| filter.is_none_or(|filter| part.contains(filter.as_str()));
    let candidate = common::ratewatch_bin();
    let baseline = std::env::var("RATEWATCH_BENCH_BASELINE").ok();

    let mut runs: Vec<(&str, &str)> = vec![("this", candidate)];
    if let Some(path) = baseline.as_deref() {
        runs.push(("baseline", path));
    }
    if selected("sizes") {
        run_sizes(full, &runs);
    }
    if selected("aborts") {
        run_aborts(full, &runs);
    }
}
