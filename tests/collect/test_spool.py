"""The spool: one transaction per tick, events held until acknowledged, and its bound."""

from ledger.collect.spool import Spool, SpooledEvent
from ledger.collect.usage import Attribution, Sample

ACME = Attribution("kddi", "acme", "H100")
T0 = 1_796_000_000 - 1_796_000_000 % 60


def event(number: int, seconds: int = 60) -> SpooledEvent:
    return SpooledEvent(f"id-{number}", T0 + 60 * number, seconds, f'{{"n": {number}}}'.encode())


def test_a_tick_keeps_samples_cursor_and_events_across_a_reopen(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    spool.commit_tick(T0 + 61, [Sample("GPU-a", T0 + 60, ACME, 5, 6), Sample("GPU-b", T0 + 60, None)], [T0], [event(0)])
    spool.close()
    again = Spool(tmp_path / "spool.db")
    assert again.last_second() == T0 + 61
    assert again.samples() == [Sample("GPU-a", T0 + 60, ACME, 5, 6)]  # unattributed ones bill nothing: not kept
    assert [value for _, value in again.take(10)] == [b'{"n": 0}']


def test_closing_a_minute_forgets_its_samples_in_the_same_transaction(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    spool.commit_tick(T0 + 59, [Sample("GPU-a", T0 + s, ACME) for s in range(60)], [], [])
    spool.commit_tick(T0 + 60, [Sample("GPU-a", T0 + 60, ACME)], [T0], [event(0)])
    assert [s.second for s in spool.samples()] == [T0 + 60]
    assert spool.depth() == 1


def test_only_acknowledged_events_leave_and_a_resent_id_is_held_once(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    spool.commit_tick(T0, [], [], [event(0), event(1), event(0)])
    assert spool.depth() == 2
    (first, _), _ = spool.take(2)
    spool.acknowledge([first])
    assert [value for _, value in spool.take(10)] == [b'{"n": 1}']
    assert spool.oldest_start() == T0 + 60


def test_at_its_bound_the_spool_refuses_new_events_and_keeps_what_it_holds(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_events=3)
    refused = spool.commit_tick(T0, [], [], [event(0), event(1)])
    assert refused == 0
    refused = spool.commit_tick(T0 + 1, [], [], [event(2, 40), event(3, 20), event(4, 7)])
    assert refused == 27  # the seconds of events 3 and 4
    assert spool.depth() == 3
    assert [value for _, value in spool.take(10)] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    seq, _ = spool.take(1)[0]
    spool.acknowledge([seq])
    assert spool.commit_tick(T0 + 2, [], [], [event(5)]) == 0  # room again
    assert spool.depth() == 3
