"""corrections.json of an auditor bundle (docs/auditor-bundle.md): what recomputes returns.

SPEC.md, "Corrections": a bundle of P carries the voids whose returns P holds and, for
each return, its original line and what was returned of it before. Here, for each of the
statement's returns: the original line as its closed period B's statement stores it, the
draws on it in draw order, and what returns of booking periods before P gave back of it
(seconds, tenant refunds, and restorations per grant); for each void, every part it took
(GPU-hour, bits) with where it went; and the disputes decided in P's calendar month or
behind one of those voids, with their moves.
"""

from __future__ import annotations

from collections import defaultdict

from ledger.domain import returns as returns_rules
from ledger.domain.catalog import Catalog
from ledger.domain.correction_records import DisputeRow, VoidedBits, VoidRow
from ledger.domain.errors import LedgerError
from ledger.domain.instants import format_utc
from ledger.domain.metering import HOUR_BITS_BYTES
from ledger.domain.ports import ExportReader
from ledger.domain.rating import LineKey
from ledger.domain.statement import Return, Statement, StatementLine
from ledger.service import books
from ledger.service.credit_history import History

# The moves that decide a dispute (SPEC.md, "Disputes"): the provider's answer, the operator's decision.
DECISIONS = frozenset({"accept", "reject", "decide_accept", "decide_reject"})


def line_key(item: Return | StatementLine) -> LineKey:
    """A statement line's key, or a return's original line's (no agreement: -1, as rating keys it)."""
    agreement = -1 if item.agreement_from is None else item.agreement_from
    return LineKey(item.reseller, item.tenant, item.provider, item.sku, item.service_period,
                   item.retail_price_from, agreement)


async def corrections_document(reader: ExportReader, period: str, catalog: Catalog, statement: Statement) -> dict:
    """The file's document; `statement` is the period's closed statement."""
    voids = await _voids(reader, period)
    dispute_ids = {v["dispute"] for v in voids if v["dispute"] is not None}
    return {
        "period": period,
        "voids": voids,
        "returns": await _returns(reader, period, catalog, statement),
        "disputes": [
            _dispute(row) for row in await reader.dispute_rows()
            if row.id in dispute_ids or _decided_in(row, catalog, period)
        ],
    }


async def _returns(reader: ExportReader, period: str, catalog: Catalog, statement: Statement) -> list[dict]:
    if not statement.returns:
        return []
    history = await History.through(reader, period, catalog)
    await history.walk_to(period)
    earlier: dict[tuple[str, LineKey], list[returns_rules.Return]] = defaultdict(list)
    for item in returns_rules.returns_through(period, history.parts, history.originals):
        if item.return_period < period:
            earlier[(item.booking_period, item.key)].append(item)
    stored: dict[str, Statement] = {}
    found = []
    for item in statement.returns:
        booked = item.booking_period
        if booked not in stored:
            stored[booked] = books.read(await books.closed_document(reader, booked, catalog))
        key = line_key(item)
        original = next((line for line in stored[booked].lines if line_key(line) == key), None)
        if original is None:
            raise LedgerError(f"the closed statement of {booked} has no line that {period}'s return "
                              f"{item.reseller}/{item.tenant}/{item.provider}/{item.sku} gives back: "
                              "run `gpuledger verify --db`")
        before = earlier[(booked, key)]
        restored: dict[str, int] = defaultdict(int)
        for part in before:
            for grant, amount in part.restored:
                restored[grant] += amount
        draws = history.originals[(booked, key)].draws
        found.append({
            "booking_period": booked,
            "original": original.to_document(),
            "draws": [{"grant": grant, "amount_yen": amount} for grant, amount in draws],
            "returned_before": {
                "gpu_seconds": sum(part.gpu_seconds for part in before),
                "tenant_refund_yen": sum(part.tenant_refund_yen for part in before),
                "restored": [{"grant": g, "amount_yen": a} for g, a in sorted(restored.items()) if a],
            },
        })
    return found


async def _voids(reader: ExportReader, period: str) -> list[dict]:
    parts: dict[str, list[VoidedBits]] = defaultdict(list)
    for void_id, part in await reader.void_parts(period):
        parts[void_id].append(part)
    if not parts:
        return []
    return [_void(row, parts[row.id]) for row in await reader.voids(None, None) if row.id in parts]


def _void(row: VoidRow, parts: list[VoidedBits]) -> dict:
    v = row.void
    provider, reseller, tenant, sku = v.attribution
    return {
        "id": row.id, "gpu_uuid": v.gpu_uuid, "from": format_utc(v.start), "to": format_utc(v.end),
        "provider": provider, "reseller": reseller, "tenant": tenant, "sku": sku, "reason": v.reason,
        "dispute": v.dispute_id, "made_by": v.actor, "made_at": format_utc(row.made_at),
        "closed_through": v.closed_through, "gpu_seconds": v.gpu_seconds,
        "taken": [
            {
                "hour_start": format_utc(part.key.hour_start), "service_period": part.key.service_period,
                "booking_period": part.key.booking_period, "returned_in": part.returned_in,
                "seconds": part.bits.bit_count(), "bits": part.bits.to_bytes(HOUR_BITS_BYTES, "little").hex(),
            }
            for part in parts
        ],
    }


def _decided_in(row: DisputeRow, catalog: Catalog, period: str) -> bool:
    start, end = catalog.calendar.bounds(period)
    return any(move.action in DECISIONS and start <= move.at < end for move in row.moves)


def _dispute(row: DisputeRow) -> dict:
    d = row.dispute
    provider, reseller, tenant, sku = d.attribution
    return {
        "id": row.id, "gpu_uuid": d.gpu_uuid, "from": format_utc(d.start), "to": format_utc(d.end),
        "provider": provider, "reseller": reseller, "tenant": tenant, "sku": sku, "reason": d.reason,
        "note": d.note, "gpu_seconds": d.gpu_seconds, "opened_by": d.opened_by, "opened_at": format_utc(d.opened_at),
        "moves": [
            {"action": m.action, "state": m.state, "actor": m.actor, "note": m.note, "at": format_utc(m.at),
             "voided_gpu_seconds": m.voided_gpu_seconds, "void": m.void_id}
            for m in row.moves
        ],
    }
