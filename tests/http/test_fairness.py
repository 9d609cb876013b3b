"""One member's volume does not stall the API for the others, against the real service.

Given a stack where kddi metered 40,000 one-second events of 40,000 invented tenants on
its own GPU in November (each a zero-yen invoice: free for kddi, and the statement's
largest part), then the first statement of November, computed from all of them, is
computed away from the API's event loop: /healthz keeps answering while it is; and the
statement the API computed is, byte for byte, the one `gpuledger settle` prints.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx
import orjson
import pytest

from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

TENANTS = 40_000
NOVEMBER = dt.datetime(2026, 11, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=9)))


def utc(instant: int) -> str:
    return dt.datetime.fromtimestamp(instant, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def flood_lines() -> bytes:
    start = int(NOVEMBER.timestamp())
    events = [
        {"specversion": "1.0", "id": f"flood-{i:06d}", "source": "//kddi/flood", "type": "gpu.usage.v1",
         "time": utc(start + i), "data": {"provider": "kddi", "reseller": "kddi", "tenant": f"invented-{i:06d}",
                                         "gpu_uuid": "GPU-kddi-flood-0001", "sku": "H100", "seconds": 1}}
        for i in range(TENANTS)
    ]
    events += [
        {"specversion": "1.0", "id": f"sakura-{i:03d}", "source": "//sakura/c", "type": "gpu.usage.v1",
         "time": utc(start + 86400 * 3 + i * 3600), "data": {"provider": "sakura", "reseller": "sakura",
                                                            "tenant": "sak-cust-00", "gpu_uuid": "GPU-sakura-0001",
                                                            "sku": "H100", "seconds": 3600}}
        for i in range(24)
    ]
    return b"\n".join(orjson.dumps(e) for e in events) + b"\n"


@pytest.fixture(scope="module")
def flooded(make_stack, tmp_path_factory):
    stack = make_stack()
    path = tmp_path_factory.mktemp("flood") / "flood.ndjson"
    path.write_bytes(flood_lines())
    stack.run("catalog", "load", str(SCENARIOS / "alliance-2026-q3" / "catalog.toml"))
    counts = stack.json("ingest", str(path), "--wait", "--timeout", "600", timeout=900)
    assert counts["accepted"] == TENANTS + 24, counts
    url = stack.env_values()["GPULEDGER_API_URL"]
    tokens = {m: stack.json("token", "create", "--member", m)["token"] for m in ("kddi", "sakura")}
    tokens["auditor"] = stack.json("token", "create", "--role", "auditor")["token"]
    return stack, url, tokens


async def healthz_while(url: str, token: str, path: str) -> tuple[float, float, list[float]]:
    """Ask `path` with curl (its 15 MB answer read by another process, not this loop) and
    ask /healthz one request after another until it is answered; (sent, answered, each
    /healthz answer's time)."""
    answers = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await client.get("/healthz")  # connected before the clock starts
        sent = time.monotonic()
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--fail-with-body", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", f"{url}{path}",
        )
        waiting = asyncio.create_task(curl.wait())
        while not waiting.done():
            assert (await client.get("/healthz")).status_code == 200
            answers.append(time.monotonic())
        answered = time.monotonic()
    assert waiting.result() == 0, "the statement was not answered 200"
    return sent, answered, answers


def test_healthz_answers_while_a_statement_of_many_tenants_is_computed(flooded):
    """The module's first statement of November: nobody asked for it before, so it is computed now."""
    _, url, tokens = flooded
    sent, answered, answers = asyncio.run(healthz_while(url, tokens["auditor"], "/v1/statements/2026-11"))
    took = answered - sent
    moments = [sent, *answers, answered]
    longest_gap = max(b - a for a, b in zip(moments, moments[1:], strict=False))
    # On the event loop, /healthz waited for the whole computation; away from it, its
    # longest wait is a small part of it, however fast or slow the machine.
    assert len(answers) >= 10, (took, len(answers))
    assert longest_gap < took / 3, (took, longest_gap)


def test_every_side_comes_from_the_one_statement_settle_prints(flooded):
    stack, url, tokens = flooded

    def get(who: str) -> httpx.Response:
        return httpx.get(f"{url}/v1/statements/2026-11", headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=60)

    alliance = get("auditor")
    assert alliance.content == stack.run("settle", "2026-11").stdout.rstrip(b"\n")
    lines = orjson.loads(alliance.content)["lines"]
    assert len(lines) == TENANTS + 1
    sakura = get("sakura").json()
    assert [line["tenant"] for line in sakura["lines"]] == ["sak-cust-00"]
    assert sakura["net_yen"] == {"sakura": 0}
    kddi = get("kddi").json()
    assert len(kddi["lines"]) == TENANTS and len(kddi["tenant_invoices"]) == TENANTS
