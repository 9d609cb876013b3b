"""Who sent it, and when: through the real broker and a worker that runs as in production.

SPEC.md, "Who sent it" and the receipt time. Given a worker that does not trust its
producers' timestamps (no --development-broker) on usage topics that `topic ensure`
created, when members write to their own topics, then an event naming another provider
is `wrong_provider` and bills nothing, the GPU's own provider's event bills, a record its
producer dated 18 months back is judged at the worker's clock (too late), and a member
added while the worker runs is read without a restart. A usage topic whose producers
could date their records, or none at all, is refused before the worker starts.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.wire import INGEST_HEADER
from tests.db import fetch
from tests.e2e.test_bad_input import event
from tests.scenario import SCENARIOS

pytestmark = pytest.mark.infra

EIGHTEEN_MONTHS_MS = 548 * 86_400_000
# Prices since 2024, so an 18-month-old event is priced: only the horizon can refuse it.
CATALOG = """
acceptance_horizon_days = 35
""" + "".join(f"""
[[members]]
id = "{m}"
name = "{m.upper()}"
""" for m in ("highreso", "kddi", "sakura")) + """
[[skus]]
id = "H200"

[[retail_prices]]
reseller = "kddi"
sku = "H200"
yen_per_gpu_hour = "780"
effective_from = "2024-01-01T00:00:00+09:00"

[[agreements]]
reseller = "kddi"
provider = "sakura"
sku = "H200"
wholesale_yen_per_gpu_hour = "520"
effective_from = "2024-01-01T00:00:00+09:00"
"""
NEWCO = """
[[members]]
id = "newco"
name = "NewCo"

[[retail_prices]]
reseller = "newco"
sku = "H200"
yen_per_gpu_hour = "700"
effective_from = "2026-01-01T00:00:00+09:00"
"""


def produce(stack, records: list[tuple[str, bytes, int | None, str]]) -> None:
    """(topic, value, timestamp_ms or None, ingest id) each, as a member's own producer."""

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        await producer.start()
        try:
            for topic, value, timestamp_ms, ingest_id in records:
                await producer.send_and_wait(topic, value, timestamp_ms=timestamp_ms,
                                             headers=[(INGEST_HEADER, ingest_id.encode())])
        finally:
            await producer.stop()

    asyncio.run(run())


