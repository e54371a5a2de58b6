//! A scrape written as a sequence of chunks, for streaming the response.
//!
//! The text of a scrape in `benches/scale.rs` is about 4.5 KiB per endpoint, 45 MiB at 10,000
//! endpoints. One buffer of that size is above glibc's largest mmap threshold (32 MiB on 64-bit
//! systems, mallopt(3)), so every scrape would map and fault in fresh pages. Chunks of
//! [`CHUNK_SIZE`] stay far below it, and the allocator can reuse the memory of the chunks
//! already sent.

use prometheus::{Encoder, TextEncoder};

use super::{Metrics, Source};

/// The length at which a chunk of a scrape is complete. A chunk ends at the first point past
/// this length where the writer checks: after a family, after an endpoint's samples, or after
/// one sample of the families written per API. So it is rarely more than a few KiB longer.
pub(super) const CHUNK_SIZE: usize = 1 << 20;

/// The text of a scrape being written: the complete chunks and the one being written.
pub(super) struct Chunks {
    /// The length at which a chunk is complete.
    size: usize,
    /// Complete chunks not yet taken, in order.
    complete: Vec<Vec<u8>>,
    /// The chunk being written.
    pub(super) current: Vec<u8>,
}

impl Chunks {
    fn new(size: usize) -> Chunks {
        Chunks {
            size,
            complete: Vec::new(),
            current: Vec::with_capacity(Self::capacity(size)),
        }
    }

    /// Returns the capacity reserved for a chunk: its size, and room for the samples written
    /// before the next check.
    fn capacity(size: usize) -> usize {
        size + size / 16
    }

    /// Returns whether the current chunk has reached the chunk size.
    pub(super) fn is_full(&self) -> bool {
        self.current.len() >= self.size
    }

    /// Completes the current chunk and starts a new one.
    pub(super) fn cut(&mut self) {
        let next = Vec::with_capacity(Self::capacity(self.size));
        self.complete
            .push(std::mem::replace(&mut self.current, next));
    }
}

/// A scrape being written, a few families at a time.
///
/// Each call of [`Scrape::next_chunks`] writes whole families until a chunk is complete, so a
/// caller can send those chunks before the next call. Every family is written while its lock
/// is held, and only then.
pub struct Scrape {
    metrics: Metrics,
    /// The index of the next family to write.
    next: usize,
    chunks: Chunks,
}

impl Scrape {
    pub(super) fn new(metrics: Metrics, chunk_size: usize) -> Scrape {
        Scrape {
            metrics,
            next: 0,
            chunks: Chunks::new(chunk_size),
        }
    }

    /// Writes families until at least one chunk is complete or every family is written, and
    /// returns the complete chunks, with the last, shorter chunk after the last family.
    /// Returns no chunks once the whole scrape has been returned.
    pub fn next_chunks(&mut self) -> Vec<Vec<u8>> {
        let families = &self.metrics.families.0;
        while self.chunks.complete.is_empty() && self.next < families.len() {
            let (name, source) = &families[self.next];
            self.next += 1;
            match source {
                Source::Registry(registry) => {
                    // Encoding into a Vec cannot fail on I/O, and every family has valid names
                    // by construction, so an error here would be a bug in this module.
                    let encoder = TextEncoder::new();
                    if let Err(e) = encoder.encode(&registry.gather(), &mut self.chunks.current) {
                        tracing::error!(family = %name, error = %e, "cannot encode metrics");
                    }
                }
                Source::Compact(family) => family.write(&self.metrics.store, &mut self.chunks),
            }
            if self.chunks.is_full() {
                self.chunks.cut();
            }
        }
        if self.next == families.len() && !self.chunks.current.is_empty() {
            let last = std::mem::take(&mut self.chunks.current);
            self.chunks.complete.push(last);
        }
        std::mem::take(&mut self.chunks.complete)
    }
}
