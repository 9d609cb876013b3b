"""Format /4's evidence (runs of billed seconds per GPU and UTC day) in the independent
verifier, on bundles written by tests/auditor/auditor_bundles.py.

The same usage as the hourly bundles verifies, with the same statement; every byte of
the bundle changed is caught; and each rule of the runs (sorted, disjoint, maximal, within
their service period, elsewhere apart) is caught by name when the manifest is re-signed
after the change, as an operator holding the signing key could.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor.verify import VerificationError, verify_bundle
from tests.auditor.auditor_bundles import (
    CATALOG,
    FORMAT_4,
    GRANTS,
    USAGES,
    day_rows,
    failure_message,
    public_pem,
    read_json,
    read_ndjson,
    sign,
    statement_of,
    write_bundle,
    write_ndjson,
)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def template(tmp_path_factory, key) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "bundle"
    write_bundle(folder, key, grants=GRANTS, bundle_format=FORMAT_4)
    return folder


@pytest.fixture
def bundle(tmp_path, template) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(template, folder)
    return folder


def failure(folder: Path, key: Ed25519PrivateKey) -> str:
    return failure_message(folder, public_pem(key))


def edit(folder: Path, key: Ed25519PrivateKey, line: int, **changes) -> None:
    rows = read_ndjson(folder, "evidence.ndjson")
    rows[line - 1].update(changes)
    write_ndjson(folder, "evidence.ndjson", rows)
    sign(folder, key)


def test_given_the_hourly_usage_as_runs_then_it_verifies_with_the_same_statement(bundle, key):
    verify_bundle(bundle, public_pem(key))
    assert read_json(bundle, "manifest.json")["format"] == FORMAT_4
    assert read_json(bundle, "statement.json") == statement_of("2026-10", CATALOG, USAGES, GRANTS)
    rows = read_ndjson(bundle, "evidence.ndjson")
    # One line per GPU and day: GPU-A's two hours of 3 October are one line, its first run a full hour.
    assert [(row["gpu_uuid"], row["day"]) for row in rows][:3] == [
        ("GPU-A", "2026-10-03"), ("GPU-A", "2026-10-20"), ("GPU-B", "2026-10-05")]
    assert rows[0]["billed"] == [[43200, 43200 + 3600 + 600, 0]]
    assert rows[2]["billed"] == [[0, 1800, 0], [1800, 3600, 1]]  # acme then beta, one GPU-hour


# Every byte of the files that carry the new layout and the signature, in make test-fast;
# every byte of the others (seconds: ~3 ms a verification) with the slow tests.
EVERY_BYTE = ["evidence.ndjson", "manifest.json", "manifest.sig", "corrections.json",
              *(pytest.param(name, marks=pytest.mark.slow) for name in (
                  "catalog.json", "dead_letters.json", "grants.json", "journal.ndjson", "line-digests.tsv",
                  "statement.csv", "statement.json"))]


@pytest.mark.parametrize("name", EVERY_BYTE)
def test_given_any_byte_of_a_file_changed_then_it_fails(bundle, key, name):
    path = bundle / name
    original = path.read_bytes()
    for offset in range(len(original)):
        changed = bytearray(original)
        changed[offset] ^= 0x01 if changed[offset] != 0x0A else 0x20
        path.write_bytes(bytes(changed))
        with pytest.raises(VerificationError):
            verify_bundle(bundle, public_pem(key))
    path.write_bytes(original)
    verify_bundle(bundle, public_pem(key))


def test_given_a_changed_byte_of_the_evidence_then_its_line_is_named(bundle, key):
    path = bundle / "evidence.ndjson"
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"[0,", b"[1,", 1)
    path.write_bytes(b"\n".join(lines))
    assert failure(bundle, key).startswith("evidence.ndjson line 5: differs from the signed bundle")


@pytest.mark.parametrize(("line", "changes", "message"), [
    (3, {"billed": [[0, 1800, 0], [1799, 3600, 1]], "seconds": 3601},
     "billed run 2 starts at 1799, before run 1 ends (1800): a GPU-second is billed twice or out of order"),
    (3, {"billed": [[1800, 3600, 1], [0, 1800, 0]]},
     "billed run 2 starts at 0, before run 1 ends (3600): a GPU-second is billed twice or out of order"),
    (1, {"billed": [[43200, 46800, 0], [46800, 47400, 0]]},
     "billed run 2 continues run 1 of the same attribution: runs are maximal"),
    (1, {"seconds": 4199}, "seconds is 4199, the billed runs hold 4200"),
    (1, {"billed": [[43200, 86401, 0]]},
     "billed run 1 is not [start, end, attribution] with 0 <= start < end <= 86400 and an attribution "
     "index below 1"),
    (1, {"billed": [[43200, 47800, 1]]}, "billed run 1 is not [start, end, attribution] with 0 <= start < end "
     "<= 86400 and an attribution index below 1"),
    (1, {"billed": []}, "billed is not a non-empty list"),
    (3, {"billed": [[0, 3600, 0]], "seconds": 3600}, "attributions[1] has no billed run"),
    (3, {"attributions": [["sakura", "kddi", "beta", "H200", "2026-10"], ["sakura", "kddi", "acme", "H200", "2026-10"]]},
     "attributions[1] is not after attributions[0] (sorted, each once)"),
    (1, {"attributions": [["sakura", "kddi", "acme", "H200"]]},
     "attributions[0] is not 5 strings [provider, reseller, tenant, sku, service_period]"),
    (1, {"attributions": [["sakura", "nobody", "acme", "H200", "2026-10"]]},
     "attributions[0]: reseller 'nobody' is not a member of the catalog"),
    (1, {"attributions": [["sakura", "kddi", "acme", "H200", "2026-11"]]},
     "attributions[0]: service_period 2026-11 is after the bundle's period 2026-10"),
    (6, {"attributions": [["sakura", "kddi", "acme", "H200", "2026-10"]]},
     "billed run 1: second 2026-09-30T14:00:00Z is outside its service period 2026-10 (in Asia/Tokyo)"),
    (4, {"elsewhere": [[3600 + 999, 3600 + 1100]]},
     "second 2026-10-06T01:16:39Z is in both billed and elsewhere (billed in this bundle and outside it)"),
    (4, {"elsewhere": [[7200, 7300]]}, "elsewhere run 1 is outside the hours the line bills"),
    (4, {"elsewhere": [[4600, 4650], [4650, 4700]]},
     "elsewhere run 2 is not [start, end] with 0 <= start < end <= 86400, after the previous run's end and "
     "apart from it"),
    (1, {"day": "2026-10-32"}, "day '2026-10-32' is not a date YYYY-MM-DD"),
    (2, {"day": "2026-10-02"}, "sorts before line 1 (lines are sorted by gpu_uuid, day, each pair once)"),
    (2, {"day": "2026-10-03"}, "repeats line 1 (lines are sorted by gpu_uuid, day, each pair once)"),
    (1, {"bits": "00"}, "unexpected key 'bits'"),
])
def test_given_runs_that_break_a_rule_then_the_line_and_rule_are_named(bundle, key, line, changes, message):
    edit(bundle, key, line, **changes)
    assert failure(bundle, key) == f"evidence.ndjson line {line}: {message}"


def test_given_a_run_moved_across_a_price_change_then_the_statement_disagrees(bundle, key):
    # GPU-A's 3 October: 12:00-13:10Z, the price changing at 12:30Z. Moved 10 minutes earlier,
    # 600 more seconds are at the old price: same seconds, other lines.
    edit(bundle, key, 1, billed=[[42600, 46800, 0]])
    assert failure(bundle, key).startswith("statement.json: line ")


def test_given_a_second_without_a_price_then_rating_names_the_line(bundle, key):
    edit(bundle, key, 6, billed=[[50400 + 3600, 50400 + 4200, 0]],
         attributions=[["sakura", "kddi", "acme", "H100", "2026-10"]])
    assert failure(bundle, key) == (
        "evidence.ndjson line 6: second 2026-09-30T15:00:00Z has no retail price of (kddi, H100) in effect")


def test_given_the_test_writer_then_its_runs_are_the_usages_seconds():
    rows = day_rows(USAGES)
    assert sum(row["seconds"] for row in rows) == sum(len(set(u.seconds)) for u in USAGES)
