//! Scalar values of the config: the probe share, durations and byte sizes.

use std::fmt;
use std::time::Duration;

use super::raw::NumberOrText;

/// Parts per million in one whole.
pub const PPM: u64 = 1_000_000;

/// The share of each documented limit that the monitor may spend, in parts per million.
/// Kept as an integer so budget arithmetic is exact: 10% of 100 is exactly 10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Share(u64);

impl Share {
    /// The default share: 10%.
    pub const DEFAULT: Share = Share(100_000);

    /// Builds a share from parts per million, rejecting zero and more than one whole.
    #[must_use]
    pub fn from_ppm(ppm: u64) -> Option<Share> {
        (1..=PPM).contains(&ppm).then_some(Share(ppm))
    }

    /// Returns the share in parts per million.
    #[must_use]
    pub const fn ppm(self) -> u64 {
        self.0
    }

    /// Returns the share as a fraction of one.
    #[must_use]
    pub fn as_fraction(self) -> f64 {
        self.0 as f64 / PPM as f64
    }

    pub(crate) fn parse(value: &NumberOrText) -> Result<Share, String> {
        let fraction = match value {
            NumberOrText::Integer(n) => *n as f64,
            NumberOrText::Float(x) => *x,
            NumberOrText::Text(text) => {
                let text = text.trim();
                match text.strip_suffix('%') {
                    Some(percent) => {
                        percent
                            .trim()
                            .parse::<f64>()
                            .map_err(|_| "not a number".to_owned())?
                            / 100.0
                    }
                    None => text.parse::<f64>().map_err(|_| "not a number".to_owned())?,
                }
            }
        };
        if !fraction.is_finite() || fraction <= 0.0 || fraction > 1.0 {
            return Err("out of range".to_owned());
        }
        let ppm = (fraction * PPM as f64).round() as u64;
        Share::from_ppm(ppm).ok_or_else(|| "smaller than 0.0001%".to_owned())
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = self.0 as f64 / 10_000.0;
        write!(f, "{percent}%")
    }
}

/// Parses a duration written like `30s`, `5m` or `1h30m`.
pub(crate) fn parse_duration(written: &str) -> Result<Duration, String> {
    let text = written.trim();
    if text.starts_with('-') {
        return Err("a duration cannot be negative".to_owned());
    }
    // humantime reports a byte offset into the trimmed text. The message counts characters of
    // the value as written, from 1.
    let leading = written.len() - written.trim_start().len();
    let character = |at: usize| {
        written
            .get(..leading + at)
            .map_or(at, |before| before.chars().count())
            + 1
    };
    humantime::parse_duration(text).map_err(|e| match e {
        humantime::DurationError::NumberExpected(at) => {
            format!("expected a number at character {}", character(at))
        }
        humantime::DurationError::InvalidCharacter(at) => {
            format!("character {} is not part of a duration", character(at))
        }
        _ => e.to_string(),
    })
}

/// Parses a byte size written as a plain number of bytes or with a unit: `B`, `KB`, `KiB`,
/// `MB`, `MiB`, `GB`, `GiB`.
pub(crate) fn parse_bytes(value: &NumberOrText) -> Result<u64, String> {
    let text = match value {
        NumberOrText::Integer(n) => return Ok(*n),
        NumberOrText::Float(_) => return Err("a byte count must be a whole number".to_owned()),
        NumberOrText::Text(text) => text.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let count: u64 = digits
        .parse()
        .map_err(|_| "the size must start with a whole number".to_owned())?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}")),
    };
    count
        .checked_mul(multiplier)
        .ok_or_else(|| "the size is too large".to_owned())
}

/// Formats a byte count with the largest binary unit that divides it exactly.
#[must_use]
pub fn format_bytes(bytes: u64) -> String {
    for (size, unit) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> NumberOrText {
        NumberOrText::Text(value.to_owned())
    }

    #[test]
    fn share_accepts_percent_and_fraction() {
        let table = [
            (text("10%"), 100_000),
            (text("0.5%"), 5000),
            (text("100%"), 1_000_000),
            (NumberOrText::Float(0.1), 100_000),
            (NumberOrText::Integer(1), 1_000_000),
            (text("0.25"), 250_000),
        ];
        for (value, ppm) in table {
            assert_eq!(Share::parse(&value).unwrap().ppm(), ppm, "{value:?}");
        }
    }

    #[test]
    fn share_rejects_out_of_range() {
        let table = [
            (text("0%"), "out of range"),
            (text("150%"), "out of range"),
            (NumberOrText::Float(-0.1), "out of range"),
            (NumberOrText::Integer(2), "out of range"),
            (text("ten"), "not a number"),
            (text("NaN%"), "out of range"),
            (text("0.00001%"), "smaller than 0.0001%"),
        ];
        for (value, reason) in table {
            assert_eq!(Share::parse(&value).unwrap_err(), reason, "{value:?}");
        }
    }

    #[test]
    fn share_displays_as_percent() {
        assert_eq!(Share::DEFAULT.to_string(), "10%");
        assert_eq!(Share::from_ppm(5000).unwrap().to_string(), "0.5%");
    }

    #[test]
    fn byte_sizes_parse_with_units() {
        assert_eq!(parse_bytes(&text("1MiB")).unwrap(), 1 << 20);
        assert_eq!(parse_bytes(&text("64 KiB")).unwrap(), 65_536);
        assert_eq!(parse_bytes(&text("2MB")).unwrap(), 2_000_000);
        assert_eq!(parse_bytes(&NumberOrText::Integer(512)).unwrap(), 512);
        assert!(
            parse_bytes(&text("1PiB"))
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_bytes(&text("MiB")).is_err());
        assert_eq!(format_bytes(1 << 20), "1MiB");
        assert_eq!(format_bytes(1000), "1000B");
    }
}
