"""One document of a period made and written: its HTML page and its PDF, each file whole."""

from __future__ import annotations

import os
from pathlib import Path

from ledger.documents import render
from ledger.domain.errors import InputError
from ledger.domain.invoices import Planned
from ledger.service.documents import PeriodDocuments


def files(documents: PeriodDocuments, planned: Planned, content: dict | None = None) -> dict[str, bytes]:
    """One document's files: relative path -> bytes (`content`: the document's, if already made)."""
    page = render.html(documents.content(planned) if content is None else content)
    return {f"{planned.stem}.html": page.encode(), f"{planned.stem}.pdf": render.pdf(page)}


def write_files(documents: PeriodDocuments, planned: Planned, out: Path, content: dict | None = None) -> None:
    """Make one document and write its files under `out`."""
    try:
        for relative, data in files(documents, planned, content).items():
            write_atomically(out / relative, data)
    except OSError as exc:
        raise InputError(f"cannot write documents to {out}: {exc.strerror or exc}") from exc


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
