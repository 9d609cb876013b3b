"""Usage events as SPEC.md requires them, with ids that make every re-send a duplicate."""

import orjson

from ledger.collect.events import event_id, usage_event
from ledger.collect.usage import Attribution, Run
from ledger.domain import events
from ledger.domain.instants import parse_instant
from tests.factories import agreement, catalog_text, load, price

RUN = Run("GPU-5f1c", Attribution("kddi", "acme", "H100"), 1_796_000_040, 20, 87, 1 << 30)
CATALOG = catalog_text(price("kddi", "H100", "500"), agreement("kddi", "sakura", "H100", wholesale="400"))


def test_the_same_run_is_the_same_bytes():
    assert usage_event("sakura", "node-1", RUN) == usage_event("sakura", "node-1", RUN)


def test_the_id_depends_on_gpu_minute_attribution_and_start():
    other_tenant = Run(RUN.gpu_uuid, Attribution("kddi", "beta", "H100"), RUN.start, RUN.seconds, None, None)
    later = Run(RUN.gpu_uuid, RUN.attribution, RUN.start + 60, RUN.seconds, None, None)
    other_gpu = Run("GPU-other", RUN.attribution, RUN.start, RUN.seconds, None, None)
    ids = {event_id("sakura", run) for run in (RUN, other_tenant, later, other_gpu)}
    assert len(ids) == 4
    # evidence does not change the id
    assert event_id("sakura", Run(RUN.gpu_uuid, RUN.attribution, RUN.start, RUN.seconds, 1, 2)) == event_id("sakura", RUN)


def test_the_event_passes_the_ledgers_checks_on_the_members_own_topic():
    raw = usage_event("sakura", "node-1", RUN)
    parsed = events.decode(raw)
    catalog = load(CATALOG)
    receipt_ms = (RUN.start + 3600) * 1000
    usage = events.check(parsed, receipt_ms, catalog, sender="sakura")
    assert isinstance(usage, events.Usage), usage
    assert (usage.gpu_uuid, usage.tenant, usage.seconds) == ("GPU-5f1c", "acme", 20)
    document = orjson.loads(raw)
    assert parse_instant(document["time"]) == RUN.start
    assert document["source"] == "//sakura/node-1"
    assert document["data"]["evidence"] == {"node": "node-1", "agent": "gpuledger-collect",
                                            "utilisation_percent": 87, "memory_used_bytes": 1 << 30}
