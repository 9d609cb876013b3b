"""Builders shared by the unit tests of the pure domain: catalogs, events, ledgers.

Everything here is plain data: a catalog is TOML text, an event is a dict, and
`InMemoryLedger` (tests/model.py) is the one place state lives.
"""

from __future__ import annotations

import json

from ledger.domain.catalog import Catalog
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.instants import parse_instant
from tests.model import InMemoryLedger

MEMBERS = ("kddi", "sakura", "highreso")
SKUS = ("H100", "H200", "B200", "GB200")
JAN_1_JST = "2026-01-01T00:00:00+09:00"


def instant(text: str) -> int:
    """Unix seconds of an RFC 3339 instant (a test typo fails loudly)."""
    value = parse_instant(text)
    assert value is not None, text
    return value


def ms(text: str) -> int:
    return instant(text) * 1000


def price(reseller: str, sku: str, yen: str, effective_from: str = JAN_1_JST) -> str:
    return (
        "[[retail_prices]]\n"
        f'reseller = "{reseller}"\nsku = "{sku}"\n'
        f'yen_per_gpu_hour = "{yen}"\neffective_from = "{effective_from}"\n\n'
    )


def agreement(
    reseller: str,
    provider: str,
    sku: str,
    *,
    wholesale: str | None = None,
    share_bps: int | None = None,
    effective_from: str = JAN_1_JST,
) -> str:
    text = (
        "[[agreements]]\n"
        f'reseller = "{reseller}"\nprovider = "{provider}"\nsku = "{sku}"\n'
        f'effective_from = "{effective_from}"\n'
    )
    if wholesale is not None:
        text += f'wholesale_yen_per_gpu_hour = "{wholesale}"\n'
    if share_bps is not None:
        text += f"provider_share_bps = {share_bps}\n"
    return text + "\n"


def catalog_text(
    *versions: str,
    settings: str = "",
    members: tuple[str, ...] = MEMBERS,
    skus: tuple[str, ...] = SKUS,
) -> str:
    """A catalog file: `settings` lines, the members and SKUs, then `versions` (price/agreement)."""
    text = settings + "\n"
    for member in members:
        text += f'[[members]]\nid = "{member}"\nname = "{member.upper()}"\n\n'
    for sku in skus:
        text += f'[[skus]]\nid = "{sku}"\ndescription = "NVIDIA {sku}"\n\n'
    return text + "".join(versions)


# The default catalog of the event tests. With provider sakura and reseller kddi:
# H200 passes every check, H100 has a price but no agreement, B200 has an agreement but
# no price before December, GB200 has neither.
DEFAULT_VERSIONS = (
    price("kddi", "H200", "780"),
    price("kddi", "H100", "510"),
    price("kddi", "B200", "1200", "2026-12-01T00:00:00+09:00"),
    price("sakura", "H200", "815"),
    price("highreso", "H200", "800"),
    agreement("kddi", "sakura", "H200", wholesale="520"),
    agreement("kddi", "sakura", "B200", wholesale="900"),
    agreement("kddi", "highreso", "H200", share_bps=7000),
    agreement("sakura", "kddi", "H200", wholesale="600"),
)
DEFAULT_CATALOG = catalog_text(*DEFAULT_VERSIONS)


def load(
    text: str = DEFAULT_CATALOG, base: Catalog | None = None, closed_before: int | None = None
) -> Catalog:
    """The catalog after loading `text` onto `base` (an empty catalog by default)."""
    return (base or Catalog()).merge(parse_catalog(text.encode()), closed_before)


def new_ledger(*texts: str) -> InMemoryLedger:
    """An in-memory ledger with each catalog text loaded in turn (the default catalog if none)."""
    ledger = InMemoryLedger()
    for text in texts or (DEFAULT_CATALOG,):
        ledger.load_catalog(text.encode())
    return ledger


def usage_event(
    *,
    time: str = "2026-10-03T12:00:00Z",
    seconds: object = 1,
    provider: object = "sakura",
    reseller: object = "kddi",
    tenant: object = "acme",
    gpu_uuid: object = "GPU-0001",
    sku: object = "H200",
    event_id: str = "0192f1c2-7b3a-7c55-9d1e-5a4b3c2d1e0f",
    source: str = "//sakura/ishikari-1/node-042",
) -> dict:
    """A valid CloudEvent of SPEC.md (with the default arguments)."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": "gpu.usage.v1",
        "time": time,
        "data": {
            "provider": provider,
            "reseller": reseller,
            "tenant": tenant,
            "gpu_uuid": gpu_uuid,
            "sku": sku,
            "seconds": seconds,
        },
    }


def encode(event: object) -> bytes:
    return json.dumps(event).encode()


def on_time_ms(event: dict) -> int:
    """A receipt time at which the event is neither `future` nor `too_late`: its end."""
    return (instant(event["time"]) + event["data"]["seconds"]) * 1000


def send(ledger: InMemoryLedger, event: dict, receipt_ms: int | None = None) -> str:
    """Outcome of receiving `event` (on time unless `receipt_ms` is given)."""
    return ledger.receive(encode(event), on_time_ms(event) if receipt_ms is None else receipt_ms)


def total_gpu_seconds(statement: dict) -> int:
    return sum(line["gpu_seconds"] for line in statement["lines"])
