#!/usr/bin/env bash
# Static checks of the monitoring that ships with ratewatch: alert rules and
# their unit tests, dashboards, provisioning and the example deploy configs.
#
# Needs promtool and amtool (Debian packages prometheus and
# prometheus-alertmanager), check-jsonschema (PyPI) and python3. A missing
# tool fails the run when CI=true; otherwise its checks print SKIPPED.
#
# Usage: tests/monitoring/check.sh
# The last line is "N passed, M failed". Exits 1 when any check failed.

set -u
# Keep the worktree free of __pycache__ from the lint scripts.
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/../.." || exit 1

passed=0
failed=0
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

# run NAME COMMAND... : run one check, print PASS or FAIL with its output.
run() {
    local name=$1
    shift
    local output
    if output=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "PASS  $name"
    else
        failed=$((failed + 1))
        echo "FAIL  $name"
        printf '%s\n' "$output" | sed 's/^/      /'
    fi
}

# have TOOL CHECK_NAMES : return 0 when TOOL is installed. Otherwise fail
# (CI=true) or print a SKIPPED line, and return 1.
have() {
    local tool=$1 checks=$2
    if command -v "$tool" >/dev/null 2>&1; then
        return 0
    fi
    if [ "${CI:-}" = "true" ]; then
        failed=$((failed + 1))
        echo "FAIL  $tool is not installed, so these checks cannot run: $checks"
    else
        echo "!!!!!!!! SKIPPED: $tool is not installed, so these checks did not run: $checks !!!!!!!!"
    fi
    return 1
}

shopt -s nullglob
rule_files=(alerts/*.yml)
rule_tests=(alerts/tests/*.yml)
dashboards=(dashboards/*.json)
provisioning=(deploy/grafana/provisioning/*/*.yml)

if [ ${#rule_files[@]} -eq 0 ] || [ ${#rule_tests[@]} -eq 0 ] || [ ${#dashboards[@]} -eq 0 ]; then
    echo "FAIL  missing files: alerts/*.yml, alerts/tests/*.yml or dashboards/*.json"
    echo "0 passed, 1 failed"
    exit 1
fi

if have promtool "rule syntax, rule unit tests, dashboard query syntax, prometheus config"; then
    run "promtool check rules alerts/*.yml" promtool check rules "${rule_files[@]}"
    run "promtool test rules alerts/tests/*.yml" promtool test rules "${rule_tests[@]}"
    run "promtool check config deploy/prometheus.yml" promtool check config deploy/prometheus.yml
fi

if have amtool "alertmanager config, page and ticket routing"; then
    run "amtool check-config deploy/alertmanager.yml" amtool check-config deploy/alertmanager.yml
    run "alertmanager routes severity=page to page" \
        amtool config routes test --config.file=deploy/alertmanager.yml --verify.receivers=page \
        severity=page alertname=RatewatchUnavailableBurst
    run "alertmanager routes severity=ticket to ticket" \
        amtool config routes test --config.file=deploy/alertmanager.yml --verify.receivers=ticket \
        severity=ticket alertname=RatewatchCredentialsRejected
fi

if have check-jsonschema "dashboard schema, provisioning schema, alert rule conventions"; then
    run "dashboards match the Grafana dashboard schema" \
        check-jsonschema --schemafile tests/schemas/grafana-dashboard.schema.json "${dashboards[@]}"
    run "grafana provisioning files match their schema" \
        check-jsonschema --schemafile tests/schemas/grafana-provisioning.schema.json "${provisioning[@]}"
    run "alert rules have severity, summary, description and runbook_url" \
        check-jsonschema --schemafile tests/schemas/ratewatch-alert-rules.schema.json "${rule_files[@]}"
fi

if have python3 "dashboard lint, alert and runbook lint, dashboard query syntax"; then
    run "dashboards: description, unit, datasource variable, ranges, layout" \
        python3 tests/monitoring/lint_dashboards.py --promql-rules "$workdir/dashboard-queries.yml" "${dashboards[@]}"
    run "alerts have runbook sections, threshold rows and firing tests" \
        python3 tests/monitoring/lint_alerts.py .
    if [ -s "$workdir/dashboard-queries.yml" ] && command -v promtool >/dev/null 2>&1; then
        run "every dashboard query parses (promtool)" promtool check rules "$workdir/dashboard-queries.yml"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
