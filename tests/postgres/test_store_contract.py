"""What every `Store` promises (ledger.domain.ports), held against both stores.

Each case runs twice: on `MemoryStore` (what the service tests use) and on
`PostgresStore` over a fresh migrated database, as the application's role. A case that
passes on one and fails on the other is a store that lies to the services.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import replace
from datetime import date

import pytest

from ledger.domain import journal, rating
from ledger.domain.access import Caller
from ledger.domain.catalog import Catalog
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.correction_records import DisputeMove, DisputeRow, NewDispute
from ledger.domain.errors import InputError, LedgerError
from ledger.domain.instants import format_utc
from ledger.domain.metering import ClaimKey
from ledger.domain.payments import Payment, PaymentRefused, Transfer
from ledger.domain.ports import (
    DeadLetter,
    DeadLetterFilter,
    NewVoid,
    Tally,
    TokenRecord,
    VoidedBits,
)
from ledger.domain.records import RAW_PREFIX_BYTES
from ledger.domain.statement import Statement
from ledger.domain.usage import UsageFilter, by_versions
from ledger.memory.store import MemoryStore
from ledger.postgres.store import PostgresStore
from ledger.service import payments as payments_service
from schemas.wire import MAX_EVENT_BYTES
from tests.factories import DEFAULT_CATALOG as SPEC_CATALOG
from tests.factories import DEFAULT_VERSIONS, catalog_text, price
from tests.scenario import SCENARIOS

HOUR = 1_790_000_000 - 1_790_000_000 % 3600  # an hour in 2026-09 (JST)
KDDI_ACME = ("sakura", "kddi", "acme", "H200")  # (provider, reseller, tenant, sku)


# The memory half needs no service (`make test-fast` runs it); the PostgreSQL half is `infra`.
@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.infra)])
async def store(request):
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("fresh_database")
    opened = await PostgresStore.connect(url)
    try:
        yield opened
    finally:
        await opened.close()


async def load_catalog(store, text: str = SPEC_CATALOG) -> Catalog:
    async with store.catalog_load() as tx:
        current, _ = await tx.catalog()
        merged = current.merge(parse_catalog(text.encode()), None)
        await tx.add(current, merged, "test", "0" * 64)
    return merged


def key(hour: int = HOUR, booking: str = "2026-09", attribution=KDDI_ACME, gpu: str = "GPU-1") -> ClaimKey:
    return ClaimKey(gpu, hour, attribution, "2026-09", booking)


def letter(reason: str = "schema", provider: str | None = "sakura", reseller: str | None = "kddi",
           received_ms: int = 1_000, raw: bytes = b'{"x": 1}') -> DeadLetter:
    return DeadLetter(reason, "detail", raw, received_ms, "gpu.usage", 0, 7, 0, "ingest-1", provider, reseller)


# -- the catalog ------------------------------------------------------------------------


async def test_given_nothing_loaded_then_the_catalog_is_empty_at_revision_0(store):
    catalog, revision = await store.catalog()
    assert (catalog, revision) == (Catalog(), 0)
    assert await store.catalog_revision() == 0


async def test_given_a_load_then_the_same_catalog_comes_back_at_a_new_revision(store):
    merged = await load_catalog(store)
    catalog, revision = await store.catalog()
    assert catalog == merged and revision >= 1
    assert await store.catalog_revision() == revision
    assert await store.member_exists("kddi") and not await store.member_exists("nobody")


async def test_registrations_retirements_and_grants_come_back_as_loaded(store):
    text = (SCENARIOS / "alliance-2026-q4" / "catalog.toml").read_text()
    merged = await load_catalog(store, text)
    assert (await store.catalog())[0] == merged
    uuid = next(u for u, g in merged.gpus.items() if g.retired_from is None)
    retiring = text.replace(f'uuid = "{uuid}"\n', f'uuid = "{uuid}"\nretired_from = "2026-12-01T00:00:00+09:00"\n')
    async with store.catalog_load() as tx:
        current, _ = await tx.catalog()
        after = current.merge(parse_catalog(retiring.encode()), None)
        await tx.add(current, after, "test", "1" * 64)
    assert (await store.catalog())[0].gpus[uuid].retired_from == after.gpus[uuid].retired_from is not None


async def test_late_settings_and_a_grants_providers_come_back_as_loaded(store):
    first = await load_catalog(store, SPEC_CATALOG)
    assert first.dispute_window_days_set is None
    text = ("dispute_window_days = 90\n" + SPEC_CATALOG
            + '[[grants]]\nid = "poc"\nfunder = "sakura"\nreseller = "kddi"\ntenant = "acme"\n'
              'amount_yen = 100\nfirst_period = "2026-10"\nlast_period = "2026-10"\nproviders = ["sakura"]\n')
    merged = await load_catalog(store, text)
    stored = (await store.catalog())[0]
    assert stored == merged
    assert (stored.dispute_window_days, stored.payment_terms_days) == (90, 30)
    assert stored.grants["poc"].providers == frozenset({"sakura"})


# -- intake -----------------------------------------------------------------------------


async def test_positions_start_absent_and_never_move_back(store):
    async with store.intake() as tx:
        assert await tx.positions("gpu.usage", [0, 1]) == {}
        await tx.advance_positions("gpu.usage", {0: 10, 1: 3})
    async with store.intake() as tx:
        await tx.advance_positions("gpu.usage", {0: 5})
    async with store.intake() as tx:
        assert await tx.positions("gpu.usage", [0, 1, 2]) == {0: 10, 1: 3}
    shown = await store.pipeline_positions()  # the operator's page: every partition, in order
    assert [row[:3] for row in shown] == [("gpu.usage", 0, 10), ("gpu.usage", 1, 3)]
    assert all(row[3] is None or isinstance(row[3], int) for row in shown)
    await store.forget_positions("gpu.usage")
    assert await store.pipeline_positions() == []
    async with store.intake() as tx:
        assert await tx.positions("gpu.usage", [0, 1]) == {}


async def test_claims_come_back_by_gpu_and_hour_and_only_grow(store):
    await load_catalog(store)
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1011), (key(gpu="GPU-2"), 1)])
    async with store.intake() as tx:
        assert await tx.claims([("GPU-1", HOUR)]) == [(key(), 0b1011)]
        assert await tx.claims([("GPU-1", HOUR + 3600)]) == []
        await tx.write_claims([(key(), 0b1111)])
    with pytest.raises(LedgerError):
        async with store.intake() as tx:
            await tx.write_claims([(key(), 0b0001)])
    async with store.intake() as tx:
        assert await tx.claims([("GPU-1", HOUR)]) == [(key(), 0b1111)]


async def test_a_transaction_that_raises_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError):
        async with store.intake() as tx:
            await tx.write_claims([(key(), 1)])
            await tx.write_dead_letters([letter()])
            await tx.write_tallies([Tally("ingest-1", "gpu.usage", 0, {"accepted": 1})])
            await tx.advance_positions("gpu.usage", {0: 1})
            raise RuntimeError("the worker stopped")
    async with store.intake() as tx:
        assert await tx.claims([("GPU-1", HOUR)]) == []
        assert await tx.positions("gpu.usage", [0]) == {}
    assert (await store.ingest_tally("ingest-1"))["received"] == 0
    assert await store.dead_letter_page(DeadLetterFilter(), 0, 10, 100) == []


async def test_tallies_sum_per_ingest(store):
    async with store.intake() as tx:
        await tx.write_tallies([
            Tally("a", "gpu.usage", 0, {"accepted": 2, "schema": 1}),
            Tally("a", "gpu.usage", 1, {"duplicate": 3}),
            Tally("b", "gpu.usage", 0, {"accepted": 5}),
        ])
    await store.record_rejections([letter("malformed", None, None)], Tally("a", None, None, {"malformed": 1}))
    sums = await store.ingest_tally("a")
    assert (sums["received"], sums["accepted"], sums["duplicate"], sums["schema"], sums["malformed"]) == (7, 2, 3, 1, 1)
    assert (await store.ingest_tally("none"))["received"] == 0


# -- the books --------------------------------------------------------------------------


async def close_through(store, period: str, periods: list[str] = (), members: list[str] = ("kddi",)) -> None:
    """Close as `ledger.service.books` does: store each period's statement, then move the books."""
    async with store.books(close=True) as books:
        for each in periods or [period]:
            await books.store_closed_statement(each, b'{"period":"%s"}' % each.encode())
        await books.record_close(period, list(members))


