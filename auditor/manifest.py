"""Check 1: manifest.sig, and the manifest.json it signs.

The signature is the Ed25519 signature of manifest.json's exact bytes under the
ledger's public key; manifest.json then says which files the bundle holds (with their
sizes and SHA-256), the period, the journal's chain head and the key's id. Reading the
two files from the bundle is auditor.verify's; this module gets their bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditor.errors import VerificationError
from auditor.instants import is_period, parse_instant
from auditor.strictjson import JSONProblem, is_int, parse_document

FORMAT = "gpuledger-audit-bundle/1"
FORMAT_2 = "gpuledger-audit-bundle/2"  # adds grants.json: the grants behind the credits
FORMAT_3 = "gpuledger-audit-bundle/3"  # adds corrections.json: the voids and lines behind returns
FORMAT_4 = "gpuledger-audit-bundle/4"  # the same files; evidence.ndjson as runs per GPU and UTC day
MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
GRANTS = "grants.json"
CORRECTIONS = "corrections.json"
# The files of a bundle besides the manifest and its signature, in the order checked.
FILES = ("line-digests.tsv", "statement.json", "statement.csv", "catalog.json", "evidence.ndjson",
         "journal.ndjson", "dead_letters.json")
# Each format this verifier reads, and its files in the order checked.
FORMATS = {
    FORMAT: FILES,
    FORMAT_2: ("line-digests.tsv", "statement.json", "statement.csv", "catalog.json", GRANTS,
               "evidence.ndjson", "journal.ndjson", "dead_letters.json"),
    FORMAT_3: ("line-digests.tsv", "statement.json", "statement.csv", "catalog.json", GRANTS, CORRECTIONS,
               "evidence.ndjson", "journal.ndjson", "dead_letters.json"),
}
FORMATS[FORMAT_4] = FORMATS[FORMAT_3]
_HEX64 = re.compile(r"[0-9a-f]{64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_MANIFEST_KEYS = {"format", "period", "created_at", "files", "chain_head", "key_id",
                  "signature_algorithm"}


@dataclass(frozen=True)
class Manifest:
    period: str
    files: dict[str, tuple[str, int]]  # name -> (sha256 hex, size in bytes)
    chain_head: dict | None  # {"seq": int, "hash": hex} or None for an empty journal
    key_id: str
    format: str = FORMAT

    @property
    def names(self) -> tuple[str, ...]:
        """The files of the bundle's format, besides the manifest and its signature, in the order checked."""
        return FORMATS[self.format]


def public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise VerificationError("public key: not a PEM SubjectPublicKeyInfo public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError(f"public key: a {type(key).__name__}, not an Ed25519 public key")
    return key


def signed_manifest(key: Ed25519PublicKey, manifest_bytes: bytes, signature_bytes: bytes) -> Manifest:
    """The signature, then the manifest it covers and its key_id."""
    signature = _signature(signature_bytes)
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise VerificationError(
            f"{SIGNATURE}: the signature does not verify with the given public key "
            f"(over the bytes of {MANIFEST})"
        ) from None
    manifest = _manifest(manifest_bytes)
    raw_key = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw_key).hexdigest()
    if manifest.key_id != key_id:
        raise VerificationError(
            f"{MANIFEST}: key_id is {manifest.key_id}, but the given public key's is {key_id}"
        )
    return manifest


def _signature(data: bytes) -> bytes:
    if not data.endswith(b"\n") or data.count(b"\n") != 1:
        raise VerificationError(f"{SIGNATURE}: not one line of base64 followed by a newline")
    text = data[:-1]
    if _BASE64.fullmatch(text.decode("ascii", errors="replace")) is None or len(text) % 4:
        raise VerificationError(f"{SIGNATURE}: not base64 (standard alphabet, padded)")
    try:
        signature = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{SIGNATURE}: not base64 (standard alphabet, padded)") from None
    if len(signature) != 64:
        raise VerificationError(f"{SIGNATURE}: {len(signature)} bytes, an Ed25519 signature has 64")
    return signature


def _fail(what: str) -> VerificationError:
    return VerificationError(f"{MANIFEST}: {what}")


def _manifest(data: bytes) -> Manifest:
    try:
        document = parse_document(data)
    except JSONProblem as exc:
        raise _fail(str(exc)) from None
    if not isinstance(document, dict):
        raise _fail("is not a JSON object")
    for name in sorted(_MANIFEST_KEYS - document.keys()):
        raise _fail(f"the key {name!r} is missing")
    for name in sorted(document.keys() - _MANIFEST_KEYS):
        raise _fail(f"unexpected key {name!r}")
    if not isinstance(document["format"], str) or document["format"] not in FORMATS:
        raise _fail(f"format is {document['format']!r}; this verifier reads {', '.join(FORMATS)}")
    if document["signature_algorithm"] != "Ed25519":
        raise _fail(f"signature_algorithm is {document['signature_algorithm']!r}, not Ed25519")
    if not is_period(document["period"]):
        raise _fail(f"period {document['period']!r} is not a period YYYY-MM")
    if parse_instant(document["created_at"]) is None:
        raise _fail(f"created_at {document['created_at']!r} is not a UTC instant YYYY-MM-DDTHH:MM:SSZ")
    key_id = document["key_id"]
    if not isinstance(key_id, str) or _HEX64.fullmatch(key_id) is None:
        raise _fail("key_id is not 64 lowercase hex digits")
    files = _files(document["files"], document["format"])
    head = document["chain_head"]
    if head is not None and (
        not isinstance(head, dict)
        or head.keys() != {"seq", "hash"}
        or not is_int(head["seq"])
        or head["seq"] < 0
        or not isinstance(head["hash"], str)
        or _HEX64.fullmatch(head["hash"]) is None
    ):
        raise _fail("chain_head is neither null nor {\"seq\": integer, \"hash\": 64 lowercase hex}")
    return Manifest(document["period"], files, head, key_id, document["format"])


def _files(listed: object, bundle_format: str) -> dict[str, tuple[str, int]]:
    """The manifest's files: each file of its format, with its SHA-256 and size, and nothing else."""
    if not isinstance(listed, dict):
        raise _fail("files is not an object")
    files: dict[str, tuple[str, int]] = {}
    for name, entry in listed.items():
        if name not in FORMATS[bundle_format]:
            raise _fail(f"files lists {name!r}, which is not a file of a {bundle_format} bundle")
        if (
            not isinstance(entry, dict)
            or entry.keys() != {"sha256", "bytes"}
            or not isinstance(entry["sha256"], str)
            or _HEX64.fullmatch(entry["sha256"]) is None
            or not is_int(entry["bytes"])
            or entry["bytes"] < 0
        ):
            raise _fail(f"files[{name!r}] is not {{\"sha256\": 64 lowercase hex, \"bytes\": integer}}")
        files[name] = (entry["sha256"], entry["bytes"])
    for name in FORMATS[bundle_format]:
        if name not in files:
            raise _fail(f"files does not list {name}")
    return files
