#!/usr/bin/env python3
"""Run every dashboard query against a real ratewatch scraped by a real Prometheus.

Starts, on free loopback ports:
  - `ratewatch simulate` with tests/monitoring/live-scenario.yml, which
    produces a 503 burst, 429s, rate-limit headers, a falling credit and all
    probe classes except dns_error;
  - the ratewatch daemon with a generated config that probes the simulator
    about once a second;
  - Prometheus (the `prometheus` binary on PATH) scraping the daemon every
    second with alerts/*.yml loaded.

Then it waits until the 503 burst alert fires, fills in the dashboards'
template variables, and sends every panel query to /api/v1/query. Each query
must parse, and each panel must return data unless its description contains
"May be empty:". It prints how many panels returned data and ends with the
line "N passed, M failed".

Every process it starts is stopped by PID on exit. The whole run is bounded
by --timeout (default 240 s).

Usage: live_queries.py PATH/TO/ratewatch [--timeout SECONDS] [--keep]
Python 3 standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grafana_vars import (  # noqa: E402
    annotation_queries,
    builtin_values,
    iter_panels,
    may_be_empty,
    panel_queries,
    substitute,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tests" / "monitoring" / "live-scenario.yml"
BURST_ALERT = "RatewatchUnavailableBurst"
SCRAPE_INTERVAL_S = 1
# Data collected before the queries run, so that rate windows and the burst
# have samples. The scenario's burst runs from 15 s to 45 s after start.
MIN_DATA_S = 60
# Classes the scenario and config produce. dns_error needs a name lookup that
# fails, which would send a query to the system's DNS server, not loopback.
EXPECTED_CLASSES = {
    "ok", "redirect", "bad_request", "unauthorized", "forbidden", "rate_limited",
    "other_4xx", "server_error", "unavailable", "other_5xx", "timeout",
    "connect_error", "tls_error", "body_error",
}

CONFIG_TEMPLATE = """\
global:
  probe_share: 10%
  interval: 1s
  timeout: 1s
apis:
  - name: live
    base_url: http://127.0.0.1:{sim_port}/
    auth:
      bearer: {{ env: RATEWATCH_LIVE_KEY }}
    endpoints:
      # ok and unavailable (503 burst); X-RateLimit-* headers.
      - name: model
        path: frontend-api/model/
        rate_limit: 100/10s
      # ok and a falling credit; IETF RateLimit headers.
      - name: check-credit
        path: frontend-api/check-credit
        rate_limit: 100/10s
        credit: {{ json_path: $.credit }}
      # bad_request (expected) and rate_limited.
      - name: generate-key
        path: frontend-api/generate-key
        method: POST
        headers: {{ Content-Type: application/json }}
        body: "{{}}"
        expect: [400]
        rate_limit: 100/10s
      # ok and timeout.
      - name: get-xmr-wallet
        path: frontend-api/get-xmr-wallet
        rate_limit: 100/10s
      # bad_request, redirect, other_5xx and server_error.
      - name: confirm-xmr-payment
        path: frontend-api/confirm-xmr-payment
        method: POST
        headers: {{ Content-Type: application/json }}
        body: "{{}}"
        expect: [400]
        rate_limit: 100/10s
      # ok; spends the credit that check-credit reads.
      - name: inference
        path: v1/completions
        method: POST
        headers: {{ Content-Type: application/json }}
        body: '{{"model": "tiny", "prompt": "ping", "max_tokens": 1}}'
        interval: 1s
      # other_4xx: the simulator returns 404 for an unknown path.
      - name: missing-page
        path: frontend-api/no-such-page
        interval: 1s
  # body_error: the model list is longer than 8 bytes. One API may not probe the same
  # request twice, so the capped probe of the model list has an API of its own.
  - name: capped
    base_url: http://127.0.0.1:{sim_port}/
    auth:
      bearer: {{ env: RATEWATCH_LIVE_KEY }}
    endpoints:
      - name: oversized-body
        path: frontend-api/model/
        rate_limit: 100/10s
        body_limit: 8
  # unauthorized: no key.
  - name: anonymous
    base_url: http://127.0.0.1:{sim_port}/
    endpoints:
      - name: model
        path: frontend-api/model/
        rate_limit: 100/10s
  # forbidden: the scenario blocks this key.
  - name: blocked
    base_url: http://127.0.0.1:{sim_port}/
    auth:
      bearer: {{ env: RATEWATCH_LIVE_BLOCKED_KEY }}
    endpoints:
      - name: model
        path: frontend-api/model/
        rate_limit: 100/10s
  # connect_error: nothing listens on this port.
  - name: closed-port
    base_url: http://127.0.0.1:{closed_port}/
    endpoints:
      - name: model
        path: frontend-api/model/
        interval: 1s
  # tls_error: TLS to the simulator's plain HTTP port.
  - name: plain-http
    base_url: https://127.0.0.1:{sim_port}/
    endpoints:
      - name: model
        path: frontend-api/model/
        interval: 1s
