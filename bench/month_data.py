"""The month benchmark's alliance: its catalog, GPU registry and a month of usage events.

Owns: `Alliance` (members, SKUs, N GPUs with their provider, SKU and region, tenants
scaled with N), the catalog TOML (retail prices and agreements for every pair, a price
change and a renegotiated agreement mid-month, grants), the registry CSV (every GPU, a
few registered but never used, a few retired mid-month that keep reporting), and
`write_month`, which streams a month of hourly events to NDJSON files hour by hour:
memory holds one hour of lines and one small state per GPU, never the month.

Usage is sessions: a GPU is allocated to a tenant for a few hours (short jobs), days
(training) or the whole month (reserved inference), then idles for a gap, and reports
one event per hour of each allocation (`seconds` up to 3600, the last one partial), from
the allocation's own start second. Some reports come late (held back to a second file,
ingested after the first) and some twice: the same event re-sent, or the same seconds
re-reported by a second collector under another id. Everything comes from one seed.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ledger.domain.registry import registration_check_digit

PERIOD = "2026-11"
PERIOD_START = int(dt.datetime(2026, 11, 1, tzinfo=dt.timezone(dt.timedelta(hours=9))).timestamp())
DAYS_IN_PERIOD = 30
HOUR = 3600
MEMBERS = ("kanto", "kansai", "hokkaido", "kyushu")
SKUS = {"H100": "NVIDIA H100 80GB", "H200": "NVIDIA H200 141GB", "B200": "NVIDIA B200 180GB",
        "GB200": "NVIDIA GB200 NVL72, per GPU"}
# What each provider runs, and each SKU's base retail price (yen per GPU-hour).
FLEETS = {"kanto": ("H100", "H200", "GB200"), "kansai": ("H100", "B200"), "hokkaido": ("H200", "B200"),
          "kyushu": ("H100", "H200")}
BASE_PRICE = {"H100": 510, "H200": 780, "B200": 1180, "GB200": 1685}
REGIONS = ("jp-tokyo", "jp-osaka", "jp-ishikari", "jp-fukuoka")
LATE_FRACTION = 0.01  # reports held back to the late file
RESENT_FRACTION = 0.005  # the same event sent again (same id)
REREPORTED_FRACTION = 0.003  # the same seconds again from a second collector (new id)


def jst(day: int, hour: int = 0) -> str:
    return f"2026-11-{day:02d}T{hour:02d}:00:00+09:00"


def registration(index: int) -> str:
    twelve = f"{700000000000 + index * 7919:012d}"
    return f"T{registration_check_digit(twelve)}{twelve}"


@dataclass
class Alliance:
    gpus: int
    days: int = DAYS_IN_PERIOD
    seed: int = 20261101
    tenants: int = field(init=False)

    def __post_init__(self) -> None:
        self.tenants = max(len(MEMBERS), self.gpus // 2)

    def provider(self, gpu: int) -> str:
        return MEMBERS[gpu % len(MEMBERS)]

    def sku(self, gpu: int) -> str:
        fleet = FLEETS[self.provider(gpu)]
        return fleet[(gpu // len(MEMBERS)) % len(fleet)]

    def uuid(self, gpu: int) -> str:
        return f"GPU-{gpu:08x}-6d0b-4c1e-9a7b-{self.seed:012x}"

    def tenant(self, index: int) -> tuple[str, str]:
        """(reseller, tenant id) of tenant number `index`."""
        reseller = MEMBERS[index % len(MEMBERS)]
        return reseller, f"{reseller[:3]}-cust-{index:05d}"

    @property
    def unused_gpus(self) -> int:
        """Registered and never used: capacity without billing (1 %, at least one)."""
        return max(1, self.gpus // 100)

    def retired(self, gpu: int) -> bool:
        """One GPU in 200 retires mid-period and keeps reporting (refused) until the end."""
        return gpu % 200 == 199

    @property
    def end(self) -> int:
        return PERIOD_START + self.days * 86400


# --------------------------------------------------------------------------- catalog


def catalog_toml(alliance: Alliance) -> str:
    lines = ['currency = "JPY"', 'timezone = "Asia/Tokyo"', "tax_rate_percent = 10",
             "acceptance_horizon_days = 3650", "dispute_window_days = 3650", "require_registered_gpus = true", ""]
    for index, member in enumerate(MEMBERS):
        lines += ["[[members]]", f'id = "{member}"', f'name = "{member.title()} GPU Cloud"',
                  f'invoice_registration = "{registration(index)}"', ""]
    for sku, description in SKUS.items():
        lines += ["[[skus]]", f'id = "{sku}"', f'description = "{description}"', ""]
    lines += _prices() + _agreements() + _grants(alliance)
    return "\n".join(lines) + "\n"


def _prices() -> list[str]:
    lines = []
    for index, reseller in enumerate(MEMBERS):
        for sku, base in BASE_PRICE.items():
            price = f"{base + 12 * index}.{(1234 * (index + 1)) % 10000:04d}"
            lines += ["[[retail_prices]]", f'reseller = "{reseller}"', f'sku = "{sku}"',
                      f'yen_per_gpu_hour = "{price}"', 'effective_from = "2026-01-01T00:00:00+09:00"', ""]
    # A price change mid-month: two versions of kansai's H200 lines.
    lines += ["[[retail_prices]]", 'reseller = "kansai"', 'sku = "H200"', 'yen_per_gpu_hour = "745.5"',
              f'effective_from = "{jst(15)}"', ""]
    return lines


def _agreements() -> list[str]:
    lines = []
    for r, reseller in enumerate(MEMBERS):
        for p, provider in enumerate(MEMBERS):
            if reseller == provider:
                continue
            for sku in FLEETS[provider]:
                terms = (f'wholesale_yen_per_gpu_hour = "{BASE_PRICE[sku] * 68 // 100}"' if (r + p) % 2
                         else f"provider_share_bps = {7000 + 250 * ((r + p) % 3)}")
                lines += ["[[agreements]]", f'reseller = "{reseller}"', f'provider = "{provider}"', f'sku = "{sku}"',
                          'effective_from = "2026-01-01T00:00:00+09:00"', terms, ""]
    # Renegotiated mid-month, at an hour that is not a day's start.
    lines += ["[[agreements]]", 'reseller = "kanto"', 'provider = "kansai"', 'sku = "H100"',
              f'effective_from = "{jst(20, 12)}"', "provider_share_bps = 6800", ""]
    return lines


def _grants(alliance: Alliance) -> list[str]:
    """One grant per 40 tenants, the funder the tenant's reseller or another member."""
    lines = []
    for index in range(0, alliance.tenants, 40):
        reseller, tenant = alliance.tenant(index)
        funder = MEMBERS[(index // 40) % len(MEMBERS)]
        lines += ["[[grants]]", f'id = "grant-{index:05d}"', f'funder = "{funder}"', f'reseller = "{reseller}"',
                  f'tenant = "{tenant}"', f"amount_yen = {20_000 + 1_000 * (index % 97)}",
                  f'first_period = "{PERIOD}"', f'last_period = "{PERIOD}"', ""]
    return lines


def registry_csv(alliance: Alliance) -> str:
    rows = ["uuid,provider,sku,region,registered_from,retired_from"]
    for gpu in range(alliance.gpus + alliance.unused_gpus):
        retired = jst(1 + alliance.days // 2, 1 + gpu % 20) if alliance.retired(gpu) else ""
        rows.append(f"{alliance.uuid(gpu)},{alliance.provider(gpu)},{alliance.sku(gpu)},"
                    f"{REGIONS[gpu % len(REGIONS)]},2026-06-01T00:00:00+09:00,{retired}")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- events


@dataclass
class Written:
    """What `write_month` wrote: event counts by file and kind, the bytes, the time."""

    main: Path
    late: Path
    events: int = 0
    late_events: int = 0
    resent: int = 0
    rereported: int = 0
    gpu_seconds: int = 0
    bytes: int = 0
    seconds: float = 0.0


class _Gpu:
    """One GPU's allocation now: whose it is until when, and the start of its next report."""

    __slots__ = ("next", "until", "reseller", "tenant")

    def __init__(self, start: int) -> None:
        self.next, self.until, self.reseller, self.tenant = start, start, "", ""


def _allocate(alliance: Alliance, rng: random.Random, state: _Gpu, now: int) -> None:
    """A new allocation after an idle gap: short jobs, training runs or the whole month."""
    pattern = rng.random()
    if pattern < 0.5:
        hours, idle = rng.uniform(1, 8), 3 * HOUR
    elif pattern < 0.95:
        hours, idle = rng.uniform(24, 7 * 24), 18 * HOUR
    else:
        hours, idle = 31 * 24, 0
    gap = int(rng.expovariate(1 / idle)) if idle else 0
    start = now + gap
    state.next, state.until = start, start + int(hours * HOUR)
    # Skewed: a few tenants use many GPUs, most use a few.
    state.reseller, state.tenant = alliance.tenant(int(alliance.tenants * rng.random() ** 2))


def _event(alliance: Alliance, gpu: int, state: _Gpu, seconds: int, event_id: str, collector: str) -> bytes:
    provider = alliance.provider(gpu)
    return orjson.dumps({
        "specversion": "1.0", "id": event_id, "source": f"//{provider}/{collector}", "type": "gpu.usage.v1",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.next)), "datacontenttype": "application/json",
        "data": {"provider": provider, "reseller": state.reseller, "tenant": state.tenant,
                 "gpu_uuid": alliance.uuid(gpu), "sku": alliance.sku(gpu), "seconds": seconds},
    })


def _hour_of_events(alliance: Alliance, rng: random.Random, gpus: list[_Gpu], hour_end: int,
                    main: list[bytes], late: list[bytes], written: Written) -> None:
    """Every report that starts before `hour_end`, into `main` or (held back) `late`."""
    for gpu, state in enumerate(gpus):
        while state.next < hour_end:
            if state.next >= state.until:
                _allocate(alliance, rng, state, state.until)
                continue
            seconds = min(HOUR, state.until - state.next, alliance.end - state.next)
            if seconds <= 0:
                state.next = alliance.end
                break
            line = _event(alliance, gpu, state, seconds, f"{gpu:06d}-{state.next}", f"collector-{gpu % 3}")
            draw = rng.random()
            (late if draw < LATE_FRACTION else main).append(line)
            if draw > 1 - RESENT_FRACTION:
                late.append(line)
                written.resent += 1
            elif draw > 1 - RESENT_FRACTION - REREPORTED_FRACTION:
                late.append(_event(alliance, gpu, state, seconds, f"b-{gpu:06d}-{state.next}", "collector-b"))
                written.rereported += 1
            written.events += 1
            written.gpu_seconds += seconds
            state.next += seconds


def write_month(alliance: Alliance, folder: Path, on_day=None) -> Written:
    """Stream the month's events to month.ndjson and late.ndjson in `folder`, hour by hour."""
    started = time.perf_counter()
    rng = random.Random(alliance.seed)
    written = Written(folder / "month.ndjson", folder / "late.ndjson")
    gpus = []
    for _ in range(alliance.gpus):
        state = _Gpu(PERIOD_START)
        _allocate(alliance, rng, state, PERIOD_START - rng.randrange(0, 12 * HOUR))
        state.next = max(state.next, PERIOD_START)
        gpus.append(state)
    with open(written.main, "wb") as main_file, open(written.late, "wb") as late_file:
        late_lines: list[bytes] = []
        for hour in range(alliance.days * 24):
            main_lines: list[bytes] = []
            _hour_of_events(alliance, rng, gpus, PERIOD_START + (hour + 1) * HOUR, main_lines, late_lines, written)
            if main_lines:
                main_file.write(b"\n".join(main_lines) + b"\n")
            if late_lines and (len(late_lines) > 10_000 or hour == alliance.days * 24 - 1):
                late_file.write(b"\n".join(late_lines) + b"\n")
                written.late_events += len(late_lines)
                late_lines.clear()
            if on_day and hour % 24 == 23:
                on_day(hour // 24 + 1, written.events)
    written.bytes = written.main.stat().st_size + written.late.stat().st_size
    written.seconds = time.perf_counter() - started
    return written

