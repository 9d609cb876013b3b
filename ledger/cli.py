"""The `gpuledger` command line.

Commands that print JSON write exactly one document and a newline to stdout; progress,
logs and notices go to stderr. Every expected failure is one line on stderr and a
non-zero exit code (2: bad input, 3: a service cannot be reached, 1: anything else).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import uuid
from pathlib import Path

import click
import orjson

from ledger import settings as config
from ledger.domain.errors import InputError, LedgerError, ServiceUnavailable
from ledger.domain.periods import parse_period


def _echo_json(document) -> None:
    sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
    sys.stdout.flush()


def _notice(message: str) -> None:
    click.echo(message, err=True)


def _run(coroutine):
    """Run a command's coroutine, translating driver errors at this one choke point."""
    import asyncpg

    try:
        return asyncio.run(coroutine)
    except asyncpg.UndefinedTableError as exc:
        raise LedgerError(
            f"the database has no gpuledger schema ({exc}): run `gpuledger db migrate`"
        ) from exc
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError) as exc:
        raise ServiceUnavailable(f"lost the connection to PostgreSQL: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise LedgerError(f"PostgreSQL refused the operation: {exc}") from exc


class Context:
    def __init__(self, home, database_url, kafka_bootstrap, usage_topic) -> None:
        self.options = (home, database_url, kafka_bootstrap, usage_topic)

    @property
    def settings(self) -> config.Settings:
        # Resolved on use, so that `dev up` sees the stack it has just started.
        return config.resolve(*self.options)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    envvar="GPULEDGER_HOME",
    help="Folder of the local stack (default ./.gpuledger; env GPULEDGER_HOME).",
)
@click.option(
    "--database-url",
    envvar="GPULEDGER_DATABASE_URL",
    help="PostgreSQL URL (env GPULEDGER_DATABASE_URL; default: the local stack's).",
)
@click.option(
    "--kafka-bootstrap",
    envvar="GPULEDGER_KAFKA_BOOTSTRAP",
    help="Kafka bootstrap servers host:port (env GPULEDGER_KAFKA_BOOTSTRAP; default: the local stack's).",
)
@click.option(
    "--topic",
    "usage_topic",
    envvar="GPULEDGER_USAGE_TOPIC",
    help=f"Usage topic (env GPULEDGER_USAGE_TOPIC; default {config.DEFAULT_TOPIC}).",
)
@click.pass_context
def cli(ctx, home, database_url, kafka_bootstrap, usage_topic) -> None:
    """gpuledger: GPU-second usage metering and cross-billing between alliance members.

    Start a local stack with `gpuledger dev up`, load a catalog, ingest usage, and
    print monthly settlement statements with `gpuledger settle YYYY-MM`.
    """
    ctx.obj = Context(home, database_url, kafka_bootstrap, usage_topic)


# -- dev ------------------------------------------------------------------------------


@cli.group()
def dev() -> None:
    """Run the whole stack on this machine (embedded broker, PostgreSQL, workers)."""


