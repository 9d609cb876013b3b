"""The deployment files parse, the dashboard only asks for metrics the code exports, and
compose mounts every secret a service is told of.

No services: the files are parsed and cross-checked against the metric objects of
streams/metrics.py (workers) and ledger/http/metrics.py (usage API).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.promql import exported_series, metric_names

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gpuledger-dashboard.json"
COMPOSE = ROOT / "docker-compose.yml"

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
    # The API answers HTTPS only: Prometheus trusts the deployment's CA, which it mounts.
    assert jobs["gpuledger-api"]["scheme"] == "https"
    ca_file = jobs["gpuledger-api"]["tls_config"]["ca_file"]
    assert ca_file == "/run/secrets/tls_ca" and "tls_ca" in compose["services"]["prometheus"]["secrets"]


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


# -- production honours the design (docs/operations.md) ------------------------------------

CERTS = ROOT / "deploy" / "tls" / "certs"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_api_and_workers_connect_as_the_append_only_role_with_a_secret_password():
    services = compose()["services"]
    for name in ("worker", "api", "topics", "ingest"):
        env = services[name]["environment"]
        assert env["GPULEDGER_DATABASE_URL"].startswith("postgresql://gpuledger_app@"), name
        assert ":" not in env["GPULEDGER_DATABASE_URL"].split("://")[1].split("@")[0], "no password in a URL"
        assert env["GPULEDGER_DATABASE_PASSWORD_FILE"] == "/run/secrets/app_db_password"
        assert "app_db_password" in services[name]["secrets"]
        assert "GPULEDGER_ADMIN_DATABASE_URL" not in env
    migrate = " ".join(services["migrate"]["command"])
    assert "GPULEDGER_ADMIN_DATABASE_URL" in migrate and "--app-password-file /run/secrets/app_db_password" in migrate
    assert "POSTGRES_PASSWORD" not in services["postgres"]["environment"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/pg_owner_password"


def test_every_secret_is_declared_and_has_an_example_and_none_is_committed():
    document = compose()
    declared = set(document["secrets"])
    for name, service in document["services"].items():
        assert set(service.get("secrets", [])) <= declared, name
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for name, secret in document["secrets"].items():
        path = ROOT / secret["file"]
        if path.parent == CERTS:  # made by deploy/tls/make-certs.sh (tests/deploy/test_tls.py)
            assert "deploy/tls/certs/" in ignored, "certificates and keys are never committed"
            continue
        assert path.parent == ROOT / "deploy" / "secrets", name
        assert path.with_name(path.name + ".example").is_file(), name
        assert not path.exists() or "replace-me" in path.read_text(), f"a real secret is in the tree: {path}"


def test_each_member_has_a_password_file_mounted_for_kafka_setup():
    setup = compose()["services"]["kafka-setup"]
    assert "./deploy/secrets/kafka-members:/run/secrets/kafka-members:ro" in setup["volumes"]
    folder = ROOT / "deploy" / "secrets" / "kafka-members"
    for member in setup["environment"]["MEMBERS"].split():
        assert (folder / f"{member}.example").is_file(), member
        path = folder / member
        assert not path.exists() or "replace-me" in path.read_text(), f"a real secret is in the tree: {path}"


@pytest.mark.heavy  # its secrets are made by openssl
def test_every_file_a_service_is_told_of_is_mounted(secrets):
    """Given each service's *_FILE settings and TLS options, then each names a secret that
    service mounts (a missing one stops the command before it starts)."""
    for name, service in compose()["services"].items():
        mounted = {f"/run/secrets/{secret}" for secret in service.get("secrets", [])}
        wanted = [value for key, value in (service.get("environment") or {}).items()
                  if key.endswith("_FILE") or key.endswith("_CAFILE")]
        command = service.get("command") or []
        wanted += [command[i + 1] for i, word in enumerate(command) if word in ("--tls-cert", "--tls-key")]
        for path in wanted:
            assert path in mounted, f"{name}: {path} is not mounted"
            assert (secrets / Path(path).name).is_file(), path


def test_migrations_need_no_kafka_and_the_api_serves_https():
    services = compose()["services"]
    assert not [key for key in services["migrate"]["environment"] if "KAFKA" in key]
    command = services["api"]["command"]
    assert "--tls-cert" in command and "--tls-key" in command
    port = command[command.index("--port") + 1]
    assert services["api"]["ports"] == [f"{port}:{port}"]


@pytest.mark.heavy  # bash reads them
@pytest.mark.parametrize("script", ["kafka/acls.sh", "kafka/kafka-entrypoint.sh", "tls/make-certs.sh"])
def test_the_deployment_scripts_are_valid_bash(script):
    checked = subprocess.run(["bash", "-n", str(ROOT / "deploy" / script)], capture_output=True)
    assert checked.returncode == 0, checked.stderr.decode()


def test_the_image_holds_every_package_the_cli_imports():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for package in ("ledger", "streams", "schemas", "auditor"):
        assert f"COPY {package} {package}" in dockerfile
