"""Where the services are: explicit options, then environment, then the local stack.

Every command finds Kafka and PostgreSQL the same way: a value given on the command
line wins; else the environment (`GPULEDGER_DATABASE_URL`, `GPULEDGER_KAFKA_BOOTSTRAP`,
`GPULEDGER_USAGE_TOPIC`); else the stack that `gpuledger dev up` started under
`GPULEDGER_HOME` (default `./.gpuledger`). That is how the same commands talk to a real
deployment or to the embedded default.

This is the one settings type: the CLI, the API, the workers and the local stack all
take a `Settings`, and each setting has its one default here.

Two database roles: the application's (`GPULEDGER_DATABASE_URL`, role gpuledger_app on
the local stack), which can only append to the ledger, and the owner's
(`GPULEDGER_ADMIN_DATABASE_URL`), which runs migrations.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ledger.domain.errors import LedgerError
from schemas.wire import USAGE_TOPIC

DEFAULT_HOME = ".gpuledger"
DEFAULT_TOPIC = USAGE_TOPIC
DEFAULT_PARTITIONS = 4  # of a usage topic that gpuledger creates
STACK_FILE = "stack.json"
APP_ROLE = "gpuledger_app"


def home_dir(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("GPULEDGER_HOME") or DEFAULT_HOME).absolute()


@dataclass(frozen=True)
class KafkaAuth:
    """How the ledger's own clients authenticate to Kafka (production: SASL/SCRAM over TLS,
    one principal per service; the embedded broker: none). Environment:
    GPULEDGER_KAFKA_SECURITY_PROTOCOL, GPULEDGER_KAFKA_SASL_MECHANISM,
    GPULEDGER_KAFKA_SASL_USERNAME, GPULEDGER_KAFKA_SASL_PASSWORD_FILE, and
    GPULEDGER_KAFKA_SSL_CAFILE: the certificates (PEM) that the broker's certificate must
    chain to, instead of the system's (a deployment's own CA, deploy/tls/make-certs.sh)."""

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None


@dataclass(frozen=True)
class ApiLimits:
    """How the usage API shares itself among callers (README, "The usage API").
    Environment: GPULEDGER_API_RATE_PER_SECOND, GPULEDGER_API_RATE_BURST,
    GPULEDGER_API_STATEMENT_PROCESSES, GPULEDGER_API_QUERY_PROCESSES,
    GPULEDGER_API_DOCUMENT_PROCESSES, GPULEDGER_API_QUERIES_PER_MEMBER,
    GPULEDGER_API_QUERIES_QUEUED_PER_MEMBER, GPULEDGER_API_DOCUMENTS_PER_MEMBER,
    GPULEDGER_API_DOCUMENTS_QUEUED_PER_MEMBER."""

    rate_per_second: float = 10.0  # expensive requests a token may make per second...
    rate_burst: int = 200  # ...and at once
    statement_processes: int = 1  # processes that compute statements
    query_processes: int = 2  # processes that compute usage queries not answered from the cache
    document_processes: int = 2  # processes that make documents
    queries_per_member: int = 1  # usage queries one member (or auditor/admin token) has computed at once
    queries_queued_per_member: int = 64  # and waiting; beyond, 429
    documents_per_member: int = 1  # documents one member (or auditor/admin token) has in the making
    documents_queued_per_member: int = 16  # and waiting; beyond, 429


API_LIMIT_VARIABLES = {
    "rate_per_second": ("GPULEDGER_API_RATE_PER_SECOND", float, 0.001, 100_000),
    "rate_burst": ("GPULEDGER_API_RATE_BURST", int, 1, 1_000_000),
    "statement_processes": ("GPULEDGER_API_STATEMENT_PROCESSES", int, 1, 64),
    "query_processes": ("GPULEDGER_API_QUERY_PROCESSES", int, 1, 64),
    "queries_per_member": ("GPULEDGER_API_QUERIES_PER_MEMBER", int, 1, 64),
    "queries_queued_per_member": ("GPULEDGER_API_QUERIES_QUEUED_PER_MEMBER", int, 0, 100_000),
    "document_processes": ("GPULEDGER_API_DOCUMENT_PROCESSES", int, 1, 64),
    "documents_per_member": ("GPULEDGER_API_DOCUMENTS_PER_MEMBER", int, 1, 64),
    "documents_queued_per_member": ("GPULEDGER_API_DOCUMENTS_QUEUED_PER_MEMBER", int, 0, 100_000),
}


def api_limits() -> ApiLimits:
    """ApiLimits from the environment, each unset variable its default."""
    found = {}
    for name, (variable, kind, least, most) in API_LIMIT_VARIABLES.items():
        text = os.environ.get(variable)
        if not text:
            continue
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not least <= value <= most:
            raise LedgerError(f"{variable} must be a{'n integer' if kind is int else ' number'} from {least} to {most}, not {text!r}")
        found[name] = value
    return ApiLimits(**found)


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None
    kafka_bootstrap: str | None
    usage_topic: str = DEFAULT_TOPIC
    api_url: str | None = None
    admin_database_url: str | None = None
    kafka_auth: KafkaAuth = KafkaAuth()
    api_limits: ApiLimits = ApiLimits()
    # The workers' Prometheus endpoints, for the portal's operator page (lag, workers up).
    worker_metrics_urls: tuple[str, ...] = ()

    def need_admin_database(self) -> str:
        if not self.admin_database_url:
            return self.need_database()
        return self.admin_database_url

    def need_database(self) -> str:
        if not self.database_url:
            raise LedgerError(
                "no PostgreSQL configured: start the local stack with `gpuledger dev up`, "
                "or give --database-url / GPULEDGER_DATABASE_URL"
            )
        return self.database_url

    def need_kafka(self) -> str:
        if not self.kafka_bootstrap:
            raise LedgerError(
                "no Kafka configured: start the local stack with `gpuledger dev up`, "
                "or give --kafka-bootstrap / GPULEDGER_KAFKA_BOOTSTRAP"
            )
        return self.kafka_bootstrap


def stack_settings(home: Path) -> dict:
    """What `dev up` recorded about the running stack ({} if there is none)."""
    path = home / STACK_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def worker_metrics_urls(stack: dict) -> tuple[str, ...]:
    """GPULEDGER_WORKER_METRICS_URLS (comma-separated; a host name that resolves to several
    addresses, such as a scaled compose service, stands for each of them), else the
    metrics ports of the local stack's workers."""
    listed = os.environ.get("GPULEDGER_WORKER_METRICS_URLS")
    if listed is not None:
        return tuple(url.strip() for url in listed.split(",") if url.strip())
    return tuple(f"http://127.0.0.1:{c['port']}/metrics" for c in stack.get("components", ())
                 if c.get("role") == "worker" and c.get("port"))