async def test_a_closed_booking_period_takes_no_more_seconds(store):
    await load_catalog(store)
    await close_through(store, "2026-09")
    with pytest.raises(LedgerError):
        async with store.intake() as tx:
            await tx.write_claims([(key(booking="2026-09"), 1)])
    async with store.intake() as tx:
        assert await tx.closed_through() == "2026-09"
        await tx.write_claims([(key(booking="2026-10"), 1)])


async def test_the_books_only_move_forward_and_remember_who_was_a_member(store):
    async with store.books(close=True) as books:
        assert await books.closed_through() is None
    await close_through(store, "2026-09", members=["highreso", "kddi"])
    with pytest.raises(LedgerError):
        async with store.books(close=True) as books:
            await books.record_close("2026-08", ["kddi"])
    async with store.books() as books:
        assert await books.closed_through() == "2026-09"
        assert await books.members_at_close("2026-07") == ["highreso", "kddi"]
        assert await books.members_at_close("2026-10") is None


async def test_the_books_move_only_over_the_stored_statements_of_the_periods_they_close(store):
    await load_catalog(store)
    async with store.intake() as tx:
        await tx.write_claims([(key(booking="2026-09"), 0b111)])
    # Given seconds booked in 2026-09, a close through 2026-10 that stored only 2026-10's
    # statement is refused whole: the 2026-09 seconds would be on no statement.
    with pytest.raises(LedgerError, match="2026-09"):
        await close_through(store, "2026-10")
    async with store.books() as books:
        assert await books.closed_through() is None
        assert await books.closed_statement("2026-10") is None
    await close_through(store, "2026-10", ["2026-09", "2026-10"])
    # A later close needs every period after the last closed one, 2026-11 included.
    with pytest.raises(LedgerError, match="2026-11"):
        await close_through(store, "2026-12")
    await close_through(store, "2026-12", ["2026-11", "2026-12"])
    async with store.snapshot() as books:
        assert await books.closed_through() == "2026-12"
        assert sorted(await books.closed_statements()) == ["2026-09", "2026-10", "2026-11", "2026-12"]


async def test_a_statement_is_stored_only_by_the_close_of_its_period(store):
    await close_through(store, "2026-09")
    with pytest.raises(LedgerError):  # an open period's statement, without its close
        async with store.books(close=True) as books:
            await books.store_closed_statement("2026-11", b'{"period":"2026-11"}')
    with pytest.raises(LedgerError):  # a period closed (empty) before
        async with store.books(close=True) as books:
            await books.store_closed_statement("2026-08", b'{"period":"2026-08"}')
    with pytest.raises(LedgerError):  # stored once
        async with store.books(close=True) as books:
            await books.store_closed_statement("2026-09", b"{}")
    async with store.snapshot() as books:
        assert await books.closed_statement("2026-09") == b'{"period":"2026-09"}'
        assert await books.closed_statements() == {"2026-09": b'{"period":"2026-09"}'}
        assert await books.closed_statement("2026-11") is None


async def test_a_period_remembers_when_it_was_closed(store):
    async with store.books(close=True) as books:
        assert await books.closed_at("2026-09") is None
        now = await books.now()
        await books.store_closed_statement("2026-09", b'{"period":"2026-09"}')
        await books.record_close("2026-09", ["kddi"])
    async with store.snapshot() as books:
        stored = await books.closed_at("2026-09")
        assert now - 1 <= stored <= now + 5
        assert await books.closed_at("2026-08") == stored  # covered by the close, no statement stored
        assert await books.closed_at("2026-10") is None


