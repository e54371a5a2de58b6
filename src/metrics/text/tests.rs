//! The text writer against `prometheus::TextEncoder` on the same families.

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use super::*;

/// Label values with each character the text format escapes, a multi-byte one, and none.
const LABEL_VALUES: [&str; 8] = [
    "plain",
    "",
    "back\\slash",
    "new\nline",
    "double\"quote",
    "\\\"\n\\\\n",
    "caf\u{e9} \u{1f600}",
    "trailing\\",
];

/// Values that `Display` for `f64` writes in forms of its own.
const VALUES: [f64; 16] = [
    0.0,
    -0.0,
    1.0,
    0.1,
    -2.5,
    1e21,
    1e-7,
    123_456_789.0,
    f64::MAX,
    f64::MIN_POSITIVE,
    9_007_199_254_740_993.0,
    18_446_744_073_709_551_615.0,
    f64::NAN,
    -f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

fn encode(family: MetricFamily) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&[family], &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    let pairs = labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect();
    let mut metric = Metric::from_label(pairs);
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    metric.set_gauge(gauge);
    metric
}

fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn header_escapes_help_like_encoder() {
    let helps = [
        "Plain help.",
        "",
        "a\\b",
        "two\nlines",
        "a \"quoted\" word",
        "\\n",
    ];
    for help in helps {
        let expected = encode(family(
            "x_total",
            help,
            MetricType::GAUGE,
            vec![gauge(&[], 1.0)],
        ));
        let actual = written(|out| {
            write_header(out, "x_total", help, Kind::Gauge);
            write_sample(out, "x_total", "", &[], 1.0);
        });
        assert_eq!(actual, expected, "help {help:?}");
    }
}

#[test]
fn header_names_each_kind_like_encoder() {
    let mut counter = Counter::default();
    counter.set_value(3.0);
    let mut metric = Metric::default();
    metric.set_counter(counter);
    let expected = encode(family("c_total", "C.", MetricType::COUNTER, vec![metric]));
    let actual = written(|out| {
        write_header(out, "c_total", "C.", Kind::Counter);
        write_sample(out, "c_total", "", &[], 3.0);
    });
    assert_eq!(actual, expected);

    let header = written(|out| write_header(out, "h", "H.", Kind::Histogram));
    assert_eq!(header, "# HELP h H.\n# TYPE h histogram\n");
}

#[test]
fn sample_escapes_label_values_like_encoder() {
    for value in LABEL_VALUES {
        let labels = [("api", value), ("endpoint", "e"), ("window", value)];
        let expected = encode(family(
            "g",
            "G.",
            MetricType::GAUGE,
            vec![gauge(&labels, 2.0)],
        ));
        let actual = written(|out| {
            write_header(out, "g", "G.", Kind::Gauge);
            write_sample(out, "g", "", &labels, 2.0);
        });
        assert_eq!(actual, expected, "label value {value:?}");
    }
}

#[test]
fn sample_formats_values_like_encoder() {
    for value in VALUES {
        let labels = [("api", "a")];
        let expected = encode(family(
            "g",
            "G.",
            MetricType::GAUGE,
            vec![gauge(&labels, value)],
        ));
        let actual = written(|out| {
            write_header(out, "g", "G.", Kind::Gauge);
            write_sample(out, "g", "", &labels, value);
        });
        assert_eq!(actual, expected, "value {value:?}");
    }
}

#[test]
fn special_values_are_written_as_display_writes_them() {
    let line = |value: f64| written(|out| write_sample(out, "g", "", &[], value));
    assert_eq!(line(f64::NAN), "g NaN\n");
    assert_eq!(line(f64::INFINITY), "g inf\n");
    assert_eq!(line(f64::NEG_INFINITY), "g -inf\n");
    assert_eq!(line(-0.0), "g -0\n");
    assert_eq!(line(1e21), "g 1000000000000000000000\n");
}

#[test]
fn sample_suffix_follows_name() {
    let labels = [("api", "a"), ("le", POSITIVE_INF)];
    let line = written(|out| write_sample(out, "h", "_bucket", &labels, 4.0));
    assert_eq!(line, "h_bucket{api=\"a\",le=\"+Inf\"} 4\n");
}
