"""Auditor bundles verify on their own, and any change to them is found and named.

Given the public scenario run to its end (September and October closed), when each
period is exported, then `gpuledger verify` passes with only the bundle and the public
key; and changing one byte of any file, one line of the evidence, or the signature
makes it fail with a message that names the file and the line.
"""

from __future__ import annotations

import base64
import json
import shutil

import orjson
import pytest

from tests.scenario import run_steps, scenario_dirs

pytestmark = pytest.mark.infra

SCENARIO = scenario_dirs()[0]
PERIODS = ("2026-09", "2026-10")


@pytest.fixture(scope="module")
def bundles(make_stack, tmp_path_factory):
    stack = make_stack()
    folder = tmp_path_factory.mktemp("bundles")
    run_steps(stack, SCENARIO, folder)
    stack.run("keys", "init")
    public_key = folder / "ledger.pub"
    public_key.write_bytes(stack.run("keys", "public").stdout)
    out = {}
    for period in PERIODS:
        out[period] = folder / f"bundle-{period}"
        stack.run("export", period, "--out", str(out[period]))
    return stack, out, public_key


def verify(stack, bundle, public_key):
    return stack.run("verify", str(bundle), "--public-key", str(public_key), check=False)


def test_each_closed_period_exports_and_verifies(bundles):
    stack, out, public_key = bundles
    for period in PERIODS:
        completed = verify(stack, out[period], public_key)
        assert completed.returncode == 0, completed.stderr.decode()
        assert json.loads(completed.stdout)["verified"] is True
        # The bundle's statement is what settle prints, byte for byte.
        assert (out[period] / "statement.json").read_bytes() == stack.run("settle", period).stdout


def test_an_export_of_an_open_period_is_refused(bundles):
    stack, _, _ = bundles
    completed = stack.run("export", "2026-11", "--out", "/tmp/never-written", check=False)
    assert completed.returncode != 0
    assert b"not closed" in completed.stderr


@pytest.fixture
def copy(bundles, tmp_path):
    stack, out, public_key = bundles

    def make(period="2026-10"):
        target = tmp_path / f"copy-{period}"
        shutil.copytree(out[period], target)
        return target

    return stack, make, public_key


FILES = ["statement.json", "statement.csv", "catalog.json", "evidence.ndjson", "journal.ndjson",
         "dead_letters.json", "line-digests.tsv", "manifest.json"]


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
    row["tenant"] = row["tenant"] + "-x"
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
