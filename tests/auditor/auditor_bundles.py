"""A test-only writer of auditor bundles (docs/auditor-bundle.md), for tests/auditor/test_auditor_verify.py.

It is deliberately naive and shares nothing with `auditor/` (nor with `ledger/`): it walks
every billed second, looks up its price and agreement by scanning the catalog, groups
the seconds into statement lines and derives invoices, nets, transfers and the journal
the plainest way, then signs the manifest with the Ed25519 key it is given.

Given grants (grants.json's entries, each with its balance at the start of the period),
it writes a format /2 bundle: every line draws on the grants that cover it, ending
first first, and the statement carries the credits, the grant draws and the
reimbursements; without, a format /1 bundle as before credits existed.
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

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor.verify import VerificationError, verify_bundle

FILES = ("line-digests.tsv", "statement.json", "statement.csv", "catalog.json", "evidence.ndjson",
         "journal.ndjson", "dead_letters.json")
FORMAT_1, FORMAT_2 = "gpuledger-audit-bundle/1", "gpuledger-audit-bundle/2"
FORMAT_4 = "gpuledger-audit-bundle/4"
FILES_2 = (*FILES, "grants.json")
FILES_3 = (*FILES_2, "corrections.json")

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

# grants.json's entries for USAGES' October (by id), each with its balance on 1 October.
# kddi acme's lines, in statement order, retail 130 (September), 390, 1134 and 200 yen:
# - sakura-acme-trial ends first (2026-10), so it draws first on each line although its id
#   sorts after kddi-acme-2026q4's: 130 + 390 + 180, used up in the middle of the 1134;
# - kddi-acme-2026q4 (from 2026-10: not the September line) takes the other 954 and the
#   200, and has balance left; kddi funds its own tenant: no reimbursement. (Taken in id
#   order instead, it would draw 390 + 1134 + 200 and sakura-acme-trial only the 130.)
# - highreso-t-1 (H100 only) draws 100 of sakura t-1's 138: highreso reimburses sakura;
# - beta-old covers beta's line with nothing left: listed, draws nothing.
GRANTS = [
    {"id": "beta-old", "funder": "sakura", "reseller": "kddi", "tenant": "beta", "amount_yen": 50,
     "skus": None, "first_period": "2026-09", "last_period": "2026-10", "balance_yen": 0},
    {"id": "highreso-t-1", "funder": "highreso", "reseller": "sakura", "tenant": "t-1", "amount_yen": 100,
     "skus": ["H100"], "first_period": "2026-10", "last_period": "2026-10", "balance_yen": 100},
    {"id": "kddi-acme-2026q4", "funder": "kddi", "reseller": "kddi", "tenant": "acme", "amount_yen": 5000,
     "skus": None, "first_period": "2026-10", "last_period": "2026-12", "balance_yen": 4000},
    {"id": "sakura-acme-trial", "funder": "sakura", "reseller": "kddi", "tenant": "acme", "amount_yen": 1000,
     "skus": ["H100", "H200"], "first_period": "2026-09", "last_period": "2026-10", "balance_yen": 700},
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


def failure_message(folder: Path, public_key: bytes) -> str:
    """The one-line reason the independent auditor refuses a bundle (it must refuse it)."""
    with pytest.raises(VerificationError) as caught:
        verify_bundle(folder, public_key)
    assert "\n" not in caught.value.message
    return caught.value.message


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


def covers(grant: dict, line: dict) -> bool:
    return ((line["reseller"], line["tenant"]) == (grant["reseller"], grant["tenant"])
            and (grant["skus"] is None or line["sku"] in grant["skus"])
            and grant["first_period"] <= line["service_period"] <= grant["last_period"])


def draws_of(lines: list[dict], grants: list[dict]) -> tuple[dict[str, int], dict[tuple, int]]:
    """(yen per grant id, yen per (reseller, tenant)): each line, in order, draws on the
    grants covering it, the one ending first first (then by id)."""
    balance = {grant["id"]: grant["balance_yen"] for grant in grants}
    by_grant: dict[str, int] = {}
    by_invoice: dict[tuple, int] = {}
    for line in lines:
        left = line["retail_yen"]
        for grant in sorted((g for g in grants if covers(g, line)), key=lambda g: (g["last_period"], g["id"])):
            take = min(left, balance[grant["id"]])
            if take > 0:
                balance[grant["id"]] -= take
                left -= take
                by_grant[grant["id"]] = by_grant.get(grant["id"], 0) + take
                pair = (line["reseller"], line["tenant"])
                by_invoice[pair] = by_invoice.get(pair, 0) + take
    return by_grant, by_invoice


def statement_of(period: str, catalog: dict, usages: list[Usage], grants: list[dict] | None = None) -> dict:
    """The statement; with `grants` (format /2), its credits, grant draws and reimbursements."""
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

    by_grant, by_invoice = draws_of(lines, grants or [])
    tenant_invoices = []
    for reseller, tenant in sorted({(line["reseller"], line["tenant"]) for line in lines}):
        retail = sum(line["retail_yen"] for line in lines if (line["reseller"], line["tenant"]) == (reseller, tenant))
        if grants is None:
            tenant_invoices.append(invoice("reseller", reseller, "tenant", tenant, retail))
            continue
        credit = by_invoice.get((reseller, tenant), 0)
        tenant_invoices.append({"reseller": reseller, "tenant": tenant, "retail_yen": retail, "credit_yen": credit,
                                **invoice("reseller", reseller, "tenant", tenant, retail - credit)})
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
    grant_draws = [
        {"grant": g["id"], "funder": g["funder"], "reseller": g["reseller"], "tenant": g["tenant"],
         "amount_yen": by_grant[g["id"]]}
        for g in sorted(grants or [], key=lambda g: g["id"]) if by_grant.get(g["id"], 0) > 0
    ]
    for draw in grant_draws:  # a funder other than the reseller reimburses it
        nets[draw["funder"]] -= draw["amount_yen"]
        nets[draw["reseller"]] += draw["amount_yen"]
    transfers = []
    left = dict(nets)
    while any(left.values()):
        debtor = sorted(left, key=lambda m: (left[m], m))[0]
        creditor = sorted(left, key=lambda m: (-left[m], m))[0]
        amount = min(-left[debtor], left[creditor])
        transfers.append({"from": debtor, "to": creditor, "amount_yen": amount})
        left[debtor] += amount
        left[creditor] -= amount
    statement = {"period": period, "currency": "JPY", "closed": True, "lines": lines,
                 "tenant_invoices": tenant_invoices, "member_invoices": member_invoices,
                 "grant_draws": grant_draws, "net_yen": nets, "transfers": transfers}
    if grants is None:
        del statement["grant_draws"]
    return statement


def journal_of(statement: dict, first_seq: int, prev_hash: str, transfers_owed: bool = True) -> list[dict]:
    """The close's entries; `transfers_owed` False: its transfers as paid in cash at the
    close, as bundles exported before payments existed post them."""
    lines = statement["lines"]
    bodies = []

    def post(account: str, amount: int) -> dict:
        return {"account": account, "amount_yen": amount}

    for inv in statement["tenant_invoices"]:
        r, t = inv["reseller"], inv["tenant"]
        credit = inv.get("credit_yen", 0)
        bodies.append(("tenant_invoice",
                       {"tenant_invoice": {"reseller": r, "tenant": t},
                        "lines": [i for i, x in enumerate(lines) if (x["reseller"], x["tenant"]) == (r, t)]},
                       [post(f"{r}/receivable/tenant/{t}", inv["total_yen"]),
                        post(f"{r}/revenue/retail", -inv.get("retail_yen", inv["subtotal_yen"])),
                        *([post(f"{r}/discount/grants", credit)] if credit else []),
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
    funded = [d for d in statement.get("grant_draws", []) if d["funder"] != d["reseller"]]
    for d in funded:
        f, r, a = d["funder"], d["reseller"], d["amount_yen"]
        bodies.append(("grant_reimbursement", {"grant": d["grant"]},
                       [post(f"{f}/expense/grants", a), post(f"{f}/payable/grants/{r}", -a),
                        post(f"{r}/receivable/grants/{f}", a), post(f"{r}/discount/grants", -a)]))
    if statement["member_invoices"] or funded:
        postings = []
        for inv in statement["member_invoices"]:
            p, r = inv["provider"], inv["reseller"]
            postings += [post(f"{r}/payable/member/{p}", inv["total_yen"]),
                         post(f"{p}/receivable/member/{r}", -inv["total_yen"])]
        for d in funded:
            postings += [post(f"{d['funder']}/payable/grants/{d['reseller']}", d["amount_yen"]),
                         post(f"{d['reseller']}/receivable/grants/{d['funder']}", -d["amount_yen"])]
        postings += [post(f"{m}/settlement/clearing", net) for m, net in statement["net_yen"].items() if net]
        reference = {"member_invoices": [[i["provider"], i["reseller"]] for i in statement["member_invoices"]]}
        if funded:
            reference["grant_reimbursements"] = [d["grant"] for d in funded]
        bodies.append(("netting", reference, postings))
    for index, t in enumerate(statement["transfers"]):
        a, payer, payee = t["amount_yen"], t["from"], t["to"]
        if transfers_owed:
            kind, middle = "transfer_owed", [post(f"{payer}/payable/transfer/{payee}", -a),
                                             post(f"{payee}/receivable/transfer/{payer}", a)]
        else:
            kind, middle = "transfer", [post(f"{payer}/cash", -a), post(f"{payee}/cash", a)]
        bodies.append((kind, {"transfer": index},
                       [post(f"{payer}/settlement/clearing", a), *middle, post(f"{payee}/settlement/clearing", -a)]))
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


def day_rows(usages: list[Usage]) -> list[dict]:
    """Format /4's evidence: per GPU and UTC day, second by second, the runs of one attribution."""
    days: dict[tuple[str, str], tuple[dict[int, tuple], set[int]]] = {}
    for u in usages:
        hour = utc(u.hour_start)
        day = hour.strftime("%Y-%m-%d")
        offset = hour.hour * 3600
        billed, elsewhere = days.setdefault((u.gpu_uuid, day), ({}, set()))
        attribution = (u.provider, u.reseller, u.tenant, u.sku, u.service_period)
        billed.update({offset + second: attribution for second in u.seconds})
        elsewhere.update(offset + second for second in u.elsewhere)
    rows = []
    for (gpu, day), (billed, elsewhere) in sorted(days.items()):
        attributions = sorted(set(billed.values()))
        runs: list[list] = []
        for second in sorted(billed):
            index = attributions.index(billed[second])
            if runs and runs[-1][1] == second and runs[-1][2] == index:
                runs[-1][1] += 1
            else:
                runs.append([second, second + 1, index])
        other: list[list[int]] = []
        for second in sorted(elsewhere):
            if other and other[-1][1] == second:
                other[-1][1] += 1
            else:
                other.append([second, second + 1])
        rows.append({"gpu_uuid": gpu, "day": day, "attributions": [list(a) for a in attributions],
                     "seconds": len(billed), "billed": runs, "elsewhere": other})
    return rows


