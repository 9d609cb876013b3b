"""NDJSON files as SPEC.md reads them for `gpuledger ingest`.

Lines are split on `\\n` only; one trailing `\\r` is dropped; a UTF-8 byte-order mark at
the start of the file is ignored; lines that are empty or hold only spaces and tabs are
skipped (not received). Every other line is one received event, kept as its bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

BOM = b"\xef\xbb\xbf"
_BLANK = b" \t"
CHUNK_BYTES = 1 << 20


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Received events of a file given as byte chunks, in file order."""
    pending = b""
    first = True
    for chunk in chunks:
        if not chunk:
            continue
        if first:
            # The BOM may be split across the first chunks; wait for three bytes.
            pending += chunk
            if len(pending) < len(BOM) and BOM.startswith(pending):
                continue
            if pending.startswith(BOM):
                pending = pending[len(BOM) :]
            first = False
            chunk, pending = pending, b""
        parts = chunk.split(b"\n")
        parts[0] = pending + parts[0]
        pending = parts.pop()
        for line in parts:
            line = _line(line)
            if line is not None:
                yield line
    if first and pending.startswith(BOM):
        pending = pending[len(BOM) :]
    line = _line(pending)
    if line is not None:
        yield line


def _line(line: bytes) -> bytes | None:
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line.strip(_BLANK):
        return None
    return line


def read_chunks(stream: BinaryIO, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk
