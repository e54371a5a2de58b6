"""Read PromQL queries out of Grafana dashboards and fill in template variables.

Shared by lint_dashboards.py (static checks) and live_queries.py (queries
against a running Prometheus). Python 3 standard library only.
"""

import re

# A panel whose description contains this phrase may legitimately return no
# data, for example upstream rate-limit headers from an API that sends none.
# The phrase is the marker because the dashboard schema rejects custom keys.
MAY_BE_EMPTY = "May be empty:"

# $name, ${name}, ${name:format} and the old [[name]] form.
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def iter_panels(dashboard):
    """Yield every panel of a dashboard, including panels nested in rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(panel):
    """Return (refId, expr) for each target of a panel that has an expression."""
    return [(t.get("refId", "?"), t["expr"]) for t in panel.get("targets", []) if t.get("expr")]


def annotation_queries(dashboard):
    """Return (name, expr) for each PromQL annotation of a dashboard."""
    annotations = dashboard.get("annotations", {}).get("list", [])
    return [(a["name"], a["expr"]) for a in annotations if a.get("expr")]


def may_be_empty(panel):
    """Return whether the panel's description marks it as possibly empty."""
    return MAY_BE_EMPTY in panel.get("description", "")


def builtin_values(scrape_interval_s, range_s, max_data_points=1000):
    """Return Grafana's built-in time variables for a dashboard time range.

    Grafana sets $__interval to range / max data points, but not below the
    datasource's scrape interval, and $__rate_interval to
    max($__interval + scrape interval, 4 x scrape interval), as described in
    grafana/grafana pull request 77234 (Grafana 10.2).
    """
    interval_s = max(range_s // max_data_points, scrape_interval_s)
    rate_interval_s = max(interval_s + scrape_interval_s, 4 * scrape_interval_s)
    return {
        "__interval": f"{interval_s}s",
        "__interval_ms": str(interval_s * 1000),
        "__rate_interval": f"{rate_interval_s}s",
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
        "__range_ms": str(range_s * 1000),
    }


def substitute(expr, values):
    """Replace every template variable in expr with its value from values.

    Raises KeyError naming the variable when values has no entry for it, so
    a query that uses an undeclared variable fails loudly.
    """

    def replace(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"template variable ${name} has no value; declare it or add it to the substitutions")
        return values[name]

    return _VARIABLE.sub(replace, expr)
