"""The workers' own figures for the operator's page: each worker's /metrics, read when
the page is asked (`GPULEDGER_WORKER_METRICS_URLS`, or the local stack's workers), for
how many answer and each partition's lag (records in Kafka after the last batch the
ledger wrote). The ledger's own positions are `Store.pipeline_positions`.

A host name that resolves to several addresses (a scaled compose service) is read at
each; a worker that does not answer within TIMEOUT_SECONDS counts as down. A partition
moved between workers is reported by the one whose committed position is furthest.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families

TIMEOUT_SECONDS = 2.0
MAX_BYTES = 4 << 20
LAG = "gpuledger_consumer_lag_records"
POSITION = "gpuledger_committed_position"

Partition = tuple[str, int]


@dataclass
class Workers:
    asked: int = 0  # endpoints read (a name resolving to N addresses counts N)
    up: int = 0
    lag: dict[Partition, int] = field(default_factory=dict)

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


def endpoints(url: str) -> list[str]:
    """The URL at each address its host resolves to (itself if it does not resolve)."""
    parts = urlsplit(url)
    try:
        found = socket.getaddrinfo(parts.hostname or "", parts.port or 80, type=socket.SOCK_STREAM)
    except OSError:
        return [url]
    addresses = sorted({info[4][0] for info in found})
    if len(addresses) <= 1:
        return [url]
    port = f":{parts.port}" if parts.port else ""
    return [urlunsplit(parts._replace(netloc=f"[{a}]{port}" if ":" in a else f"{a}{port}")) for a in addresses]


def figures(text: str) -> tuple[dict[Partition, int], dict[Partition, int]]:
    """(lag, committed position) per partition of one worker's metrics page."""
    lag: dict[Partition, int] = {}
    position: dict[Partition, int] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (LAG, POSITION):
            continue
        for sample in family.samples:
            key = (sample.labels.get("topic", ""), int(sample.labels.get("partition", "0")))
            (lag if family.name == LAG else position)[key] = int(sample.value)
    return lag, position


def read_one(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310 -- the operator's own URLs
            return answer.read(MAX_BYTES).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def combine(pages: list[str | None]) -> Workers:
    seen = Workers(asked=len(pages))
    furthest: dict[Partition, int] = {}
    for page in pages:
        if page is None:
            continue
        seen.up += 1
        lag, position = figures(page)
        for key, records in lag.items():
            if position.get(key, -1) >= furthest.get(key, -1):
                furthest[key] = position.get(key, -1)
                seen.lag[key] = records
    return seen


async def read(urls: tuple[str, ...]) -> Workers:
    """Every worker's figures now, read in threads (the event loop does not wait on them)."""
    targets = [target for url in urls for target in await asyncio.to_thread(endpoints, url)]
    pages = await asyncio.gather(*(asyncio.to_thread(read_one, target) for target in targets))
    return combine(list(pages))
