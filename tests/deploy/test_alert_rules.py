"""The alert rules load as Prometheus would load them (the check promtool makes, without
promtool): the file's shape, every expression through a PromQL parser, every metric
exported by the code, every runbook a section of docs/operations.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.deploy.promql import STANDARD_SERIES, exported_series, metric_names, parse

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_the_file_has_the_shape_prometheus_loads():
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    alerts = [rule["alert"] for rule in rules()]
    assert len(alerts) == len(set(alerts))
    for rule in rules():
        assert set(rule) <= RULE_KEYS, rule["alert"]
        assert re.fullmatch(r"Gpuledger[A-Z][A-Za-z]+", rule["alert"])
        assert "for" not in rule or DURATION.fullmatch(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_the_alerts_an_operator_of_a_ledger_needs_are_there():
    watched = {name for rule in rules() for name in metric_names(rule["expr"])}
    assert {
        "gpuledger_consumer_lag_records",  # consumer lag
        "gpuledger_events_total",  # dead-letter rate by reason
        "process_start_time_seconds",  # worker restarts
        "gpuledger_http_requests_total",  # statement-close failures
        "gpuledger_books_closed_through_end_timestamp_seconds",  # a close that never ran
        "gpuledger_store_retries_total",
    } <= watched
    by_reason = [r for r in rules() if 'outcome!~"accepted|duplicate"' in r["expr"]]
    assert by_reason and "sum by (outcome)" in by_reason[0]["expr"]


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_expression_parses_and_names_exported_metrics(rule):
    parse(rule["expr"])  # ValueError with the parser's message otherwise
    names = metric_names(rule["expr"])
    assert names and names <= exported_series() | STANDARD_SERIES, sorted(names - exported_series())


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_runbook_is_a_section_of_the_operations_guide(rule):
    path, _, anchor = rule["annotations"]["runbook"].partition("#")
    assert path == "docs/operations.md"
    assert anchor in anchors(OPERATIONS.read_text()), anchor


def test_a_broken_expression_is_refused():
    with pytest.raises(ValueError):
        parse("sum(rate(gpuledger_events_total[5m])")


def test_prometheus_loads_the_rules_file():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "./deploy/alerts.yml:/etc/prometheus/alerts.yml:ro" in compose["services"]["prometheus"]["volumes"]