async def test_the_journal_appends_balanced_entries_after_its_head(store):
    entries = [journal.Entry("transfer", {"transfer": 0}, [("kddi/cash", -5), ("sakura/cash", 5)])]
    async with store.books(close=True) as books:
        assert await books.journal_head() == (0, journal.GENESIS_HASH)
        await books.append_journal(journal.chain("2026-09", entries, 0, journal.GENESIS_HASH))
    async with store.books(close=True) as books:
        seq, head = await books.journal_head()
        assert seq == 1
        chained = journal.chain("2026-10", entries, seq, head)
        await books.append_journal(chained)
    async with store.snapshot() as books:
        stored = [entry async for entry in books.journal()]
        assert [e.seq for e in stored] == [1, 2]
        assert [e.period async for e in books.journal("2026-10")] == ["2026-10"]
    assert journal.check_chain(stored)[0] == 2
    unbalanced = [journal.Entry("transfer", {"transfer": 0}, [("kddi/cash", -5), ("sakura/cash", 4)])]
    with pytest.raises(LedgerError):
        async with store.books(close=True) as books:
            seq, head = await books.journal_head()
            await books.append_journal(journal.chain("2026-11", unbalanced, seq, head))


async def test_hour_usages_sum_an_hour_and_keep_bits_where_asked(store):
    await load_catalog(store)
    other = ("sakura", "kddi", "beta", "H200")
    async with store.intake() as tx:
        await tx.write_claims([
            (key(), 0b11), (key(gpu="GPU-2"), 0b100), (key(attribution=other), 1 << 9),
            (key(hour=HOUR + 3600), 0b1),
        ])
    async with store.books() as books:
        assert await books.earliest_booking_period() == "2026-09"
        usages = sorted(await books.hour_usages("2026-09", [HOUR + 3600]), key=lambda u: (u.tenant, u.hour_start))
    assert [(u.tenant, u.hour_start, u.seconds, u.bits) for u in usages] == [
        ("acme", HOUR, 3, None), ("acme", HOUR + 3600, 1, 1), ("beta", HOUR, 1, None),
    ]


async def test_hour_usages_sum_whole_hours_only_between_version_starts(store):
    """A statement reads whole hours summed between price breaks: never across a price
    starting on the hour (HOUR + 3 h) or inside one (HOUR + 5 h 20 min, read by its bits)."""
    catalog = await load_catalog(store, catalog_text(
        *DEFAULT_VERSIONS,
        price("kddi", "H200", "900", format_utc(HOUR + 3 * 3600)),
        price("kddi", "H200", "950", format_utc(HOUR + 5 * 3600 + 1200)),
    ))
    split = sorted(rating.split_hours(catalog))
    assert split == [HOUR + 5 * 3600]
    claims = [(key(hour=HOUR + i * 3600), 0b11) for i in (0, 1, 2, 3, 4, 6, 7)]
    async with store.intake() as tx:
        await tx.write_claims([*claims, (key(hour=HOUR + 5 * 3600), 1 | 1 << 1500)])
    async with store.books() as books:
        hourly = await books.hour_usages("2026-09", split)
        summed = await books.hour_usages("2026-09", split, coarse=by_versions(catalog))
    assert sorted((u.hour_start, u.seconds, u.bits) for u in summed) == [
        (HOUR, 6, None), (HOUR + 3 * 3600, 4, None), (HOUR + 5 * 3600, 2, 1 | 1 << 1500), (HOUR + 6 * 3600, 4, None),
    ]
    lines = rating.rate(catalog, summed)
    assert lines == rating.rate(catalog, hourly)
    assert [(line.price.yen_per_gpu_hour, line.gpu_seconds) for line in lines] == [("780", 6), ("900", 5), ("950", 5)]


async def test_the_rollups_hold_every_billed_second_once(store):
    await load_catalog(store)
    other = ("sakura", "kddi", "beta", "H200")
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b11), (key(gpu="GPU-2"), 0b100), (key(attribution=other), 1 << 9)])
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1111), (key(hour=HOUR + 3600), 0b1)])
    async with store.snapshot() as books:
        check = await books.check_rollups(10)
    # (hour, attribution) groups: acme's first hour (two GPUs), beta's, acme's second hour.
    assert (check.rows, check.gpu_seconds, check.differences, check.differences_total) == (3, 7, (), 0)


async def test_evidence_lists_a_periods_bitmaps_in_order_with_the_other_periods_bits(store):
    await load_catalog(store)
    async with store.intake() as tx:
        await tx.write_claims([(key(gpu="GPU-b"), 0b01), (key(gpu="GPU-a"), 0b1), (key(gpu="GPU-b", booking="2026-10"), 0b10)])
    async with store.snapshot() as reader:
        found = [(e.key.gpu_uuid, e.bits, e.elsewhere) async for e in reader.evidence("2026-09")]
    assert found == [("GPU-a", 1, 0), ("GPU-b", 1, 2)]


# -- dead letters -----------------------------------------------------------------------


async def test_dead_letters_are_listed_by_id_for_the_members_they_name(store):
    async with store.intake() as tx:
        await tx.write_dead_letters([letter(), letter("malformed", None, None), letter(provider="kddi", reseller="kddi")])
    everything = await store.dead_letter_page(DeadLetterFilter(), 0, 10, 4)
    assert [row["id"] for row in everything] == sorted(row["id"] for row in everything)
    assert bytes(everything[0]["raw_head"]) == b'{"x"' and everything[0]["raw_bytes"] == 8
    sakura = await store.dead_letter_page(DeadLetterFilter(member="sakura"), 0, 10, 4)
    assert [row["provider"] for row in sakura] == ["sakura"]
    kddi = await store.dead_letter_page(DeadLetterFilter(member="kddi"), 0, 10, 4)
    assert len(kddi) == 2
    after = await store.dead_letter_page(DeadLetterFilter(), everything[0]["id"], 1, 4)
    assert [row["id"] for row in after] == [everything[1]["id"]]
    assert await store.dead_letter_page(DeadLetterFilter(reason="malformed"), 0, 10, 4) == [everything[1]]


