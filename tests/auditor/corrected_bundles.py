"""Bundles with returns, made by the services on the in-memory store (no broker, no PostgreSQL).

kddi's tenant acme uses sakura's GPU-1 for one hour in September (780 yen; two grants draw
on that line: `acme-sep` of highreso, ending first, 300 yen, then kddi's own `acme-q4`, 300
yen; acme pays 180). September is closed; then, in October:
- sakura voids 00:00-00:30 of that hour (1800 s), and re-bills them to tenant beta;
- kddi disputes 00:30-00:40, sakura accepts: a void of 600 s with the dispute's id;
- kddi disputes 00:00-00:10 of beta's seconds, sakura rejects it.
October returns 2400 s of the September line: 780 - floor(1200 * 780 / 3600) = 520 yen, of
which acme gets back what it paid (180) and the grants 340 (last drawer first: `acme-q4`
300, `acme-sep` 40). October is closed; in November the operator voids 00:40-00:50 (600 s)
of the same line: R0 = 2400, 260 - 130 = 130 yen, all restored to `acme-sep` (acme was paid
back in full). acme also uses GPU-2 for an hour of November (780 yen): `acme-q4` draws
the 300 yen October restored to it. November is closed, and both months are exported.
"""

from __future__ import annotations

from pathlib import Path

from ledger.domain.access import OPERATOR, Caller
from ledger.domain.disputes import parse_interval
from ledger.memory.store import MemoryStore
from ledger.service import books, corrections, signing
from ledger.service import disputes as dispute_service
from ledger.service.export import export_bundle
from ledger.service.intake import Intake
from tests.domain.test_registry import grant
from tests.factories import DEFAULT_VERSIONS, catalog_text, encode, instant, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

SAKURA = Caller("t-sakura", "member", "sakura")
KDDI = Caller("t-kddi", "member", "kddi")
HOUR = "2026-09-29T00:00:00Z"
GRANTS = (
    grant("acme-sep", funder="highreso", amount=300, first="2026-09", last="2026-09"),
    grant("acme-q4", funder="kddi", amount=300, first="2026-09", last="2026-12"),
)


def interval(start: str, end: str, tenant: str = "acme", gpu: str = "GPU-1"):
    return parse_interval(gpu, f"2026-09-29T00:{start}:00Z", f"2026-09-29T00:{end}:00Z", "sakura", "kddi", tenant, "H200")


class Clock:
    def __init__(self, text: str) -> None:
        self.now = instant(text)

    def __call__(self) -> int:
        return self.now

    def set(self, text: str) -> None:
        self.now = instant(text)


async def bill(store: MemoryStore, publisher: LoopbackPublisher, ingest_id: str, *events: dict) -> None:
    await publisher.send_events([encode(e) for e in events], ingest_id)
    await deliver(publisher, Intake(store))


async def corrected_ledger() -> MemoryStore:
    """The store after the story of the module docstring, September to November closed."""
    clock = Clock("2026-09-30T12:00:00+09:00")
    store = MemoryStore(clock=clock)
    publisher = LoopbackPublisher(clock_ms=lambda: clock.now * 1000, batch=False)
    await load_catalog(store, catalog_text(*DEFAULT_VERSIONS, *GRANTS))
    await bill(store, publisher, "sep", usage_event(time=HOUR, seconds=3600, gpu_uuid="GPU-1"))
    clock.set("2026-10-02T09:00:00+09:00")
    await books.statement(store, "2026-09", close=True)
    await corrections.void(store, SAKURA, interval("00", "30"), "wrong_tenant")
    await bill(store, publisher, "oct",
               usage_event(time=HOUR, seconds=1800, gpu_uuid="GPU-1", tenant="beta",
                           event_id="0192f1c2-7b3a-7c55-9d1e-5a4b3c2d1e11"))
    accepted = await dispute_service.open_dispute(store, KDDI, interval("30", "40"), "not_used", "idle")
    await dispute_service.move(store, SAKURA, accepted["id"], "accept")
    clock.set("2026-10-06T09:00:00+09:00")
    rejected = await dispute_service.open_dispute(store, KDDI, interval("00", "10", tenant="beta"), "other")
    await dispute_service.move(store, SAKURA, rejected["id"], "reject", "it ran")
    clock.set("2026-11-02T09:00:00+09:00")
    await books.statement(store, "2026-10", close=True)
    await corrections.void(store, OPERATOR, interval("40", "50"), "outage")
    await bill(store, publisher, "nov", usage_event(time="2026-11-01T00:00:00Z", seconds=3600, gpu_uuid="GPU-2",
                                                    event_id="0192f1c2-7b3a-7c55-9d1e-5a4b3c2d1e10"))
    clock.set("2026-12-02T09:00:00+09:00")
    await books.statement(store, "2026-11", close=True)
    return store


async def export_corrected(folder: Path) -> tuple[dict[str, Path], bytes]:
    """The October and November bundles of `corrected_ledger` (period -> folder), and the public key."""
    store = await corrected_ledger()
    private_key, public_key, _ = signing.init_keys(folder / "keys")
    bundles = {}
    for period in ("2026-10", "2026-11"):
        bundles[period] = folder / f"bundle-{period}"
        await export_bundle(store, period, bundles[period], private_key)
    return bundles, public_key.read_bytes()
