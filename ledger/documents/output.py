"""A period's documents written to a folder: each one's HTML and PDF, and manifest.json."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from ledger.documents import render
from ledger.domain.errors import InputError
from ledger.service.documents import PeriodDocuments


def files(documents: PeriodDocuments, planned) -> dict[str, bytes]:
    """One document's files: relative path -> bytes."""
    page = render.html(documents.content(planned))
    return {f"{planned.stem}.html": page.encode(), f"{planned.stem}.pdf": render.pdf(page)}


def write(documents: PeriodDocuments, out: Path) -> dict:
    """Write every document of `documents` under `out` and `out/manifest.json` (the last,
    so a manifest names only files that are there); returns the manifest."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for planned in documents.planned:
            for relative, data in files(documents, planned).items():
                _write_atomically(out / relative, data)
        manifest = documents.manifest()
        _write_atomically(out / "manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise InputError(f"cannot write documents to {out}: {exc.strerror or exc}") from exc
    return manifest


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
