"""Dead letters keep bounded bytes, and replays never multiply them (in-memory store).

Given an event over 1 MiB, or a compressed batch the worker did not read, its dead letter
keeps a prefix (or nothing), its size and SHA-256, and is listed as such; replaying it
by id is refused (409 `not_replayable`, exit 2) and nothing is replayed, while a replay
by filter leaves it out and counts it. Given a replay that is rejected again, the new
dead letter refers to the original's bytes instead of copying them, and can itself be
replayed from them.
"""

from __future__ import annotations

import hashlib

import pytest

from ledger.domain.access import OPERATOR
from ledger.domain.records import RAW_PREFIX_BYTES, Record, UnreadBatch
from ledger.service import deadletters
from ledger.service.deadletters import DeadLettersNotReplayable
from ledger.service.intake import Intake
from schemas.wire import CONTENT_TYPE_HEADER, INGEST_HEADER, MAX_EVENT_BYTES, SINGLE_CONTENT_TYPE
from tests.factories import DEFAULT_CATALOG, encode, ms, usage_event
from tests.service.conftest import TOPIC, load_catalog

RECEIVED_MS = ms("2026-10-03T13:00:00Z")
B200_PRICE = ('[[retail_prices]]\nreseller = "kddi"\nsku = "B200"\nyen_per_gpu_hour = "1"\n'
              'effective_from = "2026-01-01T00:00:00+09:00"\n')


def record(offset: int, value: bytes) -> Record:
    headers = {CONTENT_TYPE_HEADER: SINGLE_CONTENT_TYPE, INGEST_HEADER: b"one"}
    return Record(TOPIC, 0, offset, RECEIVED_MS, value, headers)


async def listed(store) -> list[dict]:
    return (await deadletters.page(store, None))["items"]


async def test_an_event_over_1_mib_keeps_its_first_4_kib_and_cannot_be_replayed_by_id(store):
    await load_catalog(store, DEFAULT_CATALOG)
    huge = b'{"padding": "' + b"x" * MAX_EVENT_BYTES + b'"}'
    await Intake(store).apply([record(0, huge)])
    (dead,) = await listed(store)
    assert dead["reason"] == "malformed" and dead["raw_bytes"] == len(huge) and not dead["raw_whole"]
    assert dead["raw"] == huge[:RAW_PREFIX_BYTES].decode() and dead["raw_sha256"] == hashlib.sha256(huge).hexdigest()
    with pytest.raises(DeadLettersNotReplayable) as refused:
        await deadletters.replay(store, OPERATOR, ids=[dead["id"]])
    assert (refused.value.http_status, refused.value.exit_code, refused.value.code) == (409, 2, "not_replayable")
    assert str(dead["id"]) in str(refused.value)
    assert not (await listed(store))[0]["replayed"]


async def test_a_batch_the_worker_did_not_read_is_listed_with_its_hash_and_never_replayed(store):
    await load_catalog(store, DEFAULT_CATALOG)
    sha = hashlib.sha256(b"compressed").digest()
    await Intake(store).apply([record(0, UnreadBatch("zstd", 32_786, sha))])
    (dead,) = await listed(store)
    assert (dead["raw"], dead["raw_bytes"], dead["raw_whole"], dead["raw_sha256"]) == ("", 32_786, False, sha.hex())
    assert "decompresses to more than" in dead["detail"]
    with pytest.raises(DeadLettersNotReplayable):
        await deadletters.replay(store, OPERATOR, ids=[dead["id"]])


async def test_a_replay_by_filter_leaves_prefixes_out_and_counts_them(store):
    await load_catalog(store, DEFAULT_CATALOG)
    huge = b"[" + b" " * MAX_EVENT_BYTES + b"]"
    await Intake(store).apply([record(0, huge), record(1, b"[]")])
    result = await deadletters.replay(store, OPERATOR, reason="malformed")
    assert (result["replayed"], result["skipped_not_replayable"], result["skipped_already_replayed"]) == (1, 1, 0)
    assert result["rejected"] == {"malformed": 1}


async def test_a_replay_rejected_again_refers_to_the_original_bytes_instead_of_copying_them(store):
    await load_catalog(store, DEFAULT_CATALOG)
    event = encode(usage_event(sku="B200"))
    await Intake(store).apply([record(0, event)])
    (first,) = await listed(store)
    again = await deadletters.replay(store, OPERATOR, ids=[first["id"]])  # no price yet: rejected again
    assert again["rejected"] == {"no_price": 1}
    second = (await listed(store))[1]
    stored = store.state.dead_letters  # (each transaction of the memory store makes a new list)
    assert (stored[1].raw, stored[1].raw_of) == (b"", first["id"])  # no copy of the bytes
    assert (second["raw"], second["raw_bytes"], second["raw_whole"]) == (event.decode(), len(event), True)
    assert second["raw_sha256"] == first["raw_sha256"]
    # Rejected once more: it still refers to the dead letter that holds the bytes.
    await deadletters.replay(store, OPERATOR, ids=[second["id"]])
    stored = store.state.dead_letters
    assert (stored[2].raw, stored[2].raw_of) == (b"", first["id"])
    assert sum(len(letter.raw) for letter in stored) == len(event)
    # And once the price is there, the latest is replayed from those bytes and billed.
    await load_catalog(store, DEFAULT_CATALOG + B200_PRICE)
    billed = await deadletters.replay(store, OPERATOR, ids=[(await listed(store))[2]["id"]])
    assert (billed["replayed"], billed["accepted"]) == (1, 1)
