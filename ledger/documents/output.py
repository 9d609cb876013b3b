"""A period's documents written to a folder: each one's HTML and PDF, and manifest.json.

A document is a fraction of a second of one core (most of it WeasyPrint laying out the
page), and a month has a document per tenant: `write` makes them in a pool of processes,
one per CPU (`ledger.documents.pool`), each started once with what every invoice of the
period reads. Each file is written whole or not at all (`.partial`, then renamed), and
manifest.json is written as documents are done, in the plan's order, to
`manifest.json.partial`, renamed last: a manifest names only files that are there, and
no more than a handful of documents is in memory at a time, whatever the month's size.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import orjson

from ledger.documents import pool
from ledger.documents.document import files
from ledger.domain.errors import InputError
from ledger.service.documents import PeriodDocuments

__all__ = ["ManifestWriter", "files", "write"]  # files: one document's, for the tests

Progress = Callable[[int, int], None]  # (documents done, documents in all)


def write(
    documents: PeriodDocuments, out: Path, *, processes: int | None = None, on_progress: Progress | None = None,
) -> dict:
    """Write every document of `documents` under `out` and `out/manifest.json`, in
    `processes` processes (None: one per CPU; 1: this one alone); returns the manifest.
    `on_progress` hears how many documents are done after each one."""
    total = len(documents.planned)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with ManifestWriter(out / "manifest.json", documents.period) as manifest:
            # closing: a failure here ends the workers now, not when its traceback is freed
            with contextlib.closing(pool.made(documents, out, processes)) as made:
                for done, planned in enumerate(made, 1):
                    manifest.add(planned.entry())
                    if on_progress is not None:
                        on_progress(done, total)
    except OSError as exc:
        raise InputError(f"cannot write documents to {out}: {exc.strerror or exc}") from exc
    return documents.manifest()


class ManifestWriter:
    """manifest.json one entry at a time, the same bytes as the whole manifest dumped with
    orjson's two-space indent; the file appears only when `close` renames it into place
    (a failure leaves only the `.partial` file)."""

    INDENT = b"    "

    def __init__(self, path: Path, period: str) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.file = self.partial.open("wb")
        self.file.write(b'{\n  "period": ' + orjson.dumps(period) + b',\n  "documents": [')
        self.entries = 0

    def add(self, entry: dict) -> None:
        lines = orjson.dumps(entry, option=orjson.OPT_INDENT_2).split(b"\n")
        self.file.write((b",\n" if self.entries else b"\n") + b"\n".join(self.INDENT + line for line in lines))
        self.entries += 1

    def close(self) -> None:
        self.file.write(b"\n  ]\n}\n" if self.entries else b"]\n}\n")
        self.file.close()
        os.replace(self.partial, self.path)

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.file.close()
