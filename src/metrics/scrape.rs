//! A scrape written as a sequence of chunks, for streaming the response.
//!
//! The text of a scrape in `benches/scale.rs` is about 4.5 KiB per endpoint, 45 MiB at 10,000
//! endpoints. One buffer of that size is above glibc's largest mmap threshold (32 MiB on 64-bit
//! systems, mallopt(3)), so every scrape would map and fault in fresh pages. Chunks of
//! [`CHUNK_SIZE`] stay far below it. Their buffers go back to a [`ChunkPool`] once sent, so
//! the next scrape reuses them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{Encoder, TextEncoder};

use super::series::lock;
use super::{Metrics, Source};

/// The length at which a chunk of a scrape is complete. A chunk ends at the first point past
/// this length where the writer checks: after a family, after an endpoint's samples, or after
/// one sample of the families written per API. So it is rarely more than a few KiB longer.
pub(super) const CHUNK_SIZE: usize = 1 << 20;

/// The maximum number of buffers a [`ChunkPool`] keeps, about 17 MiB of chunks of
/// [`CHUNK_SIZE`]. A family is written whole before its chunks are sent, and the largest family
/// at 10,000 endpoints in `benches/scale.rs`, `ratewatch_probe_duration_seconds`, is 12.6 MiB.
const POOL_MAX: usize = 16;

/// Chunk buffers kept between scrapes. A scrape takes its buffers from here, and a buffer comes
/// back when its [`Chunk`] is dropped, on whichever thread. glibc serves each thread from an
/// arena of its own, so without the pool a scrape written on another blocking thread could not
/// reuse the memory that the last scrape freed.
#[derive(Default)]
pub(super) struct ChunkPool {
    /// Buffers waiting for a later scrape, at most [`POOL_MAX`].
    free: Mutex<Vec<Vec<u8>>>,
    /// Buffers taken and not yet put back.
    in_use: AtomicUsize,
}

impl ChunkPool {
    /// Returns an empty buffer of at least `capacity` bytes, reusing a free one when there is one.
    /// `capacity` must not be 0, because [`ChunkPool::put`] ignores empty buffers.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = lock(&self.free).pop();
        let mut buffer = reused.unwrap_or_default();
        buffer.clear();
        buffer.reserve(capacity);
        self.in_use.fetch_add(1, Ordering::Relaxed);
        buffer
    }

    /// Takes back a buffer of [`ChunkPool::take`] and keeps it for a later scrape, unless the
    /// pool is full. A buffer without capacity was not taken from here and is ignored.
    fn put(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        let mut free = lock(&self.free);
        if free.len() < POOL_MAX {
            free.push(buffer);
        }
    }

    /// Returns the number of buffers taken and not yet put back.
    #[cfg(test)]
    pub(super) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }
}

/// A complete chunk of a scrape. Dropping it returns its buffer to the pool.
pub struct Chunk {
    text: Vec<u8>,
    pool: Arc<ChunkPool>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.text
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.text));
    }
}

/// The text of a scrape being written: the complete chunks and the one being written.
pub(super) struct Chunks {
    /// The length at which a chunk is complete.
    size: usize,
    pool: Arc<ChunkPool>,
    /// Complete chunks not yet taken, in order.
    complete: Vec<Chunk>,
    /// The chunk being written.
    pub(super) current: Vec<u8>,
}

impl Drop for Chunks {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.current));
    }
}

impl Chunks {
    fn new(size: usize, pool: Arc<ChunkPool>) -> Chunks {
        let current = pool.take(Self::capacity(size));
        Chunks {
            size,
            pool,
            complete: Vec::new(),
            current,
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
        let next = self.pool.take(Self::capacity(self.size));
        self.push(next);
    }

    /// Completes the current chunk and puts `next` in its place.
    fn push(&mut self, next: Vec<u8>) {
        let text = std::mem::replace(&mut self.current, next);
        self.complete.push(Chunk {
            text,
            pool: Arc::clone(&self.pool),
        });
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
            chunks: Chunks::new(chunk_size, Arc::clone(&metrics.pool)),
            metrics,
            next: 0,
        }
    }

    /// Writes families until at least one chunk is complete or every family is written, and
    /// returns the complete chunks, with the last, shorter chunk after the last family.
    /// Returns no chunks once the whole scrape has been returned.
    pub fn next_chunks(&mut self) -> Vec<Chunk> {
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
            self.chunks.push(Vec::new());
        }
        std::mem::take(&mut self.chunks.complete)
    }
}