async def test_a_replay_target_keeps_the_member_the_dead_letter_came_from(store):
    async with store.intake() as tx:
        await tx.write_dead_letters([replace(letter("wrong_provider"), sender="kddi"), letter()])
    ids = [row["id"] for row in await store.dead_letter_page(DeadLetterFilter(), 0, 10, 4)]
    async with store.intake() as tx:
        targets = await tx.replay_targets(ids)
    assert [targets[i].sender for i in ids] == ["kddi", None]


async def test_a_replay_is_recorded_once(store):
    async with store.intake() as tx:
        await tx.write_dead_letters([letter(), letter(raw=b"two")])
    ids = [row["id"] for row in await store.dead_letter_page(DeadLetterFilter(), 0, 10, 4)]
    async with store.intake() as tx:
        targets = await tx.replay_targets(ids + [ids[-1] + 1000])
        assert sorted(targets) == ids and targets[ids[1]].raw == b"two" and not targets[ids[0]].replayed
        assert await tx.record_replays([(ids[0], "accepted")]) == 1
    async with store.intake() as tx:
        assert await tx.record_replays([(ids[0], "duplicate"), (ids[1], "schema")]) == 1
        assert (await tx.replay_targets(ids))[ids[0]].replayed
    refs = await store.dead_letter_refs(ids)
    assert refs[ids[0]].replayed and refs[ids[0]].provider == "sakura"
    assert await store.unreplayed_dead_letters(DeadLetterFilter(member="sakura"), 10) == []
    assert await store.count_replayed(DeadLetterFilter(member="sakura")) == 2


async def stored_raw_lengths(store) -> list[int]:
    """The bytes each dead letter's row holds itself, in id order (what the disk keeps)."""
    if isinstance(store, MemoryStore):
        return [len(letter.raw) for letter in store.state.dead_letters]
    async with store._connection() as conn:
        return [row[0] for row in await conn.fetch("SELECT length(raw) FROM dead_letters ORDER BY id")]


async def test_a_dead_letter_keeps_the_first_4_kib_of_an_event_over_1_mib_and_is_not_replayable(store):
    big = b"{" + b"x" * MAX_EVENT_BYTES
    async with store.intake() as tx:
        await tx.write_dead_letters([letter(raw=big), letter()])
    rows = await store.dead_letter_page(DeadLetterFilter(), 0, 10, 1 << 20)
    ids = [row["id"] for row in rows]
    assert bytes(rows[0]["raw_head"]) == big[:RAW_PREFIX_BYTES] and rows[0]["raw_bytes"] == len(big)
    assert bytes(rows[0]["raw_sha256"]) == hashlib.sha256(big).digest() and not rows[0]["raw_whole"]
    assert rows[1]["raw_whole"] and bytes(rows[1]["raw_sha256"]) == hashlib.sha256(b'{"x": 1}').digest()
    assert await stored_raw_lengths(store) == [RAW_PREFIX_BYTES, 8]
    refs = await store.dead_letter_refs(ids)
    assert [refs[i].whole for i in ids] == [False, True]
    assert await store.unreplayed_dead_letters(DeadLetterFilter(), 10) == [ids[1]]
    assert await store.count_not_replayable(DeadLetterFilter()) == 1
    assert await store.count_not_replayable(DeadLetterFilter(reason="malformed")) == 0
    async with store.intake() as tx:
        targets = await tx.replay_targets(ids)
    assert (targets[ids[0]].whole, targets[ids[0]].raw, targets[ids[1]].whole) == (False, big[:RAW_PREFIX_BYTES], True)


async def test_a_dead_letter_that_refers_to_anothers_bytes_keeps_none_and_reads_them(store):
    async with store.intake() as tx:
        await tx.write_dead_letters([letter(raw=b'{"one": 1}')])
    (first,) = [row["id"] for row in await store.dead_letter_page(DeadLetterFilter(), 0, 10, 100)]
    async with store.intake() as tx:
        await tx.write_dead_letters([replace(letter("no_price"), raw=b'{"one": 1}', raw_bytes=-1, raw_of=first)])
    rows = await store.dead_letter_page(DeadLetterFilter(), 0, 10, 100)
    second = rows[1]["id"]
    assert bytes(rows[1]["raw_head"]) == b'{"one": 1}' and rows[1]["raw_bytes"] == 10 and rows[1]["raw_whole"]
    assert await stored_raw_lengths(store) == [10, 0]
    async with store.intake() as tx:
        target = (await tx.replay_targets([second]))[second]
    assert (target.raw, target.whole, target.bytes_of) == (b'{"one": 1}', True, first)
    # Only the dead letter that holds the bytes may be referred to: one read finds them.
    with pytest.raises(LedgerError):
        async with store.intake() as tx:
            await tx.write_dead_letters([replace(letter(), raw=b'{"one": 1}', raw_bytes=-1, raw_of=second)])


async def test_a_nul_in_a_filter_is_the_callers_input_error(store):
    with pytest.raises(InputError):
        await store.dead_letter_page(DeadLetterFilter(member="k\x00ddi"), 0, 10, 4)
    with pytest.raises(InputError):
        await store.hour_usage(0, 3600, where=UsageFilter(provider="s\x00"))


# -- usage and tokens --------------------------------------------------------------------


async def test_hour_usage_is_scoped_to_a_member_and_filtered(store):
    await load_catalog(store)
    own = ("kddi", "kddi", "kdd-1", "H100")
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b11), (key(attribution=own, gpu="GPU-9"), 0b1)])
    everything = await store.hour_usage(HOUR, HOUR + 3600)
    assert sorted((u.tenant, u.seconds) for u in everything) == [("acme", 2), ("kdd-1", 1)]
    sakura = await store.hour_usage(HOUR, HOUR + 3600, member="sakura")
    assert [(u.provider, u.tenant) for u in sakura] == [("sakura", "acme")]
    assert await store.hour_usage(HOUR, HOUR + 3600, where=UsageFilter(sku="B200")) == []
    assert await store.hour_usage(HOUR + 3600, HOUR + 7200) == []



