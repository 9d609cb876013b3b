"""What a record costs the ledger, in bytes: batches a worker did not read, and dead letters.

Given a compressed batch the worker did not decompress (an `UnreadBatch`, which only the
worker's fetcher makes), the record is one received event, `malformed`, whose detail
names the codec, the bound, the compressed size and its SHA-256. Given a rejected
event, its dead letter keeps its bytes whole within 1 MiB, else its first 4 KiB; always
its full size and SHA-256; and nothing at all when it refers to another's bytes.
"""

from __future__ import annotations

import hashlib

from ledger.domain import events
from ledger.domain.ports import DeadLetter
from ledger.domain.records import RAW_PREFIX_BYTES, Record, UnreadBatch, keep_raw, unpack
from schemas.wire import (
    BATCH_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    MAX_DECOMPRESSED_BATCH_BYTES,
    MAX_EVENT_BYTES,
)

SHA = hashlib.sha256(b"the compressed batch").digest()


def record(value: bytes, headers: dict | None = None) -> Record:
    return Record("gpu.usage", 0, 41, 1_790_000_000_000, value, headers or {})


def test_a_batch_the_worker_did_not_read_is_one_malformed_event_that_says_what_it_was():
    for headers in ({}, {CONTENT_TYPE_HEADER: BATCH_CONTENT_TYPE}):
        (item,) = unpack(record(UnreadBatch("zstd", 32_786, SHA), headers))
        assert item.outcome == events.MALFORMED and item.position == 0
        assert item.verdict.detail == (
            f"a zstd-compressed record batch that decompresses to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes; "
            f"sha256 {SHA.hex()}, 32786 bytes compressed"
        )
    (item,) = unpack(record(UnreadBatch("lz4", 90, SHA, "not lz4: truncated frame")))
    assert item.verdict.detail.startswith("a lz4-compressed record batch that cannot be decompressed (not lz4: truncated frame)")


def test_bytes_a_producer_sends_are_never_an_unread_batch():
    # The same empty value, or the detail's own words, from the wire: judged as an event.
    for value in (b"", b"a zstd-compressed record batch that decompresses to more than 33554432 bytes"):
        (item,) = unpack(record(value))
        assert item.outcome == events.MALFORMED and "compressed record batch" not in item.verdict.detail


def test_an_event_within_1_mib_is_kept_whole():
    for raw in (b"", b'{"id": "e"}', b"x" * MAX_EVENT_BYTES):
        kept = keep_raw(raw)
        assert (kept.stored, kept.size, kept.sha256, kept.whole) == (raw, len(raw), hashlib.sha256(raw).digest(), True)


def test_anything_larger_keeps_its_first_4_kib_its_size_and_its_hash():
    raw = bytes(range(256)) * (MAX_EVENT_BYTES // 256) + b"!"
    kept = keep_raw(raw)
    assert kept.stored == raw[:RAW_PREFIX_BYTES] and kept.size == MAX_EVENT_BYTES + 1
    assert kept.sha256 == hashlib.sha256(raw).digest() and not kept.whole


def test_an_unread_batch_keeps_no_bytes_and_the_compressed_batchs_size_and_hash():
    kept = keep_raw(UnreadBatch("gzip", 200_000, SHA))
    assert (kept.stored, kept.size, kept.sha256, kept.whole) == (b"", 200_000, SHA, False)
    assert type(kept.stored) is bytes


def letter(raw: bytes, **kwargs) -> DeadLetter:
    return DeadLetter("malformed", "d", raw, 0, "gpu.usage", 0, 1, 0, "", None, None, **kwargs)


def test_a_dead_letter_keeps_what_keep_raw_keeps_whatever_it_is_given():
    big = b"{" + b" " * (16 << 20)
    made = letter(big)
    assert (made.raw, made.raw_bytes, made.raw_sha256) == (big[:RAW_PREFIX_BYTES], len(big), hashlib.sha256(big).digest())
    small = letter(b"{}")
    assert (small.raw, small.raw_bytes) == (b"{}", 2)


def test_a_dead_letter_that_refers_to_anothers_bytes_keeps_none():
    made = letter(b'{"id": "e"}', raw_of=7)
    assert (made.raw, made.raw_of, made.raw_bytes, made.raw_sha256) == (
        b"", 7, 11, hashlib.sha256(b'{"id": "e"}').digest())
