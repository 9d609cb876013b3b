"""The auditor's independent verifier (auditor/), on bundles written by tests/auditor/auditor_bundles.py.

A valid bundle verifies; every kind of tampering is caught at the first discrepancy,
with a message naming the file and, where there is one, the line. Deeper checks are
reached by re-signing the manifest after the change (and, for the journal, re-chaining
the hashes), as an operator who holds the signing key could.
"""

from __future__ import annotations

import ast
import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor.verify import VerificationError, verify_bundle
from tests.auditor.auditor_bundles import (
    FILES,
    FORMAT_1,
    GRANTS,
    Usage,
    chain,
    failure_message,
    public_pem,
    read_json,
    read_ndjson,
    sign,
    write_bundle,
    write_json,
    write_ndjson,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def template(tmp_path_factory, key) -> Path:
    folder = tmp_path_factory.mktemp("template") / "bundle"
    write_bundle(folder, key)
    return folder


@pytest.fixture
def bundle(tmp_path, template) -> Path:
    """A fresh copy of the valid bundle, for one test to tamper with."""
    folder = tmp_path / "bundle"
    shutil.copytree(template, folder)
    return folder


@pytest.fixture(scope="module")
def template_with_grants(tmp_path_factory, key) -> Path:
    folder = tmp_path_factory.mktemp("template-with-grants") / "bundle"
    write_bundle(folder, key, grants=GRANTS)
    return folder


@pytest.fixture
def granted(tmp_path, template_with_grants) -> Path:
    """A fresh copy of the valid format /2 bundle with grants, for one test to tamper with."""
    folder = tmp_path / "granted"
    shutil.copytree(template_with_grants, folder)
    return folder


def failure(folder: Path, key: Ed25519PrivateKey) -> str:
    return failure_message(folder, public_pem(key))


def set_bits(hex_bitmap: str, offsets, on: bool = True) -> str:
    data = bytearray(bytes.fromhex(hex_bitmap))
    for offset in offsets:
        if on:
            data[offset // 8] |= 1 << (offset % 8)
        else:
            data[offset // 8] &= ~(1 << (offset % 8)) & 0xFF
    return data.hex()


def edit_evidence(folder: Path, key: Ed25519PrivateKey, line: int, **changes) -> None:
    rows = read_ndjson(folder, "evidence.ndjson")
    rows[line - 1].update(changes)
    write_ndjson(folder, "evidence.ndjson", rows)
    sign(folder, key)


def edit_statement(folder: Path, key: Ed25519PrivateKey, change) -> None:
    statement = read_json(folder, "statement.json")
    change(statement)
    write_json(folder, "statement.json", statement)
    sign(folder, key)


def edit_journal(folder: Path, key: Ed25519PrivateKey, change, rehash: bool) -> None:
    entries = read_ndjson(folder, "journal.ndjson")
    first_prev_hash = entries[0]["prev_hash"]
    entries = change(entries) or entries
    if rehash:
        chain(entries, first_prev_hash)
    write_ndjson(folder, "journal.ndjson", entries)
    sign(folder, key)


# -- valid bundles -------------------------------------------------------------------------


def test_given_a_valid_bundle_then_it_verifies(bundle, key):
    # Its lines include an hour split by a price change and one split by an agreement
    # change, a fixed and a share agreement, a share of 0 (a member invoice of 0 yen), a
    # member reselling its own GPU, a prior-period line and seconds billed elsewhere.
    assert verify_bundle(bundle, public_pem(key)) is None


def test_given_the_scenario_then_the_oracle_agrees_with_arithmetic_by_hand(bundle):
    # The writer is the tests' oracle: its numbers for the cases that matter, by hand.
    lines = read_json(bundle, "statement.json")["lines"]
    by_hand = [
        # (tenant, retail_price_from, agreement_from, gpu_seconds, retail_yen, wholesale_yen)
        ("delta", "2025-12-31T15:00:00Z", "2025-12-31T15:00:00Z", 60, 15, 0),  # share of 0
        ("own", "2025-12-31T15:00:00Z", None, 3600, 900, 0),  # provider == reseller
        ("acme", "2025-12-31T15:00:00Z", "2025-12-31T15:00:00Z", 600, 130, 86),  # prior period
        # 12:00-12:30 at 780; then 12:30-13:00, 13:00-13:10, GPU-B and 00:00-00:15 at 800.5
        ("acme", "2025-12-31T15:00:00Z", "2025-12-31T15:00:00Z", 1800, 390, 260),
        ("acme", "2026-10-03T12:30:00Z", "2025-12-31T15:00:00Z", 5100, 1134, 736),
        ("acme", "2026-10-03T12:30:00Z", "2026-10-20T00:15:00Z", 900, 200, 132),  # 530.5 fixed
        ("beta", "2026-10-03T12:30:00Z", "2025-12-31T15:00:00Z", 1800, 400, 260),
        ("gamma", "2026-10-03T12:30:00Z", "2025-12-31T15:00:00Z", 7, 1, 1),
        ("t-1", "2025-12-31T15:00:00Z", "2025-12-31T15:00:00Z", 1000, 138, 97),  # 7000 bps of 500.25
    ]
    assert [
        (x["tenant"], x["retail_price_from"], x["agreement_from"], x["gpu_seconds"], x["retail_yen"], x["wholesale_yen"])
        for x in lines
    ] == by_hand


def test_given_the_verifier_then_it_imports_nothing_of_the_code_it_checks():
    allowed = set(sys.stdlib_module_names) | {"auditor", "cryptography"}
    for path in (ROOT / "auditor").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_given_a_period_without_usage_then_its_empty_bundle_verifies(tmp_path, key):
    folder = tmp_path / "empty"
    statement = write_bundle(folder, key, period="2026-12", usages=[])
    assert statement["lines"] == [] and statement["transfers"] == []
    assert (folder / "journal.ndjson").read_bytes() == b""
    assert read_json(folder, "manifest.json")["chain_head"] is None
    verify_bundle(folder, public_pem(key))


@pytest.mark.heavy  # runs the verifier's command
def test_given_the_command_line_then_it_prints_verified_or_the_reason(bundle, key, tmp_path):
    pem = tmp_path / "ledger.pub"
    pem.write_bytes(public_pem(key))
    command = [sys.executable, "-m", "auditor.verify", str(bundle), "--public-key", str(pem)]
    ok = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, f"verified: {bundle} (period 2026-10)\n", "")

    (bundle / "notes.txt").write_text("hello")
    bad = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == "verification failed: notes.txt: in the bundle but not listed in manifest.json\n"


# -- 1. the signature ----------------------------------------------------------------------


def test_given_another_public_key_then_the_signature_fails(bundle):
    message = failure(bundle, Ed25519PrivateKey.generate())
    assert message.startswith("manifest.sig: the signature does not verify with the given public key")


def test_given_a_signature_of_other_bytes_then_it_fails(bundle, key):
    other = base64.b64encode(key.sign(b"something else")) + b"\n"
    (bundle / "manifest.sig").write_bytes(other)
    assert failure(bundle, key).startswith("manifest.sig: the signature does not verify")


def test_given_a_key_id_of_another_key_then_the_manifest_fails(bundle, key):
    sign(bundle, key, key_id="ab" * 32)
    assert failure(bundle, key).startswith(f"manifest.json: key_id is {'ab' * 32}, but the given public key's is")


def test_given_a_public_key_that_is_not_pem_then_it_fails(bundle):
    with pytest.raises(VerificationError, match="^public key: "):
        verify_bundle(bundle, b"not a key")


# -- 2. the files --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["manifest.json", "manifest.sig", *FILES])
def test_given_one_byte_changed_in_a_file_then_that_file_is_named(bundle, key, name):
    path = bundle / name
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    message = failure(bundle, key)
    if name == "manifest.json":
        assert message.startswith("manifest.sig: the signature does not verify") and "manifest.json" in message
    elif name == "manifest.sig":
        assert message.startswith("manifest.sig: ")
    elif name == "line-digests.tsv":
        assert message.startswith(f"{name}: SHA-256 is "), message
        assert "manifest.json says" in message
    else:
        # The signed line digests single out the line the byte is on.
        changed_line = bytes(data[: len(data) // 3]).count(b"\n") + 1
        assert message.startswith(f"{name} line {changed_line}: differs from the signed bundle"), message


def test_given_a_line_added_to_a_file_then_that_line_is_named(bundle, key):
    path = bundle / "statement.csv"
    size = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(b"x")
    lines = path.read_bytes().count(b"\n")
    assert failure(bundle, key) == f"statement.csv line {lines + 1}: not in the signed bundle (added)"
    assert size > 0


def test_given_an_unlisted_file_then_it_fails(bundle, key):
    (bundle / "notes.txt").write_text("not part of the bundle\n")
    assert failure(bundle, key) == "notes.txt: in the bundle but not listed in manifest.json"


def test_given_a_listed_file_missing_then_it_fails(bundle, key):
    (bundle / "journal.ndjson").unlink()
    assert failure(bundle, key) == "journal.ndjson: listed in manifest.json but missing from the bundle"


def test_given_a_file_neither_present_nor_listed_then_the_manifest_fails(bundle, key):
    (bundle / "dead_letters.json").unlink()
    sign(bundle, key)
    assert failure(bundle, key) == "manifest.json: files does not list dead_letters.json"


def test_given_an_evidence_problem_and_an_unlisted_file_then_the_file_check_comes_first(bundle, key):
    edit_evidence(bundle, key, 2, seconds=599)
    (bundle / "extra").mkdir()
    assert failure(bundle, key) == "extra: in the bundle but not listed in manifest.json"


# -- 3. the evidence -----------------------------------------------------------------------


def test_given_bits_changed_but_not_seconds_then_the_line_is_named(bundle, key):
    row = read_ndjson(bundle, "evidence.ndjson")[1]
    edit_evidence(bundle, key, 2, bits=set_bits(row["bits"], [600]))
    assert failure(bundle, key) == "evidence.ndjson line 2: bits has 601 seconds set, the line says 600"


def test_given_an_overlap_between_lines_of_one_gpu_hour_then_the_second_is_named(bundle, key):
    row = read_ndjson(bundle, "evidence.ndjson")[4]  # GPU-B, tenant beta: seconds 1800..3599
    edit_evidence(bundle, key, 5, bits=set_bits(row["bits"], [1799]), seconds=1801)
    assert failure(bundle, key) == (
        "evidence.ndjson line 5: second 2026-10-05T00:29:59Z is also billed on line 4 "
        "(same GPU and hour): a GPU-second is billed twice"
    )


def test_given_an_overlap_with_elsewhere_then_the_second_is_named(bundle, key):
    row = read_ndjson(bundle, "evidence.ndjson")[5]  # GPU-C: seconds 0..999, elsewhere 1000..1099
    edit_evidence(bundle, key, 6, elsewhere=set_bits(row["elsewhere"], [5]))
    assert failure(bundle, key) == (
        "evidence.ndjson line 6: second 2026-10-06T01:00:05Z is set in both bits and elsewhere "
        "(billed in this bundle and outside it)"
    )


def test_given_elsewhere_differing_within_one_gpu_hour_then_it_fails(bundle, key):
    row = read_ndjson(bundle, "evidence.ndjson")[3]  # GPU-B, tenant acme: seconds 0..1799
    edit_evidence(bundle, key, 4, elsewhere=set_bits(row["elsewhere"], [3599]))
    assert failure(bundle, key) == "evidence.ndjson line 5: elsewhere differs from line 4's, of the same GPU and hour"


def test_given_a_second_outside_its_service_period_then_it_fails(bundle, key):
    # 2026-09-30T14:00Z is 23:00 on 30 September in Tokyo: not in October.
    edit_evidence(bundle, key, 8, service_period="2026-10")
    assert failure(bundle, key) == (
        "evidence.ndjson line 8: second 2026-09-30T14:00:00Z is outside its service period 2026-10 "
        "(in Asia/Tokyo)"
    )


def test_given_an_hour_ending_after_its_service_period_then_its_last_second_is_named(bundle, key):
    # 2026-09-30T14:00Z + 3599 s is still September in Tokyo; a line claiming August is not.
    edit_evidence(bundle, key, 8, service_period="2026-08")
    assert failure(bundle, key).startswith(
        "evidence.ndjson line 8: second 2026-09-30T14:09:59Z is outside its service period 2026-08"
    )


def test_given_a_service_period_after_the_bundles_then_it_fails(bundle, key):
    edit_evidence(bundle, key, 9, hour_start="2026-11-02T03:00:00Z", service_period="2026-11")
    assert failure(bundle, key) == (
        "evidence.ndjson line 9: service_period 2026-11 is after the bundle's period 2026-10"
    )


def test_given_evidence_out_of_order_then_the_line_is_named(bundle, key):
    rows = read_ndjson(bundle, "evidence.ndjson")
    rows[0], rows[1] = rows[1], rows[0]
    write_ndjson(bundle, "evidence.ndjson", rows)
    sign(bundle, key)
    assert failure(bundle, key).startswith("evidence.ndjson line 2: out of order")


def test_given_a_malformed_evidence_line_then_the_line_is_named(bundle, key):
    path = bundle / "evidence.ndjson"
    lines = path.read_bytes().split(b"\n")
    lines[6] = lines[6].replace(b'"seconds":3600', b'"seconds":3600.0')
    path.write_bytes(b"\n".join(lines))
    sign(bundle, key)
    assert failure(bundle, key).startswith("evidence.ndjson line 7: the number 3600.0 has a fraction")


def test_given_a_second_without_a_price_then_rating_names_the_line(bundle, key):
    catalog = read_json(bundle, "catalog.json")
    catalog["retail_prices"][0]["effective_from"] = "2026-09-30T15:00:00Z"  # kddi H200 from 1 October
    write_json(bundle, "catalog.json", catalog)
    sign(bundle, key)
    assert failure(bundle, key) == (
        "evidence.ndjson line 8: second 2026-09-30T14:00:00Z has no retail price of (kddi, H200) in effect"
    )


# -- 4. the statement ----------------------------------------------------------------------


def test_given_bits_and_seconds_changed_together_then_the_statement_line_disagrees(bundle, key):
    row = read_ndjson(bundle, "evidence.ndjson")[1]  # GPU-A 13:00Z, 600 s at 800.5
    edit_evidence(bundle, key, 2, bits=set_bits(row["bits"], [600]), seconds=601)
    assert failure(bundle, key) == (
        "statement.json: line 5 (kddi acme sakura H200 2026-10): gpu_seconds is 5100, recomputed 5101"
    )


def test_given_a_retail_yen_off_by_one_then_the_line_is_named(bundle, key):
    def change(statement):
        statement["lines"][4]["retail_yen"] += 1

    edit_statement(bundle, key, change)
    assert failure(bundle, key) == (
        "statement.json: line 5 (kddi acme sakura H200 2026-10): retail_yen is 1135, recomputed 1134"
    )


def test_given_a_wrong_share_wholesale_then_the_line_is_named(bundle, key):
    def change(statement):
        statement["lines"][8]["wholesale_yen"] = 98  # 1000 s * 500.25 * 7000 / 36e6 = 97.27...

    edit_statement(bundle, key, change)
    assert failure(bundle, key) == (
        "statement.json: line 9 (sakura t-1 highreso H100 2026-10): wholesale_yen is 98, recomputed 97"
    )


def test_given_a_line_priced_at_the_wrong_version_then_it_fails(bundle, key):
    def change(statement):
        # GPU-F's seconds are after the price change of 2026-10-03T12:30Z.
        statement["lines"][7].update(retail_price_from="2025-12-31T15:00:00Z", retail_yen_per_gpu_hour="780")

    edit_statement(bundle, key, change)
    assert failure(bundle, key) == (
        "statement.json: line 8 (kddi gamma sakura H200 2026-10): no GPU-second of the evidence rates "
        "into it (retail price from 2025-12-31T15:00:00Z, agreement from 2025-12-31T15:00:00Z)"
    )


def test_given_lines_out_of_order_then_it_fails(bundle, key):
    def change(statement):
        statement["lines"][3], statement["lines"][4] = statement["lines"][4], statement["lines"][3]

    edit_statement(bundle, key, change)
    assert failure(bundle, key).startswith("statement.json: line 5 (kddi acme sakura H200 2026-10): out of order")


def test_given_a_line_without_evidence_then_it_fails(bundle, key):
    rows = read_ndjson(bundle, "evidence.ndjson")
    write_ndjson(bundle, "evidence.ndjson", [row for row in rows if row["gpu_uuid"] != "GPU-F"])
    sign(bundle, key)
    assert failure(bundle, key) == (
        "statement.json: line 8 (kddi gamma sakura H200 2026-10): no GPU-second of the evidence rates "
        "into it (retail price from 2026-10-03T12:30:00Z, agreement from 2025-12-31T15:00:00Z)"
    )


def test_given_a_wrong_tax_then_the_invoice_is_named(bundle, key):
    def change(statement):
        statement["tenant_invoices"][2]["tax_yen"] += 1
        statement["tenant_invoices"][2]["total_yen"] += 1

    edit_statement(bundle, key, change)
    assert failure(bundle, key) == "statement.json: tenant invoice 3 (kddi acme): tax_yen is 186, recomputed 185"


def test_given_a_member_invoice_of_zero_left_out_then_it_fails(bundle, key):
    def change(statement):
        del statement["member_invoices"][1]  # kddi -> highreso, 0 yen

    edit_statement(bundle, key, change)
    assert failure(bundle, key) == (
        "statement.json: member_invoices lacks the invoice (kddi highreso) of total_yen 0 recomputed "
        "from the lines"
    )


def test_given_a_wrong_net_then_it_fails(bundle, key):
    def change(statement):
        statement["net_yen"]["zeta"] = 1

    edit_statement(bundle, key, change)
    assert failure(bundle, key) == "statement.json: net_yen['zeta'] is 1, recomputed 0"


def test_given_a_wrong_transfer_then_it_fails(bundle, key):
    def change(statement):
        statement["transfers"][0]["amount_yen"] = 1500
        statement["transfers"].insert(1, {"from": "kddi", "to": "sakura", "amount_yen": 16})

    edit_statement(bundle, key, change)
    assert failure(bundle, key) == (
        "statement.json: transfer 1 is kddi -> sakura 1500 yen, recomputed kddi -> sakura 1516 yen"
    )


def test_given_transfers_in_another_order_then_it_fails(bundle, key):
    def change(statement):
        statement["transfers"].reverse()

    edit_statement(bundle, key, change)
    assert failure(bundle, key) == (
        "statement.json: transfer 1 is kddi -> highreso 106 yen, recomputed kddi -> sakura 1516 yen"
    )


# -- 5. the journal ------------------------------------------------------------------------


def _rename_posting(entries):
    entries[2]["postings"][1]["account"] = "kddi/revenue/other"


def test_given_a_posting_changed_then_the_hash_no_longer_matches(bundle, key):
    edit_journal(bundle, key, _rename_posting, rehash=False)
    assert failure(bundle, key).startswith("journal.ndjson line 3: hash does not match the entry's content")


def test_given_a_posting_changed_and_rehashed_then_it_differs_from_the_statement(bundle, key):
    edit_journal(bundle, key, _rename_posting, rehash=True)
    assert failure(bundle, key) == (
        "journal.ndjson line 3: posting 2 is kddi/revenue/other -1854, the statement implies "
        "kddi/revenue/retail -1854 (the tenant invoice (kddi acme))"
    )


def test_given_an_unbalanced_entry_then_it_fails(bundle, key):
    def change(entries):
        entries[3]["postings"][0]["amount_yen"] += 1

    edit_journal(bundle, key, change, rehash=True)
    assert failure(bundle, key) == "journal.ndjson line 4: the postings sum to 1, not 0"


def test_given_a_removed_journal_line_then_the_sequence_gap_is_named(bundle, key):
    def change(entries):
        del entries[2]

    edit_journal(bundle, key, change, rehash=False)
    assert failure(bundle, key) == (
        "journal.ndjson line 3: seq is 44 after line 2's 42: the sequence must go up by 1 "
        "(an entry is missing, added or moved)"
    )


def test_given_reordered_journal_lines_then_it_fails(bundle, key):
    def change(entries):
        entries[1], entries[2] = entries[2], entries[1]

    edit_journal(bundle, key, change, rehash=False)
    assert failure(bundle, key).startswith("journal.ndjson line 2: seq is 43 after line 1's 41")


def test_given_a_broken_link_then_prev_hash_is_named(bundle, key):
    def change(entries):
        entries[4]["prev_hash"] = "0" * 64

    edit_journal(bundle, key, change, rehash=False)
    assert failure(bundle, key) == "journal.ndjson line 5: prev_hash does not match line 4's hash"


def test_given_the_last_entry_removed_then_the_journal_is_short(bundle, key):
    def change(entries):
        del entries[-1]

    edit_journal(bundle, key, change, rehash=False)
    assert failure(bundle, key) == (
        "journal.ndjson: ends after 14 entries; the statement implies 15 "
        "(next: transfer_owed for transfer 2 (kddi -> highreso 106 yen))"
    )


def test_given_a_chain_head_that_is_not_the_last_entry_then_it_fails(bundle, key):
    head = read_json(bundle, "manifest.json")["chain_head"]
    sign(bundle, key, chain_head={"seq": head["seq"] + 1, "hash": head["hash"]})
    assert failure(bundle, key).startswith(
        "journal.ndjson line 15: the last entry (seq 55, hash "
    )


def test_given_an_entry_of_the_wrong_kind_then_it_fails(bundle, key):
    def change(entries):
        entries[6]["kind"], entries[7]["kind"] = entries[7]["kind"], entries[6]["kind"]

    edit_journal(bundle, key, change, rehash=True)
    assert failure(bundle, key).startswith(
        "journal.ndjson line 7: kind is 'member_invoice_provider', the statement implies member_invoice_reseller"
    )


def test_given_a_reference_to_the_wrong_lines_then_it_fails(bundle, key):
    def change(entries):
        entries[2]["reference"]["lines"] = [2, 3, 4]  # kddi acme's are 2, 3, 4, 5

    edit_journal(bundle, key, change, rehash=True)
    assert failure(bundle, key).startswith("journal.ndjson line 3: reference is ")


def test_given_transfers_posted_as_paid_at_the_close_then_a_bundle_made_before_payments_verifies(tmp_path, key):
    folder = tmp_path / "before-payments"
    write_bundle(folder, key, transfers_owed=False)
    assert [e["kind"] for e in read_ndjson(folder, "journal.ndjson")][-2:] == ["transfer", "transfer"]
    assert verify_bundle(folder, public_pem(key)) is None


def test_given_one_transfer_posted_as_paid_and_one_as_owed_then_it_fails(bundle, key):
    def change(entries):
        payer, payee, amount = "kddi", "highreso", 106
        entries[-1]["kind"] = "transfer"
        entries[-1]["postings"][1:3] = [{"account": f"{payer}/cash", "amount_yen": -amount},
                                        {"account": f"{payee}/cash", "amount_yen": amount}]

    edit_journal(bundle, key, change, rehash=True)
    assert failure(bundle, key).startswith(
        "journal.ndjson line 14: kind is 'transfer_owed', the statement implies transfer for transfer 1"
    )


def test_given_a_payment_entry_in_the_bundle_then_the_statement_does_not_imply_it(bundle, key):
    """A bundle holds the close's entries; a payment confirmed later is not one of them."""
    def change(entries):
        last = entries[-1]
        entries.append({**last, "seq": last["seq"] + 1, "kind": "payment",
                        "reference": {"payment": "pay-1", "transfer": 1},
                        "postings": [{"account": "kddi/payable/transfer/highreso", "amount_yen": 106},
                                     {"account": "kddi/cash", "amount_yen": -106},
                                     {"account": "highreso/cash", "amount_yen": 106},
                                     {"account": "highreso/receivable/transfer/kddi", "amount_yen": -106}]})

    edit_journal(bundle, key, change, rehash=True)
    assert failure(bundle, key) == "journal.ndjson line 16: is an entry the statement does not imply"


# -- 6. the dead letters ---------------------------------------------------------------------


def test_given_dead_letters_that_do_not_add_up_then_it_fails(bundle, key):
    write_json(bundle, "dead_letters.json", {"period": "2026-10", "total": 4, "by_reason": {"malformed": 1, "conflict": 2}})
    sign(bundle, key)
    assert failure(bundle, key) == "dead_letters.json: total is 4, but by_reason adds up to 3"


# -- 7. credits: grants.json (format /2) -------------------------------------------------


def edit_grants(folder: Path, key: Ed25519PrivateKey, change) -> None:
    document = read_json(folder, "grants.json")
    change(document["grants"])
    write_json(folder, "grants.json", document)
    sign(folder, key)


def test_given_a_bundle_with_grants_then_it_verifies_and_the_draws_are_as_by_hand(granted, key):
    assert read_json(granted, "manifest.json")["format"] == "gpuledger-audit-bundle/2"
    verify_bundle(granted, public_pem(key))
    statement = read_json(granted, "statement.json")
    assert [(d["grant"], d["funder"], d["reseller"], d["tenant"], d["amount_yen"]) for d in statement["grant_draws"]] == [
        ("highreso-t-1", "highreso", "sakura", "t-1", 100),  # 100 of the line's 138
        # Ends last: 954 after sakura-acme-trial used up its balance in the middle of the
        # 1134-yen line, then the 200-yen line; not the September line (from 2026-10).
        ("kddi-acme-2026q4", "kddi", "kddi", "acme", 1154),
        # Ends first, so first on every line although its id sorts after kddi-...: 130 + 390 + 180.
        ("sakura-acme-trial", "sakura", "kddi", "acme", 700),
    ]  # beta-old covers beta's line but has nothing left: no draw
    invoices = {(i["reseller"], i["tenant"]): i for i in statement["tenant_invoices"]}
    assert invoices[("kddi", "acme")] == {
        "reseller": "kddi", "tenant": "acme", "retail_yen": 1854, "credit_yen": 1854,
        "subtotal_yen": 0, "tax_yen": 0, "total_yen": 0,
    }
    assert invoices[("sakura", "t-1")] == {
        "reseller": "sakura", "tenant": "t-1", "retail_yen": 138, "credit_yen": 100,
        "subtotal_yen": 38, "tax_yen": 3, "total_yen": 41,
    }
    assert invoices[("kddi", "beta")]["credit_yen"] == 0
    # Member invoices do not change; funders other than the reseller reimburse it, tax-free:
    # highreso 106 - 100, kddi -1622 + 700 (sakura's), sakura 1622 - 106 + 100 - 700.
    assert statement["net_yen"] == {"highreso": 6, "kddi": -922, "sakura": 916, "zeta": 0}
    entries = read_ndjson(granted, "journal.ndjson")
    assert [e["reference"] for e in entries if e["kind"] == "grant_reimbursement"] == [
        {"grant": "highreso-t-1"}, {"grant": "sakura-acme-trial"},  # kddi funds its own tenant
    ]
    netting = next(e for e in entries if e["kind"] == "netting")
    assert netting["reference"]["grant_reimbursements"] == ["highreso-t-1", "sakura-acme-trial"]


def test_given_a_period_without_usage_then_its_bundle_with_no_grants_verifies(tmp_path, key):
    folder = tmp_path / "empty"
    statement = write_bundle(folder, key, period="2026-12", usages=[], grants=[])
    assert statement["grant_draws"] == [] and read_json(folder, "grants.json")["grants"] == []
    verify_bundle(folder, public_pem(key))


def test_given_a_draw_changed_then_the_grant_is_named(granted, key):
    def change(statement):
        statement["grant_draws"][1]["amount_yen"] = 999

    edit_statement(granted, key, change)
    assert failure(granted, key) == (
        "statement.json: grant draw 2 (kddi-acme-2026q4): amount_yen is 999, recomputed 1154 "
        "from grants.json and the lines"
    )


def test_given_draws_taken_in_id_order_then_the_grant_ending_first_is_missed(granted, key):
    # Were the grants on a line taken by id, kddi-acme-2026q4 would draw first: 390 + 1134
    # + 200, and sakura-acme-trial only the September 130. The credit is the same, the draws
    # (and so the reimbursement sakura owes kddi, the nets and transfers) are not.
    def change(statement):
        statement["grant_draws"][1]["amount_yen"] = 1724
        statement["grant_draws"][2]["amount_yen"] = 130
        statement["net_yen"].update(kddi=-1492, sakura=1486)
        statement["transfers"] = [{"from": "kddi", "to": "sakura", "amount_yen": 1486},
                                  {"from": "kddi", "to": "highreso", "amount_yen": 6}]

    edit_statement(granted, key, change)
    assert failure(granted, key) == (
        "statement.json: grant draw 2 (kddi-acme-2026q4): amount_yen is 1724, recomputed 1154 "
        "from grants.json and the lines"
    )


def test_given_a_draw_and_its_credit_changed_together_then_the_invoice_is_named(granted, key):
    def change(statement):
        statement["grant_draws"][1]["amount_yen"] -= 10
        invoice = statement["tenant_invoices"][2]  # kddi acme
        invoice.update(credit_yen=1844, subtotal_yen=10, tax_yen=1, total_yen=11)

    edit_statement(granted, key, change)
    assert failure(granted, key) == (
        "statement.json: tenant invoice 3 (kddi acme): credit_yen is 1844, recomputed 1854 "
        "(the draws of grants.json's grants on its lines)"
    )


def test_given_a_credit_taxed_before_it_is_taken_then_the_invoice_is_named(granted, key):
    def change(statement):
        statement["tenant_invoices"][5].update(tax_yen=13, total_yen=51)  # 10% of the retail 138

    edit_statement(granted, key, change)
    assert failure(granted, key) == "statement.json: tenant invoice 6 (sakura t-1): tax_yen is 13, recomputed 3"


def test_given_a_reimbursement_left_out_of_the_nets_then_it_fails(granted, key):
    def change(statement):
        statement["net_yen"]["highreso"] += 100
        statement["net_yen"]["sakura"] -= 100

    edit_statement(granted, key, change)
    assert failure(granted, key) == "statement.json: net_yen['highreso'] is 106, recomputed 6"


@pytest.mark.parametrize(
    "index, balance, message",
    [
        # kddi-acme-2026q4 with 1000 left: 954 + 46, and 154 yen of acme's retail not credited.
        (2, 1000, "tenant invoice 3 (kddi acme): credit_yen is 1854, recomputed 1700 "
                  "(the draws of grants.json's grants on its lines)"),
        # sakura-acme-trial with 600: 130 + 390 + 80; kddi-acme-2026q4 takes 100 more.
        (3, 600, "grant draw 2 (kddi-acme-2026q4): amount_yen is 1154, recomputed 1254 "
                 "from grants.json and the lines"),
    ],
    ids=["credit", "draws"],
)
def test_given_a_wrong_balance_then_what_is_recomputed_from_it_differs(granted, key, index, balance, message):
    edit_grants(granted, key, lambda grants: grants[index].update(balance_yen=balance))
    assert failure(granted, key) == f"statement.json: {message}"


def test_given_a_balance_above_the_amount_then_grants_json_fails(granted, key):
    edit_grants(granted, key, lambda grants: grants[3].update(balance_yen=1001))
    assert failure(granted, key) == (
        "grants.json: grant 4 (sakura-acme-trial): balance_yen is not an integer 0..amount_yen (1000)"
    )


def test_given_grants_json_missing_then_it_fails(granted, key):
    (granted / "grants.json").unlink()
    assert failure(granted, key) == "grants.json: listed in manifest.json but missing from the bundle"
    sign(granted, key)  # still format /2, now without grants.json
    assert failure(granted, key) == "manifest.json: files does not list grants.json"


def test_given_one_byte_changed_in_grants_json_then_its_line_is_named(granted, key):
    path = granted / "grants.json"
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"balance_yen": 700', b'"balance_yen": 900'))
    changed_line = data[: data.index(b'"balance_yen": 700')].count(b"\n") + 1
    assert failure(granted, key).startswith(f"grants.json line {changed_line}: differs from the signed bundle")


def _swap_first_two(grants):
    grants[0], grants[1] = grants[1], grants[0]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda grants: grants.insert(1, dict(grants[0])),
         "grant 2 (beta-old): repeats grant 1 (beta-old): each grant is listed once"),
        (_swap_first_two,
         "grant 2 (beta-old): out of order after grant 1 (highreso-t-1): grants sort by id (code point order)"),
        (lambda grants: grants[0].update(id="Beta-old"),
         "grant 1: id 'Beta-old' is not a grant id (a-z 0-9 . _ -, 1-64, first a-z 0-9)"),
        (lambda grants: grants[0].pop("tenant"), "grant 1: the key 'tenant' is missing"),
        (lambda grants: grants[0].update(note="x"), "grant 1: unexpected key 'note'"),
        (lambda grants: grants[0].update(funder="nobody"), "grant 1 (beta-old): funder 'nobody' is not a member of the catalog"),
        (lambda grants: grants[0].update(amount_yen="50"), "grant 1 (beta-old): amount_yen is not an integer >= 1"),
        (lambda grants: grants[0].update(skus=["H300"]), "grant 1 (beta-old): skus lists 'H300', which the catalog does not have"),
        (lambda grants: grants[3].update(skus=["H200", "H100"]),
         "grant 4 (sakura-acme-trial): skus are not sorted (code point order) and each listed once"),
        (lambda grants: grants[0].update(skus=[]), "grant 1 (beta-old): skus is neither null nor a non-empty list"),
        (lambda grants: grants[0].update(first_period="2026-11"),
         "grant 1 (beta-old): first_period 2026-11 is after last_period 2026-10"),
        (lambda grants: grants[0].update(last_period="2026-13"),
         "grant 1 (beta-old): last_period '2026-13' is not a period YYYY-MM"),
    ],
    ids=["twice", "out of order", "id", "missing key", "extra key", "funder", "amount", "sku",
         "skus order", "skus empty", "periods", "period"],
)
def test_given_a_malformed_grants_json_then_the_grant_is_named(granted, key, change, message):
    edit_grants(granted, key, change)
    assert failure(granted, key) == f"grants.json: {message}"


def test_given_a_grant_that_covers_no_line_then_it_fails(granted, key):
    stray = {"id": "zz-nobody", "funder": "kddi", "reseller": "kddi", "tenant": "nobody", "amount_yen": 10,
             "skus": None, "first_period": "2026-10", "last_period": "2026-10", "balance_yen": 10}
    edit_grants(granted, key, lambda grants: grants.append(stray))
    assert failure(granted, key) == (
        "grants.json: grant 5 (zz-nobody) covers no line of the statement (kddi nobody, every SKU, "
        "service periods 2026-10..2026-10)"
    )


def test_given_a_draw_on_a_grant_the_bundle_does_not_carry_then_it_fails(granted, key):
    edit_grants(granted, key, lambda grants: grants.pop(1))  # highreso-t-1
    assert failure(granted, key) == (
        "statement.json: grant draw 1 (highreso-t-1): grants.json carries no grant highreso-t-1"
    )


def test_given_a_grant_of_another_funder_than_its_draw_then_it_fails(granted, key):
    edit_grants(granted, key, lambda grants: grants[1].update(funder="kddi"))
    assert failure(granted, key) == (
        "statement.json: grant draw 1 (highreso-t-1): funder is 'highreso', grants.json's "
        "grant 2 (highreso-t-1) says 'kddi'"
    )


def test_given_a_statement_without_credits_that_grants_draw_on_then_it_fails(granted, key):
    def change(statement):
        del statement["grant_draws"]
        for invoice in statement["tenant_invoices"]:
            del invoice["retail_yen"], invoice["credit_yen"]

    edit_statement(granted, key, change)
    assert failure(granted, key) == (
        "statement.json: carries no credits (no grant_draws), but grants.json's grant 2 (highreso-t-1) "
        "draws 100 yen on its lines"
    )


def test_given_a_format_1_bundle_then_grants_json_is_not_one_of_its_files(granted, key):
    sign(granted, key, bundle_format=FORMAT_1)
    assert failure(granted, key) == (
        "manifest.json: files lists 'grants.json', which is not a file of a gpuledger-audit-bundle/1 bundle"
    )
    (granted / "grants.json").unlink()
    sign(granted, key, bundle_format=FORMAT_1)
    assert failure(granted, key) == (
        "statement.json: grant_draws lists 'highreso-t-1', but the bundle carries no grants"
    )


def test_given_an_unknown_format_then_the_manifest_fails(granted, key):
    sign(granted, key, bundle_format="gpuledger-audit-bundle/9")
    assert failure(granted, key) == (
        "manifest.json: format is 'gpuledger-audit-bundle/9'; this verifier reads "
        "gpuledger-audit-bundle/1, gpuledger-audit-bundle/2, gpuledger-audit-bundle/3, gpuledger-audit-bundle/4"
    )


def test_given_the_discount_folded_into_revenue_then_the_journal_fails(granted, key):
    def change(entries):
        postings = entries[5]["postings"]  # sakura t-1: receivable, revenue, discount, tax
        assert postings[2]["account"] == "sakura/discount/grants"
        postings[1]["amount_yen"] += postings.pop(2)["amount_yen"]

    edit_journal(granted, key, change, rehash=True)
    assert failure(granted, key) == (
        "journal.ndjson line 6: posting 2 is sakura/revenue/retail -38, the statement implies "
        "sakura/revenue/retail -138 (the tenant invoice (sakura t-1))"
    )


def test_given_a_reimbursement_entry_left_out_then_the_journal_fails(granted, key):
    def change(entries):
        index = next(i for i, e in enumerate(entries) if e["kind"] == "grant_reimbursement")
        del entries[index]
        for offset, entry in enumerate(entries[index:]):
            entry["seq"] = entries[index - 1]["seq"] + 1 + offset

    edit_journal(granted, key, change, rehash=True)
    assert failure(granted, key) == (
        'journal.ndjson line 13: reference is {"grant":"sakura-acme-trial"}, the statement implies '
        '{"grant":"highreso-t-1"}'
    )


def test_given_a_netting_without_its_reimbursements_then_the_journal_fails(granted, key):
    def change(entries):
        netting = next(e for e in entries if e["kind"] == "netting")
        del netting["reference"]["grant_reimbursements"]

    edit_journal(granted, key, change, rehash=True)
    assert failure(granted, key).startswith(
        'journal.ndjson line 15: reference is {"member_invoices":[["highreso","sakura"],'
    )


# -- scale -----------------------------------------------------------------------------------


def test_given_many_evidence_lines_then_it_verifies(tmp_path, key):
    usages = [
        Usage(f"GPU-{gpu:04d}", f"2026-10-{day:02d}T{hour:02d}:00:00Z", "sakura", "kddi", f"t{gpu % 7}",
              "H200", "2026-10", [gpu % 3600, (gpu * 7) % 3600])
        for gpu in range(150)
        for day in (4, 11)
        for hour in (0, 12)
    ]
    folder = tmp_path / "many"
    write_bundle(folder, key, usages=usages)
    verify_bundle(folder, public_pem(key))