async def test_hour_usage_narrows_by_each_field_of_its_filter(store):
    """Each field of `UsageFilter`, alone or with others, on both stores."""
    await load_catalog(store, SPEC_CATALOG + '\n[[gpus]]\nuuid = "GPU-1"\nprovider = "sakura"\nsku = "H200"\n'
                       'region = "jp-tokyo"\nregistered_from = "2026-04-01T00:00:00+09:00"\n')
    august = HOUR - 40 * 86400  # billed late: service period 2026-08, booked in 2026-09
    async with store.intake() as tx:
        await tx.write_claims([
            (key(), 0b11), (key(attribution=("kddi", "kddi", "kdd-1", "H100"), gpu="GPU-9"), 0b1),
            (ClaimKey("GPU-1", august, KDDI_ACME, "2026-08", "2026-09"), 0b1),
        ])
    acme_aug, acme_sep, kdd = ("acme", "2026-08", "jp-tokyo", 1), ("acme", "2026-09", "jp-tokyo", 2), ("kdd-1", "2026-09", "", 1)
    cases = [
        (UsageFilter(), [acme_aug, acme_sep, kdd]),
        (UsageFilter(provider="sakura"), [acme_aug, acme_sep]),
        (UsageFilter(provider="kddi"), [kdd]),
        (UsageFilter(reseller="kddi"), [acme_aug, acme_sep, kdd]),
        (UsageFilter(reseller="sakura"), []),
        (UsageFilter(sku="H100"), [kdd]),
        (UsageFilter(service_period="2026-08"), [acme_aug]),
        (UsageFilter(region="jp-tokyo"), [acme_aug, acme_sep]),
        (UsageFilter(provider="sakura", service_period="2026-09", region="jp-tokyo"), [acme_sep]),
        (UsageFilter(provider="sakura", sku="H100"), []),
    ]
    for where, expected in cases:
        rows = await store.hour_usage(august, HOUR + 3600, where=where)
        assert sorted((u.tenant, u.service_period, u.region or "", u.seconds) for u in rows) == expected, where
    scoped = await store.hour_usage(august, HOUR + 3600, member="sakura", where=UsageFilter(sku="H100"))
    assert scoped == []  # sakura neither provided nor resold the H100 hour
    with pytest.raises(TypeError):
        UsageFilter("sakura")  # named, never positional

async def test_tokens_are_found_revoked_once_and_keyed_by_one_pseudonym_key(store):
    await load_catalog(store)
    token = TokenRecord("0123456789abcdef", "member", "kddi", b"s" * 16, b"h" * 32, False, 1_900_000_000,
                        label="ops")
    await store.insert_token(token)
    found = await store.token("0123456789abcdef")
    assert (found.role, found.member, found.salt, found.digest, found.expires_at, found.label, found.revoked) == (
        "member", "kddi", b"s" * 16, b"h" * 32, 1_900_000_000, "ops", False)
    assert found.created_at is not None and found.last_used_at is None
    await store.touch_token("0123456789abcdef", 1_800_000_000)
    await store.touch_token("0123456789abcdef", 1_800_000_060)
    assert (await store.token("0123456789abcdef")).last_used_at == 1_800_000_060
    assert [t.token_id for t in await store.tokens()] == ["0123456789abcdef"]
    assert await store.token("fedcba9876543210") is None
    assert await store.revoke_token("0123456789abcdef") is True
    assert await store.revoke_token("0123456789abcdef") is False
    assert await store.revoke_token("fedcba9876543210") is None
    assert (await store.token("0123456789abcdef")).revoked
    for token_id in ("0123456789abcdef", "fedcba9876543210"):  # one round trip for a request's first reads
        assert await store.token_and_version(token_id) == (await store.token(token_id), await store.ledger_version())
    assert (await store.ledger_version())[0] > 0
    first = await store.pseudonym_key(b"k" * 32)
    assert first == b"k" * 32 and await store.pseudonym_key(b"z" * 32) == first


async def test_a_gpu_registered_after_its_seconds_were_billed_gets_its_region_in_usage(store):
    """Usage is grouped with the registry as it is now (PostgreSQL: the rollups move)."""
    await load_catalog(store)
    own = ("kddi", "kddi", "kdd-1", "H100")
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b111), (key(gpu="GPU-2"), 0b1), (key(attribution=own, gpu="GPU-3"), 0b11)])
    before = await store.hour_usage(HOUR, HOUR + 3600)
    assert sorted((u.tenant, u.region, u.seconds) for u in before) == [("acme", None, 4), ("kdd-1", None, 2)]
    registry = "\n".join(
        f'[[gpus]]\nuuid = "{uuid}"\nprovider = "{provider}"\nsku = "{sku}"\nregion = "jp-tokyo"\n'
        'registered_from = "2026-04-01T00:00:00+09:00"\n'
        for uuid, provider, sku in (("GPU-1", "sakura", "H200"), ("GPU-3", "kddi", "B200"))
    )
    await load_catalog(store, SPEC_CATALOG + "\n" + registry)
    after = await store.hour_usage(HOUR, HOUR + 3600)
    # GPU-3 is registered as another SKU than it was billed as: no region for its seconds.
    assert sorted((u.tenant, u.region or "", u.seconds) for u in after) == [
        ("acme", "", 1), ("acme", "jp-tokyo", 3), ("kdd-1", "", 2),
    ]
    assert await store.hour_usage(HOUR, HOUR + 3600, where=UsageFilter(region="jp-tokyo")) == [
        u for u in after if u.region == "jp-tokyo"
    ]
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1111)])
    grown = await store.hour_usage(HOUR, HOUR + 3600, member="sakura", where=UsageFilter(region="jp-tokyo"))
    assert [(u.tenant, u.seconds) for u in grown] == [("acme", 4)]
    async with store.books() as books:
        billed = await books.capacity_billed("2026-09")
    assert sorted((b.provider, b.region or "", b.seconds) for b in billed) == [
        ("kddi", "", 2), ("sakura", "", 1), ("sakura", "jp-tokyo", 4),
    ]


# -- payments ---------------------------------------------------------------------------

TRANSFERS = b'[{"from":"kddi","to":"highreso","amount_yen":1000},{"from":"sakura","to":"highreso","amount_yen":50}]'