@dev.command("up")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 16), help="Stream workers to run (one per core is the measured sweet spot).")
@click.option("--partitions", default=config.DEFAULT_PARTITIONS, show_default=True, type=click.IntRange(1, 256), help="Partitions of a newly created usage topic.")
@click.option("--durable/--no-durable", default=True, show_default=True, help="--no-durable turns fsync off (tests only).")
@click.option("--api/--no-api", default=True, show_default=True, help="Also run the usage API.")
@click.pass_obj
def dev_up(obj: Context, workers: int, partitions: int, durable: bool, api: bool) -> None:
    """Start the stack in the background and return once it is ready.

    Starts only what is not running, so a component that died comes back.
    """
    from ledger import dev as devstack
    from ledger import store
    from streams.topics import ensure_topic

    settings = obj.settings
    stack = devstack.Stack(settings.home, log=_notice)
    fresh_broker = not stack.is_running("broker")
    stack.start_broker()
    stack.start_postgres(durable=durable)
    settings = obj.settings

    async def prepare() -> None:
        async with store.connection(settings.need_admin_database()) as conn:
            applied = await store.migrate(conn)
            if applied:
                _notice(f"applied migrations: {', '.join(applied)}")
            if fresh_broker:
                # The embedded broker keeps nothing across a restart: its topic starts
                # again at offset 0, so positions of the previous topic must not apply.
                await store.forget_positions(conn, settings.usage_topic)
        await ensure_topic(settings.need_kafka(), settings.usage_topic, partitions)

    _run(prepare())
    for number in range(1, workers + 1):
        name = f"worker-{number}"
        if stack.is_running(name):
            continue
        ready = settings.home / "run" / f"{name}.ready"
        stack.start_process(
            name,
            "worker",
            _worker_argv(settings, name, ready, partitions),
            ready_file=ready,
            timeout=120,
        )
    if api and not stack.is_running("api"):
        from ledger.dev import free_port

        previous = stack.component("api")
        port = (previous or {}).get("port") or free_port()
        ready = settings.home / "run" / "api.ready"
        stack.start_process(
            "api",
            "api",
            [sys.executable, "-m", "ledger.cli", "--home", str(settings.home),
             "--database-url", settings.need_database(), "--kafka-bootstrap", settings.need_kafka(),
             "--topic", settings.usage_topic, "api", "--port", str(port), "--ready-file", str(ready)],
            ready_file=ready,
            timeout=60,
            port=port,
        )
    _notice(
        "gpuledger is up. Try:\n"
        "  gpuledger catalog load CATALOG.toml\n"
        "  gpuledger ingest EVENTS.ndjson --wait\n"
        "  gpuledger settle 2026-10\n"
        "  gpuledger dev status | gpuledger dev env | gpuledger dev down"
    )


def _worker_argv(settings: config.Settings, name: str, ready: Path, partitions: int) -> list[str]:
    return [
        sys.executable, "-m", "ledger.cli",
        "--home", str(settings.home),
        "--database-url", settings.need_database(),
        "--kafka-bootstrap", settings.need_kafka(),
        "--topic", settings.usage_topic,
        "worker", "--name", name, "--ready-file", str(ready), "--partitions", str(partitions),
    ]


@dev.command("down")
@click.pass_obj
def dev_down(obj: Context) -> None:
    """Stop exactly what `dev up` started (PostgreSQL's data is kept)."""
    from ledger import dev as devstack

    devstack.Stack(obj.settings.home, log=_notice).down()


@dev.command("status")
@click.pass_obj
def dev_status(obj: Context) -> None:
    """Print the stack's components as JSON."""
    from ledger import dev as devstack

    components = devstack.Stack(obj.settings.home).status()
    _echo_json(
        {
            "components": [
                {"name": c["name"], "role": c["role"], "pid": c["pid"], "running": c["running"]}
                for c in components
            ]
        }
    )


@dev.command("env")
@click.pass_obj
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


# -- db and catalog ---------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database administration."""


@db.command("migrate")
@click.pass_obj
def db_migrate(obj: Context) -> None:
    """Apply the schema migrations not yet applied (as the tables' owner:
    GPULEDGER_ADMIN_DATABASE_URL, else the database URL)."""
    from ledger import store

    async def run():
        async with store.connection(obj.settings.need_admin_database()) as conn:
            return await store.migrate(conn)

    _echo_json({"applied": _run(run())})


@cli.group()
def catalog() -> None:
    """Members, SKUs, retail prices and wholesale agreements."""


@catalog.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_obj
def catalog_load(obj: Context, file: str) -> None:
    """Add the versions of a catalog TOML file (all or nothing)."""
    import hashlib

    from ledger import store
    from ledger.domain.catalog import parse_catalog

    data = _read_input(file)
    source = "stdin" if file == "-" else os.path.basename(file)
    content = parse_catalog(data, source)  # a bad file is refused before any connection

    async def run():
        async with store.connection(obj.settings.need_database()) as conn:
            return await store.save_parsed_catalog(
                conn, content, hashlib.sha256(data).hexdigest(), source
            )

    _echo_json(_run(run()))


