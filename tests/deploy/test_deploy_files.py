"""The deployment files parse, and the dashboard only asks for metrics the code exports.

No services: the files are parsed and cross-checked against the metric objects of
streams/metrics.py (workers) and ledger/http/metrics.py (usage API).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import ledger.http.metrics
import streams.metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gpuledger-dashboard.json"
COMPOSE = ROOT / "docker-compose.yml"

# The series names each metric type exposes (the `_created` series are left out on purpose:
# a dashboard has no use for them).
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
# PromQL words that look like identifiers but are not metric names.
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "irate", "increase", "histogram_quantile", "max", "min",
    "avg", "count", "topk", "bottomk", "deriv", "delta", "le", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "offset", "bool", "abs", "clamp_min", "clamp_max",
}


def exported_series() -> set[str]:
    names = set()
    for module in (streams.metrics, ledger.http.metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def dashboard_expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows' panels included."""
    found = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((panel.get("title", "?"), target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found


def metric_names(expr: str) -> set[str]:
    """Identifiers of an expression that name series: not inside {...} matchers, by (...)
    label lists or [...] ranges, and not PromQL keywords, functions or label names."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_matchers)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", without_groupings))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("$")}


def test_exported_series_are_what_the_code_defines():
    series = exported_series()
    assert {"gpuledger_events_total", "gpuledger_flush_seconds_bucket",
            "gpuledger_committed_position", "gpuledger_http_requests_total",
            "gpuledger_http_request_seconds_bucket", "gpuledger_api_events_accepted_total"} <= series


def test_prometheus_config_scrapes_the_api_and_the_workers():
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"gpuledger-api", "gpuledger-worker"}
    for job in jobs.values():
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job.get("static_configs") or job.get("dns_sd_configs"), job
    # The workers' port is the one docker-compose.yml passes to --metrics-port.
    compose = yaml.safe_load(COMPOSE.read_text())
    worker_command = compose["services"]["worker"]["command"]
    port = int(worker_command[worker_command.index("--metrics-port") + 1])
    assert [sd["port"] for sd in jobs["gpuledger-worker"]["dns_sd_configs"]] == [port]
    api_command = compose["services"]["api"]["command"]
    api_port = api_command[api_command.index("--port") + 1]
    assert jobs["gpuledger-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]


def test_dashboard_parses_and_covers_the_asked_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) >= 10
    text = "\n".join(expr for _, expr in expressions)
    for needed in (
        "sum by (outcome) (rate(gpuledger_events_total",
        'gpuledger_events_total{outcome!~"accepted|duplicate"}',
        "histogram_quantile(0.5, sum by (le) (rate(gpuledger_batch_events_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(gpuledger_batch_events_bucket",
        "histogram_quantile(0.5, sum by (le) (rate(gpuledger_flush_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(gpuledger_flush_seconds_bucket",
        "max by (topic, partition) (gpuledger_committed_position)",
        "sum by (route, status) (rate(gpuledger_http_requests_total",
        "histogram_quantile(0.99, sum by (le, route, method) (rate(gpuledger_http_request_seconds_bucket",
    ):
        assert needed in text, needed
    # Every panel has a unique id; every query names its datasource variable.
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert any(v["name"] == "datasource" for v in dashboard["templating"]["list"])


@pytest.mark.parametrize(
    "title, expr",
    dashboard_expressions(json.loads(DASHBOARD.read_text())),
    ids=lambda value: value if len(value) < 40 else value[:40],
)
def test_every_dashboard_metric_exists(title, expr):
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    names = metric_names(expr)
    assert names, f"{title}: no metric in {expr}"
    missing = names - exported_series()
    assert not missing, f"{title}: {sorted(missing)} are not exported by streams/metrics.py or ledger/http/metrics.py"


def test_metric_names_are_found_in_promql():
    assert metric_names(
        'sum by (route) (rate(gpuledger_http_requests_total{status=~"5.."}[$__rate_interval]))'
        " / sum(rate(gpuledger_flush_seconds_count[5m]))"
    ) == {"gpuledger_http_requests_total", "gpuledger_flush_seconds_count"}
    assert metric_names("histogram_quantile(0.99, sum by (le, route) (rate(x_bucket[1m])))") == {"x_bucket"}


def test_docker_compose_parses_and_names_the_services():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"kafka", "postgres", "migrate", "worker"} <= set(services)
    for name in ("migrate", "worker"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    prometheus = services.get("prometheus")
    if prometheus is not None:
        assert any("deploy/prometheus.yml" in volume for volume in prometheus["volumes"])
