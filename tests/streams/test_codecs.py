"""streams.codecs: every Kafka codec decompressed with a bound, and aiokafka calling them.

Given a batch within the bound, each decoder makes exactly the bytes of aiokafka's own
decoder (gzip members, xerial and raw snappy, lz4 frames, zstd frames); given one over
it, it refuses (`BatchRefused`) having made no more than the bound: measured in a
process of its own, from /proc's peak RSS. Given what is not valid in its codec, it
refuses too, where aiokafka's decoder raises. And aiokafka's C extension, which reads
every fetched batch, calls these decoders once they are installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from functools import partial

import aiokafka.codec as aiokafka_codec
import cramjam
import pytest
from aiokafka.record import memory_records
from aiokafka.record._crecords import (
    DefaultRecordBatchBuilder,
    LegacyRecordBatchBuilder,
    MemoryRecords,
)

from ledger.domain.records import UnreadBatch
from schemas.wire import MAX_DECOMPRESSED_BATCH_BYTES
from streams import codecs
from streams.codecs import BatchRefused
from tests.conftest import ROOT
from tests.kafka_batches import compress

LIMIT = 1 << 20

ENCODE = {
    "gzip": aiokafka_codec.gzip_encode,
    "snappy (xerial)": aiokafka_codec.snappy_encode,
    "snappy (raw)": lambda data: bytes(aiokafka_codec.snappy_encode(data, xerial_compatible=False)),
    "lz4": aiokafka_codec.lz4_encode,
    "zstd": aiokafka_codec.zstd_encode,
}
THEIRS = {
    "gzip": aiokafka_codec.gzip_decode, "snappy (xerial)": aiokafka_codec.snappy_decode,
    "snappy (raw)": aiokafka_codec.snappy_decode, "lz4": aiokafka_codec.lz4_decode,
    "zstd": aiokafka_codec.zstd_decode,
}
OURS = {
    "gzip": codecs.gzip_decode, "snappy (xerial)": codecs.snappy_decode, "snappy (raw)": codecs.snappy_decode,
    "lz4": codecs.lz4_decode, "zstd": codecs.zstd_decode,
}
SAMPLES = {
    "empty": b"",
    "one byte": b"x",
    "random": os.urandom(300_000),
    "events": b"\n".join(b'{"id": "e-%d", "data": {"seconds": 60}}' % i for i in range(20_000)),
    "the limit exactly": bytes(LIMIT),
}


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("codec", ENCODE)
def test_within_the_bound_the_bytes_are_aiokafkas(codec, sample):
    compressed = ENCODE[codec](SAMPLES[sample])
    if (codec, sample) == ("snappy (xerial)", "empty"):
        # xerial's header alone is not detected as xerial (aiokafka wants more than 16
        # bytes) and is not raw snappy: aiokafka cannot read its own empty batch, nor can we.
        with pytest.raises(Exception):  # noqa: B017 - cramjam's DecompressionError
            THEIRS[codec](compressed)
        with pytest.raises(BatchRefused):
            OURS[codec](compressed, limit=LIMIT)
        return
    assert bytes(OURS[codec](compressed, limit=LIMIT)) == THEIRS[codec](compressed) == SAMPLES[sample]


@pytest.mark.parametrize("codec", ENCODE)
def test_one_byte_over_the_bound_is_refused_with_the_batchs_size_and_hash(codec):
    compressed = ENCODE[codec](bytes(LIMIT + 1))
    with pytest.raises(BatchRefused) as refused:
        OURS[codec](compressed, limit=LIMIT)
    unread = refused.value.unread()
    assert isinstance(unread, UnreadBatch) and unread == b"" and unread.problem is None
    assert unread.compressed_bytes == len(compressed)
    assert unread.sha256.hex() == hashlib.sha256(compressed).hexdigest()
    assert unread.codec == codec.split()[0]


def test_gzip_members_and_the_zero_padding_between_them_read_as_gzipfile_reads_them():
    two = aiokafka_codec.gzip_encode(b"first ") + b"\x00" * 7 + aiokafka_codec.gzip_encode(b"second")
    assert bytes(codecs.gzip_decode(two, limit=LIMIT)) == aiokafka_codec.gzip_decode(two) == b"first second"
    # The bound counts every member: two of 600 KiB are over 1 MiB together.
    big = aiokafka_codec.gzip_encode(bytes(600 << 10))
    with pytest.raises(BatchRefused):
        codecs.gzip_decode(big + big, limit=LIMIT)


def test_zstd_frames_one_after_another_read_as_aiokafka_reads_them():
    two = aiokafka_codec.zstd_encode(b"first ") + aiokafka_codec.zstd_encode(b"second")
    assert bytes(codecs.zstd_decode(two, limit=LIMIT)) == aiokafka_codec.zstd_decode(two) == b"first second"


def test_a_batch_needing_a_larger_buffer_than_the_first_grows_into_it():
    # Zeros shrink about a thousandfold: far past the first buffer, within the bound.
    sample = bytes(MAX_DECOMPRESSED_BATCH_BYTES)
    for codec in ("zstd", "lz4"):
        assert bytes(OURS[codec](ENCODE[codec](sample))) == sample


def test_a_frames_stated_size_is_a_hint_a_stated_size_over_the_bound_a_refusal():
    one_shot = aiokafka_codec.zstd_encode(SAMPLES["events"])  # states its size
    assert codecs.declared_size("zstd", one_shot) == len(SAMPLES["events"])
    with pytest.raises(BatchRefused) as refused:
        codecs.zstd_decode(one_shot, limit=len(SAMPLES["events"]) - 1)
    assert refused.value.problem is None
    # A frame that states too little is read whole all the same (the buffer grows)...
    two = one_shot + aiokafka_codec.zstd_encode(SAMPLES["events"])
    assert bytes(codecs.zstd_decode(two, limit=4 * LIMIT)) == SAMPLES["events"] * 2
    # ...and one that states nothing too.
    stream = cramjam.zstd.Compressor()
    stream.compress(SAMPLES["events"])
    streamed = bytes(stream.finish())
    assert codecs.declared_size("zstd", streamed) is None
    assert bytes(codecs.zstd_decode(streamed, limit=LIMIT)) == SAMPLES["events"]


@pytest.mark.parametrize("codec", ENCODE)
def test_what_is_not_valid_in_its_codec_is_refused_where_aiokafka_raises(codec):
    compressed = ENCODE[codec](SAMPLES["random"])
    cut = compressed[: len(compressed) // 2]
    with pytest.raises(Exception):  # noqa: B017 - aiokafka raises whatever its library raises
        THEIRS[codec](cut)
    with pytest.raises(BatchRefused) as refused:
        OURS[codec](cut, limit=LIMIT)
    assert refused.value.problem


def test_a_snappy_block_that_declares_more_than_the_bound_is_refused_before_decompressing():
    declared = bytes([0x80, 0x80, 0x80, 0x80, 0x0F])  # varint 2^32 - 2^28: 3.75 GiB, then nothing
    with pytest.raises(BatchRefused) as refused:
        codecs.snappy_decode(declared + b"\x00", limit=LIMIT)
    assert refused.value.problem is None


# -- memory: a bomb costs no more than the bound ---------------------------------------

MEASURE = """
import json, sys
from streams import codecs
data = open(sys.argv[2], "rb").read()
def status(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")  # the peak RSS starts again from here
before = status("VmRSS:")
try:
    getattr(codecs, sys.argv[1])(data)
    outcome = "decoded"
except codecs.BatchRefused as refused:
    outcome = "refused" if refused.problem is None else refused.problem
print(json.dumps({"outcome": outcome, "peak_growth": status("VmHWM:") - before, "compressed": len(data)}))
"""

BOMB_BYTES = 1 << 30


def _zeros(size: int):
    chunk = bytes(1 << 20)
    for _ in range(size >> 20):
        yield chunk


MIB = 1 << 20
# What refusing may cost beyond the bound: a few MiB of the decoder's own (gzip: the
# last step and bytearray's slack; lz4: a block, at most 4 MiB; zstd: its window, 2 MiB
# at level 3). A zstd frame may declare a window of up to 128 MiB, which fills as the
# decoder writes, so refusing one costs the bound twice.
BEYOND = {"gzip": 6 * MIB, "snappy": 6 * MIB, "lz4": 8 * MIB, "zstd": 6 * MIB,
          "zstd, 128 MiB window": MAX_DECOMPRESSED_BATCH_BYTES + 6 * MIB}


def _bomb(codec: str) -> tuple[bytes, int]:
    size = BOMB_BYTES if codec != "gzip" else BOMB_BYTES // 4  # deflate: 1 GiB takes seconds to make
    data = compress(codec.split(",")[0], _zeros(size))
    if codec == "zstd, 128 MiB window":
        framed = bytearray(data)
        assert framed[4] & 0x20 == 0, "the frame has a window descriptor"
        framed[5] = (27 - 10) << 3  # window log 27: what zstd's decoder accepts by default
        data = bytes(framed)
    return data, size


@pytest.mark.heavy  # measured in a process of its own
@pytest.mark.parametrize("codec", BEYOND)
def test_a_1_gib_bomb_is_refused_having_made_no_more_than_the_bound(codec, tmp_path):
    data, size = _bomb(codec)
    path = tmp_path / "bomb"
    path.write_bytes(data)
    found = subprocess.run(
        [sys.executable, "-c", MEASURE, codec.split(",")[0] + "_decode", str(path)],
        capture_output=True, check=True, cwd=ROOT, timeout=120,
    )
    measured = json.loads(found.stdout)
    print(f"{codec}: {size >> 20} MiB in {measured['compressed']:,} bytes; peak RSS grew "
          f"{measured['peak_growth'] / MIB:.1f} MiB while refusing it (bound {MAX_DECOMPRESSED_BATCH_BYTES >> 20} MiB)")
    assert measured["outcome"] == "refused"
    assert measured["peak_growth"] <= MAX_DECOMPRESSED_BATCH_BYTES + BEYOND[codec]


# -- aiokafka calls them ---------------------------------------------------------------


@pytest.fixture
def bounded_to_1_mib(monkeypatch):
    """The decoders installed as `install` installs them, bounded to LIMIT, for this test."""
    for module, names in codecs.RECORD_MODULES:
        for name in names:
            monkeypatch.setattr(module, name, partial(codecs.DECODERS[name], limit=LIMIT))


@pytest.mark.parametrize("codec", [1, 2, 3, 4])  # gzip, snappy, lz4, zstd
def test_aiokafkas_c_extension_calls_the_bounded_decoders(bounded_to_1_mib, codec):
    assert memory_records.MemoryRecords is MemoryRecords, "aiokafka reads fetches with its C extension"
    builder = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 1 << 30)
    for offset in range(3):
        builder.append(offset, timestamp=None, key=None, value=bytes(LIMIT // 2), headers=[])
    batch = MemoryRecords(bytes(builder.build())).next_batch()
    with pytest.raises(BatchRefused):
        list(batch)


@pytest.mark.parametrize("codec", [1, 2, 3])  # gzip, snappy, lz4: what v0/v1 batches have
def test_aiokafkas_c_extension_calls_them_for_old_message_formats_too(bounded_to_1_mib, codec):
    builder = LegacyRecordBatchBuilder(1, codec, 1 << 30)
    for offset in range(3):
        builder.append(offset, timestamp=None, key=None, value=bytes(LIMIT // 2))
    batch = MemoryRecords(bytes(builder.build())).next_batch()
    with pytest.raises(BatchRefused):
        list(batch)


def test_install_puts_them_in_every_module_that_reads_batches():
    codecs.install()
    for module, names in codecs.RECORD_MODULES:
        assert {name: getattr(module, name) for name in names} == {name: codecs.DECODERS[name] for name in names}
    assert len(codecs.RECORD_MODULES) == 4, "the C extension's modules are among them"
