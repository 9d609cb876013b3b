"""The whole ledger against a model: Hypothesis interleaves ingests (duplicates,
conflicts, usage of closed periods, bad input), closes, catalog loads, dead-letter
replays and worker restarts (a new intake, the last batch redelivered as after a crash
before its ack) on the real PostgreSQL, and after every step checks every statement
and every count against `ledger_reference` (SPEC.md's rules written independently), and
against the same services on the in-memory store.

`make test` runs a few examples; `make chaos` sets GPULEDGER_MODEL_EXAMPLES to run many.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.domain.access import Caller
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.errors import LedgerError
from ledger.memory.store import MemoryStore
from ledger.postgres.store import PostgresStore
from ledger.service import books, deadletters
from ledger.service import catalog as catalog_service
from ledger.service import ingest as ingest_service
from ledger.service.intake import Intake
from tests.postgres.conftest import new_database
from tests.postgres.ledger_reference import (
    AGREEMENTS_V1,
    AGREEMENTS_V2,
    GPUS,
    MEMBERS,
    PERIODS,
    PRICES_V1,
    PRICES_V2,
    Event,
    Reference,
)
from tests.postgres.rollups import rollup_mismatches
from tests.service.conftest import LoopbackPublisher

pytestmark = pytest.mark.infra

EXAMPLES = int(os.environ.get("GPULEDGER_MODEL_EXAMPLES", "12"))
STEPS = int(os.environ.get("GPULEDGER_MODEL_STEPS", "12"))
ADMIN = Caller("model", "admin", None)
# Instants near the months' edges in JST, so that events span periods.
ANCHORS = [datetime(2026, 8, 20, tzinfo=UTC), datetime(2026, 8, 31, 14, 59, 50, tzinfo=UTC),
           datetime(2026, 9, 30, 14, 59, 50, tzinfo=UTC), datetime(2026, 10, 9, tzinfo=UTC),
           datetime(2026, 10, 31, 14, 59, 55, tzinfo=UTC)]
REPLAYABLE = ("unknown_sku", "no_price", "no_agreement", "conflict", "malformed")


def catalog_toml(v2: bool) -> bytes:
    lines = ['currency = "JPY"', 'timezone = "Asia/Tokyo"', "tax_rate_percent = 10", "acceptance_horizon_days = 1000"]
    lines += [f'[[members]]\nid = "{m}"\nname = "{m.title()}"' for m in MEMBERS]
    lines += [f'[[skus]]\nid = "{sku}"\ndescription = "{sku}"' for sku in ("H100", "H200", *(("B200",) if v2 else ()))]
    prices = {**PRICES_V1, **(PRICES_V2 if v2 else {})}
    for (reseller, sku), (price, start) in prices.items():
        lines.append(f'[[retail_prices]]\nreseller = "{reseller}"\nsku = "{sku}"\n'
                     f'yen_per_gpu_hour = "{float(price):.4f}"\neffective_from = "{start.isoformat()}"')
    for (reseller, provider, sku), (kind, rate) in {**AGREEMENTS_V1, **(AGREEMENTS_V2 if v2 else {})}.items():
        start = prices[(reseller, sku)][1]
        term = f'wholesale_yen_per_gpu_hour = "{float(rate):.4f}"' if kind == "fixed" else f"provider_share_bps = {rate}"
        lines.append(f'[[agreements]]\nreseller = "{reseller}"\nprovider = "{provider}"\nsku = "{sku}"\n'
                     f'effective_from = "{start.isoformat()}"\n{term}')
    return "\n".join(lines).encode()


def events() -> st.SearchStrategy[Event]:
    valid = st.builds(
        lambda gpu, reseller, tenant, other_sku, anchor, offset, seconds: Event(
            gpu, reseller, tenant, other_sku or GPUS[gpu][1], anchor + timedelta(seconds=offset), seconds),
        st.sampled_from(sorted(GPUS)), st.sampled_from([*MEMBERS, *MEMBERS, "zeta"]), st.sampled_from(["t1", "t2"]),
        st.one_of(st.none(), st.none(), st.none(), st.sampled_from(["H100", "H200", "B200"])),
        st.sampled_from(ANCHORS), st.one_of(st.integers(0, 15), st.sampled_from([300, 1800, 3000])),
        st.one_of(st.integers(1, 12), st.integers(1000, 3600)),
    )
    broken = st.builds(lambda e, kind: Event(e.gpu, e.reseller, e.tenant, e.sku, e.start, e.seconds, kind),
                       valid, st.sampled_from(["malformed", "schema"]))
    return st.one_of(valid, valid, valid, broken)


def _project(document: dict) -> dict:
    """A statement as the reference computes it (the fields it knows)."""
    keys = ("reseller", "tenant", "provider", "sku", "service_period", "gpu_seconds", "retail_yen", "wholesale_yen")
    return {
        "closed": document["closed"],
        "lines": [{k: line[k] for k in keys} for line in document["lines"]],
        "tenant_invoices": document["tenant_invoices"],
        "member_invoices": document["member_invoices"],
        "net_yen": document["net_yen"],
        "transfers": document["transfers"],
    }


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, owner_url: str) -> None:
        super().__init__()
        self.owner_url = owner_url
        self.loop = asyncio.new_event_loop()
        self.database_url = new_database(owner_url)
        self.postgres = self.run(PostgresStore.connect(self.database_url))
        self.memory = MemoryStore()
        self.reference = Reference()
        self.publisher = LoopbackPublisher()
        self.intakes = {"postgres": Intake(self.postgres), "memory": Intake(self.memory)}
        self.ingests: dict[str, dict] = {}
        self.frozen: dict[str, bytes] = {}
        self.last_records: list = []
        self.names = itertools.count(1)

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def stores(self):
        return (("postgres", self.postgres), ("memory", self.memory))

    def both(self, make) -> dict:
        return {name: self.run(make(store)) for name, store in self.stores()}

    @initialize()
    def load_first_catalog(self) -> None:
        content = parse_catalog(catalog_toml(v2=False))
        self.both(lambda store: catalog_service.load_parsed(store, content, "1" * 64, "model v1"))

    @rule(batch=st.lists(events(), min_size=1, max_size=12), repeat=st.booleans())
    def ingest(self, batch: list[Event], repeat: bool) -> None:
        """A file, sometimes sent twice by two collectors (the second all duplicates)."""
        for _ in range(2 if repeat else 1):
            name = f"ingest-{next(self.names)}"
            lines = [event.line(number) for number, event in enumerate(batch)]
            self.run(ingest_service.publish(self.postgres, self.publisher, lines, name, batch_max_events=4))
            self.last_records = self.publisher.pending()
            for intake in self.intakes.values():
                self.run(intake.apply(self.last_records))
            self.ingests[name] = self.reference.ingest(batch)

    @rule()
    def restart_worker(self) -> None:
        """A worker that died after its commit and before its ack: a new one is given the
        same records again, and must skip them."""
        self.intakes = {"postgres": Intake(self.postgres), "memory": Intake(self.memory)}
        for intake in self.intakes.values():
            self.run(intake.apply(self.last_records))

    @precondition(lambda self: self.reference.closed_through != PERIODS[2])
    @rule(index=st.integers(0, 2))
    def close(self, index: int) -> None:
        period = PERIODS[index]
        if self.reference.closed_through is not None and period <= self.reference.closed_through:
            period = PERIODS[PERIODS.index(self.reference.closed_through) + 1]
        printed = self.both(lambda store: books.statement(store, period, close=True))
        assert printed["postgres"] == printed["memory"]
        self.reference.closed_through = period
        for earlier in PERIODS[: PERIODS.index(period) + 1]:
            self.frozen.setdefault(earlier, self.run(books.statement(self.postgres, earlier)))

    @precondition(lambda self: not self.reference.v2)
    @rule()
    def load_second_catalog(self) -> None:
        """B200 from October: refused as a whole once October is closed."""
        content = parse_catalog(catalog_toml(v2=True))
        outcome = {}
        for name, store in self.stores():
            try:
                outcome[name] = self.run(catalog_service.load_parsed(store, content, "2" * 64, "model v2"))
            except LedgerError as error:
                outcome[name] = type(error).__name__
        refused = self.reference.closed_through == PERIODS[2]
        assert all(isinstance(o, str) for o in outcome.values()) == refused, outcome
        self.reference.v2 = not refused

    @rule(reason=st.sampled_from(REPLAYABLE))
    def replay(self, reason: str) -> None:
        got = self.both(lambda store: deadletters.replay(store, ADMIN, reason=reason))
        want = self.reference.replay(reason)
        for name, result in got.items():
            result = {k: v for k, v in result.items() if k not in ("ingest_id", "skipped_already_replayed")}
            assert result == want, name

    @invariant()
    def counts_agree(self) -> None:
        for name, want in self.ingests.items():
            for store_name, got in self.both(lambda store, n=name: ingest_service.tally(store, n)).items():
                assert got == want, (store_name, name)

    @invariant()
    def statements_agree(self) -> None:
        for period in PERIODS:
            printed = self.both(lambda store, p=period: books.statement(store, p))
            assert printed["postgres"] == printed["memory"], period
            document = orjson.loads(printed["postgres"])
            assert _project(document) == self.reference.statement(period), period
            if period in self.frozen:
                assert printed["postgres"] == self.frozen[period], f"closed {period} changed"

    @invariant()
    def rollups_are_the_claims_grouped(self) -> None:
        assert self.run(rollup_mismatches(self.database_url)) == []

    def teardown(self) -> None:
        self.run(self.postgres.close())
        self.run(_drop(self.owner_url, self.database_url.rsplit("/", 1)[1]))
        self.loop.close()


async def _drop(owner_url: str, name: str) -> None:
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def test_the_ledger_follows_the_reference_through_any_interleaving(postgres_server) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(postgres_server),
        settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )
