"""A small ledger with returns, disputes and payments, made through the services on the
in-memory store (no stack): November 2026's documents are the return invoices.

October (closed on 2026-11-02 JST): kddi's tenants acme (2 h) and beta (1 h) on sakura's
GPU-S (retail 780, wholesale 520 yen/h), highreso funding a 1,000 yen grant for acme that
October draws whole; sakura's tenant sak-1 on kddi's GPU-K (1 h, 600 wholesale); highreso's
tenant hig-1 on sakura's GPU-S2 (1 h, 500 wholesale). Transfers: highreso pays sakura
1,550, kddi pays sakura 56, due 2026-11-30.

November: kddi disputes acme's first hour, sakura accepts it (a void of a closed period:
returned in November, 560 refunded to acme and 220 given back to the grant); acme runs
30 minutes more. kddi disputes beta's hour (left open), highreso one hour of hig-1 (left
open). kddi records its 56 (never confirmed); highreso records 1,000, which sakura
confirms. November is closed on 2026-12-03 JST, three days after the transfers' due date.
"""

from __future__ import annotations

from ledger.domain.access import Caller
from ledger.domain.disputes import parse_interval
from ledger.memory.store import MemoryStore
from ledger.service import books, disputes, payments
from ledger.service.intake import Intake
from tests.factories import encode, instant, usage_event
from tests.service.conftest import LoopbackPublisher, deliver, load_catalog

KDDI = Caller("t-kddi", "member", "kddi")
SAKURA = Caller("t-sakura", "member", "sakura")
HIGHRESO = Caller("t-highreso", "member", "highreso")

CATALOG = """
timezone = "Asia/Tokyo"
tax_rate_percent = 10
acceptance_horizon_days = 1000
dispute_window_days = 1000
payment_terms_days = 30

[[members]]
id = "kddi"
name = "KDDI"
invoice_registration = "T2676123716326"

[[members]]
id = "sakura"
name = "Sakura Internet"
invoice_registration = "T3152963889760"

[[members]]
id = "highreso"
name = "Highreso"
invoice_registration = "T7016748827996"

[[skus]]
id = "H200"
description = "NVIDIA H200 141GB"

[[retail_prices]]
reseller = "kddi"
sku = "H200"
yen_per_gpu_hour = "780"
effective_from = "2026-01-01T00:00:00+09:00"

[[retail_prices]]
reseller = "sakura"
sku = "H200"
yen_per_gpu_hour = "815"
effective_from = "2026-01-01T00:00:00+09:00"

[[retail_prices]]
reseller = "highreso"
sku = "H200"
yen_per_gpu_hour = "800"
effective_from = "2026-01-01T00:00:00+09:00"

[[agreements]]
reseller = "kddi"
provider = "sakura"
sku = "H200"
effective_from = "2026-01-01T00:00:00+09:00"
wholesale_yen_per_gpu_hour = "520"

[[agreements]]
reseller = "sakura"
provider = "kddi"
sku = "H200"
effective_from = "2026-01-01T00:00:00+09:00"
wholesale_yen_per_gpu_hour = "600"

[[agreements]]
reseller = "highreso"
provider = "sakura"
sku = "H200"
effective_from = "2026-01-01T00:00:00+09:00"
wholesale_yen_per_gpu_hour = "500"

[[grants]]
id = "poc-acme"
funder = "highreso"
reseller = "kddi"
tenant = "acme"
amount_yen = 1000
skus = ["H200"]
first_period = "2026-10"
last_period = "2026-12"
"""

CLOSE_OCTOBER = instant("2026-11-02T10:00:00+09:00")
CLOSE_NOVEMBER = instant("2026-12-03T10:00:00+09:00")
# (gpu, provider, reseller, tenant, start, seconds)
OCTOBER = (
    ("GPU-S", "sakura", "kddi", "acme", "2026-10-03T12:00:00Z", 3600),
    ("GPU-S", "sakura", "kddi", "acme", "2026-10-03T13:00:00Z", 3600),
    ("GPU-S", "sakura", "kddi", "beta", "2026-10-04T12:00:00Z", 3600),
    ("GPU-K", "kddi", "sakura", "sak-1", "2026-10-05T12:00:00Z", 3600),
    ("GPU-S2", "sakura", "highreso", "hig-1", "2026-10-06T12:00:00Z", 3600),
)
NOVEMBER = (("GPU-S", "sakura", "kddi", "acme", "2026-11-05T12:00:00Z", 1800),)


class Clock:
    """The store's clock and the receipt time of events, moved by the steps."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def interval(gpu: str, start: str, end: str, provider: str, reseller: str, tenant: str):
    return parse_interval(gpu, start, end, provider, reseller, tenant, "H200")


async def _bill(store, publisher, rows) -> None:
    for number, (gpu, provider, reseller, tenant, start, seconds) in enumerate(rows):
        event = usage_event(gpu_uuid=gpu, provider=provider, reseller=reseller, tenant=tenant, time=start,
                            seconds=seconds, event_id=f"{gpu}-{start}-{number}")
        await publisher.send_events([encode(event)], f"{gpu}-{start}")
    await deliver(publisher, Intake(store))


async def returns_ledger() -> tuple[MemoryStore, Clock]:
    """The ledger of the module's story, its clock at November's close."""
    clock = Clock(instant("2026-10-31T00:00:00+09:00"))
    store = MemoryStore(clock=clock)
    publisher = LoopbackPublisher(clock_ms=lambda: int(clock.now * 1000), batch=False)
    await load_catalog(store, CATALOG)
    await _bill(store, publisher, OCTOBER)
    clock.now = CLOSE_OCTOBER
    await books.statement(store, "2026-10", close=True)
    acme = interval("GPU-S", "2026-10-03T12:00:00Z", "2026-10-03T13:00:00Z", "sakura", "kddi", "acme")
    accepted = await disputes.open_dispute(store, KDDI, acme, "not_used", "the job had ended")
    await disputes.move(store, SAKURA, accepted["id"], "accept")
    clock.now = instant("2026-11-06T00:00:00+09:00")
    await _bill(store, publisher, NOVEMBER)
    clock.now = instant("2026-11-10T09:00:00+09:00")
    beta = interval("GPU-S", "2026-10-04T12:00:00Z", "2026-10-04T13:00:00Z", "sakura", "kddi", "beta")
    await disputes.open_dispute(store, KDDI, beta, "outage", "the GPU was down")
    clock.now = instant("2026-11-12T09:00:00+09:00")
    hig = interval("GPU-S2", "2026-10-06T12:00:00Z", "2026-10-06T12:30:00Z", "sakura", "highreso", "hig-1")
    await disputes.open_dispute(store, HIGHRESO, hig, "not_used")
    clock.now = instant("2026-11-20T09:00:00+09:00")
    await payments.record(store, KDDI, "2026-10", "sakura", 56, "2026-11-20", "BANK-KDDI-1")
    paid = await payments.record(store, HIGHRESO, "2026-10", "sakura", 1000, "2026-11-20", "BANK-HIGH-1")
    clock.now = instant("2026-11-21T09:00:00+09:00")
    await payments.confirm(store, SAKURA, paid["id"])
    clock.now = CLOSE_NOVEMBER
    await books.statement(store, "2026-11", close=True)
    return store, clock


async def after_the_close(store: MemoryStore, clock: Clock) -> None:
    """What happens after November's close, which its documents must not show: sakura
    rejects kddi's open dispute, sakura confirms kddi's payment, highreso records the rest."""
    clock.now = CLOSE_NOVEMBER + 86_400
    await disputes.move(store, SAKURA, "dispute-2", "reject", "the GPU was up")
    listed = await payments.listing(store, SAKURA, with_payments=True)
    kddi_payment = next(p for row in listed["transfers"] for p in row["payments"] if p["from"] == "kddi")
    await payments.confirm(store, SAKURA, kddi_payment["id"])
    await payments.record(store, HIGHRESO, "2026-10", "sakura", 550, "2026-12-04", "BANK-HIGH-2")
