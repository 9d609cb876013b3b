"""`gpuledger dev ...`: the whole stack on this machine (embedded broker, PostgreSQL, workers, API)."""

from __future__ import annotations

import logging
import sys

import click

from ledger.cli.output import echo_json, notice
from ledger.cli.wiring import Context, pass_context, run
from ledger.dev import Stack, free_port
from ledger.dev.supervisor import SUPERVISOR, Supervisor
from ledger.postgres.catalog import load_catalog
from ledger.postgres.connection import connection
from ledger.postgres.intake import forget_positions
from ledger.postgres.schema import migrate
from ledger.settings import DEFAULT_PARTITIONS, Settings
from streams.auth import client_options
from streams.topics import ensure_topics, usage_topics_of

WORKER_START_SECONDS = 120
API_START_SECONDS = 60
NEXT_STEPS = (
    "gpuledger is up. Try:\n"
    "  gpuledger catalog load CATALOG.toml\n"
    "  gpuledger ingest EVENTS.ndjson --wait\n"
    "  gpuledger settle 2026-10\n"
    "  gpuledger dev status | gpuledger dev env | gpuledger dev down"
)


def _cli_argv(settings: Settings, *command: str) -> list[str]:
    """A gpuledger command bound to this stack's services, as a process to start."""
    return [
        sys.executable, "-m", "ledger.cli", "--home", str(settings.home),
        "--database-url", settings.need_database(), "--kafka-bootstrap", settings.need_kafka(),
        "--topic", settings.usage_topic, *command,
    ]


async def _prepare(settings: Settings, partitions: int, fresh_broker: bool) -> None:
    """Migrate the schema (as the owner) and make sure the usage topic and the topic of
    every member the catalog has exist."""
    async with connection(settings.need_admin_database()) as conn:
        applied = await migrate(conn)
        if applied:
            notice(f"applied migrations: {', '.join(applied)}")
        if fresh_broker:
            # The embedded broker keeps nothing across a restart: its topics start again
            # at offset 0, so positions of the previous topics must not apply.
            await forget_positions(conn, settings.usage_topic)
        members = sorted((await load_catalog(conn))[0].members)
    await ensure_topics(settings.need_kafka(), usage_topics_of(settings.usage_topic, members), partitions,
                        options=client_options(settings.kafka_auth))


def _start_workers(stack: Stack, settings: Settings, workers: int, partitions: int) -> None:
    for number in range(1, workers + 1):
        name = f"worker-{number}"
        if stack.is_running(name):
            continue
        ready = settings.home / "run" / f"{name}.ready"
        # Its metrics on a loopback port of its own: the portal's operator page reads its lag there.
        port = (stack.component(name) or {}).get("port") or free_port()
        # The embedded broker ignores LogAppendTime: its records carry the CLI's and the API's times.
        argv = _cli_argv(settings, "worker", "--name", name, "--ready-file", str(ready), "--partitions", str(partitions),
                         "--development-broker", "--metrics-port", str(port), "--metrics-host", "127.0.0.1")
        stack.start_process(name, "worker", argv, ready_file=ready, timeout=WORKER_START_SECONDS, port=port)


def _start_supervisor(stack: Stack, settings: Settings) -> None:
    if stack.is_running(SUPERVISOR):
        return
    argv = [sys.executable, "-m", "ledger.cli", "--home", str(settings.home), "dev", "supervise"]
    stack.start_process(SUPERVISOR, SUPERVISOR, argv)


def _start_api(stack: Stack, settings: Settings) -> None:
    if stack.is_running("api"):
        return
    port = (stack.component("api") or {}).get("port") or free_port()
    ready = settings.home / "run" / "api.ready"
    argv = _cli_argv(settings, "api", "--port", str(port), "--ready-file", str(ready))
    stack.start_process("api", "api", argv, ready_file=ready, timeout=API_START_SECONDS, port=port)


@click.group()
def dev() -> None:
    """Run the whole stack on this machine (embedded broker, PostgreSQL, workers)."""


@dev.command("up")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 16), help="Stream workers to run (one per core is the measured sweet spot).")
@click.option("--partitions", default=DEFAULT_PARTITIONS, show_default=True, type=click.IntRange(1, 256), help="Partitions of a newly created usage topic.")
@click.option("--durable/--no-durable", default=True, show_default=True, help="--no-durable turns fsync off (tests only).")
@click.option("--api/--no-api", default=True, show_default=True, help="Also run the usage API.")
@pass_context
def dev_up(obj: Context, workers: int, partitions: int, durable: bool, api: bool) -> None:
    """Start the stack in the background and return once it is ready.

    Starts only what is not running, so a component that died comes back.
    """
    stack = Stack(obj.settings.home, log=notice)
    with stack.starting():  # the supervisor waits: nothing is started twice
        stack.save_options({"durable": durable, "partitions": partitions})
        fresh_broker = not stack.is_running("broker")
        stack.start_broker()
        stack.start_postgres(durable=durable)
        settings = obj.settings  # now with the stack's addresses
        run(_prepare(settings, partitions, fresh_broker))
        _start_workers(stack, settings, workers, partitions)
        if api:
            _start_api(stack, settings)
        _start_supervisor(stack, settings)
    notice(NEXT_STEPS)


@dev.command("down")
@pass_context
def dev_down(obj: Context) -> None:
    """Stop exactly what `dev up` started (PostgreSQL's data is kept)."""
    Stack(obj.settings.home, log=notice).down()


@dev.command("status")
@pass_context
def dev_status(obj: Context) -> None:
    """Print the stack's components as JSON."""
    components = Stack(obj.settings.home).status()
    echo_json({
        "components": [
            {"name": c["name"], "role": c["role"], "pid": c["pid"], "running": c["running"],
             "restarts": c["restarts"], "last_exit": c["last_exit"], "log": c["log"]}
            for c in components
        ]
    })


@dev.command("supervise", hidden=True)
@pass_context
def dev_supervise(obj: Context) -> None:
    """Restart the stack's components that die (started by `dev up`; runs until stopped)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    stack = Stack(obj.settings.home)
    options = stack.options()

    def after_broker_restart() -> None:
        # A new embedded broker is empty: the topic again, and the old topic's positions forgotten.
        run(_prepare(obj.settings, options.get("partitions", DEFAULT_PARTITIONS), fresh_broker=True))

    Supervisor(stack, options, after_broker_restart).run()


@dev.command("env")
@pass_context
def dev_env(obj: Context) -> None:
    """Print the running stack's settings as shell assignments."""
    settings = obj.settings
    lines = [
        f"GPULEDGER_KAFKA_BOOTSTRAP={settings.need_kafka()}",
        f"GPULEDGER_DATABASE_URL={settings.need_database()}",
    ]
    if settings.api_url:
        lines.append(f"GPULEDGER_API_URL={settings.api_url}")
    lines.append(f"GPULEDGER_USAGE_TOPIC={settings.usage_topic}")
    click.echo("\n".join(lines))


def register(cli: click.Group) -> None:
    cli.add_command(dev)
