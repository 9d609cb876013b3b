"""What commands print: one JSON document on stdout, notices and progress on stderr."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import orjson

from ledger.domain.errors import InputError


def echo_json(document) -> None:
    sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
    sys.stdout.flush()


def echo_bytes(document: bytes) -> None:
    sys.stdout.buffer.write(document + b"\n")
    sys.stdout.flush()


def notice(message: str) -> None:
    click.echo(message, err=True)


def read_input(file: str) -> bytes:
    """A file's bytes, or stdin's for '-'."""
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from exc


class Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    MIN_INTERVAL_SECONDS = 0.1
    BAR_WIDTH = 30

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.last = 0.0

    def show(self, label: str, done: int, total: int | None = None, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < self.MIN_INTERVAL_SECONDS:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        if total:
            filled = self.BAR_WIDTH * done // total
            bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
            text = f"{label} [{bar}] {done}/{total} {rate:,.0f}/s"
        else:
            text = f"{label} {done} events {rate:,.0f}/s"
        sys.stderr.write("\r" + text + ("\n" if final else ""))
        sys.stderr.flush()