async def close_with_transfers(store, period: str = "2026-09") -> None:
    async with store.books(close=True) as books:
        await books.store_closed_statement(period, b'{"period":"%s","transfers":%s}' % (period.encode(), TRANSFERS))
        await books.record_close(period, ["highreso", "kddi", "sakura"])


def a_payment(amount: int, payer: str = "kddi", period: str = "2026-09") -> Payment:
    return Payment("", period, payer, "highreso", amount, date(2026, 10, 5), "BANK", "recorded", recorded_by="t1")


async def test_a_closed_statements_transfers_come_back_in_its_order(store):
    await close_through(store, "2026-08")  # a statement without transfers owes none
    await close_with_transfers(store)
    expected = [Transfer("2026-09", "kddi", "highreso", 1000, 0), Transfer("2026-09", "sakura", "highreso", 50, 1)]
    async with store.payments() as tx:
        assert await tx.transfers() == expected
        assert await tx.transfers("2026-09") == expected and await tx.transfers("2026-08") == []
        assert await tx.closed_through() == "2026-09"
    async with store.snapshot() as books:
        assert await books.transfers() == expected


async def test_payments_are_numbered_in_recording_order_and_never_exceed_their_transfer(store):
    await close_with_transfers(store)
    async with store.payments() as tx:
        now = await tx.now()
        first = await tx.insert_payment(a_payment(600))
        second = await tx.insert_payment(a_payment(50, payer="sakura"))
    assert (first.id, second.id, first.state, first.recorded_by) == ("pay-1", "pay-2", "recorded", "t1")
    assert now - 1 <= first.recorded_at <= now + 5 and first.paid_on == date(2026, 10, 5)
    for refused in (a_payment(401), a_payment(1, payer="sakura"), a_payment(1, period="2026-10"),
                    replace(a_payment(1), payee="sakura")):
        with pytest.raises(LedgerError):
            async with store.payments() as tx:
                await tx.insert_payment(refused)
    async with store.payments() as tx:
        assert [p.id for p in await tx.payments()] == ["pay-1", "pay-2"]
        assert await tx.payments(payment_id="pay-2") == [second]
        assert await tx.payments(period="2026-10") == []
        assert (await tx.insert_payment(a_payment(400))).id == "pay-3"


async def test_a_decision_is_stored_once_and_a_confirmation_names_its_journal_entry(store):
    await close_with_transfers(store)
    async with store.payments() as tx:
        for amount in (600, 400):
            await tx.insert_payment(a_payment(amount))
    entry = journal.Entry("payment", {"payment": "pay-1", "transfer": 0},
                          [("kddi/payable/transfer/highreso", 600), ("kddi/cash", -600),
                           ("highreso/cash", 600), ("highreso/receivable/transfer/kddi", -600)])
    for state, note, seq in (("rejected", " ", None), ("confirmed", "", None), ("confirmed", "", 1),
                             ("rejected", "no", 1), ("paid", "", None)):
        with pytest.raises(LedgerError):
            async with store.payments() as tx:
                if seq is not None:
                    await tx.append_journal(journal.chain("2026-09", [entry], *await tx.journal_head()))
                await tx.decide("pay-2" if seq else "pay-1", state, note, "t2", seq)
    async with store.payments() as tx:
        seq, head = await tx.journal_head()
        await tx.append_journal(journal.chain("2026-09", [entry], seq, head))
        await tx.decide("pay-1", "confirmed", "", "t2", seq + 1)
        await tx.decide("pay-2", "rejected", "not received", "t2", None)
        assert await tx.transfer_entry_kinds("2026-09", 0) == []
    with pytest.raises(LedgerError):
        async with store.payments() as tx:
            await tx.decide("pay-2", "rejected", "again", "t2", None)
    async with store.snapshot() as books:
        decided = await books.payments()
        assert [(p.state, p.note, p.decided_by) for p in decided] == [
            ("confirmed", "", "t2"), ("rejected", "not received", "t2")]
        assert decided[0].decided_at >= decided[0].recorded_at
        assert [e.kind async for e in books.journal("2026-09")] == ["payment"]


async def test_the_kinds_of_a_transfers_entries_are_found_by_its_index(store):
    await close_with_transfers(store)
    owed = journal.entries_for_statement(Statement.from_document(
        {"period": "2026-09", "currency": "JPY", "closed": True, "lines": [], "tenant_invoices": [],
         "member_invoices": [], "net_yen": {}, "transfers": [{"from": "kddi", "to": "highreso", "amount_yen": 1000}]}))
    old = [journal.Entry("transfer", {"transfer": 1}, [("sakura/cash", -50), ("highreso/cash", 50)]),
           journal.Entry("transfer_restated", {"transfer": 1}, [("sakura/cash", 50), ("highreso/cash", -50)])]
    async with store.payments() as tx:
        await tx.append_journal(journal.chain("2026-09", [*owed, *old], *await tx.journal_head()))
        assert await tx.transfer_entry_kinds("2026-09", 0) == ["transfer_owed"]
        assert await tx.transfer_entry_kinds("2026-09", 1) == ["transfer", "transfer_restated"]
        assert await tx.transfer_entry_kinds("2026-10", 0) == []


async def test_a_payment_recorded_while_another_holds_the_transfer_sees_it(store):
    """Two payments at once cannot together exceed their transfer: the second waits for the
    first's transaction to end, then counts it."""
    await close_with_transfers(store)
    kddi = Caller("t1", "member", "kddi")
    holding, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store.payments() as tx:
            await tx.lock_transfer(Transfer("2026-09", "kddi", "highreso", 1000, 0))
            await tx.insert_payment(a_payment(600))
            holding.set()
            await release.wait()

    holder = asyncio.create_task(first())
    await holding.wait()
    second = asyncio.create_task(payments_service.record(store, kddi, "2026-09", "highreso", 600, "2026-10-05", "B2"))
    await asyncio.sleep(0.3)
    assert not second.done()  # waiting for the transfer
    release.set()
    await holder
    with pytest.raises(PaymentRefused, match="600 are confirmed or awaiting"):
        await second
    async with store.payments() as tx:
        assert [p.amount_yen for p in await tx.payments()] == [600]