def _stack_api_url(stack: dict) -> str | None:
    for component in stack.get("components", ()):
        if component.get("role") == "api" and component.get("port"):
            return f"http://127.0.0.1:{component['port']}"
    return None


def with_user(database_url: str, user: str) -> str:
    """The same PostgreSQL URL for another (password-less, trusted) user."""
    scheme, sep, rest = database_url.partition("://")
    _, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{user}@{host if at else rest}"


def _secret(variable: str) -> str | None:
    """The content of the file a variable names (a mounted secret), stripped; None if unset."""
    path = os.environ.get(variable)
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise LedgerError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from exc


def with_password(database_url: str, password: str | None) -> str:
    """The URL with its user's password set (from a secret file, never from the command line)."""
    if password is None:
        return database_url
    scheme, sep, rest = database_url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        raise LedgerError("GPULEDGER_DATABASE_PASSWORD_FILE needs a user in the database URL")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:{quote(password, safe='')}@{host}"


def kafka_auth() -> KafkaAuth:
    return KafkaAuth(
        security_protocol=os.environ.get("GPULEDGER_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
        sasl_mechanism=os.environ.get("GPULEDGER_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        username=os.environ.get("GPULEDGER_KAFKA_SASL_USERNAME"),
        password=_secret("GPULEDGER_KAFKA_SASL_PASSWORD_FILE"),
        ssl_cafile=os.environ.get("GPULEDGER_KAFKA_SSL_CAFILE") or None,
    )


def resolve(
    home: str | None = None,
    database_url: str | None = None,
    kafka_bootstrap: str | None = None,
    usage_topic: str | None = None,
) -> Settings:
    home_path = home_dir(home)
    stack = stack_settings(home_path)
    stack_owner_url = stack.get("database_url")
    stack_app_url = with_user(stack_owner_url, APP_ROLE) if stack_owner_url else None
    app_url = database_url or os.environ.get("GPULEDGER_DATABASE_URL")
    if app_url:
        app_url = with_password(app_url, _secret("GPULEDGER_DATABASE_PASSWORD_FILE"))
    return Settings(
        home=home_path,
        database_url=app_url or stack_app_url,
        admin_database_url=os.environ.get("GPULEDGER_ADMIN_DATABASE_URL")
        or (None if database_url or os.environ.get("GPULEDGER_DATABASE_URL") else stack_owner_url),
        kafka_bootstrap=kafka_bootstrap
        or os.environ.get("GPULEDGER_KAFKA_BOOTSTRAP")
        or stack.get("kafka_bootstrap"),
        usage_topic=usage_topic
        or os.environ.get("GPULEDGER_USAGE_TOPIC")
        or stack.get("usage_topic")
        or DEFAULT_TOPIC,
        api_url=os.environ.get("GPULEDGER_API_URL") or _stack_api_url(stack),
        kafka_auth=kafka_auth(),
        api_limits=api_limits(),
        worker_metrics_urls=worker_metrics_urls(stack),
    )
