"""Bundles with returns (format /4), exported by the services on the in-memory store
(tests/auditor/corrected_bundles.py), verified by the independent auditor; and every kind
of tampering with a void or a return, re-signed with the ledger's key, caught by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from auditor.verify import verify_bundle
from tests.auditor.auditor_bundles import (
    chain,
    failure_message,
    hourly_rows,
    read_json,
    read_ndjson,
    sign,
    write_json,
    write_ndjson,
)
from tests.auditor.corrected_bundles import export_corrected


@pytest.fixture(scope="module")
async def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrected")
    bundles, public_key = await export_corrected(folder)
    private = serialization.load_pem_private_key((folder / "keys" / "signing.key").read_bytes(), None)
    return bundles, public_key, private


@pytest.fixture
def copy(exported, tmp_path):
    bundles, public_key, private = exported

    def make(period: str = "2026-10") -> Path:
        target = tmp_path / period
        shutil.copytree(bundles[period], target)
        return target

    return make, public_key, private


failure = failure_message


def edit(folder: Path, private, name: str, change) -> None:
    document = read_json(folder, name)
    change(document)
    write_json(folder, name, document)
    sign(folder, private)


def test_bundles_with_returns_verify_and_carry_what_recomputes_them(exported):
    bundles, public_key, _ = exported
    for folder in bundles.values():
        verify_bundle(folder, public_key)
    october = read_json(bundles["2026-10"], "corrections.json")
    assert [(v["id"], v["gpu_seconds"], v["dispute"]) for v in october["voids"]] == [
        ("void-1", 1800, None), ("void-2", 600, "dispute-1")]
    assert [d["id"] for d in october["disputes"]] == ["dispute-1", "dispute-2"]  # accepted, rejected in October
    [context] = read_json(bundles["2026-11"], "corrections.json")["returns"]
    assert context["draws"] == [{"grant": "acme-sep", "amount_yen": 300}, {"grant": "acme-q4", "amount_yen": 300}]
    assert context["returned_before"] == {"gpu_seconds": 2400, "tenant_refund_yen": 180, "restored": [
        {"grant": "acme-q4", "amount_yen": 300}, {"grant": "acme-sep", "amount_yen": 40}]}
    grants = {g["id"]: g["balance_yen"] for g in read_json(bundles["2026-11"], "grants.json")["grants"]}
    assert grants == {"acme-q4": 300, "acme-sep": 40}  # October's restorations counted


def test_a_voids_seconds_that_its_bits_do_not_add_up_to_are_caught(copy):
    make, public_key, private = copy
    bundle = make()
    edit(bundle, private, "corrections.json", lambda d: d["voids"][0].update(gpu_seconds=1799))
    assert failure(bundle, public_key) == (
        "corrections.json: void-1: gpu_seconds is 1799, but the bits of its parts add up to 1800 seconds")


def test_a_parts_seconds_that_are_not_its_bits_are_caught(copy):
    make, public_key, private = copy
    bundle = make()
    edit(bundle, private, "corrections.json", lambda d: d["voids"][0]["taken"][0].update(seconds=1700))
    assert failure(bundle, public_key) == (
        "corrections.json: void-1 part 1: bits has 1800 seconds set, seconds says 1700")


def _drop_seconds(document: dict, count: int) -> None:
    void = document["voids"][0]
    part = void["taken"][0]
    data = bytearray(bytes.fromhex(part["bits"]))
    for offset in range(count):  # the first seconds of the hour: 00:00:00..
        data[offset // 8] &= ~(1 << (offset % 8)) & 0xFF
    part["bits"] = data.hex()
    part["seconds"] -= count
    void["gpu_seconds"] -= count


def test_fewer_voided_seconds_than_the_return_says_are_caught(copy):
    make, public_key, private = copy
    bundle = make()
    edit(bundle, private, "corrections.json", lambda d: _drop_seconds(d, 8))
    assert failure(bundle, public_key) == (
        "statement.json: return 1 (kddi acme sakura H200 2026-09, booked 2026-09): gpu_seconds is 2400, "
        "the voids of corrections.json return 2392")


def test_voided_bits_outside_the_voids_interval_are_caught(copy):
    make, public_key, private = copy
    bundle = make()

    def widen(document):
        part = document["voids"][1]["taken"][0]  # void-2: 00:30-00:40; add 00:50:00
        data = bytearray(bytes.fromhex(part["bits"]))
        data[3000 // 8] |= 1 << (3000 % 8)
        part.update(bits=data.hex(), seconds=601)
        document["voids"][1]["gpu_seconds"] = 601

    edit(bundle, private, "corrections.json", widen)
    assert failure(bundle, public_key) == (
        "corrections.json: void-2 part 1: second 2026-09-29T00:50:00Z is outside the void's [from, to)")


@pytest.mark.parametrize(("name", "value", "recomputed"), [
    ("retail_yen", 521, 520), ("wholesale_yen", 346, 347), ("tenant_refund_yen", 200, 180),
    ("credit_restored_yen", 320, 340),
])
def test_a_changed_return_amount_is_caught(copy, name, value, recomputed):
    make, public_key, private = copy
    bundle = make()
    edit(bundle, private, "statement.json", lambda d: d["returns"][0].update({name: value}))
    assert failure(bundle, public_key) == (
        f"statement.json: return 1 (kddi acme sakura H200 2026-09, booked 2026-09): {name} is {value}, "
        f"recomputed {recomputed} (S 3600, R0 0, R 2400, from corrections.json)")


def test_an_r0_that_leaves_fewer_seconds_than_the_return_takes_back_is_caught(copy):
    make, public_key, private = copy
    bundle = make("2026-11")
    edit(bundle, private, "corrections.json", lambda d: d["returns"][0]["returned_before"].update(gpu_seconds=3001))
    assert failure(bundle, public_key) == (
        "corrections.json: return 1: 3001 + 600 seconds returned of a line of 3600")


def test_earlier_refunds_change_what_the_tenant_gets_back_and_are_caught(copy):
    make, public_key, private = copy
    bundle = make("2026-11")
    edit(bundle, private, "corrections.json", lambda d: d["returns"][0]["returned_before"].update(tenant_refund_yen=100))
    assert failure(bundle, public_key) == (
        "statement.json: return 1 (kddi acme sakura H200 2026-09, booked 2026-09): tenant_refund_yen is 0, "
        "recomputed 80 (S 3600, R0 2400, R 600, from corrections.json)")


def test_draws_in_another_order_restore_another_grant_first_and_are_caught(copy):
    make, public_key, private = copy
    bundle = make()
    edit(bundle, private, "corrections.json", lambda d: d["returns"][0]["draws"].reverse())
    assert failure(bundle, public_key) == (
        "statement.json: grant draw 1 (acme-q4): restored_yen is 300, recomputed 40 from the returns "
        "(corrections.json)")


def test_a_changed_restored_yen_is_caught(copy):
    make, public_key, private = copy
    bundle = make("2026-11")
    edit(bundle, private, "statement.json", lambda d: d["grant_draws"][1].update(restored_yen=131))
    assert failure(bundle, public_key) == (
        "statement.json: grant draw 2 (acme-sep): restored_yen is 131, recomputed 130 from the returns "
        "(corrections.json)")


def test_an_invoice_not_net_of_its_returns_is_caught(copy):
    make, public_key, private = copy
    bundle = make("2026-11")

    def gross(document):
        document["tenant_invoices"][0].update(retail_yen=780, credit_yen=300, subtotal_yen=480)

    edit(bundle, private, "statement.json", gross)
    assert failure(bundle, public_key) == (
        "statement.json: tenant invoice 1 (kddi acme): retail_yen is 780, recomputed 650")


def test_a_journal_entry_without_its_returns_reference_is_caught(copy):
    make, public_key, private = copy
    bundle = make()
    entries = read_ndjson(bundle, "journal.ndjson")
    assert entries[0]["reference"] == {"tenant_invoice": {"reseller": "kddi", "tenant": "acme"}, "lines": [],
                                       "returns": [0]}
    del entries[0]["reference"]["returns"]
    chain(entries, entries[0]["prev_hash"])
    write_ndjson(bundle, "journal.ndjson", entries)
    sign(bundle, private)
    assert failure(bundle, public_key) == (
        'journal.ndjson line 1: reference is {"lines":[],"tenant_invoice":{"reseller":"kddi","tenant":"acme"}}, '
        'the statement implies {"lines":[],"returns":[0],"tenant_invoice":{"reseller":"kddi","tenant":"acme"}}')


def test_a_void_that_claims_a_dispute_it_was_not_made_by_is_caught(copy):
    make, public_key, private = copy
    bundle = make()
    edit(bundle, private, "corrections.json", lambda d: d["voids"][0].update(dispute="dispute-2"))
    assert failure(bundle, public_key) == (
        "corrections.json: void-1: names dispute-2, but no acceptance of that dispute in the bundle made it")


def test_an_acceptance_that_voided_other_seconds_than_its_void_is_caught(copy):
    make, public_key, private = copy
    bundle = make()
    edit(bundle, private, "corrections.json", lambda d: d["disputes"][0]["moves"][0].update(voided_gpu_seconds=601))
    assert failure(bundle, public_key) == (
        "corrections.json: dispute-1 move 1: voided_gpu_seconds is 601, but its void void-2 voided 600")


def test_a_bundle_with_its_evidence_as_hourly_bitmaps_verifies_as_format_3(copy):
    make, public_key, private = copy
    bundle = make()
    write_ndjson(bundle, "evidence.ndjson", hourly_rows(bundle))
    sign(bundle, private, bundle_format="gpuledger-audit-bundle/3")
    verify_bundle(bundle, public_key)
    sign(bundle, private, bundle_format="gpuledger-audit-bundle/4")
    assert failure(bundle, public_key) == "evidence.ndjson line 1: the key 'attributions' is missing"


def test_a_statement_with_returns_in_a_bundle_without_corrections_fails(copy):
    make, public_key, private = copy
    bundle = make()
    write_ndjson(bundle, "evidence.ndjson", hourly_rows(bundle))
    (bundle / "corrections.json").unlink()
    sign(bundle, private, bundle_format="gpuledger-audit-bundle/2")
    assert failure(bundle, public_key) == (
        "statement.json: the statement has 1 returns, but the bundle carries no corrections.json (format /3) "
        "to recompute them from")