"""

PROMETHEUS_TEMPLATE = """\
global:
  scrape_interval: {scrape}s
  evaluation_interval: {scrape}s
rule_files:
{rule_files}
scrape_configs:
  - job_name: ratewatch
    static_configs:
      - targets: ["127.0.0.1:{daemon_port}"]
"""


class Failure(Exception):
    """A step of the live test failed; the message names the step and the cause."""


class Run:
    """Processes started by this test, their logs and the overall deadline."""

    def __init__(self, workdir, deadline):
        self.workdir = workdir
        self.deadline = deadline
        self.processes = []

    def start(self, name, argv, env=None):
        log = open(self.workdir / f"{name}.log", "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL)
        self.processes.append((name, process, log))
        print(f"started {name} pid {process.pid}")
        return process

    def stop_all(self):
        for name, process, log in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            log.close()
            print(f"stopped {name} pid {process.pid} (exit {process.returncode})")

    def check_alive(self):
        for name, process, _ in self.processes:
            if process.poll() is not None:
                raise Failure(f"{name} exited early with {process.returncode}; log:\n{self.log_tail(name)}")

    def log_tail(self, name, lines=30):
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def remaining(self):
        return self.deadline - time.monotonic()

    def wait_for(self, description, check, limit_s, interval_s=0.5):
        """Poll check() until it returns a true value, and return that value."""
        until = min(self.deadline, time.monotonic() + limit_s)
        while time.monotonic() < until:
            self.check_alive()
            value = check()
            if value:
                return value
            time.sleep(interval_s)
        raise Failure(f"timed out after {limit_s:.0f}s waiting for {description}")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url, timeout=5):
    """Return (status, body) of a GET, or (None, error text) when it failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return None, str(error)


def prometheus_api(base, path, **params):
    """Return the decoded JSON of a Prometheus API call; the HTTP status may be an error."""
    url = f"{base}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    status, body = http_get(url)
    if status is None:
        return {"status": "error", "error": body}
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return {"status": "error", "error": f"HTTP {status}: {body[:200]}"}


def target_up(base):
    targets = prometheus_api(base, "/api/v1/targets").get("data", {}).get("activeTargets", [])
    return any(t.get("health") == "up" for t in targets)


def firing(base, alertname):
    alerts = prometheus_api(base, "/api/v1/alerts").get("data", {}).get("alerts", [])
    return [a for a in alerts if a["labels"].get("alertname") == alertname and a.get("state") == "firing"]


def start_stack(run, binary):
    """Start the simulator, the daemon and Prometheus; return Prometheus's base URL."""
    sim_port, daemon_port, prom_port, closed_port = (free_port() for _ in range(4))

    run.start("simulator", [binary, "simulate", f"--web.listen-address=127.0.0.1:{sim_port}",
                            f"--scenario={SCENARIO}"])
    run.wait_for("simulator", lambda: http_get(f"http://127.0.0.1:{sim_port}/_sim/stats")[0] == 200, 30)

    config = run.workdir / "ratewatch.yml"
    config.write_text(CONFIG_TEMPLATE.format(sim_port=sim_port, closed_port=closed_port))
    env = dict(os.environ, RATEWATCH_LIVE_KEY="live-key", RATEWATCH_LIVE_BLOCKED_KEY="blocked-key")
    check = subprocess.run([binary, "check", f"--config.file={config}"], env=env, capture_output=True,
                           text=True, timeout=30)
    if check.returncode != 0:
        raise Failure(f"ratewatch check rejected the generated config:\n{check.stdout}{check.stderr}")
    (run.workdir / "storage").mkdir()
    daemon_argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{daemon_port}",
                   f"--storage.path={run.workdir / 'storage'}"]
    run.start("daemon", daemon_argv, env=env)
    run.wait_for("daemon ready", lambda: http_get(f"http://127.0.0.1:{daemon_port}/-/ready")[0] == 200, 30)

    rule_files = "\n".join(f"  - {path}" for path in sorted((ROOT / "alerts").glob("*.yml")))
    prom_config = run.workdir / "prometheus.yml"
    prom_config.write_text(PROMETHEUS_TEMPLATE.format(scrape=SCRAPE_INTERVAL_S, rule_files=rule_files,
                                                      daemon_port=daemon_port))
    run.start("prometheus", ["prometheus", f"--config.file={prom_config}",
                             f"--storage.tsdb.path={run.workdir / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"])
    base = f"http://127.0.0.1:{prom_port}"
    run.wait_for("prometheus ready", lambda: http_get(f"{base}/-/ready")[0] == 200, 30)
    run.wait_for("ratewatch target up", lambda: target_up(base), 30)
    return base


