"""`gpuledger export`: the auditor bundle of a closed period (docs/auditor-bundle.md).

Everything is read from one snapshot of the store, so the files agree with each other,
and streamed: evidence is written one GPU-day at a time and hashed as it is written, so
memory does not grow with the number of GPU-hours.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ledger.domain import report
from ledger.domain.catalog import Catalog, units_to_price
from ledger.domain.errors import LedgerError
from ledger.domain.instants import format_utc
from ledger.domain.payment_journal import POSTED_AFTER_CLOSE
from ledger.domain.ports import ExportReader, Store
from ledger.domain.statement import Statement
from ledger.service import books, signing
from ledger.service.export_corrections import corrections_document
from ledger.service.export_evidence import write_runs

# /2 adds grants.json: the grants behind the statement's credits; /3 corrections.json: the
# voids, original lines and disputes behind its returns; /4 writes the evidence as runs per
# GPU and UTC day instead of bitmaps per GPU-hour (docs/auditor-bundle.md).
BUNDLE_FORMAT = "gpuledger-audit-bundle/4"

LINE_DIGESTS = "line-digests.tsv"


class _HashingFile:
    """A file written once, whose SHA-256 and size are known when it is closed.

    With `lines`, the SHA-256 of every line (its bytes up to and including `\n`) is also
    written there as `file<TAB>line<TAB>sha256`: a changed byte can then be traced to
    its line, which is what an auditor needs to see.
    """

    def __init__(self, path: Path, lines: _HashingFile | None = None) -> None:
        self.name = path.name
        self.file = path.open("wb")
        self.digest = hashlib.sha256()
        self.size = 0
        self.lines = lines
        self.line_number = 0
        self.pending = b""

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.digest.update(data)
        self.size += len(data)
        if self.lines is not None:
            parts = (self.pending + data).split(b"\n")
            self.pending = parts.pop()
            for part in parts:
                self._line(part + b"\n")

    def _line(self, line: bytes) -> None:
        self.line_number += 1
        digest = hashlib.sha256(line).hexdigest()
        self.lines.write(f"{self.name}\t{self.line_number}\t{digest}\n".encode())

    def close(self) -> dict:
        if self.lines is not None and self.pending:
            self._line(self.pending)
        self.file.close()
        return {"sha256": self.digest.hexdigest(), "bytes": self.size}


def catalog_document(catalog: Catalog) -> dict:
    return {
        "currency": catalog.currency,
        "timezone": catalog.timezone,
        "tax_rate_percent": catalog.tax_rate_percent,
        "acceptance_horizon_days": catalog.acceptance_horizon_days,
        "members": [
            {"id": m.id, "name": m.name, "invoice_registration": m.invoice_registration}
            for _, m in sorted(catalog.members.items())
        ],
        "skus": [{"id": s.id, "description": s.description} for _, s in sorted(catalog.skus.items())],
        "retail_prices": [
            {
                "reseller": reseller,
                "sku": sku,
                "effective_from": format_utc(v.effective_from),
                "yen_per_gpu_hour": v.yen_per_gpu_hour,
            }
            for (reseller, sku), versions in sorted(catalog.prices.items())
            for v in versions
        ],
        "agreements": [
            {
                "reseller": reseller,
                "provider": provider,
                "sku": sku,
                "effective_from": format_utc(v.effective_from),
                "wholesale_yen_per_gpu_hour": (
                    units_to_price(v.wholesale_units) if v.wholesale_units is not None else None
                ),
                "provider_share_bps": v.share_bps,
            }
            for (reseller, provider, sku), versions in sorted(catalog.agreements.items())
            for v in versions
        ],
    }


def _json_file(data: dict) -> bytes:
    """Indented, so that a line number in a verifier's message points somewhere useful."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"


def _journal_line(entry) -> bytes:
    return orjson.dumps(
        {
            "seq": entry.seq,
            "period": entry.period,
            "kind": entry.kind,
            "reference": entry.reference,
            "postings": [{"account": a, "amount_yen": v} for a, v in entry.postings],
            "prev_hash": entry.prev_hash.hex(),
            "hash": entry.hash.hex(),
        }
    ) + b"\n"


