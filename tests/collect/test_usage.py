"""Allocated seconds per GPU and minute from per-second samples (ledger.collect.usage)."""

from hypothesis import given
from hypothesis import strategies as st

from ledger.collect.usage import Attribution, MinuteBook, Sample, filled_gap, runs_of

ACME = Attribution("kddi", "acme", "H100")
BETA = Attribution("kddi", "beta", "H100")
T0 = 1_796_000_000 - 1_796_000_000 % 60  # a minute's first second


def held(gpu, attribution, start, seconds):
    return [Sample(gpu, start + i, attribution, 50, 10) for i in range(seconds)]


def test_a_whole_minute_is_one_event_of_60_seconds():
    runs = runs_of(held("GPU-a", ACME, T0, 60))
    assert [(r.start, r.seconds, r.attribution) for r in runs] == [(T0, 60, ACME)]


def test_an_allocation_starting_and_ending_mid_minute_is_a_partial_minute():
    runs = runs_of(held("GPU-a", ACME, T0 + 23, 20))
    assert [(r.start, r.seconds) for r in runs] == [(T0 + 23, 20)]


def test_a_run_across_a_minute_boundary_is_split_at_it():
    runs = runs_of(held("GPU-a", ACME, T0 + 50, 20))
    assert [(r.start, r.seconds) for r in runs] == [(T0 + 50, 10), (T0 + 60, 10)]


def test_attribution_changing_mid_minute_is_two_events():
    samples = held("GPU-a", ACME, T0, 25) + held("GPU-a", BETA, T0 + 25, 35)
    runs = runs_of(samples)
    assert [(r.attribution.tenant, r.start, r.seconds) for r in runs] == [("acme", T0, 25), ("beta", T0 + 25, 35)]


def test_a_gpu_off_the_bus_bills_nothing_and_splits_the_run():
    # seconds 10-19 missing: the GPU fell off the bus and came back
    samples = held("GPU-a", ACME, T0, 10) + held("GPU-a", ACME, T0 + 20, 40)
    assert [(r.start, r.seconds) for r in runs_of(samples)] == [(T0, 10), (T0 + 20, 40)]


def test_unattributed_seconds_bill_nothing():
    samples = held("GPU-a", ACME, T0, 10) + [Sample("GPU-a", T0 + 10 + i, None) for i in range(50)]
    assert sum(r.seconds for r in runs_of(samples)) == 10


def test_evidence_is_the_mean_utilisation_and_peak_memory():
    samples = [Sample("GPU-a", T0, ACME, 10, 5), Sample("GPU-a", T0 + 1, ACME, 21, 9)]
    (run,) = runs_of(samples)
    assert (run.utilisation_percent, run.memory_used_bytes) == (15, 9)


def test_a_minute_closes_only_once_it_is_over():
    book = MinuteBook(held("GPU-a", ACME, T0, 61))
    closed, runs = book.close_before(T0 + 59)
    assert (closed, runs) == ([], [])
    closed, runs = book.close_before(T0 + 60)
    assert closed == [T0] and [(r.start, r.seconds) for r in runs] == [(T0, 60)]
    assert book.held == 1


def test_close_all_makes_the_minute_in_progress_a_partial_event():
    book = MinuteBook(held("GPU-a", ACME, T0, 61))
    closed, runs = book.close_all()
    assert closed == [T0, T0 + 60] and [r.seconds for r in runs] == [60, 1]


def test_a_short_gap_with_one_holder_on_both_sides_is_filled():
    before, after = [Sample("GPU-a", T0, ACME)], [Sample("GPU-a", T0 + 3, ACME), Sample("GPU-b", T0 + 3, ACME)]
    assert [s.second for s in filled_gap(before, after)] == [T0 + 1, T0 + 2]


def test_a_gap_with_another_holder_or_too_long_is_not_filled():
    assert filled_gap([Sample("GPU-a", T0, ACME)], [Sample("GPU-a", T0 + 3, BETA)]) == []
    assert filled_gap([Sample("GPU-a", T0, ACME)], [Sample("GPU-a", T0 + 30, ACME)]) == []


@given(st.lists(st.tuples(st.sampled_from(["GPU-a", "GPU-b"]), st.integers(0, 400), st.sampled_from([ACME, BETA, None])),
                unique_by=lambda t: (t[0], t[1])))
def test_runs_bill_exactly_the_attributed_seconds_each_once_within_one_minute(observed):
    samples = [Sample(gpu, T0 + second, attribution) for gpu, second, attribution in observed]
    runs = runs_of(samples)
    billed = [(r.gpu_uuid, second, r.attribution) for r in runs for second in range(r.start, r.start + r.seconds)]
    assert sorted(billed) == sorted((s.gpu_uuid, s.second, s.attribution) for s in samples if s.attribution)
    assert all(r.start // 60 == (r.start + r.seconds - 1) // 60 for r in runs)
