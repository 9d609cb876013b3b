"""`gpuledger export`: the auditor bundle of a closed period (docs/auditor-bundle.md).

Everything is read in one REPEATABLE READ transaction, so the files agree with each
other, and streamed: evidence comes through a server-side cursor and is hashed as it is
written, so memory does not grow with the number of GPU-hours.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson

from ledger import signing, store
from ledger.domain import report
from ledger.domain.catalog import Catalog, units_to_price
from ledger.domain.errors import LedgerError
from ledger.domain.instants import format_utc

BUNDLE_FORMAT = "gpuledger-audit-bundle/1"
HOUR_BITS_BYTES = 450

SELECT_EVIDENCE = """
SELECT c.gpu_uuid, c.hour_start, c.provider, c.reseller, c.tenant, c.sku, c.service_period,
       c.seconds, c.bits,
       (SELECT array_agg(o.bits) FROM claims o
        WHERE o.gpu_uuid = c.gpu_uuid AND o.hour_start = c.hour_start
          AND o.booking_period <> c.booking_period) AS elsewhere
FROM claims c
WHERE c.booking_period = $1
ORDER BY c.gpu_uuid COLLATE "C", c.hour_start, c.provider COLLATE "C", c.reseller COLLATE "C",
         c.tenant COLLATE "C", c.sku COLLATE "C", c.service_period COLLATE "C"
"""

SELECT_DEAD_LETTERS = """
SELECT reason, count(*) AS n FROM dead_letters
WHERE received_ms >= $1 AND received_ms < $2
GROUP BY reason ORDER BY reason
"""


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


async def export_bundle(
    conn: asyncpg.Connection,
    period: str,
    out: Path,
    private_key_path: Path,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the bundle of a closed period into `out` (new or empty); return the manifest."""
    key = signing.load_private_key(private_key_path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LedgerError(f"{out} exists and is not an empty folder: choose a new one")
    files: dict[str, dict] = {}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        statement_bytes = await store.closed_statement(conn, period)
        if statement_bytes is None:
            raise LedgerError(f"{period} is not closed: close it with `gpuledger settle {period} --close` first")
        catalog, _ = await store.load_catalog(conn)
        out.mkdir(parents=True, exist_ok=True)
        line_digests = _HashingFile(out / LINE_DIGESTS)

        def write(name: str, data: bytes) -> None:
            target = _HashingFile(out / name, line_digests)
            target.write(data)
            files[name] = target.close()

        write("statement.json", statement_bytes + b"\n")
        write("statement.csv", report.as_csv(orjson.loads(statement_bytes)).encode("utf-8"))
        write("catalog.json", _json_file(catalog_document(catalog)))

        evidence = _HashingFile(out / "evidence.ndjson", line_digests)
        written = 0
        async for row in conn.cursor(SELECT_EVIDENCE, period, prefetch=2000):
            elsewhere = 0
            for bits in row["elsewhere"] or ():
                elsewhere |= int.from_bytes(bits, "little")
            evidence.write(
                orjson.dumps(
                    {
                        "gpu_uuid": row["gpu_uuid"],
                        "hour_start": format_utc(row["hour_start"]),
                        "provider": row["provider"],
                        "reseller": row["reseller"],
                        "tenant": row["tenant"],
                        "sku": row["sku"],
                        "service_period": row["service_period"],
                        "seconds": row["seconds"],
                        "bits": bytes(row["bits"]).hex(),
                        "elsewhere": elsewhere.to_bytes(HOUR_BITS_BYTES, "little").hex(),
                    }
                )
                + b"\n"
            )
            written += 1
            if on_progress is not None and written % 10_000 == 0:
                on_progress(written)
        files["evidence.ndjson"] = evidence.close()

        journal_file = _HashingFile(out / "journal.ndjson", line_digests)
        head = {"seq": 0, "hash": bytes(32).hex()}
        async for entry in store.journal_entries(conn, period):
            journal_file.write(
                orjson.dumps(
                    {
                        "seq": entry.seq,
                        "period": entry.period,
                        "kind": entry.kind,
                        "reference": entry.reference,
                        "postings": [{"account": a, "amount_yen": v} for a, v in entry.postings],
                        "prev_hash": entry.prev_hash.hex(),
                        "hash": entry.hash.hex(),
                    }
                )
                + b"\n"
            )
            head = {"seq": entry.seq, "hash": entry.hash.hex()}
        files["journal.ndjson"] = journal_file.close()

        start, end = catalog.calendar.bounds(period)
        by_reason = {
            r["reason"]: r["n"]
            for r in await conn.fetch(SELECT_DEAD_LETTERS, start * 1000, end * 1000)
        }
        write(
            "dead_letters.json",
            _json_file({"period": period, "total": sum(by_reason.values()), "by_reason": by_reason}),
        )
        files[LINE_DIGESTS] = line_digests.close()

    manifest = {
        "format": BUNDLE_FORMAT,
        "period": period,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": dict(sorted(files.items())),
        "chain_head": head,
        "key_id": signing.key_id(key.public_key()),
        "signature_algorithm": "Ed25519",
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    (out / "manifest.json").write_bytes(manifest_bytes)
    (out / "manifest.sig").write_bytes(base64.b64encode(key.sign(manifest_bytes)) + b"\n")
    return manifest
