"""The long-running processes (`gpuledger api`, `gpuledger worker`) and the API's tokens."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from ledger.cli import wiring
from ledger.cli.output import echo_json
from ledger.cli.wiring import Context, pass_context, run
from ledger.domain.access import ROLES
from ledger.domain.errors import LedgerError
from ledger.postgres.store import PostgresStore
from ledger.service import tokens
from ledger.settings import DEFAULT_PARTITIONS
from streams.auth import client_options
from streams.publish import KafkaPublisher
from streams.topics import METER_GROUP

API_CONNECTIONS = 8
API_WORKER_CONNECTIONS = 2  # each of the API's statement and document processes
WORKER_CONNECTIONS = 2


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--ready-file", type=click.Path(dir_okay=False), help="File to create once serving.")
@click.option("--tls-cert", envvar="GPULEDGER_API_TLS_CERT", type=click.Path(dir_okay=False),
              help="Serve HTTPS with this certificate chain, PEM (env GPULEDGER_API_TLS_CERT); needs --tls-key.")
@click.option("--tls-key", envvar="GPULEDGER_API_TLS_KEY", type=click.Path(dir_okay=False),
              help="The certificate's private key, PEM (env GPULEDGER_API_TLS_KEY).")
@pass_context
def api(obj: Context, host: str, port: int, ready_file: str | None, tls_cert: str | None, tls_key: str | None) -> None:
    """Run the usage API (OpenAPI at /openapi.json, docs at /docs); HTTPS with --tls-cert
    and --tls-key, which production needs (bearer tokens must not travel in clear)."""
    # Imported here: FastAPI and uvicorn take a fifth of a second to import, which every
    # other command would pay for nothing.
    from ledger.http.app import create_app
    from ledger.http.server import serve, server_options

    server_options(host, port, tls_cert, tls_key)  # a bad certificate is refused before anything starts
    settings = obj.settings
    database_url = settings.need_database()
    open_publisher = None
    if settings.kafka_bootstrap:
        async def open_publisher():
            # Started on the first event: the API serves reads while the broker is away.
            return KafkaPublisher.lazy(settings.kafka_bootstrap, settings.usage_topic, client_options(settings.kafka_auth))
    app = create_app(
        settings,
        open_store=lambda: PostgresStore.connect(database_url, API_CONNECTIONS),
        open_publisher=open_publisher,
        ready_file=Path(ready_file) if ready_file else None,
        # Picklable: the API's statement and document processes each open their own store.
        worker_store=functools.partial(PostgresStore.connect, database_url, API_WORKER_CONNECTIONS),
    )
    serve(app, host, port, tls_cert, tls_key)


@click.command()
@click.option("--name", default="worker", show_default=True, help="Name of this worker (for logs and its data folder).")
@click.option("--ready-file", type=click.Path(dir_okay=False), help="File to create once partitions are assigned.")
@click.option("--partitions", default=DEFAULT_PARTITIONS, show_default=True, type=click.IntRange(1, 256), help="Partitions of the usage topic if the worker creates it.")
@click.option("--loglevel", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus metrics on this port (/metrics).")
@click.option("--metrics-host", default="0.0.0.0", show_default=True, help="The address the metrics listen on.")
@click.option(
    "--development-broker", is_flag=True, envvar="GPULEDGER_DEVELOPMENT_BROKER",
    help="Trust the timestamps producers set (a broker that ignores LogAppendTime, as the embedded one "
         "does; `dev up` sets it). Never in production: a member could date its own usage.",
)
@click.option("--group", default=METER_GROUP, show_default=True, help="The Kafka consumer group: the same for every worker of one ledger.")
@pass_context
def worker(obj: Context, name: str, ready_file: str | None, partitions: int, loglevel: str, metrics_port: int | None,
           metrics_host: str, development_broker: bool, group: str) -> None:
    """Run a stream worker: meter the usage topic and every member's topic into the ledger until stopped.

    Refuses to start (exit 2) when the usage topic is missing or lets producers date their
    records (message.timestamp.type is not LogAppendTime), unless --development-broker."""
    # Imported here: the Faust app takes a third of a second to import.
    from streams.app import Worker, run_worker
    from streams.metrics import serve_metrics

    settings = obj.settings
    database_url = settings.need_database()
    settings.need_kafka()
    if metrics_port is not None:
        try:
            serve_metrics(metrics_port, metrics_host)
        except OSError as exc:
            raise LedgerError(f"cannot serve metrics on port {metrics_port}: {exc.strerror or exc}") from exc
    run_worker(
        settings,
        Worker(name, settings.home / "faust" / name, partitions, Path(ready_file) if ready_file else None,
               group_id=group, trust_producer_time=development_broker),
        open_store=lambda: PostgresStore.connect(database_url, WORKER_CONNECTIONS),
        loglevel=loglevel,
    )


@click.group()
def token() -> None:
    """Bearer tokens of the usage API."""


@token.command("create")
@click.option("--member", help="The member a member token is scoped to.")
@click.option("--role", type=click.Choice(ROLES), default="member", show_default=True)
@click.option("--label", default="", help="A note on who holds it.")
@click.option("--expires-in", default="90d", show_default=True, help="Lifetime: days (90 or 90d), hours (12h) or minutes (30m); at most 5 years.")
@pass_context
def token_create(obj: Context, member: str | None, role: str, label: str, expires_in: str) -> None:
    """Create a token and print it once (only a salted hash is stored)."""
    lifetime = tokens.parse_lifetime(expires_in)

    async def create() -> tuple[str, str]:
        async with wiring.store(obj.settings) as store:
            return await tokens.create(store, role, member, label, lifetime)

    token_id, secret = run(create())
    echo_json({"id": token_id, "role": role, "member": member, "token": secret,
               "expires_in_seconds": lifetime})


@token.command("list")
@pass_context
def token_list(obj: Context) -> None:
    """Print every token (never its secret): holder, expiry, last use, revocation."""

    async def listing() -> list[dict]:
        async with wiring.store(obj.settings) as store:
            return await tokens.listing(store)

    echo_json({"tokens": run(listing())})


@token.command("revoke")
@click.argument("token_id")
@pass_context
def token_revoke(obj: Context, token_id: str) -> None:
    """Revoke a token by its id; it fails from the next request on."""

    async def revoke() -> bool:
        async with wiring.store(obj.settings) as store:
            return await tokens.revoke(store, token_id)

    echo_json({"id": token_id, "revoked": True, "newly": run(revoke())})


def register(cli: click.Group) -> None:
    for command in (api, worker, token):
        cli.add_command(command)