def outcomes(stack, ingest_id: str, timeout: float = 90) -> dict:
    """The ingest's counts once something is decided (every test ingest is one event)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = fetch(stack.database_url, "SELECT * FROM intake_tallies WHERE ingest_id = $1", ingest_id)
        if rows:
            counts = {k: v for row in rows for k, v in dict(row).items()
                      if isinstance(v, int) and v and k not in ("id", "partition", "received")}
            return counts
        time.sleep(0.3)
    raise AssertionError(f"nothing decided for {ingest_id} in {timeout}s")


def create_topic(stack, name: str, config: dict) -> None:
    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 1, 1, topic_configs=config)])
        finally:
            await admin.close()

    asyncio.run(run())


def one(tenant: str, provider: str = "sakura", reseller: str = "kddi", **changes) -> bytes:
    return orjson.dumps(event(id=uuid.uuid4().hex, data={"provider": provider, "reseller": reseller,
                                                           "tenant": tenant, "gpu_uuid": f"GPU-{tenant}"}, **changes))


def test_a_worker_refuses_usage_topics_whose_producers_could_date_their_records(make_stack):
    stack = make_stack(workers=1)
    create_topic(stack, "dated.usage", {"message.timestamp.type": "CreateTime"})
    refused = stack.run("--topic", "dated.usage", "worker", "--group", "g-dated", check=False, timeout=60)
    assert refused.returncode == 2 and b"LogAppendTime" in refused.stderr
    assert len(refused.stderr.decode().strip().splitlines()) == 1  # one line, no traceback
    missing = stack.run("--topic", "absent.usage", "worker", "--group", "g-absent", check=False, timeout=60)
    assert missing.returncode == 2 and b"topic ensure" in missing.stderr


def test_members_report_their_own_gpus_at_the_brokers_time_and_new_members_without_a_restart(make_stack, tmp_path):
    stack = make_stack(workers=1)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    stack.run("catalog", "load", str(catalog))
    created = stack.json("--topic", "prod.usage", "topic", "ensure", "--replication-factor", "1", "--partitions", "2")
    assert created["topics"] == ["prod.usage", "prod.usage.highreso", "prod.usage.kddi", "prod.usage.sakura"]
    ready = tmp_path / "prod.ready"
    worker = stack.popen("--topic", "prod.usage", "worker", "--group", "g-prod", "--name", "prod",
                         "--ready-file", str(ready))
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the production worker did not start"
            time.sleep(0.3)
        now_ms = int(time.time() * 1000)
        long_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now_ms - EIGHTEEN_MONTHS_MS) / 1000))
        produce(stack, [
            ("prod.usage.kddi", one("forged"), None, "forged"),  # kddi reports sakura's GPU
            ("prod.usage.sakura", one("own"), None, "own"),  # sakura reports its own
            ("prod.usage", one("backdated", time=long_ago), now_ms - EIGHTEEN_MONTHS_MS, "backdated"),
            ("prod.usage", one("operator"), None, "operator"),  # the operator reports anyone's
        ])
        assert outcomes(stack, "forged") == {"wrong_provider": 1}
        assert outcomes(stack, "own") == {"accepted": 1}
        assert outcomes(stack, "backdated") == {"too_late": 1}
        assert outcomes(stack, "operator") == {"accepted": 1}
        # The same backdating works where producers' times are trusted (the development
        # broker's workers, on gpu.usage): what production refuses is the timestamp, not the event.
        produce(stack, [("gpu.usage", one("backdated-dev", time=long_ago), now_ms - EIGHTEEN_MONTHS_MS, "dev")])
        assert outcomes(stack, "dev") == {"accepted": 1}
        # A member joins while the worker runs: its topic is read within a watch or two.
        newco = tmp_path / "newco.toml"
        newco.write_text(NEWCO)
        stack.run("catalog", "load", str(newco))
        stack.run("--topic", "prod.usage", "topic", "ensure", "--replication-factor", "1", "--partitions", "2")
        produce(stack, [("prod.usage.newco", one("newco-own", provider="newco", reseller="newco"), None, "newco")])
        assert outcomes(stack, "newco", timeout=120) == {"accepted": 1}
        assert worker.poll() is None
        billed = fetch(stack.database_url, "SELECT tenant, sum(seconds) AS s FROM claims GROUP BY tenant ORDER BY tenant")
        assert {row["tenant"]: row["s"] for row in billed} == {
            "backdated-dev": 1, "newco-own": 1, "operator": 1, "own": 1}
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def test_a_members_events_over_http_go_to_its_own_topic(make_stack, tmp_path):
    stack = make_stack(workers=1)
    stack.run("catalog", "load", str(SCENARIOS / "alliance-2026-q3" / "catalog.toml"))
    import httpx

    url = stack.env_values()["GPULEDGER_API_URL"]
    token = stack.json("token", "create", "--member", "sakura")["token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/cloudevents+json"}
    forged = httpx.post(f"{url}/v1/events", content=one("http-forged", provider="kddi", reseller="kddi"),
                        headers=headers, timeout=30)
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "not_your_gpus"
    own = httpx.post(f"{url}/v1/events", content=one("http-own"), headers=headers, timeout=30)
    assert own.status_code == 202
    assert outcomes(stack, own.json()["ingest_id"]) == {"accepted": 1}
    topics = fetch(stack.database_url, "SELECT DISTINCT topic FROM consumer_positions")
    assert "gpu.usage.sakura" in {row["topic"] for row in topics}
