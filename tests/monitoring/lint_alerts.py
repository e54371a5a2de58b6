#!/usr/bin/env python3
"""Check that alerts, runbooks and alert tests stay in step.

For every alert in alerts/*.yml:
  - runbook_url is docs/runbooks.md#<alert name in lower case>, and
    docs/runbooks.md has a `## <alert name>` section and a row in its
    threshold table;
  - alerts/tests/*.yml has a test case that expects the alert to fire.
Every `## Ratewatch...` section of docs/runbooks.md belongs to an alert.

The structure of each rule (severity, annotations) is checked separately
against tests/schemas/ratewatch-alert-rules.schema.json. This script reads
the files as text with patterns that fit their layout, so that it needs only
the Python standard library.

Usage: lint_alerts.py REPOSITORY_ROOT
"""

import re
import sys
from pathlib import Path

ALERT = re.compile(r"^\s*- alert:\s*(\w+)\s*$", re.MULTILINE)
RUNBOOK_URL = re.compile(r"^\s*runbook_url:\s*(\S+)\s*$", re.MULTILINE)
SECTION = re.compile(r"^## (Ratewatch\w+)\s*$", re.MULTILINE)
TABLE_ROW = re.compile(r"^\| (Ratewatch\w+) \|", re.MULTILINE)
# A test case that expects the alert to fire: `alertname: X` followed by an
# exp_alerts list whose first entry has labels.
FIRING_CASE = re.compile(r"alertname:\s*(\w+)\s*\n\s*exp_alerts:\s*\n\s*- exp_labels:")


def alert_runbook_urls(rule_text):
    """Return {alert name: runbook_url or None} for one rule file."""
    starts = [(m.start(), m.group(1)) for m in ALERT.finditer(rule_text)]
    urls = {}
    for index, (start, name) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(rule_text)
        match = RUNBOOK_URL.search(rule_text, start, end)
        urls[name] = match.group(1) if match else None
    return urls


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    urls = {}
    for path in sorted((root / "alerts").glob("*.yml")):
        urls.update(alert_runbook_urls(path.read_text()))

    runbooks = (root / "docs" / "runbooks.md").read_text()
    sections = set(SECTION.findall(runbooks))
    table_rows = set(TABLE_ROW.findall(runbooks))
    tests = "\n".join(p.read_text() for p in sorted((root / "alerts" / "tests").glob("*.yml")))
    fired = set(FIRING_CASE.findall(tests))

    problems = []
    for name, url in sorted(urls.items()):
        expected = f"docs/runbooks.md#{name.lower()}"
        if url != expected:
            problems.append(f"{name}: runbook_url is {url!r}, expected {expected!r}")
        if name not in sections:
            problems.append(f"{name}: docs/runbooks.md has no '## {name}' section")
        if name not in table_rows:
            problems.append(f"{name}: docs/runbooks.md threshold table has no row")
        if name not in fired:
            problems.append(f"{name}: no test case in alerts/tests expects it to fire")
    for name in sorted(sections - set(urls)):
        problems.append(f"docs/runbooks.md: section '## {name}' matches no alert")

    for problem in problems:
        print(problem)
    print(f"checked {len(urls)} alerts, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
