"""The wire contracts of `schemas/`: generated files in step, and models that agree with
SPEC.md's examples, the public scenario and the product's own checks.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from ledger.domain import catalog as ledger_catalog
from ledger.domain import events
from ledger.domain.catalog_file import parse_catalog
from schemas import generate
from schemas.catalog import CatalogFile
from schemas.event import UsageEvent
from schemas.manifest import Manifest
from schemas.statement import Statement

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tests" / "scenarios" / "alliance-2026-q3"
# A copy of ../shared/SPEC.md, so that the examples are read on any clone;
# test_the_copy_of_spec_is_current says when it falls behind.
SPEC = ROOT / "tests" / "scenarios" / "SPEC.md"
SHARED_SPEC = ROOT.parent / "shared" / "SPEC.md"

SPEC_EVENT = {
    "specversion": "1.0",
    "id": "0192f1c2-7b3a-7c55-9d1e-5a4b3c2d1e0f",
    "source": "//sakura/ishikari-1/node-042",
    "type": "gpu.usage.v1",
    "time": "2026-10-03T12:00:00Z",
    "data": {"provider": "sakura", "reseller": "kddi", "tenant": "acme",
             "gpu_uuid": "GPU-5f1c...", "sku": "H200", "seconds": 1},
}
SPEC_STATEMENT = {
    "period": "2026-10", "currency": "JPY", "closed": False,
    "lines": [{"reseller": "kddi", "tenant": "acme", "provider": "sakura", "sku": "H200",
               "service_period": "2026-10",
               "retail_price_from": "2025-12-31T15:00:00Z",
               "agreement_from": "2025-12-31T15:00:00Z",
               "gpu_seconds": 7200, "retail_yen_per_gpu_hour": "780",
               "retail_yen": 1560, "wholesale_yen": 1040}],
    "tenant_invoices": [{"reseller": "kddi", "tenant": "acme", "retail_yen": 1560,
                         "credit_yen": 0, "subtotal_yen": 1560, "tax_yen": 156, "total_yen": 1716}],
    "member_invoices": [{"provider": "sakura", "reseller": "kddi",
                         "subtotal_yen": 1040, "tax_yen": 104, "total_yen": 1144}],
    "returns": [],
    "grant_draws": [],
    "net_yen": {"highreso": 0, "kddi": -1144, "sakura": 1144},
    "transfers": [{"from": "kddi", "to": "sakura", "amount_yen": 1144}],
}
MANIFEST = {
    "format": "gpuledger-audit-bundle/1",
    "period": "2026-10",
    "created_at": "2026-11-28T08:00:00Z",
    "files": {"statement.json": {"sha256": "0" * 64, "bytes": 12345},
              "journal.ndjson": {"sha256": "ab" * 32, "bytes": 0}},
    "chain_head": {"seq": 245, "hash": "f" * 64},
    "key_id": "1" * 64,
    "signature_algorithm": "Ed25519",
}


def _spec_example(heading: str) -> dict:
    """The first ```json block after `heading` in SPEC.md."""
    text = SPEC.read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", text[text.index(heading):], re.S)
    return json.loads(block.group(1))


def _accepts(model, value) -> bool:
    try:
        model.model_validate(value)
    except ValidationError:
        return False
    return True


def _schema_verdict(event: dict, catalog) -> bool:
    """True unless the product rejects `event` for `schema`: later checks do not count."""
    verdict = events.check(event, 0, catalog)
    return not (isinstance(verdict, events.Rejection) and verdict.reason == events.SCHEMA)


@pytest.fixture(scope="module")
def scenario_catalog():
    raw = (SCENARIO / "catalog.toml").read_bytes()
    return ledger_catalog.Catalog().merge(parse_catalog(raw), None)


@pytest.fixture(scope="module")
def batch1_lines() -> list[bytes]:
    return gzip.decompress((SCENARIO / "batch1.ndjson.gz").read_bytes()).split(b"\n")


# -- (a) the generated files ---------------------------------------------------------


def test_json_schema_files_are_what_the_generator_writes():
    assert generate.drifted() == [], "schemas/json is out of date: run python -m schemas.generate"
    for name, text in generate.rendered().items():
        schema = json.loads(text)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://gpuledger.invalid/schemas/{name}"
        assert schema["title"]


def test_the_check_names_a_drifted_file(tmp_path):
    assert generate.write(tmp_path) == list(generate.rendered())
    assert generate.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "statement.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "manifest.schema.json").unlink()
    assert generate.drifted(tmp_path) == ["statement.schema.json", "manifest.schema.json"]
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1
    assert generate.write(tmp_path) == ["statement.schema.json", "manifest.schema.json"]
    assert generate.drifted(tmp_path) == []


def test_generated_schemas_say_integer_and_patterns():
    event = json.loads(generate.render("usage-event"))
    seconds = event["$defs"]["UsageData"]["properties"]["seconds"]
    assert (seconds["type"], seconds["minimum"], seconds["maximum"]) == ("integer", 1, 3600)
    assert event["properties"]["time"]["pattern"].startswith("^[0-9]{4}-")
    statement = json.loads(generate.render("statement"))
    assert "from" in statement["$defs"]["Transfer"]["properties"]
    assert "from_" not in json.dumps(statement)


# -- (b) the statement -------------------------------------------------------------


@pytest.mark.parametrize("key", ["settle_sep", "settle_sep_again", "settle_oct"])
def test_statement_model_accepts_the_scenarios_statements(key):
    document = json.loads((SCENARIO / "expected.json").read_text(encoding="utf-8"))[key]
    statement = Statement.model_validate(document)
    assert statement.model_dump(mode="json", exclude_unset=True) == document  # by alias, nothing lost


def test_statement_model_accepts_specs_example():
    assert _spec_example("## Settlement statement (JSON)") == SPEC_STATEMENT
    statement = Statement.model_validate(SPEC_STATEMENT)
    assert statement.transfers[0].from_ == "kddi"
    assert statement.model_dump(mode="json") == SPEC_STATEMENT
    assert json.loads(statement.model_dump_json())["transfers"][0]["from"] == "kddi"


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(period="2026-13"),
        lambda s: s.update(currency="USD"),
        lambda s: s.update(closed="false"),
        lambda s: s.update(extra=1),
        lambda s: s["lines"][0].update(retail_yen=1560.0),
        lambda s: s["lines"][0].update(retail_yen="1560"),
        lambda s: s["lines"][0].update(retail_yen_per_gpu_hour="780.12345"),
        lambda s: s["lines"][0].update(retail_yen_per_gpu_hour=780),
        lambda s: s["lines"][0].update(retail_price_from="2026-01-01T00:00:00+09:00"),
        lambda s: s["lines"][0].pop("agreement_from"),
        lambda s: s["tenant_invoices"][0].update(tax_yen=True),
        lambda s: s["net_yen"].update(KDDI=0),
        lambda s: s["transfers"][0].update({"from_": s["transfers"][0].pop("from")}),
    ],
)
def test_statement_model_refuses_other_shapes(change):
    document = copy.deepcopy(SPEC_STATEMENT)
    change(document)
    assert not _accepts(Statement, document)


def test_statement_allows_a_null_agreement():
    document = copy.deepcopy(SPEC_STATEMENT)
    document["lines"][0].update(provider="kddi", agreement_from=None, wholesale_yen=0)
    assert Statement.model_validate(document).lines[0].agreement_from is None


# -- (c) the usage event -------------------------------------------------------------


def test_event_model_accepts_specs_example():
    assert _spec_example("## Usage event (CloudEvents 1.0, JSON)") == SPEC_EVENT
    assert UsageEvent.model_validate(SPEC_EVENT).data.seconds == 1
    assert UsageEvent.model_validate_json(json.dumps(SPEC_EVENT)).time == "2026-10-03T12:00:00Z"


def test_event_model_accepts_the_first_valid_events_of_the_scenario(batch1_lines, scenario_catalog):
    valid = []
    for line in batch1_lines:
        event = events.decode(line)
        if isinstance(event, dict) and _schema_verdict(event, scenario_catalog):
            valid.append(event)
            if len(valid) == 200:
                break
    assert len(valid) == 200
    for event in valid:
        UsageEvent.model_validate(event)


def test_event_model_and_product_agree_on_the_scenario(batch1_lines, scenario_catalog):
    """Over the first 2000 lines, and every line the product rejects for `schema`."""
    compared = schema_rejected = 0
    for number, line in enumerate(batch1_lines):
        event = events.decode(line)
        if not isinstance(event, dict):
            continue
        product = _schema_verdict(event, scenario_catalog)
        if number >= 2000 and product:
            continue
        assert _accepts(UsageEvent, event) == product, (number, line[:300])
        compared += 1
        schema_rejected += not product
    assert compared >= 2000
    assert schema_rejected >= 5  # the scenario's schema faults are part of the comparison


def _with(path: str, value):
    """SPEC's example with one value replaced (or removed, for `...`)."""
    event = copy.deepcopy(SPEC_EVENT)
    *parents, name = path.split(".")
    target = event
    for parent in parents:
        target = target[parent]
    if value is ...:
        target.pop(name)
    else:
        target[name] = value
    return event


EDGE_CASES = [
    # one value of SPEC's example replaced; the product and the model must agree
    ("specversion", "1.0 "), ("specversion", 1.0), ("specversion", ...),
    ("type", "gpu.usage.v2"), ("id", ""), ("id", 7), ("id", ...), ("source", ""),
    ("source", None), ("extension", {"any": ["thing"]}), ("data.note", "ignored"),
    ("time", "2026-10-03t12:00:00z"), ("time", "2026-10-03T12:00:00.999999999+09:00"),
    ("time", "2026-10-03T12:00:00"), ("time", "2026-10-03 12:00:00Z"),
    ("time", "2026-10-03T12:00:00.Z"), ("time", "2026-10-03T12:00:60Z"),
    ("time", "2026-02-29T00:00:00Z"), ("time", "2028-02-29T00:00:00Z"),
    ("time", "2100-02-29T00:00:00Z"), ("time", "2000-02-29T00:00:00Z"),
    ("time", "0000-02-29T00:00:00Z"), ("time", "2026-04-31T00:00:00Z"),
    ("time", "2026-00-10T00:00:00Z"), ("time", "2026-10-00T00:00:00Z"),
    ("time", "2026-10-03T24:00:00Z"), ("time", "2026-10-03T23:60:00Z"),
    ("time", "2026-10-03T12:00:00+24:00"), ("time", "2026-10-03T12:00:00-23:59"),
    ("time", "2026-10-03T12:00:00+09:60"), ("time", "2026-10-03T12:00:00Z\n"),
    ("time", "+2026-10-03T12:00:00Z"), ("time", 1789000000),
    ("data", []), ("data", None), ("data", ...),
    ("data.provider", ""), ("data.reseller", 3), ("data.sku", ...),
    ("data.tenant", " "), ("data.tenant", "t" * 64), ("data.tenant", "t" * 65),
    ("data.tenant", "bad\u0007tenant"), ("data.tenant", "caf\u00e9"), ("data.tenant", "a\x7f"),
    ("data.tenant", "~"), ("data.tenant", ""),
    ("data.gpu_uuid", "GPU 1"), ("data.gpu_uuid", "G" * 128), ("data.gpu_uuid", "G" * 129),
    ("data.gpu_uuid", "!~"), ("data.gpu_uuid", ...),
    ("data.seconds", 0), ("data.seconds", 3600), ("data.seconds", 3601), ("data.seconds", -1),
    ("data.seconds", 60.0), ("data.seconds", 1.5), ("data.seconds", "60"), ("data.seconds", True),
    ("data.seconds", None), ("data.seconds", 2**70),
]


@pytest.mark.parametrize(("path", "value"), EDGE_CASES)
def test_event_model_and_product_agree_on_edge_cases(path, value, scenario_catalog):
    event = _with(path, value)
    assert _accepts(UsageEvent, event) == _schema_verdict(event, scenario_catalog)


@pytest.mark.parametrize("raw", [b"6e1", b"60.0", b"1.0e1", b"-0", b"18446744073709551616", b"60"])
def test_event_seconds_as_json_text(raw, scenario_catalog):
    """JSON numbers as written: only an integer literal is an integer."""
    line = json.dumps(_with("data.seconds", 0)).replace('"seconds": 0', '"seconds": ' + raw.decode())
    event = events.decode(line.encode())
    product = _schema_verdict(event, scenario_catalog)
    assert product == (raw == b"60")
    assert _accepts(UsageEvent, event) == product
    try:
        UsageEvent.model_validate_json(line)
        from_json = True
    except ValidationError:
        from_json = False
    assert from_json == product


# -- (d) the catalog; the manifest ---------------------------------------------------


def test_catalog_model_accepts_the_scenarios_catalog():
    document = tomllib.loads((SCENARIO / "catalog.toml").read_text(encoding="utf-8"))
    parsed = CatalogFile.model_validate(document)
    assert {member.id for member in parsed.members} == {"kddi", "sakura", "highreso"}


def test_manifest_model():
    manifest = Manifest.model_validate(MANIFEST)
    assert manifest.model_dump(mode="json") == MANIFEST
    for change in (
        {"format": "gpuledger-audit-bundle/5"},
        {"signature_algorithm": "ed25519"},
        {"key_id": "A" * 64},
        {"created_at": "2026-11-28T08:00:00.5Z"},
        {"chain_head": {"seq": -1, "hash": "f" * 64}},
        {"files": {"statement.json": {"sha256": "0" * 64, "bytes": "12"}}},
        {"files": {"statement.json": {"sha256": "0" * 63, "bytes": 1}}},
        {"unexpected": True},
    ):
        assert not _accepts(Manifest, {**MANIFEST, **change}), change


def test_the_copy_of_spec_is_current():
    if not SHARED_SPEC.is_file():
        pytest.skip(f"{SHARED_SPEC} is not beside this clone to compare with")
    assert SPEC.read_bytes() == SHARED_SPEC.read_bytes(), "copy ../shared/SPEC.md to tests/scenarios/"
