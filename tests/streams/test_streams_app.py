"""The worker's slicing of a take into transactions: every record once, in order, bounded."""

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.records import Record
from streams.app import chunks_by_size


def record(offset: int, size: int) -> Record:
    return Record("gpu.usage", 0, offset, 0, b"x" * size, {})


def test_empty_values_anywhere_are_kept():
    """Given an empty record first (a member's producer may send one), then it is in a chunk."""
    records = [record(0, 0), record(1, 0), record(2, 5)]
    assert chunks_by_size(records, 10) == [records]


@given(st.lists(st.integers(0, 30), max_size=40), st.integers(1, 40))
def test_every_record_once_in_order_and_chunks_bounded(sizes, max_bytes):
    records = [record(i, size) for i, size in enumerate(sizes)]
    chunks = chunks_by_size(records, max_bytes)
    assert [r for chunk in chunks for r in chunk] == records
    for chunk in chunks:
        assert chunk, "no empty chunk"
        assert len(chunk) == 1 or sum(len(r.value) for r in chunk) <= max_bytes
