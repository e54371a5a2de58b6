//! The probe plan as a table, printed by `ratewatch check`.

use crate::config::Config;
use crate::config::units::format_bytes;
use crate::headroom::ResetForm;
use crate::plan::{Budgets, format_duration};

const HEADINGS: [&str; 15] = [
    "API",
    "ENDPOINT",
    "METHOD",
    "LIMITS",
    "SHARE",
    "BUDGET",
    "INTERVAL",
    "FROM",
    "PROBES/DAY",
    "TIMEOUT",
    "DEGRADED AFTER",
    "BODY CAP",
    "EXPECT",
    "RESET FORM",
    "CREDIT",
];

/// The headers every probe reads, printed under the table.
const HEADERS_READ: &str = "Every endpoint reads Retry-After (after 429 and 503), X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset (read as RESET FORM), RateLimit, RateLimit-Policy, RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset; CREDIT is the JSONPath of the balance in the body.";

/// Renders one row per endpoint with its limits, budget, interval, probes per day, timeout,
/// `degraded_after` (`-` when off), body cap, expected codes and the headroom it reads, then a
/// line naming the headers read.
/// Nothing in the table comes from a secret or a URL.
#[must_use]
pub fn plan_table(config: &Config) -> String {
    let mut rows: Vec<Vec<String>> = vec![HEADINGS.iter().map(|h| (*h).to_owned()).collect()];
    for e in &config.endpoints {
        let limits: Vec<String> = e.limits.iter().map(ToString::to_string).collect();
        let limits = if limits.is_empty() {
            "none".to_owned()
        } else {
            limits.join(", ")
        };
        rows.push(vec![
            e.api.clone(),
            e.name.clone(),
            e.method.to_string(),
            limits,
            e.share.to_string(),
            Budgets(&e.plan.windows).to_string(),
            format_duration(e.plan.interval),
            e.plan.source.as_str().to_owned(),
            format_rate(e.plan.probes_per_day()),
            format_duration(e.timeout),
            e.degraded_after
                .map_or_else(|| "-".to_owned(), format_duration),
            format_bytes(e.body_limit),
            e.expect.describe(),
            reset_form(e.headroom.reset_form).to_owned(),
            e.credit
                .as_ref()
                .map_or_else(|| "-".to_owned(), |c| c.text.clone()),
        ]);
    }
    let widths: Vec<usize> = (0..HEADINGS.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(HEADERS_READ);
    out.push('\n');
    out
}

fn reset_form(form: ResetForm) -> &'static str {
    match form {
        ResetForm::Auto => "auto",
        ResetForm::DeltaSeconds => "delta_seconds",
        ResetForm::UnixSeconds => "unix_seconds",
        ResetForm::UnixMillis => "unix_millis",
    }
}

/// Formats probes per day: whole numbers from 10 up, two decimals from 0.01 up, and two
/// significant digits below that, so one probe a year shows 0.0027 rather than 0.
fn format_rate(per_day: f64) -> String {
    if per_day >= 10.0 {
        return format!("{per_day:.0}");
    }
    let decimals = if per_day >= 0.01 {
        2
    } else {
        // 0.0027 needs 4 decimals for two significant digits, because log10(0.0027) rounds
        // down to -3.
        (1.0 - per_day.log10().floor()).clamp(2.0, 12.0) as usize
    };
    let text = format!("{per_day:.decimals$}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;

    #[test]
    fn rate_shows_small_values() {
        let table = [
            (2880.0, "2880"),
            (240.0, "240"),
            (2.5, "2.5"),
            (0.1, "0.1"),
            (0.015, "0.01"),
            (1.0 / 365.0, "0.0027"),
            (86_400.0 / (2737.0 * 365.25 * 86_400.0), "0.000001"),
        ];
        for (per_day, shown) in table {
            assert_eq!(format_rate(per_day), shown, "{per_day}");
        }
    }

    #[test]
    fn table_shows_plan_columns() {
        let text = "
apis:
  - name: demo
    base_url: http://127.0.0.1:9/
    endpoints:
      - { name: credit, path: c, rate_limit: 100/hour, degraded_after: 2s, credit: { json_path: $.credit } }
      - { name: mail, path: m, method: POST, body: '{}', expect: [400], rate_limit: 1/day, rate_limit_reset: unix_millis }
";
        let config = crate::config::parse(text, "t.yml", &SecretSource::from_env()).unwrap();
        let table = plan_table(&config);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[4].contains("X-RateLimit-Reset (read as RESET FORM)"));
        assert!(lines[0].starts_with("API"));
        assert!(
            lines[0].contains("  TIMEOUT  DEGRADED AFTER  BODY CAP  "),
            "{}",
            lines[0]
        );
        let credit: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            credit,
            [
                "demo", "credit", "GET", "100/1h", "10%", "10/1h", "6m", "share", "240", "10s",
                "2s", "1MiB", "200-299", "auto", "$.credit"
            ]
        );
        let mail: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            mail,
            [
                "demo",
                "mail",
                "POST",
                "1/1d",
                "10%",
                "1/1d",
                "10days",
                "share",
                "0.1",
                "10s",
                "-",
                "1MiB",
                "400",
                "unix_millis",
                "-"
            ]
        );
    }
}