class Tally:
    """Counts of passed and failed checks, printed as the closing line."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, message):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL  {message}")
        return ok


def query_dashboards(base, values_by_dashboard, tally):
    """Run every panel and annotation query; return (panels with data, panels)."""
    with_data = total = 0
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        values = values_by_dashboard(path.stem)
        dashboard_with_data = dashboard_total = 0
        for panel in iter_panels(dashboard):
            title = panel.get("title")
            has_data = False
            for ref, expr in panel_queries(panel):
                query = substitute(expr, values)
                answer = prometheus_api(base, "/api/v1/query", query=query)
                if not tally.check(answer.get("status") == "success",
                                   f"{path.name} {title!r} target {ref}: {answer.get('error')}\n      {query}"):
                    continue
                has_data = has_data or bool(answer["data"]["result"])
            dashboard_total += 1
            dashboard_with_data += has_data
            if not has_data:
                marked = may_be_empty(panel)
                print(f"empty {path.name} {title!r}" + (" (marked may be empty)" if marked else ""))
                tally.check(marked, f"{path.name} {title!r} returned no data and is not marked 'May be empty:'")
        for name, expr in annotation_queries(dashboard):
            answer = prometheus_api(base, "/api/v1/query", query=substitute(expr, values))
            ok = answer.get("status") == "success" and bool(answer["data"]["result"])
            tally.check(ok, f"{path.name} annotation {name!r} returned no data while {BURST_ALERT} fires")
        print(f"{path.name}: {dashboard_with_data} of {dashboard_total} panels returned data")
        with_data += dashboard_with_data
        total += dashboard_total
    return with_data, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", type=Path, help="path to the ratewatch binary")
    parser.add_argument("--timeout", type=float, default=240, help="maximum run time in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory with logs")
    args = parser.parse_args()

    if not args.binary.is_file():
        print(f"ratewatch binary not found at {args.binary}; build it with `cargo build` first")
        return 2
    if shutil.which("prometheus") is None:
        print("prometheus is not installed; install the Debian package prometheus")
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="ratewatch-live-"))
    run = Run(workdir, time.monotonic() + args.timeout)
    tally = Tally()
    try:
        base = start_stack(run, str(args.binary.resolve()))
        data_start = time.time()

        alerts = run.wait_for(f"{BURST_ALERT} to fire", lambda: firing(base, BURST_ALERT), 150, 1)
        fired_on = sorted(f"{a['labels'].get('api')}/{a['labels'].get('endpoint')}" for a in alerts)
        print(f"{BURST_ALERT} firing for {', '.join(fired_on)}")
        tally.check("live/model" in fired_on, f"{BURST_ALERT} does not fire for live/model")

        # Alerts with `for: 0m` that the scenario also triggers.
        for alertname, endpoint in (
            ("RatewatchCredentialsRejected", "anonymous/model"),
            ("RatewatchCredentialsRejected", "blocked/model"),
            ("RatewatchRateLimited", "live/generate-key"),
        ):
            on = {f"{a['labels'].get('api')}/{a['labels'].get('endpoint')}" for a in firing(base, alertname)}
            tally.check(endpoint in on, f"{alertname} does not fire for {endpoint}; fires for {sorted(on)}")

        run.wait_for(f"{MIN_DATA_S}s of data", lambda: time.time() - data_start >= MIN_DATA_S, MIN_DATA_S + 5)
        range_s = int(time.time() - data_start)

        classes = prometheus_api(base, "/api/v1/query", query="sum by (class) (ratewatch_probe_results_total) > 0")
        seen = {r["metric"]["class"] for r in classes.get("data", {}).get("result", [])}
        print(f"classes seen: {', '.join(sorted(seen))}")
        tally.check(EXPECTED_CLASSES <= seen, f"classes never seen: {', '.join(sorted(EXPECTED_CLASSES - seen))}")

        # The scenario sends rate-limit headers on model and check-credit and
        # lets the credit fall 5 per second, so these series must exist.
        for query, meaning in (
            ('ratewatch_upstream_rate_limit_remaining{api="live", endpoint="model"}',
             "X-RateLimit-Remaining of live/model"),
            ('ratewatch_upstream_rate_limit_remaining{api="live", endpoint="check-credit"}',
             "IETF RateLimit remaining of live/check-credit"),
            ('deriv(ratewatch_credit_balance{api="live", endpoint="check-credit"}[1m]) < 0',
             "falling credit balance of live/check-credit"),
        ):
            answer = prometheus_api(base, "/api/v1/query", query=query)
            found = bool(answer.get("data", {}).get("result"))
            tally.check(found, f"no series for the {meaning}: {query}")

        def values_by_dashboard(stem):
            values = builtin_values(SCRAPE_INTERVAL_S, range_s)
            values.update({"datasource": "prometheus", "instance": ".*", "api": ".*", "endpoint": ".*"})
            if stem == "ratewatch-endpoint":
                values.update({"api": "live", "endpoint": "model"})
            return values

        with_data, total = query_dashboards(base, values_by_dashboard, tally)
        print(f"panels with data: {with_data} of {total}")
    except Failure as failure:
        tally.check(False, str(failure))
    finally:
        run.stop_all()
        if args.keep or tally.failed:
            print(f"logs and configs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"{tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
