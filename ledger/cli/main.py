"""The `gpuledger` group, its options, and how a command's failure is reported."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from ledger.cli.output import notice
from ledger.cli.wiring import Context
from ledger.domain.errors import LedgerError
from ledger.settings import DEFAULT_TOPIC

# Each command's module, imported only when the command runs (or help lists it): a
# command then loads what it uses and no more (`gpuledger ingest` starts in about half
# the time it took with every module imported). tests/cli checks this against what the
# modules register.
COMMANDS = {
    "dev": "dev", "db": "db", "topic": "topic", "catalog": "catalog", "gpus": "catalog",
    "ingest": "ingest", "simulate": "simulate", "settle": "settle", "grants": "grants",
    "report": "report", "documents": "documents", "keys": "audit", "export": "audit",
    "verify": "audit", "api": "serve", "worker": "serve", "token": "serve", "dlq": "dlq",
    "payments": "payments",
    "collect": "collect",
    "void": "corrections", "voids": "corrections", "dispute": "disputes", "disputes": "disputes",
}


class LazyGroup(click.Group):
    """A group whose commands are imported from their modules on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"ledger.cli.{COMMANDS[name]}").register(self)
        return self.commands.get(name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", envvar="GPULEDGER_HOME", help="Folder of the local stack (default ./.gpuledger; env GPULEDGER_HOME).")
@click.option("--database-url", envvar="GPULEDGER_DATABASE_URL", help="PostgreSQL URL (env GPULEDGER_DATABASE_URL; default: the local stack's).")
@click.option("--kafka-bootstrap", envvar="GPULEDGER_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers host:port (env GPULEDGER_KAFKA_BOOTSTRAP; default: the local stack's).")
@click.option("--topic", "usage_topic", envvar="GPULEDGER_USAGE_TOPIC", help=f"Usage topic (env GPULEDGER_USAGE_TOPIC; default {DEFAULT_TOPIC}).")
@click.pass_context
def cli(ctx, home, database_url, kafka_bootstrap, usage_topic) -> None:
    """gpuledger: GPU-second usage metering and cross-billing between alliance members.

    Start a local stack with `gpuledger dev up`, load a catalog, ingest usage, and
    print monthly settlement statements with `gpuledger settle YYYY-MM`.
    """
    ctx.obj = Context(home, database_url, kafka_bootstrap, usage_topic)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The commands report an unreachable broker themselves, in one line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        notice("gpuledger: aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LedgerError as exc:
        notice(f"gpuledger: error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        notice("gpuledger: interrupted")
        sys.exit(130)
