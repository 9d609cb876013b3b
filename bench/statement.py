"""Benchmark: one large statement, in memory, the work the API's statement process does.

No stack: a catalog of three members and N one-second tenants of kddi on sakura's GPUs
(and 1,000 of sakura's own), rated once. Then, best of five each: an open statement
(rating -> `Statement` -> its bytes and every member's view as bytes) and a closed one
(its stored bytes read back -> every member's view). The point: what the typed
statement costs beside the rest of the computation, as the lines grow.

    python -m bench.statement [--tenants 100000]
"""

from __future__ import annotations

import argparse
import time

import orjson

from ledger.domain import access, credits, rating
from ledger.domain.catalog import Catalog
from ledger.domain.catalog_file import parse_catalog
from ledger.domain.statement import Statement
from tests.factories import agreement, catalog_text, price

HOUR = 1_790_000_000 - 1_790_000_000 % 3600  # an hour of 2026-09
KEY = b"k" * 32


def best_ms(work, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100_000, help="kddi's tenants on sakura's GPUs (default 100,000)")
    args = parser.parse_args()
    text = catalog_text(price("kddi", "H200", "780"), price("sakura", "H200", "700"),
                        agreement("kddi", "sakura", "H200", wholesale="520"), skus=("H200",))
    catalog = Catalog().merge(parse_catalog(text.encode()), None)
    usages = [rating.HourUsage("kddi", f"t{i:06d}", "sakura", "H200", "2026-09", HOUR, 1) for i in range(args.tenants)]
    usages += [rating.HourUsage("sakura", f"s{i:06d}", "sakura", "H200", "2026-09", HOUR, 1) for i in range(1000)]
    lines = rating.rate(catalog, usages)
    balances = credits.opening_balances(catalog.grants)

    def views(statement: Statement) -> dict[str, bytes]:
        return {m: orjson.dumps(access.member_view(statement, m, KEY)) for m in sorted(statement.net_yen)}

    def open_statement() -> bytes:
        statement = rating.statement("2026-09", catalog, lines, False, credits.draw(lines, catalog.grants, dict(balances)))
        views(statement)
        return orjson.dumps(statement.to_document())

    stored = open_statement()
    document = orjson.loads(stored)
    statement = Statement.from_document(document)
    figures = {
        "open statement: rated -> bytes + every member's view": best_ms(open_statement),
        "  rating.statement (the typed Statement)": best_ms(
            lambda: rating.statement("2026-09", catalog, lines, False, credits.draw(lines, catalog.grants, dict(balances)))),
        "  Statement.to_document + orjson.dumps": best_ms(lambda: orjson.dumps(statement.to_document())),
        "closed statement: stored bytes -> every member's view": best_ms(lambda: views(Statement.from_document(orjson.loads(stored)))),
        "  orjson.loads": best_ms(lambda: orjson.loads(stored)),
        "  Statement.from_document": best_ms(lambda: Statement.from_document(document)),
        "  every member's view, as bytes": best_ms(lambda: views(statement)),
    }
    print(f"{len(lines):,} lines, {len(stored):,} bytes; best of 5")
    for what, ms in figures.items():
        print(f"{what:<58} {ms:8,.0f} ms")


if __name__ == "__main__":
    main()