# -- voids ------------------------------------------------------------------------------


def void_of(seconds: int, closed_through: str | None = None) -> NewVoid:
    return NewVoid("GPU-1", HOUR, HOUR + 3600, KDDI_ACME, "outage", None, "operator", seconds, closed_through)


async def test_a_void_is_stored_with_what_it_took_and_read_back_per_claim(store):
    await load_catalog(store)
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1111), (key(gpu="GPU-2"), 0b1)])
        void_id = await tx.write_void(void_of(2), [VoidedBits(key(), 0b0011, None)])
    assert void_id.startswith("void-")
    async with store.intake() as tx:
        assert await tx.voided([("GPU-1", HOUR), ("GPU-2", HOUR)]) == [(key(), 0b0011)]
    async with store.books() as books:
        [usage] = [u for u in await books.hour_usages("2026-09", []) if u.hour_start == HOUR]
        assert usage.seconds == 3  # 4 + 1 claimed, 2 voided while the period was open
        assert [u.bits for u in await books.hour_usages("2026-09", [HOUR]) if u.tenant == "acme"] == [0b1100, 0b1]
        rows = await books.voids()
        assert [(r.id, r.void.gpu_seconds, r.returned_in) for r in rows] == [(void_id, 2, None)]
        assert await books.voids("highreso") == [] and len(await books.voids("kddi")) == 1
    # the usage figures (the rollups on PostgreSQL) stop counting them too
    assert sum(u.seconds for u in await store.hour_usage(HOUR, HOUR + 3600)) == 3
    assert sum(u.seconds for u in await store.hour_usage(HOUR, HOUR + 3600, member="kddi")) == 3


async def test_a_void_and_a_close_each_make_a_new_ledger_version(store):
    await load_catalog(store)
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1111)])
    versions = [await store.ledger_version()]
    async with store.intake() as tx:
        await tx.write_void(void_of(1), [VoidedBits(key(), 0b1, None)])
    versions.append(await store.ledger_version())
    await close_through(store, "2026-09", ["2026-09"])
    versions.append(await store.ledger_version())
    assert len(set(versions)) == 3 and len({v[0] for v in versions}) == 1  # the catalog did not change


async def test_seconds_voided_after_their_period_closed_stay_on_its_lines_and_are_returned_later(store):
    await load_catalog(store)
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1111)])
    await close_through(store, "2026-09", ["2026-09"])
    async with store.intake() as tx:
        await tx.write_void(void_of(1, "2026-09"), [VoidedBits(key(), 0b1000, "2026-10")])
    async with store.books() as books:
        assert sum(u.seconds for u in await books.hour_usages("2026-09", [])) == 4  # as its statement holds
        assert [u.bits for u in await books.hour_usages("2026-09", [HOUR])] == [0b1111]
        assert await books.returned("2026-10") == [VoidedBits(key(), 0b1000, "2026-10")]
        assert await books.returned("2026-09") == []
        billed = await books.capacity_billed("2026-09")
        assert sum(b.seconds for b in billed) == 3  # billed now
        check = await books.check_rollups(10)
        assert (check.differences, check.gpu_seconds) == ((), 3)


async def test_evidence_shows_what_statements_hold_and_voids_are_read_back_with_their_parts(store):
    await load_catalog(store)
    beta = ("sakura", "kddi", "beta", "H200")
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1111), (key(gpu="GPU-2"), 0b11)])
        await tx.write_void(void_of(1), [VoidedBits(key(gpu="GPU-2"), 0b01, None)])  # while 2026-09 was open
    await close_through(store, "2026-09", ["2026-09"])
    async with store.intake() as tx:
        first = await tx.write_void(void_of(2, "2026-09"), [VoidedBits(key(), 0b0011, "2026-10")])
        await tx.write_claims([(key(booking="2026-10", attribution=beta), 0b0001)])  # billed again to beta
    async with store.snapshot() as reader:
        september = [(e.key.gpu_uuid, e.bits, e.elsewhere) async for e in reader.evidence("2026-09")]
        october = [(e.key.attribution[2], e.bits, e.elsewhere) async for e in reader.evidence("2026-10")]
        parts = await reader.void_parts("2026-10")
        every = await reader.void_parts()
        claims = await reader.claim_bits([key(), key(gpu="GPU-3")])
        disputes = await reader.dispute_rows()
    # September holds GPU-1's four seconds (two returned later: beta's second is not "elsewhere"
    # for it) and GPU-2's one left after the open void; October bills beta's, with nothing elsewhere
    # (acme's seconds of the hour still billed now are 2 and 3, which beta does not overlap).
    assert september == [("GPU-1", 0b1111, 0), ("GPU-2", 0b10, 0)]
    assert october == [("beta", 0b0001, 0b1100)]
    assert parts == [(first, VoidedBits(key(), 0b0011, "2026-10"))]
    assert [void_id for void_id, _ in every][-1] == first and len(every) == 2
    assert claims == {key(): 0b1111} and disputes == []


# -- disputes ---------------------------------------------------------------------------


def dispute_of(attribution=KDDI_ACME, note: str = "the pod had ended") -> NewDispute:
    return NewDispute("GPU-1", HOUR, HOUR + 3600, attribution, "not_used", note, 4, attribution[1], HOUR + 86_400)


REJECT = DisputeMove("reject", "rejected", "sakura", "our logs show use", HOUR + 90_000)
ESCALATE = DisputeMove("escalate", "escalated", "kddi", "", HOUR + 100_000)


async def test_a_dispute_comes_back_with_its_moves_to_its_parties(store):
    await load_catalog(store)
    async with store.disputes() as tx:
        dispute_id = await tx.open_dispute(dispute_of())
        await tx.append_move(dispute_id, 1, REJECT)
        await tx.append_move(dispute_id, 2, ESCALATE)
    assert dispute_id == "dispute-1"
    async with store.disputes() as tx:
        row = await tx.dispute(dispute_id)
        assert row == DisputeRow(dispute_id, dispute_of(), (REJECT, ESCALATE))
        assert await tx.dispute("dispute-2") is None and await tx.dispute("nothing") is None
        for member, seen in (("kddi", [row]), ("sakura", [row]), ("highreso", []), (None, [row])):
            assert await tx.disputes(member) == seen


