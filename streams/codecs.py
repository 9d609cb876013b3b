"""Kafka's codecs, decompressed with a bound: no record batch makes more than `limit` bytes.

aiokafka decompresses a record batch whole before reading its first record
(`DefaultRecordBatch._maybe_uncompress`, and `_decompress` of the v0/v1 batches), with
the decoders of `aiokafka.codec`, which make as many bytes as the batch asks: a 100 KB
zstd batch took a worker to 665 MiB. These decoders make the same bytes for every batch
within the limit and refuse the others (`BatchRefused`) having made at most `limit` of
them, and refuse what is not valid in its codec the same way; `install` puts them where
aiokafka's record classes call them, its C extension included (Cython looks module-level
names up in the module's dict at each call, so replacing them there takes effect;
tests/streams/test_codecs.py checks that it does).

How each is bounded:
- gzip: zlib's `decompress(data, max_length)`, member after member, as `gzip.GzipFile`
  reads them (zero padding between members allowed).
- zstd and lz4 (frame): cramjam's `decompress_into` a buffer that grows (x4) up to the
  limit: it writes no further than the buffer and says "failed to write whole buffer".
  The size a frame's header states sizes the first buffer, and refuses a frame that
  states more than the limit (the decoder holds a frame to it); it is never trusted
  to bound anything. The decoder's own window also
  fills as it writes: lz4's blocks are at most 4 MiB, and zstd's window is what the
  frame declares (2 MiB at zstd's usual levels, up to 128 MiB if a producer says so),
  so refusing a zstd batch costs at most about twice the limit
  (tests/streams/test_codecs.py measures each codec).
- snappy (raw, or xerial's blocks): each raw block starts with its decompressed length
  (a varint); their sum is checked before anything is decompressed.

The streams room owns this module: it is aiokafka-specific (cramjam is aiokafka's own
codec library, from its lz4/snappy/zstd extras).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable

import cramjam
from aiokafka.record import default_records, legacy_records

try:
    from aiokafka.record._crecords import default_records as c_default_records
    from aiokafka.record._crecords import legacy_records as c_legacy_records
except ImportError:  # aiokafka built without its C extension: the pure-Python classes only
    c_default_records = c_legacy_records = None

from ledger.domain.records import UnreadBatch
from schemas.wire import MAX_DECOMPRESSED_BATCH_BYTES

# The first buffer zstd and lz4 decompress into: the size the frame's header states when
# it states one (a hint, never trusted: the buffer stops the decoder), else a multiple of
# the compressed size and at least this much (batches of JSON events shrink 12 to 50
# times). A buffer too small is grown and the batch decompressed again; one too large
# costs its zeroing (bytearray writes every page), so the guess stays modest.
FIRST_BUFFER_RATIO = 16
FIRST_BUFFER_MIN_BYTES = 64 << 10
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
BUFFER_GROWTH = 4
# cramjam's message when the output buffer is full (Rust's io::ErrorKind::WriteZero).
BUFFER_FULL = "failed to write whole buffer"
GZIP_WBITS = 16 + zlib.MAX_WBITS
GZIP_STEP_BYTES = 1 << 20
XERIAL_HEADER = struct.pack("!bccccccBii", -126, b"S", b"N", b"A", b"P", b"P", b"Y", 0, 1, 1)
XERIAL_HEADER_BYTES = 16


class BatchRefused(Exception):
    """A compressed batch that was not decompressed: over the limit (`problem` None), or
    not valid in its codec. Carries what its dead letter keeps (`unread`)."""

    def __init__(self, codec: str, payload, problem: str | None = None) -> None:
        view = memoryview(payload)
        self.codec = codec
        self.compressed_bytes = view.nbytes
        self.sha256 = hashlib.sha256(view).digest()
        self.problem = problem
        super().__init__(f"{codec} batch of {self.compressed_bytes} bytes: {problem or 'over the limit'}")

    def unread(self) -> UnreadBatch:
        return UnreadBatch(self.codec, self.compressed_bytes, self.sha256, self.problem)


def gzip_decode(payload, limit: int = MAX_DECOMPRESSED_BATCH_BYTES) -> bytearray:
    """gzip members, one after another, as `gzip.GzipFile(...).read()` reads them."""
    out = bytearray()
    rest = bytes(payload)
    while rest:
        member = zlib.decompressobj(GZIP_WBITS)
        data = rest
        try:
            while True:
                # In steps, so a refusal holds `limit` bytes and one step; never 0 (no bound).
                chunk = member.decompress(data, min(GZIP_STEP_BYTES, limit + 1 - len(out)))
                out += chunk
                if len(out) > limit:
                    raise BatchRefused("gzip", payload)
                if member.eof:
                    break
                if not chunk and not member.unconsumed_tail:
                    raise BatchRefused("gzip", payload, "the stream ends before its end")
                data = member.unconsumed_tail
        except zlib.error as exc:
            raise BatchRefused("gzip", payload, f"not gzip: {exc}") from None
        rest = member.unused_data.lstrip(b"\x00")  # GzipFile skips zero padding between members
    return out


def declared_size(codec: str, payload) -> int | None:
    """The decompressed size the first zstd or lz4 frame's header states, if it states one."""
    head = bytes(memoryview(payload)[:18])
    if codec == "zstd" and head[:4] == ZSTD_MAGIC and len(head) > 5:
        descriptor = head[4]
        single_segment = descriptor >> 5 & 1
        at = 5 + (1 - single_segment) + (0, 1, 2, 4)[descriptor & 3]  # window, dictionary id
        width = (single_segment, 2, 4, 8)[descriptor >> 6]
        if width == 0 or len(head) < at + width:
            return None
        value = int.from_bytes(head[at : at + width], "little")
        return value + 256 if width == 2 else value
    if codec == "lz4" and head[:4] == LZ4_MAGIC and len(head) >= 14 and head[4] & 0x08:
        return int.from_bytes(head[6:14], "little")
    return None