def _read_input(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc


# -- ingest -------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--wait", is_flag=True, help="Wait until every event is processed and print the counts.")
@click.option("--timeout", type=click.FloatRange(min=0), default=0, help="With --wait: give up after this many seconds (0: never).")
@click.option("--batch-events", type=click.IntRange(1, 1000), default=200, show_default=True, help="Events of one GPU per Kafka record.")
@click.pass_obj
def ingest(obj: Context, file: str, wait: bool, timeout: float, batch_events: int) -> None:
    """Publish the usage events of an NDJSON FILE ('-' for stdin) to the usage topic."""
    from ledger import intake, store
    from ledger.domain.ndjson import read_chunks, split_lines
    from streams.publish import publish

    try:
        stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc
    settings = obj.settings
    database_url = settings.need_database()
    bootstrap = settings.need_kafka()
    ingest_id = uuid.uuid4().hex
    progress = _Progress(enabled=sys.stderr.isatty())

    async def run():
        with stream:
            published = await publish(
                bootstrap,
                settings.usage_topic,
                split_lines(read_chunks(stream)),
                ingest_id,
                batch_max_events=batch_events,
                on_progress=lambda n: progress.show("published", n),
            )
        progress.show("published", published.received, final=True)
        async with store.connection(database_url) as conn:
            await intake.record_oversize(conn, ingest_id, published.oversize, int(time.time() * 1000))
            if not wait:
                return {"ingest_id": ingest_id, "received": published.received, "records": published.records}
            return await _wait_for(conn, ingest_id, published.received, timeout, progress)

    _echo_json(_run(run()))


async def _wait_for(conn, ingest_id: str, received: int, timeout: float, progress) -> dict:
    from ledger import intake

    started = last_change = time.monotonic()
    last_seen = -1
    while True:
        tally = await intake.ingest_tally(conn, ingest_id)
        done = tally["received"]
        progress.show("processed", done, total=received)
        if done >= received:
            progress.show("processed", done, total=received, final=True)
            return tally
        now = time.monotonic()
        if done != last_seen:
            last_seen, last_change = done, now
        elif now - last_change > 30:
            _notice(
                f"no progress for 30 s ({done}/{received} processed): are the workers running? "
                "(gpuledger dev status)"
            )
            last_change = now
        if timeout and now - started > timeout:
            raise LedgerError(
                f"timed out after {timeout:.0f} s with {done} of {received} events processed "
                f"(ingest {ingest_id}); they will still be processed when the workers catch up"
            )
        await asyncio.sleep(0.2)


class _Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self.last = 0.0

    def show(self, label: str, done: int, total: int | None = None, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        if total:
            width = 30
            filled = width * done // total
            text = f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:,.0f}/s"
        else:
            text = f"{label} {done} events {rate:,.0f}/s"
        sys.stderr.write("\r" + text + ("\n" if final else ""))
        sys.stderr.flush()


# -- settle ---------------------------------------------------------------------------------


@cli.command()
@click.argument("period")
@click.option("--close", is_flag=True, help="Close the books through PERIOD first (it must have ended).")
@click.option("--format", "output_format", type=click.Choice(["json", "table", "csv"]), default="json", show_default=True, help="json: SPEC.md's document; table: for people; csv: one row per item.")
@click.pass_obj
def settle(obj: Context, period: str, close: bool, output_format: str) -> None:
    """Print the settlement statement of PERIOD (YYYY-MM)."""
    from ledger import store
    from ledger.domain import report

    parse_period(period)

    async def run():
        async with store.connection(obj.settings.need_database()) as conn:
            return await store.statement(conn, period, close=close)

    document = _run(run())
    if output_format == "table":
        click.echo(report.as_table(orjson.loads(document)), nl=False)
    elif output_format == "csv":
        click.echo(report.as_csv(orjson.loads(document)), nl=False)
    else:
        sys.stdout.buffer.write(document + b"\n")
        sys.stdout.flush()


# -- auditor: keys, export, verify ---------------------------------------------------------------


@cli.group()
def keys() -> None:
    """The Ed25519 key that signs auditor bundles."""


@keys.command("init")
@click.option("--force", is_flag=True, help="Replace an existing key (old bundles stay verifiable only with the old public key).")
@click.pass_obj
def keys_init(obj: Context, force: bool) -> None:
    """Create the signing key under GPULEDGER_HOME/keys; print where the public key is."""
    from ledger import signing

    private_path, public_path, key_id = signing.init_keys(signing.key_dir(obj.settings.home), force)
    _echo_json({"private_key": str(private_path), "public_key": str(public_path), "key_id": key_id})


@keys.command("public")
@click.option("--key", "key_path", type=click.Path(dir_okay=False), help="Private key file (default GPULEDGER_SIGNING_KEY or GPULEDGER_HOME/keys/signing.key).")
@click.pass_obj
def keys_public(obj: Context, key_path: str | None) -> None:
    """Print the public key (PEM) to hand to auditors."""
    from ledger import signing

    path = Path(key_path) if key_path else signing.default_private_key(obj.settings.home)
    sys.stdout.buffer.write(signing.public_pem(signing.load_private_key(path).public_key()))


@cli.command()
@click.argument("period")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New or empty folder for the bundle.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False), help="Private key file (default GPULEDGER_SIGNING_KEY or GPULEDGER_HOME/keys/signing.key).")
@click.pass_obj
def export(obj: Context, period: str, out_dir: str, key_path: str | None) -> None:
    """Write the signed auditor bundle of a closed PERIOD into --out."""
    from ledger import signing, store
    from ledger.export import export_bundle

    parse_period(period)
    settings = obj.settings
    key = Path(key_path) if key_path else signing.default_private_key(settings.home)
    progress = _Progress(enabled=sys.stderr.isatty())

    async def run():
        async with store.connection(settings.need_database()) as conn:
            return await export_bundle(
                conn, period, Path(out_dir), key, on_progress=lambda n: progress.show("evidence", n)
            )

    manifest = _run(run())
    _echo_json({"bundle": str(Path(out_dir).absolute()), "period": period,
                "files": len(manifest["files"]), "chain_head": manifest["chain_head"]})


