"""Auditor bundles verify on their own, and any change to them is found and named.

Given each public scenario run to its end (September and October closed), when each
period is exported, then `gpuledger verify` passes with only the bundle and the public
key; and changing one byte of any file, one line of the evidence, or the signature
makes it fail with a message that names the file and the line. alliance-2026-q4 has
grants: its bundles carry them (grants.json) and the verifier recomputes every draw, so
a draw changed and re-signed with the ledger's own key is still caught.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from tests.scenario import run_steps, scenario_dirs

pytestmark = pytest.mark.infra

SCENARIOS = scenario_dirs()
Q4 = next(directory for directory in SCENARIOS if directory.name == "alliance-2026-q4")
PERIODS = ("2026-09", "2026-10")


@pytest.fixture(scope="module", params=SCENARIOS, ids=lambda directory: directory.name)
def bundles(request, make_stack, tmp_path_factory):
    """One scenario run on its own stack, both months exported; the stack is stopped once
    the scenario's tests are done (make_stack's own teardown then finds it down)."""
    stack = make_stack()
    folder = tmp_path_factory.mktemp(f"bundles-{request.param.name}")
    run_steps(stack, request.param, folder)
    private_key = Path(stack.json("keys", "init")["private_key"])
    public_key = folder / "ledger.pub"
    public_key.write_bytes(stack.run("keys", "public").stdout)
    out = {}
    for period in PERIODS:
        out[period] = folder / f"bundle-{period}"
        stack.run("export", period, "--out", str(out[period]))
    yield stack, out, public_key, private_key
    stack.down()


def verify(stack, bundle, public_key):
    return stack.run("verify", str(bundle), "--public-key", str(public_key), check=False)


def test_each_closed_period_exports_and_verifies(bundles):
    stack, out, public_key, _ = bundles
    for period in PERIODS:
        completed = verify(stack, out[period], public_key)
        assert completed.returncode == 0, completed.stderr.decode()
        assert json.loads(completed.stdout)["verified"] is True
        # The bundle's statement is what settle prints, byte for byte.
        assert (out[period] / "statement.json").read_bytes() == stack.run("settle", period).stdout


def test_an_export_of_an_open_period_is_refused(bundles):
    stack, _, _, _ = bundles
    completed = stack.run("export", "2026-11", "--out", "/tmp/never-written", check=False)
    assert completed.returncode != 0
    assert b"not closed" in completed.stderr


@pytest.fixture
def copy(bundles, tmp_path):
    stack, out, public_key, _ = bundles

    def make(period="2026-10"):
        target = tmp_path / f"copy-{period}"
        shutil.copytree(out[period], target)
        return target

    return stack, make, public_key


FILES = ["statement.json", "statement.csv", "catalog.json", "grants.json", "corrections.json", "evidence.ndjson",
         "journal.ndjson", "dead_letters.json", "line-digests.tsv", "manifest.json"]


@pytest.mark.parametrize("name", FILES)
def test_one_changed_byte_in_any_file_is_named(copy, name):
    stack, make, public_key = copy
    bundle = make()
    path = bundle / name
    data = bytearray(path.read_bytes())
    lines = bytes(data).rstrip(b"\n").split(b"\n")
    target_line = min(len(lines) - 1, 3)  # the 4th line, or the last one
    offset = sum(len(line) + 1 for line in lines[:target_line]) + 1
    data[offset] = ord("7") if data[offset] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    completed = verify(stack, bundle, public_key)
    message = completed.stderr.decode()
    assert completed.returncode == 4, message
    assert name in message, message
    if name not in ("manifest.json", "line-digests.tsv"):
        assert f"line {target_line + 1}" in message, message


def test_one_changed_evidence_line_is_named(copy):
    stack, make, public_key = copy
    bundle = make()
    path = bundle / "evidence.ndjson"
    lines = path.read_bytes().split(b"\n")
    row = orjson.loads(lines[10])
    row["attributions"][0][2] += "-x"  # the tenant of the line's first attribution
    lines[10] = orjson.dumps(row)
    path.write_bytes(b"\n".join(lines))
    completed = verify(stack, bundle, public_key)
    message = completed.stderr.decode()
    assert completed.returncode == 4 and "evidence.ndjson" in message and "line 11" in message, message


def test_a_changed_signature_fails(copy):
    stack, make, public_key = copy
    bundle = make()
    signature = bytearray(base64.b64decode((bundle / "manifest.sig").read_bytes()))
    signature[0] ^= 1
    (bundle / "manifest.sig").write_bytes(base64.b64encode(bytes(signature)) + b"\n")
    completed = verify(stack, bundle, public_key)
    assert completed.returncode == 4 and "manifest.sig" in completed.stderr.decode()


def test_another_key_does_not_verify(copy, tmp_path):
    stack, make, _ = copy
    bundle = make()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pub"
    other.write_bytes(
        Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    completed = verify(stack, bundle, other)
    assert completed.returncode == 4 and "manifest" in completed.stderr.decode()


def test_an_extra_or_missing_file_fails(copy):
    stack, make, public_key = copy
    bundle = make()
    (bundle / "notes.txt").write_text("hello")
    assert b"notes.txt" in verify(stack, bundle, public_key).stderr
    bundle = make("2026-09")
    (bundle / "journal.ndjson").unlink()
    assert b"journal.ndjson" in verify(stack, bundle, public_key).stderr


def resign(bundle: Path, private_key: Path, changed: str) -> None:
    """What an operator holding the signing key could do after editing `changed`: the
    line digests and the manifest rewritten for the files as they are, and signed."""
    order = list(dict.fromkeys(
        entry.split(b"\t")[0].decode() for entry in (bundle / "line-digests.tsv").read_bytes().splitlines()
    ))
    digests = b"".join(
        f"{name}\t{number}\t{hashlib.sha256(line).hexdigest()}\n".encode()
        for name in order
        for number, line in enumerate((bundle / name).read_bytes().splitlines(keepends=True), start=1)
    )
    (bundle / "line-digests.tsv").write_bytes(digests)
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    for name in (changed, "line-digests.tsv"):
        data = (bundle / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    (bundle / "manifest.json").write_bytes(manifest_bytes)
    (bundle / "manifest.sig").write_bytes(base64.b64encode(key.sign(manifest_bytes)) + b"\n")


@pytest.mark.parametrize("bundles", [Q4], indirect=True, ids=[Q4.name])
def test_a_changed_draw_signed_with_the_ledgers_key_fails_on_the_numbers(bundles, tmp_path):
    stack, out, public_key, private_key = bundles
    bundle = tmp_path / "september"
    shutil.copytree(out["2026-09"], bundle)
    grants = json.loads((bundle / "grants.json").read_bytes())["grants"]
    assert {g["id"] for g in grants} >= {"poc-kdd-cust-03", "accel-kdd-cust-03"}, grants
    resign(bundle, private_key, "statement.json")
    assert verify(stack, bundle, public_key).returncode == 0  # re-signing alone changes nothing

    statement = orjson.loads((bundle / "statement.json").read_bytes())
    draw = statement["grant_draws"][0]
    draw["amount_yen"] -= 1
    (bundle / "statement.json").write_bytes(orjson.dumps(statement) + b"\n")
    resign(bundle, private_key, "statement.json")
    completed = verify(stack, bundle, public_key)
    message = completed.stderr.decode()
    assert completed.returncode == 4, message
    assert (
        f"statement.json: grant draw 1 ({draw['grant']}): amount_yen is {draw['amount_yen']}, "
        f"recomputed {draw['amount_yen'] + 1}"
    ) in message, message
