//! The Prometheus text format, version 0.0.4, written byte for byte as `TextEncoder` of the
//! `prometheus` crate 0.14 writes it, so the compact series need no protobuf `MetricFamily`.
//!
//! That encoder writes `# HELP` only for a non-empty help text. It escapes `\` and newline in
//! the help text, and also `"` in label values. It formats every value, integer counts
//! included, with Rust's `Display` for `f64`, which writes `NaN`, `inf` and `-inf` for the
//! special values. A histogram gets an `le="+Inf"` bucket with the sample count when its
//! buckets lack one. Samples carry no timestamp.

use std::io::Write as _;

/// The `le` label value of the bucket that counts every observation.
pub(super) const POSITIVE_INF: &str = "+Inf";

/// The type of a metric family, as the `# TYPE` line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
pub(super) fn write_header(out: &mut Vec<u8>, name: &str, help: &str, kind: Kind) {
    if !help.is_empty() {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        write_escaped(out, help, false);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_str().as_bytes());
    out.push(b'\n');
}

/// Writes one sample line: the name and `suffix` (such as `_bucket`), the labels in the order
/// given, and the value.
pub(super) fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    value: f64,
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    let mut separator = b'{';
    for (label, label_value) in labels {
        out.push(separator);
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(b"=\"");
        write_escaped(out, label_value, true);
        out.push(b'"');
        separator = b',';
    }
    if !labels.is_empty() {
        out.push(b'}');
    }
    out.push(b' ');
    write_value(out, value);
    out.push(b'\n');
}

/// Writes a sample value as `f64::to_string` formats it.
fn write_value(out: &mut Vec<u8>, value: f64) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{value}");
}

/// Writes `text` with `\` as `\\`, newline as `\n`, and, when `quote` is set, `"` as `\"`.
fn write_escaped(out: &mut Vec<u8>, text: &str, quote: bool) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    // The three bytes are ASCII, so they never occur inside a multi-byte UTF-8 sequence.
    for (i, byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if quote => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..i]);
        out.extend_from_slice(escaped);
        copied = i + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
}

#[cfg(test)]
mod tests;