@cli.command()
@click.argument("bundle", required=False, type=click.Path(file_okay=False))
@click.option("--public-key", envvar="GPULEDGER_PUBLIC_KEY", type=click.Path(dir_okay=False), help="The ledger's public key (PEM) to check a bundle with (env GPULEDGER_PUBLIC_KEY).")
@click.option("--db", "check_db", is_flag=True, help="Check the database's journal instead: hash chain, balances, statements.")
@click.option("--anchor", "anchors", multiple=True, type=click.Path(file_okay=False), help="With --db: a bundle whose signed chain head the journal must still hold (repeatable; needs --public-key).")
@click.pass_obj
def verify(obj: Context, bundle: str | None, public_key: str | None, check_db: bool, anchors: tuple[str, ...]) -> None:
    """Verify an auditor BUNDLE on its own, or the database's journal with --db.

    Exit 0 when everything verifies; otherwise exit 4 and name the first discrepancy.
    """
    from ledger import store

    if check_db == (bundle is not None):
        raise InputError("give either a bundle folder or --db")
    if check_db:
        signed_heads = [_signed_head(Path(a), public_key) for a in anchors]

        async def run():
            async with store.connection(obj.settings.need_database()) as conn:
                return await store.verify_database(conn, signed_heads)

        _echo_json({"verified": True, **_run(run())})
        return
    if not public_key:
        raise InputError("verifying a bundle needs the ledger's public key: --public-key FILE")
    from auditor.verify import VerificationError, verify_bundle

    try:
        key_pem = Path(public_key).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {public_key}: {exc.strerror or exc}") from exc
    try:
        verify_bundle(Path(bundle), key_pem)
    except VerificationError as exc:
        raise store.VerificationFailed(str(exc)) from exc
    _echo_json({"verified": True, "bundle": str(Path(bundle).absolute())})


