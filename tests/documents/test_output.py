"""A period's documents written by a pool of processes, and manifest.json written as they are done.

Given the public scenario's October (no stack), when its documents are written by two
processes, then every file is the same bytes as when this process writes them alone,
progress is heard once per document in the plan's order, and a document that fails stops
the run with its own error and leaves no manifest. manifest.json written one entry at a
time is the same bytes as the whole manifest dumped at once.
"""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from ledger.documents import output, pool
from ledger.domain.errors import VerificationFailed
from ledger.domain.invoices import Planned
from tests.documents.stackless import period_documents


def entries(count: int) -> list[dict]:
    return [
        Planned("tenant_invoice", "kddi", f"tenant-{n}\u3042\"<", n * 1000 - 7, f"tenant-invoices/KDDI-{n}").entry()
        for n in range(count)
    ]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_manifest_written_entry_by_entry_is_the_whole_manifests_bytes(tmp_path, count):
    path = tmp_path / "manifest.json"
    with output.ManifestWriter(path, "2026-10") as manifest:
        for entry in entries(count):
            manifest.add(entry)
    whole = {"period": "2026-10", "documents": entries(count)}
    assert path.read_bytes() == orjson.dumps(whole, option=orjson.OPT_INDENT_2) + b"\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_manifest_cut_short_by_a_failure_is_never_in_place(tmp_path):
    path = tmp_path / "manifest.json"
    with pytest.raises(RuntimeError), output.ManifestWriter(path, "2026-10") as manifest:
        manifest.add(entries(1)[0])
        raise RuntimeError("a document failed")
    assert not path.exists()


def test_one_process_per_cpu_and_never_more_than_documents():
    assert pool.processes_for(1000, None) >= 1
    assert pool.processes_for(1000, 3) == 3
    assert pool.processes_for(2, 8) == 2
    assert pool.processes_for(0, None) == 1


def test_workers_start_with_what_invoices_read_and_reports_go_first():
    documents = period_documents("2026-10")
    slim = pool.shared(documents)
    assert (slim.statement, slim.catalog, slim.issue) == (documents.statement, documents.catalog, documents.issue)
    assert slim.usages == slim.earlier == slim.planned == [] and slim.pseudonym_key == b""
    order = [documents.planned[i].kind for i in pool._handed_out(documents)]
    assert order[:4] == ["settlement_report"] * 3 + ["capacity_report"]
    assert sorted(order) == sorted(p.kind for p in documents.planned)


@pytest.mark.heavy  # two WeasyPrint processes, then the same documents in this one
def test_a_pool_writes_the_same_bytes_as_one_process_in_the_plans_order(tmp_path):
    documents = period_documents("2026-10")
    heard = []
    pooled = output.write(documents, tmp_path / "pool", processes=2, on_progress=lambda *a: heard.append(a))
    alone = output.write(documents, tmp_path / "alone", processes=1)
    assert pooled == alone == documents.manifest()
    assert heard == [(n, len(documents.planned)) for n in range(1, len(documents.planned) + 1)]
    written = sorted(p.relative_to(tmp_path / "pool") for p in (tmp_path / "pool").rglob("*") if p.is_file())
    assert len(written) == 2 * len(documents.planned) + 1
    for relative in written:
        assert (tmp_path / "pool" / relative).read_bytes() == (tmp_path / "alone" / relative).read_bytes(), relative


@pytest.mark.heavy  # a pool of WeasyPrint processes
def test_a_document_that_fails_in_a_worker_stops_the_run_with_its_error(tmp_path):
    documents = period_documents("2026-10")
    statement = documents.statement
    last = statement.tenant_invoices[-1]
    wrong = replace(last, retail_yen=last.retail + 1, subtotal_yen=last.subtotal_yen + 1)
    documents.statement = replace(statement, tenant_invoices=(*statement.tenant_invoices[:-1], wrong))
    with pytest.raises(VerificationFailed, match=r"invoice .*: its lines less its returns adds up to"):
        output.write(documents, tmp_path, processes=2)
    assert not (tmp_path / "manifest.json").exists()
