"""GPU registrations in bulk: a CSV file for fleets of tens of thousands of GPUs.

`uuid,provider,sku,region,registered_from,retired_from` with a header line; retired_from
may be empty. Each row is what a `[[gpus]]` entry of a catalog file says, checked the
same way, and the file loads under the same rules (all or nothing, `Catalog.merge`).
"""

from __future__ import annotations

import csv
import io

from pydantic import ValidationError

from ledger.domain.catalog import CatalogFileContent
from ledger.domain.catalog_file import check_unique_within_file, gpu
from ledger.domain.errors import CatalogError
from schemas import catalog as wire

COLUMNS = ("uuid", "provider", "sku", "region", "registered_from", "retired_from")
MAX_ROWS = 1_000_000


def parse_registry_csv(data: bytes, source: str = "gpus.csv") -> CatalogFileContent:
    """The registrations of a CSV file, or CatalogError naming the first bad line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(rows, [])]
    if tuple(header) not in (COLUMNS, COLUMNS[:-1]):
        raise CatalogError(f"{source}: the first line must be {','.join(COLUMNS)}")
    gpus = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(gpus) >= MAX_ROWS:
            raise CatalogError(f"{source}: more than {MAX_ROWS} registrations; split the file")
        gpus.append(_registration(row, header, f"{source}: line {line}"))
    content = CatalogFileContent({}, [], [], [], [], gpus, [])
    check_unique_within_file(content, source)
    return content


def _registration(row: list[str], header: list[str], where: str):
    if len(row) != len(header):
        raise CatalogError(f"{where}: {len(row)} fields, expected {len(header)}")
    values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
    if not values.get("retired_from"):
        values.pop("retired_from", None)
    try:
        entry = wire.Gpu.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CatalogError(f"{where}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
    return gpu(entry, where)
