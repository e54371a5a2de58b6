//! The status page: one server-rendered table, readable without JavaScript, refreshed by the
//! browser every 10 seconds.

use std::fmt::Write;
use std::time::SystemTime;

use crate::metrics::unix_seconds;
use crate::status::Snapshot;

/// Escapes text for HTML. Names are restricted at load, but the page escapes everything it
/// prints anyway.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Formats a unix time relative to `now`: `12s ago`, `in 5m`.
fn relative(at: Option<f64>, now: f64) -> String {
    let Some(at) = at else {
        return "never".to_owned();
    };
    let delta = at - now;
    let magnitude = std::time::Duration::from_secs(delta.abs().round() as u64);
    let text = humantime::format_duration(magnitude).to_string();
    if delta >= 0.0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Describes the next probe. A slot in the past is due now, because its probe is running or
/// about to start.
fn next_probe(at: Option<f64>, now: f64) -> String {
    match at {
        Some(at) if at < now => "due now".to_owned(),
        _ => relative(at, now),
    }
}

/// Shown above the table while the daemon is not ready, because the rows alone look as if
/// probing goes on.
const NOT_READY: &str = "<p class=\"not-ready\" role=\"alert\">Not ready, so no probes are sent: ratewatch is starting, stopping, or cannot reach its shared budget store. <a href=\"-/ready\">/-/ready</a> and the log say which.</p>\n";

/// Renders the whole page; `ready` is false while the daemon sends no probes.
#[must_use]
pub(super) fn render(endpoints: &[Snapshot], now: SystemTime, ready: bool) -> String {
    let now = unix_seconds(now);
    let mut rows = String::new();
    for e in endpoints {
        let (last_run, last_success, next_run) = e.times();
        let budget: Vec<String> = e
            .budget()
            .iter()
            .map(|(window, used, budget)| format!("{used}/{budget} per {window}"))
            .collect();
        let budget = if budget.is_empty() {
            "no documented limit".to_owned()
        } else {
            budget.join(", ")
        };
        // The pause time is the first slot after the pause ends, never before the next slot,
        // and the slots before it are skipped.
        let next = match e.paused_until().filter(|&p| p > now) {
            Some(pause) => format!("paused, next {}", relative(Some(pause), now)),
            None => next_probe(next_run, now),
        };
        let _ = writeln!(
            rows,
            "<tr class=\"{health}\"><td>{api}</td><td>{endpoint}</td><td class=\"health\">{health}</td><td title=\"{detail}\">{class}</td><td>{code}</td><td>{last}</td><td>{success}</td><td>{next}</td><td>{interval}</td><td>{budget}</td><td>{credit}</td></tr>",
            health = e.health(),
            api = escape(e.api()),
            endpoint = escape(e.endpoint()),
            class = e.class().unwrap_or("-"),
            detail = escape(e.detail().unwrap_or("")),
            code = e.status_code().map_or("-".to_owned(), |c| c.to_string()),
            last = if e.probe_running() {
                format!("{}, running", relative(last_run, now))
            } else {
                relative(last_run, now)
            },
            success = relative(last_success, now),
            next = escape(&next),
            interval = escape(e.interval()),
            budget = escape(&budget),
            credit = e.credit().map_or("-".to_owned(), |c| format!("{c}")),
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="10">
<title>ratewatch status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }}
tr.up td.health {{ color: #1a7f37; font-weight: bold; }}
tr.degraded td.health {{ color: #9a6700; font-weight: bold; }}
tr.down td.health {{ color: #cf222e; font-weight: bold; }}
tr.pending td.health {{ color: #57606a; }}
p.not-ready {{ color: #cf222e; font-weight: bold; }}
</style>
</head>
<body>
<h1>ratewatch</h1>
<p>{count} endpoints. Metrics at <a href="metrics">/metrics</a>, JSON at <a href="api/v1/status">/api/v1/status</a>.</p>
{banner}<table>
<thead><tr><th>API</th><th>Endpoint</th><th>Health</th><th>Class</th><th>Code</th><th>Last probe</th><th>Last success</th><th>Next probe</th><th>Interval</th><th>Budget used</th><th>Credit</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</body>
</html>
"#,
        count = endpoints.len(),
        banner = if ready { "" } else { NOT_READY },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::classify::Class;
    use crate::status::{EndpointStatus, StatusBoard};

    #[test]
    fn escape_covers_html_specials() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    /// Returns a fresh status for each endpoint line of API `sim`.
    fn statuses_of(endpoints: &str) -> Vec<Arc<EndpointStatus>> {
        let text = format!(
            "apis:\n  - name: sim\n    base_url: http://127.0.0.1:9/\n    endpoints:\n{endpoints}"
        );
        let config =
            crate::config::parse(&text, "t.yml", &crate::secret::SecretSource::from_env()).unwrap();
        config
            .endpoints
            .iter()
            .map(|e| Arc::new(EndpointStatus::new(e)))
            .collect()
    }

    /// Renders the page of `statuses` at `now`.
    fn page_of(statuses: Vec<Arc<EndpointStatus>>, now: SystemTime, ready: bool) -> String {
        let board = StatusBoard::default();
        board.set_endpoints(statuses);
        render(&board.snapshot(), now, ready)
    }

    /// Returns the table rows of a rendered page.
    fn rows_of(page: &str) -> Vec<&str> {
        page.lines()
            .filter(|line| line.starts_with("<tr class="))
            .collect()
    }

    #[test]
    fn slow_success_renders_as_degraded() {
        let statuses = statuses_of(
            "      - { name: slow, path: s, interval: 10s, degraded_after: 500ms }\n      - { name: fast, path: f, interval: 10s, degraded_after: 500ms }\n",
        );
        let now = SystemTime::now();
        statuses[0].result(
            Class::Ok,
            Some(200),
            Duration::from_millis(750),
            now,
            "",
            |_| {},
        );
        statuses[1].result(
            Class::Ok,
            Some(200),
            Duration::from_millis(20),
            now,
            "",
            |_| {},
        );
        let page = page_of(statuses, now, true);
        let rows = rows_of(&page);
        assert_eq!(rows.len(), 2, "{page}");
        assert!(
            rows[0].starts_with(
                "<tr class=\"degraded\"><td>sim</td><td>slow</td><td class=\"health\">degraded</td>"
            ),
            "{}",
            rows[0]
        );
        assert!(
            rows[0].contains("<td title=\"took 750ms, longer than degraded_after 500ms\">ok</td>"),
            "{}",
            rows[0]
        );
        assert!(
            rows[1].starts_with(
                "<tr class=\"up\"><td>sim</td><td>fast</td><td class=\"health\">up</td>"
            ),
            "{}",
            rows[1]
        );
        assert!(page.contains("tr.degraded td.health {"), "{page}");
    }

    #[test]
    fn pause_replaces_next_probe() {
        let statuses = statuses_of(
            "      - { name: held, path: h, interval: 10s }\n      - { name: free, path: f, interval: 10s }\n",
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let next = now + Duration::from_secs(4);
        statuses[0].schedule(next, Some(now + Duration::from_secs(14)), &[]);
        statuses[1].schedule(next, Some(now - Duration::from_secs(1)), &[]);
        let page = page_of(statuses, now, true);
        let rows = rows_of(&page);
        assert!(
            rows[0].contains("<td>paused, next in 14s</td>"),
            "{}",
            rows[0]
        );
        assert!(!rows[0].contains("in 4s"), "{}", rows[0]);
        assert!(
            rows[1].contains("<td>in 4s</td>"),
            "a pause that ended: {}",
            rows[1]
        );
        assert!(!rows[1].contains("paused"), "{}", rows[1]);
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(None, 100.0), "never");
        assert_eq!(relative(Some(88.0), 100.0), "12s ago");
        assert_eq!(relative(Some(400.0), 100.0), "in 5m");
    }

    #[test]
    fn past_next_probe_is_due_now() {
        assert_eq!(next_probe(Some(98.0), 100.0), "due now");
        assert_eq!(next_probe(Some(100.0), 100.0), "in 0s");
        assert_eq!(next_probe(Some(130.0), 100.0), "in 30s");
        assert_eq!(next_probe(None, 100.0), "never");
    }

    #[test]
    fn not_ready_page_says_no_probes_are_sent() {
        let statuses = statuses_of("      - { name: a, path: a, interval: 10s }\n");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);

        let ready = page_of(statuses.clone(), now, true);
        assert!(!ready.contains("not-ready\""), "{ready}");
        let not_ready = page_of(statuses, now, false);
        assert!(
            not_ready.contains(
                "<p class=\"not-ready\" role=\"alert\">Not ready, so no probes are sent:"
            ),
            "{not_ready}"
        );
        assert!(not_ready.contains("<a href=\"-/ready\">"), "{not_ready}");
    }
}
