"""The CLI speaks to people: help for every command, one-line errors, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.dev import free_port

# The CLI as a user runs it: each test starts `gpuledger` processes.
pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[2]


def gpuledger(*args: str, home: Path, input: bytes | None = None, **env):
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("GPULEDGER_")
    } | {"GPULEDGER_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        input=input, capture_output=True, env=environment, cwd=ROOT, timeout=60,
    )


def assert_one_line_error(completed, exit_code: int, *words: str) -> None:
    stderr = completed.stderr.decode()
    assert completed.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("gpuledger: error: "), stderr
    for word in words:
        assert word in stderr, stderr
    assert completed.stdout == b""


@pytest.mark.parametrize(
    "command",
    [[], ["dev"], ["dev", "up"], ["dev", "down"], ["dev", "status"], ["dev", "env"], ["catalog"],
     ["catalog", "load"], ["ingest"], ["simulate"], ["settle"], ["worker"], ["db", "migrate"]],
    ids=lambda c: " ".join(c) or "gpuledger",
)
def test_every_command_has_help(command, tmp_path):
    completed = gpuledger(*command, "--help", home=tmp_path)
    assert completed.returncode == 0
    assert b"Usage: " in completed.stdout and len(completed.stdout) > 100


def test_a_bad_period_is_refused_before_anything_is_reached(tmp_path):
    for period in ("2026-13", "2026-1", "26-10", "2026-10-01"):
        assert_one_line_error(gpuledger("settle", period, home=tmp_path), 2, "YYYY-MM", period)


def test_an_unreachable_database_is_one_line(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/gpuledger"
    completed = gpuledger("settle", "2026-10", "--close", home=tmp_path, GPULEDGER_DATABASE_URL=url)
    assert_one_line_error(completed, 3, "cannot reach PostgreSQL")


def test_an_unreachable_kafka_is_one_line(tmp_path):
    path = tmp_path / "e.ndjson"
    path.write_bytes(b"{}\n")
    completed = gpuledger(
        "ingest", str(path), home=tmp_path,
        GPULEDGER_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x",
        GPULEDGER_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
    )
    assert_one_line_error(completed, 3, "Kafka")


def test_no_stack_and_no_settings_says_how_to_start_one(tmp_path):
    assert_one_line_error(gpuledger("settle", "2026-10", home=tmp_path), 1, "gpuledger dev up")
    assert_one_line_error(gpuledger("dev", "env", home=tmp_path), 1, "gpuledger dev up")


def test_a_missing_file_is_one_line(tmp_path):
    assert_one_line_error(gpuledger("catalog", "load", str(tmp_path / "nope.toml"), home=tmp_path), 2, "nope.toml")
    assert_one_line_error(gpuledger("ingest", str(tmp_path / "nope.ndjson"), home=tmp_path), 2, "nope.ndjson")


@pytest.mark.parametrize(
    "text, words",
    [
        (b"currency = \n", ["not valid TOML"]),
        (b"\xff\xfe", ["UTF-8"]),
        (b'[[members]]\nid = "X"\nname = "x"\n', ["members.0.id"]),
        (b'[[members]]\nid = "kddi"\nname = "K"\ncolour = "red"\n', ["colour"]),
        (
            b'[[members]]\nid = "kddi"\nname = "K"\n[[skus]]\nid = "H100"\n'
            b'[[retail_prices]]\nreseller = "kddi"\nsku = "H100"\nyen_per_gpu_hour = "1.23456"\n'
            b'effective_from = "2026-01-01T00:00:00+09:00"\n',
            ["yen_per_gpu_hour"],
        ),
    ],
)
def test_a_bad_catalog_is_refused_before_any_connection(tmp_path, text, words):
    path = tmp_path / "catalog.toml"
    path.write_bytes(text)
    assert_one_line_error(gpuledger("catalog", "load", str(path), home=tmp_path), 2, *words)


def test_dev_status_of_an_empty_home_lists_nothing(tmp_path):
    completed = gpuledger("dev", "status", home=tmp_path)
    assert completed.returncode == 0
    assert completed.stdout == b'{"components":[]}\n'


def test_the_lazy_command_table_names_every_command_its_module_registers():
    import importlib

    import click

    from ledger.cli.main import COMMANDS

    registered: dict[str, str] = {}
    for module in sorted(set(COMMANDS.values())):
        scratch = click.Group()
        importlib.import_module(f"ledger.cli.{module}").register(scratch)
        registered |= {name: module for name in scratch.commands}
    assert registered == COMMANDS
    modules = {path.stem for path in (ROOT / "ledger" / "cli").glob("*.py") if "def register(" in path.read_text()}
    assert modules == set(COMMANDS.values())


def test_an_ingest_loads_no_other_command():
    probe = (
        "import sys; from ledger.cli.main import cli; cli.get_command(None, 'ingest'); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('ledger.cli.'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, cwd=ROOT, check=True).stdout.split()
    assert b"ledger.cli.ingest" in loaded
    assert not {b"ledger.cli.audit", b"ledger.cli.catalog", b"ledger.cli.serve"} & set(loaded)
