"""The collector's deployment files: its alert rules parse and name metrics the agent
exports, each runbook is a section of docs/collector.md; the DaemonSet's configuration
loads as the agent loads it, and it mounts what the agent reads and keeps."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from ledger.collect.config import config_of
from ledger.collect.metrics import Metrics
from tests.deploy.promql import STANDARD_SERIES, SUFFIXES, metric_names, parse
from tests.deploy.test_alert_rules import anchors

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "collector"
RULES = [rule for group in yaml.safe_load((FOLDER / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


def exported() -> set[str]:
    return {family.name + suffix for family in Metrics().registry.collect() for suffix in SUFFIXES[family.type]}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule["alert"])
def test_every_alert_parses_names_exported_metrics_and_has_a_runbook(rule):
    parse(rule["expr"])
    names = metric_names(rule["expr"])
    assert names and names <= exported() | STANDARD_SERIES, sorted(names - exported())
    path, _, anchor = rule["annotations"]["runbook"].partition("#")
    assert path == "docs/collector.md"
    assert anchor in anchors((ROOT / path).read_text())


def test_the_spool_and_unattributed_seconds_are_alerted_on():
    watched = {name for rule in RULES for name in metric_names(rule["expr"])}
    assert {"gpuledger_collect_spool_refused_seconds_total", "gpuledger_collect_spool_events",
            "gpuledger_collect_spool_oldest_age_seconds", "gpuledger_collect_unattributed_seconds_total",
            "gpuledger_collect_last_tick_timestamp_seconds"} <= watched


def test_the_daemonset_mounts_what_the_agent_reads_and_keeps():
    documents = {d["kind"]: d for d in yaml.safe_load_all((FOLDER / "daemonset.yaml").read_text())}
    config = config_of(tomllib.loads(documents["ConfigMap"]["data"]["collect.toml"]))
    pod = documents["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    socket_folder = str(Path(config.kubernetes.socket).parent)
    assert mounts[socket_folder]["readOnly"] is True
    assert volumes[mounts[socket_folder]["name"]]["hostPath"]["path"] == socket_folder
    spool = mounts[str(config.spool.parent)]
    assert "hostPath" in volumes[spool["name"]]  # a new pod resends what the last one held
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"][0]["containerPort"] == config.metrics_port
    env = {e["name"] for e in container["env"]}
    assert {"GPULEDGER_COLLECT_NODE", "GPULEDGER_KAFKA_SASL_USERNAME", "GPULEDGER_KAFKA_SASL_PASSWORD_FILE"} <= env


def test_the_image_holds_the_packages_the_agent_imports():
    dockerfile = (FOLDER / "Dockerfile").read_text()
    for package in ("ledger", "streams", "schemas"):
        assert f"COPY {package} {package}" in dockerfile
