"""SPEC.md, "How events arrive": the NDJSON file of `gpuledger ingest`.

Lines are split on `\\n` only, one trailing `\\r` is dropped, a UTF-8 BOM at the start of
the file is ignored, and lines empty or holding only spaces and tabs are skipped.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.ndjson import BOM, read_chunks, split_lines


def lines(data: bytes) -> list[bytes]:
    return list(split_lines([data]))


def spec_lines(data: bytes) -> list[bytes]:
    """SPEC.md's rules, transcribed."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    out = []
    for line in data.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip(b" \t"):
            out.append(line)
    return out


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{}\n{}\n", [b"{}", b"{}"]),
        (b"{}\n{}", [b"{}", b"{}"]),  # no newline at the end
        (b"{}\r\n{}\r\n", [b"{}", b"{}"]),
        (b"{}\r\r\n", [b"{}\r"]),  # one trailing \r only
        (b"{}\r", [b"{}"]),
        (b'{"a":"x\ry"}\n', [b'{"a":"x\ry"}']),  # a lone \r inside a line is kept
        (b"a\rb\rc", [b"a\rb\rc"]),  # \r does not split
        (b"\xef\xbb\xbf{}\n", [b"{}"]),
        (b"\xef\xbb\xbf\xef\xbb\xbf{}\n", [b"\xef\xbb\xbf{}"]),  # only the first BOM
        (b"{}\n\xef\xbb\xbf{}\n", [b"{}", b"\xef\xbb\xbf{}"]),  # a BOM later is data
        (b"\xef\xbb\xbf", []),
        (b"\xef\xbb\xbf\n \n", []),
        (b"", []),
        (b"\n\n\n", []),
        (b"{}\n\n \n\t\n \t \r\n\r\n{}\n", [b"{}", b"{}"]),
        (b"  {}\t\n", [b"  {}\t"]),  # content lines are kept as they are
        (b"\x0b\n", [b"\x0b"]),  # other whitespace is not skipped: the line is received
        (b"\xc2\xa0\n", [b"\xc2\xa0"]),
        (b" \r \n", [b" \r "]),
    ],
)
def test_given_file_bytes_then_the_received_lines_are_as_spec_says(data, expected):
    assert lines(data) == expected
    assert spec_lines(data) == expected


@pytest.mark.parametrize("split_at", [1, 2, 3, 4])
def test_given_a_bom_split_across_chunks_then_it_is_still_ignored(split_at):
    data = BOM + b"{}\n{}"
    assert list(split_lines([data[:split_at], data[split_at:]])) == [b"{}", b"{}"]
    assert list(split_lines([b"", BOM[:1], b"", BOM[1:2], BOM[2:], b"{}"])) == [b"{}"]


def test_given_a_crlf_split_across_chunks_then_the_cr_is_still_dropped():
    assert list(split_lines([b"{}\r", b"\n{}\r", b"\n"])) == [b"{}", b"{}"]


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"{}", b"a", b"\n", b"\r", b" ", b"\t", BOM, b"\xef", b"\xbb"]),
        max_size=30,
    ).map(b"".join),
    cuts=st.lists(st.integers(0, 200), max_size=6),
)
def test_property_any_chunking_gives_the_lines_of_the_spec(data, cuts):
    """Given any bytes cut into any chunks, then the received lines are SPEC.md's."""
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    assert list(split_lines(chunks)) == spec_lines(data)


def test_given_a_stream_then_read_chunks_yields_all_its_bytes():
    data = b"x" * 10 + b"\n" + b"y" * 5
    assert b"".join(read_chunks(io.BytesIO(data), size=3)) == data
    assert list(split_lines(read_chunks(io.BytesIO(BOM + data), size=1))) == [b"x" * 10, b"y" * 5]
