#!/usr/bin/env python3
"""Check the ratewatch dashboards for conventions the JSON schema cannot express.

Every panel has a description, a unit and PromQL targets that use the
`${datasource}` variable. Range selectors in rate-like functions use
$__rate_interval or $__range. The dashboard declares the template variables
datasource, instance, api and endpoint, and no two panels overlap.

With --promql-rules FILE, it also writes every query, with template
variables filled in, as a Prometheus recording rule file, so that
`promtool check rules FILE` can check that each query parses.

Usage: lint_dashboards.py [--promql-rules FILE] DASHBOARD.json...
Exits 1 and prints one line per problem when any check fails.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from grafana_vars import (
    MAY_BE_EMPTY,
    annotation_queries,
    builtin_values,
    iter_panels,
    panel_queries,
    substitute,
)

REQUIRED_VARIABLES = ("datasource", "instance", "api", "endpoint")
DATASOURCE_UID = "${datasource}"

# Functions whose range must follow the dashboard's resolution or time range.
RATE_FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "changes", "resets"}
DASHBOARD_RANGES = {"$__rate_interval", "$__range", "$__interval"}
# Functions that may use a fixed range. ratewatch uses them only for the credit
# forecast, whose 6h range matches RatewatchCreditExhaustionForecast.
FIXED_RANGE_FUNCTIONS = {"predict_linear", "deriv"}

_FUNCTION_NAME = re.compile(r"([a-z_]+)\s*$")


def enclosing_function(expr, position):
    """Return the name of the innermost function call around expr[position]."""
    depth = 0
    for i in range(position - 1, -1, -1):
        if expr[i] == ")":
            depth += 1
        elif expr[i] == "(":
            if depth == 0:
                match = _FUNCTION_NAME.search(expr[:i])
                return match.group(1) if match else ""
            depth -= 1
    return ""


def range_problems(expr):
    """Return a message for each range selector that breaks the range rules."""
    problems = []
    for match in re.finditer(r"\[([^\]]+)\]", expr):
        selector_range = match.group(1).split(":")[0].strip()
        function = enclosing_function(expr, match.start())
        if selector_range in DASHBOARD_RANGES:
            continue
        if function in FIXED_RANGE_FUNCTIONS:
            continue
        if function in RATE_FUNCTIONS:
            problems.append(f"{function}() over [{selector_range}] must use $__rate_interval or $__range")
        else:
            problems.append(f"range [{selector_range}] in {function or 'selector'}() is fixed; use a dashboard range")
    return problems


def datasource_problems(node, path="$"):
    """Return a message for every datasource reference that is not the variable."""
    problems = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict) and value.get("uid") != DATASOURCE_UID:
                problems.append(f"{path}.datasource has uid {value.get('uid')!r}, expected {DATASOURCE_UID!r}")
            problems.extend(datasource_problems(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems.extend(datasource_problems(value, f"{path}[{i}]"))
    return problems


def panel_problems(panel):
    """Return a message for each convention the panel breaks."""
    problems = []
    description = panel.get("description", "").strip()
    if not description:
        problems.append("has no description")
    if re.search(r"may be empty", description, re.IGNORECASE) and MAY_BE_EMPTY not in description:
        problems.append(f"marks itself empty with other wording; use exactly {MAY_BE_EMPTY!r}")
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    if not unit:
        problems.append("has no unit in fieldConfig.defaults.unit")
    queries = panel_queries(panel)
    if not queries:
        problems.append("has no target with an expr")
    for ref, expr in queries:
        problems.extend(f"target {ref}: {problem}" for problem in range_problems(expr))
    return problems


def overlap_problems(panels):
    """Return a message for each pair of panels whose grid positions overlap."""
    problems = []
    owner = {}
    for panel in panels:
        title = panel.get("title")
        grid = panel.get("gridPos")
        if not grid:
            problems.append(f"panel {title!r} has no gridPos")
            continue
        cells = [
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        ]
        for other in sorted({owner[cell] for cell in cells if cell in owner}):
            problems.append(f"panels {other!r} and {title!r} overlap")
        owner.update((cell, title) for cell in cells)
    return problems


def dashboard_problems(dashboard):
    """Return a message for each convention the dashboard breaks."""
    problems = []
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    for name in REQUIRED_VARIABLES:
        if name not in variables:
            problems.append(f"template variable {name!r} is missing")
    if variables.get("datasource", {}).get("type") != "datasource":
        problems.append("template variable 'datasource' must have type 'datasource'")
    problems.extend(datasource_problems(dashboard))

    panels = list(iter_panels(dashboard))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids are not unique: {ids}")
    for panel in panels:
        problems.extend(f"panel {panel.get('title')!r} {problem}" for problem in panel_problems(panel))
    problems.extend(overlap_problems(panels))

    for name, expr in annotation_queries(dashboard):
        problems.extend(f"annotation {name!r}: {problem}" for problem in range_problems(expr))
    return problems


def recording_rules(dashboards):
    """Return a rule file in YAML with one recording rule per query.

    Template variables are filled in with values that parse. JSON strings are
    valid YAML scalars, so json.dumps quotes each expression.
    """
    values = builtin_values(scrape_interval_s=15, range_s=3600)
    values.update({"datasource": "prometheus", "instance": ".*", "api": ".*", "endpoint": ".*"})
    lines = ["groups:", "  - name: dashboard-queries", "    rules:"]
    for path, dashboard in dashboards:
        queries = [(p.get("title"), expr) for p in iter_panels(dashboard) for _, expr in panel_queries(p)]
        queries += annotation_queries(dashboard)
        for number, (title, expr) in enumerate(queries):
            lines.append(f"      # {path.name}: {title}")
            lines.append(f"      - record: dashboard:query_{path.stem.replace('-', '_')}:{number}")
            lines.append(f"        expr: {json.dumps(substitute(expr, values))}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboards", nargs="+", type=Path)
    parser.add_argument("--promql-rules", type=Path, help="write queries as a rule file for promtool")
    args = parser.parse_args()

    dashboards = []
    failures = 0
    for path in args.dashboards:
        dashboard = json.loads(path.read_text())
        dashboards.append((path, dashboard))
        for problem in dashboard_problems(dashboard):
            print(f"{path}: {problem}")
            failures += 1

    if args.promql_rules:
        args.promql_rules.write_text(recording_rules(dashboards))

    panels = sum(len(list(iter_panels(d))) for _, d in dashboards)
    print(f"checked {panels} panels in {len(dashboards)} dashboards, {failures} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