def hourly_rows(folder: Path) -> list[dict]:
    """The evidence of a format /4 bundle (runs per GPU and day) as format /3's lines (bitmaps per
    GPU-hour), to show that both carry the same seconds."""
    rows = []
    for line in read_ndjson(folder, "evidence.ndjson"):
        midnight = utc(line["day"] + "T00:00:00Z")
        billed: dict[tuple[int, int], list[int]] = {}
        elsewhere: dict[int, list[int]] = {}
        for start, end, index in line["billed"]:
            for second in range(start, end):
                billed.setdefault((second // 3600, index), []).append(second % 3600)
        for start, end in line["elsewhere"]:
            for second in range(start, end):
                elsewhere.setdefault(second // 3600, []).append(second % 3600)
        for (hour, index), seconds in billed.items():
            provider, reseller, tenant, sku, service_period = line["attributions"][index]
            rows.append(Usage(line["gpu_uuid"], iso(midnight + timedelta(hours=hour)), provider, reseller, tenant,
                              sku, service_period, seconds, elsewhere.get(hour, [])))
    return evidence_rows(rows)


def write_bundle(
    folder: Path,
    key: Ed25519PrivateKey,
    *,
    period: str = "2026-10",
    catalog: dict | None = None,
    usages: list[Usage] | None = None,
    first_seq: int = 41,
    prev_hash: str = hashlib.sha256(b"the previous period's last entry").hexdigest(),
    grants: list[dict] | None = None,
    transfers_owed: bool = True,
    bundle_format: str | None = None,
) -> dict:
    """Write a valid bundle into `folder` (created); return its statement. With `grants`
    (grants.json's entries, possibly none), a format /2 bundle; without, format /1; with
    `bundle_format` FORMAT_4, a bundle of format /4 (no returns: corrections.json is empty).
    `transfers_owed` False: its transfers posted as bundles made before payments did."""
    if bundle_format == FORMAT_4:
        grants = grants or []
    catalog = CATALOG if catalog is None else catalog
    usages = USAGES if usages is None else usages
    folder.mkdir(parents=True, exist_ok=True)
    statement = statement_of(period, catalog, usages, grants)
    write_json(folder, "statement.json", statement)
    (folder / "statement.csv").write_text(statement_csv(statement), encoding="utf-8")
    write_json(folder, "catalog.json", catalog)
    if grants is not None:
        (folder / "grants.json").write_text(
            json.dumps({"period": period, "grants": grants}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    if bundle_format == FORMAT_4:
        write_ndjson(folder, "evidence.ndjson", day_rows(usages))
        write_json(folder, "corrections.json", {"period": period, "voids": [], "returns": [], "disputes": []})
    else:
        write_ndjson(folder, "evidence.ndjson", evidence_rows(usages))
    write_ndjson(folder, "journal.ndjson", journal_of(statement, first_seq, prev_hash, transfers_owed))
    write_json(folder, "dead_letters.json",
               {"period": period, "total": 3, "by_reason": {"malformed": 1, "conflict": 2}})
    sign(folder, key, period, bundle_format=bundle_format or (FORMAT_1 if grants is None else FORMAT_2))
    return statement


def sign(
    folder: Path,
    key: Ed25519PrivateKey,
    period: str | None = None,
    *,
    key_id: str | None = None,
    chain_head: dict | None | str = "from the journal",
    bundle_format: str | None = None,
) -> None:
    """(Re)write manifest.json for the files as they are now, and manifest.sig; the format
    stays the manifest's unless `bundle_format` is given."""
    if period is None:
        period = read_json(folder, "manifest.json")["period"]
    if bundle_format is None:
        bundle_format = read_json(folder, "manifest.json")["format"]
    digests = []
    for name in FILES_3:
        if name != "line-digests.tsv" and (folder / name).exists():
            for number, line in enumerate((folder / name).read_bytes().splitlines(keepends=True), 1):
                digests.append(f"{name}\t{number}\t{hashlib.sha256(line).hexdigest()}\n")
    (folder / "line-digests.tsv").write_text("".join(digests))
    files = {}
    for name in FILES_3:
        path = folder / name
        if path.exists():
            data = path.read_bytes()
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if chain_head == "from the journal":
        journal = read_ndjson(folder, "journal.ndjson") if (folder / "journal.ndjson").exists() else []
        chain_head = {"seq": journal[-1]["seq"], "hash": journal[-1]["hash"]} if journal else None
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    manifest = {
        "format": bundle_format,
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