async def test_disputes_are_listed_in_the_order_they_were_opened(store):
    await load_catalog(store)
    async with store.disputes() as tx:
        ids = [await tx.open_dispute(dispute_of()) for _ in range(11)]
        ids.append(await tx.open_dispute(dispute_of(("kddi", "sakura", "acme", "H200"))))
    assert ids[-3:] == ["dispute-10", "dispute-11", "dispute-12"]
    async with store.disputes() as tx:
        assert [row.id for row in await tx.disputes()] == ids
        assert [row.id for row in await tx.disputes("kddi")] == ids


@pytest.mark.parametrize("opened", [
    dispute_of(("kddi", "kddi", "acme", "H200")),  # on its own GPU
    replace(dispute_of(), opened_by="sakura"),  # not by its reseller
    dispute_of(("nobody", "kddi", "acme", "H200")),
    replace(dispute_of(), reason="because"),
    replace(dispute_of(), gpu_seconds=0),
    replace(dispute_of(), note="x" * 2001),
])
async def test_a_dispute_the_schema_refuses_is_not_stored(store, opened):
    await load_catalog(store)
    with pytest.raises(LedgerError):
        async with store.disputes() as tx:
            await tx.open_dispute(opened)
    async with store.disputes() as tx:
        assert await tx.disputes() == []


@pytest.mark.parametrize("seq, move", [
    (2, REJECT),  # move 2 is taken
    (3, DisputeMove("reject", "accepted", "sakura", "no", HOUR)),  # an action that does not lead there
    (3, DisputeMove("accept", "accepted", "sakura", "", HOUR)),  # a second answer
    (3, ESCALATE),  # a second escalation
    (3, DisputeMove("withdraw", "withdrawn", "kddi", "", HOUR, 5, None)),  # seconds without a void
    (3, DisputeMove("withdraw", "withdrawn", "kddi", "", HOUR, 1, "void-1")),  # a void on another move
    (3, DisputeMove("decide_accept", "accepted", "operator", "", HOUR, 1, "void-99")),  # no such void
    (3, DisputeMove("decide_reject", "rejected", "Not A Member", "", HOUR)),
])
async def test_a_move_the_schema_refuses_stores_nothing(store, seq, move):
    await load_catalog(store)
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1111)])
        await tx.write_void(void_of(1), [VoidedBits(key(), 0b1, None)])
    async with store.disputes() as tx:
        dispute_id = await tx.open_dispute(dispute_of())
        await tx.append_move(dispute_id, 1, REJECT)
        await tx.append_move(dispute_id, 2, ESCALATE)
    with pytest.raises(LedgerError):
        async with store.disputes() as tx:
            await tx.append_move(dispute_id, seq, move)
    async with store.disputes() as tx:
        assert (await tx.dispute(dispute_id)).moves == (REJECT, ESCALATE)


async def test_a_rejection_without_a_note_and_a_second_final_move_are_refused(store):
    await load_catalog(store)
    async with store.disputes() as tx:
        dispute_id = await tx.open_dispute(dispute_of())
    with pytest.raises(LedgerError):
        async with store.disputes() as tx:
            await tx.append_move(dispute_id, 1, replace(REJECT, note=""))
    async with store.disputes() as tx:
        await tx.append_move(dispute_id, 1, DisputeMove("withdraw", "withdrawn", "kddi", "", HOUR))
    with pytest.raises(LedgerError):
        async with store.disputes() as tx:
            await tx.append_move(dispute_id, 2, DisputeMove("decide_reject", "rejected", "operator", "", HOUR))
    async with store.disputes() as tx:
        assert [m.action for m in (await tx.dispute(dispute_id)).moves] == ["withdraw"]


async def test_an_acceptance_and_its_void_commit_together_or_not_at_all(store):
    await load_catalog(store)
    async with store.intake() as tx:
        await tx.write_claims([(key(), 0b1111)])
    async with store.disputes() as tx:
        dispute_id = await tx.open_dispute(dispute_of())

    async def accept(fail: bool) -> None:
        async with store.disputes() as tx:
            void = replace(void_of(4), dispute_id=dispute_id, actor="sakura")
            void_id = await tx.write_void(void, [VoidedBits(key(), 0b1111, None)])
            await tx.append_move(dispute_id, 1, DisputeMove("accept", "accepted", "sakura", "", HOUR, 4, void_id))
            if fail:
                raise RuntimeError("the commit never happens")

    with pytest.raises(RuntimeError):
        await accept(fail=True)
    async with store.disputes() as tx:
        assert (await tx.dispute(dispute_id)).moves == () and await tx.voided([("GPU-1", HOUR)]) == []
    await accept(fail=False)
    async with store.disputes() as tx:
        [move] = (await tx.dispute(dispute_id)).moves
        assert (move.voided_gpu_seconds, await tx.voided([("GPU-1", HOUR)])) == (4, [(key(), 0b1111)])
    async with store.snapshot() as books:
        [void] = await books.voids()
        assert (void.id, void.void.dispute_id) == (move.void_id, dispute_id)


async def test_a_locked_dispute_holds_a_second_mover_until_the_first_commits(store):
    await load_catalog(store)
    async with store.disputes() as tx:
        dispute_id = await tx.open_dispute(dispute_of())

    async def second_mover() -> DisputeRow:
        async with store.disputes() as tx:
            return await tx.dispute(dispute_id, lock=True)

    async with store.disputes() as tx:
        assert (await tx.dispute(dispute_id, lock=True)).moves == ()
        waiting = asyncio.create_task(second_mover())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await tx.append_move(dispute_id, 1, REJECT)
    assert (await asyncio.wait_for(waiting, 10)).moves == (REJECT,)


async def test_now_is_the_stores_clock_in_whole_seconds(store):
    async with store.disputes() as tx:
        now = await tx.now()
    assert isinstance(now, int) and abs(now - time.time()) < 60