def _into(codec: str, decompress_into: Callable, payload, limit: int) -> bytearray:
    """Decompress into a buffer that grows up to `limit`: bytes within it, or BatchRefused."""
    declared = declared_size(codec, payload)
    if declared is not None and declared > limit:
        # The decoder holds a frame to its stated size: this one is over, read or not.
        raise BatchRefused(codec, payload)
    guess = declared or max(FIRST_BUFFER_MIN_BYTES, FIRST_BUFFER_RATIO * len(payload))
    size = min(limit, max(1, guess))
    while True:
        out = bytearray(size)
        try:
            written = decompress_into(payload, out)
        except cramjam.DecompressionError as exc:
            if BUFFER_FULL not in str(exc):
                raise BatchRefused(codec, payload, f"not {codec}: {exc}") from None
            if size >= limit:
                raise BatchRefused(codec, payload) from None
            del out  # before the next buffer: never two at once
            size = min(limit, size * BUFFER_GROWTH)
            continue
        del out[written:]
        return out


def zstd_decode(payload, limit: int = MAX_DECOMPRESSED_BATCH_BYTES) -> bytearray:
    return _into("zstd", cramjam.zstd.decompress_into, payload, limit)


def lz4_decode(payload, limit: int = MAX_DECOMPRESSED_BATCH_BYTES) -> bytearray:
    """Kafka's lz4: the LZ4 frame format (what aiokafka reads with cramjam.lz4.decompress)."""
    return _into("lz4", cramjam.lz4.decompress_into, payload, limit)


def _varint(data: memoryview) -> int:
    """The little-endian base-128 length that starts a raw snappy block (at most 32 bits)."""
    value = 0
    for index in range(min(5, len(data))):
        value |= (data[index] & 0x7F) << (7 * index)
        if not data[index] & 0x80:
            return value
    raise ValueError("no length at the start of a snappy block")


def _xerial_blocks(data: memoryview) -> list[memoryview]:
    """The raw snappy blocks of xerial's framing (16-byte header, then per block a
    big-endian signed 32-bit length and the block)."""
    blocks = []
    cursor = XERIAL_HEADER_BYTES
    while cursor < len(data):
        if cursor + 4 > len(data):
            raise ValueError("a block length is cut short")
        (length,) = struct.unpack_from("!i", data, cursor)
        cursor += 4
        if length < 0 or cursor + length > len(data):
            raise ValueError(f"a block of {length} bytes does not fit")
        blocks.append(data[cursor : cursor + length])
        cursor += length
    return blocks


def snappy_decode(payload, limit: int = MAX_DECOMPRESSED_BATCH_BYTES) -> bytearray:
    """Raw snappy, or xerial's blocks of it (detected as aiokafka detects them)."""
    data = memoryview(payload)
    xerial = len(data) > XERIAL_HEADER_BYTES and data[:XERIAL_HEADER_BYTES] == XERIAL_HEADER
    try:
        blocks = _xerial_blocks(data) if xerial else [data]
        declared = sum(_varint(block) for block in blocks)
    except ValueError as exc:
        raise BatchRefused("snappy", payload, f"not snappy: {exc}") from None
    if declared > limit:
        raise BatchRefused("snappy", payload)
    out = bytearray()
    try:
        for block in blocks:
            # Allocates the block's declared length, which the sum above bounds.
            out += cramjam.snappy.decompress_raw(block)
    except cramjam.DecompressionError as exc:
        raise BatchRefused("snappy", payload, f"not snappy: {exc}") from None
    return out


DECODERS: dict[str, Callable] = {
    "gzip_decode": gzip_decode,
    "snappy_decode": snappy_decode,
    "lz4_decode": lz4_decode,
    "zstd_decode": zstd_decode,
}


# aiokafka's modules whose record batches call the decoders by their module-level names,
# and which names each calls (v0/v1 batches have no zstd): the pure-Python classes and,
# when built, their C extension (the one aiokafka uses when it can).
CURRENT = ("gzip_decode", "snappy_decode", "lz4_decode", "zstd_decode")
LEGACY = ("gzip_decode", "snappy_decode", "lz4_decode")
RECORD_MODULES = [(default_records, CURRENT), (legacy_records, LEGACY)]
if c_default_records is not None and c_legacy_records is not None:
    RECORD_MODULES += [(c_default_records, CURRENT), (c_legacy_records, LEGACY)]


def install(decoders: dict[str, Callable] = DECODERS) -> None:
    """Make every record batch aiokafka reads in this process decompress through `decoders`."""
    for module, names in RECORD_MODULES:
        for name in names:
            if not hasattr(module, name):  # aiokafka changed: better to stop than to read unbounded
                raise RuntimeError(f"{module.__name__} no longer calls {name}: the bound would not hold")
            setattr(module, name, decoders[name])
