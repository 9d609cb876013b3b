"""Bad input never stops a worker: whatever a record holds, decoding and checking decide.

Given arbitrary bytes, or arbitrary JSON, as a single event or as a batch record, when
the worker unpacks and checks it, then every received event gets a verdict (a checked
usage or a rejection with a reason) and nothing raises.
"""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain import events
from ledger.domain.catalog import Catalog
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.records import Record, unpack
from schemas.wire import BATCH_CONTENT_TYPE, encode_batch
from tests.scenario import SCENARIOS

CATALOG = Catalog().merge(parse_catalog((SCENARIOS / "alliance-2026-q3" / "catalog.toml").read_bytes()), None)
BATCH = {"content-type": BATCH_CONTENT_TYPE}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"specversion": st.sampled_from(["1.0", "0.3", 1]), "id": st.text(max_size=3), "source": st.text(max_size=3),
     "type": st.sampled_from(["gpu.usage.v1", "x"]), "time": st.sampled_from(["2026-10-03T12:00:00Z", "2026-02-30T00:00:00Z", "x"]),
     "data": st.fixed_dictionaries({}, optional={
         "provider": st.sampled_from(["kddi", "sakura", "", 1]), "reseller": st.sampled_from(["kddi", "highreso", None]),
         "tenant": st.text(max_size=70), "gpu_uuid": st.text(max_size=10), "sku": st.sampled_from(["H200", "B200", "TPU"]),
         "seconds": json_values})},
)


def decide(record: Record) -> list:
    verdicts = []
    for item in unpack(record):
        verdict = item.verdict
        if isinstance(verdict, dict):
            verdict = events.check(verdict, 1_795_000_000_000, CATALOG)
        assert isinstance(verdict, events.Usage | events.Rejection), verdict
        verdicts.append(verdict)
    return verdicts


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_get_a_verdict(value, as_batch):
    verdicts = decide(Record("gpu.usage", 0, 0, 1_795_000_000_000, value, BATCH if as_batch else {}))
    assert as_batch or len(verdicts) == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values | event_like, max_size=5), st.booleans())
def test_any_json_gets_a_verdict(values, one_per_line):
    raws = [orjson.dumps(v) for v in values]
    value = encode_batch(raws) if one_per_line else orjson.dumps(values)
    verdicts = decide(Record("gpu.usage", 0, 0, 1_795_000_000_000, value, BATCH))
    assert len(verdicts) == len(values)
    for raw in raws:
        assert len(decide(Record("gpu.usage", 0, 0, 1_795_000_000_000, raw, {}))) == 1