def _signed_head(bundle: Path, public_key: str | None) -> tuple[str, int, str]:
    """(bundle, seq, hash) of the chain head a bundle's manifest signs, once its signature checks."""
    import base64
    import binascii

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    from ledger import store

    if not public_key:
        raise InputError("--anchor needs the ledger's public key: --public-key FILE")
    try:
        key = serialization.load_pem_public_key(Path(public_key).read_bytes())
        manifest_bytes = (bundle / "manifest.json").read_bytes()
        signature = base64.b64decode((bundle / "manifest.sig").read_bytes().strip(), validate=True)
    except (OSError, ValueError, binascii.Error) as exc:
        raise InputError(f"cannot read the anchor {bundle}: {exc}") from exc
    try:
        key.verify(signature, manifest_bytes)
    except (InvalidSignature, TypeError) as exc:
        raise store.VerificationFailed(f"{bundle}/manifest.sig does not verify with {public_key}") from exc
    head = orjson.loads(manifest_bytes).get("chain_head") or {}
    if not isinstance(head.get("seq"), int) or not isinstance(head.get("hash"), str):
        raise InputError(f"{bundle}/manifest.json has no chain head")
    return str(bundle), head["seq"], head["hash"]


# -- the usage API and its tokens ---------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--ready-file", type=click.Path(dir_okay=False), help="File to create once serving.")
@click.pass_obj
def api(obj: Context, host: str, port: int, ready_file: str | None) -> None:
    """Run the usage API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    from ledger.api import Settings, create_app

    settings = obj.settings
    app = create_app(
        Settings(
            database_url=settings.need_database(),
            kafka_bootstrap=settings.kafka_bootstrap,
            usage_topic=settings.usage_topic,
            ready_file=ready_file,
        )
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@cli.group()
def token() -> None:
    """Bearer tokens of the usage API."""


@token.command("create")
@click.option("--member", help="The member a member token is scoped to.")
@click.option("--role", type=click.Choice(["member", "auditor", "admin"]), default="member", show_default=True)
@click.option("--label", default="", help="A note on who holds it.")
@click.pass_obj
def token_create(obj: Context, member: str | None, role: str, label: str) -> None:
    """Create a token and print it once (only a salted hash is stored)."""
    from ledger import store, tokens

    async def run():
        async with store.connection(obj.settings.need_database()) as conn:
            return await tokens.create(conn, role, member, label)

    token_id, secret = _run(run())
    _echo_json({"id": token_id, "role": role, "member": member, "token": secret})


@token.command("revoke")
@click.argument("token_id")
@click.pass_obj
def token_revoke(obj: Context, token_id: str) -> None:
    """Revoke a token by its id; it fails from the next request on."""
    from ledger import store, tokens

    async def run():
        async with store.connection(obj.settings.need_database()) as conn:
            return await tokens.revoke(conn, token_id)

    _echo_json({"id": token_id, "revoked": True, "newly": _run(run())})


# -- dead letters -----------------------------------------------------------------------------


@cli.group()
def dlq() -> None:
    """Dead letters: list rejected events; replay them (after a catalog fix, say).

    A replayed event is processed from its dead letter, under the same rules, at its
    original receipt time; each dead letter is replayed at most once.
    """


def _instant_ms(text: str | None, name: str) -> int | None:
    from ledger.domain.instants import parse_instant

    if text is None:
        return None
    instant = parse_instant(text)
    if instant is None:
        raise InputError(f"{name} is not an RFC 3339 instant: {text!r}")
    return instant * 1000


@dlq.command("list")
@click.option("--reason", help="Only this reason (malformed, schema, ..., no_price, conflict).")
@click.option("--since", help="Received at or after this RFC 3339 instant.")
@click.option("--until", help="Received before this RFC 3339 instant.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--after", "after_id", type=click.IntRange(min=0), help="Start after this dead letter id (the next_cursor printed).")
@click.pass_obj
def dlq_list(obj: Context, reason: str | None, since: str | None, until: str | None, limit: int, after_id: int | None) -> None:
    """Print dead letters as JSON: {"items": [...], "next_cursor": ...}, oldest first."""
    from ledger import deadletters, store

    filters = {"reason": reason, "since_ms": _instant_ms(since, "--since"),
               "until_ms": _instant_ms(until, "--until"), "after_id": after_id}

    async def run():
        async with store.connection(obj.settings.need_database()) as conn:
            return await deadletters.page(conn, None, limit=limit, **filters)

    _echo_json(_run(run()))


@dlq.command("replay")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--reason", help="Replay the dead letters of this reason...")
@click.option("--since", help="...received at or after this RFC 3339 instant...")
@click.option("--until", help="...and before this one (at most 10,000 per replay).")
@click.option("--wait", is_flag=True, help="Wait until the workers have processed every replay and print the counts.")
@click.option("--timeout", type=click.FloatRange(min=0), default=0, help="With --wait: give up after this many seconds (0: never).")
@click.pass_obj
def dlq_replay(obj: Context, ids: tuple[int, ...], reason: str | None, since: str | None, until: str | None, wait: bool, timeout: float) -> None:
    """Replay dead letters by IDS, or by --reason/--since/--until, through the workers.

    Prints {"ingest_id", "replayed", "skipped_already_replayed"}; with --wait also the
    replay's counts, as `ingest --wait` prints them.
    """
    from ledger import deadletters, store
    from streams.publish import started_producer

    settings = obj.settings
    database_url = settings.need_database()
    bootstrap = settings.need_kafka()
    filters = {"reason": reason, "since_ms": _instant_ms(since, "--since"),
               "until_ms": _instant_ms(until, "--until")}
    if ids:
        filters["ids"] = list(ids)

    async def run():
        producer = await started_producer(bootstrap)
        try:
            async with store.connection(database_url) as conn:
                result = await deadletters.replay(
                    conn, producer, settings.usage_topic, deadletters.OPERATOR, **filters
                )
                if wait:
                    progress = _Progress(enabled=sys.stderr.isatty())
                    tally = await _wait_for(conn, result["ingest_id"], result["replayed"], timeout, progress)
                    result = {**result, **tally}
                return result
        finally:
            await producer.stop()

    _echo_json(_run(run()))


# -- worker -----------------------------------------------------------------------------------


@cli.command()
@click.option("--name", default="worker", show_default=True, help="Name of this worker (for logs and its data folder).")
@click.option("--ready-file", type=click.Path(dir_okay=False), help="File to create once partitions are assigned.")
@click.option("--partitions", default=config.DEFAULT_PARTITIONS, show_default=True, type=click.IntRange(1, 256), help="Partitions of the usage topic if the worker creates it.")
@click.option("--loglevel", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus metrics on this port (/metrics).")
@click.pass_obj
def worker(obj: Context, name: str, ready_file: str | None, partitions: int, loglevel: str, metrics_port: int | None) -> None:
    """Run a stream worker: meter the usage topic into the ledger until stopped."""
    from streams.app import WorkerSettings, run_worker

    settings = obj.settings
    if metrics_port is not None:
        import prometheus_client

        try:
            prometheus_client.start_http_server(metrics_port)
        except OSError as exc:
            raise LedgerError(f"cannot serve metrics on port {metrics_port}: {exc.strerror or exc}") from exc
    run_worker(
        WorkerSettings(
            kafka_bootstrap=settings.need_kafka(),
            database_url=settings.need_database(),
            usage_topic=settings.usage_topic,
            partitions=partitions,
            data_dir=settings.home / "faust" / name,
            ready_file=Path(ready_file) if ready_file else None,
        ),
        loglevel=loglevel,
    )


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The commands report an unreachable broker themselves, in one line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _notice("gpuledger: aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LedgerError as exc:
        _notice(f"gpuledger: error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _notice("gpuledger: interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
