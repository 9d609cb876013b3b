"""The deployment as compose would run it, without Docker: the certificates that
deploy/tls/make-certs.sh makes, /run/secrets as compose mounts it, the broker's
configuration as its entrypoint renders it, each service's environment."""

from __future__ import annotations

import os
import secrets as random
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
KAFKA_DIR = ROOT / "deploy" / "kafka"
MAKE_CERTS = ROOT / "deploy" / "tls" / "make-certs.sh"
CERTS_DIR = Path("deploy/tls/certs")
SECRETS = "/run/secrets/"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def members() -> list[str]:
    return compose()["services"]["kafka-setup"]["environment"]["MEMBERS"].split()


def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file as Kafka reads ours (key=value lines, # comments)."""
    properties = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            assert key.strip() not in properties, f"{key} is set twice"
            properties[key.strip()] = value.strip()
    return properties


def make_certs(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(MAKE_CERTS), "--out", str(out), *args],
                          capture_output=True, text=True, check=True)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    """A deployment's certificates, made by deploy/tls/make-certs.sh (also for 127.0.0.1)."""
    out = tmp_path_factory.mktemp("tls") / "certs"
    make_certs(out, "--api-host", "127.0.0.1")
    return out


@pytest.fixture(scope="session")
def secrets(certs, tmp_path_factory) -> Path:
    """/run/secrets as compose mounts it: every declared secret (passwords made up,
    certificates from make-certs.sh) and the members' passwords."""
    folder = tmp_path_factory.mktemp("secrets")
    for name, secret in compose()["secrets"].items():
        source = Path(secret["file"])
        if source.parent == CERTS_DIR:
            shutil.copy(certs / source.name, folder / name)
        else:
            (folder / name).write_text(random.token_hex(32) + "\n")
    (folder / "kafka-members").mkdir()
    for member in members():
        (folder / "kafka-members" / member).write_text(random.token_hex(32) + "\n")
    return folder


def service_environment(service: str, secrets: Path) -> dict[str, str]:
    """A compose service's environment, its mounted secrets' paths made local."""
    environment = compose()["services"][service]["environment"]
    return {key: str(value).replace(SECRETS, f"{secrets}/") for key, value in environment.items()}


def render_broker_config(secrets: Path, out: Path, public_host: str = "kafka.alliance.example") -> dict[str, str]:
    """server.properties as the broker reads it: rendered by kafka-entrypoint.sh."""
    environment = {
        "PATH": os.environ["PATH"], "GPULEDGER_SECRETS": str(secrets),
        "KAFKA_TEMPLATE": str(KAFKA_DIR / "server.properties"), "KAFKA_CONFIG": str(out),
        "KAFKA_PUBLIC_HOST": public_host,
    }
    subprocess.run(["bash", str(KAFKA_DIR / "kafka-entrypoint.sh"), "--render-only"],
                   env=environment, capture_output=True, text=True, check=True)
    return read_properties(out)


@pytest.fixture(scope="session")
def broker_config(secrets, tmp_path_factory) -> dict[str, str]:
    return render_broker_config(secrets, tmp_path_factory.mktemp("kafka") / "server.properties")