class _Bundle:
    """The files of one bundle being written, each hashed, every line digested."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: dict[str, dict] = {}
        self.line_digests = _HashingFile(out / LINE_DIGESTS)

    def open(self, name: str) -> _HashingFile:
        return _HashingFile(self.out / name, self.line_digests)

    def close(self, name: str, file: _HashingFile) -> None:
        self.files[name] = file.close()

    def write(self, name: str, data: bytes) -> None:
        file = self.open(name)
        file.write(data)
        self.close(name, file)

    def finish(self) -> dict[str, dict]:
        self.files[LINE_DIGESTS] = self.line_digests.close()
        return dict(sorted(self.files.items()))


async def _write_evidence(bundle: _Bundle, reader: ExportReader, period: str, on_progress) -> None:
    file = bundle.open("evidence.ndjson")
    await write_runs(reader.evidence(period), file.write, on_progress)
    bundle.close("evidence.ndjson", file)


async def _write_journal(bundle: _Bundle, reader: ExportReader, period: str) -> dict:
    """The entries the period's close posted (those of its payments, posted later, are not
    the statement's: `gpuledger verify --db` checks them); returns the chain head (its last
    entry)."""
    file = bundle.open("journal.ndjson")
    head = {"seq": 0, "hash": bytes(32).hex()}
    async for entry in reader.journal(period):
        if entry.kind in POSTED_AFTER_CLOSE:
            continue
        file.write(_journal_line(entry))
        head = {"seq": entry.seq, "hash": entry.hash.hex()}
    bundle.close("journal.ndjson", file)
    return head


async def grants_document(reader: ExportReader, period: str, catalog: Catalog, statement: Statement) -> dict:
    """The grants that cover any line of the statement or the original line of any of its
    returns, each with its balance at the start of the period (restorations counted): what
    an auditor needs to recompute every draw and restoration."""
    balances = await books.balances_at(reader, period, catalog)
    covering = sorted(
        {
            grant.id for grant in catalog.grants.values() for line in (*statement.lines, *(statement.returns or ()))
            if grant.covers(line.reseller, line.tenant, line.sku, line.service_period, line.provider)
        }
    )
    return {
        "period": period,
        "grants": [
            {
                "id": gid, "funder": g.funder, "reseller": g.reseller, "tenant": g.tenant,
                "amount_yen": g.amount_yen, "skus": None if g.skus is None else sorted(g.skus),
                "providers": None if g.providers is None else sorted(g.providers),
                "first_period": g.first_period, "last_period": g.last_period,
                "balance_yen": balances[gid],
            }
            for gid in covering
            for g in (catalog.grants[gid],)
        ],
    }


async def _write_files(reader: ExportReader, period: str, out: Path, on_progress) -> tuple[dict, dict]:
    """Every file but the manifest, from one snapshot; returns (files, chain head)."""
    statement_bytes = await books.closed_statement(reader, period)
    if statement_bytes is None:
        raise LedgerError(f"{period} is not closed: close it with `gpuledger settle {period} --close` first")
    catalog = await reader.catalog()
    out.mkdir(parents=True, exist_ok=True)
    bundle = _Bundle(out)
    statement = books.read(statement_bytes)
    bundle.write("statement.json", statement_bytes + b"\n")
    bundle.write("statement.csv", report.as_csv(statement).encode("utf-8"))
    bundle.write("catalog.json", _json_file(catalog_document(catalog)))
    bundle.write("grants.json", _json_file(await grants_document(reader, period, catalog, statement)))
    corrections = await corrections_document(reader, period, catalog, statement)
    bundle.write("corrections.json", _json_file(corrections))
    await _write_evidence(bundle, reader, period, on_progress)
    head = await _write_journal(bundle, reader, period)
    start, end = catalog.calendar.bounds(period)
    by_reason = await reader.dead_letter_counts(start * 1000, end * 1000)
    bundle.write(
        "dead_letters.json",
        _json_file({"period": period, "total": sum(by_reason.values()), "by_reason": by_reason}),
    )
    return bundle.finish(), head


async def export_bundle(
    store: Store,
    period: str,
    out: Path,
    private_key_path: Path,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the bundle of a closed period into `out` (new or empty); return the manifest."""
    key = signing.load_private_key(private_key_path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LedgerError(f"{out} exists and is not an empty folder: choose a new one")
    async with store.snapshot() as reader:
        files, head = await _write_files(reader, period, out, on_progress)
    manifest = {
        "format": BUNDLE_FORMAT,
        "period": period,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": files,
        "chain_head": head,
        "key_id": signing.key_id(key.public_key()),
        "signature_algorithm": "Ed25519",
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    (out / "manifest.json").write_bytes(manifest_bytes)
    (out / "manifest.sig").write_bytes(base64.b64encode(key.sign(manifest_bytes)) + b"\n")
    return manifest
