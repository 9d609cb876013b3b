"""A test-only writer of auditor bundles (docs/auditor-bundle.md), for tests/auditor/test_auditor_verify.py.

It is deliberately naive and shares nothing with `auditor/` (nor with `ledger/`): it walks
every billed second, looks up its price and agreement by scanning the catalog, groups
the seconds into statement lines and derives invoices, nets, transfers and the journal
the plainest way, then signs the manifest with the Ed25519 key it is given.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FILES = ("line-digests.tsv", "statement.json", "statement.csv", "catalog.json", "evidence.ndjson",
         "journal.ndjson", "dead_letters.json")

CATALOG = {
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "tax_rate_percent": 10,
    "acceptance_horizon_days": 35,
    "members": [
        {"id": "kddi", "name": "KDDI", "invoice_registration": "T1234567890123"},
        {"id": "sakura", "name": "Sakura Internet", "invoice_registration": None},
        {"id": "highreso", "name": "Highreso", "invoice_registration": None},
        {"id": "zeta", "name": "Zeta (no usage)", "invoice_registration": None},
    ],
    "skus": [{"id": "H100", "description": "NVIDIA H100"}, {"id": "H200", "description": "NVIDIA H200 141GB"}],
    "retail_prices": [
        {"reseller": "kddi", "sku": "H200", "effective_from": "2025-12-31T15:00:00Z", "yen_per_gpu_hour": "780"},
        # A new price half-way through the hour 2026-10-03T12:00Z.
        {"reseller": "kddi", "sku": "H200", "effective_from": "2026-10-03T12:30:00Z", "yen_per_gpu_hour": "800.5"},
        {"reseller": "sakura", "sku": "H100", "effective_from": "2025-12-31T15:00:00Z", "yen_per_gpu_hour": "500.25"},
        {"reseller": "highreso", "sku": "H200", "effective_from": "2025-12-31T15:00:00Z", "yen_per_gpu_hour": "900.0001"},
    ],
    "agreements": [
        # Fixed rate, with a new version a quarter into the hour 2026-10-20T00:00Z.
        {"reseller": "kddi", "provider": "sakura", "sku": "H200", "effective_from": "2025-12-31T15:00:00Z",
         "wholesale_yen_per_gpu_hour": "520", "provider_share_bps": None},
        {"reseller": "kddi", "provider": "sakura", "sku": "H200", "effective_from": "2026-10-20T00:15:00Z",
         "wholesale_yen_per_gpu_hour": "530.5", "provider_share_bps": None},
        # A share of the retail price.
        {"reseller": "sakura", "provider": "highreso", "sku": "H100", "effective_from": "2025-12-31T15:00:00Z",
         "wholesale_yen_per_gpu_hour": None, "provider_share_bps": 7000},
        # A share of 0: its member invoice has a subtotal of 0, and is issued all the same.
        {"reseller": "highreso", "provider": "kddi", "sku": "H200", "effective_from": "2025-12-31T15:00:00Z",
         "wholesale_yen_per_gpu_hour": None, "provider_share_bps": 0},
    ],
}


@dataclass
class Usage:
    """One evidence line: the seconds (offsets 0..3599 in the hour) billed on it."""

    gpu_uuid: str
    hour_start: str
    provider: str
    reseller: str
    tenant: str
    sku: str
    service_period: str
    seconds: list[int]
    elsewhere: list[int] = field(default_factory=list)


USAGES = [
    # The hour split by the price change at 12:30Z: 1800 s at 780, 1800 s at 800.5.
    Usage("GPU-A", "2026-10-03T12:00:00Z", "sakura", "kddi", "acme", "H200", "2026-10", list(range(3600))),
    Usage("GPU-A", "2026-10-03T13:00:00Z", "sakura", "kddi", "acme", "H200", "2026-10", list(range(600))),
    # Split by the agreement change at 00:15Z.
    Usage("GPU-A", "2026-10-20T00:00:00Z", "sakura", "kddi", "acme", "H200", "2026-10", list(range(1800))),
    # Two attributions sharing one GPU-hour, disjoint.
    Usage("GPU-B", "2026-10-05T00:00:00Z", "sakura", "kddi", "acme", "H200", "2026-10", list(range(1800))),
    Usage("GPU-B", "2026-10-05T00:00:00Z", "sakura", "kddi", "beta", "H200", "2026-10", list(range(1800, 3600))),
    # A share agreement; 100 seconds of the hour were billed in another period.
    Usage("GPU-C", "2026-10-06T01:00:00Z", "highreso", "sakura", "t-1", "H100", "2026-10", list(range(1000)),
          elsewhere=list(range(1000, 1100))),
    # A member reselling its own GPU.
    Usage("GPU-D", "2026-10-07T00:00:00Z", "highreso", "highreso", "own", "H200", "2026-10", list(range(3600))),
    # A prior-period line: 23:00-23:10 on 30 September in Tokyo, booked in October.
    Usage("GPU-E", "2026-09-30T14:00:00Z", "sakura", "kddi", "acme", "H200", "2026-09", list(range(600))),
    # A few scattered seconds, so that floors matter.
    Usage("GPU-F", "2026-10-08T03:00:00Z", "sakura", "kddi", "gamma", "H200", "2026-10", list(range(0, 14, 2))),
    # kddi's GPU resold by highreso at a share of 0.
    Usage("GPU-G", "2026-10-09T00:00:00Z", "kddi", "highreso", "delta", "H200", "2026-10", list(range(60))),
]


# -- helpers -------------------------------------------------------------------------------


@functools.cache
def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bitmap(offsets: list[int]) -> str:
    data = bytearray(450)
    for offset in offsets:
        data[offset // 8] |= 1 << (offset % 8)
    return data.hex()


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _version(versions: list[dict], moment: datetime, **match) -> dict | None:
    found = None
    for version in versions:
        if all(version[k] == v for k, v in match.items()) and utc(version["effective_from"]) <= moment:
            if found is None or utc(version["effective_from"]) > utc(found["effective_from"]):
                found = version
    return found


# -- the statement, naively ----------------------------------------------------------------


def statement_of(period: str, catalog: dict, usages: list[Usage]) -> dict:
    seconds: dict[tuple, int] = {}
    versions: dict[tuple, tuple[dict, dict | None]] = {}
    for usage in usages:
        hour = utc(usage.hour_start)
        for offset in sorted(set(usage.seconds)):
            moment = hour + timedelta(seconds=offset)
            price = _version(catalog["retail_prices"], moment, reseller=usage.reseller, sku=usage.sku)
            agreement = None
            if usage.provider != usage.reseller:
                agreement = _version(catalog["agreements"], moment, reseller=usage.reseller,
                                     provider=usage.provider, sku=usage.sku)
            key = (usage.reseller, usage.tenant, usage.provider, usage.sku, usage.service_period,
                   price["effective_from"], agreement["effective_from"] if agreement else "")
            seconds[key] = seconds.get(key, 0) + 1
            versions[key] = (price, agreement)
    lines = []
    for key in sorted(seconds):
        count = seconds[key]
        price, agreement = versions[key]
        yen = Fraction(price["yen_per_gpu_hour"])
        if agreement is None:
            wholesale = 0
        elif agreement["wholesale_yen_per_gpu_hour"] is not None:
            wholesale = math.floor(count * Fraction(agreement["wholesale_yen_per_gpu_hour"]) / 3600)
        else:
            wholesale = math.floor(count * yen * agreement["provider_share_bps"] / 36_000_000)
        lines.append({
            "reseller": key[0], "tenant": key[1], "provider": key[2], "sku": key[3],
            "service_period": key[4], "retail_price_from": key[5], "agreement_from": key[6] or None,
            "gpu_seconds": count, "retail_yen_per_gpu_hour": price["yen_per_gpu_hour"],
            "retail_yen": math.floor(count * yen / 3600), "wholesale_yen": wholesale,
        })
    rate = catalog["tax_rate_percent"]

    def invoice(first: str, a: str, second: str, b: str, subtotal: int) -> dict:
        tax = subtotal * rate // 100
        return {first: a, second: b, "subtotal_yen": subtotal, "tax_yen": tax, "total_yen": subtotal + tax}

    tenant_invoices = []
    for reseller, tenant in sorted({(line["reseller"], line["tenant"]) for line in lines}):
        subtotal = sum(line["retail_yen"] for line in lines if (line["reseller"], line["tenant"]) == (reseller, tenant))
        tenant_invoices.append(invoice("reseller", reseller, "tenant", tenant, subtotal))
    member_invoices = []
    for provider, reseller in sorted({(line["provider"], line["reseller"]) for line in lines}):
        if provider != reseller:
            subtotal = sum(line["wholesale_yen"] for line in lines
                           if (line["provider"], line["reseller"]) == (provider, reseller))
            member_invoices.append(invoice("provider", provider, "reseller", reseller, subtotal))
    nets = {member["id"]: 0 for member in sorted(catalog["members"], key=lambda m: m["id"])}
    for inv in member_invoices:
        nets[inv["provider"]] += inv["total_yen"]
        nets[inv["reseller"]] -= inv["total_yen"]
    transfers = []
    left = dict(nets)
    while any(left.values()):
        debtor = sorted(left, key=lambda m: (left[m], m))[0]
        creditor = sorted(left, key=lambda m: (-left[m], m))[0]
        amount = min(-left[debtor], left[creditor])
        transfers.append({"from": debtor, "to": creditor, "amount_yen": amount})
        left[debtor] += amount
        left[creditor] -= amount
    return {"period": period, "currency": "JPY", "closed": True, "lines": lines,
            "tenant_invoices": tenant_invoices, "member_invoices": member_invoices,
            "net_yen": nets, "transfers": transfers}


def journal_of(statement: dict, first_seq: int, prev_hash: str) -> list[dict]:
    lines = statement["lines"]
    bodies = []

    def post(account: str, amount: int) -> dict:
        return {"account": account, "amount_yen": amount}

    for inv in statement["tenant_invoices"]:
        r, t = inv["reseller"], inv["tenant"]
        bodies.append(("tenant_invoice",
                       {"tenant_invoice": {"reseller": r, "tenant": t},
                        "lines": [i for i, x in enumerate(lines) if (x["reseller"], x["tenant"]) == (r, t)]},
                       [post(f"{r}/receivable/tenant/{t}", inv["total_yen"]),
                        post(f"{r}/revenue/retail", -inv["subtotal_yen"]),
                        post(f"{r}/tax/output", -inv["tax_yen"])]))
    for inv in statement["member_invoices"]:
        p, r = inv["provider"], inv["reseller"]
        reference = {"member_invoice": {"provider": p, "reseller": r},
                     "lines": [i for i, x in enumerate(lines) if (x["provider"], x["reseller"]) == (p, r)]}
        bodies.append(("member_invoice_reseller", reference,
                       [post(f"{r}/cost/wholesale", inv["subtotal_yen"]), post(f"{r}/tax/input", inv["tax_yen"]),
                        post(f"{r}/payable/member/{p}", -inv["total_yen"])]))
        bodies.append(("member_invoice_provider", reference,
                       [post(f"{p}/receivable/member/{r}", inv["total_yen"]),
                        post(f"{p}/revenue/wholesale", -inv["subtotal_yen"]), post(f"{p}/tax/output", -inv["tax_yen"])]))
    if statement["member_invoices"]:
        postings = []
        for inv in statement["member_invoices"]:
            p, r = inv["provider"], inv["reseller"]
            postings += [post(f"{r}/payable/member/{p}", inv["total_yen"]),
                         post(f"{p}/receivable/member/{r}", -inv["total_yen"])]
        postings += [post(f"{m}/settlement/clearing", net) for m, net in statement["net_yen"].items() if net]
        bodies.append(("netting", {"member_invoices": [[i["provider"], i["reseller"]] for i in statement["member_invoices"]]},
                       postings))
    for index, t in enumerate(statement["transfers"]):
        a = t["amount_yen"]
        bodies.append(("transfer", {"transfer": index},
                       [post(f"{t['from']}/settlement/clearing", a), post(f"{t['from']}/cash", -a),
                        post(f"{t['to']}/cash", a), post(f"{t['to']}/settlement/clearing", -a)]))
    entries = [{"seq": first_seq + n, "period": statement["period"], "kind": kind, "reference": reference,
                "postings": postings, "prev_hash": "", "hash": ""}
               for n, (kind, reference, postings) in enumerate(bodies)]
    return chain(entries, prev_hash)


def entry_hash(entry: dict) -> str:
    body = {k: entry[k] for k in ("seq", "period", "kind", "reference", "postings")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(bytes.fromhex(entry["prev_hash"]) + canonical).hexdigest()


def chain(entries: list[dict], prev_hash: str) -> list[dict]:
    """Set every prev_hash and hash, in order, from `prev_hash`."""
    for entry in entries:
        entry["prev_hash"] = prev_hash
        entry["hash"] = prev_hash = entry_hash(entry)
    return entries


def statement_csv(statement: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "value"])
    for section in ("lines", "tenant_invoices", "member_invoices", "transfers"):
        for row in statement[section]:
            writer.writerow([section, "", dumps(row)])
    for member, net in statement["net_yen"].items():
        writer.writerow(["net", member, net])
    return out.getvalue()


# -- files ---------------------------------------------------------------------------------


def write_json(folder: Path, name: str, value) -> None:
    (folder / name).write_text(dumps(value) + "\n", encoding="utf-8")


def read_json(folder: Path, name: str):
    return json.loads((folder / name).read_text(encoding="utf-8"))


def write_ndjson(folder: Path, name: str, rows: list[dict]) -> None:
    (folder / name).write_text("".join(dumps(row) + "\n" for row in rows), encoding="utf-8")


def read_ndjson(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").splitlines()]


def evidence_rows(usages: list[Usage]) -> list[dict]:
    rows = [{"gpu_uuid": u.gpu_uuid, "hour_start": u.hour_start, "provider": u.provider,
             "reseller": u.reseller, "tenant": u.tenant, "sku": u.sku, "service_period": u.service_period,
             "seconds": len(set(u.seconds)), "bits": bitmap(u.seconds), "elsewhere": bitmap(u.elsewhere)}
            for u in usages]
    order = ("gpu_uuid", "hour_start", "provider", "reseller", "tenant", "sku", "service_period")
    return sorted(rows, key=lambda row: tuple(row[k] for k in order))


def write_bundle(
    folder: Path,
    key: Ed25519PrivateKey,
    *,
    period: str = "2026-10",
    catalog: dict | None = None,
    usages: list[Usage] | None = None,
    first_seq: int = 41,
    prev_hash: str = hashlib.sha256(b"the previous period's last entry").hexdigest(),
) -> dict:
    """Write a valid bundle into `folder` (created); return its statement."""
    catalog = CATALOG if catalog is None else catalog
    usages = USAGES if usages is None else usages
    folder.mkdir(parents=True, exist_ok=True)
    statement = statement_of(period, catalog, usages)
    write_json(folder, "statement.json", statement)
    (folder / "statement.csv").write_text(statement_csv(statement), encoding="utf-8")
    write_json(folder, "catalog.json", catalog)
    write_ndjson(folder, "evidence.ndjson", evidence_rows(usages))
    write_ndjson(folder, "journal.ndjson", journal_of(statement, first_seq, prev_hash))
    write_json(folder, "dead_letters.json",
               {"period": period, "total": 3, "by_reason": {"malformed": 1, "conflict": 2}})
    sign(folder, key, period)
    return statement


def sign(
    folder: Path,
    key: Ed25519PrivateKey,
    period: str | None = None,
    *,
    key_id: str | None = None,
    chain_head: dict | None | str = "from the journal",
) -> None:
    """(Re)write manifest.json for the files as they are now, and manifest.sig."""
    if period is None:
        period = read_json(folder, "manifest.json")["period"]
    digests = []
    for name in FILES:
        if name != "line-digests.tsv" and (folder / name).exists():
            for number, line in enumerate((folder / name).read_bytes().splitlines(keepends=True), 1):
                digests.append(f"{name}\t{number}\t{hashlib.sha256(line).hexdigest()}\n")
    (folder / "line-digests.tsv").write_text("".join(digests))
    files = {}
    for name in FILES:
        path = folder / name
        if path.exists():
            data = path.read_bytes()
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if chain_head == "from the journal":
        journal = read_ndjson(folder, "journal.ndjson") if (folder / "journal.ndjson").exists() else []
        chain_head = {"seq": journal[-1]["seq"], "hash": journal[-1]["hash"]} if journal else None
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    manifest = {
        "format": "gpuledger-audit-bundle/1",
        "period": period,
        "created_at": "2026-11-28T08:00:00Z",
        "files": files,
        "chain_head": chain_head,
        "key_id": key_id or hashlib.sha256(raw).hexdigest(),
        "signature_algorithm": "Ed25519",
    }
    data = (dumps(manifest) + "\n").encode()
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig").write_bytes(base64.b64encode(key.sign(data)) + b"\n")

