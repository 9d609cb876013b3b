"""Kafka record batches built by hand, for the tests of bounded decompression.

`bomb` makes a valid v2 record batch of one record whose value is `size` zero bytes,
compressed with a Kafka codec, without ever holding those bytes: the compressors are fed
1 MiB at a time (a zstd batch of 1 GiB is about 32 KB). `produce` sends batches as
they are, one produce request each, with aiokafka's own client: a producer would build
(and hold) the batch itself.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator

import cramjam
from aiokafka import AIOKafkaClient
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.util import calc_crc32c, encode_varint
from aiokafka.structs import TopicPartition

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
HEADER = struct.Struct(">qiibIhiqqqhii")  # a v2 batch's header (aiokafka's DefaultRecordBatch)
ATTRIBUTES_AT = struct.calcsize(">qiibI")  # the CRC covers the batch from its attributes on
CHUNK = 1 << 20


def _varint(value: int) -> bytes:
    out = bytearray()
    encode_varint(value, out.append)
    return bytes(out)


def record_pieces(size: int) -> Iterator[bytes]:
    """The records section of a batch of one record: no key, `size` zero bytes of value."""
    body_tail = _varint(0)  # no headers
    head = b"\x00" + _varint(0) + _varint(0) + _varint(-1) + _varint(size)  # attrs, ts, offset, no key
    yield _varint(len(head) + size + len(body_tail)) + head
    zeros = bytes(CHUNK)
    left = size
    while left:
        step = min(left, CHUNK)
        yield zeros if step == CHUNK else bytes(step)
        left -= step
    yield body_tail


def compress(codec: str, pieces: Iterator[bytes]) -> bytes:
    """The pieces compressed as aiokafka's decoders read that codec."""
    if codec == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return b"".join(compressor.compress(p) for p in pieces) + compressor.flush()
    if codec == "zstd":
        stream = cramjam.zstd.Compressor(level=3)
    elif codec == "lz4":
        stream = cramjam.lz4.Compressor(level=9, content_checksum=False, block_linked=False)
    else:  # snappy: xerial's framing of raw blocks, as Kafka's Java client writes it
        header = struct.pack("!bccccccBii", -126, b"S", b"N", b"A", b"P", b"P", b"Y", 0, 1, 1)
        blocks = []
        for piece in _rechunk(pieces, 32 << 10):
            block = bytes(cramjam.snappy.compress_raw(piece))
            blocks.append(struct.pack("!i", len(block)) + block)
        return header + b"".join(blocks)
    for piece in pieces:
        stream.compress(piece)
    return bytes(stream.finish())


def _rechunk(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def batch(codec: str, records: bytes, count: int = 1, timestamp_ms: int | None = None) -> bytes:
    """A v2 record batch at offset 0 whose records section is `records`, compressed."""
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    header = HEADER.pack(0, HEADER.size - 12 + len(records), 0, 2, 0, CODECS[codec], count - 1,
                         stamp, stamp, -1, -1, -1, count)
    whole = bytearray(header + records)
    struct.pack_into(">I", whole, ATTRIBUTES_AT - 4, calc_crc32c(bytes(whole[ATTRIBUTES_AT:])))
    return bytes(whole)


def bomb(codec: str, size: int) -> bytes:
    """A batch of one record whose value is `size` zero bytes, compressed with `codec`."""
    return batch(codec, compress(codec, record_pieces(size)))


async def produce(bootstrap: str, topic: str, partition: int, batches: list[bytes]) -> None:
    """Send each batch as it is to (topic, partition), one produce request each, acks=1."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        client.add_topic(topic)
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        for one in batches:
            request = ProduceRequest(required_acks=1, timeout=30_000, topics=[(topic, [(partition, one)])],
                                     transactional_id=None)
            response = await client.send(leader, request)
            errors = [p[1] for _, parts in response.topics for p in parts]
            assert errors == [0], f"the broker refused a batch: error codes {errors}"
    finally:
        await client.close()
