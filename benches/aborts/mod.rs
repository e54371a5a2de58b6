//! Aborted scrapes: clients that read the first few KiB of `/metrics` and then close the
//! connection, against the same number of complete scrapes.
//!
//! Each mode starts a fresh daemon, runs its scrapes in waves of concurrent clients, waits,
//! and reads the daemon's memory from `/proc`. A client that closes its socket with unread data
//! makes the kernel send a reset, so the connection fails while the daemon still writes or
//! queues the rest of the scrape.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::get;
use crate::{Daemon, mib};

/// How long a client waits for the daemon to accept, read or send anything.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);

/// The request of every scrape: plain text, and the connection closed after the response, so
/// a complete scrape reads until the end of the stream.
const REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// The shape of one measurement.
pub(crate) struct Plan {
    pub(crate) endpoints: usize,
    /// Scrapes in all, in waves of `wave` concurrent clients.
    pub(crate) scrapes: usize,
    pub(crate) wave: usize,
    /// The bytes, headers included, that an aborting client reads before it closes.
    pub(crate) read_bytes: usize,
    /// The waits after the last wave at which the memory is read, each counted from the end
    /// of the one before.
    pub(crate) settle: [Duration; 2],
}

/// The way each client of a measurement ends its scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reads the whole response.
    Complete,
    /// Reads [`Plan::read_bytes`] and closes the connection.
    Aborted,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Complete => "complete",
            Mode::Aborted => "aborted",
        }
    }
}

/// The measurements of one daemon run.
pub(crate) struct Sample {
    pub(crate) mode: Mode,
    /// Concurrent clients per wave.
    pub(crate) wave: usize,
    pub(crate) rss_ready: u64,
    /// `VmRSS` after each wait of [`Plan::settle`].
    pub(crate) rss_after: [u64; 2],
    pub(crate) peak: u64,
    /// The daemon's threads after each wait.
    pub(crate) threads: [u64; 2],
    /// Scrapes whose response began with status 200 and that read what their mode reads.
    pub(crate) scrapes_done: usize,
    pub(crate) bytes_read: u64,
    /// The time from the first client's start to the last client's end.
    pub(crate) elapsed: Duration,
    /// Endpoint series in one complete scrape after the memory was read.
    pub(crate) series: usize,
}

/// Runs one scrape and returns the bytes it read, or `None` when the daemon could not be
/// reached, the status was not 200, or a complete response did not end the chunked body.
fn scrape(port: u16, mode: Mode, read_bytes: usize) -> Option<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(SOCKET_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT)).ok()?;
    stream.write_all(REQUEST).ok()?;

    let mut buffer = vec![0; 64 * 1024];
    let mut start = Vec::new();
    let mut end = Vec::new();
    let mut total = 0;
    loop {
        let want = match mode {
            Mode::Complete => buffer.len(),
            Mode::Aborted => (read_bytes - total).min(buffer.len()),
        };
        let read = stream.read(&mut buffer[..want]).ok()?;
        if read == 0 {
            break;
        }
        let data = &buffer[..read];
        if start.len() < 12 {
            start.extend_from_slice(&data[..read.min(12 - start.len())]);
        }
        end.extend_from_slice(&data[read.saturating_sub(5)..]);
        end.drain(..end.len().saturating_sub(5));
        total += read;
        if mode == Mode::Aborted && total >= read_bytes {
            // Dropping the stream closes it with unread data, which sends a reset.
            break;
        }
    }

    if !start.starts_with(b"HTTP/1.1 200") {
        return None;
    }
    let finished = match mode {
        Mode::Complete => end == b"0\r\n\r\n",
        Mode::Aborted => total >= read_bytes,
    };
    finished.then_some(total as u64)
}

/// Starts `binary`, runs the scrapes of `plan` in `mode` in waves of `wave` clients, and
/// measures.
pub(crate) fn measure(binary: &str, plan: &Plan, mode: Mode, wave: usize) -> Sample {
    let daemon = Daemon::start(binary, plan.endpoints);
    let rss_ready = daemon.status("VmRSS:");
    let port = daemon.port;
    let read_bytes = plan.read_bytes;

    let started = Instant::now();
    let mut scrapes_done = 0;
    let mut bytes_read = 0;
    let mut left = plan.scrapes;
    while left > 0 {
        let clients = left.min(wave);
        left -= clients;
        let wave: Vec<_> = (0..clients)
            .map(|_| std::thread::spawn(move || scrape(port, mode, read_bytes)))
            .collect();
        for client in wave {
            if let Some(bytes) = client.join().unwrap() {
                scrapes_done += 1;
                bytes_read += bytes;
            }
        }
    }
    let elapsed = started.elapsed();

    std::thread::sleep(plan.settle[0]);
    let threads = || crate::proc_status_number(daemon.process.id(), "Threads:");
    let first = (daemon.status("VmRSS:"), threads());
    std::thread::sleep(plan.settle[1]);
    let second = (daemon.status("VmRSS:"), threads());
    let peak = daemon.status("VmHWM:");

    // The daemon must still serve a whole scrape after its clients went away.
    let (code, body) = get(&format!("{}/metrics", daemon.base))
        .expect("the daemon did not respond to a scrape after the measured ones");
    assert_eq!(code, 200, "scrape after the measured ones");
    Sample {
        mode,
        wave,
        rss_ready,
        rss_after: [first.0, second.0],
        peak,
        threads: [first.1, second.1],
        scrapes_done,
        bytes_read,
        elapsed,
        series: crate::endpoint_series(&body),
    }
}

/// Prints one sample.
pub(crate) fn print_sample(label: &str, plan: &Plan, s: &Sample) {
    println!(
        "{label:<9} {:>8} x{:<3}: {}/{} scrapes in {:>8.2?}, {:>8.1} MiB read, RSS ready {:>6.1} MiB, \
         after {:?} {:>6.1} MiB ({} threads), after {:?} more {:>6.1} MiB ({} threads), \
         peak {:>6.1} MiB",
        s.mode.name(),
        s.wave,
        s.scrapes_done,
        plan.scrapes,
        s.elapsed,
        mib(s.bytes_read),
        mib(s.rss_ready),
        plan.settle[0],
        mib(s.rss_after[0]),
        s.threads[0],
        plan.settle[1],
        mib(s.rss_after[1]),
        s.threads[1],
        mib(s.peak),
    );
}

/// Returns the memory costs of `aborted` divided by those of `complete`, as text.
pub(crate) fn ratios(complete: &Sample, aborted: &Sample) -> String {
    #[allow(clippy::cast_precision_loss, reason = "sizes are far below 2^52")]
    let ratio = |ours: u64, theirs: u64| ours as f64 / theirs as f64;
    let rise = |s: &Sample| s.peak.saturating_sub(s.rss_ready);
    format!(
        "RSS after first wait {:.2}, RSS after second wait {:.2}, peak {:.2}, \
         peak minus RSS when ready {:.2}",
        ratio(aborted.rss_after[0], complete.rss_after[0]),
        ratio(aborted.rss_after[1], complete.rss_after[1]),
        ratio(aborted.peak, complete.peak),
        ratio(rise(aborted), rise(complete)),
    )
}
